"""The action-conditioned video world model: autoencoder + action-free base + AVID adapter.

Latent chunks are (N, H, c, h, w): H future frames of c channels on an h x w grid. The base
predicts the flow velocity of the H future latents from K context and M memory latents, without
actions. The adapter (AVID, arXiv 2410.12822) sees the same inputs plus the base's prediction as
extra channels, and the action conditioning of the H future steps (skeleton prompts, arXiv
2508.13104, or raw joint vectors as an ablation) injected through zero-initialised layers; it
outputs its own velocity and a mask logit, and

    final = m * base + (1 - m) * adapter,   m = sigmoid(logit)   (mask head zero-init: m = 0.5)

Ablations by ModelConfig: use_base=False (adapter alone), conditioning="joints", use_mask=False
(final = base + adapter, adapter head zero-init so training starts from the base).

With cfg.adapter_from_base the adapter's own prediction is base + its network's zero-initialised
output, so final = base + (1 - m) * correction: training starts exactly at the base, the mask
is still 0.5 there, and m decides where the correction applies.

With cfg.residual the flow's data is each future latent's change from the last context latent
(to_flow_data), and sampling adds that latent back (from_flow_data): a model that predicts no
change reproduces the last frame. Training and every sampler go through these two functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from wm_ros.config import ModelConfig
from wm_ros.model import flow
from wm_ros.model.autoencoder import FrameAutoencoder, to_float_images
from wm_ros.model.nets import LatentUNet, TimeEmbedding, zero_module


def _stack(*chunks: torch.Tensor) -> torch.Tensor:
    """Latent chunks (N, T_i, c, h, w) -> (N, sum T_i * c, h, w) along channels."""
    return torch.cat([z.flatten(1, 2) for z in chunks if z.shape[1] > 0], dim=1)


class BaseModel(nn.Module):
    """Action-free denoiser: velocity of the H future latents given context and memory."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, frames = cfg.latent_channels, cfg.horizon + cfg.context + cfg.memory
        self.time = TimeEmbedding(cfg.emb_dim)
        self.net = LatentUNet(frames * c, cfg.horizon * c, cfg.widths, cfg.emb_dim)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        context: torch.Tensor,
        memory: torch.Tensor,
    ) -> torch.Tensor:
        """x (N, H, c, h, w), t, d (N,), context (N, K, c, h, w), memory (N, M, c, h, w)
        -> velocity (N, H, c, h, w)."""
        out = self.net(_stack(x, context, memory), self.time(t, d))  # (N, H * c, h, w)
        return out.view_as(x)


class PromptEncoder(nn.Module):
    """Skeleton prompts (N, H, C_p, S, S) -> injections at the two U-Net levels, each through a
    zero-initialised 1x1 conv (ControlNet): no effect at initialisation."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        f, w0, w1 = cfg.prompt_features, *cfg.widths
        self.per_step = nn.Sequential(  # one prompt (C_p, S, S) -> (f, S/4, S/4)
            nn.Conv2d(cfg.prompt_channels, 16, 4, stride=2, padding=1),  # S/2
            nn.SiLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1),  # S/4
            nn.SiLU(),
            nn.Conv2d(32, f, 1),
        )
        self.mix0 = nn.Sequential(nn.Conv2d(cfg.horizon * f, w0, 3, padding=1), nn.SiLU())
        self.mix1 = nn.Sequential(nn.Conv2d(w0, w1, 3, stride=2, padding=1), nn.SiLU())
        self.zero0 = zero_module(nn.Conv2d(w0, w0, 1))
        self.zero1 = zero_module(nn.Conv2d(w1, w1, 1))

        self.per_frame = cfg.frame_head > 0

    def forward(self, prompts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The two U-Net injections, and with cfg.frame_head each step's own features
        (N, H * f, h', w') for the adapter's per-frame head (FrameHead)."""
        n, h = prompts.shape[:2]
        f = self.per_step(prompts.flatten(0, 1))  # (N * H, f, h', w')
        steps = f.view(n, h * f.shape[1], *f.shape[2:])
        f0 = self.mix0(steps)  # (N, w0, h', w')
        f1 = self.mix1(f0)  # (N, w1, h'/2, w'/2)
        if self.per_frame:
            return self.zero0(f0), self.zero1(f1), steps
        return self.zero0(f0), self.zero1(f1)


