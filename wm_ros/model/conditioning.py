"""The world model's action conditioning, made from commanded joint targets.

One copy, shared by training (wm_ros.train) and evaluation (wm_ros.eval.predict): what the
adapter sees at test time must be drawn exactly as it was during training.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wm_ros.config import ModelConfig


def model_prompt_renderer(cfg: ModelConfig, device: str | torch.device = "cpu"):
    """A wm_ros.prompts.PromptRenderer of the simulator's arm and camera at the model's image
    size and prompt channels (the default when the data came from wm_ros.sim)."""
    from wm_ros.config import PromptConfig, SimConfig
    from wm_ros.prompts import sim_prompt_renderer
    from wm_ros.sim import TabletopSim

    s = cfg.image_size
    with TabletopSim(SimConfig(image_width=s, image_height=s)) as sim:
        pcfg = PromptConfig(image_width=s, image_height=s, channels=cfg.prompt_channels)
        return sim_prompt_renderer(sim, pcfg, device=str(device))


def action_conditioning(
    actions: np.ndarray | torch.Tensor,
    cfg: ModelConfig,
    *,
    renderer=None,
    joint_names: Sequence[str] = (),
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Future joint targets (B, H, J), rad -> the model's conditioning.

    Args:
        actions: the targets leading to each future frame (wm_ros.data.windows).
        cfg: the model's config; `cfg.conditioning` picks the form.
        renderer: a PromptRenderer (needed for "prompt" conditioning).
        joint_names: the names of the action columns; when given, columns are reordered to the
            renderer's joint order (episodes keep the order they were recorded in).
        device: where the result lives.
    Returns:
        "prompt": skeleton prompts (B, H, C, S, S) in [0, 1]; "joints" / "none": the actions as
        a float32 tensor (B, H, J) (an action-free model ignores them).
    """
    a = torch.as_tensor(actions, dtype=torch.float32, device=device)
    if cfg.conditioning != "prompt":
        return a
    if renderer is None:
        raise ValueError("prompt conditioning needs a PromptRenderer")
    if joint_names:
        a = a[..., torch.as_tensor(renderer.joint_order(joint_names), device=a.device)]
    return renderer.render(a).to(device)
