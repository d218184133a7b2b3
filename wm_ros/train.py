"""`wm-ros train`: the world model's training stages, seeded and resumable.

Stages, in order (`all` runs them in turn): `autoencoder` (frame reconstruction, then latent
normalisation statistics), `base` (action-free flow matching + shortcut self-consistency on all
windows), `adapter` (the same objective through the full model, base frozen; the action
conditioning is the skeleton prompts of the commanded joint targets, or the raw targets),
`prior` (the learned action prior, wm_ros.planning.prior: Gaussian likelihood of the next H
targets given the context latents and the current joints), `pose` (the goal-pose estimator,
wm_ros.planning.goal_pose: its heatmaps against the recorded joints' skeleton keypoints,
projected through the prompt renderer's camera; its data may be other bags than the world
model's, `wm-ros collect --policy poses`, and config.json's training record keeps each stage's
data apart).

`init_from` starts a new directory from another model's trained parts (the autoencoder, and the
base when both have one and their flows have the same data: ModelConfig.residual), marking those
stages done: the ablations train only their adapter on the same autoencoder and base as the
full model.

Under torchrun (WORLD_SIZE > 1) each process trains on its own windows (the seed includes the
rank), gradients are averaged by DistributedDataParallel (gloo on CPU, NCCL on CUDA, one GPU per
process), and only rank 0 writes checkpoints and logs. batch_size is per process.

The output folder is a model directory (config.json + model.safetensors, loadable with
`wm_ros.model.load_model`) plus `train_state.json` / `optimizer.safetensors` (resume point,
written atomically every `checkpoint_every` steps), `train_log.jsonl` (one line per logged step:
stage, step, loss, lr, elapsed seconds; validation lines carry "val_loss") and `losses.png`.
Every step draws its randomness from (seed, stage, step), so a resumed run continues exactly as
an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from wm_ros.config import ModelConfig, PoseConfig, PriorConfig, TrainConfig
from wm_ros.data import Episode, EpisodeSet
from wm_ros.model import WorldModel, flow, load_model, save_model
from wm_ros.model.autoencoder import to_float_images
from wm_ros.model.checkpoint import read_config
from wm_ros.model.conditioning import action_conditioning, model_prompt_renderer
from wm_ros.model.world_model import to_flow_data
from wm_ros.planning.goal_pose import (
    PoseEstimator,
    has_pose_estimator,
    keypoint_loss,
    load_pose_estimator,
    save_pose_estimator,
)
from wm_ros.planning.prior import ActionPrior, gaussian_nll, has_prior, load_prior, save_prior

log = logging.getLogger(__name__)

# `decoder` fine-tunes the autoencoder's decoder alone, the encoder frozen: the latent space the
# base, adapter and prior learned stays as it is, the frames decoded from it get sharper.
STAGES = ("autoencoder", "base", "adapter", "prior", "pose", "decoder")
# whose data config.json's record names
WORLD_MODEL_STAGES = ("decoder", "adapter", "base", "autoencoder")
# `--stage all`: the world model and its prior. The pose estimator wants data of its own (wider
# joint coverage), so it is trained by name.
ALL_STAGES = ("autoencoder", "base", "adapter", "prior")
STATE_FILE = "train_state.json"
OPTIM_FILE = "optimizer.safetensors"
LOG_FILE = "train_log.jsonl"


def resolve_device(name: str) -> torch.device:
    """`auto`: cuda when available, else cpu; under torchrun, cuda means this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def init_distributed(device_name: str) -> None:
    """Join the torchrun process group (env://) when WORLD_SIZE > 1 and none is joined yet."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    cuda = device_name != "cpu" and torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")


class _StageLoss(torch.nn.Module):
    """The trained part as a module whose forward is the stage's loss, so that
    DistributedDataParallel can wrap it and average its gradients across processes."""

    def __init__(self, part: torch.nn.Module, loss_fn) -> None:
        super().__init__()
        self.part = part
        self.loss_fn = loss_fn

    def forward(self, *args) -> torch.Tensor:
        return self.loss_fn(*args)


def _lr(cfg: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up, then cosine decay to lr / 10."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def _save_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    tensors = {}
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"{i}.{key}"] = torch.as_tensor(value).detach().contiguous().cpu()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)


def _load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    tensors = load_file(str(path))
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        i, key = name.split(".", 1)
        state.setdefault(int(i), {})[key] = value
    sd["state"] = state
    opt.load_state_dict(sd)


def _seed_span(episodes: list[Episode]) -> str:
    """Episode seeds as "first..last (n)" for the record, one span per run of consecutive seeds
    ("1000..1269 (270), 2000000..2000719 (720)"; "" when unknown)."""
    seeds = sorted(e.seed for e in episodes if e.seed is not None)
    spans, start = [], 0
    for i in range(1, len(seeds) + 1):
        if i == len(seeds) or seeds[i] != seeds[i - 1] + 1:
            spans.append(f"{seeds[start]}..{seeds[i - 1]} ({i - start})")
            start = i
    return ", ".join(spans)


def _same_flow_data(a: ModelConfig, b: ModelConfig) -> bool:
    """Whether two models' flows have the same data (future latents, or the same residual)."""
    return a.residual == b.residual and (not a.residual or a.residual_scale == b.residual_scale)


