"""`wm-ros collect`: exploration episodes as rosbag2 bags with a real robot's topics."""

import json

import numpy as np
import pytest

from wm_ros.ros import topics
from wm_ros.ros.bag import open_bag
from wm_ros.ros.collect import collect, episode_dir
from wm_ros.ros.conversions import image_to_numpy, joint_state_to_vector
from wm_ros.sim import PUCK_LABEL, TabletopSim


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    out = tmp_path_factory.mktemp("collect")
    summary = collect(episodes=2, seed=3, out=out, steps=12)
    return out, summary


def test_one_bag_per_episode_with_robot_topics(collected):
    out, summary = collected
    assert summary["episodes"] == 2 and summary["frames"] == 2 * 13
    assert summary["policy"] == "explore" and summary["policy_settings"] == {}
    assert json.loads((out / "collect.json").read_text())["seed"] == 3
    bag = open_bag(episode_dir(out, 3))
    counts = {name: info.count for name, info in bag.topics.items()}
    assert counts[topics.IMAGE] == counts[topics.CAMERA_INFO] == 13
    assert counts[topics.SEGMENTATION] == counts[topics.PUCK_POSE] == 13
    assert counts[topics.PLAN] == 12  # one commanded action per control step
    assert counts[topics.JOINT_STATES] == 12 * 5 + 1  # 5x the camera rate
    assert counts[topics.GOAL_IMAGE] == 1
    assert bag.topics[topics.IMAGE].msgtype == "sensor_msgs/msg/Image"


def test_bag_frames_match_the_simulator(collected):
    """The first frame and joint state equal a direct reset of the same seed; labels are the
    simulator's segmentation."""
    out, _ = collected
    sim = TabletopSim()
    sim.reset(4)
    images, labels, joints = [], [], []
    for topic, _, msg in open_bag(episode_dir(out, 4)).read_messages():
        if topic == topics.IMAGE:
            images.append(image_to_numpy(msg))
        elif topic == topics.SEGMENTATION:
            labels.append(image_to_numpy(msg))
        elif topic == topics.JOINT_STATES:
            joints.append(joint_state_to_vector(msg, sim.joint_names)[0])
    np.testing.assert_array_equal(images[0], sim.render())
    np.testing.assert_array_equal(labels[0], sim.segmentation())
    np.testing.assert_allclose(joints[0], sim.joint_positions(), atol=1e-12)
    assert any((lab == PUCK_LABEL).any() for lab in labels)
    # the arm moves: exploration is not a still life
    assert np.abs(joints[-1] - joints[0]).max() > 0.05


def test_collect_is_deterministic_and_never_overwrites(collected, tmp_path):
    _, summary = collected
    again = collect(episodes=1, seed=3, out=tmp_path, steps=12)
    assert again["per_episode"][0] == summary["per_episode"][0]
    with pytest.raises(ValueError, match="exists already"):
        collect(episodes=1, seed=3, out=tmp_path, steps=12)
