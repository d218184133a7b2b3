"""prompt_node: the live skeleton overlay, its input checks (core) and the node over DDS."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from test.ros_harness import NodeProcess, RosHarness, wait_until
from wm_ros.config import PromptNodeConfig
from wm_ros.paths import config_path
from wm_ros.prompts.live import LiveOverlay, Plan, PromptInputError
from wm_ros.ros.conversions import (
    camera_model_to_info,
    image_to_numpy,
    numpy_to_image,
    vector_to_joint_state,
)
from wm_ros.sim import TabletopSim
from wm_ros.types import JointTrajectory


@pytest.fixture(scope="module")
def sim() -> TabletopSim:
    return TabletopSim()


@pytest.fixture(scope="module")
def live() -> LiveOverlay:
    return LiveOverlay(PromptNodeConfig())


def compose(live, sim, **changes):
    args = dict(
        camera=sim.camera_model(),
        joint_names=list(sim.joint_names),
        joint_positions=sim.joint_positions(),
        joint_stamp=10.0,
    )
    args.update(changes)
    return live.compose(sim.render(), 10.0, **args)


def test_default_camera_pose_is_the_simulators(sim):
    """The shipped parameters (dataclass and config/prompt.yaml) put the camera where the
    simulator has it, so the sim graph's overlay lines up."""
    cam = sim.camera_model()
    cfg = PromptNodeConfig()
    file_cfg = PromptNodeConfig.from_yaml(config_path("prompt.yaml"), "prompt_node")
    for c in (cfg, file_cfg):
        np.testing.assert_allclose(c.camera_translation, cam.translation, atol=1e-6)
        q = np.array(c.camera_quat_xyzw)
        assert min(np.abs(q - cam.quat_xyzw).max(), np.abs(q + cam.quat_xyzw).max()) < 1e-6


def test_overlay_draws_on_the_arm_only(live, sim):
    image = sim.render()
    out = compose(live, sim)
    changed = np.any(out != image, axis=-1)
    arm = sim.arm_mask()
    assert changed.sum() > 20
    # the skeleton lies on the arm: most changed pixels are arm pixels (or next to them)
    near_arm = np.zeros_like(arm)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near_arm |= np.roll(np.roll(arm, dy, 0), dx, 1)
    assert (changed & near_arm).sum() / changed.sum() > 0.9


def test_plan_poses_are_drawn_too(live, sim):
    q = sim.joint_positions()
    target = q + np.array([0.8, -0.8, 0.5, 0.5])
    plan = Plan(JointTrajectory(sim.joint_names, np.array([1.0]), target[None]), start=9.5)
    without = compose(live, sim)
    with_plan = compose(live, sim, plan=plan)
    assert np.any(with_plan != without, axis=-1).sum() > 10
    stale = Plan(plan.trajectory, start=-100.0)
    np.testing.assert_array_equal(compose(live, sim, plan=stale), without)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"camera": None}, "no_camera_info"),
        ({"joint_names": None}, "no_joint_state"),
        ({"joint_stamp": 9.5}, "stale_joint_state"),
        ({"joint_names": ["joint1", "joint2", "joint3"]}, "missing_joints"),
        ({"joint_positions": np.array([0.0, np.nan, 0.0, 0.0])}, "non_finite_joints"),
    ],
)
def test_inconsistent_inputs_are_refused(live, sim, changes, reason):
    if "joint_names" in changes and changes["joint_names"] is not None:
        changes["joint_positions"] = np.zeros(3)
    with pytest.raises(PromptInputError) as err:
        compose(live, sim, **changes)
    assert err.value.reason == reason


def test_camera_checks(live, sim):
    with pytest.raises(PromptInputError, match="camera info unusable") as err:
        live.camera_from_intrinsics(64, 64, np.zeros(9), np.zeros(5))
    assert err.value.reason == "bad_camera_info"
    bigger = sim.camera_model().with_size(128, 128)
    with pytest.raises(PromptInputError) as err:
        compose(live, sim, camera=bigger)
    assert err.value.reason == "size_mismatch"


