"""`wm-ros eval replay`: bags recorded from the simulator scored like `eval predict` scores the
same episodes, in both storages, from compressed images; stamp alignment with jitter, drops and
clock jumps; clear errors for bags that lack what is needed; partial results for damaged bags;
the closed-loop plan comparison."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image as PILImage
from sensor_msgs.msg import CompressedImage, Image, JointState

from wm_ros.cli import main
from wm_ros.config import ModelConfig
from wm_ros.eval.replay import RecordedStreams, align_streams, compare_plans
from wm_ros.model import WorldModel, save_model
from wm_ros.ros import topics
from wm_ros.ros.bag import BagWriter, import_message_type, open_bag
from wm_ros.ros.collect import collect, episode_dir
from wm_ros.ros.conversions import compressed_image_to_rgb, image_to_numpy, ns_to_time, to_rgb
from wm_ros.ros.replay import ReplayBagError, read_streams

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
TINY = ModelConfig(
    image_size=SIZE, latent_channels=4, ae_width=8, horizon=3, context=2, memory=1,
    widths=(16, 16), emb_dim=32, prompt_features=2,
)  # fmt: skip
SEED = 11
METRIC_KEYS = ("psnr", "ssim", "arm_iou", "puck_err_px")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("replay")
    torch.manual_seed(0)
    save_model(WorldModel(TINY).eval(), root / "tiny")
    bags = {}
    for storage in ("mcap", "sqlite3"):
        collect(1, SEED, root / storage, steps=24, image_size=SIZE, storage=storage)
        bags[storage] = episode_dir(root / storage, SEED)
    return root, bags


def _replay(bag, model, out, *extra) -> tuple[int, dict]:
    code = main(["eval", "replay", str(bag), "--model", str(model), "--json", str(out),
                 "--seed", "3", "--no-progress", "--device", "cpu", *extra])  # fmt: skip
    return code, (json.loads(out.read_text()) if out.exists() else {})


def _copy_bag(src, dst, storage="mcap", transform=None, skip=()):
    """Copy a bag message by message; transform(topic, msgtype, data) -> (topic, msgtype, data)."""
    with open_bag(src) as reader, BagWriter(dst, storage) as writer:
        for item in reader.messages():
            if item.topic in skip:
                continue
            topic, msgtype, payload = item.topic, item.msgtype, item.data
            if transform is not None:
                topic, msgtype, payload = transform(topic, msgtype, payload)
            writer.add_topic(topic, msgtype)
            writer.write(topic, item.stamp_ns, payload)
    return dst


def _same(a: list, b: list) -> bool:
    """Per-step lists equal to float precision (None where no window qualified)."""
    return len(a) == len(b) and all(
        (x is None and y is None) or (x is not None and y is not None and np.isclose(x, y))
        for x, y in zip(a, b, strict=True)
    )


# ------------------------------------------------------------------------ end to end


def test_replay_gives_the_metrics_eval_predict_gives_on_the_same_episode(data, tmp_path):
    root, bags = data
    code, replay = _replay(bags["mcap"], root / "tiny", tmp_path / "r.json",
                           "--windows-per-episode", "3")  # fmt: skip
    assert code == 0
    code = main(["eval", "predict", "--model", str(root / "tiny"), "--data", str(bags["mcap"]),
                 "--json", str(tmp_path / "p.json"), "--seed", "3", "--windows-per-episode", "3",
                 "--device", "cpu"])  # fmt: skip
    assert code == 0
    predict = json.loads((tmp_path / "p.json").read_text())
    assert replay["windows"] == predict["windows"] == 3
    assert replay["dropped"] == 0 and not replay["partial"] and replay["bag"] == str(bags["mcap"])
    for key in METRIC_KEYS:
        assert replay["metrics"][key] is not None
        assert _same(replay["metrics"][key], predict["metrics"][key])
    np.testing.assert_allclose(
        replay["baselines"]["copy_last"]["psnr"], predict["baselines"]["copy_last"]["psnr"]
    )
    assert replay["alignment"]["actions"] == "plan"  # the commanded targets, as in training
    html = (tmp_path / "r.html").read_text()
    assert "Prediction metrics against the horizon" in html and "Worst windows first" in html
    assert "data:image/png;base64," in html
    worst = [w["psnr"] for w in replay["per_window"]]
    assert len(worst) == 3 and all(np.isfinite(worst))


def test_sqlite3_and_mcap_bags_give_identical_results(data, tmp_path):
    root, bags = data
    results = {}
    for storage, bag in bags.items():
        code, results[storage] = _replay(bag, root / "tiny", tmp_path / f"{storage}.json")
        assert code == 0 and results[storage]["storage"] == storage
    a, b = results["mcap"], results["sqlite3"]
    assert a["windows"] == b["windows"] > 0  # strided windows: every 2H frames
    assert a["metrics"] == b["metrics"] and a["alignment"] == b["alignment"]


def test_compressed_images_from_a_robot_bag_without_segmentation(data, tmp_path):
    """PNG-compressed frames decode to the very same pixels, so the image metrics match the raw
    bag's; without /sim/segmentation only image metrics are reported, and the report says so."""
    root, bags = data
    image_cls = import_message_type("sensor_msgs/msg/Image")

    def compress(topic, msgtype, payload):
        if topic != topics.IMAGE:
            return topic, msgtype, payload
        from rclpy.serialization import deserialize_message, serialize_message

        msg = deserialize_message(payload, image_cls)
        buf = io.BytesIO()
        PILImage.fromarray(to_rgb(image_to_numpy(msg), msg.encoding)).save(buf, format="PNG")
        out = CompressedImage(header=msg.header, format="rgb8; png compressed rgb8")
        out.data = buf.getvalue()
        return (
            f"{topics.IMAGE}/compressed",
            "sensor_msgs/msg/CompressedImage",
            serialize_message(out),
        )

    bag = _copy_bag(bags["mcap"], tmp_path / "compressed", transform=compress,
                    skip=(topics.SEGMENTATION,))  # fmt: skip
    code, got = _replay(bag, root / "tiny", tmp_path / "c.json")  # the only image topic: found
    assert code == 0, got
    code, raw = _replay(bags["mcap"], root / "tiny", tmp_path / "raw.json")
    assert "CompressedImage" in got["topics"]["image"]
    assert got["image_metrics_only"] and got["metrics"]["arm_iou"] is None
    assert got["metrics"]["psnr"] == raw["metrics"]["psnr"]
    assert got["metrics"]["ssim"] == raw["metrics"]["ssim"]
    assert "only the image metrics" in (tmp_path / "c.html").read_text()


