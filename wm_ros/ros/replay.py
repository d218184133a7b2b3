"""Bags -> the numpy streams `wm-ros eval replay` evaluates (wm_ros.eval.replay), and the plans
and diagnostics a `wm-ros bringup replay` run recorded.

Every problem is a `ReplayBagError` naming the bag and what is wrong: a missing topic (with the
topics the bag has), a topic of an unexpected or uninstalled message type, an unreadable bag. A
bag that turns out truncated or corrupt while reading keeps what was read before the damage:
the streams come back marked `partial` with the reason in `problems`. Messages that cannot be
decoded (an image of an unknown encoding, a joint state lacking a joint) are skipped, counted
and the first reason kept.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
from rclpy.serialization import deserialize_message
from tqdm import tqdm

from wm_ros.eval.replay import RecordedStreams
from wm_ros.ros import topics
from wm_ros.ros.bag import (
    BagError,
    CorruptBagError,
    NotABagError,
    TopicInfo,
    import_message_type,
    open_bag,
    salvage_mcap,
)
from wm_ros.ros.conversions import (
    image_msg_to_rgb,
    image_to_numpy,
    joint_state_to_vector,
    time_to_ns,
    trajectory_msg_to_core,
)

log = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
JOINT_TYPE = "sensor_msgs/msg/JointState"
PLAN_TYPE = "trajectory_msgs/msg/JointTrajectory"
DIAGNOSTICS_TYPE = "diagnostic_msgs/msg/DiagnosticArray"
# Image topics that are not the camera (never picked automatically).
_NOT_CAMERA = (topics.SEGMENTATION, topics.GOAL_IMAGE, topics.IMAGINED, topics.PROMPT)


class ReplayBagError(ValueError):
    """A bag that cannot be replayed; the message names the bag and the problem."""


def _listing(bag_topics) -> str:
    return ", ".join(f"{t} [{i.msgtype}]" for t, i in sorted(bag_topics.items())) or "none"


def _pick_image_topic(path: Path, bag_topics, wanted: str | None) -> str:
    if wanted is not None:
        return wanted
    if topics.IMAGE in bag_topics:
        return topics.IMAGE
    candidates = [
        t for t, i in bag_topics.items() if i.msgtype in IMAGE_TYPES and t not in _NOT_CAMERA
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ReplayBagError(
            f"{path} has no camera topic (sensor_msgs/Image or CompressedImage); "
            f"its topics: {_listing(bag_topics)}"
        )
    raise ReplayBagError(
        f"{path} has several image topics {sorted(candidates)}: pick one with --image-topic"
    )


def _check_topic(path: Path, bag_topics, topic: str, types: tuple[str, ...], role: str) -> None:
    if topic not in bag_topics:
        raise ReplayBagError(
            f"{path} lacks the {role} topic {topic} ({' or '.join(types)}); its topics: "
            f"{_listing(bag_topics)}"
        )
    msgtype = bag_topics[topic].msgtype
    if msgtype not in types:
        raise ReplayBagError(
            f"{path}: {role} topic {topic} holds {msgtype}, an unexpected message type "
            f"(expected {' or '.join(types)})"
        )
    if bag_topics[topic].count == 0:
        raise ReplayBagError(f"{path}: {role} topic {topic} has no messages")


class _SalvagedReader:
    """The messages `salvage_mcap` recovered from a damaged MCAP bag, read like a BagReader."""

    storage = "mcap"

    def __init__(self, path: Path, cause: BagError) -> None:
        try:
            self.salvaged = salvage_mcap(path)
        except (BagError, OSError):
            raise ReplayBagError(str(cause)) from None
        if not self.salvaged.messages:
            raise ReplayBagError(f"{cause}; no complete message could be salvaged") from None
        counts: dict[str, int] = {}
        for m in self.salvaged.messages:
            counts[m.topic] = counts.get(m.topic, 0) + 1
        self.topics = {
            t: TopicInfo(t, msgtype, counts.get(t, 0))
            for t, msgtype in self.salvaged.topics.items()
        }
        self.problem = (
            f"{cause}: read {len(self.salvaged.messages)} complete messages from the start of "
            f"the file without its index ({self.salvaged.error or 'no summary'}); results "
            "cover only those"
        )

    def messages(self, topics):
        wanted = set(topics)
        return (m for m in self.salvaged.messages if m.topic in wanted)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _stamp(msg, bag_ns: int) -> tuple[int, bool]:
    """Header stamp in ns, or the bag stamp when the header is zero (and whether it was)."""
    ns = time_to_ns(msg.header.stamp)
    return (ns, True) if ns > 0 else (bag_ns, False)


def read_streams(
    path: str | Path,
    *,
    image_topic: str | None = None,
    joints_topic: str = topics.JOINT_STATES,
    plan_topic: str | None = topics.PLAN,
    segmentation_topic: str | None = topics.SEGMENTATION,
    progress: bool = True,
) -> RecordedStreams:
    """Read camera frames, joint states and, when present, plans and segmentation labels.

    Args:
        path: the bag (directory, .mcap or .db3).
        image_topic: camera topic; default /camera/image_raw, else the bag's only image topic.
        joints_topic: sensor_msgs/JointState topic; joints keep the first message's order.
        plan_topic, segmentation_topic: optional topics, read when the bag has them.
        progress: a tqdm bar over messages.
    Raises:
        ReplayBagError: see the module doc.
    """
    path = Path(path)
    problems: list[str] = []
    partial = False
    try:
        bag = open_bag(path)
    except (CorruptBagError, NotABagError) as err:
        if not (path.suffix == ".mcap" or any(path.glob("*.mcap"))):
            raise ReplayBagError(str(err)) from None
        bag = _SalvagedReader(path, err)  # a killed recording: keep what it holds
        problems.append(bag.problem)
        partial = True
    except BagError as err:
        raise ReplayBagError(str(err)) from None
    with bag:
        bag_topics = bag.topics
        image_topic = _pick_image_topic(path, bag_topics, image_topic)
        _check_topic(path, bag_topics, image_topic, IMAGE_TYPES, "camera")
        _check_topic(path, bag_topics, joints_topic, (JOINT_TYPE,), "joint state")
        roles = {image_topic: "image", joints_topic: "joints"}
        if plan_topic and plan_topic in bag_topics:
            _check_topic(path, bag_topics, plan_topic, (PLAN_TYPE,), "plan")
            roles[plan_topic] = "plan"
        if segmentation_topic and segmentation_topic in bag_topics:
            _check_topic(path, bag_topics, segmentation_topic, IMAGE_TYPES[:1], "segmentation")
            roles[segmentation_topic] = "labels"
        try:
            classes = {t: import_message_type(bag_topics[t].msgtype) for t in roles}
        except BagError as err:
            raise ReplayBagError(f"{path}: {err}") from None
        data: dict[str, tuple[list, list]] = {role: ([], []) for role in roles.values()}
        names: list[str] | None = None
        header_stamps = bag_stamps = 0
        skipped: dict[str, list] = {}
        total = sum(bag_topics[t].count for t in roles)
        bar = tqdm(total=total, desc="read bag", unit="msg", disable=not progress)
        read = 0
        try:
            for item in bag.messages(list(roles)):
                read += 1
                bar.update(1)
                role = roles[item.topic]
                try:
                    msg = deserialize_message(item.data, classes[item.topic])
                    stamp, from_header = _stamp(msg, item.stamp_ns)
                    if role == "image":
                        value = image_msg_to_rgb(msg).copy()
                    elif role == "labels":
                        value = image_to_numpy(msg).astype(np.uint8)
                    elif role == "joints":
                        if names is None:
                            names = list(msg.name)
                        value = joint_state_to_vector(msg, names)[0]
                    else:
                        traj = trajectory_msg_to_core(msg)
                        if not len(traj.positions):
                            raise ValueError("an empty trajectory")
                        value = (traj.joint_names, np.asarray(traj.positions)[0])
                except ValueError as err:
                    entry = skipped.setdefault(item.topic, [0, str(err)])
                    entry[0] += 1
                    continue
                header_stamps += from_header
                bag_stamps += not from_header
                data[role][0].append(stamp)
                data[role][1].append(value)
        except CorruptBagError as err:
            partial = True
            problems.append(
                f"bag damaged after {read} of {total} messages; results cover what was read "
                f"before: {err}"
            )
        finally:
            bar.close()
    for topic, (count, reason) in skipped.items():
        problems.append(f"skipped {count} message(s) on {topic} that could not be used: {reason}")
    frames_ns, frames = data["image"]
    joint_ns, joint_rows = data["joints"]
    if not frames:
        raise ReplayBagError(f"{path}: no camera frame on {image_topic} could be used; {problems}")
    if not joint_rows:
        raise ReplayBagError(f"{path}: no joint state on {joints_topic} could be used; {problems}")
    sizes = {f.shape for f in frames}
    if len(sizes) != 1:
        raise ReplayBagError(f"{path}: camera frames change size within the bag: {sorted(sizes)}")
    plan_ns = plans = None
    if "plan" in data and data["plan"][0]:
        rows = []  # each plan's first targets, in the joint states' column order
        for plan_names, first in data["plan"][1]:
            missing = [n for n in names if n not in plan_names]
            if missing:
                raise ReplayBagError(f"{path}: plans on {plan_topic} lack joints {missing}")
            rows.append(first[[list(plan_names).index(n) for n in names]])
        plan_ns, plans = np.asarray(data["plan"][0], np.int64), np.stack(rows)
    label_ns = labels = None
    if "labels" in data and data["labels"][0]:
        label_ns, labels = np.asarray(data["labels"][0], np.int64), data["labels"][1]
    return RecordedStreams(
        bag=str(path),
        storage=bag.storage,
        frames=frames,
        frame_ns=np.asarray(frames_ns, np.int64),
        joint_names=tuple(names or ()),
        joint_ns=np.asarray(joint_ns, np.int64),
        joints=np.stack(joint_rows),
        plan_ns=plan_ns,
        plans=plans,
        label_ns=label_ns,
        labels=labels,
        topics={role: f"{t} [{bag_topics[t].msgtype}]" for t, role in roles.items()},
        stamp_source="header" if bag_stamps == 0 else ("bag" if header_stamps == 0 else "mixed"),
        problems=problems,
        partial=partial,
    )


def read_plan_bag(path: str | Path, plan_topic: str = topics.PLAN) -> dict:
    """Plans and planner diagnostics recorded during `wm-ros bringup replay`.

    Returns:
        "plans": [(stamp_ns, times (T,), joint_names, positions (T, J))] in recording order;
        "latency_ms": p50/p95/p99/max over the distinct replan latencies the planner reported
        on /diagnostics (None without diagnostics); "counts": its last counters (published,
        skipped_*, errors); "notes".
    Raises:
        ReplayBagError: unreadable bag or no plan topic.
    """
    path = Path(path)
    try:
        bag = open_bag(path)
    except BagError as err:
        raise ReplayBagError(str(err)) from None
    notes: list[str] = []
    plans, latencies, counts = [], [], {}
    with bag:
        if plan_topic not in bag.topics:
            raise ReplayBagError(
                f"{path} holds no plans on {plan_topic}: did the planner publish? (topics: "
                f"{_listing(bag.topics)})"
            )
        wanted = [plan_topic]
        if topics.DIAGNOSTICS in bag.topics:
            wanted.append(topics.DIAGNOSTICS)
        else:
            notes.append("no /diagnostics recorded: no planning latency")
        try:
            for topic, _stamp_ns, msg in bag.read_messages(wanted):
                if topic == plan_topic:
                    traj = trajectory_msg_to_core(msg)
                    stamp = time_to_ns(msg.header.stamp)
                    plans.append((stamp, traj.times, tuple(traj.joint_names), traj.positions))
                    continue
                for status in msg.status:
                    if "planner" not in status.name:
                        continue
                    values = {kv.key: kv.value for kv in status.values}
                    with contextlib.suppress(TypeError, ValueError):
                        if float(values.get("latency_ms")) > 0:  # 0: no replan yet
                            latencies.append(float(values["latency_ms"]))
                    counts = {
                        k: int(v)
                        for k, v in values.items()
                        if (k == "published" or k.startswith(("skipped_", "errors")))
                        and v.isdigit()
                    }
        except CorruptBagError as err:
            notes.append(f"recording damaged, kept what was read: {err}")
        except BagError as err:
            raise ReplayBagError(f"{path}: {err}") from None
    # The planner reports its last latency every second: consecutive repeats are one replan.
    distinct = [v for i, v in enumerate(latencies) if i == 0 or v != latencies[i - 1]]
    latency = None
    if distinct:
        from wm_ros.eval.timing import latency_percentiles

        latency = {**latency_percentiles(distinct), "max": max(distinct), "samples": len(distinct)}
    return {"plans": plans, "latency_ms": latency, "counts": counts, "notes": notes}
