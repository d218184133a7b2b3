"""The GPU fast path of the world model for planning: bf16, CUDA graphs, pinned camera frames.

    fast = FastWorldModel(model, precision="bf16", cuda_graphs=True)
    rollout = WorldModelRollout(fast, renderer, joint_names)        # as with the model itself

FastWorldModel offers what the planner uses of a WorldModel and borrows WorldModel's own
sample/rollout/encode/decode code; what changes is how one denoiser evaluation runs:

- precision "bf16": the denoiser and the action encoder run under bf16 autocast (convs and
  matmuls in bf16, norms in fp32); velocities come back fp32, so the Euler steps, the noise and
  the cost stay fp32. The autoencoder stays fp32 (one call per replan).
- cuda_graphs: each denoiser evaluation of a given input shape (N, H, ...) is captured once in a
  CUDA graph and replayed: one launch instead of ~150 kernels. Inputs are copied into the
  graph's static buffers on the device; nothing goes through the host.
- camera frames go to the GPU from a pinned host buffer (an async copy).

On CPU, cuda_graphs and pinning do nothing and bf16 autocast still applies (usually slower
there: it is for checking accuracy, not speed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from wm_ros.model.autoencoder import to_float_images
from wm_ros.model.world_model import VelocityParts, WorldModel, action_injections

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


class _GraphedCall:
    """fn(*tensors) -> tensor, captured in a CUDA graph per input signature and replayed."""

    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        self.fn = fn
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], torch.Tensor]] = {}

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        key = tuple((tuple(a.shape), a.dtype) for a in args)
        if key not in self.graphs:
            self.graphs[key] = self._capture(args)
        graph, static, out = self.graphs[key]
        for buf, a in zip(static, args, strict=True):
            buf.copy_(a)  # device to device
        graph.replay()
        return out.clone()  # the next replay overwrites `out`

    @torch.no_grad()
    def _capture(self, args):
        static = [a.detach().clone().contiguous() for a in args]
        side = torch.cuda.Stream(static[0].device)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up (cudnn autotuning, allocator) off the graph
            for _ in range(2):
                self.fn(*static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.fn(*static)
        return graph, static, out


class _FastAdapter:
    def __init__(self, owner: FastWorldModel) -> None:
        self.owner = owner

    def encode_actions(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with self.owner.autocast():
            return self.owner.model.adapter.encode_actions(cond)


class FastWorldModel:
    """A WorldModel run for speed (module doc).

    Args:
        model: the world model (eval mode, on its device).
        precision: "fp32" or "bf16" (the denoiser's compute precision).
        cuda_graphs: capture denoiser evaluations in CUDA graphs (CUDA devices only).
    Raises:
        ValueError: an unknown precision.
    """

    latent_shape = WorldModel.latent_shape
    encode = WorldModel.encode
    decode = WorldModel.decode
    sample = WorldModel.sample
    rollout = WorldModel.rollout

    def __init__(self, model: WorldModel, precision: str = "bf16", cuda_graphs: bool = True):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.model, self.cfg = model, model.cfg
        self.autoencoder = model.autoencoder
        self.adapter = _FastAdapter(self) if model.adapter is not None else None
        self.device = next(model.parameters()).device
        self.dtype = PRECISIONS[precision]
        self.graphed = cuda_graphs and self.device.type == "cuda"
        self._velocity = _GraphedCall(self._eager_velocity) if self.graphed else None
        self._pinned: dict[tuple[int, ...], tuple[torch.Tensor, torch.cuda.Event]] = {}

    def parameters(self):
        """The wrapped model's parameters (how WorldModelRollout finds the device)."""
        return self.model.parameters()

    def eval(self) -> FastWorldModel:
        """Itself: the wrapped model is used in the mode it was given in (eval)."""
        return self

    def autocast(self):
        """The autocast context of the denoiser (disabled in fp32)."""
        # No weight-cast cache under CUDA graphs: a cache filled during capture would be freed
        # behind the graph's back (torch's CUDA graph notes).
        return torch.autocast(
            self.device.type,
            dtype=self.dtype,
            enabled=self.dtype != torch.float32,
            cache_enabled=not self.graphed,
        )

    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(..., S, S, 3) uint8 frames -> (..., c, h, w) latents; on CUDA the frames travel
        from a pinned host buffer by an async copy (one buffer per shape, refilled only once
        its previous copy is done)."""
        if self.device.type == "cuda" and isinstance(frames, np.ndarray):
            shape = tuple(frames.shape)
            if shape not in self._pinned:
                pinned = torch.empty(shape, dtype=torch.uint8).pin_memory()
                self._pinned[shape] = (pinned, torch.cuda.Event())
            buf, copied = self._pinned[shape]
            copied.synchronize()  # the previous copy out of this buffer (long done, normally)
            buf.numpy()[...] = frames
            frames = buf.to(self.device, non_blocking=True)
            copied.record()
        return self.encode(to_float_images(frames, self.device))

    def _eager_velocity(self, *args: torch.Tensor) -> torch.Tensor:
        """x, t, d, context, memory[, injections...] -> the final velocity, fp32."""
        x, t, d, context, memory, *inj = args
        injections = tuple(inj) if inj else None
        with self.autocast():
            v = self.model.velocity_parts(x, t, d, context, memory, injections=injections)
        return v.final.float()

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
        """The final velocity (N, H, c, h, w), fp32; the parts are not kept."""
        if self.adapter is not None and use_adapter:
            injections = action_injections(self, cond, injections)
        if not use_adapter:
            with self.autocast():
                v = self.model.velocity_parts(x, t, d, context, memory, use_adapter=False)
            return VelocityParts(v.final.float(), None, None, None)
        args = [x, t, d, context, memory, *(injections or ())]
        call = self._velocity if self._velocity is not None else self._eager_velocity
        return VelocityParts(call(*args), None, None, None)
