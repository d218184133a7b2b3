"""Camera-topic latency and throughput between two processes, with and without the local
Fast DDS profile (config/fastdds_local.xml).

For each image size a subscriber process and a publisher process are started on a private ROS
domain (DDS on loopback). The publisher sends rgb8 `sensor_msgs/Image`s:

1. `rate` phase: at --hz for --seconds, each stamped with its send time (wall clock); the
   subscriber records receive time - stamp after rclpy has deserialised the message, i.e. the
   latency a node's callback sees.
2. `flood` phase: --flood frames back to back; the subscriber reports the frames/s it received
   (first to last arrival) and how many arrived: the throughput a Python node can take.

QoS: reliable, volatile, keep last --flood on both sides (so the flood phase measures how fast
frames get through, not how many a short queue overwrites).

    python benchmarks/topic_latency.py                       # 64x64 and 640x480, both configs
    python benchmarks/topic_latency.py --sizes 640x480 --profile on --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "config" / "fastdds_local.xml"
TOPIC = "/bench/image_raw"


def qos(depth: int):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


# --- the two processes -------------------------------------------------------------------------


def run_publisher(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.duration import Duration
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from wm_ros.ros.conversions import ns_to_time, numpy_to_image

    width, height = (int(v) for v in args.size.split("x"))
    rclpy.init()
    node = Node("bench_camera")
    pub = node.create_publisher(Image, TOPIC, qos(max(10, args.flood)))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    msgs = [numpy_to_image(f, "rgb8", 0.0, "rate") for f in frames]
    end = time.monotonic() + 30
    while pub.get_subscription_count() < 1 and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(0.5)  # let the reader finish matching
    period = 1.0 / args.hz
    start = time.monotonic()
    for i in range(round(args.seconds * args.hz)):
        target = start + i * period  # absolute schedule: no drift
        time.sleep(max(0.0, target - time.monotonic()))
        msg = msgs[i % len(msgs)]
        msg.header.stamp = ns_to_time(time.time_ns())
        pub.publish(msg)
    pub.wait_for_all_acked(Duration(seconds=5))
    time.sleep(0.3)
    for i in range(args.flood):
        msg = msgs[i % len(msgs)]
        msg.header.frame_id = "flood"
        msg.header.stamp = ns_to_time(time.time_ns())
        pub.publish(msg)
    pub.wait_for_all_acked(Duration(seconds=10))
    time.sleep(0.3)
    msgs[0].header.frame_id = "end"
    for _ in range(5):
        pub.publish(msgs[0])
        time.sleep(0.05)
    pub.wait_for_all_acked(Duration(seconds=5))
    node.destroy_node()
    rclpy.shutdown()
    return 0


def run_subscriber(args: argparse.Namespace) -> int:
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    rclpy.init()
    node = Node("bench_listener")
    latencies: list[float] = []
    flood_times: list[float] = []
    done = []

    def on_image(msg: Image) -> None:
        now = time.time_ns()
        kind = msg.header.frame_id
        if kind == "rate":
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            latencies.append((now - stamp) / 1e6)
        elif kind == "flood":
            flood_times.append(time.monotonic())
        else:
            done.append(True)

    node.create_subscription(Image, TOPIC, on_image, qos(max(10, args.flood)))
    end = time.monotonic() + args.seconds + 60
    while not done and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.1)
    flood_span = flood_times[-1] - flood_times[0] if len(flood_times) > 1 else 0.0
    result = {
        "received": len(latencies),
        "latencies_ms": latencies,
        "flood_received": len(flood_times),
        "flood_fps": (len(flood_times) - 1) / flood_span if flood_span > 0 else 0.0,
        "finished": bool(done),
    }
    sys.stdout.write(json.dumps(result) + "\n")
    node.destroy_node()
    rclpy.shutdown()
    return 0


# --- the driver -------------------------------------------------------------------------------


def machine() -> dict:
    from wm_ros.eval.timing import cpu_model

    cpu = cpu_model()
    from rclpy.utilities import get_rmw_implementation_identifier

    return {
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "rmw": get_rmw_implementation_identifier(),
        "kernel": platform.release(),
    }


def measure(size: str, profile: bool, args: argparse.Namespace, domain: int) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    common = [
        sys.executable,
        __file__,
        "--size",
        size,
        "--hz",
        str(args.hz),
        "--seconds",
        str(args.seconds),
        "--flood",
        str(args.flood),
    ]
    sub = subprocess.Popen([*common, "--role", "sub"], env=env, stdout=subprocess.PIPE, text=True)
    pub = subprocess.Popen([*common, "--role", "pub"], env=env)
    pub.wait(timeout=args.seconds + 120)
    out, _ = sub.communicate(timeout=120)
    if pub.returncode or sub.returncode:
        raise RuntimeError(
            f"benchmark process failed (publisher rc {pub.returncode}, subscriber rc "
            f"{sub.returncode}) for {size}, profile {profile}"
        )
    raw = json.loads(out.strip().splitlines()[-1])
    lat = np.asarray(raw["latencies_ms"])
    sent = round(args.seconds * args.hz)
    percentiles = {f"p{q}": float(np.percentile(lat, q)) for q in (50, 95, 99)} if lat.size else {}
    if lat.size:
        percentiles["max"] = float(lat.max())
    return {
        "size": size,
        "fastdds_profile": str(PROFILE) if profile else None,
        "hz": args.hz,
        "sent": sent,
        "received": raw["received"],
        "latency_ms": percentiles,
        "flood": {
            "sent": args.flood,
            "received": raw["flood_received"],
            "fps": raw["flood_fps"],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["64x64", "640x480"], help="WxH")
    parser.add_argument("--hz", type=float, default=30.0, help="rate phase, frames per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="rate phase duration")
    parser.add_argument("--flood", type=int, default=200, help="frames in the flood phase")
    parser.add_argument("--profile", choices=["on", "off", "both"], default="both")
    parser.add_argument("--json", default=None, help="write the figures here")
    parser.add_argument("--role", choices=["pub", "sub"], default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "pub":
        return run_publisher(args)
    if args.role == "sub":
        return run_subscriber(args)

    info = machine()
    print(f"machine: {info}")
    print(
        f"QoS: reliable, volatile, keep_last {max(10, args.flood)}; topic {TOPIC}; rgb8; "
        "latency = receive (after deserialisation) - stamp (send time)"
    )
    profiles = {"on": [True], "off": [False], "both": [True, False]}[args.profile]
    results = []
    domain = 150 + os.getpid() % 50
    for profile in profiles:
        for size in args.sizes:
            r = measure(size, profile, args, domain)
            results.append(r)
            lat = r["latency_ms"]
            cfg = "fastdds_local.xml" if profile else "default Fast DDS"
            lat_text = (
                f"p50 {lat['p50']:.2f} ms  p95 {lat['p95']:.2f} ms  p99 {lat['p99']:.2f} ms"
                if lat
                else "no frames received"
            )
            print(
                f"{cfg:18s} {size:>8s} @ {args.hz:g} Hz: {r['received']}/{r['sent']} frames, "
                f"{lat_text};  flood {r['flood']['received']}/{r['flood']['sent']} frames at "
                f"{r['flood']['fps']:.0f} frames/s"
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "results": results}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
