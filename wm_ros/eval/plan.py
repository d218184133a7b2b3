"""`wm-ros eval plan`: closed-loop success of a planner in the simulator, same seeds for all.

Planners:
- learned: the planning session (CEM + costs + action prior) with the world model imagining
  every candidate;
- oracle: the very same session and CEM, but each candidate is executed in a second copy of the
  simulator from the current state and its frames are rendered and encoded with the model's
  autoencoder (the cost sees the same latent space): the upper bound of the cost and CEM
  settings, free of model error;
- random: the simulator's smooth random policy (the floor);
- scripted: the simulator's privileged scripted controller, which reads the true state (the
  controller that made the goals: a check of the task itself, not a planner).

Each control step the simulator's frame and joint state go into the session exactly as
planner_node receives them; the session replans every `replan_every` steps and the arm follows
the plan's targets in between. An episode ends at success (the task's own distance threshold)
or after the task's episode_steps. Reported per planner: success rate, final distance (mean,
median), replan latency percentiles.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wm_ros.config import (
    PUCK_RADIUS_M,
    PUCK_RADIUS_RANGE_M,
    PUSH_GOAL_POSES,
    PUSH_STARTS,
    TASK_KINDS,
    PlanningSessionConfig,
    SimConfig,
    TaskConfig,
    planning_session_from_yaml,
)
from wm_ros.data import array_fingerprint
from wm_ros.eval.timing import latency_percentiles, machine_info
from wm_ros.paths import config_path
from wm_ros.planning.planner import PlanError

log = logging.getLogger(__name__)

PLANNERS = ("learned", "oracle", "random", "scripted")


@dataclass(frozen=True)
class PuckError:
    """How the oracle's imagined puck is wrong, so that it stands for a model of known puck
    error (`wm-ros eval plan --planner oracle --oracle-puck-gain G --oracle-puck-noise-mm S`):
    every candidate's frames show the puck moved `gain` times as far as it really goes from
    the replan's start (the shipped model's is about 0.3: benchmarks/plan_rank_probe.py), plus
    the candidate's own N(0, noise_m) draw per axis, fresh at every call; the physics is the
    simulator's. The default is the exact oracle."""

    gain: float = 1.0
    noise_m: float = 0.0

    def __post_init__(self) -> None:
        if self.gain < 0 or self.noise_m < 0:
            raise ValueError(f"puck gain and noise must be >= 0, got {self.gain}, {self.noise_m}")

    @property
    def exact(self) -> bool:
        return self.gain == 1.0 and self.noise_m == 0.0

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, 2) each candidate's own scatter, metres (zeros without noise, drawn all the
        same so that the levels after it see the same stream)."""
        return rng.normal(0.0, self.noise_m, (n, 2))

    def offset(self, moved: np.ndarray, scatter: np.ndarray) -> np.ndarray:
        """(2,) where to draw a puck that truly `moved` (2,) m since the start, relative to
        where it is, given a candidate's `scatter` (2,) from draw()."""
        return scatter + (self.gain - 1.0) * moved


