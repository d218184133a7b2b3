"""`wm-ros export-onnx --model models/NAME --out DIR`: export, then check parity on CPU."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros export-onnx` (the handler is set as `func`)."""
    from wm_ros.export.onnx import OPSET

    parser.add_argument("--model", required=True, help="model directory (config.json + weights)")
    parser.add_argument("--out", type=Path, help="output folder (default: MODEL/onnx)")
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check")
    parser.add_argument("--json", type=Path, help="write the parity figures here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parity inputs")
    parser.set_defaults(func=run_export_command)


def run_export_command(args: argparse.Namespace) -> int:
    """Bad input -> a message on stderr and exit code 2; parity beyond tolerance -> 1."""
    import json

    from wm_ros.model import CheckpointError, load_model
    from wm_ros.planning.session import resolve_model_dir

    directory = resolve_model_dir(args.model)
    try:
        model = load_model(directory, "cpu")
    except CheckpointError as err:
        log.error("wm-ros export-onnx: %s", err)
        return 2
    from wm_ros.export.onnx import export_onnx, fingerprint
    from wm_ros.export.parity import TOLERANCE, check_parity

    out = args.out or directory / "onnx"
    export_onnx(model, out, opset=args.opset)
    log.info("exported %s -> %s (fingerprint %s)", directory, out, fingerprint(model))
    if args.no_check:
        return 0
    diffs = check_parity(model, out, seed=args.seed)
    ok = max(diffs.values()) <= TOLERANCE
    log.info(
        "parity (max abs diff vs torch, fp32, CPU): %s -> %s (tolerance %g)",
        ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()),
        "ok" if ok else "FAILED",
        TOLERANCE,
    )
    if args.json is not None:
        doc = {"model": str(directory), "out": str(out), "max_abs_diff": diffs, "ok": ok}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if ok else 1
