"""The demo path end to end with a tiny budget, its report, and the CLI that starts it."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from wm_ros.config import CEMConfig, PlannerConfig, PlanningSessionConfig
from wm_ros.demo import imagined_for_frames, run_demo
from wm_ros.eval.plan import EpisodeTrace, ReplanRecord

TINY_BUDGET = PlanningSessionConfig(
    planner=PlannerConfig(
        knots=4, sampler_steps=1, cem=CEMConfig(num_samples=4, num_elites=2, iterations=1)
    )
)


def test_learned_push_demo_runs_closed_loop_and_writes_its_report(tmp_path):
    outcome = run_demo(tmp_path, seed=11, episodes=1, cfg=TINY_BUDGET, progress=False)
    [e] = outcome.episodes
    assert e.task == "push" and e.seed == 11
    assert e.replans == -(-e.steps // 2)  # one replan every 2 control steps
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["planner"] == "learned"
    assert report["planner_config"]["push"]["planner"]["cem"]["num_samples"] == 4
    assert report["latency_ms"]["p50"] > 0
    assert report["success_rate"] == float(e.success)
    replans = np.asarray(Image.open(tmp_path / "push_seed11_replans.png"))
    assert replans.shape[0] > 2 * 64 * 2  # real and imagined rows of several replans
    gif = Image.open(tmp_path / "push_seed11.gif")
    assert gif.n_frames == e.steps + 1 and gif.width == 3 * gif.height  # real|imagined|goal
    assert ("SUCCESS" if e.success else "FAILED") in outcome.summary_line()
    assert "learned planner" in outcome.summary_line()


def test_scripted_controller_solves_both_tasks_through_the_same_loop(tmp_path):
    outcome = run_demo(
        tmp_path, seed=11, episodes=1, tasks=("reach", "push"), planner="scripted", progress=False
    )
    assert [e.task for e in outcome.episodes] == ["reach", "push"]
    assert outcome.ok, outcome.summary_line()
    assert all(e.final_distance_m < e.start_distance_m for e in outcome.episodes)
    assert (tmp_path / "push_seed11_strip.png").stat().st_size > 1000
    assert not (tmp_path / "push_seed11_replans.png").exists()  # nothing was planned


def test_each_frame_shows_what_the_last_plan_imagined_for_it():
    size = 2
    trace = EpisodeTrace(frames=[np.zeros((size, size, 3), np.uint8)] * 10)
    dream = np.arange(1, 9, dtype=np.uint8)[:, None, None, None] * np.ones((8, size, size, 3))
    trace.replans = [ReplanRecord(0, 0.0, 1.0, dream), ReplanRecord(4, 0.0, 1.0, dream + 100)]
    shown = [int(f[0, 0, 0]) for f in imagined_for_frames(trace, size)]
    assert shown == [128, 1, 2, 3, 4, 101, 102, 103, 104, 105]  # grey before the first plan


def test_cli_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "wm_ros.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0
    for command in ("bringup", "sim", "collect", "bag", "demo", "eval", "train"):
        assert command in out.stdout


def test_demo_with_a_missing_model_fails_with_one_line(tmp_path, capsys):
    from wm_ros.cli import main

    assert main(["demo", "--out", str(tmp_path), "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "wm-ros demo:" in err and "nope" in err and "Traceback" not in err


def test_plans_compare_pooled_scales_on_the_cpu_budget_like_eval_plan():
    from wm_ros.demo import demo_config
    from wm_ros.eval.plan import task_planner_config

    push, reach = demo_config("push"), demo_config("reach")
    assert push.planner.cost.pyramid == 3  # config/planner_push.yaml: a near miss costs less
    assert reach.planner.cost.pyramid == 3  # config/planner_reach.yaml: a wider basin
    assert task_planner_config("reach").planner.cost == reach.planner.cost
    assert push.planner.cem == reach.planner.cem  # the same CPU budget
    assert push.planner.cem.num_samples < task_planner_config("push").planner.cem.num_samples
    assert task_planner_config("push").planner.cost == push.planner.cost
