"""A self-contained HTML report of `wm-ros eval replay`: what was read and what was wrong with
it, metrics against the horizon (plots and a table, beside the baselines), frame strips of truth
against prediction for the worst windows first, and the closed-loop plan comparison.

Plots come from wm_ros.eval.plots; every PNG is written beside the HTML (`<stem>_*.png`) and
embedded in it as base64, so the one file can be mailed or attached to an issue.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from wm_ros.eval.images import save_png
from wm_ros.eval.plots import Panel, Series, plot_panels

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #eee; } td.l, th.l { text-align: left; }
.warn { background: #fff3cd; border: 1px solid #e0b000; padding: 0.6em; margin: 0.5em 0; }
.bad { background: #f8d7da; border: 1px solid #c00; padding: 0.6em; margin: 0.5em 0; }
img { max-width: 100%; }
"""

_LABELS = {
    "psnr": ("PSNR", "dB"),
    "ssim": ("SSIM", ""),
    "arm_iou": ("arm IoU", ""),
    "puck_err_px": ("puck error", "px"),
}


def _esc(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return _esc(value)


def _img(png: Path, alt: str) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<p><img alt="{_esc(alt)}" src="data:image/png;base64,{data}"></p>'


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> str:
    def cell(tag: str, i: int, v: object) -> str:
        cls = ' class="l"' if i < left else ""
        return f"<{tag}{cls}>{v if tag == 'th' else _fmt(v)}</{tag}>"

    out = ["<table><tr>" + "".join(cell("th", i, _esc(h)) for i, h in enumerate(head)) + "</tr>"]
    out += ["<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows]
    return "\n".join(out) + "</table>"


def _methods(result: dict) -> dict[str, dict]:
    methods = {"model": result["metrics"]}
    for name, value in (result.get("baselines") or {}).items():
        if value is not None:
            methods[name.replace("_", "-")] = value
    return methods


def _metrics_section(result: dict, stem: Path) -> list[str]:
    methods = _methods(result)
    keys = [k for k in _LABELS if result["metrics"].get(k) is not None]
    panels = []
    for key in keys:
        title, unit = _LABELS[key]
        series = [
            Series(name, [(i + 1, v) for i, v in enumerate(m[key]) if v is not None], kind="both")
            for name, m in methods.items()
            if m.get(key) is not None
        ]
        panels.append(Panel(title, series, xlabel="horizon step", ylabel=unit))
    out = ["<h2>Prediction metrics against the horizon</h2>"]
    if result.get("image_metrics_only"):
        out.append(
            '<div class="warn">No segmentation in this bag (a real robot has none): only the '
            "image metrics PSNR and SSIM are reported; arm IoU and puck error need "
            "/sim/segmentation.</div>"
        )
    png = plot_panels(panels, f"{stem}_metrics.png", size=(1000, 300), columns=2)
    out.append(_img(png, "metrics against the horizon"))
    head = ["step"] + [f"{_LABELS[k][0]} {n}" for k in keys for n in methods]
    rows = []
    for i in range(result["horizon"]):
        row: list[object] = [i + 1]
        for k in keys:
            for m in methods.values():
                values = m.get(k)
                row.append(None if values is None else values[i])
        rows.append(row)
    out.append(_table(head, rows))
    return out


def _strips_section(result: dict, examples: Sequence, stem: Path) -> list[str]:
    from wm_ros.eval.predict import prediction_grid

    out = ["<h2>Worst windows first</h2>"]
    if examples:
        png = save_png(prediction_grid(examples), Path(f"{stem}_worst.png"))
        out.append(
            "<p>Per window: the true context and future (top), the model's prediction with its "
            "PSNR per step, and the action-free base. Windows are labelled "
            "<i>ep &lt;segment&gt; @&lt;frame in segment&gt;</i>.</p>"
        )
        out.append(_img(png, "truth vs prediction, worst windows"))
    worst = sorted(result.get("per_window") or [], key=lambda w: w["psnr"])[:20]
    if worst:
        rows = [
            [w.get("t_s"), w.get("frame"), w["episode"], w["start"], w["psnr"], w["ssim"]]
            for w in worst
        ]
        head = ["t (s)", "bag frame", "segment", "start", "mean PSNR dB", "mean SSIM"]
        out.append(_table(head, rows, left=0))
    return out


def _closed_loop_section(closed: dict, stem: Path) -> list[str]:
    out = ["<h2>Closed-loop replay: plans against what the robot did next</h2>"]
    out.append(
        f"<p>{closed['plans']} plans from {_esc(closed.get('recorded'))} compared over their "
        f"first {closed['steps']} points ({closed['outside']} outside the recorded joints). "
        "Error: mean absolute joint difference between a plan's target and the recorded "
        "joints at that time, beside holding the joints of the plan's stamp.</p>"
    )
    plan, hold = closed["plan_error_rad"], closed["hold_error_rad"]
    if any(v is not None for v in plan):
        panel = Panel(
            "plan vs recorded joints",
            [
                Series("plan", [(i + 1, v) for i, v in enumerate(plan) if v is not None], "both"),
                Series("hold", [(i + 1, v) for i, v in enumerate(hold) if v is not None], "both"),
            ],
            xlabel="plan step",
            ylabel="rad",
        )
        out.append(_img(plot_panels([panel], f"{stem}_plans.png", size=(600, 300)), "plans"))
    rows = [[i + 1, p, h] for i, (p, h) in enumerate(zip(plan, hold, strict=True))]
    out.append(_table(["step", "plan error rad", "hold error rad"], rows, left=0))
    lat = closed.get("latency_ms")
    if lat:
        out.append(
            _table(
                ["latency ms", "p50", "p95", "p99", "max", "samples"],
                [["replan", lat["p50"], lat["p95"], lat["p99"], lat["max"], lat["samples"]]],
            )
        )
    if closed.get("counts"):
        counts = closed["counts"]
        out.append(_table(list(counts), [list(counts.values())], left=0))
    out += [f'<div class="warn">{_esc(n)}</div>' for n in closed.get("notes", [])]
    return out


def write_replay_report(result: dict, examples: Sequence, path: str | Path) -> Path:
    """Write the report of an `eval replay` result (and its worst-window examples) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem = path.with_suffix("")
    align = result.get("alignment") or {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>wm-ros eval replay: {_esc(Path(result['bag']).name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Replay of {_esc(result['bag'])}</h1>",
    ]
    if result.get("partial"):
        parts.append(
            '<div class="bad"><b>PARTIAL RESULTS</b>: the bag could not be read to the end; '
            "everything below covers only what was read before the damage.</div>"
        )
    parts += [f'<div class="warn">{_esc(p)}</div>' for p in result.get("problems") or []]
    facts = [
        ("model", result.get("model")),
        ("storage", result.get("storage")),
        ("topics", "; ".join(f"{k}: {v}" for k, v in (result.get("topics") or {}).items())),
        ("stamps", result.get("stamp_source")),
        ("frames", align.get("frames")),
        ("frame rate Hz", align.get("rate_hz")),
        ("jitter s (std)", align.get("jitter_s")),
        ("dropped frames", align.get("dropped")),
        ("gaps", len(align.get("gaps") or [])),
        ("clock jumps", len(align.get("clock_jumps") or [])),
        ("frames without a joint state", align.get("unmatched_frames")),
        ("segments", len(align.get("segments") or [])),
        ("conditioning actions", align.get("actions")),
        ("segmentation", align.get("labels")),
        ("windows", result.get("windows")),
        ("horizon (steps scored)", result.get("horizon")),
        ("sampler steps", result.get("steps")),
        ("seed", result.get("seed")),
        ("wall s (evaluation)", result.get("wall_s")),
    ]
    parts.append(_table(["", "value"], [[k, v] for k, v in facts if v is not None], left=2))
    for jump in (align.get("clock_jumps") or [])[:10]:
        parts.append(
            f'<div class="warn">clock jump after {jump["at_s"]:.3f} s (frame {jump["index"]}): '
            f"the next frame is stamped {jump['step_s']:+.3f} s later; windows never span it."
            "</div>"
        )
    for gap in (align.get("gaps") or [])[:10]:
        parts.append(
            f'<div class="warn">gap after {gap["at_s"]:.3f} s: {gap["gap_s"]:.3f} s, '
            f"~{gap['dropped']} frame(s) dropped; windows never span it.</div>"
        )
    parts += [f"<p>{_esc(n)}</p>" for n in result.get("notes") or []]
    if result.get("metrics"):
        parts += _metrics_section(result, stem)
        parts += _strips_section(result, examples, stem)
    if result.get("closed_loop"):
        parts += _closed_loop_section(result["closed_loop"], stem)
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path
