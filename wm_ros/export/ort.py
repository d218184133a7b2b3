"""The world model's networks run by onnxruntime; everything around them stays the torch code.

    world = OnnxWorldModel("models/sim_tabletop/onnx", device="cpu")
    rollout = WorldModelRollout(world, renderer, joint_names)      # as with the torch model

OnnxWorldModel offers what the planner uses of a WorldModel (cfg, parameters() for the device,
encode_frames, decode, sample, rollout) and borrows WorldModel's own sample/rollout/encode/decode
code, so the sampler, its noise and the chunked autoregression are the same lines for both
backends; only the four network calls go through onnxruntime. Tensors stay torch tensors on the
device: inputs and outputs are bound in place (IO binding), no numpy copies and, on CUDA, no
host round trip (onnxruntime runs on torch's current stream).

Execution providers: on a CUDA device, TensorRT (when onnxruntime-gpu has it and
WM_ROS_ORT_TENSORRT=1: it builds an engine per input shape, minutes at first use, cached next to
the graphs) then CUDA; CPU always last.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_ros.config import ModelConfig
from wm_ros.export.onnx import injection_names, injection_shapes, read_manifest
from wm_ros.model.world_model import VelocityParts, WorldModel, action_injections

log = logging.getLogger(__name__)


def providers_for(device: torch.device, cache_dir: Path | None = None) -> list:
    """onnxruntime execution providers (with options) for a torch device, best first.

    Raises:
        RuntimeError: a CUDA device without onnxruntime-gpu (requirements-gpu.txt).
    """
    import onnxruntime as ort

    if device.type != "cuda":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise RuntimeError(
            "backend onnxruntime on CUDA needs onnxruntime-gpu (pip install -r "
            f"requirements-gpu.txt); this onnxruntime has {available}"
        )
    stream = torch.cuda.current_stream(device).cuda_stream
    cuda = {
        "device_id": str(device.index or 0),
        # onnxruntime runs on torch's stream: work is ordered without synchronising.
        "has_user_compute_stream": "1",
        "user_compute_stream": str(stream),
    }
    chosen: list = []
    if "TensorrtExecutionProvider" in available and os.environ.get("WM_ROS_ORT_TENSORRT") == "1":
        trt = {"device_id": str(device.index or 0), "trt_engine_cache_enable": "True"}
        if cache_dir is not None:
            trt["trt_engine_cache_path"] = str(cache_dir / "trt_cache")
        chosen.append(("TensorrtExecutionProvider", trt))
    return [*chosen, ("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]


class OrtGraph:
    """One ONNX graph in an onnxruntime session, called with and returning torch tensors.

    Args:
        path: the .onnx file.
        device: where inputs and outputs live (the session's provider follows it).
        threads: intra-op threads on CPU (default: torch's thread count).
    """

    def __init__(self, path: Path, device: torch.device, threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.log_severity_level = 3  # warnings about provider placement are expected
        # Between graph calls torch works (prompts, Euler steps, cost) on the same cores: idle
        # onnxruntime threads must sleep, not spin (2-3x slower replans on 2 cores otherwise).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.device = device
        self.session = ort.InferenceSession(
            str(path), opts, providers=providers_for(device, path.parent)
        )
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(
        self, inputs: dict[str, torch.Tensor], out_shapes: list[tuple[int, ...]]
    ) -> list[torch.Tensor]:
        """inputs by name (float32, any strides) -> outputs of the given shapes (float32)."""
        dev = self.device
        index = dev.index or 0
        binding = self.session.io_binding()
        keep = []  # the contiguous inputs must outlive the run
        for name in self.input_names:
            t = inputs[name].to(dev, torch.float32).contiguous()
            keep.append(t)
            binding.bind_input(name, dev.type, index, np.float32, tuple(t.shape), t.data_ptr())
        outs = [torch.empty(s, device=dev, dtype=torch.float32) for s in out_shapes]
        for name, o in zip(self.output_names, outs, strict=True):
            binding.bind_output(name, dev.type, index, np.float32, tuple(o.shape), o.data_ptr())
        self.session.run_with_iobinding(binding)
        return outs


class _OrtAutoencoder:
    """The encode/decode half of a FrameAutoencoder, as WorldModel.encode/decode call it."""

    def __init__(self, encoder: OrtGraph, decoder: OrtGraph, cfg: ModelConfig) -> None:
        self.encoder, self.decoder, self.cfg = encoder, decoder, cfg
        # WorldModel.encode_frames reads the device from here.
        self.latent_mean = torch.zeros(cfg.latent_channels, device=encoder.device)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [0, 1] -> (B, c, h, w) normalised latents."""
        s = self.cfg.latent_size
        return self.encoder(
            {"frames": images}, [(images.shape[0], self.cfg.latent_channels, s, s)]
        )[0]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, c, h, w) -> (B, 3, S, S) in [0, 1]."""
        s = self.cfg.image_size
        return self.decoder({"latents": latents}, [(latents.shape[0], 3, s, s)])[0]


class _OrtAdapter:
    """The adapter's action encoder (the only part of it the sampler calls directly)."""

    def __init__(self, graph: OrtGraph, cfg: ModelConfig) -> None:
        self.graph, self.cfg = graph, cfg

    def encode_actions(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Prompts (N, H, C_p, S, S) or joints (N, H, J) -> inj0, inj1[, inj2] (see
        injection_shapes)."""
        return tuple(self.graph({"cond": cond}, injection_shapes(self.cfg, cond.shape[0])))


class OnnxWorldModel:
    """A WorldModel whose networks are ONNX graphs run by onnxruntime (module doc).

    Args:
        directory: an export directory (wm_ros.export.onnx.export_onnx).
        device: "cpu" or a CUDA device (needs onnxruntime-gpu).
        threads: onnxruntime intra-op threads on CPU (default: torch's).
        expect_fingerprint: refuse an export of other weights (wm_ros.export.onnx.fingerprint).
    Raises:
        ValueError: not an export directory, or one of other weights than expected.
    """

    # The same code as the torch model: the sampler, its noise, the chunk loop, the shapes.
    latent_shape = WorldModel.latent_shape
    encode = WorldModel.encode
    encode_frames = WorldModel.encode_frames
    decode = WorldModel.decode
    sample = WorldModel.sample
    rollout = WorldModel.rollout

    def __init__(
        self,
        directory: str | Path,
        device: str | torch.device = "cpu",
        *,
        threads: int | None = None,
        expect_fingerprint: str | None = None,
    ) -> None:
        directory = Path(directory)
        manifest = read_manifest(directory)
        if expect_fingerprint is not None and manifest["fingerprint"] != expect_fingerprint:
            raise ValueError(
                f"{directory} holds an export of other weights (fingerprint "
                f"{manifest['fingerprint']}, the model's is {expect_fingerprint}): export again"
            )
        self.directory, self.manifest = directory, manifest
        self.cfg = ModelConfig.from_dict(manifest["model"])
        self.device = torch.device(device)
        graphs = {
            name: OrtGraph(directory / g["file"], self.device, threads)
            for name, g in manifest["graphs"].items()
        }
        self.autoencoder = _OrtAutoencoder(graphs["encoder"], graphs["decoder"], self.cfg)
        self.adapter = _OrtAdapter(graphs["actions"], self.cfg) if "actions" in graphs else None
        self.denoiser = graphs["denoiser"]
        self._injection_names = injection_names(self.cfg)  # (once, not per denoiser call)
        log.info(
            "onnxruntime world model from %s on %s (%s)",
            directory,
            self.device,
            self.denoiser.session.get_providers()[0],
        )

    def parameters(self):
        """Yields one tensor on the model's device (how WorldModelRollout finds the device)."""
        yield self.autoencoder.latent_mean

    def eval(self) -> OnnxWorldModel:
        """Itself: the ONNX graphs were exported in eval mode."""
        return self

    def velocity_parts(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        context: torch.Tensor,
        memory: torch.Tensor,
        *,
        cond: torch.Tensor | None = None,
        use_adapter: bool = True,
        injections: tuple[torch.Tensor, ...] | None = None,
    ) -> VelocityParts:
        """The final velocity (N, H, c, h, w) only (the graph blends base and adapter)."""
        if self.adapter is not None and not use_adapter:
            raise ValueError("the ONNX denoiser includes the adapter: base-only needs torch")
        inputs: dict[str, Any] = {"x": x, "t": t, "d": d, "context": context}
        if self.cfg.memory:
            inputs["memory"] = memory
        if self.adapter is not None:
            injections = action_injections(self, cond, injections)
            inputs.update(zip(self._injection_names, injections, strict=True))
        (v,) = self.denoiser(inputs, [tuple(x.shape)])
        return VelocityParts(v, None, None, None)
