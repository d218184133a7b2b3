"""`wm-ros tune`: search planner settings on simulator episodes, success against planning time.

A search space file (config/tune_space.yaml) names planner_node parameters by their dotted
names under `ros__parameters` (`planner.cem.num_samples`, `planner.cost.smoothness`, ...) with
a range each, and the evaluation budget of one trial (episodes, control steps per episode,
control steps per replan). Every trial is the planner config of `--config` with the trial's
values substituted, run closed loop by `wm_ros.eval.plan.evaluate_planner` on the same seeded
episodes (seeds S .. S+E-1), so trials differ only in their settings. Objectives: maximise the
success rate, minimise the median replan latency (ms); Optuna's multi-objective TPE sampler,
seeded, proposes the settings.

The best trial (highest success; among equals the lowest latency) is written as a planner_node
params file in the layout of config/planner.yaml, ready for `--params-file` or
`planning_session_from_yaml`. The base config is also evaluated on the same episodes (unless
`--no-baseline`), so the table shows what tuning bought. A trial whose settings the config
classes reject (e.g. more elites than samples after substitution) is recorded as failed with the
reason.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wm_ros.config import (
    TASK_KINDS,
    PlanningSessionConfig,
    planning_session_from_params,
    read_planner_params,
)

log = logging.getLogger(__name__)

NODE_SECTION = ("planner_node", "ros__parameters")
KINDS = ("int", "float", "categorical")


class TuneSpaceError(ValueError):
    """A search space file that cannot be used; the message names the entry."""


@dataclass(frozen=True)
class ParamRange:
    """One searched parameter.

    Attributes:
        name: dotted planner_node parameter name (`planner.cem.num_samples`).
        kind: "int", "float" or "categorical".
        low, high: inclusive range (int / float).
        log: sample on a log scale (int / float, low > 0).
        step: grid step (int / float; None: continuous or 1 for ints).
        choices: the values of a categorical parameter.
    """

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        where = f"search space entry {self.name!r}"
        if self.kind not in KINDS:
            raise TuneSpaceError(f"{where}: type must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "categorical":
            if not self.choices:
                raise TuneSpaceError(f"{where}: a categorical parameter needs `choices`")
            return
        if self.low is None or self.high is None or not self.low <= self.high:
            raise TuneSpaceError(f"{where}: needs low <= high, got {self.low}, {self.high}")
        if self.log and self.low <= 0:
            raise TuneSpaceError(f"{where}: a log range needs low > 0, got {self.low}")

    def suggest(self, trial) -> Any:
        """The trial's value (an optuna.Trial)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        value = trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.log
        )
        # 4 significant digits: the written YAML holds exactly what was evaluated.
        return float(f"{value:.4g}")


@dataclass(frozen=True)
class TuneBudget:
    """What one trial costs.

    Attributes:
        episodes: simulator episodes per trial (seeds S .. S+episodes-1, the same every trial).
        episode_steps: control steps an episode may take (None: the task's own).
        replan_every: control steps between replans (the arm follows the plan in between).
    """

    episodes: int = 2
    episode_steps: int | None = 30
    replan_every: int = 4

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.replan_every < 1:
            raise TuneSpaceError("budget: episodes and replan_every must be >= 1")
        if self.episode_steps is not None and self.episode_steps < 1:
            raise TuneSpaceError("budget: episode_steps must be >= 1")


@dataclass(frozen=True)
class TuneSpace:
    """A parsed search space file: the ranges and the per-trial budget."""

    params: tuple[ParamRange, ...]
    budget: TuneBudget = field(default_factory=TuneBudget)


