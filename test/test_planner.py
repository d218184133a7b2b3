"""The planning core end to end: CEM + joint-delta knots + costs through a rollout model."""

import numpy as np
import pytest
import torch

from wm_ros.config import CEMConfig, CostConfig, ModelConfig, PlannerConfig, PriorConfig
from wm_ros.model import WorldModel
from wm_ros.model.conditioning import model_prompt_renderer
from wm_ros.planning.actions import JointDeltaActions
from wm_ros.planning.planner import Planner, RobotMasker, WorldModelRollout
from wm_ros.planning.prior import ActionPrior

NAMES = ("joint1", "joint2", "joint3", "joint4")
LOWER, UPPER = np.full(4, -2.5), np.full(4, 2.5)
VEL = np.full(4, 2.0)  # rad/s: 0.2 rad per 0.1 s step


def identity_rollout(targets: torch.Tensor) -> torch.Tensor:
    """A "world model" whose latent is the joint pose itself: (N, H, J) -> (N, H, J, 1, 1)."""
    return targets[..., None, None]


def planner(**kw) -> Planner:
    cfg = PlannerConfig(
        horizon=8, cem=CEMConfig(num_samples=128, num_elites=16, iterations=4), **kw
    )
    actions = JointDeltaActions(NAMES, LOWER, UPPER, VEL, horizon=8, dt=0.1, knots=cfg.knots)
    return Planner(cfg, actions)


def test_closed_loop_on_a_known_model_reaches_the_goal_within_limits():
    # Distance at every step counts: the best plan heads for the goal at full speed.
    p = planner(knots=4, cost=CostConfig(goal_all=1.0))
    goal = torch.tensor([1.0, -0.6, 0.4, 0.0])
    q = np.zeros(4)
    for _ in range(20):  # replan every step; the arm tracks the first target exactly
        result = p.plan(q, identity_rollout, goal[:, None, None])
        assert result.targets.shape == (8, 4) and np.all(np.diff(result.times) > 0)
        assert np.all(np.abs(np.diff(np.vstack([q, result.targets]), axis=0)) <= 0.2 + 1e-5)
        q = result.targets[0]
    assert np.abs(q - goal.numpy()).max() < 0.05, q


def test_second_plan_warm_starts_from_the_first():
    p = planner()
    goal = torch.tensor([0.5, 0.5, 0.0, 0.0])[:, None, None]
    first = p.plan(np.zeros(4), identity_rollout, goal)
    mean, _ = p.initial_distribution(torch.as_tensor(first.targets[0], dtype=torch.float32), None)
    # The warm start is the previous distribution one step on: its first knot lies where the
    # previous mean's second step was, relative to the new pose.
    assert mean.shape == (8, 4) and float(mean.abs().sum()) > 0


def test_reset_plans_an_episode_as_a_fresh_planner_would():
    goal = torch.tensor([0.5, 0.5, 0.0, 0.0])[:, None, None]
    fresh = planner().plan(np.zeros(4), identity_rollout, goal).targets
    used = planner()
    used.plan(np.full(4, 0.3), identity_rollout, -goal)  # an earlier episode draws samples
    used.reset()
    np.testing.assert_array_equal(used.plan(np.zeros(4), identity_rollout, goal).targets, fresh)


def test_prior_seeds_a_fresh_search():
    cfg = ModelConfig(image_size=16, latent_channels=2, ae_width=8, horizon=8, context=2,
                      memory=0, widths=(8, 16), emb_dim=16, prompt_features=2)  # fmt: skip
    prior = ActionPrior(PriorConfig.for_model(cfg, NAMES))
    with torch.no_grad():
        prior.head.bias.view(2, 8, 4)[0] = 0.1  # the prior says: +0.1 rad on every joint
    p = Planner(
        PlannerConfig(horizon=8, use_prior=True),
        JointDeltaActions(NAMES, LOWER, UPPER, VEL, horizon=8, dt=0.1),
        prior=prior,
    )
    q = torch.zeros(4)
    mean, std = p.initial_distribution(q, torch.zeros(2, 2, 4, 4))
    torch.testing.assert_close(mean, torch.full((8, 4), 0.1))
    assert std.shape == (8, 4) and float(std.min()) >= p.cfg.cem.init_std