class Trainer:
    """Runs the stages on a set of episodes into a model directory.

    Args:
        episodes: training episodes (a fraction `val_fraction` is held out for validation).
        out: the model directory (created; resumed from when it holds a train_state.json).
        model_cfg, train_cfg: the model to build and how to train it (ignored model_cfg when
            resuming: the directory's config wins).
        prompt_renderer: a wm_ros.prompts.PromptRenderer for prompt conditioning (default: the
            simulator's arm and camera at the model's image size).
        init_from: a model directory whose autoencoder (and base, when both models have one)
            a new run starts from; those stages count as done.
    Raises:
        ValueError: init_from's parts do not fit model_cfg.
    """

    def __init__(
        self,
        episodes: list[Episode],
        out: str | Path,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        *,
        prompt_renderer=None,
        init_from: str | Path | None = None,
    ) -> None:
        self.out, self.cfg = Path(out), train_cfg
        self.device = resolve_device(train_cfg.device)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        state_path = self.out / STATE_FILE
        self.state = {"done": {s: 0 for s in STAGES}}
        self.prior: ActionPrior | None = None
        self.pose: PoseEstimator | None = None
        # config.json's training record when resuming: its "data" and "device" are the world
        # model's (a pose stage runs on other data, maybe another device, recorded beside them).
        self._recorded: dict = {}
        if state_path.is_file():
            self.model = load_model(self.out, self.device).train()
            self.state = json.loads(state_path.read_text())
            for s in STAGES:  # a directory from before a stage existed
                self.state["done"].setdefault(s, 0)
            if has_prior(self.out):
                self.prior = load_prior(self.out, self.device).train()
            if has_pose_estimator(self.out):
                self.pose = load_pose_estimator(self.out, self.device).train()
            self._recorded = read_config(self.out)[1].get("training", {})
            log.info("resuming from %s: %s", self.out, self.state["done"])
        else:
            torch.manual_seed(train_cfg.seed)
            self.model = WorldModel(model_cfg).to(self.device)
            if init_from is not None:
                self._init_from(Path(init_from))
        mc = self.model.cfg
        n_val = round(len(episodes) * train_cfg.val_fraction)
        n_val = max(1, n_val) if len(episodes) >= 2 and train_cfg.val_fraction > 0 else 0
        train_eps, val_eps = episodes[: len(episodes) - n_val], episodes[len(episodes) - n_val :]
        self.data_info = {
            "train_episodes": len(train_eps),
            "val_episodes": len(val_eps),
            "train_frames": sum(len(e) for e in train_eps),
            "train_seeds": _seed_span(train_eps),
            "val_seeds": _seed_span(val_eps),
        }
        kw = {"memory": mc.memory, "memory_tau": train_cfg.memory_tau, "image_size": mc.image_size}
        self.data = EpisodeSet(train_eps, mc.context, mc.horizon, **kw)
        self.val = EpisodeSet(val_eps, mc.context, mc.horizon, **kw) if val_eps else None
        weighted = train_cfg.flow_foreground_weight > 0 or train_cfg.flow_puck_weight > 0
        if weighted and self.data.labels is None:
            log.warning("the flow-loss weights are ignored: the episodes have no segmentation")
        self.joint_names = episodes[0].joint_names
        self._renderer = prompt_renderer
        self._latents: dict[int, torch.Tensor] = {}
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda"
            else contextlib.nullcontext()
        )

    def _init_from(self, source: Path) -> None:
        from wm_ros.model.checkpoint import read_config

        src = load_model(source, self.device)
        src_done = (read_config(source)[1].get("training") or {}).get("done", {})
        parts = [("autoencoder", src.autoencoder, self.model.autoencoder)]
        if src.base is not None and self.model.base is not None:
            if _same_flow_data(src.cfg, self.model.cfg):
                parts.append(("base", src.base, self.model.base))
            else:  # its base learned other data: this run trains its own
                log.info("base not taken from %s: it was trained on other flow data", source)
        for stage, have, want in parts:
            try:
                want.load_state_dict(have.state_dict())
            except RuntimeError as err:
                raise ValueError(
                    f"--init-from {source}: its {stage} does not fit this model config: "
                    f"{str(err).splitlines()[0]}"
                ) from None
            # Done as far as this run is concerned; the record keeps the source's count.
            self.state["done"][stage] = max(
                getattr(self.cfg, f"{stage}_steps"), int(src_done.get(stage, 0))
            )
            log.info("%s taken from %s", stage, source)
        self.state["init_from"] = str(source)

    def prior_net(self) -> ActionPrior:
        """The action prior being trained (built on first use, seeded)."""
        if self.prior is None:
            torch.manual_seed(self.cfg.seed + 1)
            pcfg = PriorConfig.for_model(self.model.cfg, self.joint_names)
            self.prior = ActionPrior(pcfg).to(self.device)
        return self.prior

    def pose_net(self) -> PoseEstimator:
        """The goal-pose estimator being trained (built on first use, seeded): it finds the
        keypoints of the renderer's skeleton, its joints are the renderer's."""
        if self.pose is None:
            torch.manual_seed(self.cfg.seed + 2)
            renderer = self.renderer()
            mean = self.data.joints[:, self._pose_joint_order()].mean(axis=0)
            pcfg = PoseConfig(
                image_size=self.model.cfg.image_size,
                num_joints=len(renderer.joint_names),
                keypoints=tuple(renderer.skeleton.keypoint_names),
                joint_mean=tuple(float(v) for v in mean),
                joint_names=tuple(renderer.joint_names),
            )
            self.pose = PoseEstimator(pcfg).to(self.device)
        return self.pose

    def _pose_joint_order(self) -> np.ndarray:
        """Columns of the data's joints in the renderer's joint order."""
        return self.renderer().joint_order(self.joint_names)

    def stage_module(self, stage: str) -> torch.nn.Module | None:
        """The part a stage trains (None: this model has no such part)."""
        if stage == "prior":
            return self.prior_net()
        if stage == "pose":
            return self.pose_net()
        m = self.model
        if stage == "decoder":
            return m.autoencoder.decoder
        return {"autoencoder": m.autoencoder, "base": m.base, "adapter": m.adapter}[stage]

    # ------------------------------------------------------------------ conditioning

    def renderer(self):
        if self._renderer is None:
            self._renderer = model_prompt_renderer(self.model.cfg, self.device)
        return self._renderer

    def conditioning(self, actions: np.ndarray) -> torch.Tensor:
        """Future actions (B, H, J) -> prompts (B, H, C, S, S) or joints (B, H, J) tensors."""
        cfg = self.model.cfg
        return action_conditioning(
            actions,
            cfg,
            renderer=self.renderer() if cfg.conditioning == "prompt" else None,
            joint_names=self.joint_names,
            device=self.device,
        )

    # ------------------------------------------------------------------ losses

    def _frames(self, data: EpisodeSet, idx: np.ndarray) -> torch.Tensor:
        return to_float_images(data.frames[idx], self.device)  # (..., 3, S, S)

    def autoencoder_loss(self, data: EpisodeSet, rng: np.random.Generator) -> torch.Tensor:
        idx = rng.integers(0, len(data.frames), size=self.cfg.batch_size)
        x = self._frames(data, idx)  # (B, 3, S, S)
        ae = self.model.autoencoder
        z = ae.encode_raw(x)
        err = (ae.decode_raw(z) - x).pow(2).mean(dim=1)  # (B, S, S)
        if data.labels is not None and self.cfg.foreground_weight > 0:
            fg = torch.as_tensor(data.labels[idx] > 0, device=self.device).float()
            err = err * (1.0 + self.cfg.foreground_weight * fg)
        return err.mean() + self.cfg.latent_l2 * z.pow(2).mean()

    @torch.no_grad()
    def latents(self, data: EpisodeSet) -> torch.Tensor:
        """(F, c, h, w) normalised latents of every frame of `data` (cached per stage)."""
        key = id(data)
        if key not in self._latents:
            self.model.autoencoder.eval()
            chunks = [
                self.model.encode(self._frames(data, np.arange(i, min(i + 256, len(data.frames)))))
                for i in range(0, len(data.frames), 256)
            ]
            self._latents[key] = torch.cat(chunks)
        return self._latents[key]

    def flow_loss(self, data: EpisodeSet, stage: str, rng, gen) -> torch.Tensor:
        mc, b = self.model.cfg, self.cfg.batch_size
        idx = data.window_indices(b, rng)  # (B, M + K + H)
        z = self.latents(data)[torch.as_tensor(idx, device=self.device)]  # (B, M+K+H, c, h, w)
        mem, ctx, fut = z[:, : mc.memory], z[:, mc.memory : -mc.horizon], z[:, -mc.horizon :]
        use_adapter = stage == "adapter"
        cond = self.conditioning(data.future_actions(idx)) if use_adapter else None
        z1 = to_flow_data(mc, fut, ctx)  # (B, H, c, h, w): fut, or its change (residual)
        noise = torch.randn(z1.shape, generator=gen, device=self.device)
        ns = round(b * self.cfg.shortcut_fraction) if mc.shortcut_levels > 0 else 0

        def velocity(sl: slice):
            c = None if cond is None else cond[sl]
            return lambda x, t, d: self.model.velocity(
                x, t, d, ctx[sl], mem[sl], cond=c, use_adapter=use_adapter
            )

        x, t, d, target = flow.flow_matching_batch(noise[ns:], z1[ns:], gen)
        if ns:
            xs, ts, ds, tgt = flow.shortcut_batch(
                velocity(slice(0, ns)), noise[:ns], z1[:ns], mc.shortcut_levels, gen
            )
            x, t, d = torch.cat([xs, x]), torch.cat([ts, t]), torch.cat([ds, d])
            target = torch.cat([tgt, target])
        err = (velocity(slice(None))(x, t, d) - target).pow(2)  # (B, H, c, h, w)
        weight = self.flow_loss_weight(data, idx, err.shape[-2:]) if use_adapter else None
        return (err if weight is None else err * weight).mean()

    def flow_loss_weight(
        self, data: EpisodeSet, idx: np.ndarray, grid: tuple[int, int]
    ) -> torch.Tensor | None:
        """(B, H, 1, h, w) adapter flow-loss weights of windows `idx` (B, M + K + H): 1, plus
        flow_foreground_weight where a future frame or the last context frame has the arm or
        the puck in the cell, plus flow_puck_weight where it has the puck (TrainConfig); None
        when both are off or the data has no labels."""
        w_fg, w_puck = self.cfg.flow_foreground_weight, self.cfg.flow_puck_weight
        if (w_fg <= 0 and w_puck <= 0) or data.labels is None:
            return None
        h = self.model.cfg.horizon
        labels = torch.as_tensor(data.labels[idx[:, -h - 1 :]], device=self.device)

        def cells(mask: torch.Tensor) -> torch.Tensor:  # (B, 1 + H, S, S) -> (B, H, h, w)
            either = (mask[:, 1:] | mask[:, :1]).float()  # future or last context
            return torch.nn.functional.adaptive_max_pool2d(either, grid)

        weight = torch.ones(1, device=self.device)
        if w_fg > 0:
            weight = weight + w_fg * cells(labels > 0)
        if w_puck > 0:
            from wm_ros.sim.scene import PUCK_LABEL  # (mujoco: imported only when used)

            weight = weight + w_puck * cells(labels == PUCK_LABEL)
        return weight.unsqueeze(2)

    def prior_loss(self, data: EpisodeSet, rng: np.random.Generator) -> torch.Tensor:
        mc = self.model.cfg
        idx = data.window_indices(self.cfg.batch_size, rng)  # (B, M + K + H)
        ctx_idx = idx[:, mc.memory : mc.memory + mc.context]
        z = self.latents(data)[torch.as_tensor(ctx_idx, device=self.device)]  # (B, K, c, h, w)
        joints = torch.as_tensor(data.joints[ctx_idx[:, -1]], device=self.device)  # (B, J)
        target = torch.as_tensor(data.future_actions(idx), device=self.device)  # (B, H, J)
        mean, std = self.prior_net()(z, joints)
        return gaussian_nll(mean.float(), std.float(), target)

    def pose_loss(self, data: EpisodeSet, rng: np.random.Generator) -> torch.Tensor:
        idx = rng.integers(0, len(data.frames), size=self.cfg.pose_batch_size)
        frames = torch.as_tensor(data.frames[idx], device=self.device)  # (B, S, S, 3) uint8
        logits = self.pose_net().heatmap_logits(frames).float()
        # Sub-pixel targets and the soft-argmax in float32, outside bf16 autocast.
        with torch.autocast(self.device.type, enabled=False):
            with torch.no_grad():  # the recorded joints' keypoints, projected: the targets
                q = data.joints[idx][:, self._pose_joint_order()]
                target = self.renderer().project(q)[0]
            return keypoint_loss(logits, target, self.model.cfg.image_size)[0]

    def loss(self, stage: str, data: EpisodeSet, seed_parts: tuple[int, ...]) -> torch.Tensor:
        # Each process of a distributed run draws its own windows and noise.
        parts = (*seed_parts, self.rank) if self.world > 1 else seed_parts
        rng = np.random.default_rng([self.cfg.seed, *parts])
        gen = torch.Generator(self.device).manual_seed(int(rng.integers(2**62)))
        with self.autocast:
            if stage in ("autoencoder", "decoder"):  # (the decoder's: the encoder is frozen)
                return self.autoencoder_loss(data, rng)
            if stage == "prior":
                return self.prior_loss(data, rng)
            if stage == "pose":
                return self.pose_loss(data, rng)
            return self.flow_loss(data, stage, rng, gen)

    # ------------------------------------------------------------------ loop

    def _log(self, record: dict) -> None:
        with (self.out / LOG_FILE).open("a") as f:
            f.write(json.dumps(record) + "\n")

    def _device_name(self) -> str:
        from wm_ros.eval.timing import cpu_model

        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"

    def _world_model_record(self, key: str) -> object:
        """The world model's `key` ("data", "device") record: its latest stage's, else what
        config.json had, else the current stage's."""
        by_stage = self.state[key]
        latest = next((by_stage[s] for s in WORLD_MODEL_STAGES if s in by_stage), None)
        return latest or self._recorded.get(key) or by_stage[self.state["stage"]]

    def checkpoint(self, opt: torch.optim.Optimizer) -> None:
        training = {
            "done": self.state["done"],
            "data": self._world_model_record("data"),
            "data_by_stage": self.state["data"],
            "device": self._world_model_record("device"),
            "device_by_stage": self.state["device"],
            "processes": self.world,
            "batch_size_per_process": self.cfg.batch_size,
        }
        save_model(self.model, self.out, extra={"training": training})
        if self.prior is not None:
            save_prior(self.prior, self.out)
        if self.pose is not None:
            save_pose_estimator(self.pose, self.out)
        _save_optimizer(opt, self.out / OPTIM_FILE)
        tmp = self.out / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=2))
        tmp.replace(self.out / STATE_FILE)

    def check_stage(self, stage: str) -> None:
        """Raises ValueError when `stage` cannot run on this directory yet."""
        if stage == "decoder" and self.state["done"]["autoencoder"] == 0:
            raise ValueError("the decoder stage fine-tunes a trained autoencoder: train it first")

    def run_stage(self, stage: str, steps: int | None = None) -> float:
        """Train one stage up to `steps` (default from TrainConfig); returns the last loss."""
        total = getattr(self.cfg, f"{stage}_steps") if steps is None else steps
        self.check_stage(stage)
        part = self.stage_module(stage)
        if part is None:
            log.info("stage %s: this model has no such part; skipped", stage)
            return float("nan")
        params = list(part.parameters())
        lead = self.rank == 0  # the one process that writes
        if lead:
            self.out.mkdir(parents=True, exist_ok=True)
        self.model.train()
        for p in self.model.parameters():
            p.requires_grad_(False)
        for extra in (self.prior, self.pose):
            if extra is not None:
                extra.train()
                for p in extra.parameters():
                    p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        loss_module: torch.nn.Module = _StageLoss(part, self.loss)
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            loss_module = DistributedDataParallel(loss_module, device_ids=ids)
        opt = torch.optim.AdamW(params, lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        start = self.state["done"][stage]
        if start > 0 and (self.out / OPTIM_FILE).is_file() and self.state.get("stage") == stage:
            _load_optimizer(opt, self.out / OPTIM_FILE)
        self.state["stage"] = stage
        self.state.setdefault("data", {})[stage] = self.data_info
        self.state.setdefault("device", {})[stage] = self._device_name()
        self._latents.clear()
        sid = STAGES.index(stage)
        t0, loss_value = time.perf_counter(), float("nan")
        bar = tqdm(
            range(start, total),
            desc=stage,
            unit="step",
            initial=start,
            total=total,
            disable=not lead,
        )
        for step in bar:
            for g in opt.param_groups:
                g["lr"] = _lr(self.cfg, step, total)
            loss = loss_module(stage, self.data, (sid, step))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            opt.step()
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"stage {stage}: loss became {loss_value} at step {step}")
            self.state["done"][stage] = step + 1
            if lead and ((step + 1) % self.cfg.log_every == 0 or step + 1 == total):
                bar.set_postfix(loss=f"{loss_value:.4f}")
                self._log(
                    {
                        "stage": stage,
                        "step": step + 1,
                        "loss": loss_value,
                        "lr": opt.param_groups[0]["lr"],
                        "elapsed_s": time.perf_counter() - t0,
                    }
                )
            if (step + 1) % self.cfg.checkpoint_every == 0 or step + 1 == total:
                if stage == "autoencoder" and step + 1 == total:
                    self._set_latent_stats()  # every process: same weights, same data
                if lead:
                    self._validate(stage, step + 1)
                    self.checkpoint(opt)
        return loss_value

    @torch.no_grad()
    def _set_latent_stats(self) -> None:
        self.model.autoencoder.eval()
        idx = np.arange(len(self.data.frames))
        raw = torch.cat(
            [
                self.model.autoencoder.encode_raw(self._frames(self.data, idx[i : i + 256]))
                for i in range(0, len(idx), 256)
            ]
        )
        self.model.autoencoder.set_latent_stats(raw)
        self.model.autoencoder.train()

    @torch.no_grad()
    def _validate(self, stage: str, step: int) -> None:
        if self.val is None:
            return
        losses = [float(self.loss(stage, self.val, (99, i))) for i in range(4)]
        self._log({"stage": stage, "step": step, "val_loss": float(np.mean(losses))})


