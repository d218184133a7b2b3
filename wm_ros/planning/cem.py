"""The cross-entropy method over batched action parameters: a pure function of a cost callable.

    result = cem(cost, mean, std, CEMConfig(), project=actions.project, generator=g)

Parameters are (P, D) per candidate (e.g. P knots x D joints); the cost callable takes all N
candidates at once, (N, P, D) -> (N,), so the world model (or the simulator, for the oracle)
scores them in one batched call. `project` maps raw samples onto the feasible set (joint and
velocity limits) and is applied inside the sampling, so every candidate scored, and the plan
returned, is feasible; the distance a sample was moved is returned to the cost as a penalty
through `cost(samples, clipped_by)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from wm_ros.config import CEMConfig

Cost = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Project = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class CEMResult:
    """best (P, D): lowest-cost candidate seen; best_cost: its cost; mean, std (P, D): the
    final distribution (warm start of the next replan); history: best cost per iteration."""

    best: torch.Tensor
    best_cost: float
    mean: torch.Tensor
    std: torch.Tensor
    history: list[float]


def cem(
    cost: Cost,
    mean: torch.Tensor,
    std: torch.Tensor,
    cfg: CEMConfig,
    *,
    project: Project | None = None,
    generator: torch.Generator | None = None,
) -> CEMResult:
    """Minimise `cost` over (P, D) parameters starting from N(mean, std^2).

    Args:
        cost: (samples (N, P, D), clipped_by (N,) squared distance each raw sample was moved by
            `project`) -> (N,) costs; lower is better.
        mean, std: (P, D) initial distribution.
        cfg: samples, elites, iterations, std floor, momentum.
        project: raw samples (N, P, D) -> feasible samples (N, P, D); identity when None.
        generator: seeds the samples (same seed, same plan).
    """
    if mean.shape != std.shape or mean.ndim != 2:
        raise ValueError(f"mean and std must both be (P, D), got {mean.shape} and {std.shape}")
    n, k = cfg.num_samples, cfg.num_elites
    std = std.clamp_min(cfg.min_std)
    # The best so far stays on the device: no host sync inside the loop (one after it).
    best = mean.clone()
    best_cost = torch.full((), float("inf"), device=mean.device)
    history = []
    for _ in range(cfg.iterations):
        eps = torch.randn((n - 1, *mean.shape), generator=generator, device=mean.device)
        raw = torch.cat([mean[None], mean[None] + std[None] * eps])  # (N, P, D); mean first
        samples = raw if project is None else project(raw)
        clipped_by = (raw - samples).pow(2).flatten(1).sum(dim=1)  # (N,)
        costs = cost(samples, clipped_by)
        if costs.shape != (n,):
            raise ValueError(f"cost returned shape {tuple(costs.shape)}, expected ({n},)")
        costs = torch.nan_to_num(costs, nan=float("inf"))
        elite_cost, elite_idx = torch.topk(costs, k, largest=False)
        elites = samples[elite_idx]  # (k, P, D)
        best = torch.where(elite_cost[0] < best_cost, elites[0], best)
        best_cost = torch.minimum(best_cost, elite_cost[0])
        history.append(best_cost)
        m = cfg.momentum
        mean = m * mean + (1 - m) * elites.mean(dim=0)
        spread = elites.std(dim=0, unbiased=False) if k > 1 else torch.zeros_like(std)
        std = (m * std + (1 - m) * spread).clamp_min(cfg.min_std)
    history = torch.stack(history).tolist() if history else []
    best_cost = history[-1] if history else float("inf")
    return CEMResult(best=best, best_cost=best_cost, mean=mean, std=std, history=history)


def shift(mean: torch.Tensor, std: torch.Tensor, init_std: float) -> tuple[torch.Tensor, ...]:
    """Warm start: the previous (P, D) plan one knot later. The last knot repeats the previous
    last one and takes a fresh spread; the other knots keep theirs."""
    mean = torch.cat([mean[1:], mean[-1:]])
    std = torch.cat([std[1:], torch.full_like(std[-1:], init_std)])
    return mean, std