def load_space(path: str | Path) -> TuneSpace:
    """Read a search space YAML (see config/tune_space.yaml).

    Raises:
        TuneSpaceError: unreadable file, no parameters, an unknown parameter name (checked
            against PlanningSessionConfig), or a malformed range.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise TuneSpaceError(f"cannot read search space {path}: {err}") from None
    unknown = sorted(set(data) - {"params", "budget"})
    if unknown:
        raise TuneSpaceError(f"{path}: unknown section(s) {unknown}; expected params, budget")
    raw = data.get("params") or {}
    if not isinstance(raw, dict) or not raw:
        raise TuneSpaceError(f"{path}: no parameters to search under `params`")
    known = set(_flat(PlanningSessionConfig().to_dict()))
    params = []
    for name, spec in raw.items():
        if name not in known:
            raise TuneSpaceError(
                f"{path}: {name!r} is not a planner parameter (e.g. planner.cem.num_samples)"
            )
        entry = dict(spec or {})
        extra = sorted(set(entry) - {"type", "low", "high", "log", "step", "choices"})
        if extra:
            raise TuneSpaceError(f"{path}: {name}: unknown key(s) {extra}")
        params.append(
            ParamRange(
                name=name,
                kind=str(entry.get("type", "float")),
                low=entry.get("low"),
                high=entry.get("high"),
                log=bool(entry.get("log", False)),
                step=entry.get("step"),
                choices=tuple(entry.get("choices") or ()),
            )
        )
    try:
        budget = TuneBudget(**(data.get("budget") or {}))
    except TypeError as err:
        raise TuneSpaceError(f"{path}: budget: {err}") from None
    return TuneSpace(tuple(params), budget)


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        tree = tree.setdefault(key, {})
    tree[leaf] = value


def read_params_file(*paths: str | Path) -> dict[str, Any]:
    """Planner params files, layered (a later file wins), as one params-file dict
    {planner_node: {ros__parameters: ...}}, validated.

    Raises:
        ValueError: no planner_node.ros__parameters section, or settings the config rejects.
    """
    data = {NODE_SECTION[0]: {NODE_SECTION[1]: read_planner_params(*paths)}}
    session_config(data)  # validates
    return data


def with_values(params: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a params-file dict with dotted planner_node parameters replaced."""
    out = copy.deepcopy(params)
    block = out[NODE_SECTION[0]][NODE_SECTION[1]]
    for name, value in values.items():
        _set_dotted(block, name, value)
    return out


def session_config(params: dict[str, Any]) -> PlanningSessionConfig:
    """PlanningSessionConfig of a params-file dict (node-only keys dropped), validated."""
    return planning_session_from_params(params[NODE_SECTION[0]][NODE_SECTION[1]])


def write_params_file(params: dict[str, Any], path: str | Path, header: str) -> Path:
    """Write a params-file dict as YAML (config/planner.yaml's layout), `header` as comments."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    path.write_text(comment + yaml.safe_dump(params, sort_keys=False, default_flow_style=False))
    return path


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (success, latency) points no other point beats in both (success higher
    or equal, latency lower or equal, one strictly), sorted by latency."""
    front = []
    for i, (s, t) in enumerate(points):
        dominated = any(
            (s2 >= s and t2 <= t) and (s2 > s or t2 < t)
            for j, (s2, t2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][1], -points[i][0]))


def best_index(points: list[tuple[float, float]]) -> int:
    """Highest success, then lowest latency."""
    return min(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))


Evaluate = Callable[[PlanningSessionConfig], dict]


def tune(
    base: dict[str, Any],
    space: TuneSpace,
    trials: int,
    evaluate: Evaluate,
    *,
    seed: int = 0,
    baseline: bool = True,
) -> dict:
    """Run the search (module doc).

    Args:
        base: the base planner_node params-file dict (read_params_file).
        space: the ranges and budget.
        trials: Optuna trials.
        evaluate: config -> an `evaluate_planner` result (success_rate, latency_ms, ...).
        seed: seeds the sampler (the episodes' seeds are bound into `evaluate`).
        baseline: also evaluate the base config (reported as "baseline").
    Returns:
        JSON-ready dict: "trials" (number, state, values, success, latency p50/p95, error),
        "pareto" (trial numbers), "best" (the best trial's number, values and params-file
        dict), "baseline" (or None).
    """
    import optuna

    if trials < 1:
        raise ValueError(f"--trials must be >= 1, got {trials}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    records: dict[int, dict] = {}

    def objective(trial) -> tuple[float, float]:
        values = {p.name: p.suggest(trial) for p in space.params}
        record = {"number": trial.number, "params": values, "state": "failed"}
        records[trial.number] = record
        try:
            cfg = session_config(with_values(base, values))
            t0 = time.perf_counter()
            result = evaluate(cfg)
            latency = result["latency_ms"]["p50"]
            if latency is None:
                raise ValueError("no replans were timed")
        except ValueError as err:  # the trial fails (optimize catches it); the search goes on
            record["error"] = str(err)
            log.warning("trial %d failed: %s", trial.number, err)
            raise
        record.update(
            state="complete",
            success=result["success_rate"],
            latency_ms=result["latency_ms"],
            final_distance=result["final_distance"],
            per_episode=result["per_episode"],
            wall_s=time.perf_counter() - t0,
        )
        log.info(
            "trial %d: success %.2f, replan p50 %.0f ms  %s",
            trial.number,
            result["success_rate"],
            latency,
            values,
        )
        return result["success_rate"], latency

    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, trials))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=trials, catch=(ValueError,))
    for t in study.trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            rec = records.setdefault(t.number, {"number": t.number, "params": t.params})
            rec["state"] = "failed"
            rec.setdefault("error", str(t.state))
    done = [r for r in records.values() if r["state"] == "complete"]
    if not done:
        raise ValueError("every trial failed; see the log for the reasons")
    points = [(r["success"], r["latency_ms"]["p50"]) for r in done]
    front = [done[i]["number"] for i in pareto_front(points)]
    best = done[best_index(points)]
    result: dict[str, Any] = {
        "trials": [records[n] for n in sorted(records)],
        "pareto": front,
        "best": {
            "number": best["number"],
            "params": best["params"],
            "success": best["success"],
            "latency_ms": best["latency_ms"],
            "params_file": with_values(base, best["params"]),
        },
        "baseline": None,
    }
    if baseline:
        base_result = evaluate(session_config(base))
        result["baseline"] = {
            "success": base_result["success_rate"],
            "latency_ms": base_result["latency_ms"],
            "final_distance": base_result["final_distance"],
            "per_episode": base_result["per_episode"],
            "params": {p.name: _get_dotted(base, p.name) for p in space.params},
        }
    return result


