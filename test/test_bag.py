"""rosbag2 writing, reading, recording and playback, over real DDS on loopback.

The module uses its own ROS domain (through an rclpy Context), derived from the pytest worker
and process, so parallel workers never see each other's topics; topic names carry a per-test
prefix as well.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState

from test.conftest import module_domain
from wm_ros.ros.bag import (
    BagError,
    BagNotFoundError,
    BagWriter,
    CorruptBagError,
    MessageTypeError,
    NotABagError,
    UnknownTopicError,
    add_bag_arguments,
    open_bag,
    play,
    record,
)
from wm_ros.ros.conversions import (
    image_to_numpy,
    ns_to_time,
    numpy_to_image,
    vector_to_joint_state,
)
from wm_ros.ros.qos import latched_qos, reliable_qos

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
DOMAIN = module_domain(__name__)
JOINTS = ["shoulder", "elbow", "wrist"]


@pytest.fixture(scope="module")
def ctx():
    context = Context()
    rclpy.init(context=context, domain_id=DOMAIN)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def prefix(request) -> str:
    """A topic namespace unique to this test (and process)."""
    name = request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    return f"/t{os.getpid()}/{name}"


def installed_hash(msgtype: str) -> str:
    pkg, _, name = msgtype.split("/")
    data = json.loads((Path(sys.prefix) / "share" / pkg / "msg" / f"{name}.json").read_text())
    return next(h["hash_string"] for h in data["type_hashes"] if h["type_name"] == msgtype)


def frames(n: int, seed: int = 0, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


class Listener:
    """A node with raw subscriptions, spun on its own thread; shut down and joined on exit."""

    def __init__(self, context: Context, topics: dict[str, tuple[type, QoSProfile]]) -> None:
        self.node = Node(f"listener_{id(self)}", context=context)
        self.received: dict[str, list[bytes]] = {t: [] for t in topics}
        self.times: dict[str, list[float]] = {t: [] for t in topics}
        self.subs = {}
        for topic, (cls, qos) in topics.items():
            self.subs[topic] = self.node.create_subscription(
                cls, topic, self._callback(topic), qos, raw=True
            )
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)

    def _callback(self, topic):
        def on_message(data: bytes) -> None:
            self.times[topic].append(time.monotonic())
            self.received[topic].append(data)

        return on_message

    def wait_for(self, counts: dict[str, int], timeout: float = 20.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(len(self.received[t]) >= n for t, n in counts.items()):
                return True
            time.sleep(0.01)
        return False

    def __enter__(self) -> Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()


def wait_matched(publishers, count: int = 1, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(p.get_subscription_count() >= count for p in publishers):
            return
        time.sleep(0.01)
    raise AssertionError(f"publishers not matched within {timeout} s")


def write_sample_bag(path: Path, storage: str, n: int = 40, seed: int = 0):
    """n images (as messages) and n joint states (as CDR bytes) at 33 ms; returns the inputs."""
    images = frames(n, seed)
    rng = np.random.default_rng(seed + 1)
    joints = rng.normal(size=(n, len(JOINTS)))
    stamps = [1_700_000_000_000_000_000 + i * 33_000_000 for i in range(n)]
    from rclpy.serialization import serialize_message

    with BagWriter(path, storage) as bag:
        bag.add_topic("/camera/image_raw", "sensor_msgs/msg/Image")
        bag.add_topic("/joint_states", "sensor_msgs/msg/JointState", [reliable_qos(10)])
        for i, stamp in enumerate(stamps):
            bag.write(
                "/camera/image_raw", stamp, numpy_to_image(images[i], "rgb8", ns_to_time(stamp))
            )
            js = vector_to_joint_state(JOINTS, joints[i], None, ns_to_time(stamp))
            bag.write("/joint_states", stamp + 1000, serialize_message(js))
    return images, joints, stamps


# --- writing and reading (no DDS) -------------------------------------------------------------


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_metadata_and_contents(tmp_path, storage):
    path = tmp_path / "bag"
    images, joints, stamps = write_sample_bag(path, storage)
    n = len(stamps)

    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9
    assert meta["storage_identifier"] == storage
    files = meta["relative_file_paths"]
    assert len(files) == 1 and (path / files[0]).is_file()
    assert files[0].endswith(".mcap" if storage == "mcap" else ".db3")
    assert meta["message_count"] == 2 * n
    assert meta["starting_time"]["nanoseconds_since_epoch"] == stamps[0]
    assert meta["duration"]["nanoseconds"] == stamps[-1] + 1000 - stamps[0]
    assert meta["files"][0]["path"] == files[0]
    assert meta["files"][0]["message_count"] == 2 * n
    topics = {t["topic_metadata"]["name"]: t for t in meta["topics_with_message_count"]}
    assert set(topics) == {"/camera/image_raw", "/joint_states"}
    for name, msgtype in [
        ("/camera/image_raw", "sensor_msgs/msg/Image"),
        ("/joint_states", "sensor_msgs/msg/JointState"),
    ]:
        entry = topics[name]
        assert entry["message_count"] == n
        assert entry["topic_metadata"]["type"] == msgtype
        assert entry["topic_metadata"]["serialization_format"] == "cdr"
        assert entry["topic_metadata"]["type_description_hash"] == installed_hash(msgtype)
    qos = topics["/joint_states"]["topic_metadata"]["offered_qos_profiles"]
    assert qos[0]["reliability"] == "reliable" and qos[0]["depth"] == 10

    with open_bag(path) as bag:
        assert bag.storage == storage
        assert {t: i.count for t, i in bag.topics.items()} == {
            "/camera/image_raw": n,
            "/joint_states": n,
        }
        assert (bag.start_ns, bag.end_ns) == (stamps[0], stamps[-1] + 1000)
        got = list(bag.read_messages(["/camera/image_raw"]))
        assert [stamp for _, stamp, _ in got] == stamps
        for (_, _, msg), frame in zip(got, images, strict=True):
            np.testing.assert_array_equal(image_to_numpy(msg), frame)
        js = [deserialize_message(m.data, JointState) for m in bag.messages(["/joint_states"])]
        np.testing.assert_array_equal([m.position for m in js], joints)

    # An independent reader (rosbags' AnyReader with its own Kilted definitions) agrees.
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        conns = [c for c in reader.connections if c.topic == "/camera/image_raw"]
        assert conns[0].msgdef.data.startswith("std_msgs/Header header")
        decoded = [reader.deserialize(raw, conn.msgtype) for conn, _, raw in reader.messages(conns)]
        assert len(decoded) == n
        np.testing.assert_array_equal(decoded[7].data.reshape(64, 64, 3), images[7])
        assert decoded[7].header.stamp.sec * 10**9 + decoded[7].header.stamp.nanosec == stamps[7]


def test_writer_keeps_what_was_written_when_the_block_raises(tmp_path):
    path = tmp_path / "bag"
    with pytest.raises(RuntimeError, match="boom"), BagWriter(path) as bag:
        for i, frame in enumerate(frames(12)):
            bag.write("/camera/image_raw", i * 10**6, numpy_to_image(frame, "rgb8"))
        raise RuntimeError("boom")
    with open_bag(path) as reader:
        assert reader.topics["/camera/image_raw"].count == 12
        assert len(list(reader.messages())) == 12


def test_writer_rejects_misuse(tmp_path):
    path = tmp_path / "bag"
    with BagWriter(path) as bag:
        bag.add_topic("/img", "sensor_msgs/Image")  # short form accepted
        with pytest.raises(BagError, match=r"already in bag .* as sensor_msgs/msg/Image"):
            bag.add_topic("/img", "sensor_msgs/msg/JointState")
        with pytest.raises(BagError, match="topic /raw was not added"):
            bag.write("/raw", 0, b"\x00\x01\x00\x00")
        with pytest.raises(BagError, match="holds sensor_msgs/msg/Image, got a sensor_msgs"):
            bag.write("/img", 0, JointState())
        with pytest.raises(BagError, match="cannot be negative"):
            bag.write("/img", -1, Image())
        with pytest.raises(MessageTypeError, match="no definition for message type"):
            bag.add_topic("/x", "wm_nonexistent_msgs/msg/Thing")
        with pytest.raises(MessageTypeError, match="malformed message type"):
            bag.add_topic("/x", "Image")
    with pytest.raises(BagError, match="is closed"):
        bag.write("/img", 0, Image())
    with pytest.raises(BagError, match="exists already"):
        BagWriter(path)
    with pytest.raises(BagError, match="unknown bag storage 'zip'"):
        BagWriter(tmp_path / "other", storage="zip")


def test_writer_speed_for_episode_collection(tmp_path):
    """Collecting episodes writes hundreds of 64x64 frames (+ joint states) per second."""
    images = frames(20)
    n = 300
    start = time.perf_counter()
    with BagWriter(tmp_path / "bag") as bag:
        for i in range(n):
            stamp = i * 10**7
            bag.write("/camera/image_raw", stamp, numpy_to_image(images[i % 20], "rgb8"))
            bag.write("/joint_states", stamp, vector_to_joint_state(JOINTS, np.zeros(3)))
    rate = n / (time.perf_counter() - start)
    assert rate > 300, f"only {rate:.0f} image + joint-state pairs per second"


# --- reading errors ---------------------------------------------------------------------------


def test_missing_and_non_bags(tmp_path):
    with pytest.raises(BagNotFoundError, match=r"bag not found: .*nowhere"):
        open_bag(tmp_path / "nowhere")
    with pytest.raises(NotABagError, match=r"has no metadata.yaml$"):
        open_bag(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NotABagError, match="expected a bag directory"):
        open_bag(tmp_path / "notes.txt")
    # A recording that was never closed: storage file, no metadata.yaml.
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "crashed.mcap").write_bytes(b"\x89MCAP0\r\n")
    with pytest.raises(NotABagError, match=r"holds \['crashed.mcap'\].*never closed"):
        open_bag(crashed)
    # isinstance checks that callers rely on
    assert issubclass(BagNotFoundError, FileNotFoundError)
    assert issubclass(UnknownTopicError, LookupError)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("keep", [0.0, 0.1, 0.6, 0.95])
def test_truncated_bags_raise_corrupt_bag_error(tmp_path, storage, keep):
    source = tmp_path / "bag"
    write_sample_bag(source, storage, n=30)
    [storage_file] = [p for p in source.iterdir() if p.suffix in (".mcap", ".db3")]
    size = storage_file.stat().st_size
    with storage_file.open("r+b") as f:
        f.truncate(int(size * keep))
    with pytest.raises(CorruptBagError, match=r"bag .*bag"), open_bag(source) as bag:
        list(bag.messages())


def test_corrupt_metadata_and_unknown_topics(tmp_path):
    path = tmp_path / "bag"
    write_sample_bag(path, "mcap", n=3)
    with open_bag(path) as bag, pytest.raises(UnknownTopicError, match=r"'/nope'.* it has"):
        bag.messages(["/camera/image_raw", "/nope"])
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    with pytest.raises(CorruptBagError, match="broken"):
        open_bag(broken)
    (broken / "metadata.yaml").write_text("something_else: 1\n")
    with pytest.raises(CorruptBagError, match="rosbag2_bagfile_information"):
        open_bag(broken)


# --- signals ------------------------------------------------------------------------------

WRITER_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time, numpy as np
    # SIGINT as Python sets it up from a terminal: a job started in the background (`make test
    # &`, nohup) inherits SIGINT ignored, and Python keeps it ignored, so no signal would arrive.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from wm_ros.ros.bag import BagWriter
    from wm_ros.ros.conversions import numpy_to_image
    frame = numpy_to_image(np.zeros((16, 16, 3), np.uint8), "rgb8")
    with BagWriter(sys.argv[1], sys.argv[2]) as bag:
        i = 0
        while True:
            # Bounded (at most 40 MB): unbounded 64x64 frames grew the bag 330 MB/s. (A writer
            # that outlived the 30 s wait after SIGINT had inherited SIGINT ignored: above.)
            if i < 50_000:
                bag.write("/camera/image_raw", i * 1000, frame)
                i += 1
            else:
                time.sleep(0.01)
            if i == 200:
                print("ready", flush=True)
    """
)