class SimRollout:
    """The oracle's model: candidates (N, H, J) executed in a private simulator from a saved
    state, frames rendered and encoded -> (N, H, c, h, w) latents. A loop over candidates:
    physics is sequential; this is the yardstick, not the product.

    With all_steps=False only each candidate's final frame is rendered and encoded, (N, 1, c,
    h, w): the final step is all a goal_final-only cost reads, and encoding is most of the
    oracle's time (256 x 3 candidates: ~35 s a replan on one CPU thread with every step, ~6 s
    with the final one). A single candidate (the chosen plan, rolled out again for display) is
    rendered at every step either way, so reports show each imagined step. `puck_error` draws
    the puck where a model of that error would imagine it (PuckError).
    """

    def __init__(
        self,
        sim_cfg: SimConfig,
        model,
        *,
        all_steps: bool = True,
        puck_error: PuckError = PuckError(),
    ) -> None:
        from wm_ros.sim import TabletopSim

        self.sim = TabletopSim(sim_cfg)
        self.model = model
        self.all_steps = all_steps
        self.puck_error = puck_error
        self.device = next(model.parameters()).device
        self.state: np.ndarray | None = None
        self._rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        """Seed the puck noise for an episode (the same draws whatever ran before)."""
        self._rng = np.random.default_rng(seed)

    def set_state(self, state: np.ndarray) -> None:
        self.state = state

    @torch.no_grad()
    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        n, h = targets.shape[:2]
        q = targets.cpu().numpy().astype(np.float64)
        s = self.model.cfg.image_size
        shown = range(h) if self.all_steps or n == 1 else range(h - 1, h)
        frames = np.empty((n, len(shown), s, s, 3), dtype=np.uint8)
        err = self.puck_error
        if not err.exact:
            scatter = err.draw(self._rng, n)
            self.sim.set_state(self.state)
            start = self.sim.puck_position()[:2]
        for i in range(n):
            self.sim.set_state(self.state)
            for t in range(h):
                self.sim.step(q[i, t])
                if t < shown.start:
                    continue
                if err.exact:
                    frames[i, t - shown.start] = self.sim.render()
                    continue
                # Drawn where the model would put it; the physics goes on from the true state.
                state = self.sim.get_state()
                self.sim.shift_puck(err.offset(self.sim.puck_position()[:2] - start, scatter[i]))
                frames[i, t - shown.start] = self.sim.render()
                self.sim.set_state(state)
        return self.model.encode_frames(frames)

    def close(self) -> None:
        self.sim.close()


GOAL_POSES = ("image", "given")  # EpisodeSetup.goal_pose


@dataclass(frozen=True)
class EpisodeSetup:
    """How closed-loop episodes are set up (`wm-ros eval plan`, the demo; `add_episode_arguments`):
    TaskConfig's push_start and push_goal_pose for push episodes, SimConfig's puck_radius_m, and
    goal_pose: whether the planner gets the goal's joint state beside its image ("given", as
    the sim node publishes it) or the image alone ("image": a cost that reads a goal pose then
    uses the one the model's estimator reads off the image, PlannerConfig.goal_pose).
    Evaluation starts a push staged: the push is the task, and from a clear start the tip must
    first go round the puck (TaskConfig)."""

    push_start: str = "staged"
    push_goal_pose: str = PUSH_GOAL_POSES[0]
    puck_radius_m: float = PUCK_RADIUS_M
    goal_pose: str = "image"

    def __post_init__(self) -> None:
        if self.goal_pose not in GOAL_POSES:
            raise ValueError(f"goal_pose must be one of {GOAL_POSES}, got {self.goal_pose!r}")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> EpisodeSetup:
        return cls(args.push_start, args.push_goal_pose, args.puck_radius, args.goal_pose)

    def sim_config(self, task: str, **task_fields) -> SimConfig:
        """The simulator settings of an episode of `task` (TaskConfig fields may be added).

        Raises:
            ValueError: a setting out of its range.
        """
        task_cfg = TaskConfig(
            kind=task, push_start=self.push_start, push_goal_pose=self.push_goal_pose, **task_fields
        )
        return SimConfig(task=task_cfg, puck_radius_m=self.puck_radius_m)


TASK_CONFIG = "planner_{task}.yaml"  # a task's own planner settings, where the package has them


def task_planner_config(task: str, *budget: str) -> PlanningSessionConfig:
    """The planner settings a task runs with by default: config/planner.yaml, the `budget`
    files (e.g. "planner_cpu.yaml") and then config/planner_<task>.yaml when there is one."""
    paths = [config_path(name) for name in ("planner.yaml", *budget)]
    with suppress(FileNotFoundError):  # without one, the task plans with the general settings
        paths.append(config_path(TASK_CONFIG.format(task=task)))
    return planning_session_from_yaml(*paths)


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    start_distance: float
    final_distance: float
    # Where a failure went wrong: the closest the episode came to the goal, and how far the arm
    # ended from the goal's joint pose (rad, largest joint).
    min_distance: float = float("inf")
    final_joint_error_rad: float = float("nan")
    plan_errors: int = 0  # replans that raised PlanError (the arm held its pose instead)
    replan_ms: list[float] = field(default_factory=list)
    # SHA-256 (16 hex) of the start state and the goal image: whether two runs of a seed
    # started alike (other hosts can make other episodes of the same seed, README).
    start_fingerprint: str = ""


@dataclass
class ReplanRecord:
    """One replan of a traced episode: the control step it was made at, its best cost, its
    latency and the best plan's imagined frames (H, S, S, 3) uint8."""

    step: int
    cost: float
    ms: float
    imagined: np.ndarray | None


