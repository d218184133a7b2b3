"""`wm-ros eval predict`: the frame metrics, the colour segmenter on simulator frames, the
baselines on real episodes, and the whole path from a saved model to JSON + PNG."""

import dataclasses
import json
import logging

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from wm_ros.centroids import blob_centroid, mask_centroid
from wm_ros.cli import main
from wm_ros.config import ModelConfig
from wm_ros.data import sim_episodes
from wm_ros.eval.metrics import (
    ColourSegmenter,
    bootstrap_ci,
    centroid_error,
    label_masks,
    mask_iou,
    psnr,
    ssim,
)
from wm_ros.eval.predict import (
    METRICS,
    PredictionDataError,
    choose_windows,
    evaluate_prediction,
    prediction_grid,
    window_frames,
)
from wm_ros.model import WorldModel, save_model
from wm_ros.model.autoencoder import to_float_images
from wm_ros.model.conditioning import action_conditioning, model_prompt_renderer

SIZE = 32
TINY = ModelConfig(
    image_size=SIZE, latent_channels=4, ae_width=8, horizon=3, context=2, memory=1,
    widths=(16, 16), emb_dim=32, prompt_features=2,
)  # fmt: skip
L = 2 * TINY.horizon


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def episodes():
    return sim_episodes([0, 1], steps=24, image_size=SIZE)


def tiny_model(cfg: ModelConfig = TINY) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(cfg).eval()


@pytest.fixture(scope="module")
def result(episodes):
    examples = []
    out = evaluate_prediction(tiny_model(), episodes, seed=3, examples=examples, progress=False)
    return out, examples


# ------------------------------------------------------------------------------ metrics


def _ssim_reference(a: np.ndarray, b: np.ndarray, win: int, sigma: float = 1.5) -> np.ndarray:
    """Direct 2D-window SSIM in float64 numpy, (N, C, h, w) -> (N,)."""
    t = np.arange(win) - (win - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    k = np.outer(g, g) / np.outer(g, g).sum()

    def f(z):
        return (sliding_window_view(z, (win, win), axis=(-2, -1)) * k).sum((-2, -1))

    mx, my = f(a), f(b)
    vx, vy, cov = f(a * a) - mx**2, f(b * b) - my**2, f(a * b) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.mean((-3, -2, -1))


def test_ssim_is_one_for_identical_frames_drops_with_noise_and_matches_a_direct_sum():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 3, 24, 24, generator=g)  # (B, T, C, S, S): batched over both
    assert torch.allclose(ssim(x, x), torch.ones(2, 3), atol=1e-5)
    noisy = [ssim(x, (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1)) for s in (0.02, 0.1)]
    assert noisy[0].shape == (2, 3)
    assert bool((noisy[0] < 1).all() and (noisy[1] < noisy[0]).all())
    y = (x[0] + 0.2 * torch.rand(x[0].shape, generator=g)).clamp(0, 1)
    np.testing.assert_allclose(
        ssim(x[0], y, window=7).numpy(),
        _ssim_reference(x[0].double().numpy(), y.double().numpy(), 7),
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="smaller than the SSIM window"):
        ssim(x[..., :8, :8], x[..., :8, :8])


def test_psnr_of_a_known_mse():
    target = torch.full((4, 3, 8, 8), 0.5)
    assert torch.allclose(psnr(target + 0.1, target), torch.full((4,), 20.0), atol=1e-4)  # MSE .01
    assert torch.allclose(psnr(target + 0.01, target), torch.full((4,), 40.0), atol=1e-3)
    assert float(psnr(target, target)[0]) == pytest.approx(100.0)  # MSE floored, not inf


def test_masks_iou_and_centroids():
    a = torch.zeros(3, 10, 10, dtype=torch.bool)
    b = a.clone()
    a[0, 2:4, 2:4] = True
    b[0, 2:4, 3:5] = True  # overlap 2 of union 6
    a[1, 5, 5] = True  # frame 2: both empty
    iou = mask_iou(a, b)
    assert iou[0] == pytest.approx(2 / 6) and iou[1] == 0 and iou[2] == 1
    centre, present = mask_centroid(a)
    assert centre[0].tolist() == [2.5, 2.5] and present.tolist() == [True, True, False]
    assert torch.isnan(centre[2]).all()
    # A stray pixel far away drags the plain centroid but not the densest blob's.
    blob = torch.zeros(1, 20, 20, dtype=torch.bool)
    blob[0, 4:7, 4:7] = True
    blob[0, 18, 18] = True
    assert blob_centroid(blob, radius=2)[0][0].tolist() == [5.0, 5.0]
    assert mask_centroid(blob)[0][0, 0] > 5.5
    err, pred_present, true_present = centroid_error(a, b)
    assert err[0] == pytest.approx(1.0) and torch.isnan(err[1:]).all()
    assert pred_present.tolist() == [True, True, False] and true_present[1].item() is False


