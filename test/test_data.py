"""Episodes and training windows (numpy, ROS-free), and bag -> episode loading."""

import numpy as np
import pytest

from wm_ros.data import Episode, EpisodeSet, episodes_fingerprint, sim_episodes
from wm_ros.ros import topics
from wm_ros.ros.bag import BagWriter
from wm_ros.ros.collect import collect
from wm_ros.ros.conversions import numpy_to_image
from wm_ros.ros.episodes import EpisodeBagError, load_episode, load_episodes


@pytest.fixture(scope="module")
def episodes():
    return sim_episodes([4, 5], steps=12)


def synthetic(t: int = 20, size: int = 8, joints: int = 2, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, (t, size, size, 3), dtype=np.uint8)
    q = np.arange(t, dtype=np.float32)[:, None].repeat(joints, 1)  # joints[t] = t
    return Episode(frames, q, q + 1, None, seed=seed)  # actions[t] = t + 1 (next frame's pose)


def test_sim_episodes_are_deterministic_and_actions_lead_to_the_next_frame(episodes):
    again = sim_episodes([4], steps=12)[0]
    ep = episodes[0]
    np.testing.assert_array_equal(ep.frames, again.frames)
    assert ep.frames.shape == (13, 64, 64, 3) and ep.labels.shape == (13, 64, 64)
    assert ep.joints.shape == ep.actions.shape == (13, 4) and ep.seed == 4
    # The servo moves towards the commanded target: joint change and command agree in sign.
    moved = np.diff(ep.joints, axis=0)  # (T-1, J)
    wanted = ep.actions[:-1] - ep.joints[:-1]
    big = np.abs(moved) > 1e-3
    assert big.sum() > 5 and np.mean(np.sign(moved[big]) == np.sign(wanted[big])) > 0.9
    np.testing.assert_array_equal(ep.actions[-1], ep.actions[-2])  # held after the last frame


def test_fingerprint_tells_episodes_apart_by_content():
    a, b = synthetic(seed=0), synthetic(seed=1)
    assert episodes_fingerprint([a, b]) == episodes_fingerprint(
        [synthetic(seed=0), synthetic(seed=1)]
    )
    assert episodes_fingerprint([a, b]) != episodes_fingerprint([b, a])  # order counts
    changed = synthetic(seed=0)
    changed.actions[3, 1] += 1e-6  # one action's last bits
    assert episodes_fingerprint([changed]) != episodes_fingerprint([a])
    labelled = Episode(a.frames, a.joints, a.actions, np.zeros(a.frames.shape[:3], np.uint8))
    assert episodes_fingerprint([labelled]) != episodes_fingerprint([a])


def test_episode_validation_names_the_problem():
    ep = synthetic()
    with pytest.raises(ValueError, match="uint8"):
        Episode(ep.frames.astype(np.float32), ep.joints, ep.actions)
    with pytest.raises(ValueError, match="joints and actions"):
        Episode(ep.frames, ep.joints[:-1], ep.actions)
    with pytest.raises(ValueError, match="finite"):
        Episode(ep.frames, ep.joints * np.nan, ep.actions)


def test_windows_are_contiguous_with_older_memory_and_aligned_actions():
    data = EpisodeSet([synthetic(20), synthetic(15, seed=1)], context=2, horizon=3, memory=2)
    assert len(data) == (20 - 5 + 1) + (15 - 5 + 1)
    idx = data.window_indices(500, np.random.default_rng(0))  # (B, M + K + H)
    assert idx.shape == (500, 7)
    np.testing.assert_array_equal(np.diff(idx[:, 2:], axis=1), 1)  # context + future contiguous
    assert np.all(idx[:, :2] <= idx[:, 2:3]) and np.all(np.diff(idx[:, :2], axis=1) >= 0)
    episode = np.searchsorted(data.offsets, idx, side="right")
    assert np.all(episode == episode[:, :1])  # never crosses an episode boundary
    # actions[i - 1] lead to future frame i: in the synthetic episode they equal its pose.
    np.testing.assert_array_equal(data.future_actions(idx), data.joints[idx[:, -3:]])


def test_memory_prefers_recent_frames_and_pads_at_the_start():
    data = EpisodeSet([synthetic(60)], context=2, horizon=2, memory=1, memory_tau=3.0)
    idx = data.window_indices(2000, np.random.default_rng(1))
    ages = idx[:, 1] - 1 - idx[:, 0]  # frames between memory and first context frame
    has_history = idx[:, 1] > 0
    assert np.all(ages[~has_history] == -1)  # padded with the first context frame itself
    assert np.median(ages[has_history & (idx[:, 1] > 30)]) < 5  # uniform would give ~15+


def test_wrong_frame_size_and_short_episodes_are_named():
    with pytest.raises(ValueError, match=r"has 8x8 frames; the model takes 64x64"):
        EpisodeSet([synthetic(20)], 2, 3, image_size=64)
    with pytest.raises(ValueError, match="fewer than context"):
        EpisodeSet([synthetic(4)], 2, 3)


def test_bag_episodes_equal_the_simulator_core(tmp_path, episodes):
    collect(episodes=2, seed=4, out=tmp_path, steps=12)
    loaded = load_episodes(tmp_path)
    assert [e.seed for e in loaded] == [4, 5]
    for bag_ep, sim_ep in zip(loaded, episodes, strict=True):
        np.testing.assert_array_equal(bag_ep.frames, sim_ep.frames)
        np.testing.assert_array_equal(bag_ep.labels, sim_ep.labels)
        np.testing.assert_allclose(bag_ep.joints, sim_ep.joints)
        np.testing.assert_allclose(bag_ep.actions, sim_ep.actions)
        assert bag_ep.joint_names == sim_ep.joint_names


def test_bags_without_the_needed_topics_are_named(tmp_path):
    with BagWriter(tmp_path / "only_images") as bag:
        image = numpy_to_image(np.zeros((8, 8, 3), np.uint8), "rgb8", 0.0, "cam")
        bag.write(topics.IMAGE, 1, image)
    with pytest.raises(EpisodeBagError, match=r"lacks topic\(s\) \['/joint_states', '/wm/plan'\]"):
        load_episode(tmp_path / "only_images")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EpisodeBagError, match="holds no rosbag2 bags"):
        load_episodes(tmp_path / "empty")
    with pytest.raises(EpisodeBagError, match="does not exist"):
        load_episodes(tmp_path / "nothing")
