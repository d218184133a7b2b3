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
