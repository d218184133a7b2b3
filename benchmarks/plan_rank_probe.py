"""Does the world model rank candidate plans as the simulator would? A planning-relevant probe.

Open-loop figures (PSNR, arm IoU, puck error) say how close imagined frames are to the truth;
CEM only needs the candidates in the right order. This probe follows the task's scripted
controller (the privileged solution) through episodes and, at a few of its steps, draws candidate
plans the way a planner meets them: around the controller's own next H targets (spreads of 0.05,
0.1 and 0.2 rad per knot) and fresh ones around holding the pose (CEM's first iteration,
init_std). Every candidate is scored twice through the planner's own cost
(`PlanningSession.score`): with the world model, and with the oracle (the simulator executes and
renders each candidate). Reported per probed state, then averaged:

- spearman: rank correlation of the two costs over the candidates (1: the same order);
- spearman_top: the same over the oracle's best quarter only (the near-good candidates CEM has
  to tell apart; the whole set is ordered mostly by the arm's gross pose);
- regret: the oracle cost of the model's best candidate above the oracle's best, over the
  oracle's spread (median - best): 0 when the model picks the oracle's best, 1 a median pick;
- top10: whether the model's best candidate is in the oracle's best 10%;
- scripted_rank: where the controller's own plan lands in the model's order (0 = best, 1 = worst);
  the oracle's figure beside it.

And against the task itself: `task_regret` is the same regret measured on the task's own distance
after executing each candidate (push: the puck's distance to its goal, reach: the tool's), for
the model's pick and for the oracle's (how well the cost itself serves the task at this horizon).

And against the puck itself, the model's decoded final frames against the simulator's (the
puck found by the colour classifier `wm-ros eval predict` uses, fitted on the episodes' start
frames): `puck_gain`, pooled over states and candidates, is how far the model moves the puck per
pixel the simulator moves it (least squares through the origin of the 8-step displacement
vectors: 1 when it imagines the pushes' full reach, 0 when the puck never moves);
`puck_err_px` is the model's error in the puck's final centroid on candidates that move it
more than 1 px, beside `puck_copy_err_px` (the puck left where it was); `puck_spearman` the
rank correlation over candidates of the imagined and the true puck distance to where the goal
image shows it.

How exact must a model be? `--puck-gains G ...` and `--puck-noise-mm S ...` (push) add the task
regret of a perfect model whose puck has a known error (wm_ros.eval.plan.PuckError): the
simulator executes every candidate, and its outcome (the puck's distance to its goal) is read
with the puck moved G times as far as it went (`puck_gain_task_regret_<G>`), or off by the
candidate's own Gaussian draw of S mm per axis, seeded (`puck_noise_task_regret_<S>mm`).
`px_per_cm` says how far 1 cm moves the puck's centroid in the image at the probed states, to
read the levels in pixels. Closed loop, the same model is `wm-ros eval plan --planner oracle
--oracle-puck-gain G --oracle-puck-noise-mm S` (SimRollout).

The same figures are given for a reference scorer, `arm_only`: the simulator with the puck held
where it is (the arm exact, the puck never moving). A model that does no better than it ranks
candidates by the arm alone, whatever it imagines for the puck.

    python benchmarks/plan_rank_probe.py [--model models/sim_tabletop] [--task push]
        [--episodes 10] [--probe-steps 0 3 6] [--candidates 64] [--noise-scale S]
        [--puck-gains 0.3 0.6] [--puck-noise-mm 10 20 50] [--json F]

Planner settings come from config/planner.yaml + the task's file, as `wm-ros eval plan` layers
them (`--config` replaces them); the budget does not matter here, only the cost and actions.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

SCALES_RAD = (0.05, 0.1, 0.2)  # spreads around the scripted plan, per knot


class ArmOnlyRollout:
    """The oracle's rollout with the puck held at its place: each candidate's final frame
    shows the arm exactly where the simulator puts it and the puck unmoved (N, 1, c, h, w)."""

    def __init__(self, oracle) -> None:
        self.oracle = oracle

    @torch.no_grad()
    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        sim, q = self.oracle.sim, targets.cpu().numpy().astype(np.float64)
        s = self.oracle.model.cfg.image_size
        frames = np.empty((len(q), 1, s, s, 3), dtype=np.uint8)
        for i in range(len(q)):
            sim.set_state(self.oracle.state)
            puck = sim.puck_position()[:2].copy()
            for t in range(q.shape[1]):
                sim.step(q[i, t])
                sim.set_puck(puck)
            frames[i, 0] = sim.render()
        return self.oracle.model.encode_frames(frames)


def ranks(x: np.ndarray) -> np.ndarray:
    """0-based ranks of x (ties broken by order; costs are continuous)."""
    r = np.empty(len(x))
    r[np.argsort(x, kind="stable")] = np.arange(len(x))
    return r


def regret(cost: np.ndarray, truth: np.ndarray) -> float:
    """truth of cost's pick above truth's best, over truth's spread (median - best)."""
    spread = float(np.median(truth) - truth.min())
    return float((truth[int(np.argmin(cost))] - truth.min()) / max(spread, 1e-12))


