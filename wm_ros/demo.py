"""The closed-loop demo behind `make demo`: the simulated arm pushes the puck, planned through the
shipped world model.

Each episode runs the same loop as `wm-ros eval plan` (wm_ros.eval.plan.run_episode): the
simulator's frames and joint states go into the planning session exactly as planner_node receives
them, CEM imagines every candidate with the world model, and the arm follows the best plan,
replanning every few control steps. The planner settings are config/planner.yaml with the CPU
budget config/planner_cpu.yaml and the task's own settings (config/planner_push.yaml) on top.

Report folder, per episode:
- `<task>_seed<S>.gif`: the camera | what the model imagined for that moment | the goal;
- `<task>_seed<S>_replans.png`: for several replans, the frames that really followed beside the
  frames the model imagined for the chosen plan;
- `<task>_seed<S>_strip.png`: the goal, then frames through the episode;
and `demo.json` with every figure and the configuration.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from wm_ros.config import PlanningSessionConfig
from wm_ros.eval.images import grid, labelled_tile, save_gif, save_png, upscale
from wm_ros.eval.plan import (
    EpisodeSetup,
    EpisodeTrace,
    make_closed_loop,
    run_episode,
    task_planner_config,
)
from wm_ros.eval.timing import latency_percentiles
from wm_ros.sim import TabletopSim

log = logging.getLogger(__name__)

STRIP_FRAMES = 8  # frames shown per episode strip, evenly spaced
REPLAN_ROWS = 6  # replans shown in the real-vs-imagined figure, evenly spaced
DEMO_BUDGET = "planner_cpu.yaml"  # layered on planner.yaml, under the task's settings


def demo_config(task: str) -> PlanningSessionConfig:
    """The demo's planner settings for a task: the task's defaults on the CPU budget."""
    return task_planner_config(task, DEMO_BUDGET)


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
    replans: int = 0
    replan_ms_p50: float | None = None
    strip_png: str = ""
    replans_png: str = ""
    gif: str = ""


@dataclass
class DemoOutcome:
    """What `run_demo` did: the report folder, the controller's description, the episodes."""

    out: Path
    controller: str
    episodes: list[EpisodeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.episodes) and all(e.success for e in self.episodes)

    def summary_line(self) -> str:
        parts = [
            f"{e.task} seed {e.seed}: {'SUCCESS' if e.success else 'FAILED'} in {e.steps} steps "
            f"({e.start_distance_m:.3f} -> {e.final_distance_m:.3f} m)"
            for e in self.episodes
        ]
        rate = np.mean([e.success for e in self.episodes]) if self.episodes else 0.0
        return (
            f"demo [{self.controller}]: success {rate:.0%}; "
            + "; ".join(parts)
            + f"; report in {self.out}/"
        )


def _blank(size: int) -> np.ndarray:
    return np.full((size, size, 3), 128, np.uint8)


def imagined_for_frames(trace: EpisodeTrace, size: int) -> list[np.ndarray]:
    """Per camera frame t, what the last replan before it imagined for that moment (a grey
    frame where no plan covered it)."""
    shown = [_blank(size) for _ in trace.frames]
    for rec in trace.replans:
        if rec.imagined is None:
            continue
        for i, frame in enumerate(rec.imagined):  # the plan's step i lands on frame step + i + 1
            t = rec.step + i + 1
            if t < len(shown):
                shown[t] = frame
    return shown


def write_report(trace: EpisodeTrace, goal: np.ndarray, name: str, out: Path) -> dict[str, str]:
    """The GIF, the real-vs-imagined figure and the strip of one traced episode (module doc)."""
    frames, size = trace.frames, trace.frames[0].shape[0]
    files = {}
    steps = len(frames) - 1
    picks = np.unique(np.linspace(0, steps, min(STRIP_FRAMES, steps + 1)).round().astype(int))
    tiles = [labelled_tile(goal, "goal", scale=3)]
    tiles += [labelled_tile(frames[i], f"step {i}", scale=3) for i in picks]
    files["strip_png"] = str(save_png(grid([tiles]), out / f"{name}_strip.png"))

    imagined = imagined_for_frames(trace, size)
    movie = [
        np.concatenate([upscale(f, 3), upscale(m, 3), upscale(goal, 3)], axis=1)
        for f, m in zip(frames, imagined, strict=True)
    ]
    files["gif"] = str(save_gif(movie, out / f"{name}.gif", fps=10.0))

    shown = [r for r in trace.replans if r.imagined is not None]
    if shown:
        picks = np.unique(np.linspace(0, len(shown) - 1, min(REPLAN_ROWS, len(shown))).astype(int))
        rows = []
        for rec in (shown[i] for i in picks):
            real = [labelled_tile(goal, "goal")]
            real += [
                labelled_tile(frames[t], f"real +{t - rec.step}")
                for t in range(rec.step + 1, min(rec.step + 1 + len(rec.imagined), len(frames)))
            ]
            dream = [labelled_tile(frames[rec.step], f"now: step {rec.step}")]
            dream += [labelled_tile(f, f"imagined +{i + 1}") for i, f in enumerate(rec.imagined)]
            rows += [real, dream]
        files["replans_png"] = str(save_png(grid(rows), out / f"{name}_replans.png"))
    return files


