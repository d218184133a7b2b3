"""Tool-point knots turned into joint targets by inverse kinematics (ToolDeltaActions)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from wm_ros.config import CEMConfig, CostConfig, PlannerConfig
from wm_ros.kinematics import ForwardKinematics, load_urdf
from wm_ros.paths import ARM_URDF
from wm_ros.planning.actions import ToolDeltaActions
from wm_ros.planning.planner import Planner

from .test_kinematics import ARM6

ARM = load_urdf(ARM_URDF)
ARM_Q = torch.tensor([0.3, 0.6, 0.6, 0.6])  # elbows bent: away from singular poses


def tool_actions(model=ARM, tool="tool", axes=("x", "y"), knots=4, velocity=None):
    joints = model.actuated_joints
    vel = [j.velocity for j in joints] if velocity is None else velocity
    return ToolDeltaActions(
        ForwardKinematics(model),
        np.array([j.lower for j in joints]),
        np.array([j.upper for j in joints]),
        np.array(vel),
        tool_link=tool,
        axes=axes,
        horizon=8,
        dt=0.1,
        knots=knots,
    )


def test_small_tool_offsets_are_reached_at_every_knot():
    a = tool_actions()
    offsets = torch.randn(16, 4, 2, generator=torch.Generator().manual_seed(0)) * 0.01
    reached = a.project(offsets, ARM_Q)
    torch.testing.assert_close(reached, offsets, atol=2e-4, rtol=0)
    targets = a.to_targets(reached, ARM_Q)
    path = a.path(offsets, ARM_Q)  # every step follows the straight pieces between knots
    torch.testing.assert_close(a.tool_points(targets), path, atol=2e-4, rtol=0)


def test_a_three_dimensional_arm_follows_tool_knots_in_x_y_z():
    model = load_urdf(ARM6)
    a = tool_actions(model, tool="tcp", axes=("x", "y", "z"), velocity=[1.0] * 7)
    q0 = torch.tensor([0.2, -0.4, 0.1, 0.5, 0.3, 0.2, 0.02])  # j1..j6 and the gripper
    offsets = torch.tensor([[[0.01, 0.0, 0.0], [0.02, 0.01, 0.0], [0.02, 0.02, -0.01],
                             [0.03, 0.02, -0.01]]])  # fmt: skip
    reached = a.project(offsets, q0)
    torch.testing.assert_close(reached, offsets, atol=5e-4, rtol=0)


def test_project_hands_its_targets_to_the_next_to_targets_call_only():
    a = tool_actions()
    offsets = torch.full((4, 4, 2), 0.01)
    reached = a.project(offsets, ARM_Q)
    targets = a.to_targets(reached, ARM_Q)
    assert a.to_targets(reached, ARM_Q) is targets  # the very offsets project returned
    fresh = a.to_targets(reached.clone(), ARM_Q)  # other offsets: solved again, same answer
    assert fresh is not targets
    torch.testing.assert_close(fresh, targets, atol=1e-4, rtol=0)
    moved = a.to_targets(reached, ARM_Q + 0.05)  # another pose: solved again
    assert moved is not targets


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(0.001, 2.0),
    start=st.lists(st.floats(-1.05, 1.05), min_size=4, max_size=4),  # a little past a limit too
)
def test_no_tool_plan_ever_violates_a_joint_limit(seed, scale, start):
    a = tool_actions()
    q0 = torch.as_tensor(np.asarray(start), dtype=torch.float32) * a.upper
    raw = torch.randn(32, *a.shape, generator=torch.Generator().manual_seed(seed)) * scale
    reached = a.project(raw, q0)
    assert torch.isfinite(reached).all()
    for t in a.to_targets(reached, q0):
        assert a.check(t, q0) == []


def test_unreachable_knots_come_back_as_what_the_arm_reaches():
    a = tool_actions()
    far = torch.tensor([[[1.0, 0.0]] * 4])  # a metre per knot: far beyond the velocity limits
    reached = a.project(far, ARM_Q)
    assert float(reached.norm(dim=-1).max()) < 0.5
    targets = a.to_targets(reached, ARM_Q)
    torch.testing.assert_close(a.offsets_of(targets[:, a.knot_steps - 1], ARM_Q), reached)


def test_warm_start_keeps_the_tool_path_after_the_arm_moved():
    a = tool_actions(knots=8)
    mean = torch.cumsum(torch.full((8, 2), 0.005), dim=0)  # a straight diagonal tool path
    mean = a.project(mean[None], ARM_Q)[0]
    targets = a.to_targets(mean[None], ARM_Q)[0]
    q_now = targets[0]
    new_mean, new_std = a.warm_start(mean, torch.full((8, 2), 0.01), ARM_Q, q_now, 0.05)
    path = a.path(mean[None], ARM_Q)[0]
    again = a.path(new_mean[None], q_now)[0]
    torch.testing.assert_close(again[:-1], path[1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(again[-1], path[-1], atol=1e-5, rtol=0)
    assert float(new_std[-1].min()) == pytest.approx(0.05)


def test_cem_in_tool_space_brings_the_tool_to_a_point():
    a = tool_actions()
    goal = a.knot_origin(ARM_Q) + torch.tensor([0.05, -0.03])
    cfg = PlannerConfig(
        horizon=8,
        knots=4,
        tool_axes=("x", "y"),
        cem=CEMConfig(num_samples=64, num_elites=8, iterations=3, init_std=0.04, min_std=0.002),
        cost=CostConfig(goal_final=1.0, goal_all=1.0),
    )
    planner = Planner(cfg, a)

    def rollout(targets):  # the "latent" is the tool point itself
        return a.tool_points(targets)[..., None, None]

    q = ARM_Q.numpy()
    for _ in range(10):  # replan every step; the arm tracks the first target exactly
        q = planner.plan(q, rollout, goal[:, None, None]).targets[0]
    assert float((a.knot_origin(torch.as_tensor(q, dtype=torch.float32)) - goal).norm()) < 0.01


def test_tool_axes_are_checked():
    with pytest.raises(ValueError, match="tool axes"):
        tool_actions(axes=("x", "w"))
    with pytest.raises(ValueError, match="tool_axes"):
        PlannerConfig(tool_axes=("x", "x"))
    with pytest.raises(ValueError, match=r"leave planner\.joints empty"):
        PlannerConfig(tool_axes=("x",), joints=("joint1",))