class RecordingRollout:
    """A rollout that keeps the latents of its last call (for the puck figures)."""

    def __init__(self, inner) -> None:
        self.inner, self.last = inner, None

    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        self.last = self.inner(targets)
        return self.last


def puck_pixel(sim) -> np.ndarray:
    """(2,) the puck's centroid (row, col) in the simulator's current image, px (NaN: hidden)."""
    from wm_ros.centroids import mask_centroid

    centre, _ = mask_centroid(torch.as_tensor(sim.puck_mask()))
    return centre.numpy()


def task_outcome(oracle, task, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """After executing each candidate's targets (N, H, J) from the oracle's saved state: the
    task's distance (N,), m, and the puck's centroid in the image (N, 2), px."""
    sim, q = oracle.sim, targets.cpu().numpy().astype(np.float64)
    out, puck = np.empty(len(q)), np.empty((len(q), 2))
    for i in range(len(q)):
        sim.set_state(oracle.state)
        for t in range(q.shape[1]):
            sim.step(q[i, t])
        out[i], puck[i] = task.distance(sim), puck_pixel(sim)
    return out, puck


def puck_error_regrets(
    oracle, task, targets: torch.Tensor, truth: np.ndarray, errors: dict, *, rng
) -> dict:
    """Task regret (N,)-candidate `targets` (N, H, J) would have if ranked by their outcome
    from the oracle's saved state read with each named PuckError in `errors` (the puck moved
    `gain` times as far as it went, plus the candidate's own N(0, noise_m) draw per axis;
    TabletopSim.shift_puck), and the image's px per cm of puck motion at the saved state."""
    sim, q = oracle.sim, targets.cpu().numpy().astype(np.float64)
    scatter = {k: e.draw(rng, len(q)) for k, e in errors.items()}
    outcome = {k: np.empty(len(q)) for k in errors}
    sim.set_state(oracle.state)
    start = sim.puck_position()[:2]
    for i in range(len(q)):
        sim.set_state(oracle.state)
        for t in range(q.shape[1]):
            sim.step(q[i, t])
        end, moved = sim.get_state(), sim.puck_position()[:2] - start
        for k, e in errors.items():
            sim.shift_puck(e.offset(moved, scatter[k][i]))
            outcome[k][i] = task.distance(sim)
            sim.set_state(end)
    row = {k: regret(outcome[k], truth) for k in errors}
    sim.set_state(oracle.state)
    before = puck_pixel(sim)
    sim.shift_puck(np.array([0.01, 0.0]))
    row["px_per_cm"] = float(np.linalg.norm(puck_pixel(sim) - before))
    return row


def imagined_puck(model, latents: torch.Tensor, segmenter) -> np.ndarray:
    """(N, 2) the puck's centroid (row, col), px, in each candidate's decoded final imagined
    frame: the densest puck-sized blob of puck-coloured pixels, as `wm-ros eval predict` finds
    it (NaN where none is)."""
    from wm_ros.centroids import blob_centroid
    from wm_ros.eval.predict import PUCK_BLOB_FRACTION

    images = model.decode(latents[:, -1]).clamp(0, 1)  # (N, 3, S, S)
    _, puck = segmenter.masks(images)
    radius = max(1, round(PUCK_BLOB_FRACTION * images.shape[-1]))
    centre, _ = blob_centroid(puck, radius)
    return centre.cpu().numpy()


def puck_figures(pred: np.ndarray, true: np.ndarray, start: np.ndarray, goal: np.ndarray) -> dict:
    """One state's puck figures (module doc) from centroids (N, 2) imagined and true, the start's
    (2,) and the goal image's (2,); NaN where the puck was not found."""
    shift = np.linalg.norm(true - start, axis=1)  # how far the simulator moved it, px
    err = np.linalg.norm(pred - true, axis=1)
    seen = ~np.isnan(err)
    d_pred, d_true = np.linalg.norm(pred - goal, axis=1), np.linalg.norm(true - goal, axis=1)
    both = seen & ~np.isnan(d_true)
    spearman = float("nan")
    if both.sum() > 2 and np.ptp(d_pred[both]) > 0 and np.ptp(d_true[both]) > 0:
        spearman = float(np.corrcoef(ranks(d_pred[both]), ranks(d_true[both]))[0, 1])
    use = (shift > 1.0) & seen
    return {
        "puck_spearman": spearman,
        "puck_err_px": float(err[use].mean()) if use.any() else float("nan"),
        "puck_copy_err_px": float(shift[use].mean()) if use.any() else float("nan"),
        "puck_missing": float(1.0 - seen.mean()),
    }


def puck_gain(displacements: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """Least-squares gain through the origin of imagined on true puck displacements (each
    (N, 2) pair, px), pooled; pairs with a NaN are left out."""
    pred = np.concatenate([p for p, _ in displacements])
    true = np.concatenate([t for _, t in displacements])
    ok = ~(np.isnan(pred).any(axis=1) | np.isnan(true).any(axis=1))
    return float((pred[ok] * true[ok]).sum() / max((true[ok] ** 2).sum(), 1e-12))


def compare(model_cost: np.ndarray, oracle_cost: np.ndarray) -> dict:
    """The probe's figures for one state (module doc); candidate 0 is the scripted plan."""
    n = len(oracle_cost)
    rm, ro = ranks(model_cost), ranks(oracle_cost)
    pick = int(np.argmin(model_cost))
    top = ro < max(3, n // 4)
    return {
        "spearman": float(np.corrcoef(rm, ro)[0, 1]),
        "spearman_top": float(np.corrcoef(ranks(model_cost[top]), ranks(oracle_cost[top]))[0, 1]),
        "regret": regret(model_cost, oracle_cost),
        "top10": bool(ro[pick] < max(1, n // 10)),
        "scripted_rank_model": float(rm[0] / (n - 1)),
        "scripted_rank_oracle": float(ro[0] / (n - 1)),
    }


def candidates(base: torch.Tensor, init_std: float, n: int, g: torch.Generator) -> torch.Tensor:
    """(n, P, D): the scripted plan `base` (P, D) first, then groups around it at SCALES_RAD
    and around holding the pose (zero offsets) at init_std."""
    groups = [*SCALES_RAD, None]
    per = (n - 1) // len(groups)
    out = [base[None]]
    for i, scale in enumerate(groups):
        k = per if i < len(groups) - 1 else n - 1 - per * (len(groups) - 1)
        eps = torch.randn((k, *base.shape), generator=g)
        out.append(base + scale * eps if scale is not None else init_std * eps)
    return torch.cat(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/sim_tabletop")
    parser.add_argument("--task", choices=("push", "reach"), default="push")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument("--probe-steps", type=int, nargs="+", default=[0, 3, 6])
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--config", action="append", help="planner params file (repeatable)")
    parser.add_argument("--noise-scale", type=float, help="override planner.sampler_noise_scale")
    parser.add_argument(
        "--draws",
        type=int,
        default=1,
        help="average the model's cost over this many noise seeds (planner.seed, seed + 1, ...)",
    )
    parser.add_argument(
        "--puck-gains",
        type=float,
        nargs="+",
        default=[],
        help="push: task regret of the simulator reading the puck moved G times as far (doc)",
    )
    parser.add_argument(
        "--puck-noise-mm",
        type=float,
        nargs="+",
        default=[],
        help="push: task regret of the simulator reading the puck this many mm off (module doc)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if (args.puck_gains or args.puck_noise_mm) and args.task != "push":
        parser.error("--puck-gains/--puck-noise-mm need --task push (reach has no puck)")
    from wm_ros.eval.plan import PuckError

    try:
        puck_errors = {
            **{f"puck_gain_task_regret_{g:g}": PuckError(gain=g) for g in args.puck_gains},
            **{
                f"puck_noise_task_regret_{s:g}mm": PuckError(noise_m=s * 1e-3)
                for s in args.puck_noise_mm
            },
        }
    except ValueError as err:
        parser.error(str(err))

    os.environ.setdefault("MUJOCO_GL", "egl")
    from wm_ros.centroids import mask_centroid
    from wm_ros.config import planning_session_from_yaml
    from wm_ros.eval.metrics import ColourSegmenter
    from wm_ros.eval.plan import EpisodeSetup, make_closed_loop, task_planner_config
    from wm_ros.eval.timing import machine_info
    from wm_ros.sim import TabletopSim
    from wm_ros.sim.scripted import scripted_policy

    torch.set_grad_enabled(False)
    cfg = (
        planning_session_from_yaml(*args.config) if args.config else task_planner_config(args.task)
    )
    if args.noise_scale is not None:
        cfg = cfg.replace(planner=cfg.planner.replace(sampler_noise_scale=args.noise_scale))
    sim_cfg = EpisodeSetup().sim_config(args.task)
    loop = make_closed_loop("oracle", sim_cfg, model_dir=args.model, cfg=cfg)
    size = loop.image_size
    sim = TabletopSim(sim_cfg.replace(image_width=size, image_height=size))
    session, oracle = loop.session, loop.oracle
    arm_only = ArmOnlyRollout(oracle)
    actions = session.planner.actions
    g = torch.Generator().manual_seed(args.seed)
    noise_rng = np.random.default_rng(args.seed)
    seeds = range(args.seed, args.seed + args.episodes)
    starts = []  # the colour classifier's fit: every episode's start frame and its labels
    for seed in seeds:
        sim.reset(seed)
        starts.append((sim.render(), sim.segmentation()))
    segmenter = ColourSegmenter.fit(
        np.stack([f for f, _ in starts]), np.stack([s for _, s in starts])
    )
    displacements = []  # (imagined, true) puck displacements per state, for puck_gain
    rows, t0 = [], time.perf_counter()
    last = max(args.probe_steps)
    for seed in tqdm(seeds, desc="probe", unit="episode"):
        sim.reset(seed)
        task = sim.task
        goal_image = torch.as_tensor(np.array(task.goal_image)).permute(2, 0, 1).float() / 255.0
        goal_puck, _ = mask_centroid(segmenter.masks(goal_image)[1])
        cam = sim.camera_model()
        session.reset()
        session.set_camera(cam.width, cam.height, cam.k.ravel(), cam.d)
        session.set_goal(task.goal_image)
        session.set_goal_joints(sim.joint_names, task.goal_joints)
        policy = scripted_policy(task)
        policy.reset(sim)
        for step in range(last + 1):
            now, q = sim.time, sim.joint_positions()
            session.add_image(sim.render(), now)
            session.set_joints(sim.joint_names, q, now)
            if step in args.probe_steps:
                state = sim.get_state()
                # The controller's next H targets, on the oracle's private simulator.
                ahead, lookahead = copy.deepcopy(policy), oracle.sim
                lookahead.set_state(state)
                future = []
                for _ in range(cfg.planner.horizon):
                    future.append(ahead(lookahead))
                    lookahead.step(future[-1])
                future = torch.as_tensor(np.array(future), dtype=torch.float32)
                base = actions.offsets_of(future[actions.knot_steps - 1], torch.as_tensor(q))
                params = candidates(base, cfg.planner.cem.init_std, args.candidates, g)
                model_cost, recorder = 0.0, RecordingRollout(session.rollout)
                for k in range(args.draws):  # the noise seed is the rollout's (shared by all)
                    session.rollout.seed = cfg.planner.seed + k
                    cost = session.score(now, params, rollout=recorder).cpu().numpy()
                    model_cost = model_cost + cost / args.draws
                if args.task == "push":
                    pred_puck = imagined_puck(session.rollout.model, recorder.last, segmenter)
                    start_puck = puck_pixel(sim)
                oracle.set_state(state)
                oracle_cost = session.score(now, params, rollout=oracle).cpu().numpy()
                arm_cost = session.score(now, params, rollout=arm_only).cpu().numpy()
                arm = {f"arm_only_{k}": v for k, v in compare(arm_cost, oracle_cost).items()}
                q0 = torch.as_tensor(q, dtype=torch.float32)
                targets = actions.to_targets(actions.project(params, q0), q0)
                truth, true_puck = task_outcome(oracle, task, targets)
                row = {"seed": seed, "step": step, **compare(model_cost, oracle_cost), **arm}
                if args.task == "push":
                    row.update(puck_figures(pred_puck, true_puck, start_puck, goal_puck.numpy()))
                    displacements.append((pred_puck - start_puck, true_puck - start_puck))
                row["task_regret"] = regret(model_cost, truth)
                row["arm_only_task_regret"] = regret(arm_cost, truth)
                row["oracle_task_regret"] = regret(oracle_cost, truth)
                if puck_errors:
                    row.update(
                        puck_error_regrets(oracle, task, targets, truth, puck_errors, rng=noise_rng)
                    )
                rows.append({k: v for k, v in row.items() if k != "arm_only_scripted_rank_oracle"})
            sim.step(policy(sim))
    loop.close()
    sim.close()

    def mean(key: str, subset: list[dict]) -> float:
        values = np.array([r[key] for r in subset], dtype=float)
        return float(np.nanmean(values)) if not np.isnan(values).all() else float("nan")

    keys = [k for k in rows[0] if k not in ("seed", "step")]
    by_step = {
        str(step): {k: mean(k, [r for r in rows if r["step"] == step]) for k in keys}
        for step in args.probe_steps
    }
    result = {
        "model": args.model,
        "task": args.task,
        "episodes": args.episodes,
        "seed": args.seed,
        "probe_steps": args.probe_steps,
        "candidates": args.candidates,
        "draws": args.draws,
        "puck_gains": args.puck_gains,
        "puck_noise_mm": args.puck_noise_mm,
        "scales_rad": SCALES_RAD,
        "planner_config": cfg.planner.to_dict(),
        "summary": {
            **{k: mean(k, rows) for k in keys},
            **({"puck_gain": puck_gain(displacements)} if displacements else {}),
        },
        "by_step": by_step,
        "per_state": rows,
        "wall_s": time.perf_counter() - t0,
        "machine": machine_info(),
    }
    print(
        f"{args.model} ({args.task}, noise scale {cfg.planner.sampler_noise_scale}, "
        f"{args.draws} noise draw(s)): {len(rows)} states x {args.candidates} candidates, "
        f"mean +- standard error over states"
    )
    for name, prefix in (("model", ""), ("arm_only", "arm_only_")):
        cells = []
        keys = ("spearman", "spearman_top", "regret", "top10", "scripted_rank_model", "task_regret")
        for k in keys:
            v = np.array([r[prefix + k] for r in rows], dtype=float)
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            cells.append(f"{k.removesuffix('_model')} {v.mean():.3f} +- {se:.3f}")
        print(f"  {name:9s} " + ", ".join(cells))
    summary = result["summary"]
    print(
        f"  oracle    scripted_rank {summary['scripted_rank_oracle']:.3f}, "
        f"task_regret {summary['oracle_task_regret']:.3f}"
    )
    if displacements:
        cells = []
        for k in ("puck_spearman", "puck_err_px", "puck_copy_err_px"):
            v = np.array([r[k] for r in rows], dtype=float)
            v = v[~np.isnan(v)]
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            cells.append(f"{k} {v.mean():.3f} +- {se:.3f}")
        print(
            f"  puck      gain {summary['puck_gain']:.3f}, "
            + ", ".join(cells)
            + f", missing {summary['puck_missing']:.3f}"
        )
    if puck_errors:
        cells = []
        for key in puck_errors:
            v = np.array([r[key] for r in rows])
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            level = key.removeprefix("puck_").replace("_task_regret_", " ")
            cells.append(f"{level} {v.mean():.3f} +- {se:.3f}")
        print(
            f"  simulator, its puck read with an error (1 cm = {summary['px_per_cm']:.2f} px), "
            "task_regret: " + ", ".join(cells)
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
