"""Checking and executing joint trajectories (the core of a simple joint trajectory controller).

`validate_trajectory` checks a trajectory against a robot's joints and limits and reorders its
columns into the robot's joint order; every rejection raises `TrajectoryError` naming the problem.
Like ros2_control's joint_trajectory_controller with its default `allow_partial_joints_goal:
false`, a trajectory must command every joint of the robot: partial trajectories are rejected.

`TrajectoryFollower` turns a validated trajectory into a position target at any time: linear
interpolation from the joint positions at receipt through the trajectory's points, holding the
last point after the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wm_ros.types import JointTrajectory

__all__ = ["TrajectoryError", "TrajectoryFollower", "validate_trajectory"]


class TrajectoryError(ValueError):
    """A trajectory that cannot be executed (the message says why)."""


def validate_trajectory(
    traj: JointTrajectory,
    joint_names: Sequence[str],
    limits: np.ndarray,
    tolerance: float = 1e-6,
) -> JointTrajectory:
    """Check `traj` against the robot and return it in the robot's joint order.

    Args:
        traj: the trajectory (any joint order).
        joint_names: (J,) the robot's joints, in the order the result should use.
        limits: (J, 2) lower/upper position limits in `joint_names` order, rad or m.
        tolerance: how far outside a limit a position may be (numerical slack), rad or m.
    Returns:
        The same trajectory with `joint_names` = the robot's names and positions (T, J) float64,
        columns reordered to match.
    Raises:
        TrajectoryError: no points; duplicate, unknown or missing joint names; times not (T,),
            not finite, negative or not strictly increasing; positions not (T, J) or not finite;
            a position outside its joint's limits.
    """
    robot = tuple(joint_names)
    limits = np.asarray(limits, dtype=np.float64)
    if limits.shape != (len(robot), 2):
        raise ValueError(f"limits must have shape ({len(robot)}, 2), got {limits.shape}")
    names = tuple(traj.joint_names)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise TrajectoryError(f"duplicate joint names {duplicates}")
    unknown = [n for n in names if n not in robot]
    if unknown:
        raise TrajectoryError(f"unknown joint names {unknown}; the robot has {list(robot)}")
    missing = [n for n in robot if n not in names]
    if missing:
        raise TrajectoryError(
            f"trajectory does not command joints {missing}; every joint must be given"
        )

    times = np.asarray(traj.times, dtype=np.float64)
    positions = np.asarray(traj.positions, dtype=np.float64)
    if times.ndim != 1:
        raise TrajectoryError(f"times must be a 1-D array (T,), got shape {times.shape}")
    if times.size == 0:
        raise TrajectoryError("trajectory has no points")
    if positions.shape != (times.size, len(names)):
        raise TrajectoryError(
            f"positions must have shape (T, J) = ({times.size}, {len(names)}) to match the "
            f"times and joint names, got {positions.shape}"
        )
    if not np.all(np.isfinite(times)):
        raise TrajectoryError(f"times must be finite, got {times.tolist()}")
    if times[0] < 0:
        raise TrajectoryError(f"times must not be negative, got {times[0]} s for point 0")
    steps = np.diff(times)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0)) + 1
        raise TrajectoryError(
            f"times must be strictly increasing: point {bad} at {times[bad]} s follows "
            f"{times[bad - 1]} s"
        )
    bad_rows, bad_cols = np.nonzero(~np.isfinite(positions))
    if bad_rows.size:
        raise TrajectoryError(
            f"position of joint {names[bad_cols[0]]!r} at point {bad_rows[0]} is not finite "
            f"({positions[bad_rows[0], bad_cols[0]]})"
        )

    order = [names.index(n) for n in robot]
    positions = positions[:, order]  # (T, J) in the robot's order
    low = positions < limits[:, 0] - tolerance
    high = positions > limits[:, 1] + tolerance
    outside = low | high
    if np.any(outside):
        row, col = (int(i[0]) for i in np.nonzero(outside))
        raise TrajectoryError(
            f"joint {robot[col]!r} at point {row} is {positions[row, col]:.6g}, outside its "
            f"limits [{limits[col, 0]:.6g}, {limits[col, 1]:.6g}]"
        )
    return JointTrajectory(joint_names=robot, times=times.copy(), positions=positions)


class TrajectoryFollower:
    """Position targets along a validated trajectory.

    Args:
        traj: a trajectory from `validate_trajectory` (columns in the robot's joint order).
        start_time: when its times count from (its header stamp, or its receipt), seconds.
        start_positions: (J,) joint positions at receipt, the first knot of the interpolation
            (unless the trajectory's first point is at time 0, which then replaces it).
        received_at: when it was received, if after start_time (a plan stamped with the image
            it was planned from arrives late): as ros2_control's joint trajectory controller
            does, the points already past are dropped and the arm moves from where it is at
            receipt to the next point on the trajectory's own timeline.
    """

    def __init__(
        self,
        traj: JointTrajectory,
        start_time: float,
        start_positions: np.ndarray,
        received_at: float | None = None,
    ) -> None:
        start_positions = np.asarray(start_positions, dtype=np.float64)
        positions = np.asarray(traj.positions, dtype=np.float64)
        times = np.asarray(traj.times, dtype=np.float64)
        if start_positions.shape != positions.shape[1:]:
            raise ValueError(
                f"start_positions must have shape {positions.shape[1:]}, "
                f"got {start_positions.shape}"
            )
        self.joint_names = tuple(traj.joint_names)
        self.start_time = float(start_time)
        now = 0.0 if received_at is None else max(0.0, float(received_at) - self.start_time)
        if now > 0 and times[-1] > now:  # drop the points already past
            ahead = times > now
            times, positions = times[ahead], positions[ahead]
        if times[0] > now:
            times = np.concatenate([[now], times])
            positions = np.concatenate([start_positions[None], positions])
        self._times = times  # (K,) knot times from start_time, seconds
        self._positions = positions  # (K, J) knot positions

    @property
    def duration(self) -> float:
        """Time from start_time to the last point, seconds."""
        return float(self._times[-1])

    def target_at(self, t: float) -> np.ndarray:
        """(J,) the position target at time `t` (same clock as `start_time`), interpolated
        linearly between knots; the first knot before the start, the last after the end."""
        rel = float(t) - self.start_time
        times, positions = self._times, self._positions
        if rel <= times[0]:
            return positions[0].copy()
        if rel >= times[-1]:
            return positions[-1].copy()
        i = int(np.searchsorted(times, rel, side="right"))  # times[i-1] <= rel < times[i]
        w = (rel - times[i - 1]) / (times[i] - times[i - 1])
        return (1.0 - w) * positions[i - 1] + w * positions[i]

    def done(self, t: float) -> bool:
        """Whether time `t` is at or past the trajectory's last point."""
        return float(t) - self.start_time >= self._times[-1]