@pytest.mark.parametrize(("sig", "storage"), [("SIGINT", "mcap"), ("SIGTERM", "sqlite3")])
def test_writer_closes_the_bag_on_signals(tmp_path, sig, storage):
    path = tmp_path / "bag"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), storage],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(0.1)
        proc.send_signal(getattr(signal, sig))
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode != 0  # interrupted, not finished
    with open_bag(path) as bag:
        count = bag.topics["/camera/image_raw"].count
        assert count >= 200
        assert len(list(bag.messages())) == count


def test_killed_writer_is_reported_as_never_closed(tmp_path):
    """SIGKILL cannot be handled: no metadata.yaml and no MCAP footer; reading says so."""
    path = tmp_path / "bag"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), "mcap"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(timeout=30)
    with pytest.raises(NotABagError, match=r"holds \['bag.mcap'\]: a recording that was never"):
        open_bag(path)
    with pytest.raises(CorruptBagError, match="corrupt or truncated"):
        open_bag(path / "bag.mcap")


# --- record and play over DDS -------------------------------------------------------------


def start_recorder(ctx, topics, out, storage):
    stop = threading.Event()
    result = {}

    def run():
        result["summary"] = record(topics, out, storage, stop, context=ctx)

    thread = threading.Thread(target=run)
    thread.start()
    return stop, thread, result


