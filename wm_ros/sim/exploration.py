"""Exploration policy for data collection: varied arm motion and frequent puck contact.

A seeded mixture of segments, each a few control steps long:

- joint: smooth motion to a random joint-space waypoint (covers the arm's configuration space);
- sweep: the pusher goes to a random point near the puck and sweeps through or past it along a
  random direction at a random speed, with noise (makes the puck move, in every direction);
- push plan (`push_plan_probability` of the sweeps, off in `explore`): once a sweep's approach
  has put the pusher behind the puck, 8 steps of the targets a planner would try there: a
  straight push at a random speed (or, a third of the time, holding the pose) plus random offsets
  at 4 knots, linearly interpolated, as CEM draws them. Exploration's sweeps are gentle and
  straight (the puck moves 3 px over 8 steps at the median); the candidates a push planner
  scores from a staged start move it 6 px at the median, 21% of them over 10 px (against 5% in
  exploration), pushed by any part of the tip at any angle: the world model has to have seen that.

`POLICIES` names the mixtures `wm-ros collect --policy` records: `explore` (the world model's
data) and `poses` (joint motion alone over 0.95 x every joint's range, the base joint included,
half the waypoint joints at the range's edges: the goal-pose estimator's data,
wm_ros.planning.goal_pose, which must cover reach goals out to 0.9 x the limits where
exploration rarely goes).

Puck re-placement happens only at `TabletopSim.reset`, never mid-episode, so every transition in
the data is physical. Sweeps steer the puck back towards the middle of the workspace when it
strays, so it stays in view and within reach.

Measured with `python benchmarks/sim_speed.py --explore-episodes 20` (seeds 0-19, 50 steps
each): the puck moves more than 1 mm in about 45% of control steps (42-45% over three sets
of 20 seeds) and its centre stays inside the image in 98-100% of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from wm_ros.planning.actions import knot_weights
from wm_ros.sim.scripted import contact_distance, rate_limit, segment_clear, solve_ik

if TYPE_CHECKING:
    from wm_ros.sim.simulator import TabletopSim

# Sweeps push the puck in uniformly random directions while it is within this radius of the
# middle of the workspace, and back towards the middle when it is beyond it.
WORKSPACE_CENTRE = np.array([0.40, 0.0])  # m
WORKSPACE_RADIUS_M = 0.15
# Sweeps stop short of pushing the puck beyond this distance from the base (the pusher must be
# able to get behind it again).
PUCK_MAX_RADIUS_M = 0.55


class ExplorationPolicy:
    """Seeded mixture of random joint motion and noisy sweeps through or near the puck.

    Args:
        seed: seed of its random generator (reset restarts it).
        sweep_probability: chance that a new segment is a sweep rather than a joint motion.
        joint_noise_rad: std of the Gaussian noise added to every joint target, rad.
        joint_range: joint waypoints are drawn within this fraction of each joint's limits.
        base_range_rad: ... except the first (base) joint, drawn within +- this (keeps the arm
            mostly in view); None: like the others.
        joint_speed: a joint segment's speed is drawn from this range, as a fraction of the
            velocity limits.
        joint_steps: ... and its length in control steps from this range (inclusive).
        edge_probability: chance that a joint's waypoint is at the edge of the range (either
            end) instead of inside it: poses at the limits, where reach goals often are.
        push_plan_probability: chance that a sweep, once behind the puck, becomes a push plan
            (module doc) instead of a straight sweep.
        push_plan_std_rad: the knot offsets' spread is drawn from this range, rad.
        push_plan_speed: the push plan's straight push speed is drawn from this range, m/s.
    """

    def __init__(
        self,
        seed: int,
        *,
        sweep_probability: float = 0.85,
        joint_noise_rad: float = 0.02,
        joint_range: float = 0.8,
        base_range_rad: float | None = 1.2,
        joint_speed: tuple[float, float] = (0.15, 0.5),
        joint_steps: tuple[int, int] = (4, 11),
        edge_probability: float = 0.0,
        push_plan_probability: float = 0.0,
        push_plan_std_rad: tuple[float, float] = (0.05, 0.3),
        push_plan_speed: tuple[float, float] = (0.1, 0.5),
    ) -> None:
        if not 0.0 <= sweep_probability <= 1.0:
            raise ValueError(f"sweep_probability must be in [0, 1], got {sweep_probability}")
        if not 0.0 < joint_range <= 1.0:
            raise ValueError(f"joint_range must be in (0, 1], got {joint_range}")
        if not 0.0 < joint_speed[0] <= joint_speed[1]:
            raise ValueError(f"joint_speed must be an increasing positive range, got {joint_speed}")
        if not 1 <= joint_steps[0] <= joint_steps[1]:
            raise ValueError(f"joint_steps must be an increasing range from 1, got {joint_steps}")
        if not 0.0 <= edge_probability <= 1.0:
            raise ValueError(f"edge_probability must be in [0, 1], got {edge_probability}")
        if not 0.0 <= push_plan_probability <= 1.0:
            raise ValueError(
                f"push_plan_probability must be in [0, 1], got {push_plan_probability}"
            )
        if not 0.0 <= push_plan_std_rad[0] <= push_plan_std_rad[1]:
            raise ValueError(
                f"push_plan_std_rad must be an increasing range, got {push_plan_std_rad}"
            )
        if not 0.0 <= push_plan_speed[0] <= push_plan_speed[1]:
            raise ValueError(f"push_plan_speed must be an increasing range, got {push_plan_speed}")
        self.seed = seed
        self.sweep_probability = sweep_probability
        self.joint_noise_rad = joint_noise_rad
        self.joint_range = joint_range
        self.base_range_rad = base_range_rad
        self.joint_speed = joint_speed
        self.joint_steps = joint_steps
        self.edge_probability = edge_probability
        self.push_plan_probability = push_plan_probability
        self.push_plan_std_rad = push_plan_std_rad
        self.push_plan_speed = push_plan_speed
        self._plan = np.zeros((0, 0))  # the push plan's remaining targets, (steps, J)
        self.rng = np.random.default_rng(seed)
        self._phase = "done"  # "joint", "approach", "sweep", "plan" or "done"
        self._steps_left = 0
        self._joint_goal = np.zeros(0)
        self._speed = 0.0
        self._direction = np.array([1.0, 0.0])
        self._offset = self._back = self._forward = self._approach_speed = 0.0
        self._aim = np.zeros(2)
        self._sweep_end = np.zeros(2)

    def reset(self, sim: TabletopSim) -> None:
        """Restart the random generator; the next call starts a new segment."""
        self.rng = np.random.default_rng(self.seed)
        self._phase = "done"
        self._steps_left = 0

    def __call__(self, sim: TabletopSim) -> np.ndarray:
        if self._steps_left <= 0 or self._phase == "done":
            self._new_segment(sim)
        self._steps_left -= 1
        if self._phase == "joint":
            target = rate_limit(sim, self._joint_goal, self._speed)
        elif self._phase == "plan":
            target = self._plan_target(sim)
        else:
            target = self._sweep_target(sim)
        target = target + self.rng.normal(0.0, self.joint_noise_rad, size=target.shape)
        return np.clip(target, sim.joint_limits[:, 0], sim.joint_limits[:, 1])

    def _sweep_target(self, sim: TabletopSim) -> np.ndarray:
        """Joint target for this step of a sweep. The aim point advances at the phase's speed
        (m/s) whatever the servo lag, so the pusher really moves at about that speed."""
        puck = sim.puck_position()[:2]
        direction, normal = self._direction, np.array([-self._direction[1], self._direction[0]])
        if self._phase == "approach":
            # The start point follows the puck (the approach itself may have knocked it).
            goal = puck - direction * self._back + normal * self._offset
            speed = self._approach_speed
            # Keep out of a disc round the puck that the start point itself lies outside of.
            keep_out = min(contact_distance(sim) + 0.01, 0.95 * float(np.linalg.norm(goal - puck)))
            if not segment_clear(self._aim, goal, puck, keep_out):
                step = speed * sim.cfg.control_dt
                self._aim = _orbit_step(self._aim, goal, puck, step, contact_distance(sim))
                aim = self._aim + self.rng.normal(0.0, 0.003, size=2)
                return rate_limit(sim, solve_ik(sim, aim, sim.joint_positions()), 0.8)
        else:
            goal, speed = self._sweep_end, self._speed
            if (sim.tool_position()[:2] - puck) @ direction > 0.0:
                self._phase = "done"  # passed the puck (or it slipped aside): next segment
        to_goal = goal - self._aim
        dist = float(np.linalg.norm(to_goal))
        step = speed * sim.cfg.control_dt
        if dist <= step:
            self._aim = goal.copy()
            if self._phase == "approach":
                self._phase = "sweep"
                # Sweep no further than keeps the puck within the pusher's reach.
                forward = min(self._forward, _room_ahead(puck, direction, PUCK_MAX_RADIUS_M))
                self._sweep_end = puck + direction * forward + normal * self._offset
                # (no draw when push plans are off: the other mixtures' seeds replay)
                if (
                    self.push_plan_probability > 0
                    and self.rng.random() < self.push_plan_probability
                ):
                    self._start_push_plan(sim)
                    return self._plan_target(sim)
            else:
                self._phase = "done"
        else:
            self._aim = self._aim + to_goal * (step / dist)
        aim = self._aim + self.rng.normal(0.0, 0.003, size=2)
        return rate_limit(sim, solve_ik(sim, aim, sim.joint_positions()), 0.8)

    def _start_push_plan(self, sim: TabletopSim, steps: int = 8, knots: int = 4) -> None:
        """The push plan's targets (module doc): a straight push from the aim point along the
        sweep's direction (IK per step) or the pose held, plus offsets at `knots` evenly spaced
        steps interpolated linearly from none at the start, with JointDeltaActions' weights."""
        rng = self.rng
        q = sim.target().copy()
        if rng.random() < 1.0 / 3.0:
            base = np.repeat(q[None], steps, axis=0)
        else:
            speed, aim, rows = float(rng.uniform(*self.push_plan_speed)), self._aim.copy(), []
            for _ in range(steps):
                aim = aim + self._direction * speed * sim.cfg.control_dt
                q = solve_ik(sim, aim, q)
                rows.append(q)
            base = np.array(rows)
        std = float(rng.uniform(*self.push_plan_std_rad))
        offsets = rng.normal(0.0, std, size=(knots, base.shape[1]))
        weights = knot_weights(steps, knots)[:, 1:]  # (steps, knots); q0's column: no offset
        lo, hi = sim.joint_limits[:, 0], sim.joint_limits[:, 1]
        self._plan = np.clip(base + weights @ offsets, lo, hi)
        self._phase = "plan"

    def _plan_target(self, sim: TabletopSim) -> np.ndarray:
        """The push plan's next target, within the velocity limits, as a planner's would be."""
        target, self._plan = self._plan[0], self._plan[1:]
        if not len(self._plan):
            self._phase = "done"
        return rate_limit(sim, target, 1.0)

    def _new_segment(self, sim: TabletopSim) -> None:
        rng = self.rng
        if rng.random() >= self.sweep_probability:
            lo, hi = sim.joint_limits[:, 0], sim.joint_limits[:, 1]
            self._joint_goal = rng.uniform(self.joint_range * lo, self.joint_range * hi)
            if self.edge_probability > 0.0:  # (no extra draws otherwise: seeds replay)
                edge = rng.random(len(lo)) < self.edge_probability
                ends = np.where(rng.random(len(lo)) < 0.5, lo, hi) * self.joint_range
                self._joint_goal = np.where(edge, ends, self._joint_goal)
            if self.base_range_rad is not None:
                self._joint_goal[0] = rng.uniform(-self.base_range_rad, self.base_range_rad)
            self._speed = float(rng.uniform(*self.joint_speed))
            self._phase = "joint"
            self._steps_left = int(rng.integers(self.joint_steps[0], self.joint_steps[1] + 1))
            return
        puck = sim.puck_position()[:2]
        to_centre = WORKSPACE_CENTRE - puck
        if np.linalg.norm(to_centre) > WORKSPACE_RADIUS_M:
            # Far out: sweep roughly back towards the middle so the puck stays in view and reach.
            angle = float(np.arctan2(to_centre[1], to_centre[0])) + rng.uniform(-1.0, 1.0)
        elif rng.random() < 0.8:
            # Onwards from where the pusher is: a short approach, then through the puck.
            from_tool = puck - sim.tool_position()[:2]
            angle = float(np.arctan2(from_tool[1], from_tool[0])) + rng.uniform(-0.6, 0.6)
        else:
            angle = rng.uniform(-np.pi, np.pi)
        self._direction = np.array([np.cos(angle), np.sin(angle)])
        # Lateral offset from the puck centre: mostly through it, sometimes grazing or missing.
        self._offset = float(np.clip(rng.normal(0.0, 0.5), -1.3, 1.3) * contact_distance(sim))
        # m behind the puck centre to start from: 5-25 mm clear of its edge
        self._back = sim.puck_radius + float(rng.uniform(0.005, 0.025))
        self._forward = float(rng.uniform(0.06, 0.22))  # m past the puck to sweep to
        self._approach_speed = float(rng.uniform(0.35, 0.6))  # m/s
        self._speed = float(rng.uniform(0.06, 0.3))  # m/s while sweeping
        self._aim = sim.tool_position()[:2]
        self._phase = "approach"
        self._steps_left = 25  # a cap: the segment normally ends when the sweep does