def test_bags_lacking_a_topic_or_of_the_wrong_type_are_named(data, tmp_path, caplog):
    root, bags = data
    no_joints = _copy_bag(bags["mcap"], tmp_path / "nj", skip=(topics.JOINT_STATES,))
    code, _ = _replay(no_joints, root / "tiny", tmp_path / "nj.json")
    assert code == 2 and "lacks the joint state topic /joint_states" in caplog.text
    with pytest.raises(ReplayBagError, match="holds sensor_msgs/msg/CameraInfo, an unexpected"):
        read_streams(bags["mcap"], image_topic=topics.CAMERA_INFO, progress=False)
    with pytest.raises(ReplayBagError, match="bag not found"):
        read_streams(tmp_path / "nope", progress=False)


def _robot_bag(path, frames=12, size=4, storage="sqlite3"):
    """A minimal robot bag: bgr8 images on /cam/color stamped in the header, joint states with
    a joint more than the camera needs, every 0.1 s."""
    with BagWriter(path, storage) as w:
        for i in range(frames):
            stamp = ns_to_time(1_000_000_000 + i * 100_000_000)
            img = Image(height=size, width=size, encoding="bgr8", step=3 * size)
            img.header.stamp = stamp
            img.data = bytes([i % 256, 0, 255] * size * size)
            w.write("/cam/color", 5 + i, img)
            js = JointState(name=["gripper", "j1"], position=[0.0, 0.1 * i])
            js.header.stamp = stamp
            w.write(topics.JOINT_STATES, 6 + i, js)
    return path


def test_a_truncated_mcap_bag_keeps_what_was_read_and_is_marked_partial(tmp_path):
    bag = _robot_bag(tmp_path / "cut", frames=60, size=128, storage="mcap")  # 3 MB: 3 chunks
    (bag / "metadata.yaml").unlink()  # a recording killed before it closed
    mcap = next(bag.glob("*.mcap"))
    raw = mcap.read_bytes()
    mcap.write_bytes(raw[: int(len(raw) * 0.8)])
    streams = read_streams(bag, progress=False)
    assert streams.partial and "results cover only those" in streams.problems[0]
    assert 10 < len(streams.frames) < 60 and len(streams.joints) >= len(streams.frames) - 1
    assert streams.frames[3][0, 0].tolist() == [255, 0, 3]
    # A damaged sqlite3 bag cannot be opened at all: the error names the bag.
    sq = _copy_bag(_robot_bag(tmp_path / "sq"), tmp_path / "sq2", storage="sqlite3")
    db = next(sq.glob("*.db3"))
    db.write_bytes(db.read_bytes()[:2000])
    with pytest.raises(ReplayBagError, match=f"corrupt or truncated bag {sq}"):
        read_streams(sq, progress=False)


