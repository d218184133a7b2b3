"""Frame strips, grids and GIFs for reports (uint8 RGB numpy in, PNG/GIF out)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LABEL_HEIGHT = 12  # px of caption band above each tile


def upscale(frame: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscale of an (H, W, 3) image by an integer factor (keeps pixels crisp)."""
    if factor < 1:
        raise ValueError(f"upscale factor must be >= 1, got {factor}")
    return np.repeat(np.repeat(frame, factor, axis=0), factor, axis=1)


def labelled_tile(frame: np.ndarray, label: str, scale: int = 2) -> np.ndarray:
    """An upscaled frame with a caption band above it: (LABEL_HEIGHT + s*H, s*W, 3) uint8."""
    big = upscale(np.asarray(frame, dtype=np.uint8), scale)
    band = Image.new("RGB", (big.shape[1], LABEL_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(band).text((2, 0), label, fill=(0, 0, 0))
    return np.concatenate([np.asarray(band), big], axis=0)


def grid(rows: Sequence[Sequence[np.ndarray]], gap: int = 2) -> np.ndarray:
    """Tiles (all the same size) laid out in rows, white gaps between: (R*h, C*w, 3) uint8.

    Short rows are padded with white tiles.
    """
    if not rows or not rows[0]:
        raise ValueError("grid needs at least one tile")
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + gap) - gap, cols * (w + gap) - gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile.shape[:2] != (h, w):
                raise ValueError(f"tile {r},{c} is {tile.shape[:2]}, expected {(h, w)}")
            out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = tile
    return out


def save_png(image: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
    return path


def save_gif(frames: Sequence[np.ndarray], path: Path, fps: float = 10.0) -> Path:
    """An animated GIF that loops forever."""
    if not frames:
        raise ValueError("a GIF needs at least one frame")
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    images[0].save(
        path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
    )
    return path
