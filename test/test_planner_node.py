"""planner_node over DDS: fed synthetic camera, joint and goal messages it publishes a valid plan;
stale inputs give no plan and a diagnostic; a broken model fails configure, not the process;
inputs keep arriving while a replan runs on its own thread."""

import threading

import numpy as np
import pytest
import rclpy
import torch
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

from test.ros_harness import NodeProcess, RosHarness, wait_until
from wm_ros.config import (
    PLANNER_NODE_ONLY,
    ModelConfig,
    PlanningSessionConfig,
    SimConfig,
    planning_session_from_yaml,
)
from wm_ros.model import WorldModel, save_model
from wm_ros.paths import config_path
from wm_ros.planning.session import PlanSkippedError
from wm_ros.ros.conversions import (
    camera_model_to_info,
    numpy_to_image,
    trajectory_msg_to_core,
    vector_to_joint_state,
)
from wm_ros.ros.qos import latched_qos
from wm_ros.sim import TabletopSim

TINY = ModelConfig(
    image_size=16, latent_channels=2, ae_width=8, horizon=4, context=2, memory=1,
    widths=(8, 16), emb_dim=16, prompt_features=2,
)  # fmt: skip


@pytest.fixture(scope="module")
def sim():
    with TabletopSim(SimConfig(image_width=32, image_height=32)) as s:
        s.reset(5)
        yield s


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(WorldModel(TINY), tmp_path_factory.mktemp("model") / "tiny")


def node_args(model_dir, **extra) -> list[str]:
    params = {
        "model": str(model_dir),
        "device": "cpu",
        "replan_rate_hz": 5.0,
        "replan_deadline_s": 30.0,
        "planner.horizon": 4,
        "planner.cem.num_samples": 16,
        "planner.cem.num_elites": 4,
        "planner.cem.iterations": 1,
        **extra,
    }
    return [a for k, v in params.items() for a in ("-p", f"{k}:={v}")]


def skipped(diags) -> dict[str, str]:
    for arr in reversed(diags):
        for s in arr.status:
            if s.name == "wm_ros: planner":
                return {kv.key: kv.value for kv in s.values}
    return {}


@pytest.mark.ros
def test_planner_node_publishes_a_valid_plan_and_skips_stale_inputs(sim, tiny_model, tmp_path):
    with RosHarness("planner_node_test") as h:
        plans = h.subscribe("/wm/plan", JointTrajectoryMsg)
        diags = h.subscribe("/diagnostics", DiagnosticArray)
        info = camera_model_to_info(sim.camera_model())
        image_pub = h.publisher("/camera/image_raw", Image)
        info_pub = h.publisher("/camera/camera_info", type(info))
        joint_pub = h.publisher("/joint_states", type(vector_to_joint_state(["a"], [0.0])))
        goal_pub = h.publisher("/wm/goal_image", Image, latched_qos())
        node = NodeProcess("wm_ros.ros.planner_node", node_args(tiny_model), tmp_path / "p.log")
        try:
            pubs = (image_pub, info_pub, joint_pub, goal_pub)
            assert wait_until(lambda: all(p.get_subscription_count() for p in pubs), 60), node.log()
            goal_pub.publish(numpy_to_image(sim.task.goal_image, "rgb8", 0.0))
            frame, q = sim.render(), sim.joint_positions()

            def send_fresh() -> bool:
                now = h.node.get_clock().now().nanoseconds * 1e-9
                info_pub.publish(camera_model_to_info(sim.camera_model(), now))
                joint_pub.publish(vector_to_joint_state(sim.joint_names, q, None, now))
                image_pub.publish(numpy_to_image(frame, "rgb8", now, "camera_optical"))
                wait_until(lambda: False, 0.1)
                return bool(plans)

            assert wait_until(send_fresh, 60), node.log()
            traj = trajectory_msg_to_core(plans[-1])
            assert traj.joint_names == tuple(sim.joint_names)
            assert traj.positions.shape == (4, len(sim.joint_names))
            lower, upper = sim.joint_limits[:, 0], sim.joint_limits[:, 1]
            assert np.all(traj.positions >= lower - 1e-6) and np.all(traj.positions <= upper + 1e-6)
            steps = np.abs(np.diff(np.vstack([q, traj.positions]), axis=0))
            assert np.all(steps <= sim.velocity_limits * 0.1 + 1e-5)

            # Images from 10 s ago: no plan, a diagnostic saying why.
            count = len(plans)
            for _ in range(10):
                old = h.node.get_clock().now().nanoseconds * 1e-9 - 10.0
                joint_pub.publish(vector_to_joint_state(sim.joint_names, q, None, old))
                image_pub.publish(numpy_to_image(frame, "rgb8", old, "camera_optical"))
                wait_until(lambda: False, 0.1)
            assert wait_until(lambda: "skipped_stale_image" in skipped(diags), 15), skipped(diags)
            wait_until(lambda: False, 0.5)  # a plan in flight from the fresh inputs may land
            late = [p for p in plans[count:] if p.header.stamp.sec < old + 5]
            assert not late, "planned from a stale image"
        finally:
            assert node.stop() == 0, node.log()