# ------------------------------------------------------------------------ alignment


def _streams(frame_s, joint_s, labels=False) -> RecordedStreams:
    frame_ns = np.round(np.asarray(frame_s) * 1e9).astype(np.int64)
    joint_ns = np.round(np.asarray(joint_s) * 1e9).astype(np.int64)
    joints = np.stack([joint_ns * 1e-9, -joint_ns * 1e-9], 1)  # (Q, 2): q = t, -t
    frames = [np.full((8, 8, 3), i % 255, np.uint8) for i in range(len(frame_ns))]
    return RecordedStreams(
        bag="synthetic", storage="mcap", frames=frames, frame_ns=frame_ns,
        joint_names=("a", "b"), joint_ns=joint_ns, joints=joints,
        label_ns=frame_ns if labels else None,
        labels=[np.zeros((8, 8), np.uint8)] * len(frame_ns) if labels else None,
    )  # fmt: skip


def test_alignment_handles_jitter_dropped_frames_and_clock_jumps():
    rng = np.random.default_rng(0)
    t = np.arange(100) * 0.1 + rng.uniform(-0.02, 0.02, 100)  # 10 Hz, +-20 ms jitter
    keep = np.ones(100, bool)
    keep[[40, 41, 70]] = False  # three dropped frames, in two gaps
    t = t[keep]
    t[80:] -= 3.0  # the clock jumps back (a restarted driver)
    joint_t = np.arange(0, 10.5, 0.02)  # 50 Hz joint states
    joint_t = np.concatenate([joint_t, joint_t[joint_t < 7.4] + 0.001])  # and after the jump
    a = align_streams(_streams(t, np.sort(joint_t)), 8, actions="joints")
    r = a.report
    assert r["dropped"] == 3 and len(r["gaps"]) == 2 and len(r["clock_jumps"]) == 1
    assert r["period_s"] == pytest.approx(0.1, abs=0.01) and r["unmatched_frames"] == 0
    assert [s["frames"] for s in r["segments"]] == [40, 28, 12, 17]
    # Each frame took the nearest joint state (q = t, within 10 ms), actions are the next frame's.
    ep = a.episodes[0]
    np.testing.assert_allclose(ep.joints[:, 0], t[:40], atol=0.011)
    np.testing.assert_allclose(ep.actions[:-1], ep.joints[1:])


def test_frames_without_a_joint_state_nearby_are_cut_out():
    t = np.arange(30) * 0.1
    joint_t = np.concatenate([np.arange(0, 1.0, 0.02), np.arange(2.0, 3.0, 0.02)])  # 1..2 s lost
    r = align_streams(_streams(t, joint_t), 8, actions="joints").report
    # 1.0 s still has the 0.98 s state within half a period; 1.1 .. 1.9 s have none.
    assert r["unmatched_frames"] == 9 and [s["frames"] for s in r["segments"]] == [11, 10]


def test_plans_are_compared_with_the_joints_recorded_next():
    joint_ns = np.arange(0, 5_000_000_000, 10_000_000)  # 100 Hz for 5 s
    joints = np.stack([joint_ns * 1e-9, 2 * joint_ns * 1e-9], 1)  # q(t) = (t, 2t)
    times = np.array([0.1, 0.2, 0.3])
    exact = (1_000_000_000, times, ("b", "a"), np.stack([2 * (1 + times), 1 + times], 1))
    off = (2_000_000_000, times, ("a", "b"), np.stack([2 + times + 0.5, 2 * (2 + times)], 1))
    late = (4_900_000_000, times, ("a", "b"), np.zeros((3, 2)))  # runs past the recording
    out = compare_plans([exact, off, late], joint_ns, joints, ("a", "b"), steps=3)
    assert out["plans"] == 2 and out["outside"] == 1
    np.testing.assert_allclose(out["plan_error_rad"], [0.125] * 3, atol=1e-9)  # (0 + .25) / 2
    np.testing.assert_allclose(out["hold_error_rad"], 1.5 * times, atol=1e-9)  # mean(t, 2t)


