"""rosbag2 episodes (as `wm-ros collect` or a robot records them) -> numpy Episodes.

Needed topics: /camera/image_raw (rgb8/bgr8), /joint_states, /wm/plan (the commanded joint
target of each control step). /sim/segmentation (mono8 labels) is used when present. Each camera
frame takes the latest joint state and the latest plan stamped at or before it; a frame before
the first plan takes the first plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wm_ros.data.episodes import Episode
from wm_ros.ros import topics
from wm_ros.ros.bag import BagError, open_bag
from wm_ros.ros.conversions import (
    image_to_numpy,
    joint_state_to_vector,
    to_rgb,
    trajectory_msg_to_core,
)

REQUIRED = (topics.IMAGE, topics.JOINT_STATES, topics.PLAN)


class EpisodeBagError(ValueError):
    """A bag that cannot become an episode; the message names the bag and the problem."""


def _latest_before(stamps: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Index of the last of sorted `stamps` <= each of `at` (0 where none is)."""
    return np.clip(np.searchsorted(stamps, at, side="right") - 1, 0, None)


def load_episode(path: str | Path, joint_names: Sequence[str] | None = None) -> Episode:
    """Read one episode bag.

    Args:
        path: the bag folder.
        joint_names: joints to keep, in this order; default the first joint state's names.
    Raises:
        EpisodeBagError: unreadable bag, missing topics, or no frames / joint states / plans.
    """
    path = Path(path)
    try:
        bag = open_bag(path)
    except BagError as err:
        raise EpisodeBagError(f"{path}: {err}") from None
    with bag:
        missing = [t for t in REQUIRED if t not in bag.topics]
        if missing:
            raise EpisodeBagError(
                f"{path} lacks topic(s) {missing} needed for training (has {sorted(bag.topics)})"
            )
        wanted = [*REQUIRED, topics.SEGMENTATION] if topics.SEGMENTATION in bag.topics else REQUIRED
        frames, frame_t, labels, label_t = [], [], [], []
        joints, joint_t, plans, plan_t = [], [], [], []
        names = list(joint_names) if joint_names is not None else None
        for topic, stamp, msg in bag.read_messages(wanted):
            if topic == topics.IMAGE:
                frames.append(to_rgb(image_to_numpy(msg), msg.encoding).copy())
                frame_t.append(stamp)
            elif topic == topics.SEGMENTATION:
                labels.append(image_to_numpy(msg).astype(np.uint8))
                label_t.append(stamp)
            elif topic == topics.JOINT_STATES:
                if names is None:
                    names = list(msg.name)
                joints.append(joint_state_to_vector(msg, names)[0])
                joint_t.append(stamp)
            else:
                traj = trajectory_msg_to_core(msg)
                order = [list(traj.joint_names).index(n) for n in names or traj.joint_names]
                plans.append(np.asarray(traj.positions)[0, order])
                plan_t.append(stamp)
    if not frames or not joints or not plans:
        raise EpisodeBagError(f"{path}: no frames, joint states or plans in the bag")
    at = np.asarray(frame_t)
    q = np.stack(joints)[_latest_before(np.asarray(joint_t), at)]  # (T, J)
    a = np.stack(plans)[_latest_before(np.asarray(plan_t), at)]  # (T, J)
    seg = None
    if len(labels) == len(frames):
        seg = np.stack(labels)[_latest_before(np.asarray(label_t), at)]
    try:
        seed = int(path.name.rsplit("_", 1)[-1])
    except ValueError:
        seed = None
    sizes = {f.shape for f in frames}
    if len(sizes) != 1:
        raise EpisodeBagError(f"{path}: camera frames change size within the bag: {sorted(sizes)}")
    return Episode(
        frames=np.stack(frames),
        joints=q.astype(np.float32),
        actions=a.astype(np.float32),
        labels=seg,
        joint_names=tuple(names or ()),
        seed=seed,
    )


def find_bags(directory: str | Path) -> list[Path]:
    """Bag folders (with metadata.yaml) in `directory`, sorted; the folder itself if it is one.

    Raises:
        EpisodeBagError: the folder does not exist or holds no bags.
    """
    directory = Path(directory)
    if (directory / "metadata.yaml").is_file():
        return [directory]
    if not directory.is_dir():
        raise EpisodeBagError(f"data folder {directory} does not exist")
    bags = sorted(p.parent for p in directory.glob("*/metadata.yaml"))
    if not bags:
        raise EpisodeBagError(f"{directory} holds no rosbag2 bags (folders with metadata.yaml)")
    return bags


def load_episodes(directory: str | Path, joint_names: Sequence[str] | None = None) -> list[Episode]:
    """All episode bags under `directory` (see find_bags), in name order."""
    return [load_episode(p, joint_names) for p in find_bags(directory)]
