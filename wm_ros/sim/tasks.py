"""The tabletop tasks and how their goals are made.

Goals are reachable by construction: from the episode's start state the simulator executes actions
(reach: a random smooth joint motion; push: the scripted pusher driving the puck to a random
target), records the resulting image and state as the goal, and is restored to the start state.
Success is judged on the simulator's own state, never on images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wm_ros.config import TaskConfig
from wm_ros.sim.scene import tool_in_view
from wm_ros.sim.scripted import PushController, contact_distance, rate_limit

if TYPE_CHECKING:
    from wm_ros.sim.simulator import TabletopSim

log = logging.getLogger(__name__)

# Push targets: distance from the start a little over the minimum, inside this annulus around the
# base (reachable from behind by the pusher in every direction) and the camera's view.
PUSH_TARGET_RADIUS_M = (0.28, 0.55)
PUSH_TARGET_Y_M = (-0.28, 0.28)
PUSH_EXTRA_DISTANCE_M = (0.02, 0.08)
PUSH_ATTEMPTS = 12
# Reach goals: the tool moves at least this far (metres) and never nearer contact with the puck
# than this.
REACH_MIN_TOOL_MOVE_M = 0.10
REACH_PUCK_GAP_M = 0.03  # beyond contact
REACH_ATTEMPTS = 200
REACH_SPEED_FRACTION = 0.3  # of the joint velocity limits
SETTLE_STEPS = 3  # control steps of holding still before a goal is recorded
CONTACT_POSE_SLACK_M = 0.01  # m beyond contact distance that still counts as holding the puck


@dataclass(frozen=True, eq=False)
class Task:
    """One episode's goal and its success test.

    Attributes:
        kind: "reach" or "push".
        cfg: tolerances and step budgets.
        goal_image: (H, W, 3) uint8 RGB camera image of the goal state.
        goal_state: the goal's full physics state (`TabletopSim.get_state` layout).
        goal_joints: (J,) arm joint positions at the goal, rad.
        goal_tool: (3,) tool point at the goal, metres.
        goal_puck: (3,) puck centre at the goal, metres.
        start_puck: (3,) puck centre at the episode's start, metres.
    """

    kind: str
    cfg: TaskConfig
    goal_image: np.ndarray
    goal_state: np.ndarray
    goal_joints: np.ndarray
    goal_tool: np.ndarray
    goal_puck: np.ndarray
    start_puck: np.ndarray

    def distance(self, sim: TabletopSim) -> float:
        """Metres to the goal: puck centre distance (push) or tool point distance (reach)."""
        if self.kind == "push":
            return float(np.linalg.norm(sim.puck_position() - self.goal_puck))
        return float(np.linalg.norm(sim.tool_position() - self.goal_tool))

    def success(self, sim: TabletopSim) -> bool:
        """Whether the sim's current state meets the goal (TaskConfig tolerances)."""
        if self.kind == "push":
            return self.distance(sim) < self.cfg.push_tolerance_m
        joint_err = np.max(np.abs(sim.joint_positions() - self.goal_joints))
        return (
            self.distance(sim) < self.cfg.reach_tolerance_m
            and joint_err < self.cfg.reach_joint_tolerance_rad
        )


def make_task(sim: TabletopSim, cfg: TaskConfig, rng: np.random.Generator) -> Task:
    """Build the goal of `cfg.kind` from the sim's current (start) state; the sim is restored
    to the start state afterwards.

    Raises:
        RuntimeError: no reachable goal was found from this start state.
    """
    start = sim.get_state()
    start_puck = sim.puck_position()
    try:
        if cfg.kind == "push":
            staged = _push_goal(sim, cfg, rng, start)
            if cfg.push_start == "staged":
                start = staged
        else:
            _reach_goal(sim, cfg, rng)
        task = Task(
            kind=cfg.kind,
            cfg=cfg,
            goal_image=_frozen(sim.render()),
            goal_state=_frozen(sim.get_state()),
            goal_joints=_frozen(sim.joint_positions()),
            goal_tool=_frozen(sim.tool_position()),
            goal_puck=_frozen(sim.puck_position()),
            start_puck=_frozen(start_puck),
        )
    finally:
        sim.set_state(start)
    return task


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


def _reach_goal(sim: TabletopSim, cfg: TaskConfig, rng: np.random.Generator) -> None:
    """Move the arm to a random pose (tool in view, moved >= REACH_MIN_TOOL_MOVE_M, path clear of
    the puck) with a smooth joint motion of cfg.goal_steps control steps."""
    q0 = sim.joint_positions()
    tool0 = sim.tool_position()
    puck = sim.puck_position()[:2]
    clearance = contact_distance(sim) + REACH_PUCK_GAP_M
    lo, hi = sim.joint_limits[:, 0], sim.joint_limits[:, 1]
    # Joint travel the motion can cover in ~70% of the goal steps at the reach speed.
    travel = REACH_SPEED_FRACTION * sim.velocity_limits * sim.cfg.control_dt * cfg.goal_steps * 0.7
    for _ in range(REACH_ATTEMPTS):
        goal = np.clip(q0 + rng.uniform(-travel, travel), 0.9 * lo, 0.9 * hi)
        tool = sim.tool_position_at(goal)
        if not tool_in_view(tool):
            continue
        if np.linalg.norm(tool - tool0) < REACH_MIN_TOOL_MOVE_M:
            continue
        path = q0 + np.linspace(0.0, 1.0, 20)[:, None] * (goal - q0)  # (20, J)
        if all(np.linalg.norm(sim.tool_position_at(q)[:2] - puck) >= clearance for q in path):
            break
    else:
        raise RuntimeError(f"episode {sim.episode_seed}: no reach goal found")
    for _ in range(cfg.goal_steps):
        sim.step(rate_limit(sim, goal, REACH_SPEED_FRACTION))