class JointEncoder(nn.Module):
    """Raw joint vectors (N, H, J), rad -> spatially constant injections (ablation)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w0, w1 = cfg.widths
        self.mlp = nn.Sequential(
            nn.Linear(cfg.horizon * cfg.num_joints, cfg.emb_dim),
            nn.SiLU(),
            nn.Linear(cfg.emb_dim, cfg.emb_dim),
            nn.SiLU(),
        )
        self.zero0 = zero_module(nn.Linear(cfg.emb_dim, w0))
        self.zero1 = zero_module(nn.Linear(cfg.emb_dim, w1))
        # Each step's own features for the per-frame head, like the prompts' (spatially constant).
        self.per_step = (
            nn.Sequential(nn.Linear(cfg.num_joints, cfg.prompt_features), nn.SiLU())
            if cfg.frame_head
            else None
        )

    def forward(self, joints: torch.Tensor) -> tuple[torch.Tensor, ...]:
        e = self.mlp(joints.flatten(1))  # (N, E)
        inj = (self.zero0(e)[:, :, None, None], self.zero1(e)[:, :, None, None])
        if self.per_step is None:
            return inj
        return (*inj, self.per_step(joints).flatten(1)[:, :, None, None])  # (N, H * f, 1, 1)


class FrameHead(nn.Module):
    """The adapter's per-frame head (ModelConfig.frame_head): each future frame alone, from the
    U-Net's shared features, its noisy latent, its own step's action features (prompt or joint
    vector) and the base's velocity (with a base) -> a velocity correction for that frame, from
    a zero-initialised last layer (no effect at initialisation)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, hid, f = cfg.latent_channels, cfg.frame_head, cfg.prompt_features
        self.shared = nn.Conv2d(cfg.widths[0], cfg.horizon * hid, 1)
        c_in = hid + f + c * (2 if cfg.use_base else 1)
        self.net = nn.Sequential(
            nn.Conv2d(c_in, hid, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(hid, hid, 3, padding=1),
            nn.SiLU(),
            zero_module(nn.Conv2d(hid, c, 3, padding=1)),
        )

    def forward(
        self,
        feats: torch.Tensor,
        x: torch.Tensor,
        base_v: torch.Tensor | None,
        steps: torch.Tensor,
    ) -> torch.Tensor:
        """feats (N, w0, h, w); x, base_v (N, H, c, h, w); steps (N, H * f, h, w) (prompts)
        or (N, H * f, 1, 1) (joint vectors) -> (N, H, c, h, w)."""
        n, h_len, grid = x.shape[0], x.shape[1], x.shape[-2:]
        steps = steps.expand(-1, -1, *grid).reshape(n * h_len, -1, *grid)
        parts = [self.shared(feats).reshape(n * h_len, -1, *grid), x.flatten(0, 1)]
        if base_v is not None:
            parts.append(base_v.flatten(0, 1))
        parts.append(steps)
        return self.net(torch.cat(parts, dim=1)).view_as(x)


class Adapter(nn.Module):
    """AVID adapter: its own velocity and a mask logit, both (N, H, c, h, w)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c, frames = cfg.latent_channels, cfg.horizon + cfg.context + cfg.memory
        frames += cfg.horizon if cfg.use_base else 0  # the base's prediction as extra channels
        self.cfg = cfg
        self.time = TimeEmbedding(cfg.emb_dim)
        self.net = LatentUNet(frames * c, cfg.horizon * c, cfg.widths, cfg.emb_dim)
        self.actions = PromptEncoder(cfg) if cfg.conditioning == "prompt" else JointEncoder(cfg)
        self.mask_head = (
            zero_module(nn.Conv2d(cfg.widths[0], cfg.horizon * c, 1)) if cfg.use_mask else None
        )
        if not cfg.use_mask or cfg.adapter_from_base:  # start exactly at the base
            zero_module(self.net.out)
        self.frame_head = FrameHead(cfg) if cfg.frame_head else None

    def encode_actions(self, cond: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Prompts (N, H, C_p, S, S) or joints (N, H, J) -> the two U-Net injections (and,
        with cfg.frame_head, each step's features for the per-frame head). They do not depend
        on the flow time: a sampler computes them once."""
        return self.actions(cond)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        context: torch.Tensor,
        memory: torch.Tensor,
        *,
        base_v: torch.Tensor | None,
        injections: tuple[torch.Tensor, ...],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x, base_v (N, H, c, h, w) (base_v None without a base); injections from
        `encode_actions`. Returns (velocity, mask logit or None), each (N, H, c, h, w)."""
        inputs = (
            _stack(x, context, memory) if base_v is None else _stack(x, base_v, context, memory)
        )
        feats = self.net.features(inputs, self.time(t, d), injections[:2])  # (N, w0, h, w)
        v = self.net.out(feats).view_as(x)
        if self.frame_head is not None:
            v = v + self.frame_head(feats, x, base_v, injections[2])
        if self.cfg.adapter_from_base:
            v = base_v + v
        logit = None if self.mask_head is None else self.mask_head(feats).view_as(x)
        return v, logit


@dataclass
class VelocityParts:
    """The pieces of one model evaluation, each (N, H, c, h, w) or None."""

    final: torch.Tensor
    base: torch.Tensor | None
    adapter: torch.Tensor | None
    mask: torch.Tensor | None  # m in (0, 1): weight of the base


def action_injections(model, cond: torch.Tensor | None, injections: tuple | None) -> tuple:
    """The adapter's injections for one evaluation: as given (precomputed once per rollout
    chunk), else encoded from `cond`. Shared by WorldModel and its stand-ins (the CUDA-graph
    and onnxruntime wrappers), which take the same arguments.

    Raises:
        ValueError: neither was given.
    """
    if injections is not None:
        return injections
    if cond is None:
        raise ValueError(f"this model needs action conditioning ({model.cfg.conditioning})")
    return model.adapter.encode_actions(cond)


def to_flow_data(cfg: ModelConfig, future: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Future latents (N, H, c, h, w) -> the flow's data (N, H, c, h, w): themselves, or with
    cfg.residual their change from the last context latent (context (N, K, c, h, w)) divided
    by cfg.residual_scale."""
    if not cfg.residual:
        return future
    return (future - context[:, -1:]) / cfg.residual_scale


