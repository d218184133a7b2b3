"""How well skeleton prompts line up with what the simulator's camera sees.

Two figures over random arm configurations:

- keypoint reprojection error: every skeleton keypoint that has a symmetric visual centred on it
  (the hubs of the simulated arm, one per joint) is projected with FK + `project_points` and
  compared with the centroid of that visual's pixels in a segmentation render showing only that
  visual (so nothing occludes it); keypoints whose visual touches the image border are skipped;
- IoU of the skeleton's mask, dilated by `dilate_px`, with the arm's segmentation mask.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from wm_ros.prompts.renderer import PromptRenderer

_HIDDEN_GROUP = 5  # not drawn with the default MjvOption (groups 0-2 are)


def dilate(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Binary dilation of (B, h, w) bool masks by a (2p+1)^2 square."""
    if pixels <= 0:
        return mask
    m = torch.nn.functional.max_pool2d(mask[:, None].float(), 2 * pixels + 1, 1, pixels)
    return m[:, 0] > 0


def _marker_geoms(model: Any, renderer: PromptRenderer) -> list[tuple[int, int]]:
    """(keypoint index, geom id) pairs: a cylinder/sphere/box centred on a link-origin keypoint."""
    import mujoco

    shapes = {
        int(mujoco.mjtGeom.mjGEOM_CYLINDER),
        int(mujoco.mjtGeom.mjGEOM_SPHERE),
        int(mujoco.mjtGeom.mjGEOM_BOX),
    }
    pairs = []
    sk = renderer.skeleton
    for k, name in enumerate(sk.keypoint_names):
        if np.any(sk.keypoint_offsets[k] != 0):
            continue
        try:
            body = model.body(name).id
        except KeyError:
            continue
        for g in np.flatnonzero(model.geom_bodyid == body):
            if (
                int(model.geom_type[g]) in shapes
                and int(model.geom_group[g]) <= 2
                and np.allclose(model.geom_pos[g], 0.0, atol=1e-9)
            ):
                pairs.append((k, int(g)))
                break
    return pairs


def measure_alignment(
    sim: Any,
    renderer: PromptRenderer | None = None,
    configs: int = 200,
    seed: int = 0,
    dilate_px: int = 1,
) -> dict[str, Any]:
    """Reprojection error and mask IoU over `configs` uniform random joint configurations.

    The simulator's own state is saved and restored. Prompts are drawn at the simulator's image
    size (the renderer's PromptConfig size is used; make it match the simulator's).

    Returns:
        {"configs", "image_size", "keypoint_error_px": {"mean", "max", "count"},
         "iou": {"mean", "min", "dilate_px"}, "iou_undilated_mean"}
    """
    import mujoco

    from wm_ros.prompts.overlay import sim_prompt_renderer

    renderer = renderer if renderer is not None else sim_prompt_renderer(sim)
    width, height = sim.cfg.image_width, sim.cfg.image_height
    if (renderer.cfg.image_width, renderer.cfg.image_height) != (width, height):
        raise ValueError("the renderer's prompt size must match the simulator's image size")
    rng = np.random.default_rng(seed)
    limits = sim.joint_limits
    q_sim = rng.uniform(limits[:, 0], limits[:, 1], size=(configs, len(limits)))  # sim order
    q = torch.as_tensor(q_sim[:, renderer.joint_order(sim.joint_names)], dtype=torch.float64)

    # Isolated renders of each marker visual, on a copy of the model (the sim is untouched).
    model = copy.deepcopy(sim.model)
    data = mujoco.MjData(model)
    pairs = _marker_geoms(model, renderer)
    model.geom_group[:] = _HIDDEN_GROUP
    camera = 0 if model.ncam == 1 else "scene"  # the simulator's fixed camera
    uv, _ = project_points_for(renderer, q, sim.camera_model())
    errors = []
    gl = mujoco.Renderer(model, height=height, width=width)
    try:
        gl.enable_segmentation_rendering()
        for i in range(configs):
            data.qpos[sim.qpos_adr] = q_sim[i]
            mujoco.mj_forward(model, data)
            for k, g in pairs:
                model.geom_group[g] = 1
                gl.update_scene(data, camera=camera)
                seg = gl.render()
                model.geom_group[g] = _HIDDEN_GROUP
                mask = (seg[..., 0] == g) & (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM))
                if (
                    not mask.any()
                    or mask[0].any()
                    or mask[-1].any()
                    or mask[:, 0].any()
                    or mask[:, -1].any()
                ):
                    continue
                rows, cols = np.nonzero(mask)
                centroid = np.array([cols.mean(), rows.mean()])
                errors.append(float(np.linalg.norm(centroid - uv[i, k].numpy())))
    finally:
        gl.close()

    # IoU with the simulator's own arm segmentation.
    state = sim.get_state()
    prompts = renderer.render(q.to(renderer.dtype))  # (B, C, h, w)
    skeleton = prompts.amax(dim=1).cpu() > 0  # (B, h, w)
    arm = []
    try:
        for i in range(configs):
            sim.set_joint_positions(q_sim[i])
            arm.append(torch.as_tensor(sim.arm_mask()))
    finally:
        sim.set_state(state)
    arm_t = torch.stack(arm)

    def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        inter = (a & b).flatten(1).sum(1).double()
        union = (a | b).flatten(1).sum(1).double().clamp(min=1)
        return inter / union

    iou_d = iou(dilate(skeleton, dilate_px), arm_t)
    err = np.array(errors)
    return {
        "configs": configs,
        "seed": seed,
        "image_size": [width, height],
        "keypoint_error_px": {
            "mean": float(err.mean()) if err.size else float("nan"),
            "max": float(err.max()) if err.size else float("nan"),
            "count": int(err.size),
        },
        "iou": {"mean": float(iou_d.mean()), "min": float(iou_d.min()), "dilate_px": dilate_px},
        "iou_undilated_mean": float(iou(skeleton, arm_t).mean()),
    }


def project_points_for(
    renderer: PromptRenderer, joints: torch.Tensor, camera: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints of `joints` (..., J) projected through `camera` (float64, CPU)."""
    from wm_ros.camera import project_points

    sk = renderer.skeleton
    pts = renderer.fk.points(joints.to(torch.float64).cpu(), sk.keypoint_links, sk.keypoint_offsets)
    return project_points(pts, camera)
