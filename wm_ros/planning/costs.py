"""Planning costs, batched over candidates: (N, ...) -> (N,), lower is better.

The weights are CostConfig's; `plan_cost` adds the terms up. Latents are the world model's
normalised latents, so the goal distances are in units of latent variance.

The arm and the scene: in a whole-image distance the arm outweighs a pushed object about five
to one (on the simulator's push goals, matching the goal's arm pose with the puck left in place
removes 82% of the start's latent distance; moving the puck alone 18%). The simulator's push
goals therefore show the pusher against the puck where the push ended (TaskConfig.
push_goal_pose), so matching the arm is the push. With `pyramid` > 1, 2x2 and 4x4
average-pooled cells are compared too, so an object that misses its goal by a few cells still
costs less than one far away. With `robot_mask_px`, latent cells the robot covers (from its
skeleton, drawn like the visual action prompts: in each imagined step and, when known, in the
goal) drop out of the distance, to judge the scene alone; beware that a candidate can then hide
a difference under the arm. With `object_goal`, an object found by its colour in the decoded
final imagined frame is compared with its place in the goal image, in pixels: on the simulator's
pushes it helps the oracle rank candidates a lot and the learned model a little (README,
closed-loop push).
"""

from __future__ import annotations

import torch
from torch.nn import functional

from wm_ros.centroids import blob_centroid
from wm_ros.config import CostConfig

# An imagined frame without the object costs as if it were this far off, as a fraction of the
# image side (20 px at 64 px): more than most misses, so losing the object is never a way out.
OBJECT_MISSING_FRACTION = 20 / 64


def robot_cells(prompts: torch.Tensor, dilate_px: float, cells: tuple[int, int]) -> torch.Tensor:
    """Skeleton prompts (..., C, S, S) -> (..., h, w) bool: the latent cells (cells = (h, w))
    with a drawn pixel within dilate_px of them, i.e. where the robot's body may be."""
    lead, (ch, s1, s2) = prompts.shape[:-3], prompts.shape[-3:]
    drawn = (prompts.reshape(-1, ch, s1, s2) != 0).any(dim=1, keepdim=True).float()
    r = max(0, round(dilate_px))
    if r:
        drawn = functional.max_pool2d(drawn, 2 * r + 1, stride=1, padding=r)
    drawn = functional.adaptive_max_pool2d(drawn, cells)  # (B, 1, h, w)
    return drawn.reshape(*lead, *cells) > 0


def latent_goal_cost(
    latents: torch.Tensor,
    goal: torch.Tensor,
    final_w: float,
    all_w: float,
    *,
    masked: torch.Tensor | None = None,
    pyramid: int = 1,
) -> torch.Tensor:
    """latents (N, H, c, h, w), goal (c, h, w) -> (N,): final-step and all-step squared
    distance to the goal, weighted; per step the mean over latent cells (channels averaged),
    at `pyramid` scales averaged: the cells, then 2x2 and 4x4 average-pooled cells.
    masked: (N, H, h, w) bool cells left out (the robot's body); a pooled cell is left out when
    any of its cells is."""
    n, steps, c, h, w = latents.shape
    diff = (latents - goal[None, None]).reshape(n * steps, c, h, w)
    keep = None if masked is None else (~masked).reshape(n * steps, 1, h, w).to(latents.dtype)
    total = torch.zeros(n * steps, device=latents.device, dtype=latents.dtype)
    for level in range(pyramid):
        k = 2**level
        d = functional.avg_pool2d(diff, k) if k > 1 else diff
        err = d.pow(2).mean(dim=1)  # (N * H, h / k, w / k)
        if keep is None:
            total += err.flatten(1).mean(dim=1)
            continue
        kept = (-functional.max_pool2d(-keep, k) if k > 1 else keep)[:, 0]  # min-pool
        total += (err * kept).flatten(1).sum(dim=1) / kept.flatten(1).sum(dim=1).clamp_min(1)
    d = (total / pyramid).reshape(n, steps)  # (N, H)
    return final_w * d[:, -1] + all_w * d.mean(dim=1)


def object_centroid(images: torch.Tensor, cfg: CostConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, S, S) float images in [0, 1] -> ((N, 2) centroid (row, col) px, (N,) found): the
    densest blob of pixels within cfg.object_tolerance of cfg.object_rgb (NaN: none)."""
    rgb = torch.as_tensor(cfg.object_rgb, dtype=images.dtype, device=images.device)
    near = (images - rgb[:, None, None]).pow(2).sum(dim=-3).sqrt() < cfg.object_tolerance
    return blob_centroid(near, cfg.object_radius_px)


def object_goal_distance(
    images: torch.Tensor, goal_px: torch.Tensor, cfg: CostConfig
) -> torch.Tensor:
    """(N, 3, S, S) imagined final frames, the object's (2,) place in the goal image -> (N,)
    squared distance, px^2; a frame without the object costs OBJECT_MISSING_FRACTION of the
    side, squared."""
    centre, found = object_centroid(images, cfg)
    d2 = (centre - goal_px.to(centre)).pow(2).sum(dim=-1)
    missing = (OBJECT_MISSING_FRACTION * images.shape[-1]) ** 2
    return torch.where(found, d2, torch.full_like(d2, missing))


def smoothness_cost(targets: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
    """targets (N, H, J), q0 (J,) -> (N,) sum of squared second differences (q0 twice first:
    the arm starts at rest)."""
    start = q0.to(targets).expand(targets.shape[0], 2, -1)
    path = torch.cat([start, targets], dim=1)  # (N, H + 2, J)
    return (path[:, 2:] - 2 * path[:, 1:-1] + path[:, :-2]).pow(2).sum(dim=(1, 2))


def plan_cost(
    cfg: CostConfig,
    *,
    latents: torch.Tensor | None,
    goal_latent: torch.Tensor | None,
    targets: torch.Tensor,
    q0: torch.Tensor,
    clipped_by: torch.Tensor,
    goal_joints: torch.Tensor | None = None,
    masked: torch.Tensor | None = None,
    object_d2: torch.Tensor | None = None,
) -> torch.Tensor:
    """The weighted sum of every term that has its inputs; (N,). masked: (N, H, h, w) latent
    cells left out of the goal distance (robot_cells), or None. latents may hold only the last
    of the H steps (a rollout that imagines the final step alone) when goal_all is 0.
    object_d2: (N,) object_goal_distance of the imagined final frames, or None.

    Raises:
        ValueError: goal_all is on and latents lack steps.
    """
    cost = cfg.smoothness * smoothness_cost(targets, q0) + cfg.limit * clipped_by
    if latents is not None and goal_latent is not None:
        steps = latents.shape[1]
        if steps != targets.shape[1]:
            if cfg.goal_all > 0:
                raise ValueError(
                    f"goal_all needs all {targets.shape[1]} steps imagined, the rollout gave "
                    f"{steps}"
                )
            masked = None if masked is None else masked[:, -steps:]
        cost = cost + latent_goal_cost(
            latents,
            goal_latent,
            cfg.goal_final,
            cfg.goal_all,
            masked=masked,
            pyramid=cfg.pyramid,
        )
    if goal_joints is not None and cfg.joint_goal > 0:
        final = targets[:, -1]
        beyond = ((final - goal_joints.to(final)).abs() - cfg.joint_goal_margin).clamp_min(0)
        cost = cost + cfg.joint_goal * beyond.pow(2).sum(dim=1)
    if object_d2 is not None and cfg.object_goal > 0:
        cost = cost + cfg.object_goal * object_d2
    return cost