def test_image_and_joint_messages_written_by_hand_are_read(tmp_path):
    streams = read_streams(_robot_bag(tmp_path / "robot"), progress=False)
    assert streams.topics["image"].startswith("/cam/color") and streams.stamp_source == "header"
    assert streams.frames[3][0, 0].tolist() == [255, 0, 3]  # bgr -> rgb
    assert streams.plans is None and streams.joint_names == ("gripper", "j1")
    assert align_streams(streams, 4).report["actions"] == "joints"


@pytest.mark.slow
@pytest.mark.ros
def test_closed_loop_replay_records_the_plans_and_the_report_compares_them(data, tmp_path):
    """`wm-ros bringup replay BAG` plays the bag under /clock into planner_node and records
    what it publishes; `eval replay --plans` compares the plans with the recorded joints."""
    root, bags = data
    params = yaml.safe_load((REPO / "config" / "planner.yaml").read_text())
    block = params["planner_node"]["ros__parameters"]
    block.update(replan_deadline_s=30.0)  # a loaded CI machine may be slow
    block["planner"].update(horizon=TINY.horizon, knots=0)
    block["planner"]["cem"].update(num_samples=8, num_elites=2, iterations=1)
    (tmp_path / "planner.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "plans"
    run = subprocess.run(
        [sys.executable, "-m", "wm_ros.cli", "bringup", "replay", str(bags["mcap"]),
         f"out:={out}", f"planner_params:={tmp_path / 'planner.yaml'}", "wait_s:=30",
         f"model:={root / 'tiny'}", "device:=cpu", "rate:=0.5"],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    code = main(["eval", "replay", str(bags["mcap"]), "--plans", str(out), "--json",
                 str(tmp_path / "cl.json"), "--no-progress"])  # fmt: skip
    assert code == 0
    closed = json.loads((tmp_path / "cl.json").read_text())["closed_loop"]
    assert closed["plans"] >= 1 and closed["steps"] == 4
    assert all(v is not None and v >= 0 for v in closed["plan_error_rad"][: TINY.horizon])
    assert closed["latency_ms"] is None or closed["latency_ms"]["p50"] > 0
    assert "plans against what the robot did next" in (tmp_path / "cl.html").read_text()


def test_compressed_image_decoding():
    frame = np.random.default_rng(0).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(frame).save(buf, format="PNG")
    msg = CompressedImage(format="png")
    msg.data = buf.getvalue()
    np.testing.assert_array_equal(compressed_image_to_rgb(msg), frame)
    smooth = np.zeros((16, 16, 3), np.uint8)
    smooth[..., 0] = np.arange(16)[:, None] * 10  # a red ramp: JPEG keeps it closely
    buf = io.BytesIO()
    PILImage.fromarray(smooth).save(buf, format="JPEG", quality=95)
    msg.data, msg.format = buf.getvalue(), "jpeg"
    assert np.abs(compressed_image_to_rgb(msg).astype(int) - smooth).mean() < 5  # lossy
    msg.data = b"not an image"
    with pytest.raises(ValueError, match="cannot decode CompressedImage \\(format 'jpeg'\\)"):
        compressed_image_to_rgb(msg)


def test_dropped_frames_in_a_bag_split_the_windows_and_are_reported(data, tmp_path):
    root, bags = data
    dst = tmp_path / "dropped"
    with open_bag(bags["mcap"]) as reader, BagWriter(dst) as writer:
        images = 0
        for item in reader.messages():
            if item.topic == topics.IMAGE:
                images += 1
                if images == 13:  # the camera driver lost one frame
                    continue
            writer.add_topic(item.topic, item.msgtype)
            writer.write(item.topic, item.stamp_ns, item.data)
    code, got = _replay(dst, root / "tiny", tmp_path / "d.json", "--stride", "1")
    assert code == 0 and got["dropped"] == 1
    assert [s["frames"] for s in got["alignment"]["segments"]] == [12, 12]
    starts = {(w["episode"], w["start"]) for w in got["per_window"]}
    span = TINY.context + 2 * TINY.horizon
    assert {e for e, _ in starts} == {0, 1} and all(s + span <= 12 for _, s in starts)
    assert "1 frame(s) dropped" in (tmp_path / "d.html").read_text()
