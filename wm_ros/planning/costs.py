"""Planning costs, batched over candidates: (N, ...) -> (N,), lower is better.

The weights are CostConfig's; `plan_cost` adds the terms up. Latents are the world model's
normalised latents, so the goal distances are in units of latent variance.
"""

from __future__ import annotations

import torch

from wm_ros.config import CostConfig


def latent_goal_cost(
    latents: torch.Tensor, goal: torch.Tensor, final_w: float, all_w: float
) -> torch.Tensor:
    """latents (N, H, c, h, w), goal (c, h, w) -> (N,): final-step and all-step mean squared
    distance to the goal, weighted."""
    d = (latents - goal[None, None]).pow(2).flatten(2).mean(dim=2)  # (N, H)
    return final_w * d[:, -1] + all_w * d.mean(dim=1)


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
) -> torch.Tensor:
    """The weighted sum of every term that has its inputs; (N,)."""
    cost = cfg.smoothness * smoothness_cost(targets, q0) + cfg.limit * clipped_by
    if latents is not None and goal_latent is not None:
        cost = cost + latent_goal_cost(latents, goal_latent, cfg.goal_final, cfg.goal_all)
    if goal_joints is not None and cfg.joint_goal > 0:
        final = targets[:, -1]
        cost = cost + cfg.joint_goal * (final - goal_joints.to(final)).pow(2).sum(dim=1)
    return cost
