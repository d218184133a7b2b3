"""Write a model directory's `model_card.md` from what training and evaluation recorded.

Every figure comes from files: config.json (architecture, data, stages, device), the training
log (steps, wall time, last losses), the collector's collect.json (the simulator it ran), the
`wm-ros eval predict` JSON of the model and of its ablations, and the rollout benchmark JSON.
Nothing is typed in by hand.

    python -m wm_ros.eval.model_card --model-dir models/sim_tabletop --train-dir RUN \\
        --eval-dir RUN/eval --config config/models/sim_tabletop.yaml --data-dir RUN/train
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wm_ros.model import load_model

# The figures issue 4 asks of the shipped model (held-out seeds, 64x64, H = 8).
TARGETS = {"psnr_gain_db": 3.0, "arm_iou": 0.8, "puck_err_px": 2.0}
ABLATIONS = {
    "full_short": "full model (same adapter steps as the ablations)",
    "no_mask": "no mask (final = base + adapter)",
    "joints": "raw joint-vector conditioning",
    "no_base": "adapter without base",
}
# Evaluations of deterministic predictions (`wm-ros eval predict --noise-scale 0`) sit beside the
# sampled ones with this suffix: full_noise0.json, ablation_NAME_noise0.json.
DETERMINISTIC = "_noise0"


def _f(v: float | None, fmt: str = ".2f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _stage_times(log_path: Path) -> dict[str, dict]:
    """Per stage: steps logged, wall seconds, last loss and validation loss. Each run logs
    seconds since it started the stage, so a resumed stage (elapsed falls back) adds up the
    runs."""
    out: dict[str, dict] = {}
    for line in log_path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        s = out.setdefault(
            r["stage"],
            {"steps": 0, "wall_s": 0.0, "run_s": 0.0, "runs": 1, "loss": None, "val": None},
        )
        if "loss" in r:
            elapsed = r.get("elapsed_s", 0.0)
            if elapsed < s["run_s"]:  # a new run resumed the stage
                s["wall_s"] += s["run_s"]
                s["runs"] += 1
            s["run_s"] = elapsed
            s["steps"] = max(s["steps"], r["step"])
            s["loss"] = r["loss"]
        if "val_loss" in r:
            s["val"] = r["val_loss"]
    for s in out.values():
        s["wall_s"] += s.pop("run_s")
    return out


def _adapter_words(cfg) -> str:
    """How the adapter's prediction joins the base's (ModelConfig use_base, use_mask,
    adapter_from_base, frame_head)."""
    head = (
        f"; the adapter's per-frame head ({cfg.frame_head} channels) gives each future frame "
        "its own step's action features"
        if cfg.frame_head
        else ""
    )
    if not cfg.use_base:
        return "adapter alone, no base" + head
    if not cfg.use_mask:
        return "final = base + adapter (no mask)" + head
    start = (
        "the adapter predicts a correction on top of the base's prediction"
        if cfg.adapter_from_base
        else "the adapter predicts from scratch"
    )
    return f"final = m * base + (1 - m) * adapter with a learned mask m; {start}{head}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def render_card(
    model_dir: Path,
    train_dir: Path,
    eval_dir: Path,
    config: Path | None,
    data_dir: Path | None = None,
) -> str:
    """The card's Markdown; data_dir, the training episodes, adds the simulator they came from."""
    cfg_json = json.loads((model_dir / "config.json").read_text())
    model = load_model(model_dir)
    params = {
        name: sum(p.numel() for p in part.parameters())
        for name, part in (
            ("autoencoder", model.autoencoder),
            ("base", model.base),
            ("adapter", model.adapter),
        )
        if part is not None
    }
    training = cfg_json.get("training", {})
    data = training.get("data", {})
    stages = _stage_times(train_dir / "train_log.jsonl")
    full = json.loads((eval_dir / "full.json").read_text())
    mc = full["model_horizon"]
    m, b = full["metrics"]["summary"], full["baselines"]
    copy, base = b["copy_last"]["summary"], (b.get("base_only") or {}).get("summary", {})
    ae = (b.get("autoencoder") or {}).get("summary", {})
    gain = None if m["psnr_at_H"] is None else m["psnr_at_H"] - copy["psnr_at_H"]
    lines = [
        f"# {model_dir.name}: action-conditioned video world model of the wm_ros tabletop",
        "",
        "Frames 64x64 RGB from the simulator's fixed camera; latents "
        f"{model.cfg.latent_channels}x{model.cfg.latent_size}x{model.cfg.latent_size}; "
        f"H = {mc} future frames per chunk from K = {model.cfg.context} context and "
        f"M = {model.cfg.memory} memory frames; conditioning: {model.cfg.conditioning} "
        f"(skeleton prompts of the commanded joint targets); {_adapter_words(model.cfg)}; "
        f"{model.cfg.shortcut_levels} shortcut "
        "levels (1, 2, 4 or 8 sampler steps). Parameters: "
        + ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in params.items())
        + ". Files: `config.json` (rebuilds the networks), `model.safetensors` (world model), "
        "`prior.safetensors` (action prior), `pose.safetensors` (goal-pose estimator), "
        "`losses.png`, `train_log.jsonl`, "
        "`predictions.png` (held-out context | truth | prediction).",
        "",
        "## How it was trained",
        "",
        f"- Command: `scripts/train_sim_tabletop.sh` (config `{config}`); "
        "every stage resumable, seeded.",
        f"- Data: `wm-ros collect` exploration episodes at 10 Hz: "
        f"{data.get('train_episodes', '?')} training episodes (seeds {data.get('train_seeds', '?')}"
        f", {data.get('train_frames', '?')} frames), {data.get('val_episodes', '?')} for the "
        f"validation loss (seeds {data.get('val_seeds', '?')}); held-out evaluation episodes "
        "come from other seeds (below)." + _sim_line(data_dir),
        f"- Device: {training.get('device', '?')}, {training.get('processes', 1)} process(es), "
        f"batch {training.get('batch_size_per_process', '?')}.",
        "",
        "| stage | steps | wall time | runs | last training loss | last validation loss |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in stages.items():
        lines.append(
            f"| {name} | {s['steps']} | {s['wall_s'] / 60:.1f} min | {s['runs']} | "
            f"{_f(s['loss'], '.4f')} | {_f(s['val'], '.4f')} |"
        )
    total = sum(s["wall_s"] for s in stages.values()) / 60
    lines += [
        f"| total | | {total:.1f} min | | | |",
        "",
        f"## Held-out prediction ({full['episodes']} episodes, seeds from {full['seed']}, "
        f"{full['windows']} windows, {full['steps']} sampler steps, noise scale "
        f"{full.get('noise_scale', 1.0)}, `wm-ros eval predict`)",
        "",
        "| figure | model | copy last frame | base only | autoencoder ceiling | target | |",
        "|---|---|---|---|---|---|---|",
        f"| PSNR at step {mc}, dB | {_f(m['psnr_at_H'])} | {_f(copy['psnr_at_H'])} | "
        f"{_f(base.get('psnr_at_H'))} | {_f(ae.get('psnr_at_H'))} | copy-last + "
        f"{TARGETS['psnr_gain_db']:.0f} (model - copy = {_f(gain)}) | "
        f"{_met(None if gain is None else gain >= TARGETS['psnr_gain_db'])} |",
        f"| SSIM at step {mc} | {_f(m['ssim_at_H'], '.3f')} | {_f(copy['ssim_at_H'], '.3f')} | "
        f"{_f(base.get('ssim_at_H'), '.3f')} | {_f(ae.get('ssim_at_H'), '.3f')} | | |",
        f"| arm-mask IoU, mean of steps 1..{mc} | {_f(m['arm_iou_mean_1_to_H'], '.3f')} | "
        f"{_f(copy['arm_iou_mean_1_to_H'], '.3f')} | {_f(base.get('arm_iou_mean_1_to_H'), '.3f')}"
        f" | {_f(ae.get('arm_iou_mean_1_to_H'), '.3f')} | >= {TARGETS['arm_iou']} | "
        f"{_met(None if m['arm_iou_mean_1_to_H'] is None else m['arm_iou_mean_1_to_H'] >= TARGETS['arm_iou'])} |",  # noqa: E501
        f"| puck-centroid error at step {mc} (puck moving), px | {_f(m['puck_err_px_at_H'])} | "
        f"{_f(copy['puck_err_px_at_H'])} | {_f(base.get('puck_err_px_at_H'))} | "
        f"{_f(ae.get('puck_err_px_at_H'))} | <= {TARGETS['puck_err_px']} | "
        f"{_met(None if m['puck_err_px_at_H'] is None else m['puck_err_px_at_H'] <= TARGETS['puck_err_px'])} |",  # noqa: E501
        f"| puck not found, steps 1..{mc} | {_f(m['puck_missing_1_to_H'], '.2f')} | "
        f"{_f(copy['puck_missing_1_to_H'], '.2f')} | {_f(base.get('puck_missing_1_to_H'), '.2f')}"
        f" | {_f(ae.get('puck_missing_1_to_H'), '.2f')} | | |",
        "",
        "Masks of predicted frames come from a colour classifier fitted on true frames and "
        "their segmentation (its own arm IoU on true frames: "
        f"{_f(full['classifier'].get('arm_iou_mean'), '.3f')}).{_spread_words(full)}",
        "",
        f"Per step (1..{2 * mc}; steps after {mc} are autoregressive on the model's own frames):",
        "",
        "| step | PSNR model | PSNR copy-last | PSNR base-only | arm IoU model | arm IoU copy-last "
        "| puck err model, px | puck err copy-last, px |",
        "|---|---|---|---|---|---|---|---|",
    ]
    met, cb = full["metrics"], b["copy_last"]
    bo = b.get("base_only") or {}
    for i in range(len(met["psnr"])):
        lines.append(
            f"| {i + 1} | {_f(met['psnr'][i])} | {_f(cb['psnr'][i])} | "
            f"{_f(bo.get('psnr', [None] * (i + 1))[i])} | {_f(met['arm_iou'][i], '.3f')} | "
            f"{_f(cb['arm_iou'][i], '.3f')} | {_f(met['puck_err_px'][i])} | "
            f"{_f(cb['puck_err_px'][i])} |"
        )
    lines += _ablation_lines(eval_dir, mc)
    lines += _deterministic_lines(eval_dir, full, mc)
    lines += _prior_lines(full.get("prior"))
    lines += _pose_lines(eval_dir / "pose.json", training.get("data_by_stage", {}).get("pose"))
    lines += _speed_lines(eval_dir / "rollout_speed.json")
    return "\n".join(lines) + "\n"


