"""The closed-loop demo behind `make demo`: the simulated arm does a reach and a push.

Until the learned planner exists the controller is the simulator's scripted one (it reads the
simulator's privileged state); the loop, the report and the outcome line are the ones the planner
demo keeps. Outputs in the report folder: per task a PNG strip (goal, then frames through the
episode), a GIF of the episode beside its goal, and `demo.json` with every figure.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wm_ros.config import SimConfig, TaskConfig
from wm_ros.eval.images import grid, labelled_tile, save_gif, save_png, upscale
from wm_ros.sim import TabletopSim
from wm_ros.sim.scripted import scripted_policy

log = logging.getLogger(__name__)

STRIP_FRAMES = 8  # frames shown per episode strip, evenly spaced


@dataclass
class EpisodeResult:
    """One demo episode: the task, its seed, whether and when it succeeded, and its files."""

    task: str
    seed: int
    success: bool
    steps: int
    start_distance_m: float
    final_distance_m: float
    wall_s: float
    strip_png: str = ""
    gif: str = ""


@dataclass
class DemoOutcome:
    out: Path
    controller: str
    episodes: list[EpisodeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(e.success for e in self.episodes)

    def summary_line(self) -> str:
        parts = [
            f"{e.task} seed {e.seed}: {'SUCCESS' if e.success else 'FAILED'} in {e.steps} steps "
            f"({e.start_distance_m:.3f} -> {e.final_distance_m:.3f} m)"
            for e in self.episodes
        ]
        return f"demo [{self.controller}]: " + "; ".join(parts) + f"; report in {self.out}/"


def run_episode(sim: TabletopSim, seed: int, out: Path) -> EpisodeResult:
    """Reset to `seed`, run the scripted controller until success (plus a short hold) or the
    task's step budget, and write the episode's strip and GIF."""
    start = time.perf_counter()
    sim.reset(seed)
    task = sim.task
    policy = scripted_policy(task)
    policy.reset(sim)
    frames = [sim.render()]
    distances = [task.distance(sim)]
    success_step = None
    for step in range(1, task.cfg.episode_steps + 1):
        sim.step(policy(sim))
        frames.append(sim.render())
        distances.append(task.distance(sim))
        if task.success(sim):
            success_step = step
            break
    steps = len(frames) - 1
    result = EpisodeResult(
        task=task.kind,
        seed=seed,
        success=success_step is not None,
        steps=steps,
        start_distance_m=distances[0],
        final_distance_m=distances[-1],
        wall_s=time.perf_counter() - start,
    )
    picks = np.unique(np.linspace(0, steps, min(STRIP_FRAMES, steps + 1)).round().astype(int))
    tiles = [labelled_tile(task.goal_image, "goal", scale=3)] + [
        labelled_tile(frames[i], f"step {i}: {distances[i]:.3f} m", scale=3) for i in picks
    ]
    name = f"{task.kind}_seed{seed}"
    result.strip_png = str(save_png(grid([tiles]), out / f"{name}_strip.png"))
    goal_big = upscale(task.goal_image, 3)
    movie = [np.concatenate([upscale(f, 3), goal_big], axis=1) for f in frames]
    result.gif = str(save_gif(movie, out / f"{name}.gif", fps=1.0 / sim.cfg.control_dt))
    return result


def run_demo(out: Path, seed: int = 0, episodes: int = 1) -> DemoOutcome:
    """Run `episodes` reach and `episodes` push episodes (seeds seed, seed+1, ...)."""
    out.mkdir(parents=True, exist_ok=True)
    outcome = DemoOutcome(out=out, controller="scripted")
    jobs = [(kind, seed + i) for kind in ("reach", "push") for i in range(episodes)]
    sims = {kind: TabletopSim(SimConfig(task=TaskConfig(kind=kind))) for kind in ("reach", "push")}
    for kind, episode_seed in tqdm(jobs, desc="demo episodes", unit="episode"):
        result = run_episode(sims[kind], episode_seed, out)
        log.info("%s", result)
        outcome.episodes.append(result)
    summary = {
        "controller": outcome.controller,
        "success_rate": float(np.mean([e.success for e in outcome.episodes])),
        "episodes": [asdict(e) for e in outcome.episodes],
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    return outcome
