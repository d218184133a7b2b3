"""sim_node over real DDS on loopback: what it publishes, what it executes, what it rejects."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from test.ros_harness import NodeProcess, RosHarness, wait_until
from wm_ros.config import SimConfig
from wm_ros.ros.conversions import image_to_numpy, joint_state_to_vector
from wm_ros.sim import TabletopSim

pytestmark = pytest.mark.ros

SEED = 7
LATCHED = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


@pytest.fixture(scope="module")
def direct_sim() -> TabletopSim:
    return TabletopSim(SimConfig(seed=SEED))


@pytest.fixture(scope="module")
def harness():
    with RosHarness("sim_node_test") as h:
        yield h


@pytest.fixture(scope="module")
def sim_node(harness, tmp_path_factory):
    """One sim_node process for the module, at 4x real time, publishing /clock."""
    streams = {
        "image": harness.subscribe("/camera/image_raw", Image),
        "info": harness.subscribe("/camera/camera_info", CameraInfo),
        "joints": harness.subscribe("/joint_states", JointState, qos=50),
        "goal": harness.subscribe("/wm/goal_image", Image, qos=LATCHED),
        "goal_joints": harness.subscribe("/wm/goal_joint_states", JointState, qos=LATCHED),
        "diag": harness.subscribe("/diagnostics", DiagnosticArray),
        "clock": harness.subscribe("/clock", Clock, qos=50),
    }
    proc = NodeProcess(
        "wm_ros.ros.sim_node",
        [
            "-p", f"sim.seed:={SEED}",
            "-p", "real_time_factor:=4.0",
            "-p", "publish_clock:=true",
            "-p", "diagnostics_rate_hz:=5.0",
        ],
        tmp_path_factory.mktemp("sim_node") / "sim_node.log",
    )  # fmt: skip
    ready = wait_until(lambda: all(streams[k] for k in ("image", "info", "joints", "goal")), 60)
    if not ready:
        proc.stop()
        pytest.fail(f"sim_node published nothing within 60 s; its log:\n{proc.log()}")
    yield streams, harness
    code = proc.stop()
    assert code == 0, f"sim_node did not shut down cleanly (exit {code}):\n{proc.log()}"


def latest_joints(streams, names) -> np.ndarray:
    return joint_state_to_vector(streams["joints"][-1], names)[0]


def diag_values(streams) -> dict[str, str]:
    status = next(s for s in streams["diag"][-1].status if s.name == "wm_ros: sim")
    return {kv.key: kv.value for kv in status.values}


def send_plan(harness, names, times, positions) -> None:
    pub = harness.publisher("/wm/plan", JointTrajectory)
    assert wait_until(lambda: pub.get_subscription_count() > 0, 20)
    msg = JointTrajectory(joint_names=list(names))
    for t, q in zip(times, positions, strict=True):
        sec = int(t)
        msg.points.append(
            JointTrajectoryPoint(
                positions=[float(v) for v in q],
                time_from_start=Duration(sec=sec, nanosec=round((t - sec) * 1e9)),
            )
        )
    pub.publish(msg)


def test_first_frames_match_a_direct_render(sim_node, direct_sim):
    streams, _ = sim_node
    first = image_to_numpy(streams["image"][0])
    assert first.shape == (64, 64, 3)
    direct = direct_sim.render()
    # The arm holds its start pose under position control, so the state is the reset state.
    differing = np.any(first != direct, axis=-1).mean()
    assert differing < 0.005, f"{differing:.2%} of pixels differ from a direct render"
    goal = image_to_numpy(streams["goal"][0])
    np.testing.assert_array_equal(goal, direct_sim.task.goal_image)
    assert wait_until(lambda: streams["goal_joints"], 10)
    goal_joints = streams["goal_joints"][0]  # the goal's pose, stamped like its image
    assert goal_joints.header.stamp == streams["goal"][0].header.stamp
    assert list(goal_joints.name) == list(direct_sim.joint_names)
    np.testing.assert_allclose(goal_joints.position, direct_sim.task.goal_joints)


def test_camera_info_matches_the_render(sim_node, direct_sim):
    streams, _ = sim_node
    info = streams["info"][-1]
    model = direct_sim.camera_model()
    assert (info.width, info.height) == (model.width, model.height)
    np.testing.assert_allclose(np.array(info.k).reshape(3, 3), model.k, atol=1e-9)
    assert info.header.stamp == streams["image"][-1].header.stamp or len(streams["info"]) > 1


def test_joint_states_by_name_with_velocities(sim_node, direct_sim):
    streams, _ = sim_node
    msg = streams["joints"][-1]
    assert tuple(msg.name) == direct_sim.joint_names
    assert len(msg.velocity) == len(msg.name)
    np.testing.assert_allclose(
        latest_joints(streams, direct_sim.joint_names), direct_sim.joint_positions(), atol=0.02
    )


def test_clock_runs_forward(sim_node):
    streams, _ = sim_node
    n = len(streams["clock"])
    assert wait_until(lambda: len(streams["clock"]) > n + 5, 10)
    ns = [c.clock.sec * 10**9 + c.clock.nanosec for c in streams["clock"][-5:]]
    assert all(b > a for a, b in itertools.pairwise(ns))


def test_trajectory_brings_joints_to_target(sim_node, direct_sim):
    streams, harness = sim_node
    names = direct_sim.joint_names
    start = latest_joints(streams, names)
    lo, hi = direct_sim.joint_limits[:, 0], direct_sim.joint_limits[:, 1]
    target = np.clip(start + np.array([0.3, -0.4, 0.3, -0.2]), lo + 0.05, hi - 0.05)
    middle = (start + target) / 2
    order = [2, 0, 3, 1]  # joints are matched by name, not by position in the message
    send_plan(
        harness,
        [names[i] for i in order],
        [0.5, 1.0],
        [middle[order], target[order]],
    )
    ok = wait_until(
        lambda: np.max(np.abs(latest_joints(streams, names) - target)) < 0.02, timeout=20
    )
    assert ok, f"joints {latest_joints(streams, names)} did not reach {target}"


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("unknown_joint", "unknown"),
        ("non_increasing", "increas"),
        ("nan", "finite"),
        ("out_of_limits", "limit"),
    ],
)
def test_bad_trajectories_are_rejected_and_the_arm_holds(sim_node, direct_sim, case, expect):
    streams, harness = sim_node
    names = list(direct_sim.joint_names)
    hold = latest_joints(streams, names)
    q = hold.copy()
    times = [0.5, 1.0]
    if case == "unknown_joint":
        names[0] = "no_such_joint"
    elif case == "non_increasing":
        times = [1.0, 0.5]
    elif case == "nan":
        q[1] = np.nan
    else:
        q[0] = direct_sim.joint_limits[0, 1] + 0.5
    before = int(diag_values(streams).get("plans_rejected", 0))
    send_plan(harness, names, times, [q, q])
    assert wait_until(lambda: int(diag_values(streams)["plans_rejected"]) > before, 10)
    assert expect in diag_values(streams)["last_error"].lower()
    wait_until(lambda: False, 0.5)  # let the arm act on whatever it was told
    np.testing.assert_allclose(latest_joints(streams, direct_sim.joint_names), hold, atol=0.02)


def test_reset_starts_the_next_seeded_episode(sim_node):
    streams, harness = sim_node
    goals_before = len(streams["goal"])
    response = harness.call(Trigger, "/sim/reset", Trigger.Request())
    assert response.success
    assert f"seed {SEED + 1}" in response.message
    assert wait_until(lambda: len(streams["goal"]) > goals_before, 10)
    direct = TabletopSim(SimConfig(seed=SEED + 1))
    np.testing.assert_array_equal(image_to_numpy(streams["goal"][-1]), direct.task.goal_image)
    assert wait_until(lambda: diag_values(streams)["episode_seed"] == str(SEED + 1), 10)