def _spread_words(result: dict) -> str:
    """How far the headline figures could move on another held-out set (their 95% bootstrap
    intervals over windows) and which data they were measured on, when the JSON has them."""
    ci = result["metrics"].get("summary_ci95") or {}
    labels = (
        ("psnr_at_H", "PSNR at step H", ".2f"),
        ("arm_iou_mean_1_to_H", "arm IoU", ".3f"),
        ("puck_err_px_at_H", "puck error", ".2f"),
    )
    parts = []
    for key, label, fmt in labels:
        if ci.get(key):
            lo, hi = ci[key]
            parts.append(f"{label} {_f(lo, fmt)}-{_f(hi, fmt)}")
    words = f" 95% bootstrap intervals over the windows: {', '.join(parts)}." if parts else ""
    if result.get("data_fingerprint"):
        cpu = (result.get("machine") or {}).get("cpu", "?")
        words += (
            f" Held-out data fingerprint {result['data_fingerprint']} (measured on {cpu}; the "
            "same seeds collected on another host can differ, README)."
        )
    return words


def _sim_line(data_dir: Path | None) -> str:
    """What the training episodes' simulator was set to (their collect.json), or nothing."""
    path = None if data_dir is None else data_dir / "collect.json"
    if path is None or not path.is_file():
        return ""
    sim = json.loads(path.read_text()).get("sim", {})
    task = sim.get("task", {})
    return (
        f" Simulator: puck radius {_f(sim.get('puck_radius_m'), '.3f')} m, "
        f"{sim.get('image_width', '?')}x{sim.get('image_height', '?')} px, "
        f"control dt {sim.get('control_dt', '?')} s, {task.get('kind', '?')} task goals "
        f"({task.get('push_start', '?')} start)."
    )