@pytest.mark.parametrize(("storage", "all_topics"), [("mcap", False), ("sqlite3", True)])
def test_record_then_play_delivers_every_message(ctx, tmp_path, prefix, storage, all_topics):
    n = 120
    img_topic, js_topic, goal_topic = f"{prefix}/image", f"{prefix}/joints", f"{prefix}/goal"
    node = Node("source", context=ctx)
    try:
        goal_pub = node.create_publisher(Image, goal_topic, latched_qos())
        goal = numpy_to_image(frames(1, seed=9)[0], "rgb8", 1.0, "cam")
        goal_pub.publish(goal)  # latched, published before the recorder exists
        img_pub = node.create_publisher(Image, img_topic, reliable_qos(n))
        js_pub = node.create_publisher(JointState, js_topic, reliable_qos(n))
        topics = None if all_topics else [img_topic, js_topic, goal_topic]
        out = tmp_path / "bag"
        stop, thread, result = start_recorder(ctx, topics, out, storage)
        try:
            wait_matched([img_pub, js_pub])
            images = frames(n, seed=1)
            sent_images, sent_joints = [], []
            for i in range(n):
                img = numpy_to_image(images[i], "rgb8", 0.01 * i, "cam")
                js = vector_to_joint_state(JOINTS, [i, -i, 0.5 * i], [1.0, 2.0, 3.0], 0.01 * i)
                img_pub.publish(img)
                js_pub.publish(js)
                sent_images.append(img)
                sent_joints.append(js)
                time.sleep(0.002)  # ~300 messages/s in all
            assert img_pub.wait_for_all_acked(Duration(seconds=10))
            assert js_pub.wait_for_all_acked(Duration(seconds=10))
        finally:
            stop.set()
            thread.join(timeout=30)
        assert not thread.is_alive()
        summary = result["summary"]
        assert summary.counts[img_topic] == n and summary.counts[js_topic] == n
        assert summary.counts[goal_topic] == 1
    finally:
        node.destroy_node()

    with open_bag(out) as bag:
        assert bag.storage == storage
        info = bag.topics
        assert (info[img_topic].count, info[js_topic].count, info[goal_topic].count) == (n, n, 1)
        assert info[goal_topic].qos[0].durability.name == "TRANSIENT_LOCAL"
        recorded = {t: [m.data for m in bag.messages([t])] for t in (img_topic, js_topic)}
        stamps = [m.stamp_ns for m in bag.messages([img_topic])]
    assert stamps == sorted(stamps) and stamps[-1] - stamps[0] > 0
    assert [deserialize_message(d, Image) for d in recorded[img_topic]] == sent_images
    assert [deserialize_message(d, JointState) for d in recorded[js_topic]] == sent_joints

    # Play it back, twice as fast, to fresh subscribers; the goal arrives latched.
    topics = {
        img_topic: (Image, reliable_qos(n)),
        js_topic: (JointState, reliable_qos(n)),
        goal_topic: (Image, latched_qos()),
    }
    with Listener(ctx, topics) as listener:
        summary = play(
            out, rate=2.0, topics=[img_topic, js_topic, goal_topic], context=ctx,
            wait_for_subscribers=1,
        )  # fmt: skip
        assert summary.published == {img_topic: n, js_topic: n, goal_topic: 1}
        assert listener.wait_for({img_topic: n, js_topic: n, goal_topic: 1})
        time.sleep(0.2)
    # Nothing lost, nothing added, bytes exactly as recorded, in order.
    assert listener.received[img_topic] == recorded[img_topic]
    assert listener.received[js_topic] == recorded[js_topic]
    assert deserialize_message(listener.received[goal_topic][-1], Image) == goal


