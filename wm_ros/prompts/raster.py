"""Batched, anti-aliased skeleton rasteriser in torch (any device, no loop over images).

How it stays cheap (a 256 x 8 batch of 64x64 RGB prompts is 100 MB of float32, so no per-link
dense pass over it is affordable):

1. Sparse candidates. Each segment only visits the pixels that can be within reach of it: it
   walks its major axis (x if |dx| >= |dy|) one pixel column at a time and, in each column, a
   band of `seg_rows` pixels around the centre line. Each dot visits a small square stencil.
   Edge e gets as many columns as its longest instance in the batch needs (one host sync), so
   the work scales with the skeleton's length in pixels, not with the image area. Candidates are
   laid out batch-last, (columns, rows, B), so every elementwise op runs long vectorised loops.
   Bands and stencils are clamped into the image, so every candidate index is valid.
2. Exact coverage per candidate: distance from the pixel centre to the segment (clamped
   projection, round caps) or to the dot centre, coverage = clamp(R + 0.5 - distance, 0, 1), with
   R the half-width or radius: a one-pixel linear ramp, the usual distance-based anti-aliasing.
   Brightness falls linearly with depth (the depth cue), taken along the segment at each column.
3. One scatter-max into a small integer key map (B, h*w): key = ((priority * 256 + level) *
   colours + colour id), level = round(255 * coverage * brightness). The max keeps, at every
   pixel, the brightest candidate (ties: the higher colour id), so overlaps are order-free and
   deterministic; interiors (coverage >= 0.5) of visible dots get a higher priority so joints and
   the tool point sit on top of the links. The key map is 2 bytes a pixel and stays in cache;
   level 0 decodes to black whatever its colour id, so no candidate needs masking.
4. One table look-up decodes keys to colours: table[key] = colour[id] * level / 255, done only
   at the candidate pixels (every other pixel is black) into a zeroed output, on CPU in
   cache-sized blocks of images (see `decode`).

Pixel convention: OpenCV, the centre of pixel (col, row) is at (col, row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from wm_ros.config import PromptConfig
from wm_ros.kinematics.skeleton import Skeleton

# Keypoints nearer than this (metres along the optical axis) are treated as behind the camera.
MIN_DEPTH_M = 1e-3
_LEVELS = 256
_PRIORITIES = 3  # 0: segments and dot fringes, 1: joint dot interiors, 2: the tool dot interior
# CPU decode block: this many bytes of output images (85 RGB float32 64x64 ones) stay in cache.
_CPU_BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class RasterStyle:
    """What the rasteriser draws, resolved from a PromptConfig and a Skeleton (sizes in pixels).

    Attributes:
        edges: (E, 2) keypoint index pairs.
        edge_colors: (E, C) colour of each segment, [0, 1].
        dot_colors: (K, C) colour of each keypoint's dot, [0, 1].
        dot_radii: (K,) dot radius per keypoint, pixels (0: no dot).
        dot_priority: (K,) 1 for joints/fingers, 2 for the tool point.
        line_width: full segment width, pixels.
        depth_near, depth_far: metres mapped to brightness 1 and `min_brightness`.
        min_brightness: brightness at `depth_far` and beyond.
    """

    edges: np.ndarray
    edge_colors: np.ndarray
    dot_colors: np.ndarray
    dot_radii: np.ndarray
    dot_priority: np.ndarray
    line_width: float
    depth_near: float
    depth_far: float
    min_brightness: float

    @classmethod
    def from_config(cls, skeleton: Skeleton, cfg: PromptConfig, scale: float = 1.0) -> RasterStyle:
        """Resolve colours and sizes; `scale` multiplies every pixel size (for overlays)."""
        palette = np.array(cfg.palette_rgb())
        edge_colors = palette[np.arange(skeleton.num_edges) % len(palette)]
        is_tool = np.array([k == "tool" for k in skeleton.keypoint_kinds])
        dot_colors = np.where(is_tool[:, None], cfg.tool_rgb(), cfg.joint_rgb())
        radii = np.where(is_tool, cfg.tool_radius_px, cfg.joint_radius_px) * scale
        if cfg.channels == 1:
            # Grey prompts: every element at full intensity; brightness carries the depth cue.
            edge_colors = np.ones((skeleton.num_edges, 1))
            dot_colors = np.ones((skeleton.num_keypoints, 1))
        return cls(
            edges=np.asarray(skeleton.edges, dtype=np.int64).reshape(-1, 2),
            edge_colors=edge_colors,
            dot_colors=dot_colors,
            dot_radii=radii.astype(np.float64),
            dot_priority=np.where(is_tool, 2, 1),
            line_width=cfg.line_width_px * scale,
            depth_near=cfg.depth_near_m,
            depth_far=cfg.depth_far_m,
            min_brightness=cfg.depth_min_brightness,
        )

    @property
    def channels(self) -> int:
        return (
            int(self.edge_colors.shape[1])
            if len(self.edge_colors)
            else int(self.dot_colors.shape[1])
        )


class SkeletonRasterizer:
    """Draw batches of projected skeletons as (B, C, h, w) images in [0, 1].

    Args:
        style: what to draw (RasterStyle.from_config).
        height, width: image size, pixels.
    """

    def __init__(self, style: RasterStyle, height: int, width: int) -> None:
        self.style = style
        self.height, self.width = int(height), int(width)
        self.num_edges = len(style.edges)
        self.num_dots = len(style.dot_radii)
        self.num_colors = self.num_edges + self.num_dots
        self.channels = style.channels
        # Coverage of a segment reaches 0 at half-width + 0.5 px from its centre line.
        self.seg_reach = style.line_width / 2 + 0.5
        # Rows per column: within reach r of a segment whose slope is at most 1, a column's
        # covered pixels lie within r * sqrt(2) of the (clamped) centre line, caps included.
        self.seg_rows = min(
            math.floor(2 * self.seg_reach * math.sqrt(2)) + 1, self.height, self.width
        )
        # Dots grouped by stencil size (joints, tool): one batched pass per group. A dot covers
        # the pixels with |x - cx| < reach (and likewise y): at most ceil(2 * reach) per axis,
        # all among the ceil(2 * reach) from ceil(cx - reach) on (the stencil's first, `_dots`).
        # When cx - reach is an integer that first pixel has coverage 0, and the pixel one past
        # the stencil is cut off (still coverage 0, drawn black): so only the key map's element
        # id at such undrawn pixels depends on where the stencil ends, never the image.
        reach = style.dot_radii + 0.5
        sizes = np.minimum(np.ceil(2 * reach).astype(int), min(self.height, self.width))
        self.dot_groups: list[tuple[int, np.ndarray]] = [
            (int(size), np.flatnonzero((sizes == size) & (style.dot_radii > 0)))
            for size in sorted(set(sizes.tolist()))
        ]
        self.dot_groups = [(size, ks) for size, ks in self.dot_groups if len(ks)]
        max_key = _PRIORITIES * _LEVELS * self.num_colors
        if max_key >= 2**24:  # keys are built exactly in float32
            raise ValueError(f"too many skeleton elements to draw ({self.num_colors})")
        # The scatter target: int16 while keys fit (a 256 x 8 x 64 x 64 map is 16 MB: cache).
        self.key_dtype = torch.int16 if max_key <= 2**15 else torch.int32
        # Candidates are transposed as (key, pixel index) pairs of the narrowest integer type that
        # holds both (`draw`).
        pixels = self.height * self.width
        narrow = self.key_dtype == torch.int16 and pixels <= 2**15
        self._pair_dtype = torch.int16 if narrow else torch.int32
        colors = np.concatenate([style.edge_colors, style.dot_colors]).reshape(self.num_colors, -1)
        levels = np.arange(_LEVELS) / (_LEVELS - 1)
        table = levels[:, None, None] * colors[None]  # (levels, colours, C)
        alpha = np.broadcast_to(levels[:, None, None], (_LEVELS, self.num_colors, 1))
        table = np.concatenate([table, alpha], axis=-1).reshape(-1, self.channels + 1)
        # Decode table, channel-major: (C + 1, priorities * levels * colours), alpha last.
        self._table_np = np.tile(table, (_PRIORITIES, 1)).T.copy()
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}
        self._keys: torch.Tensor | None = None  # key-map workspace
        # Other workspaces (`_workspace_tensor`), by slot. A slot is reused by a later phase once
        # its earlier user is done: "a", "b" (segment columns, then packing, then decode's
        # look-ups), "c"-"e" (segment pixels, then dots, packing, decode), "f", "g" (float
        # candidates) and "index" (returned by `draw`, read by `decode`).
        self._work: dict[str, torch.Tensor] = {}
        # Dot candidates: a fixed number per image (stencils are clamped into the image).
        self._dot_count = sum(len(ks) * size * size for size, ks in self.dot_groups)

    def _consts(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        key = (device, dtype)
        consts = self._cache.get(key)
        if consts is None:
            s = self.style
            consts = {
                "e0": torch.as_tensor(s.edges[:, 0], device=device),
                "e1": torch.as_tensor(s.edges[:, 1], device=device),
                "rows": torch.arange(self.seg_rows, device=device, dtype=dtype)[:, None],
                "dot_reach": torch.as_tensor(s.dot_radii + 0.5, device=device, dtype=dtype),
                "dot_prio": torch.as_tensor(
                    s.dot_priority * _LEVELS * self.num_colors, device=device, dtype=dtype
                ),
                "dot_ids": torch.arange(
                    self.num_edges, self.num_colors, device=device, dtype=dtype
                ),
            }
            for g, (size, ks) in enumerate(self.dot_groups):
                consts[f"dot_sel{g}"] = torch.as_tensor(ks, device=device)
                consts[f"stencil{g}"] = torch.arange(size, device=device, dtype=dtype)[:, None]
            self._cache[key] = consts
        return consts

    def _table(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = ("table", device, dtype)
        table = self._cache.get(key)
        if table is None:
            table = {"t": torch.as_tensor(self._table_np, device=device, dtype=dtype)}
            self._cache[key] = table
        return table["t"]

    def _brightness255(
        self, depth: torch.Tensor, visible: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """255 * brightness as a + b * depth_fraction, zero where not visible; (a, b) per item.

        The caller clamps the depth fraction to [0, 1]: brightness = 1 - (1 - min) * fraction.
        """
        scale = 255.0 * visible.to(depth.dtype)
        return scale, -(1.0 - self.style.min_brightness) * scale

    def _depth_fraction(self, depth: torch.Tensor) -> torch.Tensor:
        s = self.style
        return (depth - s.depth_near) / (s.depth_far - s.depth_near)

    def brightness(self, depth: torch.Tensor) -> torch.Tensor:
        """Depth cue: 1 at depth_near, min_brightness at depth_far and beyond, linear between."""
        frac = self._depth_fraction(depth).clamp(0.0, 1.0)
        return 1.0 - (1.0 - self.style.min_brightness) * frac

    # ------------------------------------------------------------------ candidates
    # Layout: the batch is the last (contiguous) axis so every elementwise op runs long,
    # vectorised inner loops; per-item quantities broadcast along the leading axes.

    def _workspace_tensor(
        self, slot: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """A (shape) tensor of uninitialised memory in a byte buffer reused across calls.

        Why: on CPU, every large temporary that is allocated afresh is page-faulted in again
        (glibc hands big blocks back to the OS): without reuse, one 256 x 8 call took ~7000 page
        faults, several milliseconds. And the call is memory-bound, so temporaries of different
        phases share a few slots (a-g, named where used): a smaller working set stays in cache.
        A slot only grows (25% extra, as candidate counts vary a little from call to call).
        Valid until the slot is next used.
        """
        nbytes = math.prod(shape) * dtype.itemsize
        buf = self._work.get(slot)
        if buf is None or buf.numel() < nbytes or buf.device != device:
            buf = torch.empty(nbytes + nbytes // 4, dtype=torch.uint8, device=device)
            self._work[slot] = buf
        return buf[:nbytes].view(dtype).view(shape)

    def _segment_columns(
        self, ux: torch.Tensor, uy: torch.Tensor, dep: torch.Tensor, c: dict[str, torch.Tensor]
    ) -> tuple[list[int], torch.Tensor] | None:
        """Per-edge values of every segment, and the columns each edge needs (one host sync).

        Returns:
            (steps, per_edge): columns per edge (their sum times `seg_rows` is the number of
            segment candidates) and the (E, 15, B) per-edge values `_segment_pixels` takes; or
            None when no segment is visible anywhere.
        """
        if self.num_edges == 0:
            return None
        w, h = float(self.width), float(self.height)
        ax, ay, bx, by = ux[c["e0"]], uy[c["e0"]], ux[c["e1"]], uy[c["e1"]]  # (E, B)
        da, db = dep[c["e0"]], dep[c["e1"]]
        visible = (da > MIN_DEPTH_M) & (db > MIN_DEPTH_M)
        dx, dy = bx - ax, by - ay
        xmajor = dx.abs() >= dy.abs()
        one = torch.ones_like(dx)
        am, an = torch.where(xmajor, ax, ay), torch.where(xmajor, ay, ax)
        dm, dn = torch.where(xmajor, dx, dy), torch.where(xmajor, dy, dx)
        size_m, size_n = (
            torch.where(xmajor, w * one, h * one),
            torch.where(xmajor, h * one, w * one),
        )
        stride_m, stride_n = torch.where(xmajor, one, w * one), torch.where(xmajor, w * one, one)
        reach = self.seg_reach
        start = torch.minimum(
            torch.ceil((torch.minimum(am, am + dm) - reach).clamp(min=0.0)), size_m - 1
        )
        stop = torch.minimum(torch.floor(torch.maximum(am, am + dm) + reach), size_m - 1)
        count = torch.where(visible, stop - start + 1, torch.zeros_like(start)).clamp(min=0.0)
        # The host sync: columns each edge needs at most over the batch.
        steps = [int(v) for v in count.amax(dim=1).tolist()]
        if sum(steps) == 0:
            return None
        length2 = dm * dm + dn * dn
        inv_len2 = torch.where(length2 > 1e-12, 1.0 / length2.clamp(min=1e-12), 0.0 * one)
        inv_dm = torch.where(dm.abs() > 1e-12, 1.0 / torch.where(dm == 0, one, dm), 0.0 * one)
        frac_a = self._depth_fraction(da)
        frac_d = self._depth_fraction(db) - frac_a
        bright_a, bright_b = self._brightness255(da, visible)
        per_edge = torch.stack(  # (E, 15, B): all per-edge values, repeated at once later
            [
                am,
                an,
                dm,
                dn,
                size_m - 1,
                size_n - self.seg_rows,
                stride_m,
                stride_n,
                start,
                inv_len2,
                inv_dm,
                frac_a,
                frac_d,
                bright_a,
                bright_b,
            ],
            dim=1,
        )
        return steps, per_edge

    def _segment_pixels(
        self,
        steps: list[int],
        per_edge: torch.Tensor,
        c: dict[str, torch.Tensor],
        index_out: torch.Tensor,
        keys_out: torch.Tensor,
    ) -> None:
        """Write the pixel indices and keys of every segment candidate (float, (S * R, B)).

        The large (S, R, B) per-pixel values are computed in place in reused workspaces.
        """
        dev, dtype = per_edge.device, per_edge.dtype
        total = sum(steps)
        batch = per_edge.shape[-1]
        edge_idx = np.repeat(np.arange(self.num_edges), steps)  # (S,) edge of each column
        edge_of = torch.as_tensor(edge_idx, device=dev, dtype=dtype)
        column = np.concatenate([np.arange(s) for s in steps])  # (S,) column within its edge
        k = torch.as_tensor(column, device=dev, dtype=dtype).unsqueeze(1)
        rep = torch.index_select(  # edge e's values for each of its columns: (S, 15, B)
            per_edge,
            0,
            torch.as_tensor(edge_idx, device=dev),
            out=self._workspace_tensor("a", (total, 15, batch), dtype, dev),
        )
        (
            am,
            an,
            dm,
            dn,
            last_m,
            last_r0,
            stride_m,
            stride_n,
            start,
            inv_len2,
            inv_dm,
            frac_a,
            frac_d,
            bright_a,
            bright_b,
        ) = rep.unbind(1)  # each (S, B)
        reach = self.seg_reach
        # Per column (S, B), each into a row of one reused workspace (same ops as plain torch
        # expressions, so the same bits).
        col = self._workspace_tensor("b", (12, total, batch), dtype, dev)
        m = torch.add(start, k, out=col[0])
        torch.minimum(m, last_m, out=m)  # major coordinate of the column
        pm = torch.sub(m, am, out=col[1])
        t_col = torch.mul(pm, inv_dm, out=col[2]).clamp_(0.0, 1.0)  # segment param. (clamped)
        r0 = torch.addcmul(an, t_col, dn, out=col[3])  # band centre, on the segment...
        r0.sub_(reach * math.sqrt(2)).ceil_().clamp_(min=0.0)
        torch.minimum(r0, last_r0, out=r0)  # ... -> the band's first row
        pn0 = torch.sub(r0, an, out=col[4])
        # 255 * brightness at the column's depth (the depth cue varies slowly along a segment).
        bright = torch.addcmul(frac_a, t_col, frac_d, out=col[5])
        bright.clamp_(0.0, 1.0).mul_(bright_b).add_(bright_a)
        base_t = torch.mul(pm, dm, out=col[6]).add_(torch.mul(pn0, dn, out=col[7]))
        base_t.mul_(inv_len2)  # t at the band's first row
        step_t = torch.mul(dn, inv_len2, out=col[7])  # t per row
        neg_dm, neg_dn = torch.neg(dm, out=col[8]), torch.neg(dn, out=col[9])
        first = torch.mul(m, stride_m, out=col[10]).add_(torch.mul(r0, stride_n, out=col[11]))
        rows = c["rows"]  # (R, 1)
        shape = (total, self.seg_rows, batch)

        def ws(name: str) -> torch.Tensor:
            return self._workspace_tensor(name, shape, dtype, dev)

        # Per pixel (S, R, B): projection t on the segment, clamped; distance vector (em, en).
        t = torch.addcmul(base_t[:, None], rows, step_t[:, None], out=ws("c"))
        t.clamp_(0.0, 1.0)
        em = torch.addcmul(pm[:, None], t, neg_dm[:, None], out=ws("d"))
        en = torch.add(pn0[:, None], rows, out=ws("e")).addcmul_(t, neg_dn[:, None])
        dist = em.mul_(em).addcmul_(en, en).sqrt_()
        # level = round(clamp(reach - dist, 0, 1) * bright), in place over dist.
        level = dist.neg_().add_(reach).clamp_(0.0, 1.0).mul_(bright[:, None]).round_()
        torch.add(edge_of[:, None, None], level, alpha=self.num_colors, out=keys_out.view(shape))
        torch.addcmul(first[:, None], rows, stride_n[:, None], out=index_out.view(shape))

    def _dots(
        self,
        ux: torch.Tensor,
        uy: torch.Tensor,
        dep: torch.Tensor,
        c: dict[str, torch.Tensor],
        *,
        index_out: torch.Tensor,
        keys_out: torch.Tensor,
    ) -> None:
        """Write the pixel indices and keys of every dot candidate (float, (`_dot_count`, B)),
        group after group (by stencil size)."""
        visible = dep > MIN_DEPTH_M  # (K, B)
        frac = self._depth_fraction(dep).clamp(0.0, 1.0)
        bright_a, bright_b = self._brightness255(dep, visible)
        bright = bright_a + bright_b * frac  # (K, B), 255 * brightness
        first = 0
        for g, (size, ks) in enumerate(self.dot_groups):
            sel = c[f"dot_sel{g}"]
            cx, cy, reach = ux[sel], uy[sel], c["dot_reach"][sel][:, None]  # (G, B)
            stencil = c[f"stencil{g}"]  # (D, 1)
            x0 = torch.ceil(cx - reach).clamp_(min=0.0).clamp_(max=float(self.width - size))
            y0 = torch.ceil(cy - reach).clamp_(min=0.0).clamp_(max=float(self.height - size))
            ddx = (x0 - cx)[:, None] + stencil  # (G, D, B)
            ddy = (y0 - cy)[:, None] + stencil
            shape = (len(ks), size, size, cx.shape[-1])  # (G, Dy, Dx, B)
            d2 = torch.add(
                (ddy * ddy)[:, :, None],
                (ddx * ddx)[:, None],
                out=self._workspace_tensor("cd"[g % 2], shape, cx.dtype, cx.device),
            )
            # coverage = clamp(reach - distance, 0, 1), in place over d2.
            cov = d2.sqrt_().neg_().add_(reach[:, None, None]).clamp_(0.0, 1.0)
            # Dot interiors (coverage >= 0.5) of visible dots outrank segments (module doc).
            prio = c["dot_prio"][sel][:, None] * visible[sel]  # (G, B)
            stop = first + len(ks) * size * size
            keys = keys_out[first:stop].view(shape)
            torch.ge(cov, 0.5, out=keys).mul_(prio[:, None, None])
            level = cov.mul_(bright[sel][:, None, None]).round_()
            keys.add_(level, alpha=self.num_colors).add_(c["dot_ids"][sel][:, None, None, None])
            row = (y0[:, None] + stencil) * self.width  # (G, D, B)
            torch.add(
                row[:, :, None],
                (x0[:, None] + stencil)[:, None],
                out=index_out[first:stop].view(shape),
            )
            first = stop

    def key_map(self, uv: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        """(B, h*w) int16 (int32 for big skeletons) keys, module doc. A reused workspace: valid
        until the next call."""
        return self.draw(uv, depth)[0]

    def draw(self, uv: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The key map (as `key_map`) and the (B, N) int64 pixel indices of every candidate.

        Every pixel with a non-zero key is among its image's candidates (a pixel may be listed
        more than once), so `decode` need only write there. Both are reused workspaces: valid
        until the next call.
        """
        batch = uv.shape[0]
        work = uv.float() if uv.dtype in (torch.float16, torch.bfloat16) else uv
        dep = depth.to(work.dtype)
        dev, dtype = work.device, work.dtype
        c = self._consts(dev, dtype)
        # Non-finite points are not drawn: park them behind the camera.
        finite = torch.isfinite(work).all(-1) & torch.isfinite(dep)
        work = torch.where(finite[..., None], work, torch.zeros_like(work))
        dep = torch.where(finite, dep, torch.zeros_like(dep))
        ux, uy = work[..., 0].t().contiguous(), work[..., 1].t().contiguous()  # (K, B)
        dep = dep.t().contiguous()
        seg = self._segment_columns(ux, uy, dep, c)
        n_seg = sum(seg[0]) * self.seg_rows if seg is not None else 0
        count = n_seg + self._dot_count
        small = self._workspace(batch, uv.device)
        small.zero_()
        if count == 0:
            return small, torch.zeros((batch, 0), dtype=torch.int64, device=uv.device)
        # Every candidate writes its (float) pixel index and key straight into these (N, B)
        # workspaces: segments first, then the dots.
        index_f = self._workspace_tensor("f", (count, batch), dtype, dev)
        keys_f = self._workspace_tensor("g", (count, batch), dtype, dev)
        if seg is not None:
            self._segment_pixels(*seg, c, index_f[:n_seg], keys_f[:n_seg])
        self._dots(ux, uy, dep, c, index_out=index_f[n_seg:], keys_out=keys_f[n_seg:])
        # (N, B) float candidates -> (B, N) integers. A transposing copy is the slow part (torch
        # does it on one thread, fast only without a dtype change), so each candidate's key and
        # pixel index are narrowed into one (key, index) pair (two int16 for 64x64 prompts:
        # exact, they are integers below 2**15) and the pairs are transposed at once, as int32
        # (int64); then the index is widened to the int64 that scatter/gather want.
        pairs = self._workspace_tensor("a", (count, batch, 2), self._pair_dtype, dev)
        pairs[..., 0].copy_(keys_f)
        pairs[..., 1].copy_(index_f)
        pair_as_one = torch.int32 if self._pair_dtype == torch.int16 else torch.int64
        pairs_t = self._workspace_tensor("c", (batch, count), pair_as_one, dev)
        pairs_t.copy_(pairs.view(pair_as_one).view(count, batch).t())
        pairs_t = pairs_t.view(self._pair_dtype).view(batch, count, 2)  # (B, N, (key, index))
        keys = pairs_t[..., 0]
        if keys.dtype != small.dtype:
            keys = self._workspace_tensor("d", (batch, count), small.dtype, dev).copy_(keys)
        index = self._workspace_tensor("index", (batch, count), torch.int64, dev)
        index.copy_(pairs_t[..., 1])
        # Invalid candidates never exist: indices are clamped into the image and a candidate
        # with zero coverage has level 0, which decodes to black.
        small.scatter_reduce_(1, index, keys, "amax")
        return small, index

    def _workspace(self, batch: int, device: torch.device) -> torch.Tensor:
        """The (B, h*w) key map, reused across calls (int16: 16 MB for 2048 64x64 images, so
        the scatter stays in cache)."""
        shape = (batch, self.height * self.width)
        if self._keys is None or self._keys.shape != shape or self._keys.device != device:
            self._keys = torch.zeros(shape, dtype=self.key_dtype, device=device)
        return self._keys

    def __call__(
        self,
        uv: torch.Tensor,
        depth: torch.Tensor,
        out: torch.Tensor | None = None,
        dtype: torch.dtype | None = None,
        alpha: bool = False,
    ) -> torch.Tensor:
        """Rasterise projected skeletons.

        Args:
            uv: (B, K, 2) keypoint pixel coordinates (OpenCV convention), float.
            depth: (B, K) keypoint depths along the optical axis, metres; points within 1 mm of
                the camera plane or behind it, or non-finite, are not drawn, nor are the
                segments they end.
            out: optional contiguous (B, C', h, w) tensor on uv's device to write into (C' = C,
                or C + 1 with `alpha`); reusing one across calls saves allocating (and, on CPU,
                page-faulting) a large buffer every call.
            dtype: output dtype when `out` is not given; default uv's dtype.
            alpha: also return the coverage (times brightness) as a last channel, for overlays.
        Returns:
            (B, C', h, w) images in [0, 1], colours premultiplied by coverage and brightness
            (`out` when given).
        """
        if uv.ndim != 3 or uv.shape[-1] != 2 or depth.shape != uv.shape[:2]:
            raise ValueError(
                f"need uv (B, K, 2) and depth (B, K); got {tuple(uv.shape)}, {tuple(depth.shape)}"
            )
        batch = uv.shape[0]
        channels = self.channels + int(alpha)
        shape = (batch, channels, self.height, self.width)
        if out is None:
            out = torch.empty(shape, dtype=dtype or uv.dtype, device=uv.device)
        elif tuple(out.shape) != shape or out.device != uv.device or not out.is_contiguous():
            raise ValueError(
                f"out must be a contiguous {shape} tensor on {uv.device}; got "
                f"{tuple(out.shape)} on {out.device}"
            )
        keys, index = self.draw(uv, depth)
        return self.decode(keys, index, out, alpha)

    def decode(
        self, keys: torch.Tensor, index: torch.Tensor, out: torch.Tensor, alpha: bool = False
    ) -> torch.Tensor:
        """Colours of a key map: (B, h*w) integer keys -> `out` (B, C (+ 1), h, w).

        out[b, c, p] = table[c, keys[b, p]] at the candidate pixels p = index[b, :] (`draw`),
        zero elsewhere: every other pixel has key 0, which decodes to black. About 6% of the
        pixels of a typical prompt are drawn, so zeroing `out` and writing ~N pixels per image
        costs far less than gathering a colour for all h*w (2-3x on CPU). On CPU the zeroing and
        the writes go in blocks of images that fit in cache, so `out` streams through memory
        once. Duplicate candidates write the same value, so the result is order-free.
        """
        batch, channels, pixels = out.shape[0], self.channels + int(alpha), keys.shape[1]
        table = self._table(out.device, out.dtype)  # (C + 1, T): colours, then alpha
        if not alpha:
            table = table[: self.channels]
        flat = out.view(batch, channels, pixels)
        count = index.shape[1]
        # Colour of each candidate from its pixel's final key: (B, C', N), a permuted view.
        # (All in reused workspaces: fresh ones would be page-faulted in on every call.)
        dev = out.device
        drawn16 = torch.gather(
            keys, 1, index, out=self._workspace_tensor("a", index.shape, keys.dtype, dev)
        )
        drawn = self._workspace_tensor("b", (1, batch * count), torch.int64, dev)
        drawn.view(batch, count).copy_(drawn16)  # (1, B * N)
        values = torch.gather(
            table,
            1,
            drawn.expand(channels, -1),
            out=self._workspace_tensor("c", (channels, batch * count), out.dtype, dev),
        ).view(channels, batch, count)
        values = values.permute(1, 0, 2)
        block = batch
        if out.device.type == "cpu":
            block = max(1, _CPU_BLOCK_BYTES // (channels * pixels * out.element_size()))
        for start in range(0, batch, block):  # cache blocking: a few blocks, not per item
            stop = min(start + block, batch)
            part = flat[start:stop].zero_()
            part.scatter_(2, index[start:stop, None].expand(-1, channels, -1), values[start:stop])
        return out
