"""Frame autoencoder: (B, 3, S, S) images in [0, 1] <-> (B, c, S/4, S/4) latent grids.

A plain conv encoder/decoder (two stride-2 stages), deterministic, trained by reconstruction
(see wm_ros.train). Latents are normalised per channel by statistics measured on the training
data after the autoencoder is trained (`latent_mean`, `latent_std` buffers, saved with the
weights), so the flow model works on roughly unit-variance latents.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def to_float_images(frames: np.ndarray | torch.Tensor, device=None) -> torch.Tensor:
    """(..., S, S, 3) uint8 frames -> (..., 3, S, S) float32 in [0, 1] on `device`: the
    autoencoder's input convention (camera images are HWC uint8)."""
    if not isinstance(frames, torch.Tensor):
        frames = np.asarray(frames)
        if not frames.flags.writeable:  # e.g. a task's frozen goal image; torch wants writable
            frames = frames.copy()
    return torch.as_tensor(frames, device=device).movedim(-1, -3).float() / 255.0


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(..., 3, S, S) floats in [0, 1] -> (..., S, S, 3) uint8 numpy (the inverse)."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class FrameAutoencoder(nn.Module):
    """Conv autoencoder to a latent grid 4x smaller per side.

    Args:
        latent_channels: c, channels of a latent cell.
        width: channels of the first stage (doubled at each downsampling).
    """

    def __init__(self, latent_channels: int = 4, width: int = 32) -> None:
        super().__init__()
        w1, w2 = width, 2 * width
        self.encoder = nn.Sequential(
            _block(3, w1),
            nn.Conv2d(w1, w1, 4, stride=2, padding=1),  # S/2
            _block(w1, w2),
            nn.Conv2d(w2, w2, 4, stride=2, padding=1),  # S/4
            _block(w2, w2),
            nn.Conv2d(w2, latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, w2, 3, padding=1),
            _block(w2, w2),
            nn.Upsample(scale_factor=2, mode="nearest"),  # S/2
            _block(w2, w1),
            nn.Upsample(scale_factor=2, mode="nearest"),  # S
            _block(w1, w1),
            nn.Conv2d(w1, 3, 3, padding=1),
        )
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))

    def encode_raw(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, c, S/4, S/4) un-normalised latents."""
        return self.encoder(images * 2.0 - 1.0)

    def decode_raw(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, c, S/4, S/4) un-normalised latents -> (B, 3, S, S) logits-free images (~[0, 1])."""
        return self.decoder(latents) * 0.5 + 0.5

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents (B, c, h, w) -> unit-variance latents."""
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) images in [0, 1] -> (B, c, S/4, S/4) normalised latents."""
        return self.normalise(self.encode_raw(images))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, c, S/4, S/4) normalised latents -> (B, 3, S, S) images clamped to [0, 1]."""
        return self.decode_raw(self.denormalise(latents)).clamp(0.0, 1.0)

    @torch.no_grad()
    def set_latent_stats(self, raw_latents: torch.Tensor) -> None:
        """Set the normalisation from raw latents (B, c, h, w) of training frames."""
        self.latent_mean.copy_(raw_latents.mean(dim=(0, 2, 3)))
        self.latent_std.copy_(raw_latents.std(dim=(0, 2, 3)).clamp_min(1e-3))