@dataclass
class EpisodeTrace:
    """What a report shows of an episode: every camera frame (steps 0..T) and every replan."""

    frames: list[np.ndarray] = field(default_factory=list)
    replans: list[ReplanRecord] = field(default_factory=list)


@dataclass
class ClosedLoop:
    """A planner ready for episodes: its kind, the planning session (learned and oracle), the
    oracle's private simulator, and the image size the simulator must render at."""

    planner: str
    session: object | None = None
    oracle: SimRollout | None = None
    image_size: int = 64
    send_goal_joints: bool = False  # EpisodeSetup.goal_pose "given"

    def close(self) -> None:
        if self.oracle is not None:
            self.oracle.close()


def make_closed_loop(
    planner: str,
    sim_cfg: SimConfig,
    *,
    model_dir: Path | str | None = None,
    cfg: PlanningSessionConfig | None = None,
    device: str = "cpu",
    send_goal_joints: bool = False,
    oracle_puck: PuckError = PuckError(),
) -> ClosedLoop:
    """Load the model (and prior) and build the session a planner needs; sim_cfg's image size
    is replaced by the model's; the oracle draws the puck with `oracle_puck`'s error
    (SimRollout). Raises CheckpointError / ValueError on a bad model or config."""
    from wm_ros.planning.session import load_planning_session, resolve_model_dir

    if planner not in PLANNERS:
        raise ValueError(f"planner must be one of {PLANNERS}, got {planner!r}")
    loop = ClosedLoop(planner, send_goal_joints=send_goal_joints)
    if planner in ("random", "scripted"):
        return loop
    cfg = cfg or PlanningSessionConfig()
    directory = resolve_model_dir(str(model_dir or cfg.model))
    loop.session = load_planning_session(cfg, directory, device)
    model = loop.session.model
    loop.image_size = model.cfg.image_size
    if planner == "oracle":
        size = loop.image_size
        # A cost that reads only the final step needs only the final frame rendered.
        all_steps = cfg.planner.cost.goal_all > 0
        sim_cfg = sim_cfg.replace(image_width=size, image_height=size)
        loop.oracle = SimRollout(sim_cfg, model, all_steps=all_steps, puck_error=oracle_puck)
    return loop


def run_episode(
    sim,
    loop: ClosedLoop,
    seed: int,
    *,
    replan_every: int = 1,
    trace: EpisodeTrace | None = None,
) -> EpisodeResult:
    """One closed-loop episode from sim.reset(seed) (module doc); with a trace, every frame
    and every replan's imagined frames are kept for a report."""
    from wm_ros.sim.scripted import RandomSmoothPolicy, scripted_policy

    sim.reset(seed)
    if loop.oracle is not None:
        loop.oracle.reset(seed)
    task = sim.task
    start = task.distance(sim)
    result = EpisodeResult(seed, False, 0, start, start, min_distance=start)
    result.start_fingerprint = array_fingerprint([sim.get_state(), task.goal_image])
    session, policy = loop.session, None
    if loop.planner == "random":
        policy = RandomSmoothPolicy(seed)
    elif loop.planner == "scripted":
        policy = scripted_policy(task)
    if policy is not None:
        policy.reset(sim)
    else:
        cam = sim.camera_model()
        session.reset()
        session.set_camera(cam.width, cam.height, cam.k.ravel(), cam.d)
        session.set_goal(task.goal_image)
        if loop.send_goal_joints:
            session.set_goal_joints(sim.joint_names, task.goal_joints)
    plan, k = None, 0
    frame = sim.render() if trace is not None or policy is None else None
    for step in range(sim.cfg.task.episode_steps):
        if trace is not None:
            trace.frames.append(frame)
        if policy is not None:
            target = policy(sim)
        else:
            now = sim.time
            session.add_image(frame, now)
            session.set_joints(sim.joint_names, sim.joint_positions(), now)
            if plan is None or k >= min(replan_every, len(plan)):
                t0 = time.perf_counter()
                if loop.oracle is not None:
                    loop.oracle.set_state(sim.get_state())
                try:
                    out, _ = session.replan(now, rollout=loop.oracle, imagine=trace is not None)
                except PlanError as err:
                    # What the node does too: no plan this cycle, reported; the arm holds.
                    result.plan_errors += 1
                    log.warning("seed %d, step %d: %s; holding the pose", seed, step, err)
                    plan, k = sim.joint_positions()[None], 0
                else:
                    ms = (time.perf_counter() - t0) * 1e3
                    result.replan_ms.append(ms)
                    if trace is not None:
                        record = ReplanRecord(step, out.cost, ms, session.imagined_frames(out))
                        trace.replans.append(record)
                    plan, k = out.targets, 0
            target = plan[k]
            k += 1
        sim.step(target)
        result.steps = step + 1
        if trace is not None or policy is None:
            frame = sim.render()
        result.min_distance = min(result.min_distance, task.distance(sim))
        if task.success(sim):
            result.success = True
            break
    if trace is not None:
        trace.frames.append(frame)
    result.final_distance = task.distance(sim)
    result.final_joint_error_rad = float(np.max(np.abs(sim.joint_positions() - task.goal_joints)))
    return result


