"""`wm-ros eval plan` end to end with a tiny budget: every planner, the same seeds, the keys
scripts read (DESIGN.md), and bad settings refused with a clear error."""

import json

import numpy as np
import pytest
import torch

from wm_ros.cli import main
from wm_ros.config import (
    PUCK_RADIUS_M,
    CEMConfig,
    ModelConfig,
    PlannerConfig,
    PlanningSessionConfig,
)
from wm_ros.eval.plan import evaluate_planner
from wm_ros.model import WorldModel, save_model
from wm_ros.paths import config_path

TINY = ModelConfig(
    image_size=16, latent_channels=2, ae_width=8, horizon=4, context=2, memory=1,
    widths=(8, 16), emb_dim=16, prompt_features=2,
)  # fmt: skip
CFG = PlanningSessionConfig(
    planner=PlannerConfig(horizon=4, cem=CEMConfig(num_samples=8, num_elites=2, iterations=1))
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_model(WorldModel(TINY), tmp_path_factory.mktemp("m") / "tiny")


@pytest.mark.parametrize("planner", ["learned", "oracle", "random"])
def test_every_planner_reports_the_same_keys(planner, tiny_model):
    # Short episodes keep the budget tiny; the figures are not the point here.
    r = evaluate_planner(
        planner, "reach", 2, 7, model_dir=tiny_model, cfg=CFG, replan_every=2,
        episode_steps=3, progress=False,
    )  # fmt: skip
    assert (r["task"], r["planner"], r["seed"]) == ("reach", planner, 7)
    assert r["episodes"] == 2 and [e["seed"] for e in r["per_episode"]] == [7, 8]
    assert 0.0 <= r["success_rate"] <= 1.0
    assert set(r["final_distance"]) == {"mean", "median"}
    assert set(r["latency_ms"]) == {"p50", "p95", "p99"}
    if planner != "random":
        assert r["latency_ms"]["p50"] > 0
    assert all(e["steps"] <= 3 for e in r["per_episode"])
    for e in r["per_episode"]:  # the closest approach is never further than start and end
        assert e["min_distance"] <= min(e["start_distance"], e["final_distance"]) + 1e-9
        assert 0.0 <= e["final_joint_error_rad"] < 2 * np.pi
    # Each episode's start state and goal, as a fingerprint: other seeds, other starts.
    prints = [e["start_fingerprint"] for e in r["per_episode"]]
    assert all(len(p) == 16 for p in prints) and prints[0] != prints[1]


def test_a_seed_starts_alike_for_every_planner(tiny_model):
    def prints(planner: str) -> list[str]:
        r = evaluate_planner(
            planner, "push", 1, 3, model_dir=tiny_model, cfg=CFG, episode_steps=1, progress=False
        )
        return [e["start_fingerprint"] for e in r["per_episode"]]

    assert prints("learned") == prints("oracle")  # (random renders at its own image size)


def test_a_failed_replan_is_counted_and_the_episode_goes_on(tiny_model, monkeypatch):
    """A PlanError (a best plan outside the limits) skips that replan, as the node does; it
    never ends the evaluation and loses the episodes already run."""
    from wm_ros.planning.planner import PlanError, Planner

    real, calls = Planner.plan, []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise PlanError("best plan violates: position limit")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Planner, "plan", flaky)
    r = evaluate_planner(
        "learned", "reach", 2, 7, model_dir=tiny_model, cfg=CFG, replan_every=2,
        episode_steps=3, progress=False,
    )  # fmt: skip
    assert [e["plan_errors"] for e in r["per_episode"]] == [1, 0]
    assert [e["steps"] for e in r["per_episode"]] == [3, 3]
    assert len(calls) > 2  # it went on planning


