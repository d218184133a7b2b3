"""Action parameterisation: CEM parameters (P knots x D) <-> joint targets.

JointDeltaActions: D selected joints. ToolDeltaActions: D axes of the tool point, through
inverse kinematics (its class doc). Both share the knot layout, the limits and the checks.

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


def knot_steps(horizon: int, knots: int) -> np.ndarray:
    """(P,) the 1-based step each of P knots sits at, evenly over H steps; step 0 is the
    current pose."""
    return np.round((np.arange(knots) + 1) * horizon / knots).astype(int)


def knot_weights(horizon: int, knots: int) -> np.ndarray:
    """(H, P + 1) linear interpolation weights from [q0, knot 1..P] to the H steps."""
    w = np.zeros((horizon, knots + 1))
    at = np.concatenate([[0], knot_steps(horizon, knots)])
    for h in range(1, horizon + 1):
        k = np.searchsorted(at, h)  # first knot at or after step h
        a, b = at[k - 1], at[k]
        w[h - 1, k] = (h - a) / (b - a)
        w[h - 1, k - 1] = 1.0 - w[h - 1, k]
    return w


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
        steps = knot_steps(horizon, knots)
        self.knot_steps = torch.as_tensor(steps, device=device)
        gaps = np.diff(np.concatenate([[0], steps]))  # steps between consecutive knots
        self._max_step = torch.as_tensor(gaps, **f32)[:, None] * dt  # (P, 1) seconds
        self._interp = torch.as_tensor(knot_weights(horizon, knots), **f32)

    @property
    def shape(self) -> tuple[int, int]:
        """(P, D) of one candidate's parameters."""
        return (self.knots, len(self.selected))

    def _q0(self, q0: torch.Tensor) -> torch.Tensor:
        """The pose plans start from: q0, clamped into the position limits. Physics can push a
        joint a little past its limit (contact, soft limits); interpolating from there would
        put the first targets outside the limits, so the plan starts from the nearest pose
        within them."""
        q0 = torch.as_tensor(q0, dtype=torch.float32, device=self.lower.device)
        return torch.minimum(torch.maximum(q0, self.lower), self.upper)

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

    def knot_origin(self, q0: torch.Tensor) -> torch.Tensor:
        """(D,) what the parameters are offsets from at pose q0: the selected joints' values."""
        return self._q0(q0)[self.selected]

    def path(self, params: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        """(N, P, D) parameters -> (N, H, D) absolute values of the parameterised quantity at
        steps 1..H (here the selected joints' targets)."""
        return self.to_targets(params, q0)[..., self.selected]

    def offsets_of(self, targets: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        """(..., P, J) joint targets at the knot steps -> (..., P, D) parameters that reach them
        (how the learned prior's joint-space mean seeds a search)."""
        return (targets - self._q0(q0))[..., self.selected]

    def spread_of(self, std: torch.Tensor) -> torch.Tensor | None:
        """(..., P, J) joint-space spread at the knot steps -> (..., P, D) in parameter units,
        or None where it does not translate."""
        return std[..., self.selected]

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
        path = self.path(mean[None], q_then)[0]  # (H, D) absolute
        later = torch.cat([path[steps:], path[-1:].expand(steps, -1)])  # the last holds
        new_mean = later[self.knot_steps - 1] - self.knot_origin(q_now)  # (P, D)
        if self.knots == self.horizon:
            new_std = std
            for _ in range(steps):
                new_std = shift(mean, new_std, init_std)[1]
            return new_mean, new_std
        fresh = self.knot_steps > self.horizon - steps  # knots now beyond the old plan
        new_std = std.clone()
        new_std[fresh] = torch.clamp(new_std[fresh], min=init_std)
        return new_mean, new_std


AXES = {"x": 0, "y": 1, "z": 2}


class ToolDeltaActions(JointDeltaActions):
    """Knots of tool-point offsets (metres, along `axes` of the robot's base frame) turned
    into joint targets by inverse kinematics.

    Pushing and reaching are motions of the tool: in joint space a redundant arm spends much of
    a candidate's spread on motions that leave the tool where it is (half of it for the planar
    4-joint arm), so a search of the same size covers far fewer tool paths. The tool path of
    the H steps interpolates linearly from the current tool point through the knots; each step's
    joints come from `ik_iterations` damped-least-squares steps from the previous step's
    joints (Jacobian by finite differences of the batched forward kinematics: any URDF),
    clamped to the velocity limit x dt and the position limits after every step, so the targets
    always respect the limits; the minimum-norm step keeps the arm's redundant shape. Where a
    path cannot be followed within the limits, `project` returns the offsets the arm does reach
    (the planning cost's `limit` term charges the difference). The published plan is solved
    again from the best candidate's reached knots: where a limit bent the scored path between
    two knots, it may differ from it by that bend.

    Args:
        fk: forward kinematics of the robot (its joint_names are the targets' columns).
        lower, upper, velocity, horizon, dt, knots, device: as JointDeltaActions.
        tool_link, tool_offset: the tool point: tool_offset (3,) metres in tool_link's frame.
        axes: base-frame axes the knots move the tool along ("x", "y", "z").
        ik_iterations: damped-least-squares steps per control step.
        damping: of the least squares, metres.
    """

    def __init__(
        self,
        fk,
        lower: np.ndarray,
        upper: np.ndarray,
        velocity: np.ndarray,
        *,
        tool_link: str,
        tool_offset=(0.0, 0.0, 0.0),
        axes=("x", "y"),
        horizon: int,
        dt: float,
        knots: int = 0,
        ik_iterations: int = 2,
        damping: float = 0.01,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(
            fk.joint_names,
            lower,
            upper,
            velocity,
            horizon=horizon,
            dt=dt,
            knots=knots,
            device=device,
        )
        unknown = [a for a in axes if a not in AXES]
        if not axes or unknown or len(set(axes)) != len(axes):
            raise ValueError(f"tool axes must be distinct names among {list(AXES)}, got {axes}")
        if ik_iterations <= 0 or damping < 0:
            raise ValueError("need ik_iterations > 0 and damping >= 0")
        self.fk = fk
        self.tool_index = fk.link_index(tool_link)
        self.tool_offset = np.asarray(tool_offset, dtype=np.float64).reshape(1, 3)
        self.axes = torch.as_tensor([AXES[a] for a in axes], device=device)
        self.ik_iterations, self.damping = ik_iterations, damping
        self._projected: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.knots, len(self.axes))

    def tool_points(self, q: torch.Tensor) -> torch.Tensor:
        """(..., J) joints -> (..., D) tool point along the axes, metres."""
        return self.fk.points(q, [self.tool_index], self.tool_offset)[..., 0, self.axes]

    def knot_origin(self, q0: torch.Tensor) -> torch.Tensor:
        return self.tool_points(self._q0(q0))

    def path(self, params: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        """(N, P, D) offsets -> (N, H, D) the commanded tool path (before the arm's limits)."""
        p0 = self.knot_origin(q0)
        points = torch.cat([p0.expand(params.shape[0], 1, -1), params + p0], dim=1)
        return torch.einsum("hp,npd->nhd", self._interp, points)

    def offsets_of(self, targets: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        return self.tool_points(targets) - self.knot_origin(q0)

    def spread_of(self, std: torch.Tensor) -> None:
        """None: a spread of joint angles says nothing about the tool's (CEM's init_std holds)."""
        return None

    def _jacobian(self, q: torch.Tensor, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, J) -> tool points (N, D) and their Jacobian (N, D, J), by forward differences."""
        j = q.shape[-1]
        probes = torch.cat([q[:, None], q[:, None] + eps * torch.eye(j, device=q.device)], dim=1)
        pts = self.tool_points(probes)  # (N, J + 1, D)
        return pts[:, 0], ((pts[:, 1:] - pts[:, :1]) / eps).transpose(1, 2)

    def _solve(self, path: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        """(N, H, D) tool path -> (N, H, J) joint targets within the limits (class doc)."""
        n = path.shape[0]
        reach = self.velocity * self.dt
        eye = torch.eye(path.shape[-1], device=path.device) * self.damping**2
        prev = q0.expand(n, -1)
        out = []
        for h in range(self.horizon):  # H steps, each a few batched least-squares steps
            q = prev
            for _ in range(self.ik_iterations):
                point, jac = self._jacobian(q)
                err = path[:, h] - point  # (N, D)
                lam = torch.linalg.solve(jac @ jac.transpose(1, 2) + eye, err[..., None])
                q = q + (jac.transpose(1, 2) @ lam)[..., 0]
                q = torch.minimum(torch.maximum(q, prev - reach), prev + reach)
                q = torch.minimum(torch.maximum(q, self.lower), self.upper)
            out.append(q)
            prev = q
        return torch.stack(out, dim=1)

    def project(self, params: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        """(N, P, D) raw tool offsets -> the offsets the arm reaches at the knot steps within
        its limits; the joint targets are kept for the `to_targets` call that follows."""
        given, q0 = q0, self._q0(q0)
        targets = self._solve(self.path(params, q0), q0)
        reached = self.offsets_of(targets[:, self.knot_steps - 1], q0)
        self._projected = (reached, given, targets)
        return reached

    def to_targets(self, params: torch.Tensor, q0: torch.Tensor) -> torch.Tensor:
        """(N, P, D) offsets -> (N, H, J) joint targets of steps 1..H (those found by the last
        `project` when it returned these very offsets from the same pose)."""
        if self._projected is not None:
            reached, q_then, targets = self._projected
            if params is reached and q_then is q0:  # identity: no device sync in the loop
                return targets
        q0 = self._q0(q0)
        return self._solve(self.path(params, q0), q0)
