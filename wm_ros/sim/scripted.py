"""Scripted policies that read the simulator's privileged state (no images).

They produce the tasks' goals, drive the demo until a learned planner exists, and give the random
baseline. Each policy is called once per control step and returns the (J,) joint position target
for that step:

    policy.reset(sim)
    for _ in range(steps):
        sim.step(policy(sim))

Tool-space motion goes through damped-least-squares inverse kinematics on the tool point (the
pusher tip) with `TabletopSim.tool_kinematics` (MuJoCo's body Jacobian); the arm is planar, so
only the x, y rows are used and the two spare degrees of freedom are pulled towards a rest pose.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from wm_ros.sim.simulator import TabletopSim
    from wm_ros.sim.tasks import Task

PUSHER_RADIUS = 0.012  # m, the URDF's tool rod
# Rest pose for the redundant joints: elbows bent one way, so IK keeps one consistent branch.
REST_BEND_RAD = 0.6


def contact_distance(sim: TabletopSim) -> float:
    """Puck centre to pusher tip at contact, metres (the sim's puck radius + PUSHER_RADIUS)."""
    return sim.puck_radius + PUSHER_RADIUS


class Policy(Protocol):
    """A controller: `reset` at the start of an episode, then one call per control step."""

    def reset(self, sim: TabletopSim) -> None: ...

    def __call__(self, sim: TabletopSim) -> np.ndarray: ...


def rate_limit(sim: TabletopSim, target: np.ndarray, speed_fraction: float) -> np.ndarray:
    """Move from the sim's current target towards `target` (J,) by at most
    `speed_fraction` x velocity limit x control_dt per joint; clipped to the joint limits."""
    current = sim.target()
    max_step = speed_fraction * sim.velocity_limits * sim.cfg.control_dt
    out = current + np.clip(np.asarray(target) - current, -max_step, max_step)
    return np.clip(out, sim.joint_limits[:, 0], sim.joint_limits[:, 1])


def solve_ik(
    sim: TabletopSim,
    target_xy: np.ndarray,
    q_init: np.ndarray,
    *,
    iters: int = 10,
    damping: float = 0.03,
    rest_gain: float = 0.05,
) -> np.ndarray:
    """Joint positions (J,) that put the tool point at `target_xy` (2,), metres.

    Damped least squares from `q_init`; the null space pulls joints 2.. towards a bent rest pose
    (joint 1 towards its current value). Unreachable targets give the closest pose found.
    """
    lo, hi = sim.joint_limits[:, 0], sim.joint_limits[:, 1]
    q = np.clip(np.asarray(q_init, dtype=np.float64).copy(), lo, hi)
    rest = np.full_like(q, REST_BEND_RAD)
    rest[0] = q[0]
    target_xy = np.asarray(target_xy, dtype=np.float64)
    eye = np.eye(len(q))
    for _ in range(iters):
        point, jac = sim.tool_kinematics(q)
        jac = jac[:2]  # (2, J): the arm moves in the plane
        err = target_xy - point[:2]
        jjt = jac @ jac.T
        dq = jac.T @ np.linalg.solve(jjt + damping**2 * np.eye(2), err)
        null = eye - np.linalg.pinv(jac) @ jac
        dq += null @ (rest_gain * (rest - q))
        q = np.clip(q + dq, lo, hi)
        if np.linalg.norm(err) < 2e-4:
            break
    return q


def _clip_norm(v: np.ndarray, max_norm: float) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v if n <= max_norm else v * (max_norm / n)


def _wrap(angle: float) -> float:
    return (angle + np.pi) % (2 * np.pi) - np.pi


class ReachController:
    """Joint-space motion to the goal pose at a fraction of the velocity limits.

    Args:
        goal_joints: (J,) goal joint positions, rad.
        speed_fraction: fraction of each joint's velocity limit to move at.
    """

    def __init__(self, goal_joints: np.ndarray, speed_fraction: float = 0.3) -> None:
        self.goal_joints = np.asarray(goal_joints, dtype=np.float64)
        self.speed_fraction = speed_fraction

    def reset(self, sim: TabletopSim) -> None:
        """Nothing to reset: the controller is stateless."""

    def __call__(self, sim: TabletopSim) -> np.ndarray:
        return rate_limit(sim, self.goal_joints, self.speed_fraction)


class PushController:
    """Pushes the puck to `goal_xy` with the pusher tip.

    Per control step, from the puck position p, the goal g and the push direction u = (g-p)/|g-p|:
    if the tip sits behind the puck on the line through p and g, it advances along u (steering
    through the contact point, which re-aims the push as the puck drifts); otherwise it
    re-approaches: it orbits the puck at a safe radius to the far side from the goal, then moves
    in to a staging point behind the puck. When the puck is within `done_tolerance_m` of the goal,
    the pusher backs away from the puck and holds, or (back_off=False) holds its tip where it is.

    Args:
        goal_xy: (2,) where the puck should end, metres.
        push_speed: tip speed while pushing, m/s.
        approach_speed: tip speed while approaching, m/s.
        done_tolerance_m: puck-to-goal distance at which pushing stops, metres.
        back_off: once done, back away to the orbit radius (else hold the tip still).
    """

    ORBIT_GAP = 0.045  # m beyond contact: the orbit radius round the puck centre
    STAGING_GAP = 0.02  # m beyond contact: the staging point behind the puck centre
    ALIGN_LATERAL = 0.012  # m: largest sideways offset from the push line to start pushing
    DRIFT_LATERAL = 0.02  # m: offset at which a push is abandoned and re-approached

    def __init__(
        self,
        goal_xy: np.ndarray,
        push_speed: float = 0.15,
        approach_speed: float = 0.4,
        done_tolerance_m: float = 0.01,
        back_off: bool = True,
    ) -> None:
        self.goal_xy = np.asarray(goal_xy, dtype=np.float64)[:2]
        self.push_speed = push_speed
        self.approach_speed = approach_speed
        self.done_tolerance_m = done_tolerance_m
        self.back_off = back_off
        self.pushing = False
        self.done = False

    def reset(self, sim: TabletopSim) -> None:
        """Start approaching afresh."""
        self.pushing = False
        self.done = False

    def tool_target(self, sim: TabletopSim) -> np.ndarray:
        """(2,) where the tip should go during this control step, metres."""
        dt = sim.cfg.control_dt
        contact_dist = contact_distance(sim)
        orbit = contact_dist + self.ORBIT_GAP
        p = sim.puck_position()[:2]
        t = sim.tool_position()[:2]
        to_goal = self.goal_xy - p
        dist = float(np.linalg.norm(to_goal))
        if dist < self.done_tolerance_m or self.done:
            # Close enough: back away from the puck along the line from it to the tip, or stay.
            self.done = True
            self.pushing = False
            if not self.back_off:
                return t
            away = t - p
            gap = float(np.linalg.norm(away))
            if gap >= orbit:
                return t
            return p + away / max(gap, 1e-6) * orbit
        u = to_goal / dist
        n = np.array([-u[1], u[0]])
        rel = t - p
        along, lateral = float(rel @ u), float(rel @ n)

        if self.pushing and (abs(lateral) > self.DRIFT_LATERAL or along > 0.0):
            self.pushing = False
        if not self.pushing and (
            along < -contact_dist + 0.01
            and along > -(contact_dist + self.STAGING_GAP) - 0.01
            and abs(lateral) < self.ALIGN_LATERAL
        ):
            self.pushing = True
        if self.pushing:
            # Aim at the contact point, advanced along u: keeps the push on the line to the goal.
            contact = p - u * contact_dist
            step = min(self.push_speed * dt, dist)
            return t + _clip_norm(contact + u * step - t, self.push_speed * dt * 1.5)

        staging = p - u * (contact_dist + self.STAGING_GAP)
        gap = float(np.linalg.norm(rel))
        angle_t = float(np.arctan2(rel[1], rel[0]))
        angle_goal = float(np.arctan2(-u[1], -u[0]))
        delta = _wrap(angle_goal - angle_t)
        max_step = self.approach_speed * dt
        if abs(delta) < 0.35 and gap < orbit + 0.03:
            # Behind the puck already: move in to the staging point.
            return t + _clip_norm(staging - t, max_step)
        if gap > orbit + 0.03 and segment_clear(t, staging, p, orbit - 0.01):
            return t + _clip_norm(staging - t, max_step)
        # Orbit: step round the puck towards the far side from the goal at the orbit radius.
        arc = max_step / orbit
        angle = angle_t + float(np.clip(delta, -arc, arc))
        waypoint = p + orbit * np.array([np.cos(angle), np.sin(angle)])
        return t + _clip_norm(waypoint - t, max_step)

    def __call__(self, sim: TabletopSim) -> np.ndarray:
        q = solve_ik(sim, self.tool_target(sim), sim.joint_positions())
        return rate_limit(sim, q, 0.8)


def segment_clear(a: np.ndarray, b: np.ndarray, centre: np.ndarray, radius: float) -> bool:
    """Whether the segment a-b stays at least `radius` from `centre` (all (2,), metres)."""
    ab = b - a
    denom = float(ab @ ab)
    s = 0.0 if denom < 1e-12 else float(np.clip((centre - a) @ ab / denom, 0.0, 1.0))
    return float(np.linalg.norm(a + s * ab - centre)) >= radius


class RandomSmoothPolicy:
    """Uniformly random smooth joint motion: a new uniform waypoint within the joint limits every
    `hold_steps` control steps, approached at `speed_fraction` of the velocity limits.
    The baseline that "random actions rarely succeed" refers to.

    Args:
        seed: seed of its random generator.
    """

    def __init__(self, seed: int, hold_steps: int = 10, speed_fraction: float = 0.5) -> None:
        self.seed = seed
        self.hold_steps = hold_steps
        self.speed_fraction = speed_fraction
        self.rng = np.random.default_rng(seed)
        self.waypoint: np.ndarray | None = None
        self.count = 0

    def reset(self, sim: TabletopSim) -> None:
        """Restart the generator and draw a fresh waypoint on the next call."""
        self.rng = np.random.default_rng(self.seed)
        self.waypoint = None
        self.count = 0

    def __call__(self, sim: TabletopSim) -> np.ndarray:
        if self.waypoint is None or self.count % self.hold_steps == 0:
            self.waypoint = self.rng.uniform(sim.joint_limits[:, 0], sim.joint_limits[:, 1])
        self.count += 1
        return rate_limit(sim, self.waypoint, self.speed_fraction)


def scripted_policy(task: Task) -> Policy:
    """The privileged scripted controller for a task: reach -> ReachController,
    push -> PushController."""
    if task.kind == "reach":
        return ReachController(task.goal_joints)
    return PushController(task.goal_puck[:2])


def run_policy(sim: TabletopSim, policy: Policy, steps: int) -> None:
    """Run `policy` for `steps` control steps from the sim's current state."""
    policy.reset(sim)
    for _ in range(steps):
        sim.step(policy(sim))
