"""Flow matching (rectified flow) with shortcut step-size conditioning: stateless functions.

Convention: x_t = (1 - t) * noise + t * data, t in [0, 1]; the velocity is data - noise. A
velocity function is called as `velocity(x, t, d)` with x (N, ...), t (N,) and d (N,) the step
size it will be used with (d = 0: the instantaneous flow-matching velocity). Shortcut models
(Frans et al. 2024, "One Step Diffusion via Shortcut Models") train d = 1, 1/2, ..., 2**-L by
self-consistency, so 1, 2, 4, ... 2**L Euler steps land where the fine-step flow would.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N, 1, 1, ...) broadcastable against `like` (N, ...)."""
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def interpolate(noise: torch.Tensor, data: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) noise + t data; noise, data (N, ...), t (N,)."""
    tt = _per_sample(t, data)
    return (1.0 - tt) * noise + tt * data


def step_size_condition(steps: int, shortcut_levels: int) -> float:
    """The step size d the velocity is conditioned on when sampling with `steps` Euler steps:
    1 / steps when that size was trained (a power of two up to 2**shortcut_levels), else 0."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    trained = steps & (steps - 1) == 0 and steps <= 2**shortcut_levels
    return 1.0 / steps if trained else 0.0


def euler_integrate(
    velocity: Velocity, x0: torch.Tensor, steps: int, d_condition: float | None = None
) -> torch.Tensor:
    """Integrate dx/dt = velocity(x, t, d) from t = 0 to 1 in `steps` equal Euler steps.

    Args:
        velocity: the velocity function (module doc).
        x0: (N, ...) state at t = 0 (noise, when sampling).
        steps: number of steps; each has size d = 1 / steps.
        d_condition: step size passed to `velocity`; default d (use 0 for a plain flow model).
    Returns:
        (N, ...) state at t = 1.
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    d = 1.0 / steps
    n = x0.shape[0]
    dc = torch.full((n,), d if d_condition is None else d_condition, device=x0.device)
    x = x0
    for k in range(steps):
        t = torch.full((n,), k * d, device=x0.device, dtype=x0.dtype)
        x = x + d * velocity(x, t, dc.to(x0.dtype))
    return x


def sample(
    velocity: Velocity,
    shape: tuple[int, ...],
    steps: int,
    shortcut_levels: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    shared_noise: bool = False,
    noise_scale: float = 1.0,
) -> torch.Tensor:
    """Draw noise of `shape` from `generator` and integrate it to t = 1 (same seed, same sample).

    The step size is conditioned as `step_size_condition(steps, shortcut_levels)` says.
    shared_noise: one noise draw for every sample of the batch (common random numbers: a
    planner comparing candidates then sees differences due to the candidates alone).
    noise_scale: factor on the noise (a sampling temperature). 1 draws a sample of the learned
    distribution; 0 starts every sample at the noise's mean, a deterministic prediction near
    the distribution's centre (one step from there is the flow's conditional mean), which does
    not spend its error on a guessed outcome (README: what it does to the figures).
    """
    if noise_scale < 0:
        raise ValueError(f"noise_scale must be >= 0, got {noise_scale}")
    if shared_noise:
        one = torch.randn((1, *shape[1:]), generator=generator, device=device, dtype=dtype)
        noise = one.expand(shape)
    else:
        noise = torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if noise_scale != 1.0:
        noise = noise * noise_scale
    return euler_integrate(velocity, noise, steps, step_size_condition(steps, shortcut_levels))


def flow_matching_batch(
    noise: torch.Tensor, data: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Plain flow-matching training inputs: (x_t, t, d = 0, target velocity data - noise).

    noise, data: (N, ...); t ~ U[0, 1) per sample.
    """
    n = data.shape[0]
    t = torch.rand(n, generator=generator, device=data.device, dtype=data.dtype)
    return interpolate(noise, data, t), t, torch.zeros_like(t), data - noise


@torch.no_grad()
def shortcut_batch(
    velocity: Velocity,
    noise: torch.Tensor,
    data: torch.Tensor,
    shortcut_levels: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shortcut self-consistency training inputs: (x_t, t, d, target).

    For each sample a step size d = 2**-k (k uniform in 0..shortcut_levels) and a time t on the
    grid of d are drawn; the target is the mean velocity of two half steps of the current model,
    s(x_t, t, d) := (s(x_t, t, d/2) + s(x_t + d/2 s(x_t, t, d/2), t + d/2, d/2)) / 2. The half
    steps are queried with d/2, except below the smallest trained size, where d = 0 (the
    flow-matching velocity) is used. No gradients flow through the target.
    """
    n, dev, dt = data.shape[0], data.device, data.dtype
    k = torch.randint(0, shortcut_levels + 1, (n,), generator=generator, device=dev)
    d = torch.pow(2.0, -k.to(dt))  # (N,)
    slots = torch.floor(torch.rand(n, generator=generator, device=dev, dtype=dt) / d)
    t = slots * d  # (N,), t + d <= 1
    half = d / 2
    d_query = torch.where(k < shortcut_levels, half, torch.zeros_like(half))
    x_t = interpolate(noise, data, t)
    v1 = velocity(x_t, t, d_query)
    x_mid = x_t + _per_sample(half, x_t) * v1
    v2 = velocity(x_mid, t + half, d_query)
    return x_t, t, d, (v1 + v2) / 2