def run_demo(
    out: Path,
    seed: int = 0,
    episodes: int = 2,
    *,
    tasks: tuple[str, ...] = ("push",),
    planner: str = "learned",
    cfg: PlanningSessionConfig | None = None,
    model: str | None = None,
    replan_every: int = 2,
    device: str = "cpu",
    setup: EpisodeSetup | None = None,
    progress: bool = True,
) -> DemoOutcome:
    """`episodes` closed-loop episodes per task (seeds seed, seed+1, ...) with a report
    (module doc). cfg: the planner settings for every task (default: demo_config(task));
    setup: the episodes' push start, goal pose, puck size and whether the goal's joint state is
        given (default: EpisodeSetup())."""
    setup = setup or EpisodeSetup()
    out.mkdir(parents=True, exist_ok=True)
    cfgs = {kind: cfg or demo_config(kind) for kind in tasks}
    if model is not None:
        cfgs = {kind: c.replace(model=model) for kind, c in cfgs.items()}
    first = cfgs[tasks[0]]
    c = first.planner.cem
    label = planner
    if planner in ("learned", "oracle"):
        label = (
            f"{planner} planner, {first.model}, CEM {c.num_samples} x {c.iterations} iterations, "
            f"{first.planner.sampler_steps} sampler steps, replan every {replan_every} steps"
        )
    outcome = DemoOutcome(out=out, controller=label)
    latencies: list[float] = []
    jobs = [(kind, seed + i) for kind in tasks for i in range(episodes)]
    loops, sims = {}, {}
    with ExitStack() as stack:
        for kind in tasks:  # the model is loaded once per task; the simulator opened once
            sim_cfg = setup.sim_config(kind)
            loops[kind] = make_closed_loop(
                planner,
                sim_cfg,
                cfg=cfgs[kind],
                device=device,
                send_goal_joints=setup.goal_pose == "given",
            )
            stack.callback(loops[kind].close)
            size = loops[kind].image_size
            sim_cfg = sim_cfg.replace(image_width=size, image_height=size)
            sims[kind] = stack.enter_context(TabletopSim(sim_cfg))
        bar = tqdm(jobs, desc="demo episodes", unit="episode", disable=not progress)
        for kind, episode_seed in bar:
            start = time.perf_counter()
            trace = EpisodeTrace()
            r = run_episode(
                sims[kind], loops[kind], episode_seed, replan_every=replan_every, trace=trace
            )
            goal = sims[kind].task.goal_image
            latencies += r.replan_ms
            result = EpisodeResult(
                task=kind,
                seed=episode_seed,
                success=r.success,
                steps=r.steps,
                start_distance_m=r.start_distance,
                final_distance_m=r.final_distance,
                wall_s=time.perf_counter() - start,
                replans=len(r.replan_ms),
                replan_ms_p50=latency_percentiles(r.replan_ms)["p50"],
            )
            for key, path in write_report(trace, goal, f"{kind}_seed{episode_seed}", out).items():
                setattr(result, key, path)
            log.info("%s", result)
            outcome.episodes.append(result)
    summary = {
        "controller": outcome.controller,
        "planner": planner,
        "success_rate": float(np.mean([e.success for e in outcome.episodes])),
        "latency_ms": latency_percentiles(latencies),
        "replan_every": replan_every,
        **asdict(setup),
        "device": device,
        "planner_config": {kind: c.to_dict() for kind, c in cfgs.items()},
        "episodes": [asdict(e) for e in outcome.episodes],
    }
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    return outcome
