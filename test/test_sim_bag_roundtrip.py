"""End to end over real DDS: record the live simulator with `wm-ros bag record`, play it back with
`wm-ros bag play`, and receive every recorded message with equal content."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sensor_msgs.msg import CameraInfo, Image, JointState

from test.ros_harness import NodeProcess, RosHarness, wait_until
from wm_ros.ros.bag import open_bag

pytestmark = pytest.mark.ros

TOPICS = {
    "/camera/image_raw": Image,
    "/camera/camera_info": CameraInfo,
    "/joint_states": JointState,
}


def wm_ros(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wm_ros.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_live_sim_record_then_play_loses_nothing(tmp_path):
    bag_dir = tmp_path / "live"
    sim = NodeProcess("wm_ros.ros.sim_node", ["-p", "sim.seed:=4"], tmp_path / "sim.log")
    try:
        with RosHarness("wait_for_sim") as h:
            seen = h.subscribe("/camera/image_raw", Image)
            assert wait_until(lambda: bool(seen), 60), sim.log()
        rec = wm_ros("bag", "record", *TOPICS, "-o", str(bag_dir), "--duration", "6")
        assert rec.returncode == 0, rec.stderr
    finally:
        assert sim.stop() == 0, sim.log()

    bag = open_bag(bag_dir)
    counts = {t: bag.topics[t].count for t in TOPICS}
    # 6 s of a 10 Hz camera and 50 Hz joint states, minus start-up and discovery, which take
    # seconds on a loaded 2-core machine
    assert counts["/camera/image_raw"] >= 5 and counts["/joint_states"] >= 25, counts
    recorded = {t: [m.data for m in bag.messages([t])] for t in TOPICS}

    with RosHarness("bag_listener") as h:
        received = {t: h.subscribe(t, cls, qos=1000, raw=True) for t, cls in TOPICS.items()}
        play = subprocess.Popen(
            [sys.executable, "-m", "wm_ros.cli", "bag", "play", str(bag_dir), "--rate", "2",
             "--wait-for-subscribers", "1"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        _, err = play.communicate(timeout=60)
        assert play.returncode == 0, err
        assert wait_until(lambda: all(len(received[t]) >= counts[t] for t in TOPICS), 10)
    for t in TOPICS:
        assert len(received[t]) == counts[t], t
        assert [bytes(r) for r in received[t]] == [bytes(r) for r in recorded[t]], t