def test_colour_segmenter_recovers_simulator_labels(episodes):
    fit, held = episodes
    seg = ColourSegmenter.fit(fit.frames, fit.labels)
    arm, puck = seg.masks(to_float_images(held.frames))
    true_arm, true_puck = label_masks(held.labels)
    assert float(mask_iou(arm, true_arm).mean()) > 0.9
    assert float(mask_iou(puck, true_puck).mean()) > 0.8
    err, _, _ = centroid_error(puck, true_puck)
    assert float(err.nanmean()) < 1.0
    with pytest.raises(ValueError, match="need background"):
        ColourSegmenter.fit(fit.frames, np.zeros_like(fit.labels))


# ------------------------------------------------------------------------------ windows


def test_windows_are_deterministic_and_fit_in_the_episode():
    w = choose_windows([30, 8, 12], span=8, memory=2, per_episode=3, seed=5)
    assert w == choose_windows([30, 8, 12], span=8, memory=2, per_episode=3, seed=5)
    assert w != choose_windows([30, 8, 12], span=8, memory=2, per_episode=3, seed=6)
    assert all(s + 8 <= n for e, s in w for n in [[30, 8, 12][e]])
    assert sum(e == 1 for e, _ in w) == 1  # only start 0 fits
    # Memory is the M frames just before the context; before the start it repeats frame 0.
    assert window_frames(5, context=2, memory=2, length=3).tolist() == [3, 4, 5, 6, 7, 8, 9]
    assert window_frames(1, context=2, memory=3, length=1).tolist() == [0, 0, 0, 1, 2, 3]


# ------------------------------------------------------------------------------ evaluation


def test_evaluation_reports_every_metric_per_step(result):
    out, _ = result
    json.dumps(out, allow_nan=False)  # standard JSON
    assert out["episodes"] == 2 and out["horizon"] == L and out["model_horizon"] == TINY.horizon
    assert out["windows"] == 8 and out["device"] == "cpu"
    methods = [out["metrics"], *(out["baselines"][b] for b in ("copy_last", "autoencoder"))]
    methods.append(out["baselines"]["base_only"])
    for method in methods:
        for key in METRICS:
            assert len(method[key]) == L, key
        assert all(np.isfinite(method["psnr"])) and all(0 < v <= 1 for v in method["arm_iou"])
        assert set(method["summary"]) >= {"psnr_at_H", "arm_iou_mean_1_to_H", "puck_err_px_at_H"}
    assert len(out["puck_moving_windows"]) == L and max(out["puck_moving_windows"]) > 0
    assert out["classifier"]["arm_iou_mean"] > 0.9
    # Each headline figure with its spread over windows, and what it was measured on.
    s, ci = out["metrics"]["summary"], out["metrics"]["summary_ci95"]
    for key in ("psnr_at_H", "arm_iou_mean_1_to_H"):
        assert ci[key][0] <= s[key] <= ci[key][1], key
    assert len(out["data_fingerprint"]) == 16 and out["machine"]["cpu"]


def test_bootstrap_interval_holds_the_mean_and_narrows_with_more_windows():
    rng = np.random.default_rng(0)
    few, many = rng.normal(3.0, 1.0, 20), rng.normal(3.0, 1.0, 2000)
    lo, hi = bootstrap_ci(few)
    assert lo < few.mean() < hi and 0.3 < hi - lo < 1.3  # about 4 standard errors (0.22)
    lo2, hi2 = bootstrap_ci(many)
    assert lo2 < 3.0 < hi2 and hi2 - lo2 < (hi - lo) / 5
    assert bootstrap_ci(few) == bootstrap_ci(few)  # seeded
    with_nan = np.concatenate([few, [np.nan] * 5])
    assert bootstrap_ci(with_nan) == bootstrap_ci(few)  # NaN windows do not count
    assert bootstrap_ci(np.array([1.0, np.nan])) is None  # one value: no interval


