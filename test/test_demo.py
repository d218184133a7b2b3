"""The demo path end to end with a tiny budget, and the CLI that starts it."""

import json
import subprocess
import sys

from wm_ros.demo import run_demo


def test_demo_runs_reach_and_push_and_writes_a_report(tmp_path):
    outcome = run_demo(tmp_path, seed=11, episodes=1)
    assert [e.task for e in outcome.episodes] == ["reach", "push"]
    assert outcome.ok, outcome.summary_line()
    for e in outcome.episodes:
        assert e.final_distance_m < e.start_distance_m
    report = json.loads((tmp_path / "demo.json").read_text())
    assert report["success_rate"] == 1.0
    assert (tmp_path / "push_seed11_strip.png").stat().st_size > 1000
    assert (tmp_path / "reach_seed11.gif").stat().st_size > 1000
    assert "SUCCESS" in outcome.summary_line()


def test_cli_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "wm_ros.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0
    for command in ("bringup", "sim", "collect", "bag", "demo"):
        assert command in out.stdout
