"""`wm-ros eval predict`: open-loop prediction metrics of a world model on held-out episodes.

A window of an episode starting at frame s has M memory frames (the M frames just before the
context, as `WorldModel.rollout` moves frames into memory; slots before the episode start repeat
its first frame, as in wm_ros.data.windows), K context frames s .. s+K-1 and L = 2H (by default)
future frames. The model rolls out L latents from the encoded context and memory, conditioned on
the commanded targets of the future steps (actions[i - 1] for future frame i), and decodes them.
Every predicted frame is compared with the recorded one, beside three baselines:

- copy_last: the last context frame repeated (what "nothing moves" scores);
- base_only: the action-free base (use_adapter=False) with the same noise: what the action
  conditioning adds (null for an adapter-only model, which has no base);
- autoencoder: decode(encode(truth)), the ceiling the latent space allows.

Per future step 1..L, averaged over windows: PSNR (dB), SSIM, arm-mask IoU and puck-centroid
error (pixels). Masks of RGB frames come from a colour classifier fit on real (frame, label)
pairs (wm_ros.eval.metrics.ColourSegmenter); its own scores on the true frames are reported as
"classifier", the ceiling of the mask metrics. The puck error at step i is averaged over the
windows where the puck moves: both the last context frame and frame i show the puck and its
true centroid is more than PUCK_MOVING_PX away from where it was in the last context frame (a
still puck is predicted perfectly by copying, so averaging over it would flatter every method).
The predicted centroid is that of the densest puck-sized blob of puck-coloured pixels (stray
pixels of a blurred arm edge can share the puck's colour). A moving window whose predicted frame
has no puck pixels at all counts as missing: excluded from the error mean and reported as the
fraction `puck_missing`.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wm_ros.data import Episode, episodes_fingerprint
from wm_ros.eval.images import grid, labelled_tile, save_png
from wm_ros.eval.metrics import (
    ColourSegmenter,
    bootstrap_ci,
    centroid_error,
    label_masks,
    mask_iou,
    nan_mean,
    psnr,
    ssim,
)
from wm_ros.eval.timing import machine_info
from wm_ros.model import WorldModel
from wm_ros.model.autoencoder import to_float_images, to_uint8_images
from wm_ros.model.conditioning import action_conditioning, model_prompt_renderer

log = logging.getLogger(__name__)

PUCK_MOVING_PX = 1.0  # true centroid displacement that makes a window count for puck error, px
# Half-size of the square the predicted puck centroid is measured in, as a fraction of the
# image side: about the simulator puck's radius (3 px at 64 px).
PUCK_BLOB_FRACTION = 3 / 64
BASELINES = ("copy_last", "base_only", "autoencoder")
METRICS = ("psnr", "ssim", "arm_iou", "puck_err_px", "puck_missing")  # per step 1..L
SUMMARY = (  # single figures: at step H (one model chunk), at step L, or over steps 1..H
    "psnr_at_H",
    "ssim_at_H",
    "psnr_at_end",
    "arm_iou_mean_1_to_H",
    "puck_err_px_at_H",
    "puck_err_px_mean_1_to_H",
    "puck_missing_1_to_H",
)
DEFAULT_HELDOUT_SEED = 900000  # sim seeds of held-out episodes (training collects from 0 up)


class PredictionDataError(ValueError):
    """Episodes that cannot be evaluated with this model; the message says why."""


@dataclass
class PredictionExample:
    """One window's frames for a picture, (T, S, S, 3) uint8 each."""

    episode_seed: int | None
    start: int
    context: np.ndarray  # (K, S, S, 3)
    truth: np.ndarray  # (L, S, S, 3)
    model: np.ndarray  # (L, S, S, 3)
    base_only: np.ndarray | None  # (L, S, S, 3)
    psnr: np.ndarray  # (L,) the model's PSNR per step, dB