def evaluate_planner(
    planner: str,
    task: str,
    episodes: int,
    seed: int,
    *,
    model_dir: Path | None = None,
    cfg: PlanningSessionConfig | None = None,
    device: str = "cpu",
    replan_every: int = 1,
    episode_steps: int | None = None,
    setup: EpisodeSetup | None = None,
    progress: bool = True,
    oracle_puck: PuckError = PuckError(),
) -> dict:
    """Closed-loop figures of one planner on `episodes` seeded episodes (module doc); the
    oracle draws the puck with `oracle_puck`'s error (SimRollout)."""
    from wm_ros.sim import TabletopSim

    cfg = cfg or PlanningSessionConfig()
    setup = setup or EpisodeSetup()
    steps = {} if episode_steps is None else {"episode_steps": episode_steps}
    sim_cfg = setup.sim_config(task, **steps).replace(seed=seed)
    loop = make_closed_loop(
        planner,
        sim_cfg,
        model_dir=model_dir,
        cfg=cfg,
        device=device,
        send_goal_joints=setup.goal_pose == "given",
        oracle_puck=oracle_puck,
    )
    sim_cfg = sim_cfg.replace(image_width=loop.image_size, image_height=loop.image_size)
    results = []
    try:
        with TabletopSim(sim_cfg) as sim:
            seeds = range(seed, seed + episodes)
            bar = tqdm(seeds, desc=f"eval plan {planner}", disable=not progress)
            for s in bar:
                results.append(run_episode(sim, loop, s, replan_every=replan_every))
                bar.set_postfix(success=f"{np.mean([x.success for x in results]):.2f}")
    finally:
        loop.close()
    final = np.array([r.final_distance for r in results])
    planned = planner in ("learned", "oracle")
    return {
        "task": task,
        "planner": planner,
        "episodes": episodes,
        "seed": seed,
        "success_rate": float(np.mean([r.success for r in results])),
        "final_distance": {"mean": float(final.mean()), "median": float(np.median(final))},
        "latency_ms": latency_percentiles([ms for r in results for ms in r.replan_ms]),
        "replan_every": replan_every,
        "episode_steps": sim_cfg.task.episode_steps,
        **asdict(setup),
        "model": str(model_dir or cfg.model) if planned else None,
        "planner_config": cfg.planner.to_dict(),
        **({"oracle_puck": asdict(oracle_puck)} if planner == "oracle" else {}),
        "machine": machine_info(),
        "device": device,
        "per_episode": [
            {
                "seed": r.seed,
                "success": r.success,
                "steps": r.steps,
                "start_distance": r.start_distance,
                "final_distance": r.final_distance,
                "min_distance": r.min_distance,
                "final_joint_error_rad": r.final_joint_error_rad,
                "plan_errors": r.plan_errors,
                "start_fingerprint": r.start_fingerprint,
            }
            for r in results
        ],
    }


