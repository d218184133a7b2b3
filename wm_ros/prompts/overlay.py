"""Overlays for people: the skeleton drawn over camera images, and a sheet of simulator frames.

`write_overlay_frames` is what `wm-ros sim --overlay` calls: K simulator poses, each saved as a
PNG of three panels at a readable upscale: the raw render, the skeleton over it, and the prompt
exactly as the world model sees it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from wm_ros.config import PromptConfig
from wm_ros.eval.images import save_png, upscale
from wm_ros.paths import ARM_URDF
from wm_ros.prompts.renderer import PromptRenderer

log = logging.getLogger(__name__)


def sim_prompt_renderer(
    sim: Any, cfg: PromptConfig | None = None, device: str = "cpu"
) -> PromptRenderer:
    """A PromptRenderer for a TabletopSim: its URDF and its camera."""
    urdf = Path(sim.cfg.urdf) if sim.cfg.urdf else ARM_URDF
    return PromptRenderer(urdf, sim.camera_model(), cfg, device=device)


def prompt_to_uint8(prompt: np.ndarray) -> np.ndarray:
    """(C, h, w) float prompt in [0, 1] -> (h, w, 3) uint8 RGB (grey prompts repeated)."""
    prompt = np.asarray(prompt, dtype=np.float32)
    rgb = np.repeat(prompt, 3, axis=0) if prompt.shape[0] == 1 else prompt[:3]
    return np.clip(np.round(rgb.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def overlay_panel(
    renderer: PromptRenderer, image: np.ndarray, joints: np.ndarray, factor: int = 4
) -> np.ndarray:
    """Three panels side by side, each upscaled by `factor`: the camera image, the skeleton
    drawn over it at the upscaled resolution, and the prompt the model sees. (h, 3 w, 3) uint8.
    """
    big = upscale(np.asarray(image, dtype=np.uint8), factor)
    over = renderer.overlay(big, joints)
    prompt = prompt_to_uint8(renderer.render(np.asarray(joints, dtype=np.float64)).cpu().numpy())
    prompt_big = np.asarray(
        Image.fromarray(prompt).resize((big.shape[1], big.shape[0]), Image.Resampling.NEAREST)
    )
    sheet = np.concatenate([big, over, prompt_big], axis=1)
    canvas = Image.fromarray(sheet)
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(("render", "skeleton overlay", "prompt")):
        draw.text((i * big.shape[1] + 4, 2), label, fill=(255, 255, 255))
    return np.asarray(canvas)


def write_overlay_frames(
    sim: Any,
    k: int,
    out_dir: str | Path,
    seed: int = 0,
    *,
    renderer: PromptRenderer | None = None,
    factor: int = 4,
) -> list[Path]:
    """Write K PNGs of the simulated arm in varied poses with its skeleton drawn over it.

    Pose i is the start pose of episode `seed + i` (`sim.reset(seed + i)`: seeded, varied,
    tool in view); the skeleton is drawn from the joint positions the simulator reports.

    Args:
        sim: a wm_ros.sim.TabletopSim (its episode is reset).
        k: number of frames.
        out_dir: folder to write `overlay_000.png`, ... into (created).
        seed: seed of the first pose.
        renderer: default: `sim_prompt_renderer(sim)`.
        factor: upscale of the 64x64 panels (nearest neighbour).
    Returns:
        The paths written.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    renderer = renderer if renderer is not None else sim_prompt_renderer(sim)
    order = renderer.joint_order(sim.joint_names)
    paths = []
    for i in range(k):
        sim.reset(seed + i)
        joints = sim.joint_positions()[order]
        sheet = overlay_panel(renderer, sim.render(), joints, factor)
        paths.append(save_png(sheet, out / f"overlay_{i:03d}.png"))
    log.info("wrote %d overlay frames to %s", k, out)
    return paths