def choose_windows(
    lengths: Sequence[int], span: int, memory: int, per_episode: int, seed: int
) -> list[tuple[int, int]]:
    """(episode, start) pairs: up to `per_episode` distinct starts per episode, sorted.

    Starts are drawn from np.random.default_rng([seed, episode]) among those whose `span`
    frames fit in the episode, preferring starts >= `memory` (so memory holds real frames).
    """
    out = []
    for e, n in enumerate(lengths):
        last = n - span  # the largest start
        if last < 0:
            continue
        starts = np.arange(min(memory, last), last + 1)
        rng = np.random.default_rng([seed, e])
        picks = np.sort(rng.choice(starts, size=min(per_episode, len(starts)), replace=False))
        out += [(e, int(s)) for s in picks]
    return out


def strided_windows(
    lengths: Sequence[int], span: int, memory: int, stride: int
) -> list[tuple[int, int]]:
    """(episode, start) pairs every `stride` frames of each episode (a long recording scored
    end to end), starting at min(memory, last start) so memory holds real frames."""
    if stride < 1:
        raise ValueError(f"window stride must be >= 1, got {stride}")
    out = []
    for e, n in enumerate(lengths):
        last = n - span
        if last >= 0:
            out += [(e, int(s)) for s in range(min(memory, last), last + 1, stride)]
    return out


def window_frames(start: int, context: int, memory: int, length: int) -> np.ndarray:
    """(M + K + L,) frame indices of a window: memory, context, future (module doc)."""
    mem = np.clip(np.arange(start - memory, start), 0, None)
    return np.concatenate([mem, np.arange(start, start + context + length)])


def _check_episodes(model: WorldModel, episodes: Sequence[Episode], span: int) -> None:
    cfg = model.cfg
    if not episodes:
        raise PredictionDataError("no episodes to evaluate")
    for i, ep in enumerate(episodes):
        if ep.image_size != cfg.image_size:
            raise PredictionDataError(
                f"episode {i} (seed {ep.seed}) has {ep.image_size}x{ep.image_size} frames; "
                f"the model takes {cfg.image_size}x{cfg.image_size}"
            )
        if cfg.conditioning == "joints" and ep.actions.shape[1] != cfg.num_joints:
            raise PredictionDataError(
                f"episode {i} has {ep.actions.shape[1]} joints; the model takes {cfg.num_joints}"
            )
        if ep.joint_names != episodes[0].joint_names:
            raise PredictionDataError(
                f"episode {i} names its joints {ep.joint_names}, episode 0 "
                f"{episodes[0].joint_names}: evaluate episodes of one robot together"
            )
    if max(len(ep) for ep in episodes) < span:
        raise PredictionDataError(
            f"every episode is shorter than context + predicted steps = {span} frames "
            f"(longest: {max(len(ep) for ep in episodes)})"
        )


def _gather(
    episodes: Sequence[Episode], batch: list[tuple[int, int]], idx: list[np.ndarray], attr: str
) -> np.ndarray:
    """Stack `attr` rows of each window's episode at its frame indices: (B, len(idx[0]), ...)."""
    rows = [getattr(episodes[e], attr)[i] for (e, _), i in zip(batch, idx, strict=True)]
    return np.stack(rows)


def _scores(
    pred: torch.Tensor,
    truth: torch.Tensor,
    true_masks: tuple[torch.Tensor, torch.Tensor] | None,
    segmenter: ColourSegmenter | None,
) -> dict[str, torch.Tensor]:
    """Per-frame scores (B, L) of predictions vs truth, both (B, L, 3, S, S)."""
    out = {}
    if pred is not truth:  # the classifier's ceiling needs the mask scores only
        out = {"psnr": psnr(pred, truth), "ssim": ssim(pred, truth)}
    if segmenter is not None and true_masks is not None:
        arm, puck = segmenter.masks(pred)  # (B, L, S, S) each
        out["arm_iou"] = mask_iou(arm, true_masks[0])
        radius = max(1, round(PUCK_BLOB_FRACTION * pred.shape[-1]))
        out["puck_err_px"], out["puck_present"], _ = centroid_error(puck, true_masks[1], radius)
    return out


