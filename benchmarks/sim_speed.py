"""Speed of the MuJoCo tabletop simulator, and (optionally) how its scripted policies do.

    python benchmarks/sim_speed.py                       # speed at 64x64
    python benchmarks/sim_speed.py --policies 50 --json out/sim.json

Speed: frames per second of step-only, render-only, render+step (one control step and one RGB
frame), segmentation, and the time of a reset (which builds the task goal).
Policies (--policies N): success rate over seeds S..S+N-1 of the scripted controller and of
uniformly random smooth actions, for both tasks; success is judged at the end of the episode
(TaskConfig.episode_steps control steps). Exploration (--explore-episodes E): fraction of control
steps in which the puck moves more than 1 mm, and of steps with the puck inside the image.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (by wm_ros.sim)

import mujoco
import torch

from wm_ros.camera import project_points
from wm_ros.config import SimConfig, TaskConfig
from wm_ros.eval.timing import cpu_model
from wm_ros.sim import TabletopSim
from wm_ros.sim.exploration import ExplorationPolicy
from wm_ros.sim.scripted import RandomSmoothPolicy, run_policy, scripted_policy


def machine() -> dict:
    """What the figures were measured on."""
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "mujoco": mujoco.__version__,
        "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
        "gl_renderer": gl_renderer(),
    }


def gl_renderer() -> str:
    """The OpenGL renderer string (e.g. llvmpipe: software rendering on the CPU)."""
    with TabletopSim(SimConfig(image_width=8, image_height=8)) as probe:
        return probe.gl_renderer()


def rate(fn, n: int) -> float:
    """Calls per second of fn() over n calls (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def speed(cfg: SimConfig, frames: int, seed: int) -> dict:
    with TabletopSim(cfg) as sim:
        sim.reset(seed)
        rng = np.random.default_rng(seed)
        lo, hi = sim.joint_limits[:, 0], sim.joint_limits[:, 1]

        def step() -> None:
            sim.step(rng.uniform(lo, hi))

        def render_step() -> None:
            step()
            sim.render()

        result = {
            "step_per_s": rate(step, frames),
            "render_per_s": rate(sim.render, frames),
            "render_step_per_s": rate(render_step, frames),
            "segmentation_per_s": rate(sim.segmentation, frames),
        }
        n_resets = 20
        start = time.perf_counter()
        for k in range(n_resets):
            sim.reset(seed + k)
        result["reset_ms"] = 1e3 * (time.perf_counter() - start) / n_resets
    return result


def policies(cfg: SimConfig, episodes: int, seed: int) -> dict:
    out = {}
    for kind in ("reach", "push"):
        task_cfg = cfg.task.replace(kind=kind)
        with TabletopSim(cfg.replace(task=task_cfg)) as sim:
            scripted, random_end, random_any, dist = [], [], [], []
            for s in range(seed, seed + episodes):
                sim.reset(s)
                start = sim.get_state()
                run_policy(sim, scripted_policy(sim.task), task_cfg.episode_steps)
                scripted.append(sim.task.success(sim))
                dist.append(sim.task.distance(sim))
                sim.set_state(start)
                policy = RandomSmoothPolicy(s)
                policy.reset(sim)
                hit = False
                for _ in range(task_cfg.episode_steps):
                    sim.step(policy(sim))
                    hit = hit or sim.task.success(sim)
                random_end.append(sim.task.success(sim))
                random_any.append(hit)
        out[kind] = {
            "episodes": episodes,
            "seed": seed,
            "scripted_success_rate": float(np.mean(scripted)),
            "scripted_final_distance_m": {
                "mean": float(np.mean(dist)),
                "max": float(np.max(dist)),
            },
            "random_success_rate": float(np.mean(random_end)),
            "random_success_any_step_rate": float(np.mean(random_any)),
        }
    return out


def exploration(cfg: SimConfig, episodes: int, steps: int, seed: int) -> dict:
    moved, in_view = [], []
    with TabletopSim(cfg) as sim:
        camera = sim.camera_model()
        for s in range(seed, seed + episodes):
            sim.reset(s)
            policy = ExplorationPolicy(s)
            policy.reset(sim)
            for _ in range(steps):
                before = sim.puck_position()
                sim.step(policy(sim))
                after = sim.puck_position()
                moved.append(np.linalg.norm(after - before) > 1e-3)
                uv, _ = project_points(torch.tensor(after), camera)
                u, v = uv.tolist()
                in_view.append(0 <= u <= camera.width - 1 and 0 <= v <= camera.height - 1)
    return {
        "episodes": episodes,
        "steps": steps,
        "seed": seed,
        "puck_moved_fraction": float(np.mean(moved)),
        "puck_in_view_fraction": float(np.mean(in_view)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=64, help="image width, pixels")
    parser.add_argument("--height", type=int, default=64, help="image height, pixels")
    parser.add_argument("--frames", type=int, default=500, help="frames per speed figure")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument(
        "--policies",
        type=int,
        default=0,
        metavar="N",
        help="episodes per task for the policy success rates (0: skip)",
    )
    parser.add_argument(
        "--explore-episodes",
        type=int,
        default=0,
        metavar="E",
        help="episodes for the exploration figures (0: skip)",
    )
    parser.add_argument("--explore-steps", type=int, default=50, help="control steps per episode")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()  # fmt: skip

    cfg = SimConfig(image_width=args.width, image_height=args.height, task=TaskConfig())
    report = {
        "machine": machine(),
        "config": cfg.to_dict(),
        "speed": speed(cfg, args.frames, args.seed),
    }
    if args.policies:
        report["policies"] = policies(cfg, args.policies, args.seed)
    if args.explore_episodes:
        report["exploration"] = exploration(
            cfg, args.explore_episodes, args.explore_steps, args.seed
        )
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