def test_bad_urdf_fails_at_configure(tmp_path):
    broken = tmp_path / "broken.urdf"
    broken.write_text("<robot name='x'><link name='a'>")
    with pytest.raises(ValueError, match=r"(?i)urdf"):
        LiveOverlay(PromptNodeConfig(urdf=str(broken)))
    with pytest.raises(ValueError, match="nolink"):
        LiveOverlay(PromptNodeConfig(prompt={"tool_link": "nolink"}))


@pytest.mark.ros
def test_prompt_node_over_dds(sim, tmp_path):
    """Fed camera, camera info and joint states, the node publishes the overlay; stale joint
    states and a zero K give no overlay and a diagnostic instead."""
    with RosHarness("prompt_node_test") as h:
        prompts = h.subscribe("/wm/prompt", Image)
        diags = h.subscribe("/diagnostics", DiagnosticArray)
        image_pub = h.publisher("/camera/image_raw", Image)
        info_pub = h.publisher(
            "/camera/camera_info", type(camera_model_to_info(sim.camera_model()))
        )
        joint_pub = h.publisher("/joint_states", type(vector_to_joint_state(["a"], [0.0])))
        node = NodeProcess("wm_ros.ros.prompt_node", [], tmp_path / "prompt_node.log")
        try:
            pubs = (image_pub, info_pub, joint_pub)
            assert wait_until(lambda: all(p.get_subscription_count() for p in pubs), 60), node.log()
            frame = sim.render()

            def send(stamp_s: float, joint_stamp_s: float, camera=None) -> None:
                cam = camera if camera is not None else sim.camera_model()
                info_pub.publish(camera_model_to_info(cam, stamp_s))
                joint_pub.publish(
                    vector_to_joint_state(
                        sim.joint_names, sim.joint_positions(), None, joint_stamp_s
                    )
                )
                wait_until(lambda: False, 0.1)
                image_pub.publish(numpy_to_image(frame, "rgb8", stamp_s, "camera_optical"))

            assert wait_until(lambda: (send(100.0, 100.0), bool(prompts))[1], 30), node.log()
            out = image_to_numpy(prompts[-1])
            np.testing.assert_array_equal(
                out, LiveOverlay(PromptNodeConfig()).compose(
                    frame, 100.0, camera=sim.camera_model(), joint_names=list(sim.joint_names),
                    joint_positions=sim.joint_positions(), joint_stamp=100.0,
                ),
            )  # fmt: skip
            send(200.0, 199.0)  # joint state a second away from the image
            bad_k = sim.camera_model()
            zero_k_info = camera_model_to_info(bad_k, 300.0)
            zero_k_info.k = [0.0] * 9
            info_pub.publish(zero_k_info)
            wait_until(lambda: False, 0.1)
            image_pub.publish(numpy_to_image(frame, "rgb8", 300.0, "camera_optical"))

            def skipped() -> dict[str, str]:
                if not diags:
                    return {}
                status = next((s for s in diags[-1].status if s.name == "wm_ros: prompt"), None)
                return {} if status is None else {kv.key: kv.value for kv in status.values}

            assert wait_until(
                lambda: (
                    "skipped_stale_joint_state" in skipped()
                    and "skipped_bad_camera_info" in skipped()
                ),
                15,
            ), skipped()
            # The retry loop above may deliver extra stamp-100 overlays late; only the two bad
            # inputs (stamps 200 and 300) must never produce one.
            assert {p.header.stamp.sec for p in prompts} == {100}
        finally:
            assert node.stop() == 0, node.log()


def test_prompt_yaml_lists_only_known_settings():
    data = yaml.safe_load(config_path("prompt.yaml").read_text())
    PromptNodeConfig.from_dict(data["prompt_node"]["ros__parameters"])