def test_record_latched_topic_that_appears_later(ctx, tmp_path, prefix):
    topic = f"{prefix}/goal_image"
    out = tmp_path / "bag"
    stop, thread, result = start_recorder(ctx, [topic], out, "mcap")
    node = Node("late_source", context=ctx)
    try:
        time.sleep(0.3)  # the recorder is already running, waiting for the topic
        pub = node.create_publisher(Image, topic, latched_qos())
        pub.publish(numpy_to_image(np.ones((8, 8, 3), np.uint8), "rgb8", 2.0))
        end = time.monotonic() + 20
        while time.monotonic() < end and pub.get_subscription_count() < 1:
            time.sleep(0.01)
        assert pub.wait_for_all_acked(Duration(seconds=10))
        time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
        node.destroy_node()
    assert result["summary"].counts == {topic: 1}
    assert result["summary"].missing == []


def test_sigint_during_record_keeps_messages(ctx, tmp_path, prefix):
    topic = f"{prefix}/joints"
    out = tmp_path / "bag"
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "wm_ros.ros.bag", "record", topic, "-o", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    node = Node("sigint_source", context=ctx)
    try:
        pub = node.create_publisher(JointState, topic, reliable_qos(100))
        wait_matched([pub], timeout=30)
        for i in range(50):
            pub.publish(vector_to_joint_state(JOINTS, [i, i, i]))
        assert pub.wait_for_all_acked(Duration(seconds=10))
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        node.destroy_node()
    assert proc.returncode == 0, stderr
    with open_bag(out) as bag:
        msgs = [m for _, _, m in bag.read_messages([topic])]
    assert [m.position[0] for m in msgs] == list(range(50))


