"""Model directories: `config.json` (everything needed to rebuild the networks) + weights in
`model.safetensors` (world model) and `prior.safetensors` (action prior, wm_ros.planning.prior,
its settings under "prior" in config.json). No pickles: loading never runs code from the file.

    save_model(model, "models/NAME", extra={"trained_steps": ...})
    model = load_model("models/NAME", device="cpu")
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
    save_weights(model, directory / WEIGHTS_FILE)
    write_config(
        directory,
        {"format": FORMAT, "version": VERSION, "model": model.cfg.to_dict(), **(extra or {})},
    )
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


def write_config(directory: str | Path, sections: dict[str, Any]) -> None:
    """Set top-level `sections` of config.json, keeping the others (the world model and the
    action prior are saved by different stages into one directory); written atomically."""
    path = Path(directory) / CONFIG_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = {}  # replaced below; the weights are the record that matters
    data.update(sections)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def save_weights(module: torch.nn.Module, path: Path) -> None:
    """The module's state dict as safetensors, atomically (a kill never leaves half a file)."""
    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"format": FORMAT, "version": str(VERSION)})
    tmp.replace(path)


def load_weights(module: torch.nn.Module, path: Path, config_path: Path) -> None:
    """Load safetensors weights into `module`, which was built from `config_path`.

    Raises:
        CheckpointError: the file is missing or not safetensors, or its tensors do not match
            the module (missing, unexpected or differently shaped).
    """
    if not path.is_file():
        others = sorted(
            p.name for p in path.parent.iterdir() if p.suffix in (".pt", ".pth", ".bin", ".ckpt")
        )
        hint = f" (found {others}: pickled checkpoints are not loaded)" if others else ""
        raise CheckpointError(f"{path} is missing{hint}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from None
    expected = module.state_dict()
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
        raise CheckpointError(f"{path} does not match {config_path}: " + "; ".join(parts))
    module.load_state_dict(state)


def save_part(module: torch.nn.Module, directory: str | Path, file: str, section: str) -> None:
    """Write a planning part beside the model (the action prior, the goal-pose estimator): its
    weights as `file` and its config (`module.cfg`) as config.json's `section`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(module, directory / file)
    write_config(directory, {section: module.cfg.to_dict()})


def load_part(
    directory: str | Path,
    file: str,
    section: str,
    build: Callable[[Any], torch.nn.Module],
    config_type: Any,
    *,
    device: str | torch.device = "cpu",
) -> Any:
    """Rebuild a part saved by save_part (`build(config_type.from_dict(section))`) and load its
    weights, in eval mode.

    Raises:
        CheckpointError: no such section, invalid settings, or weights that do not match them.
    """
    _, data = read_config(directory)
    cfg_path = Path(directory) / CONFIG_FILE
    if section not in data:
        raise CheckpointError(
            f"{cfg_path} has no {section!r} section: train one with `wm-ros train --stage "
            f"{section}`"
        )
    try:
        cfg = config_type.from_dict(data[section])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{cfg_path}: invalid {section} settings: {err}") from None
    module = build(cfg)
    load_weights(module, Path(directory) / file, cfg_path)
    return module.to(device).eval()


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> WorldModel:
    """Rebuild the model from config.json and load its weights (eval mode).

    Raises:
        CheckpointError: a missing file, a weights file that is not safetensors, or weights
            that do not match the config (missing, unexpected or differently shaped tensors).
    """
    cfg, _ = read_config(directory)
    model = WorldModel(cfg)
    load_weights(model, Path(directory) / WEIGHTS_FILE, Path(directory) / CONFIG_FILE)
    return model.to(device).eval()