def _summarise(
    scores: dict[str, torch.Tensor], moving: torch.Tensor | None, horizon: int
) -> dict[str, object]:
    """Per-step means over windows (lists of length L) and a few summary figures.

    scores: per-frame (W, L) tensors from `_scores`; moving (W, L) bool: the windows and steps
    where the puck moves (module doc), None without labels.
    """
    out: dict[str, object] = {k: None for k in METRICS}
    summary: dict[str, float | None] = dict.fromkeys(SUMMARY)
    # 95% bootstrap intervals over windows: how far a figure could move on another held-out set.
    ci: dict[str, list[float] | None] = {}
    if "psnr" in scores:
        out["psnr"], out["ssim"] = nan_mean(scores["psnr"]), nan_mean(scores["ssim"])
        summary["psnr_at_H"] = out["psnr"][horizon - 1]
        summary["ssim_at_H"] = out["ssim"][horizon - 1]
        summary["psnr_at_end"] = out["psnr"][-1]
        ci["psnr_at_H"] = bootstrap_ci(scores["psnr"][:, horizon - 1])
    if "arm_iou" in scores and moving is not None:
        out["arm_iou"] = nan_mean(scores["arm_iou"])
        present = scores["puck_present"]
        counted = moving & present  # moving, and the prediction shows a puck
        err = scores["puck_err_px"].masked_fill(~counted, np.nan)
        out["puck_err_px"] = nan_mean(err)
        missing = torch.where(moving, (~present).float(), torch.full_like(err, np.nan))
        out["puck_missing"] = nan_mean(missing)
        summary["arm_iou_mean_1_to_H"] = nan_mean(scores["arm_iou"][:, :horizon].flatten())[0]
        summary["puck_err_px_at_H"] = out["puck_err_px"][horizon - 1]
        summary["puck_err_px_mean_1_to_H"] = nan_mean(err[:, :horizon].flatten())[0]
        summary["puck_missing_1_to_H"] = nan_mean(missing[:, :horizon].flatten())[0]
        ci["arm_iou_mean_1_to_H"] = bootstrap_ci(scores["arm_iou"][:, :horizon].mean(dim=1))
        ci["puck_err_px_at_H"] = bootstrap_ci(err[:, horizon - 1])
    out["summary"] = summary
    out["summary_ci95"] = ci
    return out