@pytest.mark.ros
def test_a_missing_model_fails_configure_and_is_reported(tmp_path):
    with RosHarness("planner_node_bad_model") as h:
        diags = h.subscribe("/diagnostics", DiagnosticArray)
        node = NodeProcess(
            "wm_ros.ros.planner_node", node_args(tmp_path / "nothing_here"), tmp_path / "p.log"
        )
        try:
            assert wait_until(
                lambda: "configure failed" in skipped(diags).get("last_error", ""), 60
            ), node.log()
            assert "nothing_here does not exist" in skipped(diags)["last_error"]
        finally:
            assert node.stop() == 0, node.log()


def test_planner_yaml_lists_only_known_settings():
    data = yaml.safe_load(config_path("planner.yaml").read_text())
    assert set(PLANNER_NODE_ONLY) <= set(data["planner_node"]["ros__parameters"])
    assert planning_session_from_yaml(config_path("planner.yaml")) == PlanningSessionConfig(
        planner=PlanningSessionConfig().planner.replace(knots=4)
    )


def test_the_cpu_budget_layers_on_planner_yaml(tmp_path):
    base = planning_session_from_yaml(config_path("planner.yaml"))
    cpu = planning_session_from_yaml(config_path("planner.yaml"), config_path("planner_cpu.yaml"))
    assert cpu.planner.cem.num_samples < base.planner.cem.num_samples
    # Only what the CPU file names changes; nested sections merge key by key.
    assert cpu.planner.cem.init_std == base.planner.cem.init_std
    assert cpu.planner.knots == base.planner.knots and cpu.model == base.model
    bad = tmp_path / "bad.yaml"
    bad.write_text("other_node: {ros__parameters: {}}\n")
    with pytest.raises(ValueError, match="no planner_node"):
        planning_session_from_yaml(config_path("planner.yaml"), bad)


class _BlockingSession:
    """A session whose replan blocks until released; it records the images it is given."""

    def __init__(self):
        self.replanning, self.release, self.images = threading.Event(), threading.Event(), []

    def replan(self, now, imagine=False):
        self.replanning.set()
        self.release.wait(30.0)
        raise PlanSkippedError("no_image", "released")

    def add_image(self, image, stamp):
        self.images.append(stamp)

    def goal_pose_status(self):
        return {"goal_pose": "none", "goal_pose_fit_px": None}

    def goal_object_status(self):
        return {"goal_object": "off", "goal_object_px": None}


@pytest.mark.ros
def test_inputs_are_taken_while_a_replan_runs_and_deactivate_waits_for_it(tiny_model):
    from wm_ros.ros.planner_node import PlannerNode

    context = Context()
    rclpy.init(context=context, args=["x", "--ros-args", *node_args(tiny_model)])
    executor = SingleThreadedExecutor(context=context)
    try:
        node = PlannerNode(context=context)
        session = node.session = _BlockingSession()
        feeder = rclpy.create_node("feeder", context=context)
        pub = feeder.create_publisher(Image, "/camera/image_raw", 5)
        for n in (node, feeder):
            executor.add_node(n)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        assert session.replanning.wait(30.0)  # the timer woke the replan thread
        for i in range(3):  # the replan is still running: the inputs must not wait for it
            msg = numpy_to_image(np.zeros((16, 16, 3), np.uint8), "rgb8")
            msg.header.stamp.sec = i + 1
            pub.publish(msg)
        assert wait_until(lambda: len(session.images) == 3, 30), session.images
        assert not session.release.is_set()
        threading.Timer(0.3, session.release.set).start()
        node.trigger_deactivate()  # returns once the replan in flight has finished
        assert session.release.is_set() and node._worker is None
    finally:
        executor.shutdown()
        rclpy.shutdown(context=context)
