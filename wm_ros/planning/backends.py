"""What runs the world model inside the planner: torch, torch's GPU fast path, or onnxruntime.

    world = planning_world(model, session_cfg, onnx_dir)   # WorldModelRollout(world, ...)

Every choice offers the planner the same calls (cfg, parameters, encode_frames, rollout), and
all of them run WorldModel's own sampler and chunk loop; only the network evaluations differ.
So the candidates, their noise, the cost and the CEM update are identical code for every backend.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from wm_ros.config import PlanningSessionConfig

log = logging.getLogger(__name__)


def onnx_world(model, directory: Path, threads: int | None = None):
    """An OnnxWorldModel of `model` on its device: from `directory` when it holds an export of
    these very weights, else exported now into a temporary folder (kept while the returned
    object lives)."""
    from wm_ros.export.onnx import export_onnx, fingerprint, read_manifest
    from wm_ros.export.ort import OnnxWorldModel

    device = next(model.parameters()).device
    fp = fingerprint(model)
    try:
        matches = read_manifest(directory)["fingerprint"] == fp
    except ValueError:
        matches = False
    if matches:
        return OnnxWorldModel(directory, device, threads=threads, expect_fingerprint=fp)
    tmp = tempfile.TemporaryDirectory(prefix="wm_ros_onnx_")
    log.warning("no export of this model's weights in %s: exporting to %s", directory, tmp.name)
    export_onnx(model, tmp.name)
    world = OnnxWorldModel(tmp.name, device, threads=threads, expect_fingerprint=fp)
    world.tmp = tmp  # removed with the world model
    return world


def planning_world(model, cfg: PlanningSessionConfig, onnx_dir: Path):
    """The world model as cfg.backend / precision / cuda_graphs say (module doc)."""
    if cfg.backend == "onnxruntime":
        return onnx_world(model, onnx_dir)
    if cfg.precision != "fp32" or cfg.cuda_graphs:
        from wm_ros.model.fast import FastWorldModel

        return FastWorldModel(model, precision=cfg.precision, cuda_graphs=cfg.cuda_graphs)
    return model
