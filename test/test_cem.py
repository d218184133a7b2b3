"""The planning core: CEM on known problems, the warm start, and that limits always hold."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wm_ros.config import CEMConfig
from wm_ros.planning.actions import JointDeltaActions
from wm_ros.planning.cem import cem, shift

NAMES = ("j1", "j2", "j3", "j4")
LOWER = np.array([-2.0, -2.5, -2.5, -3.0])
UPPER = np.array([2.0, 2.5, 2.5, 3.0])
VEL = np.array([2.0, 2.0, 3.0, 4.0])


def actions(**kw) -> JointDeltaActions:
    kw = {"horizon": 8, "dt": 0.1, **kw}
    return JointDeltaActions(NAMES, LOWER, UPPER, VEL, **kw)


def test_cem_finds_the_minimum_of_a_quadratic_in_a_few_iterations():
    target = torch.tensor([[0.3, -0.2], [0.1, 0.4], [-0.5, 0.2]])

    def cost(x, clipped_by):
        return (x - target).pow(2).flatten(1).sum(dim=1)

    cfg = CEMConfig(num_samples=256, num_elites=16, iterations=6, init_std=0.5, min_std=1e-3)
    g = torch.Generator().manual_seed(0)
    result = cem(cost, torch.zeros(3, 2), torch.full((3, 2), 0.5), cfg, generator=g)
    assert result.best_cost < 1e-3
    torch.testing.assert_close(result.mean, target, atol=0.03, rtol=0)
    assert all(b >= a for a, b in zip(result.history[1:], result.history, strict=False))
    again = cem(
        cost,
        torch.zeros(3, 2),
        torch.full((3, 2), 0.5),
        cfg,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(again.best, result.best)  # seeded: the same plan


def test_cem_never_returns_worse_than_its_starting_mean():
    def cost(x, clipped_by):  # a cost only the starting mean does well on
        return torch.where(x.abs().sum(dim=(1, 2)) < 1e-9, 0.0, 1.0 + x.abs().sum(dim=(1, 2)))

    cfg = CEMConfig(num_samples=16, num_elites=4, iterations=2)
    result = cem(cost, torch.zeros(2, 2), torch.ones(2, 2), cfg)
    assert result.best_cost == 0.0 and torch.equal(result.best, torch.zeros(2, 2))


def test_cem_std_floor_and_shape_errors():
    cfg = CEMConfig(num_samples=8, num_elites=2, iterations=3, min_std=0.05)
    result = cem(lambda x, c: x.sum(dim=(1, 2)), torch.zeros(2, 1), torch.ones(2, 1), cfg)
    assert float(result.std.min()) >= 0.05
    with pytest.raises(ValueError, match="expected"):
        cem(lambda x, c: x.sum(), torch.zeros(2, 1), torch.ones(2, 1), cfg)
    with pytest.raises(ValueError, match="num_elites"):
        CEMConfig(num_samples=4, num_elites=5)


def test_shift_moves_every_knot_one_earlier_and_refreshes_the_last():
    mean = torch.arange(8.0).view(4, 2)
    std = torch.full((4, 2), 0.05)
    m, s = shift(mean, std, 0.3)
    torch.testing.assert_close(m, torch.tensor([[2.0, 3], [4, 5], [6, 7], [6, 7]]))
    torch.testing.assert_close(s[:3], std[:3])
    torch.testing.assert_close(s[3], torch.full((2,), 0.3))


def test_warm_start_keeps_the_absolute_plan_after_the_arm_moved():
    a = actions()
    q_then = torch.tensor([0.1, 0.2, -0.3, 0.0])
    mean = a.project(
        torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(1)) * 0.1, q_then
    )[0]
    plan = a.to_targets(mean[None], q_then)[0]  # (H, J)
    q_now = plan[0]  # the arm reached the first target
    new_mean, new_std = a.warm_start(mean, torch.full((8, 4), 0.05), q_then, q_now, 0.2)
    replan = a.to_targets(new_mean[None], q_now)[0]
    torch.testing.assert_close(replan[:-1], plan[1:])  # the same targets, one step earlier
    torch.testing.assert_close(replan[-1], plan[-1])  # and then it holds
    assert float(new_std[-1].min()) == pytest.approx(0.2)


def test_knots_interpolate_linearly_from_the_current_pose():
    a = actions(knots=2, joints=("j2",))
    q0 = torch.tensor([0.5, 0.0, 0.0, 0.0])
    targets = a.to_targets(torch.tensor([[[0.2], [0.4]]]), q0)[0]  # knots at steps 4 and 8
    torch.testing.assert_close(
        targets[:, 1], torch.tensor([0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4])
    )
    assert torch.equal(targets[:, 0], torch.full((8,), 0.5))  # unselected joints hold
    assert a.shape == (2, 1)
    with pytest.raises(ValueError, match="unknown joints"):
        actions(joints=("wrist",))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.01, 10.0),
    knots=st.sampled_from([1, 2, 3, 4, 8]),
    start=st.lists(st.floats(-1.05, 1.05), min_size=4, max_size=4),
)
def test_no_projected_plan_ever_violates_a_limit(seed, scale, knots, start):
    a = actions(knots=knots)
    # Anywhere within the limits, or a little past one: physics can push a joint beyond its
    # limit (a closed-loop reach episode raised "best plan violates: position limit" there).
    q0 = torch.as_tensor(np.asarray(start) * UPPER, dtype=torch.float32)
    raw = torch.randn(64, *a.shape, generator=torch.Generator().manual_seed(seed)) * scale
    targets = a.to_targets(a.project(raw, q0), q0)
    for t in targets:
        assert a.check(t, q0) == []
    bad = targets[0].clone()
    bad[3, 0] = 5.0
    assert "position limit" in a.check(bad, q0)


def test_costs_rank_what_they_say():
    from wm_ros.config import CostConfig
    from wm_ros.planning.costs import latent_goal_cost, plan_cost, smoothness_cost

    goal = torch.zeros(2, 4, 4)
    near = torch.zeros(1, 3, 2, 4, 4)
    far = torch.ones(1, 3, 2, 4, 4)
    latents = torch.cat([far, near])
    assert latent_goal_cost(latents, goal, 1.0, 0.0).argmin() == 1
    q0 = torch.zeros(2)
    smooth = torch.linspace(0.1, 0.8, 8)[:, None].expand(8, 2)
    jerky = smooth.clone()
    jerky[3] += 0.5
    s = smoothness_cost(torch.stack([smooth, jerky]), q0)
    assert s[0] < s[1]
    total = plan_cost(
        CostConfig(smoothness=0.0, limit=1.0),
        latents=latents,
        goal_latent=goal,
        targets=torch.stack([smooth, smooth]),
        q0=q0,
        clipped_by=torch.tensor([0.0, 5.0]),
    )
    assert total[0] == pytest.approx(1.0) and total[1] == pytest.approx(5.0)


def test_warm_start_after_several_steps_skips_what_was_executed():
    a = actions()
    q_then = torch.zeros(4)
    mean = a.project(torch.full((1, 8, 4), 0.05).cumsum(dim=1), q_then)[0]
    plan = a.to_targets(mean[None], q_then)[0]
    q_now = plan[2]  # three steps executed
    new_mean, new_std = a.warm_start(mean, torch.full((8, 4), 0.05), q_then, q_now, 0.2, steps=3)
    replan = a.to_targets(new_mean[None], q_now)[0]
    torch.testing.assert_close(replan[:5], plan[3:])
    torch.testing.assert_close(replan[5:], plan[-1:].expand(3, -1))
    assert torch.allclose(new_std[-3:], torch.tensor(0.2)) and torch.allclose(
        new_std[0], torch.tensor(0.05)
    )