def _get_dotted(params: dict[str, Any], dotted: str) -> Any:
    node: Any = params[NODE_SECTION[0]][NODE_SECTION[1]]
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def trial_table(result: dict, names: list[str]) -> str:
    """A fixed-width text table of the trials (Pareto members marked *, the best B); "dist m"
    is the median final distance to the goal (the task's own measure, m)."""
    short = [n.rsplit(".", 1)[-1][:12] for n in names]
    head = ["trial", "state", "success", "dist m", "p50 ms", "p95 ms", *short]
    rows = []

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        return "-" if v is None else str(v)

    for r in result["trials"]:
        mark = "B" if r["number"] == result["best"]["number"] else ""
        mark += "*" if r["number"] in result["pareto"] else ""
        lat = r.get("latency_ms") or {}
        rows.append(
            [
                f"{r['number']}{mark}",
                r["state"],
                fmt(r.get("success")),
                fmt((r.get("final_distance") or {}).get("median")),
                fmt(lat.get("p50")),
                fmt(lat.get("p95")),
                *(fmt(r["params"].get(n)) for n in names),
            ]
        )
    if result.get("baseline"):
        b = result["baseline"]
        rows.append(
            [
                "base",
                "complete",
                fmt(b["success"]),
                fmt(b["final_distance"]["median"]),
                fmt(b["latency_ms"]["p50"]),
                fmt(b["latency_ms"]["p95"]),
                *(fmt(b["params"].get(n)) for n in names),
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    lines = [
        "  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True))
        for row in [head, *rows]
    ]
    return "\n".join(lines)


def plot_pareto(result: dict, png: str | Path) -> Path:
    """Success against median replan latency (log scale): every trial, the Pareto front, the
    defaults and the best trial; beside it the median final distance to the goal against the
    same latency (what separates trials when none succeeds)."""
    from wm_ros.eval.plots import Panel, Series, plot_panels

    done = [r for r in result["trials"] if r["state"] == "complete"]
    by_number = {r["number"]: r for r in done}
    best = by_number[result["best"]["number"]]
    base = result.get("baseline")
    panels = []
    for title, value in (
        ("success vs planning time", lambda r: r["success"]),
        ("final distance (median, m) vs planning time", lambda r: r["final_distance"]["median"]),
    ):
        series = [
            Series("trials", [(r["latency_ms"]["p50"], value(r)) for r in done], kind="dots"),
            Series(
                "Pareto front (success, latency)",
                [
                    (by_number[n]["latency_ms"]["p50"], value(by_number[n]))
                    for n in result["pareto"]
                ],
                kind="both",
            ),
        ]
        if base:
            series.append(Series("defaults", [(base["latency_ms"]["p50"], value(base))], "dots"))
        series.append(Series("best", [(best["latency_ms"]["p50"], value(best))], kind="dots"))
        panels.append(Panel(title, series, xlabel="replan p50 ms", log_x=True))
    return plot_panels(panels, png, size=(1100, 360))


def _cmd_tune(args: argparse.Namespace) -> int:
    from wm_ros.eval.plan import evaluate_planner
    from wm_ros.model import CheckpointError
    from wm_ros.paths import config_path
    from wm_ros.train import resolve_device

    args.config = args.config or [config_path("planner.yaml")]
    overrides = {
        "episodes": args.episodes,
        "episode_steps": args.steps,
        "replan_every": args.replan_every,
    }
    try:
        space = load_space(args.space)
        base = read_params_file(*args.config)
        # The command line's budget over the space file's (validated: TuneSpaceError).
        budget = dataclasses.replace(
            space.budget, **{k: v for k, v in overrides.items() if v is not None}
        )
    except (OSError, ValueError) as err:
        log.error("wm-ros tune: %s", err)
        return 2
    device = str(resolve_device(args.device))

    def evaluate(cfg: PlanningSessionConfig) -> dict:
        return evaluate_planner(
            "learned",
            args.task,
            budget.episodes,
            args.seed,
            model_dir=args.model,
            cfg=cfg,
            device=device,
            replan_every=budget.replan_every,
            episode_steps=budget.episode_steps,
            progress=False,
        )

    t0 = time.perf_counter()
    try:
        result = tune(
            base, space, args.trials, evaluate, seed=args.seed, baseline=not args.no_baseline
        )
    except (CheckpointError, ValueError) as err:
        log.error("wm-ros tune: %s", err)
        return 2
    names = [p.name for p in space.params]
    result.update(
        task=args.task,
        seed=args.seed,
        episodes=budget.episodes,
        episode_steps=budget.episode_steps,
        replan_every=budget.replan_every,
        config=[str(p) for p in args.config],
        space=str(args.space),
        device=device,
        wall_s=time.perf_counter() - t0,
    )
    out = Path(args.out)
    best = result["best"]
    header = (
        f"Planner settings found by `wm-ros tune` (trial {best['number']} of {args.trials}):\n"
        f"task {args.task}, {budget.episodes} episodes from seed {args.seed}, "
        f"{budget.episode_steps} steps, replan every {budget.replan_every};\n"
        f"success {best['success']:.2f}, replan p50 {best['latency_ms']['p50']:.0f} ms "
        f"on {device}. Base: {' + '.join(str(p) for p in args.config)}. Tuned: {', '.join(names)}."
    )
    write_params_file(best["params_file"], out, header)
    png = Path(args.png) if args.png else out.with_suffix(".png")
    plot_pareto(result, png)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(trial_table(result, names) + "\n")
    base_line = ""
    if result["baseline"]:
        b = result["baseline"]
        base_line = f"; defaults: success {b['success']:.2f}, p50 {b['latency_ms']['p50']:.0f} ms"
    sys.stdout.write(
        f"best trial {best['number']}: success {best['success']:.2f}, replan p50 "
        f"{best['latency_ms']['p50']:.0f} ms{base_line} -> {out} (Pareto plot {png})\n"
    )
    return 0


def add_tune_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros tune` (the handler is set as `func`)."""
    parser.add_argument("--config", type=Path, action="append",
                        help="base planner_node params file, repeatable and layered "
                        "(default: config/planner.yaml)")  # fmt: skip
    parser.add_argument("--space", type=Path, default=Path("config/tune_space.yaml"),
                        help="search space YAML (ranges + per-trial budget)")  # fmt: skip
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--task", choices=TASK_KINDS, default="push")
    parser.add_argument(
        "--seed", type=int, default=0, help="first episode seed (S, S+1, ...); seeds the sampler"
    )
    parser.add_argument("--model", type=Path, help="model directory (default: the config's)")
    parser.add_argument("--episodes", type=int, help="override the space's budget.episodes")
    parser.add_argument("--steps", type=int, help="override budget.episode_steps")
    parser.add_argument("--replan-every", type=int, help="override budget.replan_every")
    parser.add_argument("--out", default="tuned_planner.yaml", help="write the best settings here")
    parser.add_argument("--png", help="Pareto plot (default: --out with .png)")
    parser.add_argument("--json", type=Path, help="write every trial's figures here")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip evaluating the base config on the same episodes")  # fmt: skip
    parser.add_argument("--device", default="auto")
    parser.set_defaults(func=_cmd_tune)