def _cmd_plan(args: argparse.Namespace) -> int:
    from wm_ros.model import CheckpointError
    from wm_ros.train import resolve_device

    cfg = (
        planning_session_from_yaml(*args.config) if args.config else task_planner_config(args.task)
    )
    cem = {"num_samples": args.samples, "num_elites": args.elites, "iterations": args.iterations}
    try:
        cem_cfg = cfg.planner.cem.replace(**{k: v for k, v in cem.items() if v is not None})
    except ValueError as err:
        log.error("wm-ros eval plan: %s", err)
        return 2
    cfg = cfg.replace(planner=cfg.planner.replace(cem=cem_cfg))
    try:
        oracle_puck = PuckError(args.oracle_puck_gain, args.oracle_puck_noise_mm * 1e-3)
    except ValueError as err:
        log.error("wm-ros eval plan: %s", err)
        return 2
    if not oracle_puck.exact and args.planner != "oracle":
        log.error("wm-ros eval plan: --oracle-puck-gain and -noise-mm need --planner oracle")
        return 2
    try:
        result = evaluate_planner(
            args.planner,
            args.task,
            args.episodes,
            args.seed,
            model_dir=args.model,
            cfg=cfg,
            device=str(resolve_device(args.device)),
            replan_every=args.replan_every,
            episode_steps=args.steps,
            setup=EpisodeSetup.from_args(args),
            oracle_puck=oracle_puck,
        )
    except (CheckpointError, ValueError) as err:
        log.error("wm-ros eval plan: %s", err)
        return 2
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    lat = result["latency_ms"]["p50"]
    log.info(
        "%s %s: success %.2f over %d episodes, final distance median %.3f m, replan p50 %s -> %s",
        args.planner,
        args.task,
        result["success_rate"],
        args.episodes,
        result["final_distance"]["median"],
        "n/a" if lat is None else f"{lat:.0f} ms",
        args.json,
    )
    return 0


def add_episode_arguments(parser: argparse.ArgumentParser) -> None:
    """--push-start, --push-goal-pose, --puck-radius and --goal-pose: an EpisodeSetup
    (`from_args`)."""
    defaults = EpisodeSetup()
    parser.add_argument(
        "--push-start",
        choices=PUSH_STARTS,
        default=defaults.push_start,
        help="push episodes start staged behind the puck, or anywhere clear of it",
    )
    parser.add_argument(
        "--push-goal-pose",
        choices=PUSH_GOAL_POSES,
        default=defaults.push_goal_pose,
        help="the goal's arm holds against the puck where the push ended, or backs off first",
    )
    parser.add_argument(
        "--puck-radius",
        type=float,
        default=defaults.puck_radius_m,
        metavar="M",
        help=f"puck radius, m, within {list(PUCK_RADIUS_RANGE_M)} (the shipped model saw "
        f"{PUCK_RADIUS_M}; a smaller puck weighs less in the goal image, README)",
    )
    parser.add_argument(
        "--goal-pose",
        choices=GOAL_POSES,
        default=defaults.goal_pose,
        help="image: the planner gets the goal image alone (a cost that reads a goal pose uses "
        "the one the model's pose estimator reads off it); given: also the goal's joint state",
    )


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros eval plan` (the handler is set as `func`)."""
    parser.add_argument("--task", choices=TASK_KINDS, default="push")
    parser.add_argument("--planner", choices=PLANNERS, default="learned")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="first episode seed (S, S+1, ...)")
    parser.add_argument("--json", type=Path, required=True, help="write the figures here")
    parser.add_argument("--model", type=Path, help="model directory (default: the config's)")
    parser.add_argument(
        "--config",
        type=Path,
        action="append",
        help="planner params YAML, repeat to layer (later wins); default: config/planner.yaml "
        "then config/planner_<task>.yaml where there is one",
    )
    parser.add_argument("--steps", type=int, help="override the task's episode_steps")
    add_episode_arguments(parser)
    parser.add_argument("--replan-every", type=int, default=1, help="control steps per replan")
    parser.add_argument("--samples", type=int, help="override planner.cem.num_samples")
    parser.add_argument("--elites", type=int, help="override planner.cem.num_elites")
    parser.add_argument("--iterations", type=int, help="override planner.cem.iterations")
    parser.add_argument(
        "--oracle-puck-gain",
        type=float,
        default=1.0,
        help="oracle only: draw each candidate's puck moved G times as far as it goes (PuckError)",
    )
    parser.add_argument(
        "--oracle-puck-noise-mm",
        type=float,
        default=0.0,
        help="oracle only: and off by its own N(0, S mm) per axis (how exact a model must be)",
    )
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=_cmd_plan)
