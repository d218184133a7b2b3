"""The world model as ONNX graphs: encoder, action encoder, one denoiser step, decoder.

    export_onnx(model, "models/sim_tabletop/onnx")     # writes the graphs + manifest.json

Graphs (N: any batch size; shapes as ModelConfig gives them):

    encoder.onnx   frames (N, 3, S, S) in [0, 1]            -> latents (N, c, h, w), normalised
    actions.onnx   cond (N, H, C_p, S, S) or (N, H, J)     -> inj0, inj1[, inj2] (the adapter's
                                                              injections: injection_names)
    denoiser.onnx  x (N, H, c, h, w), t (N,), d (N,), context (N, K, c, h, w),
                   [memory (N, M, c, h, w)], [inj0, inj1[, inj2]] -> velocity (N, H, c, h, w)
    decoder.onnx   latents (N, c, h, w)                     -> images (N, 3, S, S) in [0, 1]

The denoiser is base and adapter together (the final, mask-blended velocity): one graph per
sampler step. The action encoder is apart because its output does not depend on the flow time
(the torch sampler computes it once per rollout too). memory is absent when M = 0, actions.onnx
and the injections when the model is action-free. manifest.json records the model config, a
fingerprint of the weights (so a stale export is never run against other weights), the opset and
the versions that wrote it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wm_ros.config import ModelConfig
from wm_ros.model.world_model import WorldModel

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "wm_ros.onnx"
VERSION = 1
OPSET = 18


def fingerprint(model: WorldModel) -> str:
    """sha256 of the model config and every weight and buffer (hex, 16 chars)."""
    h = hashlib.sha256(json.dumps(model.cfg.to_dict(), sort_keys=True).encode())
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class _Encoder(nn.Module):
    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.autoencoder = model.autoencoder

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(frames)


class _Decoder(nn.Module):
    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.autoencoder = model.autoencoder

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(latents)


class _Actions(nn.Module):
    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.adapter = model.adapter

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.adapter.encode_actions(cond)


class _Denoiser(nn.Module):
    """model.velocity_parts(...).final with the optional inputs as the config says."""

    def __init__(self, model: WorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, t, d, context, *rest):
        cfg, rest = self.model.cfg, list(rest)
        memory = rest.pop(0) if cfg.memory else context[:, :0]
        injections = tuple(rest) if self.model.adapter is not None else None
        return self.model.velocity_parts(x, t, d, context, memory, injections=injections).final


def injection_shapes(cfg: ModelConfig, n: int) -> list[tuple[int, ...]]:
    """Shapes of the adapter's injections (injection_names) for a batch of n: maps at the
    latent size and half of it, (N, w0, h, w) and (N, w1, h/2, w/2), for prompt conditioning,
    and with cfg.frame_head each step's features (N, H * f, h, w); for joint conditioning the
    same as per-channel vectors, (N, w0, 1, 1), (N, w1, 1, 1) and (N, H * f, 1, 1)."""
    (w0, w1), s = cfg.widths, cfg.latent_size
    g = s if cfg.conditioning == "prompt" else 1
    half = (g + 1) // 2  # the U-Net's stride-2 conv (padding 1) rounds an odd grid up
    shapes = [(n, w0, g, g), (n, w1, half, half)]
    if cfg.frame_head:
        shapes.append((n, cfg.horizon * cfg.prompt_features, g, g))
    return shapes


def injection_names(cfg: ModelConfig) -> list[str]:
    """The injections' input/output names: inj0, inj1[, inj2]."""
    return [f"inj{i}" for i in range(len(injection_shapes(cfg, 1)))]


def example_inputs(cfg: ModelConfig, n: int = 2, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Random inputs of every graph, by graph name then input name (export and parity)."""
    g = torch.Generator().manual_seed(seed)
    c, s, ls, h = cfg.latent_channels, cfg.image_size, cfg.latent_size, cfg.horizon

    def rand(*shape):
        return torch.randn(shape, generator=g)

    graphs: dict[str, dict[str, Any]] = {
        "encoder": {"frames": torch.rand((n, 3, s, s), generator=g)},
        "decoder": {"latents": rand(n, c, ls, ls)},
    }
    den = {
        "x": rand(n, h, c, ls, ls),
        "t": torch.rand((n,), generator=g),
        "d": torch.full((n,), 0.5),
        "context": rand(n, cfg.context, c, ls, ls),
    }
    if cfg.memory:
        den["memory"] = rand(n, cfg.memory, c, ls, ls)
    if cfg.has_adapter:
        if cfg.conditioning == "prompt":
            cond = torch.rand((n, h, cfg.prompt_channels, s, s), generator=g)
        else:
            cond = rand(n, h, cfg.num_joints)
        names, shapes = injection_names(cfg), injection_shapes(cfg, n)
        den.update({name: rand(*shape) for name, shape in zip(names, shapes, strict=True)})
        graphs["actions"] = {"cond": cond}
    graphs["denoiser"] = den
    return graphs


def graph_outputs(cfg: ModelConfig) -> dict[str, list[str]]:
    """The output names of each graph."""
    return {
        "encoder": ["latents"],
        "decoder": ["images"],
        "actions": injection_names(cfg),
        "denoiser": ["velocity"],
    }


def torch_graphs(model: WorldModel) -> dict[str, nn.Module]:
    """The torch modules each ONNX graph is exported from (parity compares against them)."""
    graphs: dict[str, nn.Module] = {
        "encoder": _Encoder(model),
        "decoder": _Decoder(model),
        "denoiser": _Denoiser(model),
    }
    if model.adapter is not None:
        graphs["actions"] = _Actions(model)
    return graphs


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """manifest.json of an export directory.

    Raises:
        ValueError: no directory, no manifest, or not a wm_ros export.
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path} is missing: export the model with `wm-ros export-onnx` first")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a wm_ros ONNX export (format {FORMAT!r})")
    return data


@torch.no_grad()
def export_onnx(model: WorldModel, out: str | Path, *, opset: int = OPSET) -> Path:
    """Write the graphs (module doc) and manifest.json of `model` into `out` (created).

    The batch axis of every input is dynamic; weights are folded into each file (the models
    are a few MB). Returns the directory.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if next(model.parameters()).device.type != "cpu":  # .to() would move the caller's model
        model = copy.deepcopy(model).to("cpu")
    model = model.eval()
    examples = example_inputs(model.cfg)
    modules = torch_graphs(model)
    outputs = graph_outputs(model.cfg)
    files = {}
    for name, module in modules.items():
        inputs = examples[name]
        path = out / f"{name}.onnx"
        # The TorchScript exporter: a second for these small conv nets, where the dynamo
        # exporter takes ten and gives the same graph for them.
        with warnings.catch_warnings():
            # The one data-dependent branch (skip empty memory) is fixed by the config.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
            torch.onnx.export(
                module.eval(),
                tuple(inputs.values()),
                str(path),
                input_names=list(inputs),
                output_names=outputs[name],
                opset_version=opset,
                dynamo=False,
                dynamic_axes={k: {0: "batch"} for k in [*inputs, *outputs[name]]},
            )
        files[name] = path.name
        log.info("exported %s (%d kB)", path, path.stat().st_size // 1024)
    import onnx

    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model": model.cfg.to_dict(),
        "fingerprint": fingerprint(model),
        "graphs": {
            name: {
                "file": files[name],
                "inputs": {k: list(v.shape[1:]) for k, v in examples[name].items()},
                "outputs": outputs[name],
            }
            for name in modules
        },
        "opset": opset,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out
