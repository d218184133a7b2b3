"""Model directories: `config.json` (everything needed to rebuild the networks) + weights in
`model.safetensors`. No pickles: loading never runs code from the file.

    save_model(model, "models/NAME", extra={"trained_steps": ...})
    model = load_model("models/NAME", device="cpu")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wm_ros.config import ModelConfig
from wm_ros.model.world_model import WorldModel

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "wm_ros.world_model"
VERSION = 1


class CheckpointError(ValueError):
    """A model directory that cannot be loaded; the message names the file and the problem."""


def save_model(
    model: WorldModel, directory: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write `config.json` and `model.safetensors` into `directory` (created if needed).

    Args:
        model: the model; its `cfg` goes into config.json under "model".
        directory: the model directory.
        extra: more JSON-serialisable keys for config.json (training summary, ...).
    Returns:
        the directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "version": str(VERSION)})
    tmp.replace(directory / WEIGHTS_FILE)  # atomic: a kill never leaves half a file
    config = {"format": FORMAT, "version": VERSION, "model": model.cfg.to_dict(), **(extra or {})}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The ModelConfig and the whole config.json of a model directory.

    Raises:
        CheckpointError: missing or unreadable config.json, or invalid model settings.
    """
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise CheckpointError(f"model directory {directory} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a model directory needs {CONFIG_FILE}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "model" not in data:
        raise CheckpointError(f"{path} is not a wm_ros world model config (format {FORMAT!r})")
    try:
        return ModelConfig.from_dict(data["model"]), data
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: invalid model settings: {err}") from None


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """Rebuild the model from config.json and load its weights (eval mode).

    Raises:
        CheckpointError: a missing file, a weights file that is not safetensors, or weights
            that do not match the config (missing, unexpected or differently shaped tensors).
    """
    cfg, _ = read_config(directory)
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        others = sorted(
            p.name
            for p in Path(directory).iterdir()
            if p.suffix in (".pt", ".pth", ".bin", ".ckpt")
        )
        hint = f" (found {others}: pickled checkpoints are not loaded)" if others else ""
        raise CheckpointError(f"{path} is missing{hint}")
    try:
        state = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from None
    model = WorldModel(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs config {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[:2]})")
        raise CheckpointError(
            f"{path} does not match {Path(directory) / CONFIG_FILE}: " + "; ".join(parts)
        )
    model.load_state_dict(state)
    return model.to(device).eval()
