"""Visual action prompts: robot poses drawn as skeleton images, batched in torch.

from wm_ros.prompts import PromptRenderer
renderer = PromptRenderer(urdf, camera, PromptConfig(), device)
prompts = renderer.render(joints)          # (N, H, J) -> (N, H, C, h, w) in [0, 1]
picture = renderer.overlay(image, joints)  # (H, W, 3) uint8 with the skeleton drawn over it
"""

from wm_ros.prompts.alignment import dilate, measure_alignment
from wm_ros.prompts.overlay import (
    overlay_panel,
    prompt_to_uint8,
    sim_prompt_renderer,
    write_overlay_frames,
)
from wm_ros.prompts.raster import RasterStyle, SkeletonRasterizer
from wm_ros.prompts.renderer import PromptRenderer

__all__ = [
    "PromptRenderer",
    "RasterStyle",
    "SkeletonRasterizer",
    "dilate",
    "measure_alignment",
    "overlay_panel",
    "prompt_to_uint8",
    "sim_prompt_renderer",
    "write_overlay_frames",
]
