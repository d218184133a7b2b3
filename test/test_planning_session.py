"""The planner's input checks and one replan from simulator observations, without ROS."""

import numpy as np
import pytest
import torch

from wm_ros.config import CEMConfig, ModelConfig, PlannerConfig, PlanningSessionConfig, SimConfig
from wm_ros.model import WorldModel
from wm_ros.planning.actions import ToolDeltaActions
from wm_ros.planning.costs import OBJECT_MISSING_FRACTION
from wm_ros.planning.session import FrameHistory, PlanningSession, PlanSkippedError
from wm_ros.sim import TabletopSim

TINY = ModelConfig(
    image_size=16, latent_channels=2, ae_width=8, horizon=4, context=2, memory=1,
    widths=(8, 16), emb_dim=16, prompt_features=2,
)  # fmt: skip
CFG = PlanningSessionConfig(
    planner=PlannerConfig(horizon=4, cem=CEMConfig(num_samples=16, num_elites=4, iterations=2))
)


@pytest.fixture(scope="module")
def sim():
    with TabletopSim(SimConfig(image_width=32, image_height=32)) as s:
        s.reset(3)
        yield s


@pytest.fixture
def session():
    torch.manual_seed(0)
    return PlanningSession(CFG, WorldModel(TINY).eval())


def feed_camera(session, sim):
    cam = sim.camera_model()
    session.set_camera(cam.width, cam.height, cam.k.ravel(), cam.d)


def test_frame_history_reads_back_at_the_model_period():
    h = FrameHistory(3, 0.1, 4)
    for i in range(10):  # a 30 Hz camera, frames tagged by their index
        h.add(np.full((4, 4, 3), i, np.uint8), 1.0 + i / 30)
    picked = h.frames()[:, 0, 0, 0]
    assert list(picked) == [3, 6, 9]  # 0.1 s apart, ending at the latest
    h.add(np.full((8, 8, 3), 99, np.uint8), 0.5)  # time went backwards: a new episode
    assert list(h.frames()[:, 0, 0, 0]) == [99, 99, 99]  # padded with the oldest (only) frame
    assert h.frames().shape == (3, 4, 4, 3)  # resized to the model's size


def test_every_missing_or_inconsistent_input_skips_with_its_reason(session, sim):
    def reason(now=10.0):
        with pytest.raises(PlanSkippedError) as err:
            session.replan(now)
        return err.value.reason

    assert reason() == "no_camera_info"
    feed_camera(session, sim)
    assert reason() == "no_image"
    session.add_image(sim.render(), 10.0)
    assert reason() == "no_joint_state"
    with pytest.raises(PlanSkippedError, match="lacks joints"):
        session.set_joints(["joint1"], [0.0], 10.0)
    session.set_joints(sim.joint_names, sim.joint_positions(), 10.0)
    assert reason() == "no_goal"
    session.set_goal(sim.task.goal_image)
    assert reason(now=11.0) == "stale_image"
    session.set_joints(sim.joint_names, sim.joint_positions(), 9.5)
    assert reason() == "image_joint_gap"
    with pytest.raises(PlanSkippedError) as err:
        session.set_camera(32, 32, [0.0] * 9, [0.0] * 5)
    assert err.value.reason == "bad_camera_info"
    assert reason() == "no_camera_info"  # never plans with the contradicted camera


def test_a_replan_from_simulator_observations_is_within_limits(session, sim):
    feed_camera(session, sim)
    for i in range(3):
        session.add_image(sim.render(), 10.0 + 0.1 * i)
    q = sim.joint_positions()
    session.set_joints([*sim.joint_names, "extra_joint"], [*q, 5.0], 10.2)  # extras ignored
    session.set_goal(sim.render())
    result, stamp = session.replan(10.25)
    assert stamp == pytest.approx(10.2)
    assert result.targets.shape == (4, len(sim.joint_names))
    assert session.actions.check(torch.as_tensor(result.targets, dtype=torch.float32), q) == []
    np.testing.assert_allclose(result.times, [0.1, 0.2, 0.3, 0.4])
    # score(): the replan's cost of given candidates, from the same checked inputs.
    knots = torch.as_tensor(result.targets, dtype=torch.float32)[session.actions.knot_steps - 1]
    best = session.actions.offsets_of(knots, torch.as_tensor(q, dtype=torch.float32))
    costs = session.score(10.25, torch.stack([best, best + 0.3]))
    assert costs.shape == (2,) and float(costs[0]) == pytest.approx(result.cost, rel=1e-4)
    with pytest.raises(PlanSkippedError, match="old"):
        session.score(12.0, best[None])  # stale image: no costs either
    bad = PlanningSessionConfig(planner=CFG.planner.replace(horizon=6, knots=0))
    with pytest.raises(ValueError, match="not a multiple"):
        PlanningSession(bad, WorldModel(TINY).eval())  # 6 steps vs the model's chunks of 4


