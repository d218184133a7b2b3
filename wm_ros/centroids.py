"""Centroids of pixel masks: of the whole mask, and of its densest blob.

Plain torch, no simulator: the planner's object term (wm_ros.planning.costs) and the prediction
metrics (wm_ros.eval.metrics) both find an object's place in an image with these.
"""

from __future__ import annotations

import torch
from torch.nn import functional


def mask_centroid(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid (row, col), pixels, of bool masks (..., S, S) -> ((..., 2), present (...,)).

    The centroid of an empty mask is NaN and `present` is False there.
    """
    h, w = mask.shape[-2:]
    m = mask.float()
    count = m.sum(dim=(-2, -1))  # (...,)
    rows = torch.arange(h, device=m.device, dtype=m.dtype)
    cols = torch.arange(w, device=m.device, dtype=m.dtype)
    r = (m.sum(-1) * rows).sum(-1) / count  # NaN where count is 0
    c = (m.sum(-2) * cols).sum(-1) / count
    return torch.stack([r, c], dim=-1), count > 0


def blob_centroid(mask: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid (row, col), pixels, of the densest blob of bool masks (..., S, S).

    The blob is the (2 radius + 1)-pixel square holding the most mask pixels; only pixels in it
    count, so stray pixels of the same colour elsewhere (a blurred arm edge that happens to be
    puck-coloured) do not drag the centroid away. Returns ((..., 2), present (...,)), NaN
    where the mask is empty.
    """
    lead, (h, w) = mask.shape[:-2], mask.shape[-2:]
    m = mask.reshape(-1, 1, h, w).float()
    size = 2 * radius + 1
    density = functional.avg_pool2d(m, size, stride=1, padding=radius, count_include_pad=False)
    peak = (density * (size * size)).flatten(1).argmax(dim=1)  # (N,) first densest centre
    rows = torch.arange(h, device=m.device)
    cols = torch.arange(w, device=m.device)
    near_r = (rows[None] - (peak // w)[:, None]).abs() <= radius  # (N, h)
    near_c = (cols[None] - (peak % w)[:, None]).abs() <= radius  # (N, w)
    blob = mask.reshape(-1, h, w) & near_r[:, :, None] & near_c[:, None, :]
    return mask_centroid(blob.reshape(*lead, h, w))
