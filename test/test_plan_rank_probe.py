"""benchmarks/plan_rank_probe.py's puck figures: how far, and how well placed, the model's
imagined puck is against the simulator's."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "plan_rank_probe.py"


@pytest.fixture(scope="module")
def probe():
    spec = importlib.util.spec_from_file_location("plan_rank_probe", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_puck_gain_is_the_share_of_the_true_displacement_imagined(probe):
    rng = np.random.default_rng(0)
    true = rng.normal(0.0, 5.0, size=(64, 2))
    assert probe.puck_gain([(0.3 * true, true)]) == pytest.approx(0.3)
    assert probe.puck_gain([(np.zeros_like(true), true)]) == pytest.approx(0.0)
    hidden = true.copy()
    hidden[:8] = np.nan  # a puck not found leaves its candidate out, not the figure NaN
    pred = np.concatenate([true, hidden[8:]])  # pooled least squares over what was found
    ref = np.concatenate([true, 0.5 * true[8:]])
    expected = (pred * ref).sum() / (ref**2).sum()
    assert probe.puck_gain([(true, true), (hidden, 0.5 * true)]) == pytest.approx(expected)


def test_puck_figures(probe):
    start, goal = np.array([30.0, 30.0]), np.array([45.0, 20.0])
    rng = np.random.default_rng(1)
    true = start + rng.normal(0.0, 6.0, size=(32, 2))
    true[0] = start + 0.5  # moved under 1 px: left out of the errors
    exact = probe.puck_figures(true.copy(), true, start, goal)
    assert exact["puck_err_px"] == 0.0 and exact["puck_spearman"] == pytest.approx(1.0)
    moved = np.linalg.norm(true - start, axis=1)
    assert exact["puck_copy_err_px"] == pytest.approx(moved[moved > 1.0].mean())
    assert exact["puck_missing"] == 0.0
    still = probe.puck_figures(np.repeat(start[None], 32, 0), true, start, goal)
    assert still["puck_err_px"] == pytest.approx(still["puck_copy_err_px"])
    assert np.isnan(still["puck_spearman"])  # every imagined distance the same: no order
    lost = true.copy()
    lost[:8] = np.nan
    assert probe.puck_figures(lost, true, start, goal)["puck_missing"] == pytest.approx(0.25)


class _Oracle:
    """What puck_error_regrets needs of the oracle rollout: its simulator and saved state."""

    def __init__(self, sim) -> None:
        self.sim, self.state = sim, sim.get_state()

    def set_state(self, state) -> None:
        self.state = state


def test_puck_error_regret_is_the_simulator_ranking_with_the_puck_misread(probe):
    import torch

    from wm_ros.eval.plan import EpisodeSetup, PuckError
    from wm_ros.sim import TabletopSim

    cfg = EpisodeSetup().sim_config("push").replace(image_width=32, image_height=32)
    with TabletopSim(cfg) as sim:
        sim.reset(3)
        task, oracle = sim.task, _Oracle(sim)
        start = oracle.state.copy()
        # Candidates that sweep the tip through the workspace: some of them meet the puck.
        q0 = torch.as_tensor(sim.joint_positions(), dtype=torch.float32)
        ends = q0 + torch.as_tensor(np.random.default_rng(0).normal(0, 0.6, (12, len(q0))))
        ramp = torch.linspace(0.125, 1.0, 8)[None, :, None]
        targets = (q0 + ramp * (ends - q0)[:, None]).float()
        truth, _ = probe.task_outcome(oracle, task, targets)
        errors = {
            "exact": PuckError(),
            "noise": PuckError(noise_m=0.5),
            "frozen": PuckError(gain=0.0),
        }
        row = probe.puck_error_regrets(
            oracle, task, targets, truth, errors, rng=np.random.default_rng(0)
        )
        assert np.array_equal(oracle.state, start)  # the saved state is left as it was
        again = probe.puck_error_regrets(
            oracle, task, targets, truth, errors, rng=np.random.default_rng(0)
        )
    assert again == row  # seeded
    assert row["exact"] == 0.0  # read where it is: the simulator's own pick
    # Half a metre off, where each candidate leaves the puck is lost in the noise.
    assert row["noise"] > 0.0
    # Read where it started, every candidate leaves it there: no candidate looks better.
    assert row["frozen"] == pytest.approx(1.0)  # the first, a median one (all tie)
    assert 0.2 < row["px_per_cm"] < 2.0  # 32 px image: about half the 64 px model's figure


def test_puck_errors_need_push_and_sound_levels(probe):
    with pytest.raises(SystemExit):
        probe.main(["--task", "reach", "--puck-noise-mm", "10"])
    with pytest.raises(SystemExit):
        probe.main(["--task", "reach", "--puck-gains", "0.5"])
    with pytest.raises(SystemExit):
        probe.main(["--task", "push", "--puck-noise-mm", "-1"])