def _deterministic_lines(eval_dir: Path, sampled: dict, h: int) -> list[str]:
    """The model's and the ablations' figures with the sampler started at the noise's mean,
    beside the sampled ones, when the eval directory has them."""
    path = eval_dir / f"full{DETERMINISTIC}.json"
    if not path.is_file():
        return []
    det = json.loads(path.read_text())
    rows = []
    for label, data in (("sampled (scale 1)", sampled), ("deterministic (scale 0)", det)):
        s = data["metrics"]["summary"]
        copy = data["baselines"]["copy_last"]["summary"]
        base = (data["baselines"].get("base_only") or {}).get("summary", {})
        rows.append(
            f"| {label} | {_f(s['psnr_at_H'] - copy['psnr_at_H'])} | "
            f"{_f(s['arm_iou_mean_1_to_H'], '.3f')} | {_f(s['puck_err_px_at_H'])} | "
            f"{_f(s['psnr_at_end'])} | {_f(base.get('arm_iou_mean_1_to_H'), '.3f')} | "
            f"{_f(base.get('puck_err_px_at_H'))} |"
        )
    return [
        "",
        "## Deterministic prediction (`--noise-scale 0`: the sampler starts at the noise's mean)",
        "",
        "The same windows and sampler steps. The planner samples by default "
        "(`planner.sampler_noise_scale: 1`; README: what each does to closed-loop pushes).",
        "",
        f"| prediction | PSNR at step {h} - copy-last, dB | arm IoU 1..{h} | puck err at step "
        f"{h}, px | PSNR at step {2 * h}, dB | base only: arm IoU | base only: puck err, px |",
        "|---|---|---|---|---|---|---|",
        *rows,
        *_ablation_lines(eval_dir, h, DETERMINISTIC),
    ]