@torch.no_grad()
def evaluate_prediction(
    model: WorldModel,
    episodes: Sequence[Episode],
    *,
    steps: int = 2,
    noise_scale: float = 1.0,
    seed: int = 0,
    windows_per_episode: int = 4,
    horizon_multiple: int = 2,
    batch_size: int = 16,
    renderer=None,
    segmenter: ColourSegmenter | None = None,
    name: str = "model",
    examples: list[PredictionExample] | None = None,
    max_examples: int = 4,
    progress: bool = True,
    stride: int | None = None,
    worst_examples: bool = False,
    per_window: bool = False,
    baselines: Sequence[str] = BASELINES,
) -> dict:
    """Open-loop prediction metrics of `model` on `episodes` (module doc).

    Args:
        model: the world model (evaluated where its parameters are, in no-grad mode).
        episodes: held-out episodes at the model's image size; labels give the mask metrics.
        steps: flow sampler steps per chunk.
        noise_scale: factor on the sampler's noise (flow.sample; 0: deterministic predictions).
        seed: seeds the window choice and the sampling noise (model and base_only share it).
        windows_per_episode: windows drawn per episode (fewer when the episode is short).
        horizon_multiple: predicted steps L = horizon_multiple * H (model chunks of H).
        batch_size: windows per model call.
        renderer: a PromptRenderer for prompt conditioning (default: the simulator's).
        segmenter: the colour classifier (default: fit on the episodes' frames and labels).
        name: what to call the model in the result.
        examples: when a list, the first window of each of the first `max_examples` episodes
            is appended to it as a PredictionExample (for `prediction_grid`).
        progress: show a tqdm bar over windows.
        stride: when set, windows start every `stride` frames of each episode (all of a long
            recording) instead of `windows_per_episode` random starts.
        worst_examples: `examples` gets the `max_examples` windows with the lowest mean model
            PSNR over steps 1..L (worst first) instead of one per episode.
        per_window: add "per_window": the model's mean PSNR and SSIM over steps 1..L of every
            window, with its episode and start.
        baselines: the baselines computed (of BASELINES; copy_last is always there, it is
            free); the others are null. base_only and autoencoder decode a second and a third
            set of frames: leaving them out roughly halves the time per window.
    Returns:
        JSON-ready dict: "model", "episodes", "horizon" (= L, the length of every per-step
        list), "model_horizon" (H), "windows", "steps", "seed", "device", "wall_s",
        "metrics" (psnr, ssim, arm_iou, puck_err_px, puck_missing: lists over steps 1..L, and
        "summary"), "baselines" {"copy_last", "base_only" (or None), "autoencoder"} with the
        same keys, "classifier" (the mask metrics of the true frames), "puck_moving_windows"
        (per step) and "notes". Mask metrics are None without labels; a per-step value is
        None where no window qualifies.
    Raises:
        PredictionDataError: no episodes, frames of another size than the model's, episodes
            too short for K + L frames, mismatched joints.
    """
    t0 = time.perf_counter()
    cfg = model.cfg
    device = next(model.parameters()).device
    k, m, h = cfg.context, cfg.memory, cfg.horizon
    if horizon_multiple < 1 or steps < 1 or windows_per_episode < 1 or batch_size < 1:
        raise ValueError("horizon_multiple, steps, windows_per_episode, batch_size must be >= 1")
    length = horizon_multiple * h
    _check_episodes(model, episodes, k + length)
    lengths = [len(ep) for ep in episodes]
    if stride is None:
        windows = choose_windows(lengths, k + length, m, windows_per_episode, seed)
    else:
        windows = strided_windows(lengths, k + length, m, stride)
    notes: list[str] = []
    skipped = sum(1 for ep in episodes if len(ep) < k + length)
    if skipped:
        notes.append(f"{skipped} episode(s) shorter than {k + length} frames were skipped")

    labelled = all(ep.labels is not None for ep in episodes)
    if not labelled:
        segmenter = None
        notes.append("episodes without segmentation labels: arm_iou and puck metrics are null")
    elif segmenter is None:
        # Colours only: the classifier never sees a prediction, so fitting it on the held-out
        # truth gives no method an edge; its ceiling is reported beside the results.
        segmenter = ColourSegmenter.fit(
            np.concatenate([ep.frames for ep in episodes]),
            np.concatenate([ep.labels for ep in episodes]),
            seed=seed,
            device=device,
        )
    if cfg.conditioning == "prompt" and renderer is None:
        renderer = model_prompt_renderer(cfg, device)
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose from {list(BASELINES)}")
    has_base_only = model.base is not None and model.adapter is not None
    has_base_only &= "base_only" in baselines
    if model.base is None:
        notes.append("adapter-only model: no base_only baseline")
    elif model.adapter is None:
        notes.append("action-free model: base_only is the model itself")

    gen_model = torch.Generator(device).manual_seed(seed)
    gen_base = torch.Generator(device).manual_seed(seed)  # same noise: a paired comparison
    methods = ("model", "copy_last", "base_only", "autoencoder", "classifier")
    per_frame: dict[str, dict[str, list[torch.Tensor]]] = {meth: {} for meth in methods}
    moving_all: list[torch.Tensor] = []
    example_eps: set[int] = set()
    bar = tqdm(total=len(windows), desc="eval predict", unit="window", disable=not progress)
    for b0 in range(0, len(windows), batch_size):
        batch = windows[b0 : b0 + batch_size]
        idx = [window_frames(s, k, m, length) for _, s in batch]
        frames = _gather(episodes, batch, idx, "frames")  # (B, M + K + L, S, S, 3) uint8
        x = to_float_images(frames, device)  # (B, M + K + L, 3, S, S)
        truth = x[:, m + k :]  # (B, L, 3, S, S)
        z = model.encode(x[:, : m + k])  # (B, M + K, c, h, w)
        z_mem, z_ctx = z[:, :m], z[:, m:]
        # Future frame i follows the target commanded at frame i - 1.
        fut = _gather(episodes, batch, [i[m + k :] - 1 for i in idx], "actions")  # (B, L, J)
        cond = None
        if cfg.has_adapter:
            cond = action_conditioning(
                fut, cfg, renderer=renderer, joint_names=episodes[0].joint_names, device=device
            )  # (B, L, C, S, S) prompts or (B, L, J) joints
        preds = {
            "model": model.decode(
                model.rollout(
                    z_ctx,
                    z_mem,
                    cond,
                    length=length,
                    steps=steps,
                    generator=gen_model,
                    noise_scale=noise_scale,
                )
            ),
            "copy_last": x[:, m + k - 1 : m + k].expand_as(truth),
            "classifier": truth,  # scored on its masks only
        }
        if "autoencoder" in baselines:
            preds["autoencoder"] = model.decode(model.encode(truth))
        if has_base_only:
            z_base = model.rollout(
                z_ctx, z_mem, None, length=length, steps=steps, generator=gen_base,
                use_adapter=False, noise_scale=noise_scale,
            )  # fmt: skip
            preds["base_only"] = model.decode(z_base)
        true_masks = None
        if segmenter is not None:
            labels = _gather(episodes, batch, idx, "labels")  # (B, M + K + L, S, S)
            arm_t, puck_t = label_masks(labels[:, m + k - 1 :], device)  # (B, 1 + L, S, S)
            true_masks = (arm_t[:, 1:], puck_t[:, 1:])
            shift, ok, last_ok = centroid_error(
                puck_t[:, 1:], puck_t[:, :1].expand_as(puck_t[:, 1:])
            )
            moving_all.append((ok & last_ok & (shift > PUCK_MOVING_PX)).cpu())
        for meth, pred in preds.items():
            for key, val in _scores(pred, truth, true_masks, segmenter).items():
                per_frame[meth].setdefault(key, []).append(val.cpu())
        if examples is not None:
            for j, (e, s) in enumerate(batch):
                if not worst_examples:  # the first window of each of the first episodes
                    if e in example_eps or len(example_eps) >= max_examples:
                        continue
                    example_eps.add(e)
                examples.append(
                    PredictionExample(
                        episode_seed=episodes[e].seed,
                        start=s,
                        context=frames[j, m : m + k],
                        truth=frames[j, m + k :],
                        model=to_uint8_images(preds["model"][j]),
                        base_only=to_uint8_images(preds["base_only"][j]) if has_base_only else None,
                        psnr=per_frame["model"]["psnr"][-1][j].numpy(),
                    )
                )
            if worst_examples:  # keep only the worst few (lowest mean PSNR first): bounded
                examples.sort(key=lambda ex: float(np.mean(ex.psnr)))
                del examples[max_examples:]
        bar.update(len(batch))
    bar.close()

    moving = torch.cat(moving_all) if moving_all else None  # (W, L)
    scores = {meth: {key: torch.cat(v) for key, v in d.items()} for meth, d in per_frame.items()}
    results = {meth: _summarise(s, moving, h) for meth, s in scores.items() if s}
    classifier = None
    if segmenter is not None:
        c = results.pop("classifier")
        classifier = {
            "prototypes": len(segmenter.labels),  # colours over all labels
            "arm_iou": c["arm_iou"],
            "puck_err_px": c["puck_err_px"],
            "puck_missing": c["puck_missing"],
            "arm_iou_mean": nan_mean(scores["classifier"]["arm_iou"].flatten())[0],
        }
    else:
        results.pop("classifier", None)
    if model.base is not None and model.adapter is None:
        results["base_only"] = results["model"]  # action-free: the model is its base
    wall = time.perf_counter() - t0
    return {
        "model": name,
        "episodes": len(episodes),
        "horizon": length,
        "model_horizon": h,
        "context": k,
        "memory": m,
        "conditioning": cfg.conditioning,
        "windows": len(windows),
        "windows_per_episode": windows_per_episode,
        "steps": steps,
        "noise_scale": noise_scale,
        "seed": seed,
        "device": str(device),
        "data_fingerprint": episodes_fingerprint(episodes),
        "machine": machine_info(),
        "wall_s": wall,
        "windows_per_s": len(windows) / wall if wall > 0 else None,
        "metrics": results["model"],
        "baselines": {
            "copy_last": results["copy_last"],
            "base_only": results.get("base_only"),
            "autoencoder": results.get("autoencoder"),
        },
        "classifier": classifier,
        "puck_moving_threshold_px": PUCK_MOVING_PX,
        "puck_moving_windows": None if moving is None else moving.sum(0).tolist(),
        "notes": notes,
        **({"per_window": _per_window(windows, scores["model"])} if per_window else {}),
    }


