"""Building blocks of the denoisers: flow-time / step-size embedding, FiLM residual blocks and a
two-level conv U-Net over latent grids with optional feature injection points (ControlNet-style
zero-initialised additions, used by the adapter for its action conditioning)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal(x: torch.Tensor, dim: int, scale: float = 1000.0) -> torch.Tensor:
    """(N,) values in [0, 1] -> (N, dim) sin/cos features over geometric frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=x.device) / half)
    angles = (x.float() * scale)[:, None] * freqs[None]  # (N, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(x.dtype)


class TimeEmbedding(nn.Module):
    """Flow time t (N,) and step size d (N,) -> (N, dim)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(2 * dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([sinusoidal(t, self.dim), sinusoidal(d, self.dim)], dim=1))


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a layer's parameters: its output is 0 at initialisation, its gradients are not."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, with FiLM (scale, shift) from the embedding."""

    def __init__(self, channels: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * channels)
        self.norm2 = nn.GroupNorm(8, channels)
        self.conv2 = zero_module(nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.film(nn.functional.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return x + self.conv2(nn.functional.silu(h))


class LatentUNet(nn.Module):
    """Two-level U-Net over a latent grid: (N, c_in, h, w) -> (N, c_out, h, w).

    Frames are stacked along channels (the grids are small and H is fixed), so one 2D net sees
    the whole chunk at once. `injections` (two tensors, (N, w0, h, w) and (N, w1, h/2, w/2), or
    broadcastable ones) are added after the first block of each level.
    """

    def __init__(self, c_in: int, c_out: int, widths: tuple[int, ...], emb_dim: int) -> None:
        super().__init__()
        w0, w1 = widths
        self.stem = nn.Conv2d(c_in, w0, 3, padding=1)
        self.enc0 = nn.ModuleList([ResBlock(w0, emb_dim), ResBlock(w0, emb_dim)])
        self.down = nn.Conv2d(w0, w1, 3, stride=2, padding=1)
        self.enc1 = nn.ModuleList([ResBlock(w1, emb_dim), ResBlock(w1, emb_dim)])
        self.mid = ResBlock(w1, emb_dim)
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w1, w0, 3, padding=1)
        )
        self.merge = nn.Conv2d(2 * w0, w0, 1)
        self.dec0 = nn.ModuleList([ResBlock(w0, emb_dim), ResBlock(w0, emb_dim)])
        self.out_norm = nn.GroupNorm(8, w0)
        self.out = nn.Conv2d(w0, c_out, 3, padding=1)

    def features(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        injections: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(N, c_in, h, w) -> (N, w0, h, w) final features (before the output head)."""
        h0 = self.enc0[0](self.stem(x), emb)  # (N, w0, h, w)
        if injections is not None:
            h0 = h0 + injections[0]
        h0 = self.enc0[1](h0, emb)
        h1 = self.enc1[0](self.down(h0), emb)  # (N, w1, h/2, w/2)
        if injections is not None:
            h1 = h1 + injections[1]
        h1 = self.mid(self.enc1[1](h1, emb), emb)
        h = self.merge(torch.cat([self.up(h1), h0], dim=1))  # (N, w0, h, w)
        for block in self.dec0:
            h = block(h, emb)
        return nn.functional.silu(self.out_norm(h))

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        injections: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        return self.out(self.features(x, emb, injections))