def test_cli_writes_json_and_rejects_bad_settings(tiny_model, tmp_path):
    out = tmp_path / "plan.json"
    cmd = ["eval", "plan", "--planner", "random", "--episodes", "1", "--steps", "2"]
    assert main([*cmd, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["planner"] == "random"
    bad = ["eval", "plan", "--model", str(tiny_model), "--samples", "4", "--json", str(out)]
    assert main(bad) == 2  # 32 elites of 4 samples
    small = [*cmd, "--puck-radius", "0.04", "--json", str(out)]
    assert main(small) == 0
    assert json.loads(out.read_text())["puck_radius_m"] == 0.04
    assert main([*cmd, "--puck-radius", "0.5", "--json", str(out)]) == 2  # out of range


def test_cli_reads_the_planner_params_file(tmp_path):
    out = tmp_path / "plan.json"
    cmd = ["eval", "plan", "--planner", "random", "--episodes", "1", "--steps", "1"]
    assert main([*cmd, "--config", str(config_path("planner.yaml")), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["planner_config"]["knots"] == 4
    assert json.loads(out.read_text())["planner_config"]["cost"]["pyramid"] == 1
    # Without --config: planner.yaml, then the task's own file (planner_push.yaml).
    assert main([*cmd, "--task", "push", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["planner_config"]["cost"]["pyramid"] == 3
    assert (result["push_start"], result["push_goal_pose"]) == ("staged", "contact")
    assert result["puck_radius_m"] == PUCK_RADIUS_M


def test_the_oracle_renders_only_the_final_step_when_the_cost_reads_only_that(tiny_model):
    from wm_ros.config import CostConfig, SimConfig
    from wm_ros.eval.plan import make_closed_loop
    from wm_ros.sim import TabletopSim

    sim_cfg = SimConfig(image_width=16, image_height=16)
    final_only = make_closed_loop("oracle", sim_cfg, model_dir=tiny_model, cfg=CFG)
    every = CFG.replace(planner=CFG.planner.replace(cost=CostConfig(goal_all=1.0)))
    every = make_closed_loop("oracle", sim_cfg, model_dir=tiny_model, cfg=every)
    try:
        assert not final_only.oracle.all_steps and every.oracle.all_steps
        with TabletopSim(sim_cfg) as sim:
            state, q0 = sim.get_state(), torch.as_tensor(sim.joint_positions())
        targets = q0 + 0.1 * torch.randn(3, 4, len(q0), generator=torch.Generator().manual_seed(0))
        for loop in (final_only, every):
            loop.oracle.set_state(state)
        last, whole = final_only.oracle(targets), every.oracle(targets)
        assert last.shape[:2] == (3, 1) and whole.shape[:2] == (3, 4)
        torch.testing.assert_close(last[:, 0], whole[:, -1])  # the same physics, the same frame
        # The chosen plan's display rollout shows every step.
        torch.testing.assert_close(final_only.oracle(targets[:1]), whole[:1])
        assert not torch.allclose(whole[:, 0], whole[:, -1])
    finally:
        final_only.close()
        every.close()


def test_the_oracle_draws_the_puck_with_a_models_error_and_repeats_per_seed(tiny_model):
    from wm_ros.config import SimConfig
    from wm_ros.eval.plan import PuckError, make_closed_loop
    from wm_ros.sim import TabletopSim

    with pytest.raises(ValueError, match="puck gain"):
        PuckError(gain=-0.1)
    with pytest.raises(ValueError, match="puck gain"):
        PuckError(noise_m=-0.01)
    sim_cfg = SimConfig(image_width=16, image_height=16)
    loops = {
        err: make_closed_loop("oracle", sim_cfg, model_dir=tiny_model, cfg=CFG, oracle_puck=err)
        for err in (PuckError(), PuckError(noise_m=0.05), PuckError(gain=0.0))
    }
    exact, noisy, frozen = loops.values()
    try:
        with TabletopSim(sim_cfg) as sim:
            sim.reset(0)
            state, q0 = sim.get_state(), torch.as_tensor(sim.joint_positions())
        # Every candidate holds the pose: the same physics, so only the puck noise differs.
        held = q0.expand(4, 4, len(q0)).float().clone()
        for loop in loops.values():
            loop.oracle.reset(4)
            loop.oracle.set_state(state)
        truth, first, second = exact.oracle(held), noisy.oracle(held), noisy.oracle(held)
        assert torch.allclose(truth[0], truth[1])
        assert not torch.allclose(first[0], first[1])  # each candidate its own draw
        assert not torch.allclose(first, second)  # fresh draws at every call
        noisy.oracle.reset(4)
        torch.testing.assert_close(noisy.oracle(held), first)  # the same seed, the same draws
        # A puck that does not move is drawn where it is at any gain.
        torch.testing.assert_close(frozen.oracle(held), truth)
        # A push moves it: at gain 0 it is drawn where it started, not where it went.
        from wm_ros.eval.plan import EpisodeSetup
        from wm_ros.sim.scripted import scripted_policy

        with TabletopSim(EpisodeSetup().sim_config("push").replace(
            image_width=16, image_height=16
        )) as sim:  # fmt: skip
            sim.reset(0)
            state, start, policy = sim.get_state(), sim.puck_position(), scripted_policy(sim.task)
            policy.reset(sim)
            push = []
            for _ in range(4):
                push.append(policy(sim))
                sim.step(push[-1])
            assert np.linalg.norm(sim.puck_position() - start) > 0.005
        push = torch.as_tensor(np.array(push), dtype=torch.float32)[None]
        for loop in loops.values():
            loop.oracle.set_state(state)
        moved = exact.oracle(push)
        assert not torch.allclose(frozen.oracle(push), moved)
        torch.testing.assert_close(exact.oracle(push), moved)  # drawing left the physics alone
    finally:
        for loop in loops.values():
            loop.close()


def test_cli_misplaced_puck_needs_the_oracle(tiny_model, tmp_path):
    out = tmp_path / "plan.json"
    cmd = ["eval", "plan", "--episodes", "1", "--steps", "2", "--json", str(out)]
    assert main([*cmd, "--planner", "random", "--oracle-puck-noise-mm", "10"]) == 2
    oracle = [*cmd, "--planner", "oracle", "--model", str(tiny_model), "--samples", "8"]
    oracle += ["--elites", "2", "--iterations", "1"]
    assert main([*oracle, "--oracle-puck-noise-mm", "10"]) == 0
    assert json.loads(out.read_text())["oracle_puck"] == {"gain": 1.0, "noise_m": 0.01}
    assert main([*oracle, "--oracle-puck-gain", "-1"]) == 2