def _ablation_lines(eval_dir: Path, h: int, suffix: str = "") -> list[str]:
    rows, ref = [], None
    for name, label in ABLATIONS.items():
        path = eval_dir / f"ablation_{name}{suffix}.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        s = data["metrics"]["summary"]
        ref = s if name == "full_short" else ref
        verdict = ""
        if ref is not None and name != "full_short":
            iou = ref["arm_iou_mean_1_to_H"] > s["arm_iou_mean_1_to_H"]
            puck = ref["puck_err_px_at_H"] < s["puck_err_px_at_H"]
            verdict = f"{'yes' if iou else '**no**'} / {'yes' if puck else '**no**'}"
        steps = ((data.get("training") or {}).get("done") or {}).get("adapter", "?")
        rows.append(
            f"| {label} | {steps} | {_f(s['psnr_at_H'])} | {_f(s['arm_iou_mean_1_to_H'], '.3f')} | "
            f"{_f(s['puck_err_px_at_H'])} | {_f(s['puck_missing_1_to_H'], '.2f')} | {verdict} |"
        )
    if not rows:
        return []
    how = "deterministic predictions, noise scale 0" if suffix else "sampled predictions"
    return [
        "",
        "## Ablations (the shipped model's autoencoder and base; each adapter trained the same "
        f"number of steps from scratch; same held-out windows; {how})",
        "",
        f"| variant | adapter steps | PSNR at step {h}, dB | arm IoU 1..{h} | "
        f"puck err at step {h}, px | puck not found | full model better (IoU / puck) |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def _prior_lines(prior: dict | None) -> list[str]:
    if not prior:
        return []
    s = prior["summary"]
    return [
        "",
        "## Action prior (held-out windows)",
        "",
        f"Mean absolute error of the prior's mean to the recorded targets: "
        f"{s['mae_rad_mean']:.3f} rad (holding the current pose: "
        f"{s['hold_pose_mae_rad_mean']:.3f} rad). Recorded targets within 1 / 2 predicted "
        f"standard deviations: {s['within_1_std']:.2f} / {s['within_2_std']:.2f} "
        "(calibrated: 0.68 / 0.95).",
    ]


def _pose_lines(path: Path, data: dict | None) -> list[str]:
    """The goal-pose estimator's figures (`wm-ros eval pose`) and the data it trained on."""
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    rows = [("reach goal images, seeds " + "-".join(map(str, r["seeds"])), r["goal_images"])]
    if "data" in r:
        rows.append((f"every frame of {r['data']['episodes']} held-out episodes", r["data"]))
    trained = (
        f"{data.get('train_episodes', '?')} episodes ({data.get('train_frames', '?')} frames; "
        f"seeds {data.get('train_seeds', '?')})"
        if data
        else "?"
    )
    lines = [
        "",
        "## Goal-pose estimator (`wm-ros eval pose`)",
        "",
        f"Reads the arm's joints off a goal image for the planner's joint-goal term: a U-Net "
        "finds the skeleton's keypoints, the joints are fitted to them through the URDF and the "
        f"camera. Trained on {trained}: the world model's exploration episodes and `wm-ros "
        "collect --policy poses` episodes (joint motion over 0.95 x the limits, half the "
        "waypoints at its edges).",
        "",
        "| images | mean abs error per joint, rad | guessing the mean pose, rad | largest joint "
        "error p50 / p90, rad | within 0.15 / 0.3 / 0.5 rad | keypoint error per keypoint, px "
        "| fit residual p50, px |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, f in rows:
        w = f["max_joint_error_rad"]
        kp = f.get("keypoint_error_px", {}).get("mean_per_keypoint", [])
        lines.append(
            f"| {name} ({f['images']}) | {', '.join(f'{v:.3f}' for v in f['mae_rad'])} | "
            f"{', '.join(f'{v:.2f}' for v in f['mean_pose_mae_rad'])} | {w['p50']:.3f} / "
            f"{w['p90']:.3f} | {w['within_0.15']:.2f} / {w['within_0.3']:.2f} / "
            f"{w['within_0.5']:.2f} | {', '.join(f'{v:.2f}' for v in kp) or '-'} | "
            f"{f.get('fit_residual_px_p50', float('nan')):.2f} |"
        )
    return lines


def _speed_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    m = r["machine"]
    lines = [
        "",
        f"## Speed ({r['device']}; {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch "
        f"threads, torch {m['torch']}; load average {m['load_average']})",
        "",
        f"One batched rollout of {r['n']} candidates x {r['horizon']} steps x {r['steps']} "
        "sampler steps (`benchmarks/rollout_speed.py`):",
        "",
        "| part | p50 ms | p95 ms |",
        "|---|---|---|",
    ]
    for name, t in r["latency_ms"].items():
        lines.append(f"| {name} | {t['p50']:.1f} | {t['p95']:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--train-dir", type=Path, required=True, help="has train_log.jsonl")
    parser.add_argument("--eval-dir", type=Path, required=True, help="has full.json, ...")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--data-dir", type=Path, help="the training episodes (has collect.json)")
    args = parser.parse_args(argv)
    card = render_card(args.model_dir, args.train_dir, args.eval_dir, args.config, args.data_dir)
    (args.model_dir / "model_card.md").write_text(card)
    sys.stdout.write(f"wrote {args.model_dir / 'model_card.md'}\n")


if __name__ == "__main__":
    main()