def from_flow_data(cfg: ModelConfig, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The inverse of to_flow_data: a sample of the flow (N, H, c, h, w) -> future latents."""
    if not cfg.residual:
        return x
    return context[:, -1:] + cfg.residual_scale * x


class WorldModel(nn.Module):
    """Autoencoder + base + adapter as ModelConfig says (see module doc)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.autoencoder = FrameAutoencoder(cfg.latent_channels, cfg.ae_width)
        self.base = BaseModel(cfg) if cfg.use_base else None
        self.adapter = Adapter(cfg) if cfg.has_adapter else None

    def latent_shape(self) -> tuple[int, int, int]:
        """(c, h, w) of one latent frame."""
        s = self.cfg.latent_size
        return (self.cfg.latent_channels, s, s)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., 3, S, S) images in [0, 1] -> (..., c, h, w) normalised latents."""
        lead = frames.shape[:-3]
        if tuple(frames.shape[-3:]) != (3, self.cfg.image_size, self.cfg.image_size):
            s = self.cfg.image_size
            raise ValueError(f"frames must be (..., 3, {s}, {s}), got {tuple(frames.shape)}")
        return self.autoencoder.encode(frames.flatten(0, -4) if lead else frames[None]).view(
            *lead, *self.latent_shape()
        )

    def encode_frames(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(..., S, S, 3) uint8 camera frames -> (..., c, h, w) normalised latents, on the
        model's device."""
        return self.encode(to_float_images(frames, self.autoencoder.latent_mean.device))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(..., c, h, w) latents -> (..., 3, S, S) images in [0, 1]."""
        lead = latents.shape[:-3]
        s = self.cfg.image_size
        return self.autoencoder.decode(latents.reshape(-1, *latents.shape[-3:])).view(
            *lead, 3, s, s
        )

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
        """One evaluation. x (N, H, c, h, w); t, d (N,); context (N, K, c, h, w); memory
        (N, M, c, h, w); cond: prompts (N, H, C_p, S, S) or joints (N, H, J), or instead its
        precomputed `injections` (adapter.encode_actions); both ignored without use_adapter."""
        base_v = self.base(x, t, d, context, memory) if self.base is not None else None
        if self.adapter is None or not use_adapter:
            if base_v is None:
                raise ValueError("this model has no base: it cannot predict without actions")
            return VelocityParts(base_v, base_v, None, None)
        injections = action_injections(self, cond, injections)
        adapter_v, logit = self.adapter(
            x, t, d, context, memory, base_v=base_v, injections=injections
        )
        if base_v is None:
            return VelocityParts(adapter_v, None, adapter_v, None)
        if logit is None:
            return VelocityParts(base_v + adapter_v, base_v, adapter_v, None)
        m = torch.sigmoid(logit)
        return VelocityParts(m * base_v + (1 - m) * adapter_v, base_v, adapter_v, m)

    def velocity(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        d: torch.Tensor,
        context: torch.Tensor,
        memory: torch.Tensor,
        *,
        cond: torch.Tensor | None = None,
        use_adapter: bool = True,
    ) -> torch.Tensor:
        """The final velocity (N, H, c, h, w) (see velocity_parts)."""
        return self.velocity_parts(
            x, t, d, context, memory, cond=cond, use_adapter=use_adapter
        ).final

    def sample(
        self,
        context: torch.Tensor,
        memory: torch.Tensor,
        cond: torch.Tensor | None = None,
        *,
        steps: int = 2,
        generator: torch.Generator | None = None,
        use_adapter: bool = True,
        shared_noise: bool = False,
        noise_scale: float = 1.0,
    ) -> torch.Tensor:
        """H future latents (N, H, c, h, w) by `steps` Euler steps from seeded noise (one draw
        for all N with shared_noise, scaled by noise_scale: see flow.sample); with cfg.residual
        the flow gives the change from the last context latent (from_flow_data)."""
        n = context.shape[0]
        shape = (n, self.cfg.horizon, *self.latent_shape())
        inj = None
        if use_adapter and self.adapter is not None:
            if cond is None:
                raise ValueError(f"this model needs action conditioning ({self.cfg.conditioning})")
            inj = self.adapter.encode_actions(cond)  # once for all sampler steps

        def v(x, t, d):
            return self.velocity_parts(
                x, t, d, context, memory, use_adapter=use_adapter, injections=inj
            ).final

        x = flow.sample(
            v,
            shape,
            steps,
            self.cfg.shortcut_levels,
            generator=generator,
            device=context.device,
            dtype=context.dtype,
            shared_noise=shared_noise,
            noise_scale=noise_scale,
        )
        return from_flow_data(self.cfg, x, context)

    def rollout(
        self,
        context: torch.Tensor,
        memory: torch.Tensor,
        cond: torch.Tensor | None = None,
        *,
        length: int | None = None,
        steps: int = 2,
        generator: torch.Generator | None = None,
        use_adapter: bool = True,
        shared_noise: bool = False,
        noise_scale: float = 1.0,
    ) -> torch.Tensor:
        """Chunked autoregression: `length` future latents (N, L, c, h, w), H at a time, each
        chunk conditioned on the model's own latest K predictions (with cfg.residual, each chunk
        is a change from its own last context latent); frames leaving the context become the
        most recent memory. cond: (N, L, ...) per future step (None for base-only).
        """
        h_len = self.cfg.horizon
        if length is None:
            if cond is None:
                raise ValueError("give length when there is no conditioning")
            length = cond.shape[1]
        if cond is not None and cond.shape[1] < length:
            raise ValueError(f"cond covers {cond.shape[1]} steps, fewer than length {length}")
        chunks, k, m = [], self.cfg.context, self.cfg.memory
        for start in range(0, length, h_len):
            c = None
            if cond is not None and use_adapter:
                c = cond[:, start : start + h_len]
                if c.shape[1] < h_len:  # last, short chunk: hold the final action
                    pad = c[:, -1:].expand(-1, h_len - c.shape[1], *c.shape[2:])
                    c = torch.cat([c, pad], dim=1)
            z = self.sample(
                context,
                memory,
                c,
                steps=steps,
                generator=generator,
                use_adapter=use_adapter,
                shared_noise=shared_noise,
                noise_scale=noise_scale,
            )  # (N, H, c, h, w)
            chunks.append(z)
            history = torch.cat([memory, context, z], dim=1)
            context = history[:, -k:]
            memory = history[:, -k - m : -k] if m else history[:, :0]
        return torch.cat(chunks, dim=1)[:, :length]