def test_the_object_term_finds_the_goal_object_and_scores_decoded_candidates(sim):
    """With cost.object_goal the session finds the object in the goal image, scores each
    candidate's decoded final frame against it, and says when the goal has no such object."""
    cost = CFG.planner.cost.replace(object_goal=1.0, object_radius_px=1)
    cfg = PlanningSessionConfig(planner=CFG.planner.replace(cost=cost))
    torch.manual_seed(0)
    session = PlanningSession(cfg, WorldModel(TINY).eval())
    assert session.goal_object_status()["goal_object"] == "no_goal"
    feed_camera(session, sim)
    for i in range(3):
        session.add_image(sim.render(), 10.0 + 0.1 * i)
    q = sim.joint_positions()
    session.set_joints(sim.joint_names, q, 10.2)
    goal = np.full((32, 32, 3), 120, np.uint8)
    goal[20:24, 8:12] = 242  # a white object, at the model's 16 px: rows 10-11, cols 4-5
    session.set_goal(goal)
    status = session.goal_object_status()
    assert status == {"goal_object": "found", "goal_object_px": [10.5, 4.5]}
    params = torch.zeros(2, *session.actions.shape)
    params[1] += 0.3
    with_term = session.score(10.25, params)
    plain = PlanningSession(CFG, session.model)
    feed_camera(plain, sim)
    for i in range(3):
        plain.add_image(sim.render(), 10.0 + 0.1 * i)
    plain.set_joints(sim.joint_names, q, 10.2)
    plain.set_goal(goal)
    without = plain.score(10.25, params)
    # The untrained model's frames hold no white blob: each candidate pays the missing cost.
    missing = (OBJECT_MISSING_FRACTION * 16) ** 2
    assert (with_term - without).tolist() == pytest.approx([missing, missing], rel=1e-4)
    session.set_goal(np.full((32, 32, 3), 120, np.uint8))  # no object in this goal
    assert session.goal_object_status()["goal_object"] == "not_found"
    plain.set_goal(np.full((32, 32, 3), 120, np.uint8))
    torch.testing.assert_close(session.score(10.25, params), plain.score(10.25, params))
    result, _ = session.replan(10.25)  # plans on without the term
    assert np.isfinite(result.cost)


def test_tool_axes_plan_tool_motions_within_the_joint_limits(sim):
    torch.manual_seed(0)
    cem = CFG.planner.cem.replace(init_std=0.03, min_std=0.003)
    cfg = PlanningSessionConfig(planner=CFG.planner.replace(tool_axes=("x", "y"), cem=cem))
    session = PlanningSession(cfg, WorldModel(TINY).eval())
    assert isinstance(session.actions, ToolDeltaActions) and session.actions.shape == (4, 2)
    feed_camera(session, sim)
    session.add_image(sim.render(), 10.0)
    q = sim.joint_positions()
    session.set_joints(sim.joint_names, q, 10.0)
    session.set_goal(sim.render())
    result, _ = session.replan(10.0)
    targets = torch.as_tensor(result.targets, dtype=torch.float32)
    assert session.actions.check(targets, q) == []
    # The tool moves in the table's plane (the arm is planar) and about as far as CEM spread it.
    tool = session.actions.tool_points(targets)
    assert float((tool[-1] - session.actions.knot_origin(q)).norm()) < 0.2


def test_a_horizon_of_two_model_chunks_is_imagined_chunk_by_chunk(sim):
    torch.manual_seed(0)
    cfg = PlanningSessionConfig(planner=CFG.planner.replace(horizon=8))
    session = PlanningSession(cfg, WorldModel(TINY).eval())
    feed_camera(session, sim)
    session.add_image(sim.render(), 10.0)
    session.set_joints(sim.joint_names, sim.joint_positions(), 10.0)
    session.set_goal(sim.render())
    result, _ = session.replan(10.0)
    assert result.targets.shape == (8, len(sim.joint_names))
    assert result.latents.shape == (8, *session.model.latent_shape())


def test_inputs_arrive_during_a_replan_and_a_goal_change_drops_it(session, sim):
    """planner_node feeds the session from another thread while a replan runs: the inputs are
    never blocked by the planning, and a plan made for a goal replaced meanwhile is dropped."""
    feed_camera(session, sim)
    session.add_image(sim.render(), 10.0)
    session.set_joints(sim.joint_names, sim.joint_positions(), 10.0)
    session.set_goal(sim.task.goal_image)
    other_goal = sim.render()
    events = []

    def scorer(targets):  # runs inside the replan, as the model would
        if not events:
            # Taking the session's lock here would deadlock if the replan held it.
            session.add_image(sim.render(), 10.05)
            session.set_goal(sim.task.goal_image)  # the same goal again: nothing changes
            events.append("fed")
        elif events == ["fed"] and "change" in request:
            session.set_goal(other_goal)
            events.append("changed")
        return torch.zeros(targets.shape[0], 4, *session.model.latent_shape())

    request = set()
    result, _ = session.replan(10.06, rollout=scorer, imagine=False)
    assert events == ["fed"] and result.latents is None
    assert session.history.latest_stamp == pytest.approx(10.05)
    request.add("change")
    with pytest.raises(PlanSkippedError) as err:
        session.replan(10.07, rollout=scorer, imagine=False)
    assert err.value.reason == "goal_changed" and events == ["fed", "changed"]
    assert (
        session.planner.initial_distribution(  # no warm start from the dropped plan
            torch.zeros(len(sim.joint_names)), None
        )[0]
        .abs()
        .max()
        == 0
    )


def test_goal_joints_count_only_for_the_goal_image_they_are_stamped_with(session, sim):
    q = sim.task.goal_joints
    session.set_goal_joints(sim.joint_names, q, stamp=5.0)  # may arrive before its image
    assert session.goal_joints() is None  # no goal image yet
    session.set_goal(sim.task.goal_image, stamp=5.0)
    np.testing.assert_array_equal(session.goal_joints(), q)
    session.set_goal(sim.render(), stamp=6.0)  # the next goal: the old pose no longer counts
    assert session.goal_joints() is None
    session.set_goal_joints([*sim.joint_names][::-1], q[::-1], stamp=6.0)  # matched by name
    np.testing.assert_array_equal(session.goal_joints(), q)
    with pytest.raises(PlanSkippedError) as err:
        session.set_goal_joints(sim.joint_names, np.full(len(q), np.nan), stamp=6.0)
    assert err.value.reason == "goal_joint_mismatch"