def _per_window(windows: list[tuple[int, int]], scores: dict[str, torch.Tensor]) -> list[dict]:
    """The model's mean PSNR / SSIM over steps 1..L per window (same order as `windows`)."""
    psnr_w, ssim_w = scores["psnr"].mean(dim=1).tolist(), scores["ssim"].mean(dim=1).tolist()
    return [
        {"episode": e, "start": s, "psnr": p, "ssim": q}
        for (e, s), p, q in zip(windows, psnr_w, ssim_w, strict=True)
    ]


def prediction_grid(examples: Sequence[PredictionExample], scale: int = 2) -> np.ndarray:
    """A picture of predictions: per window a truth row (context frames, then the recorded
    future), a model row (each frame captioned with its step and PSNR) and, when there is one,
    a base-only row, all aligned by future step; (H, W, 3) uint8."""
    if not examples:
        raise ValueError("no examples to draw")
    rows = []
    for ex in examples:
        k = len(ex.context)
        blank = np.full_like(ex.context[0], 255)
        head = f"ep {ex.episode_seed} @{ex.start}"
        truth = [labelled_tile(f, f"ctx {i - k + 1}", scale) for i, f in enumerate(ex.context)]
        truth += [labelled_tile(f, f"true +{i + 1}", scale) for i, f in enumerate(ex.truth)]
        pad = [labelled_tile(blank, (head, "model")[min(i, 1)], scale) for i in range(k)]
        model = [
            labelled_tile(f, f"+{i + 1} {p:.1f}dB", scale)
            for i, (f, p) in enumerate(zip(ex.model, ex.psnr, strict=True))
        ]
        rows += [truth, pad + model]
        if ex.base_only is not None:
            base = [labelled_tile(f, f"+{i + 1} base", scale) for i, f in enumerate(ex.base_only)]
            rows.append(
                [labelled_tile(blank, "base only" if i == 0 else "", scale) for i in range(k)]
                + base
            )
    return grid(rows)