def _orbit_step(
    aim: np.ndarray, goal: np.ndarray, puck: np.ndarray, step: float, contact: float
) -> np.ndarray:
    """Next aim point (2,) moving round the puck towards `goal`'s side at a safe radius, so an
    approach passes round the puck instead of knocking it (all (2,), metres; step and `contact`,
    the puck centre to pusher tip distance at contact, in metres)."""
    radius = contact + 0.03
    rel_aim, rel_goal = aim - puck, goal - puck
    angle = float(np.arctan2(rel_aim[1], rel_aim[0]))
    delta = float(np.arctan2(rel_goal[1], rel_goal[0])) - angle
    delta = (delta + np.pi) % (2 * np.pi) - np.pi
    arc = step / radius
    angle += float(np.clip(delta, -arc, arc))
    return puck + radius * np.array([np.cos(angle), np.sin(angle)])


def _room_ahead(puck: np.ndarray, direction: np.ndarray, radius: float) -> float:
    """Distance (m) the puck can travel from `puck` (2,) along unit `direction` (2,) before it
    leaves the disc of `radius` (m) around the base; 0 when it is outside and not heading in."""
    b = float(puck @ direction)
    disc = b * b - (float(puck @ puck) - radius**2)
    if disc < 0:  # the line misses the disc
        return 0.0
    return max(0.0, -b + float(np.sqrt(disc)))  # where the line leaves the disc