TINY_MODEL = ModelConfig(image_size=16, latent_channels=2, ae_width=8, horizon=4, context=2,
                         memory=1, widths=(8, 16), emb_dim=16, prompt_features=2)  # fmt: skip


def tiny_rollout(**kwargs) -> tuple[WorldModelRollout, np.ndarray]:
    """A rollout of a fresh tiny world model (seeded), with its context set from 3 random
    frames; kwargs go to WorldModelRollout."""
    torch.manual_seed(0)
    model = WorldModel(TINY_MODEL).eval()
    rollout = WorldModelRollout(model, model_prompt_renderer(TINY_MODEL), NAMES, **kwargs)
    frames = np.random.default_rng(0).integers(0, 255, (3, 16, 16, 3), dtype=np.uint8)
    rollout.set_context(frames)
    return rollout, frames


def test_world_model_rollout_scores_candidates_in_one_batch():
    rollout, frames = tiny_rollout(sampler_steps=1)
    targets = torch.zeros(5, 4, 4)
    z = rollout(targets)
    assert z.shape == (5, 4, 2, 4, 4)
    torch.testing.assert_close(z[0], z[4])  # same candidate, same noise: same future
    p = Planner(
        PlannerConfig(horizon=4, cem=CEMConfig(num_samples=8, num_elites=2, iterations=1)),
        JointDeltaActions(NAMES, LOWER, UPPER, VEL, horizon=4, dt=0.1),
    )
    result = p.plan(np.zeros(4), rollout, rollout.encode_goal(frames[-1]))
    assert result.latents.shape == (4, 2, 4, 4) and np.isfinite(result.cost)
    assert set(result.timing_ms) >= {"rollout", "total"}


def test_score_gives_the_costs_the_search_saw():
    rollout, frames = tiny_rollout(sampler_steps=1)
    actions = JointDeltaActions(NAMES, LOWER, UPPER, VEL, horizon=4, dt=0.1, knots=2)
    p = Planner(
        PlannerConfig(horizon=4, knots=2, cem=CEMConfig(num_samples=8, num_elites=2, iterations=2)),
        actions,
    )
    q0, goal = np.full(4, 0.1), rollout.encode_goal(frames[0])
    result = p.plan(q0, rollout, goal)
    best = actions.offsets_of(torch.as_tensor(result.targets, dtype=torch.float32)[[1, 3]], q0)
    far = best + 50.0  # far outside the velocity limits: projected, and charged for it
    costs = p.score(torch.stack([best, far]), q0, rollout, goal)
    assert float(costs[0]) == pytest.approx(result.cost, rel=1e-5)
    assert float(costs[1]) > float(costs[0]) + p.cfg.cost.limit * 100


def test_a_zero_noise_scale_imagines_the_same_future_whatever_the_seed():
    targets = torch.rand(3, 4, 4, generator=torch.Generator().manual_seed(1))

    def imagine(seed, scale):
        return tiny_rollout(seed=seed, noise_scale=scale)[0](targets)  # the same model each time

    torch.testing.assert_close(imagine(0, 0.0), imagine(1, 0.0), rtol=0, atol=0)
    assert not torch.allclose(imagine(0, 1.0), imagine(1, 1.0))
    with pytest.raises(ValueError, match="sampler_noise_scale"):
        PlannerConfig(sampler_noise_scale=-1.0)


def test_the_robot_mask_reads_the_prompts_the_model_was_given():
    """Within one CEM iteration the candidates are drawn once: the rollout's drawing serves
    the cost's robot mask too; other targets (or the same ones changed) are drawn afresh."""
    model = WorldModel(TINY_MODEL).eval()
    renderer = model_prompt_renderer(TINY_MODEL)
    draws = []
    render = renderer.render
    renderer.render = lambda *a, **kw: draws.append(1) or render(*a, **kw)
    rollout = WorldModelRollout(model, renderer, NAMES, sampler_steps=1)
    rollout.set_context(np.zeros((3, 16, 16, 3), np.uint8))
    masker = RobotMasker(rollout.prompts, dilate_px=1, cells=(4, 4))
    targets = torch.zeros(3, 4, 4)
    rollout(targets)
    cells = masker(targets)
    assert len(draws) == 1 and cells.shape == (3, 4, 4, 4) and cells.any()
    targets += 0.3  # changed in place: drawn again
    masker(targets)
    masker(torch.zeros(3, 4, 4))
    assert len(draws) == 3