def _summary_line(result: dict) -> str:
    def fmt(method: dict | None, key: str, unit: str = "") -> str:
        v = None if method is None else method["summary"].get(key)
        return "n/a" if v is None else f"{v:.3g}{unit}"

    m, b = result["metrics"], result["baselines"]
    parts = [
        f"{result['model']}: {result['windows']} windows of {result['episodes']} episodes, "
        f"H={result['model_horizon']}",
    ]
    for label, key, unit in (
        ("PSNR@H", "psnr_at_H", " dB"),
        ("arm IoU 1..H", "arm_iou_mean_1_to_H", ""),
        ("puck err@H", "puck_err_px_at_H", " px"),
    ):
        parts.append(
            f"{label} model {fmt(m, key, unit)} / copy-last {fmt(b['copy_last'], key, unit)} / "
            f"base-only {fmt(b['base_only'], key, unit)}"
        )
    return "; ".join(parts)


def _cmd_predict(args: argparse.Namespace) -> int:
    from wm_ros.data import sim_episodes
    from wm_ros.model import CheckpointError, load_model
    from wm_ros.planning.prior import has_prior, load_prior
    from wm_ros.train import resolve_device

    errors: tuple[type[Exception], ...] = (CheckpointError, PredictionDataError)
    try:
        model = load_model(args.model, resolve_device(args.device))
        if args.data is not None:
            from wm_ros.ros.episodes import EpisodeBagError, load_episodes

            errors += (EpisodeBagError,)
            episodes = load_episodes(args.data)[: args.episodes]
        else:
            n = args.episodes if args.episodes is not None else 8
            episodes = sim_episodes(
                range(args.seed, args.seed + n), steps=60, image_size=model.cfg.image_size
            )
        examples: list[PredictionExample] = []
        result = evaluate_prediction(
            model,
            episodes,
            steps=args.steps,
            noise_scale=args.noise_scale,
            seed=args.seed,
            windows_per_episode=args.windows_per_episode,
            name=str(args.model),
            examples=examples if args.png else None,
            max_examples=args.png_windows,
        )
        if has_prior(args.model):
            from wm_ros.eval.prior import evaluate_prior

            prior = load_prior(args.model, model.autoencoder.latent_mean.device)
            result["prior"] = evaluate_prior(
                prior, model, episodes, seed=args.seed, windows_per_episode=args.windows_per_episode
            )
    except errors as err:
        log.error("wm-ros eval predict: %s", err)
        return 2
    result["data"] = str(args.data) if args.data is not None else "sim"
    from wm_ros.model.checkpoint import read_config

    result["training"] = read_config(args.model)[1].get("training")  # what was evaluated
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
    if args.png:
        save_png(prediction_grid(examples), args.png)
    log.info("%s -> %s", _summary_line(result), args.json)
    return 0