# `wm-ros collect --policy` choices (module doc): name -> ExplorationPolicy keyword arguments.
POLICIES: dict[str, dict] = {
    "explore": {},
    # Faster, longer joint segments than exploration's, half the waypoint joints at the edges
    # of the range: reach goals sit there (their last joint is beyond 1.5 rad in 72% of seeds
    # 0-49; in 4% of the exploration frames, 54% of these). Trained on these instead of uniform
    # waypoints, the estimator's last-joint error on reach goals fell from 0.63 to 0.28 rad.
    # Exploration with push plans (module doc): the world model's data for pushes planned from
    # a staged start.
    "pushes": {"push_plan_probability": 0.7},
    "poses": {
        "sweep_probability": 0.0,
        "joint_range": 0.95,
        "base_range_rad": None,
        "joint_speed": (0.5, 1.0),
        "joint_steps": (8, 20),
        "edge_probability": 0.5,
    },
}


def collection_policy(name: str, seed: int) -> ExplorationPolicy:
    """The `name` mixture of POLICIES, seeded.

    Raises:
        ValueError: an unknown name.
    """
    if name not in POLICIES:
        raise ValueError(f"unknown collection policy {name!r} (have {sorted(POLICIES)})")
    return ExplorationPolicy(seed=seed, **POLICIES[name])