def test_play_timing_rate_clock_offset_and_loop(ctx, tmp_path, prefix):
    """20 intervals of 50 ms (1 s of bag); played at 2x it takes 0.5 s, /clock follows."""
    topic = f"{prefix}/joints"
    path = tmp_path / "bag"
    t0 = 1_000_000_000_000
    stamps = [t0 + i * 50_000_000 for i in range(21)]
    with BagWriter(path) as bag:
        for i, stamp in enumerate(stamps):
            bag.write(topic, stamp, vector_to_joint_state(JOINTS, [i, 0, 0]))
    listen = {topic: (JointState, reliable_qos(100)), "/clock": (Clock, reliable_qos(100))}
    with Listener(ctx, listen) as listener:
        summary = play(path, rate=2.0, publish_clock=True, context=ctx, wait_for_subscribers=1)
        assert summary.published == {topic: 21}
        assert listener.wait_for({topic: 21})
        arrival = listener.times[topic]
        clocks = [deserialize_message(d, Clock).clock for d in listener.received["/clock"]]
    elapsed = arrival[-1] - arrival[0]
    assert 0.4 < elapsed < 0.8, f"2x playback of 1 s took {elapsed:.3f} s"
    clock_ns = [c.sec * 10**9 + c.nanosec for c in clocks]
    assert len(clock_ns) >= 21  # one per message plus ticks in between
    assert clock_ns == sorted(clock_ns)
    assert clock_ns[0] >= t0 and clock_ns[-1] == stamps[-1]

    # start_offset skips the first half second of bag time.
    with Listener(ctx, {topic: (JointState, reliable_qos(100))}) as listener:
        summary = play(path, rate=4.0, start_offset=0.5, context=ctx, wait_for_subscribers=1)
        assert summary.published == {topic: 11}
        assert listener.wait_for({topic: 11})
        first = deserialize_message(listener.received[topic][0], JointState)
    assert first.position[0] == 10

    # loop until stopped
    stop = threading.Event()
    with Listener(ctx, {topic: (JointState, reliable_qos(100))}) as listener:
        result = {}
        thread = threading.Thread(
            target=lambda: result.setdefault(
                "s",
                play(path, rate=10.0, loop=True, stop=stop, context=ctx, wait_for_subscribers=1),
            )
        )
        thread.start()
        try:
            assert listener.wait_for({topic: 50})
        finally:
            stop.set()
            thread.join(timeout=10)
    assert result["s"].loops >= 2
    positions = [deserialize_message(d, JointState).position[0] for d in listener.received[topic]]
    assert positions[:42] == list(range(21)) * 2