def add_sampler_arguments(parser: argparse.ArgumentParser) -> None:
    """--steps and --noise-scale of the commands that roll the model out."""
    parser.add_argument("--steps", type=int, default=2, help="flow sampler steps per chunk")
    parser.add_argument(
        "--noise-scale",
        type=float,
        default=1.0,
        help="factor on the sampler's noise: 1 samples, 0 predicts deterministically",
    )


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros eval predict` (the handler is set as `func`)."""
    parser.add_argument("--model", required=True, help="model directory (config.json + weights)")
    parser.add_argument(
        "--data", type=Path, help="folder of episode bags (default: fresh simulator episodes)"
    )
    parser.add_argument("--json", type=Path, required=True, help="write the figures here")
    parser.add_argument("--png", type=Path, help="write a grid of predicted frames here")
    parser.add_argument(
        "--seed",
        type=int,
        default=DEFAULT_HELDOUT_SEED,
        help="first simulator episode seed (S, S+1, ...); also seeds windows and noise",
    )
    parser.add_argument(
        "--episodes", type=int, help="episodes to evaluate (default: all bags, or 8 sim episodes)"
    )
    add_sampler_arguments(parser)
    parser.add_argument("--windows-per-episode", type=int, default=4)
    parser.add_argument("--png-windows", type=int, default=4, help="windows in the PNG grid")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.set_defaults(func=_cmd_predict)
