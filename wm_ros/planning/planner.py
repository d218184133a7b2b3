"""One replan: CEM over joint-delta knots, every candidate imagined by a rollout model at once.

    rollout = WorldModelRollout(model, renderer, joint_names, sampler_steps=2)
    rollout.set_context(frames)                      # (M + K, S, S, 3) uint8, once per replan
    planner = Planner(PlannerConfig(), actions, prior=prior)
    result = planner.plan(q0, rollout, rollout.encode_goal(goal_image))
    result.targets                                   # (H, J) joint targets, limits verified

The rollout is any callable (N, H, J) targets -> (N, H, c, h, w) latents: the learned world
model here, the simulator itself for the oracle planner (wm_ros.sim.oracle); the rest of the
planning code is shared. Consecutive calls warm-start from the previous plan, one control step
later; a fresh search (or use_prior) starts from the learned action prior when there is one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from wm_ros.config import CostConfig, PlannerConfig
from wm_ros.planning.actions import JointDeltaActions
from wm_ros.planning.cem import cem
from wm_ros.planning.costs import object_goal_distance, plan_cost, robot_cells
from wm_ros.planning.prior import ActionPrior

Rollout = Callable[[torch.Tensor], torch.Tensor]


class PlanError(RuntimeError):
    """A plan that must not be published (it violates a limit); the message says which."""


@dataclass
class PlanResult:
    """targets (H, J) joint targets of steps 1..H (rad), times (H,) s after the observation;
    cost of the best candidate; latents (H, c, h, w) it imagined (None unless plan() was
    asked to imagine); history: best cost per CEM iteration; timing_ms per phase."""

    targets: np.ndarray
    times: np.ndarray
    cost: float
    latents: torch.Tensor | None
    history: list[float]
    timing_ms: dict[str, float] = field(default_factory=dict)


class PromptDrawer:
    """Candidate targets (N, H, J) -> (N, H, C, h, w) skeleton prompts, drawn into one reused
    buffer per batch shape (a fresh buffer costs more than the drawing: prompt_speed.py).

    The last call is remembered: the same targets tensor asked again (the cost's robot mask
    right after the model's rollout, within one CEM iteration) gets the same prompts without a
    second drawing. A later call reuses the buffer, so read the result before calling again.

    Args:
        renderer: a PromptRenderer at the model's image size.
        joint_names: the column order of the targets.
    """

    def __init__(self, renderer, joint_names: Sequence[str]) -> None:
        self.renderer = renderer
        self._order = torch.as_tensor(renderer.joint_order(joint_names), device=renderer.device)
        self._buffers: dict[tuple[int, ...], torch.Tensor] = {}
        self._last: tuple[torch.Tensor, int, torch.Tensor] | None = None

    @torch.no_grad()
    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        last = self._last
        if last is not None and last[0] is targets and last[1] == targets._version:
            return last[2]
        shape = (*targets.shape[:2], *self.renderer.image_shape)
        if shape not in self._buffers:
            self._buffers[shape] = torch.empty(
                shape, device=targets.device, dtype=self.renderer.dtype
            )
        prompts = self.renderer.render(targets[..., self._order], out=self._buffers[shape])
        self._last = (targets, targets._version, prompts)
        return prompts


class WorldModelRollout:
    """Candidate targets -> imagined latents through the world model, from one encoded context.

    Args:
        model: a wm_ros.model.WorldModel (eval mode, on its device).
        renderer: PromptRenderer for prompt conditioning (None for "joints" conditioning).
        joint_names: the column order of the targets the planner passes.
        sampler_steps: flow steps per rollout.
        seed: seeds the sampling noise (the same noise for every candidate: a fair comparison).
        noise_scale: factor on that noise (flow.sample; 0: a deterministic prediction).
    """

    def __init__(
        self,
        model,
        renderer,
        joint_names: Sequence[str],
        *,
        sampler_steps: int = 2,
        seed: int = 0,
        noise_scale: float = 1.0,
    ) -> None:
        self.model, self.renderer = model, renderer
        self.noise_scale = noise_scale
        self.device = next(model.parameters()).device
        self.sampler_steps = sampler_steps
        self.seed = seed
        self.prompts = None if renderer is None else PromptDrawer(renderer, joint_names)
        self._ctx: torch.Tensor | None = None
        self._mem: torch.Tensor | None = None

    @torch.no_grad()
    def set_context(self, frames: np.ndarray) -> None:
        """The latest M + K camera frames (oldest first), (M + K, S, S, 3) uint8."""
        cfg = self.model.cfg
        need = cfg.memory + cfg.context
        if len(frames) != need:
            raise ValueError(f"the model needs {need} frames (memory + context), got {len(frames)}")
        z = self.model.encode_frames(frames)  # (M + K, c, h, w)
        self._mem, self._ctx = z[: cfg.memory], z[cfg.memory :]

    @property
    def context(self) -> torch.Tensor | None:
        """(K, c, h, w) latents of the context frames set last (what the prior reads)."""
        return self._ctx

    @property
    def memory(self) -> torch.Tensor | None:
        """(M, c, h, w) latents of the memory frames set last."""
        return self._mem

    @torch.no_grad()
    def encode_goal(self, image: np.ndarray) -> torch.Tensor:
        """(S, S, 3) uint8 goal image -> (c, h, w) latent."""
        return self.model.encode_frames(np.asarray(image)[None])[0]

    @torch.no_grad()
    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        if self._ctx is None or self._mem is None:
            raise RuntimeError("set_context first")
        n, cfg = targets.shape[0], self.model.cfg
        cond = self.prompts(targets) if cfg.conditioning == "prompt" else targets
        gen = torch.Generator(self.device).manual_seed(self.seed)
        ctx = self._ctx[None].expand(n, *self._ctx.shape)
        mem = self._mem[None].expand(n, *self._mem.shape)
        return self.model.rollout(
            ctx,
            mem,
            cond,
            length=targets.shape[1],
            steps=self.sampler_steps,
            generator=gen,
            shared_noise=True,
            noise_scale=self.noise_scale,
        )


class RobotMasker:
    """Candidate targets (N, H, J) -> (N, H, h, w) bool: the latent cells the robot's body
    covers at each step (costs.robot_cells). The cost's robot_mask_px uses it for imagined
    steps and for the goal.

    Args:
        prompts: the PromptDrawer that draws the skeletons; the world model's own one when it
            is prompt-conditioned, so the candidates are not drawn twice.
        dilate_px: pixels around the skeleton counted as the robot's body.
        cells: (h, w) of the model's latent grid.
    """

    def __init__(self, prompts: PromptDrawer, dilate_px: float, cells) -> None:
        self.prompts, self.dilate_px, self.cells = prompts, dilate_px, tuple(cells)

    @torch.no_grad()
    def __call__(self, targets: torch.Tensor) -> torch.Tensor:
        return robot_cells(self.prompts(targets), self.dilate_px, self.cells)


class ObjectGoal:
    """Imagined latents (N, H', c, h, w) -> (N,) squared distance, px^2, between the object
    in each candidate's decoded final frame and in the goal image (costs.object_goal_distance):
    the cost's object_goal term.

    Args:
        decode: the world model's decoder, latents (N, c, h, w) -> (N, 3, S, S) in [0, 1].
        goal_px: (2,) the object's centroid (row, col) in the goal image, px.
        cfg: the cost settings (object colour, tolerance, blob size).
    """

    def __init__(self, decode: Callable, goal_px: torch.Tensor, cfg: CostConfig) -> None:
        self.decode, self.goal_px, self.cfg = decode, goal_px, cfg

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> torch.Tensor:
        images = self.decode(latents[:, -1]).clamp(0, 1)
        return object_goal_distance(images, self.goal_px, self.cfg)


class Planner:
    """CEM replanning with warm starts (module doc).

    Args:
        cfg: the planner settings.
        actions: the action parameterisation and limits (its horizon and dt must match cfg).
        prior: the learned action prior, or None (plan() takes its context latents).
    """

    def __init__(
        self,
        cfg: PlannerConfig,
        actions: JointDeltaActions,
        prior: ActionPrior | None = None,
    ) -> None:
        if actions.horizon != cfg.horizon or abs(actions.dt - cfg.dt) > 1e-9:
            raise ValueError("the action parameterisation's horizon and dt must match the config")
        self.cfg, self.actions, self.prior = cfg, actions, prior
        self.device = actions.lower.device
        self._generator = torch.Generator(self.device).manual_seed(cfg.seed)
        self._previous: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def reset(self) -> None:
        """Forget the previous plan and restart the sampling stream (a new episode or goal):
        a replay of an episode plans exactly as it did, whatever ran before it in the process."""
        self._previous = None
        self._generator.manual_seed(self.cfg.seed)

    @torch.no_grad()
    def initial_distribution(
        self, q0: torch.Tensor, context: torch.Tensor | None, elapsed_steps: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(P, D) mean and std: warm start (the previous plan `elapsed_steps` control steps
        on), else the prior, else zero offsets at init_std."""
        cfg, a = self.cfg, self.actions
        if self._previous is not None and cfg.cem.warm_start and elapsed_steps < cfg.horizon:
            mean, std, q_then = self._previous
            return a.warm_start(mean, std, q_then, q0, cfg.cem.init_std, steps=elapsed_steps)
        if cfg.use_prior and self.prior is not None and context is not None:
            pm, ps = self.prior(context[None], q0[None])  # (1, H, J) each
            at = a.knot_steps - 1
            mean = a.offsets_of(pm[0, at], q0)
            # The prior's spread describes the data it learnt from (exploration, not this goal):
            # it may widen the search, never narrow it below a fresh one.
            spread = a.spread_of(ps[0, at])
            std = torch.full_like(mean, cfg.cem.init_std)
            if spread is not None:
                std = (spread * cfg.prior_std_scale).clamp_min(cfg.cem.init_std)
            return a.project(mean[None], q0)[0], std
        shape = a.shape
        return (
            torch.zeros(shape, device=self.device),
            torch.full(shape, cfg.cem.init_std, device=self.device),
        )

    def _cost(
        self,
        q: torch.Tensor,
        *,
        rollout: Rollout,
        goal_latent: torch.Tensor | None,
        goal_joints: torch.Tensor | None,
        masker: Callable[[torch.Tensor], torch.Tensor] | None,
        objects: ObjectGoal | None = None,
        timing: dict[str, float],
    ):
        """The CEM cost of one replan from q: (params (N, P, D), clipped_by (N,)) -> (N,);
        the rollout's time adds up in timing["rollout"] (ms, which must exist)."""
        a, cfg = self.actions, self.cfg
        goal_masked = None
        if goal_joints is not None:
            goal_joints = goal_joints.to(q)  # once, not per CEM iteration
            if masker is not None:
                goal_masked = masker(goal_joints[None, None])[0, 0]  # (h, w)

        def cost(params: torch.Tensor, clipped_by: torch.Tensor) -> torch.Tensor:
            t = time.perf_counter()
            targets = a.to_targets(params, q)  # (N, H, J)
            latents = rollout(targets)
            timing["rollout"] += (time.perf_counter() - t) * 1e3
            masked = None
            if masker is not None:
                masked = masker(targets)  # (N, H, h, w)
                if goal_masked is not None:
                    masked = masked | goal_masked
            return plan_cost(
                cfg.cost,
                latents=latents,
                goal_latent=goal_latent,
                targets=targets,
                q0=q,
                clipped_by=clipped_by,
                goal_joints=goal_joints,
                masked=masked,
                object_d2=None if objects is None else objects(latents),
            )

        return cost

    @torch.no_grad()
    def score(
        self,
        params: torch.Tensor,
        q0: np.ndarray | torch.Tensor,
        rollout: Rollout,
        goal_latent: torch.Tensor | None,
        *,
        goal_joints: torch.Tensor | None = None,
        masker: Callable[[torch.Tensor], torch.Tensor] | None = None,
        objects: ObjectGoal | None = None,
    ) -> torch.Tensor:
        """The costs (N,) plan() would give candidates params (N, P, D) from q0 (projected
        into the limits first, as CEM's samples are): to compare scorers on the same
        candidates (benchmarks/plan_rank_probe.py)."""
        q = torch.as_tensor(q0, dtype=torch.float32, device=self.device)
        params = params.to(q)
        feasible = self.actions.project(params, q)
        clipped_by = (params - feasible).pow(2).flatten(1).sum(dim=1)
        cost = self._cost(
            q, rollout=rollout, goal_latent=goal_latent, goal_joints=goal_joints, masker=masker,
            objects=objects, timing={"rollout": 0.0},
        )  # fmt: skip
        return cost(feasible, clipped_by)

    @torch.no_grad()
    def plan(
        self,
        q0: np.ndarray | torch.Tensor,
        rollout: Rollout,
        goal_latent: torch.Tensor | None,
        *,
        context: torch.Tensor | None = None,
        goal_joints: torch.Tensor | None = None,
        elapsed_steps: int = 1,
        imagine: bool = True,
        masker: Callable[[torch.Tensor], torch.Tensor] | None = None,
        objects: ObjectGoal | None = None,
    ) -> PlanResult:
        """One replan from the current joints q0 (J,) toward the goal; `elapsed_steps`:
        control steps since the previous replan (its plan is shifted that far to warm start);
        `imagine`: roll the best plan out once more for its imagined latents (display only).
        masker: targets (N, H, J) -> (N, H, h, w) robot cells (RobotMasker), used when the
        cost's robot_mask_px is on; with goal_joints (J,) the goal's robot cells are left out
        too. objects: the cost's object term (ObjectGoal), used when object_goal is on.

        Raises:
            PlanError: the best plan violates a limit (never expected: the sampler projects
                every candidate; checked again before anything is published).
        """
        t0 = time.perf_counter()
        a, cfg = self.actions, self.cfg
        q = torch.as_tensor(q0, dtype=torch.float32, device=self.device)
        mean, std = self.initial_distribution(q, context, elapsed_steps)
        timing = {"init": (time.perf_counter() - t0) * 1e3, "rollout": 0.0}
        cost = self._cost(
            q, rollout=rollout, goal_latent=goal_latent, goal_joints=goal_joints, masker=masker,
            objects=objects, timing=timing,
        )  # fmt: skip
        result = cem(
            cost,
            mean,
            std,
            cfg.cem,
            project=lambda p: a.project(p, q),
            generator=self._generator,
        )
        targets = a.to_targets(result.best[None], q)
        problems = a.check(targets[0], q)
        if problems:
            raise PlanError(f"best plan violates: {', '.join(problems)}")
        latents = rollout(targets)[0] if imagine else None  # for display only
        self._previous = (result.mean, result.std, q)
        timing["total"] = (time.perf_counter() - t0) * 1e3
        return PlanResult(
            targets=targets[0].cpu().numpy().astype(np.float64),
            times=cfg.dt * np.arange(1, cfg.horizon + 1),
            cost=result.best_cost,
            latents=latents,
            history=result.history,
            timing_ms=timing,
        )
