"""Action parameterisation: CEM parameters (P knots x D selected joints) <-> joint targets.

A knot is an offset from the current pose q0 of the selected joints at one future step; the
targets of the H control steps interpolate linearly from q0 (at step 0) through the knots
(knot k at step round((k + 1) * H / P)). Joints not selected hold their current position.
Limits are respected inside the sampling (`project`): every knot stays within the joint's
position limits, and consecutive knots (q0 first) within velocity limit x time between them, so
linear interpolation keeps every step within both. `check` verifies the targets again before a
plan is published.
"""

from __future__ import annotations

import numpy as np
import torch

from wm_ros.planning.cem import shift


class JointDeltaActions:
    """Knots of joint offsets for a subset of joints.

    Args:
        joint_names: all actuated joints, the column order of (..., J) targets.
        lower, upper, velocity: (J,) position limits (rad) and velocity limits (rad/s).
        horizon: H control steps; dt: seconds per step.
        knots: P knots (0 or H: one per step).
        joints: names of the joints the planner moves (empty: all).
        device: where the tensors live.
    Raises:
        ValueError: unknown joint names, knots outside 1..H, bad limits.
    """

    def __init__(
        self,
        joint_names: tuple[str, ...] | list[str],
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        *,
        horizon: int,
        dt: float,
        knots: int = 0,
        joints: tuple[str, ...] | list[str] = (),
        device: str | torch.device = "cpu",
    ) -> None:
        self.joint_names = tuple(joint_names)
        j = len(self.joint_names)
        if not (len(lower) == len(upper) == len(velocity) == j):
            raise ValueError(f"limits must have one entry per joint ({j})")
        if np.any(np.asarray(lower) > np.asarray(upper)) or np.any(np.asarray(velocity) <= 0):
            raise ValueError("need lower <= upper and positive velocity limits")
        if horizon <= 0 or dt <= 0:
            raise ValueError("horizon and dt must be positive")
        knots = knots or horizon
        if not 1 <= knots <= horizon:
            raise ValueError(f"knots must be within 1..{horizon}, got {knots}")
        unknown = [n for n in joints if n not in self.joint_names]
        if unknown:
            raise ValueError(f"unknown joints {unknown}; the robot has {list(self.joint_names)}")
        names = tuple(joints) or self.joint_names
        self.selected = torch.as_tensor(
            [self.joint_names.index(n) for n in names], dtype=torch.long, device=device
        )
        self.horizon, self.dt, self.knots = horizon, dt, knots
        f32 = {"dtype": torch.float32, "device": device}
        self.lower = torch.as_tensor(lower, **f32)
        self.upper = torch.as_tensor(upper, **f32)
        self.velocity = torch.as_tensor(velocity, **f32)
        # Knot k sits at step knot_steps[k] (1-based); step 0 is the current pose.
        steps = np.round((np.arange(knots) + 1) * horizon / knots).astype(int)
        self.knot_steps = torch.as_tensor(steps, device=device)
        gaps = np.diff(np.concatenate([[0], steps]))  # steps between consecutive knots
        self._max_step = torch.as_tensor(gaps, **f32)[:, None] * dt  # (P, 1) seconds
        # Interpolation weights (H, P + 1) from [q0, knots] to the H steps.
        w = np.zeros((horizon, knots + 1))
        at = np.concatenate([[0], steps])
        for h in range(1, horizon + 1):
            k = np.searchsorted(at, h)  # first knot at or after step h
            a, b = at[k - 1], at[k]
            w[h - 1, k] = (h - a) / (b - a)
            w[h - 1, k - 1] = 1.0 - w[h - 1, k]
        self._interp = torch.as_tensor(w, **f32)

    @property
    def shape(self) -> tuple[int, int]:
        """(P, D) of one candidate's parameters."""
        return (self.knots, len(self.selected))

    def _q0(self, q0: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(q0, dtype=torch.float32, device=self.lower.device)

    def project(self, params: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        """(N, P, D) raw offsets -> feasible offsets: within position limits, and each knot
        within velocity limit x elapsed time of the one before (q0 first)."""
        q0 = self._q0(q0)
        sel = self.selected
        lo, hi, vel, base = self.lower[sel], self.upper[sel], self.velocity[sel], q0[sel]
        out = torch.empty_like(params)
        prev = base.expand(params.shape[0], -1)  # (N, D)
        for k in range(self.knots):  # P <= H knots: a short loop of batched ops
            reach = vel * self._max_step[k]  # (D,)
            step = (params[:, k] + base - prev).clamp(-reach, reach)
            prev = torch.maximum(torch.minimum(prev + step, hi), lo)
            out[:, k] = prev - base
        return out

    def to_targets(self, params: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        """(N, P, D) offsets -> (N, H, J) joint targets of steps 1..H."""
        q0 = self._q0(q0)
        n = params.shape[0]
        knots = q0.expand(n, self.knots, -1).clone()  # (N, P, J)
        knots[:, :, self.selected] += params
        points = torch.cat([q0.expand(n, 1, -1), knots], dim=1)  # (N, P + 1, J)
        return torch.einsum("hp,npj->nhj", self._interp, points)

    def check(self, targets: torch.Tensor, q0: torch.Tensor, tol: float = 1e-5) -> list[str]:
        """Violations of (H, J) targets against the limits ([] when none), for the last check
        before publishing."""
        q0 = self._q0(q0)
        problems = []
        low = targets < self.lower - tol
        high = targets > self.upper + tol
        if bool(low.any() or high.any()):
            problems.append("position limit")
        steps = torch.diff(torch.cat([q0[None], targets]), dim=0).abs()  # (H, J)
        if bool((steps > self.velocity * self.dt + tol).any()):
            problems.append("velocity limit")
        if not bool(torch.isfinite(targets).all()):
            problems.append("non-finite target")
        return problems

    def warm_start(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        q_then: torch.Tensor,
        q_now: torch.Tensor,
        init_std: float,
        *,
        steps: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The previous plan's (P, D) mean, made at pose q_then, `steps` control steps later
        and re-expressed as offsets from the pose now; its std shifted the same way (knots
        past the old plan's end hold its last target with a fresh spread)."""
        steps = max(1, min(int(steps), self.horizon))
        targets = self.to_targets(mean[None], q_then)[0]  # (H, J) absolute
        later = torch.cat([targets[steps:], targets[-1:].expand(steps, -1)])  # the last holds
        at_knots = later[self.knot_steps - 1][:, self.selected]  # (P, D)
        new_mean = at_knots - self._q0(q_now)[self.selected]
        if self.knots == self.horizon:
            new_std = std
            for _ in range(steps):
                new_std = shift(mean, new_std, init_std)[1]
            return new_mean, new_std
        fresh = self.knot_steps > self.horizon - steps  # knots now beyond the old plan
        new_std = std.clone()
        new_std[fresh] = torch.clamp(new_std[fresh], min=init_std)
        return new_mean, new_std