def plot_losses(log_path: Path, png_path: Path, size: tuple[int, int] = (900, 300)) -> None:
    """One panel per stage: training loss (line) and validation loss (dots) against step."""
    from wm_ros.eval.plots import plot_panels

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    panels = []
    for stage in STAGES:
        rows = [r for r in records if r["stage"] == stage]
        if rows:
            panels.append(loss_panel(stage, rows))
    if panels:
        plot_panels(panels, png_path, size)


def loss_panel(stage: str, rows: list[dict]):
    """The `stage` panel of losses.png from its log rows: log y where every loss is positive;
    linear where one is not (the prior's loss is a negative log-likelihood, which a log axis
    would drop)."""
    from wm_ros.eval.plots import Panel, Series

    series = [
        Series(label, [(r["step"], r[key]) for r in rows if key in r], kind, colour)
        for key, label, kind, colour in (
            ("loss", "train", "line", (31, 119, 180)),
            ("val_loss", "validation", "dots", (214, 39, 40)),
        )
    ]
    positive = all(y > 0 for s in series for _, y in s.points)
    return Panel(stage, series, xlabel="step", ylabel="loss", log_y=positive)


def train(
    episodes: list[Episode],
    out: str | Path,
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    *,
    stages: tuple[str, ...] = ALL_STAGES,
    prompt_renderer=None,
    init_from: str | Path | None = None,
) -> WorldModel:
    """Run `stages` in order (each resumes where the directory's train_state.json left it)."""
    trainer = Trainer(
        episodes,
        out,
        model_cfg,
        train_cfg,
        prompt_renderer=prompt_renderer,
        init_from=init_from,
    )
    for stage in stages:
        trainer.run_stage(stage)
    if trainer.rank == 0 and (trainer.out / LOG_FILE).is_file():
        plot_losses(trainer.out / LOG_FILE, trainer.out / "losses.png")
    return trainer.model.eval()


