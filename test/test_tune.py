"""`wm-ros tune`: the search space file, the Pareto front and best-trial choice, and a tiny
tuning run whose YAML the planner node accepts as its params file."""

import json

import pytest
import rclpy
import yaml
from rclpy.context import Context

from wm_ros.cli import main
from wm_ros.config import planning_session_from_yaml
from wm_ros.tune import (
    ParamRange,
    TuneBudget,
    TuneSpace,
    TuneSpaceError,
    best_index,
    load_space,
    pareto_front,
    read_params_file,
    tune,
)

REPO_PLANNER = "config/planner.yaml"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_pareto_front_and_best_trial():
    points = [(0.5, 100.0), (0.5, 80.0), (1.0, 300.0), (0.0, 10.0), (0.0, 50.0), (1.0, 250.0)]
    assert pareto_front(points) == [3, 1, 5]  # by latency; (0.5, 100) and (1, 300) dominated
    assert best_index(points) == 5  # highest success, then the fastest


def test_the_shipped_space_loads_and_bad_spaces_are_named(tmp_path):
    space = load_space("config/tune_space.yaml")
    names = [p.name for p in space.params]
    assert "planner.cem.num_samples" in names and space.budget.episodes >= 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  planner.cem.samples: {type: int, low: 1, high: 4}\n")
    with pytest.raises(TuneSpaceError, match=r"'planner\.cem\.samples' is not a planner parameter"):
        load_space(bad)
    bad.write_text("params:\n  planner.cost.limit: {type: float, low: 0, high: 1, log: true}\n")
    with pytest.raises(TuneSpaceError, match="log range needs low > 0"):
        load_space(bad)


def test_trials_the_config_rejects_fail_without_ending_the_search():
    base = read_params_file(REPO_PLANNER)
    space = TuneSpace(
        (
            ParamRange("planner.cem.num_samples", "categorical", choices=(4,)),
            ParamRange("planner.cem.num_elites", "categorical", choices=(2, 8)),  # 8 > 4 fails
        ),
        TuneBudget(episodes=1),
    )
    seen = []

    def evaluate(cfg):
        seen.append(cfg.planner.cem.num_elites)
        return {
            "success_rate": 0.5,
            "latency_ms": {"p50": 10.0 * cfg.planner.cem.num_elites, "p95": 1.0, "p99": 1.0},
            "final_distance": {"mean": 0.1, "median": 0.1},
            "per_episode": [],
        }

    result = tune(base, space, 6, evaluate, seed=0, baseline=False)
    states = {r["params"]["planner.cem.num_elites"]: r["state"] for r in result["trials"]}
    assert states == {2: "complete", 8: "failed"} and set(seen) == {2}
    failed = next(r for r in result["trials"] if r["state"] == "failed")
    assert "num_elites <= num_samples" in failed["error"]
    assert result["best"]["params"]["planner.cem.num_elites"] == 2


def test_a_tiny_tuning_run_writes_a_yaml_the_planner_node_accepts(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(
        "budget: {episodes: 1, episode_steps: 2, replan_every: 2}\n"
        "params:\n"
        "  planner.cem.num_samples: {type: int, low: 4, high: 8}\n"
        "  planner.cem.num_elites: {type: int, low: 2, high: 4}\n"
        "  planner.cem.iterations: {type: int, low: 1, high: 1}\n"
        "  planner.cost.smoothness: {type: float, low: 0.001, high: 0.1, log: true}\n"
    )
    out = tmp_path / "tuned.yaml"
    code = main(["tune", "--space", str(space), "--trials", "2", "--task", "reach",
                 "--out", str(out), "--json", str(tmp_path / "t.json"), "--device", "cpu",
                 "--no-baseline"])  # fmt: skip
    assert code == 0
    result = json.loads((tmp_path / "t.json").read_text())
    assert len(result["trials"]) == 2 and result["pareto"] and (tmp_path / "tuned.png").is_file()
    best = result["best"]["params"]
    cfg = planning_session_from_yaml(out)  # what `eval plan --config` and the node read
    assert cfg.planner.cem.num_samples == best["planner.cem.num_samples"]
    assert cfg.planner.cost.smoothness == best["planner.cost.smoothness"]
    assert yaml.safe_load(out.read_text())["planner_node"]["ros__parameters"]["autostart"]

    from wm_ros.ros.planner_node import PlannerNode

    context = Context()
    rclpy.init(context=context, args=["x", "--ros-args", "--params-file", str(out),
                                      "-p", "device:=cpu"])  # fmt: skip
    try:
        node = PlannerNode(context=context)
        try:
            assert node.session is not None, "the node did not configure from the tuned YAML"
            assert node.cfg.planner.cem.num_elites == best["planner.cem.num_elites"]
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