def _push_goal(
    sim: TabletopSim, cfg: TaskConfig, rng: np.random.Generator, start: np.ndarray
) -> np.ndarray | None:
    """Push the puck with the scripted pusher to a random target; retry from the start state
    until the puck moved at least cfg.push_min_displacement_m; the pusher then holds where the
    push ended or backs off first (cfg.push_goal_pose). An attempt whose push ended with the tip
    off its pose (beside the puck, or still re-approaching it when the puck slid into tolerance)
    is retried too; if every attempt did, the first one that moved the puck far enough is kept.
    Returns the staged state: the first moment the pusher stood behind the puck, ready to push,
    brought to rest (where a "staged" episode starts; with a "clear" start it is not held at
    rest, may be None, and is not used)."""
    puck0 = sim.puck_position()[:2]
    best = 0.0
    # (attempt, staged state, end state) of the first push that moved far enough, pose aside
    fallback: tuple[int, np.ndarray | None, np.ndarray] | None = None
    for attempt in range(PUSH_ATTEMPTS):
        if attempt:
            sim.set_state(start)
        staged = _scripted_push(sim, cfg, _push_target(puck0, cfg, rng))
        moved = float(np.linalg.norm(sim.puck_position()[:2] - puck0))
        posed = _pose_reached(sim, cfg, puck0)
        log.debug(
            "episode %d: push attempt %d moved the puck %.3f m, %s",
            sim.episode_seed,
            attempt,
            moved,
            "ended in its pose" if posed else "ended off its pose",
        )
        best = max(best, moved)
        ready = staged is not None or cfg.push_start == "clear"  # a staged start needs one
        if moved >= cfg.push_min_displacement_m and ready:
            if posed:
                return staged
            if fallback is None:
                fallback = (attempt, staged, sim.get_state())
    if fallback is not None:
        attempt, staged, end = fallback
        log.warning(
            "episode %d: no push ended in the %s pose; keeping attempt %d",
            sim.episode_seed,
            cfg.push_goal_pose,
            attempt,
        )
        sim.set_state(end)
        return staged
    raise RuntimeError(
        f"episode {sim.episode_seed}: push goal moved the puck at most {best:.3f} m "
        f"(< push_min_displacement_m = {cfg.push_min_displacement_m} m)"
    )


def _scripted_push(sim: TabletopSim, cfg: TaskConfig, target: np.ndarray) -> np.ndarray | None:
    """Run the scripted pusher from the current state towards `target` for at most
    cfg.goal_steps, then hold or back off (cfg.push_goal_pose). Returns the staged state, or
    None if the pusher never stood ready to push (see _push_goal)."""
    pusher = PushController(target, back_off=cfg.push_goal_pose == "backed_off")
    pusher.reset(sim)
    staged = None
    for _ in range(cfg.goal_steps):
        q = pusher(sim)
        if staged is None and pusher.pushing:
            if cfg.push_start == "staged":
                # Ready to push: hold still behind the puck; the episode starts from rest.
                hold = sim.joint_positions()
                for _ in range(SETTLE_STEPS):
                    sim.step(hold)
                q = pusher(sim)
            staged = sim.get_state()
        sim.step(q)
        if pusher.done:
            break
    pusher.done = True  # hold the tip against the puck, or back off and hold
    for _ in range(SETTLE_STEPS):
        sim.step(pusher(sim))
    return staged


def _pose_reached(sim: TabletopSim, cfg: TaskConfig, puck0: np.ndarray) -> bool:
    """Whether the pusher ended on the side the push came from and, for the "contact" pose,
    against the puck (the goal image then shows the arm that did the push)."""
    puck, tool = sim.puck_position()[:2], sim.tool_position()[:2]
    if float((puck - tool) @ (puck - puck0)) <= 0.0:  # the tip is not behind the puck
        return False
    return (
        cfg.push_goal_pose != "contact"
        or float(np.linalg.norm(puck - tool)) < contact_distance(sim) + CONTACT_POSE_SLACK_M
    )


def _push_target(puck: np.ndarray, cfg: TaskConfig, rng: np.random.Generator) -> np.ndarray:
    """(2,) a random target at least the minimum displacement from `puck`, in the region."""
    for _ in range(1000):
        angle = rng.uniform(-np.pi, np.pi)
        dist = cfg.push_min_displacement_m + rng.uniform(*PUSH_EXTRA_DISTANCE_M)
        target = puck + dist * np.array([np.cos(angle), np.sin(angle)])
        radius = float(np.linalg.norm(target))
        if (
            PUSH_TARGET_RADIUS_M[0] <= radius <= PUSH_TARGET_RADIUS_M[1]
            and PUSH_TARGET_Y_M[0] <= target[1] <= PUSH_TARGET_Y_M[1]
            and target[0] > 0.1
        ):
            return target
    raise RuntimeError(f"no push target in the workspace from puck at {puck}")