def test_play_errors_before_touching_ros(tmp_path):
    path = tmp_path / "bag"
    with BagWriter(path) as bag:
        bag.add_topic("/odom", "nav_msgs/msg/Odometry")  # in the typestore, not installed here
        bag.write("/odom", 0, b"\x00\x01\x00\x00" + bytes(700))
    with pytest.raises(MessageTypeError, match="nav_msgs/msg/Odometry' is not installed"):
        play(path)
    with pytest.raises(UnknownTopicError, match="/nope"):
        play(path, topics=["/nope"])
    with pytest.raises(ValueError, match="rate must be positive"):
        play(path, rate=0.0)
    with pytest.raises(BagNotFoundError):
        play(tmp_path / "missing")


# --- command line -------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wm-ros bag")
    add_bag_arguments(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_arguments():
    args = parse(["record", "/a", "/b", "-o", "out", "--storage", "sqlite3", "--duration", "2"])
    assert (args.topics, args.output, args.storage, args.duration) == (
        ["/a", "/b"],
        "out",
        "sqlite3",
        2.0,
    )
    assert parse(["record", "-a"]).all
    args = parse(
        ["play", "bag", "--rate", "0.5", "--loop", "--clock", "--topics", "/a", "/b",
         "--start-offset", "1.5"]
    )  # fmt: skip
    assert (args.bag, args.rate, args.loop, args.clock, args.topics, args.start_offset) == (
        "bag",
        0.5,
        True,
        True,
        ["/a", "/b"],
        1.5,
    )
    with pytest.raises(SystemExit):
        parse(["play", "bag", "--rate", "0"])


def test_cli_errors_are_one_line_with_exit_code(tmp_path, capsys):
    path = tmp_path / "bag"
    write_sample_bag(path, "mcap", n=2)
    cases = [
        (["play", str(tmp_path / "missing")], "bag not found"),
        (["play", str(path), "--topics", "/nope"], "not in bag"),
        (["play", str(tmp_path)], "no metadata.yaml"),
        (["record"], "give topic names"),
        (["record", "/a", "-a"], "not both"),
        (["record", "/a", "-o", str(path)], "exists already"),
    ]
    [mcap] = path.glob("*.mcap")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(path, corrupt)
    (corrupt / mcap.name).write_bytes(mcap.read_bytes()[:100])
    cases.append((["play", str(corrupt)], "corrupt or truncated bag"))
    for argv, expected in cases:
        args = parse(argv)
        assert args.func(args) == 1, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expected in err, (argv, err)
        assert err.startswith(f"wm-ros bag {argv[0]}: error: ")