def model_config_from_yaml(path: str | Path, ablation: str | None = None) -> ModelConfig:
    """The YAML's `model` section, with `ablations[ablation]` applied on top when given."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    if "model" not in data:
        raise ValueError(f"{path}: no 'model' section (has {sorted(data)})")
    values = dict(data["model"])
    if ablation is not None:
        known = data.get("ablations") or {}
        if ablation not in known:
            raise ValueError(f"{path}: no ablation {ablation!r} (has {sorted(known)})")
        values.update(known[ablation])
    return ModelConfig.from_dict(values)


def _cmd_train(args: argparse.Namespace) -> int:
    from wm_ros.model import CheckpointError
    from wm_ros.ros.episodes import EpisodeBagError, load_episodes

    if args.ablation and not args.config:
        raise SystemExit("--ablation needs --config (the YAML that lists the ablations)")
    model_cfg = model_config_from_yaml(args.config, args.ablation) if args.config else ModelConfig()
    train_cfg = TrainConfig.from_yaml(args.config, "train") if args.config else TrainConfig()
    overrides = {
        k: v
        for k, v in {
            "seed": args.seed,
            "device": args.device,
            "batch_size": args.batch_size,
        }.items()
        if v is not None
    }
    if args.steps is not None:
        overrides.update({f"{s}_steps": args.steps for s in STAGES})
    train_cfg = train_cfg.replace(**overrides)
    init_distributed(train_cfg.device)
    stages = ALL_STAGES if args.stage == "all" else (args.stage,)
    rank = dist.get_rank() if dist.is_initialized() else 0
    try:
        # Data and model-directory problems are the user's to fix: one clear line, exit 2.
        try:
            episodes = [ep for folder in args.data for ep in load_episodes(folder)]
            trainer = Trainer(episodes, args.out, model_cfg, train_cfg, init_from=args.init_from)
            for stage in stages:
                trainer.check_stage(stage)
        except (EpisodeBagError, CheckpointError, ValueError) as err:
            log.error("wm-ros train: %s", err)
            return 2
        for stage in stages:
            trainer.run_stage(stage)
        if rank == 0 and (trainer.out / LOG_FILE).is_file():
            plot_losses(trainer.out / LOG_FILE, trainer.out / "losses.png")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        log.info("trained %s on %d episodes -> %s", ", ".join(stages), len(episodes), args.out)
    return 0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros train` (the handler is set as `func`)."""
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="folders of episode bags (wm-ros collect), in order; the last ones are held out for "
        "validation (train.val_fraction)",
    )
    parser.add_argument("--out", required=True, help="model directory (resumed if it has state)")
    parser.add_argument(
        "--stage",
        choices=[*STAGES, "all"],
        default="all",
        help="all: the world model and its prior (the pose estimator is trained by name, on its "
        "own data: --data EXPLORATION POSES)",
    )
    parser.add_argument("--config", type=Path, help="YAML with 'model' and 'train' sections")
    parser.add_argument("--seed", type=int, help="override train.seed")
    parser.add_argument("--device", help="override train.device (auto, cpu, cuda)")
    parser.add_argument("--batch-size", type=int, help="override train.batch_size")
    parser.add_argument("--steps", type=int, help="override the steps of every stage")
    parser.add_argument(
        "--ablation", help="apply this entry of the config's 'ablations' to its model section"
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        help="start a new run from this model directory's autoencoder (and base)",
    )
    parser.set_defaults(func=_cmd_train)
