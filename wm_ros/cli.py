"""`wm-ros`: one command with a subcommand for every job a user runs.

Handlers import their modules lazily, so `wm-ros --help` stays quick and a core-only job never
loads rclpy.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def _cmd_sim(args: argparse.Namespace) -> int:
    if args.overlay:
        from wm_ros.config import SimConfig
        from wm_ros.prompts import write_overlay_frames
        from wm_ros.sim import TabletopSim

        cfg = SimConfig.from_yaml(args.params_file, "sim") if args.params_file else SimConfig()
        with TabletopSim(cfg) as sim:
            paths = write_overlay_frames(sim, args.frames, Path(args.out), args.seed)
        print(f"wrote {len(paths)} overlay frames to {args.out}")
        return 0
    from wm_ros.ros import sim_node

    ros_args = ["wm-ros-sim", "--ros-args", "-r", "__node:=sim"]
    if args.params_file:
        ros_args += ["--params-file", str(args.params_file)]
    for assignment in args.param:
        ros_args += ["-p", assignment]
    return sim_node.main(ros_args)


def _cmd_collect(args: argparse.Namespace) -> int:
    from wm_ros.ros.collect import collect

    summary = collect(
        episodes=args.episodes,
        seed=args.seed,
        out=Path(args.out),
        steps=args.steps,
        image_size=args.image_size,
        storage=args.storage,
        policy=args.policy,
    )
    print(
        f"collected {summary['episodes']} episodes, {summary['frames']} frames in "
        f"{summary['wall_s']:.1f} s ({summary['frames_per_s']:.0f} frames/s); "
        f"puck moved in {100 * summary['puck_moving_fraction']:.1f}% of steps -> {args.out}"
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from wm_ros.config import planning_session_from_yaml
    from wm_ros.demo import run_demo
    from wm_ros.eval.plan import EpisodeSetup
    from wm_ros.model import CheckpointError

    try:
        cfg = planning_session_from_yaml(*args.config) if args.config else None
        outcome = run_demo(
            Path(args.out),
            seed=args.seed,
            episodes=args.episodes,
            tasks=tuple(args.task or ["push"]),
            planner=args.planner,
            cfg=cfg,
            model=args.model,
            replan_every=args.replan_every,
            device=args.device,
            setup=EpisodeSetup.from_args(args),
        )
    except (CheckpointError, ValueError, OSError) as err:
        sys.stderr.write(f"wm-ros demo: {err}\n")
        return 2
    print(outcome.summary_line())
    return 0  # the demo ran and wrote its report; success is in the line and demo.json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wm-ros",
        description="Plan robot-arm motion through a learned video world model (ROS 2).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from wm_ros.ros.bringup import add_bringup_arguments

    add_bringup_arguments(
        sub.add_parser("bringup", help="start a node graph (the same one the launch files start)")
    )

    sim = sub.add_parser("sim", help="run the simulator node, or write skeleton overlay frames")
    sim.add_argument("--params-file", type=Path, help="ROS params YAML (default: built-ins)")
    sim.add_argument("-p", "--param", action="append", default=[], help="override, k:=v")
    sim.add_argument("--overlay", action="store_true", help="write skeleton-over-render PNGs")
    sim.add_argument("--frames", type=int, default=8, help="overlay frames to write")
    sim.add_argument("--out", default="overlay_out", help="overlay output folder")
    sim.add_argument("--seed", type=int, default=0, help="seed of the overlay poses")
    sim.set_defaults(func=_cmd_sim)

    collect = sub.add_parser("collect", help="record exploration episodes to rosbag2 (MCAP)")
    collect.add_argument("--episodes", type=int, required=True)
    collect.add_argument("--seed", type=int, default=0, help="first episode seed (S, S+1, ...)")
    collect.add_argument("--out", required=True, help="output folder, one bag per episode")
    collect.add_argument("--steps", type=int, default=50, help="control steps per episode")
    collect.add_argument("--image-size", type=int, default=64, help="square image size, px")
    collect.add_argument(
        "--policy",
        choices=("explore", "pushes", "poses"),  # exploration.POLICIES (not imported: mujoco)
        default="explore",
        help="explore: the world model's data (joint motion and sweeps through the puck); "
        "pushes: the same with 70%% of the sweeps ending in a planner-like push plan (knot "
        "offsets around a straight push or holding); "
        "poses: joint motion over 0.95 x the limits, half the waypoints at its edges (the "
        "goal-pose estimator's data)",
    )
    collect.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    collect.set_defaults(func=_cmd_collect)

    from wm_ros.ros.bag import add_bag_arguments

    bag = sub.add_parser("bag", help="record or play rosbag2 bags")
    add_bag_arguments(bag.add_subparsers(dest="bag_command", required=True, metavar="ACTION"))

    from wm_ros.train import add_train_arguments

    add_train_arguments(
        sub.add_parser("train", help="train the world model on collected bags (resumable)")
    )

    from wm_ros.eval.predict import add_predict_arguments

    evaluate = sub.add_parser(
        "eval", help="evaluate a model (prediction) or a planner (closed loop)"
    )
    evals = evaluate.add_subparsers(dest="eval_command", required=True, metavar="EVALUATION")
    add_predict_arguments(
        evals.add_parser("predict", help="open-loop prediction metrics on held-out episodes")
    )
    from wm_ros.eval.plan import PLANNERS, add_episode_arguments, add_plan_arguments

    add_plan_arguments(
        evals.add_parser("plan", help="closed-loop success of a planner in the simulator")
    )
    from wm_ros.eval.pose import add_pose_arguments

    add_pose_arguments(
        evals.add_parser("pose", help="how well the goal-pose estimator reads joints off images")
    )
    from wm_ros.eval.replay import add_replay_arguments

    add_replay_arguments(
        evals.add_parser(
            "replay", help="prediction metrics (and recorded plans) against a rosbag2 bag"
        )
    )

    from wm_ros.tune import add_tune_arguments

    add_tune_arguments(
        sub.add_parser("tune", help="search planner settings in the simulator (Optuna)")
    )

    from wm_ros.eval.bench import add_bench_arguments

    add_bench_arguments(
        sub.add_parser("bench", help="replans/s, latency, stages and FLOP/s over a grid")
    )
    from wm_ros.export.command import add_export_arguments

    add_export_arguments(
        sub.add_parser("export-onnx", help="the world model as ONNX graphs, parity-checked")
    )

    from wm_ros.config import TASK_KINDS

    demo = sub.add_parser("demo", help="closed-loop demo in the simulator, with a report")
    demo.add_argument("--out", default="demo_out", help="report folder")
    demo.add_argument("--seed", type=int, default=0, help="first episode seed")
    demo.add_argument("--episodes", type=int, default=2, help="episodes per task")
    demo.add_argument("--task", action="append", choices=TASK_KINDS, help="task (repeatable; push)")
    demo.add_argument(
        "--planner",
        choices=PLANNERS,
        default="learned",
        help="learned: the shipped world model; scripted: the simulator's privileged controller",
    )
    demo.add_argument("--model", help="model directory (default: the config's)")
    demo.add_argument(
        "--config",
        type=Path,
        action="append",
        help="planner params YAML, repeatable and layered (default: config/planner.yaml + "
        "config/planner_cpu.yaml)",
    )
    demo.add_argument("--replan-every", type=int, default=2, help="control steps per replan")
    demo.add_argument("--device", default="cpu", help="torch device of the planner")
    add_episode_arguments(demo)
    demo.set_defaults(func=_cmd_demo)
    return parser


def _bag_argument(argv: list[str]) -> list[str]:
    """`wm-ros bringup replay BAG ...` means `wm-ros bringup replay bag:=BAG ...` (the replay
    graph's required argument, given positionally as `ros2 bag play BAG` takes it)."""
    if argv[:1] == ["bringup"] and "replay" in argv:
        i = argv.index("replay") + 1
        if i < len(argv) and ":=" not in argv[i] and not argv[i].startswith("-"):
            return [*argv[:i], f"bag:={argv[i]}", *argv[i + 1 :]]
    return argv


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("MUJOCO_GL", "egl")
    argv = _bag_argument(list(sys.argv[1:] if argv is None else argv))
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
