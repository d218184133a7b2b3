"""Closed-loop success through the ROS graph in real time: `wm-ros bringup plan` (sim_node,
prompt_node, planner_node as separate processes over DDS on loopback), episodes started with the
simulator's `~/reset` service, success read off its `/diagnostics`.

`wm-ros eval plan` steps the simulator in lockstep with the planner; here the simulator runs in
real time and the planner replans at its own rate, so its latency counts: the figure a user of
`ros2 launch` sees on this machine. Per episode: whether the sim reported success within
--timeout-s, the seconds until it did, the last goal distance, and the planner's replan latency
and published/dropped plans over the episode (diagnostics arrive at 1 Hz, so times are +-1 s).

    python benchmarks/graph_closed_loop.py --task reach --episodes 10 --json out.json
    python benchmarks/graph_closed_loop.py --task reach --goal-pose image --episodes 10
    python benchmarks/graph_closed_loop.py --task push --budget-file config/planner.yaml  # GPU
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SIM, PLANNER = "wm_ros: sim", "wm_ros: planner"


def task_file(args: argparse.Namespace, tmp: Path) -> Path:
    """The task params file, with planner.goal_pose overridden when --goal-pose asks."""
    path = Path(args.task_file or REPO / "config" / f"planner_{args.task}.yaml")
    if args.goal_pose == "auto":
        return path
    data = yaml.safe_load(path.read_text())
    params = data["planner_node"]["ros__parameters"]
    params.setdefault("planner", {})["goal_pose"] = args.goal_pose
    out = tmp / "task.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


class Watch:
    """The latest /diagnostics values of the sim and the planner, and a reset client."""

    def __init__(self) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from std_srvs.srv import Trigger

        rclpy.init()
        self.rclpy = rclpy
        self.node = rclpy.create_node("graph_closed_loop")
        self.latest: dict[str, dict[str, str]] = {}
        self.latencies: list[float] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self.reset_client = self.node.create_client(Trigger, "/sim/reset")
        self.Trigger = Trigger

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            self.latest[status.name] = values
            if status.name == PLANNER and "latency_ms" in values:
                self.latencies.append(float(values["latency_ms"]))

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)

    def value(self, name: str, key: str, default: str = "") -> str:
        return self.latest.get(name, {}).get(key, default)

    def reset(self) -> str:
        if not self.reset_client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError("the simulator's /sim/reset service did not appear")
        future = self.reset_client.call_async(self.Trigger.Request())
        end = time.monotonic() + 10.0
        while not future.done() and time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.05)
        if not future.done():
            raise RuntimeError("/sim/reset did not answer within 10 s")
        return future.result().message

    def close(self) -> None:
        self.node.destroy_node()
        self.rclpy.shutdown()


def run_episode(watch: Watch, seed: int, timeout_s: float) -> dict:
    """Wait for the sim to report episode `seed` (and the planner to be up: until then the arm
    holds its start), then for success or the timeout."""
    end = time.monotonic() + 120.0
    while PLANNER not in watch.latest and time.monotonic() < end:
        watch.spin_for(0.1)
    if PLANNER not in watch.latest:
        raise RuntimeError("the planner reported nothing on /diagnostics within 120 s")
    end = time.monotonic() + 30.0
    while watch.value(SIM, "episode_seed") != str(seed) and time.monotonic() < end:
        watch.spin_for(0.1)
    if watch.value(SIM, "episode_seed") != str(seed):
        raise RuntimeError(f"the sim never reported episode seed {seed}")
    published0 = int(watch.value(PLANNER, "published", "0") or 0)
    dropped0 = int(watch.value(PLANNER, "skipped_deadline_missed", "0") or 0)
    watch.latencies.clear()
    start = time.monotonic()
    success_s = None
    while time.monotonic() - start < timeout_s:
        watch.spin_for(0.2)
        if watch.value(SIM, "success") == "True":
            success_s = time.monotonic() - start
            break
    return {
        "seed": seed,
        "success": success_s is not None,
        "time_to_success_s": None if success_s is None else round(success_s, 1),
        "goal_distance_m": float(watch.value(SIM, "goal_distance_m", "nan")),
        "plans_published": int(watch.value(PLANNER, "published", "0") or 0) - published0,
        "plans_dropped": int(watch.value(PLANNER, "skipped_deadline_missed", "0") or 0) - dropped0,
        "replan_ms_p50": float(np.median(watch.latencies)) if watch.latencies else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--task", choices=("reach", "push"), default="reach")
    p.add_argument("--episodes", type=int, default=10, help="seeds 0..N-1 (the sim's first)")
    p.add_argument("--timeout-s", type=float, default=30.0, help="per episode, wall seconds")
    p.add_argument("--budget-file", default="config/planner_cpu.yaml")
    p.add_argument("--task-file", help="default config/planner_<task>.yaml")
    p.add_argument("--goal-pose", choices=("auto", "given", "image"), default="auto")
    p.add_argument("--model", default="models/sim_tabletop")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # DDS stays on this machine
    os.environ.setdefault("MUJOCO_GL", "egl")

    from wm_ros.eval.timing import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        task = task_file(args, Path(tmp))
        cmd = [
            str(Path(sys.executable).parent / "wm-ros"),
            "bringup",
            "plan",
            f"task:={args.task}",
            f"budget_file:={args.budget_file}",
            f"task_file:={task}",
            f"model:={args.model}",
        ]
        log = Path(tmp) / "graph.log"
        with log.open("w") as out:
            graph = subprocess.Popen(
                cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        watch = Watch()
        episodes = []
        try:
            for seed in range(args.episodes):
                if seed:
                    watch.reset()
                episodes.append(run_episode(watch, seed, args.timeout_s))
                e = episodes[-1]
                print(
                    f"{args.task} seed {seed}: "
                    + (f"SUCCESS in {e['time_to_success_s']} s" if e["success"] else "FAILED")
                    + f", goal distance {e['goal_distance_m']:.3f} m, "
                    f"{e['plans_published']} plans ({e['plans_dropped']} dropped), "
                    f"replan p50 {e['replan_ms_p50']} ms",
                    flush=True,
                )
        except RuntimeError as err:
            print(f"graph_closed_loop: {err}; the graph's log:\n{log.read_text()[-3000:]}")
            return 1
        finally:
            watch.close()
            os.killpg(graph.pid, signal.SIGINT)
            try:
                graph.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(graph.pid, signal.SIGKILL)
    times = [e["time_to_success_s"] for e in episodes if e["success"]]
    result = {
        "task": args.task,
        "episodes": len(episodes),
        "success_rate": float(np.mean([e["success"] for e in episodes])),
        "time_to_success_s_median": float(np.median(times)) if times else None,
        "timeout_s": args.timeout_s,
        "config": {
            "graph": "plan",
            "budget_file": args.budget_file,
            "task_file": args.task_file or f"config/planner_{args.task}.yaml",
            "goal_pose": args.goal_pose,
            "model": args.model,
        },
        "machine": machine_info(),
        "per_episode": episodes,
    }
    print(
        f"{args.task}: success {result['success_rate']:.2f} over {len(episodes)} episodes, "
        f"median time to success {result['time_to_success_s_median']} s"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