def test_copy_last_baseline_degrades_with_the_horizon_on_moving_episodes(result):
    copy = result[0]["baselines"]["copy_last"]
    assert np.isfinite(copy["psnr"][0]) and copy["psnr"][0] > copy["psnr"][-1]
    assert copy["ssim"][0] > copy["ssim"][-1]
    assert copy["arm_iou"][0] > copy["arm_iou"][-1]
    # On moving windows the copied puck sits where the puck was: the error is its displacement.
    moved = [e for e in copy["puck_err_px"] if e is not None]
    assert moved and min(moved) > 0.5
    assert copy["puck_missing"][-1] == 0.0


def test_untrained_model_is_worse_than_copying_and_the_grid_has_a_row_per_kind(result):
    out, examples = result
    assert out["metrics"]["psnr"][0] < out["baselines"]["copy_last"]["psnr"][0]
    assert len(examples) == 2 and examples[0].model.shape == (L, SIZE, SIZE, 3)
    picture = prediction_grid(examples, scale=2)
    assert picture.dtype == np.uint8 and picture.shape[1] > (TINY.context + L) * 2 * SIZE
    assert picture.shape[0] > 3 * 2 * 2 * SIZE  # truth, model and base rows per window


def test_same_seed_same_numbers(episodes):
    runs = [
        evaluate_prediction(
            tiny_model(), episodes[:1], seed=s, windows_per_episode=2, progress=False
        )
        for s in (4, 4, 5)
    ]
    assert runs[0]["metrics"] == runs[1]["metrics"]
    assert runs[0]["metrics"]["psnr"] != runs[2]["metrics"]["psnr"]


def test_prompt_conditioning_follows_joint_names_not_column_order(episodes):
    ep = episodes[0]
    renderer = model_prompt_renderer(TINY)
    actions = ep.actions[None, :4]  # (1, 4, J)
    natural = action_conditioning(actions, TINY, renderer=renderer, joint_names=ep.joint_names)
    shuffled = action_conditioning(
        actions[..., ::-1].copy(), TINY, renderer=renderer, joint_names=ep.joint_names[::-1]
    )
    assert natural.shape == (1, 4, TINY.prompt_channels, SIZE, SIZE)
    assert torch.equal(natural, shuffled) and float(natural.max()) > 0
    joints = action_conditioning(actions, TINY.replace(conditioning="joints"))
    assert torch.equal(joints, torch.as_tensor(actions))


def test_episodes_without_labels_still_get_psnr_and_ssim(episodes):
    bare = [dataclasses.replace(ep, labels=None) for ep in episodes]
    out = evaluate_prediction(tiny_model(), bare, windows_per_episode=1, progress=False)
    assert out["metrics"]["arm_iou"] is None and out["metrics"]["puck_err_px"] is None
    assert len(out["metrics"]["psnr"]) == L and out["classifier"] is None
    assert any("labels" in note for note in out["notes"])


def test_adapter_only_model_has_no_base_only_baseline(episodes):
    model = tiny_model(TINY.replace(use_base=False, conditioning="joints"))
    out = evaluate_prediction(model, episodes[:1], windows_per_episode=1, progress=False)
    assert out["baselines"]["base_only"] is None
    assert len(out["metrics"]["psnr"]) == L


def test_frames_of_another_size_are_refused_by_name(episodes):
    with pytest.raises(PredictionDataError, match=r"32x32 frames; the model takes 16x16"):
        evaluate_prediction(tiny_model(TINY.replace(image_size=16)), episodes, progress=False)


# ------------------------------------------------------------------------------ CLI


def test_cli_writes_json_and_png(tmp_path):
    save_model(tiny_model(), tmp_path / "tiny")
    args = [
        "eval",
        "predict",
        "--model",
        str(tmp_path / "tiny"),
        "--json",
        str(tmp_path / "p.json"),
    ]
    args += ["--png", str(tmp_path / "p.png"), "--episodes", "1", "--seed", "7", "--device", "cpu"]
    assert main(args) == 0
    out = json.loads((tmp_path / "p.json").read_text())
    assert out["model"] == str(tmp_path / "tiny") and out["episodes"] == 1 and out["seed"] == 7
    assert out["data"] == "sim" and len(out["baselines"]["copy_last"]["psnr"]) == L
    with Image.open(tmp_path / "p.png") as png:
        assert png.mode == "RGB" and png.width > L * SIZE


def test_cli_reports_a_missing_model_cleanly(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        code = main(["eval", "predict", "--model", str(tmp_path / "nope"), "--json", "x.json"])
    assert code == 2 and "does not exist" in caplog.text
    assert not (tmp_path / "x.json").exists()
