"""Trajectory validation (every rejection) and the linear-interpolation follower."""

import numpy as np
import pytest

from wm_ros.trajectory import TrajectoryError, TrajectoryFollower, validate_trajectory
from wm_ros.types import JointTrajectory

NAMES = ("joint1", "joint2", "joint3")
LIMITS = np.array([[-1.0, 1.0], [-2.0, 2.0], [-0.5, 0.5]])


def traj(names=NAMES, times=(0.5, 1.0), positions=None) -> JointTrajectory:
    times = np.asarray(times, dtype=float)
    if positions is None:
        positions = np.zeros((len(times), len(names)))
    return JointTrajectory(tuple(names), times, np.asarray(positions, dtype=float))


def test_valid_trajectory_is_reordered_to_the_robot_order():
    positions = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, -0.6]])  # columns: joint3, joint1, joint2
    given = traj(("joint3", "joint1", "joint2"), (0.5, 1.0), positions)
    limits = np.array([[-1.0, 1.0], [-2.0, 2.0], [-1.0, 1.0]])
    out = validate_trajectory(given, NAMES, limits)
    assert out.joint_names == NAMES
    np.testing.assert_array_equal(out.positions, [[0.2, 0.3, 0.1], [0.5, -0.6, 0.4]])
    np.testing.assert_array_equal(out.times, [0.5, 1.0])
    assert out.positions.dtype == np.float64


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (traj(times=(), positions=np.zeros((0, 3))), "no points"),
        (traj(names=("joint1", "joint2", "joint9")), "unknown joint names ['joint9']"),
        (traj(names=("joint1", "joint2"), positions=np.zeros((2, 2))), "joints ['joint3']"),
        (traj(names=("joint1", "joint1", "joint2", "joint3"), positions=np.zeros((2, 4))),
         "duplicate joint names ['joint1']"),
        (traj(times=(0.5, 0.5)), "strictly increasing: point 1 at 0.5 s"),
        (traj(times=(1.0, 0.5)), "strictly increasing"),
        (traj(times=(-0.1, 0.5)), "must not be negative"),
        (traj(times=(0.1, np.inf)), "times must be finite"),
        (traj(times=(0.1, np.nan)), "times must be finite"),
        (traj(positions=[[0.0, 0.0, 0.0], [0.0, np.nan, 0.0]]),
         "joint 'joint2' at point 1 is not finite"),
        (traj(positions=[[0.0, 0.0, np.inf], [0.0, 0.0, 0.0]]),
         "'joint3' at point 0 is not finite"),
        (traj(positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.7]]),
         "joint 'joint3' at point 1 is 0.7, outside its limits [-0.5, 0.5]"),
        (traj(positions=[[-1.5, 0.0, 0.0], [0.0, 0.0, 0.0]]), "'joint1' at point 0 is -1.5"),
        (traj(positions=np.zeros((3, 3))), "positions must have shape (T, J) = (2, 3)"),
        (traj(positions=np.zeros((2, 2))), "positions must have shape"),
        (JointTrajectory(NAMES, np.zeros((2, 1)), np.zeros((2, 3))), "times must be a 1-D array"),
    ],
)  # fmt: skip
def test_rejections_name_the_problem(given, message):
    with pytest.raises(TrajectoryError) as info:
        validate_trajectory(given, NAMES, LIMITS)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)  # callers may catch ValueError


def test_limits_allow_numerical_slack_only():
    edge = traj(positions=[[1.0 + 1e-9, 2.0, -0.5], [0.0, 0.0, 0.0]])
    validate_trajectory(edge, NAMES, LIMITS)
    with pytest.raises(TrajectoryError):
        validate_trajectory(edge, NAMES, LIMITS, tolerance=0.0)


def test_bad_limits_shape_is_a_programming_error():
    with pytest.raises(ValueError, match="limits must have shape"):
        validate_trajectory(traj(), NAMES, LIMITS[:2])


def test_follower_interpolates_from_the_start_positions_through_the_points():
    given = validate_trajectory(
        traj(times=(1.0, 3.0), positions=[[1.0, 2.0, 0.5], [-1.0, 0.0, -0.5]]), NAMES, LIMITS
    )
    start = np.array([0.0, 0.0, 0.0])
    follower = TrajectoryFollower(given, start_time=10.0, start_positions=start)
    assert follower.duration == 3.0
    np.testing.assert_allclose(follower.target_at(9.0), start)  # before receipt: hold start
    np.testing.assert_allclose(follower.target_at(10.0), start)
    np.testing.assert_allclose(follower.target_at(10.5), [0.5, 1.0, 0.25])
    np.testing.assert_allclose(follower.target_at(11.0), [1.0, 2.0, 0.5])
    np.testing.assert_allclose(follower.target_at(12.0), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(follower.target_at(12.5), [-0.5, 0.5, -0.25])
    np.testing.assert_allclose(follower.target_at(13.0), [-1.0, 0.0, -0.5])
    np.testing.assert_allclose(follower.target_at(100.0), [-1.0, 0.0, -0.5])  # hold the end
    assert not follower.done(12.99)
    assert follower.done(13.0)
    assert follower.done(20.0)


def test_follower_uses_a_point_at_time_zero_instead_of_the_start_positions():
    given = validate_trajectory(
        traj(times=(0.0, 2.0), positions=[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), NAMES, LIMITS
    )
    follower = TrajectoryFollower(given, start_time=0.0, start_positions=np.array([-1.0, 0, 0]))
    np.testing.assert_allclose(follower.target_at(0.0), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(follower.target_at(1.0), [0.5, 0.0, 0.0])


def test_follower_single_point_and_returned_targets_are_copies():
    given = validate_trajectory(traj(times=(2.0,), positions=[[0.4, 0.0, 0.0]]), NAMES, LIMITS)
    follower = TrajectoryFollower(given, 1.0, np.zeros(3))
    np.testing.assert_allclose(follower.target_at(2.0), [0.2, 0.0, 0.0])
    end = follower.target_at(5.0)
    end[0] = 99.0
    np.testing.assert_allclose(follower.target_at(5.0), [0.4, 0.0, 0.0])


def test_follower_rejects_start_positions_of_the_wrong_shape():
    given = validate_trajectory(traj(), NAMES, LIMITS)
    with pytest.raises(ValueError, match="start_positions must have shape"):
        TrajectoryFollower(given, 0.0, np.zeros(2))


def test_a_late_trajectory_is_followed_on_its_own_timeline_from_where_the_arm_is():
    # Points at 1, 2, 3 s from the stamp (t = 10); received at t = 11.5 with the arm at 0.5.
    points = [[0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0]]
    given = validate_trajectory(traj(times=(1.0, 2.0, 3.0), positions=points), NAMES, LIMITS)
    start = np.array([0.5, 0.0, 0.0])
    late = TrajectoryFollower(given, 10.0, start, received_at=11.5)
    np.testing.assert_allclose(late.target_at(11.5), start)  # no jump at receipt
    np.testing.assert_allclose(late.target_at(11.75), (start + points[1]) / 2)
    np.testing.assert_allclose(late.target_at(12.5), [0.25, 0.0, 0.0])  # on the timeline
    assert late.done(13.0) and not late.done(12.9)
    # received after its last point: the last point is the target
    after = TrajectoryFollower(given, 10.0, start, received_at=14.0)
    np.testing.assert_allclose(after.target_at(14.0), points[-1])
    on_time = TrajectoryFollower(given, 10.0, start, received_at=10.0)
    np.testing.assert_allclose(on_time.target_at(10.5), (start + points[0]) / 2)
