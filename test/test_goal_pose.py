"""The goal-pose estimator: its training stage, its keypoint fit, its files, the session's goal
pose from a goal image, the joint-goal cost's margin and the pose-collection policy."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wm_ros.config import (
    CEMConfig,
    CostConfig,
    ModelConfig,
    PlannerConfig,
    PlanningSessionConfig,
    PoseConfig,
    SimConfig,
    TrainConfig,
)
from wm_ros.data import sim_episodes
from wm_ros.model import WorldModel, load_model
from wm_ros.model.checkpoint import read_config
from wm_ros.model.conditioning import model_prompt_renderer
from wm_ros.planning.costs import plan_cost
from wm_ros.planning.goal_pose import PoseEstimator, fit_joints, load_pose_estimator
from wm_ros.planning.session import PlanningSession
from wm_ros.sim import TabletopSim
from wm_ros.sim.exploration import ExplorationPolicy, collection_policy
from wm_ros.train import Trainer, _seed_span

TINY = ModelConfig(
    image_size=16, latent_channels=2, ae_width=8, horizon=4, context=2, memory=1,
    widths=(8, 16), emb_dim=16, prompt_features=2,
)  # fmt: skip
FAST = TrainConfig(
    batch_size=8, pose_batch_size=32, lr=3e-3, warmup_steps=5, checkpoint_every=1000,
    log_every=10, val_fraction=0,
)  # fmt: skip
JOINTS = ("joint1", "joint2", "joint3", "joint4")
KEYPOINTS = ("base_link", "link1", "link2", "link3", "link4", "tool")


@pytest.fixture(scope="module")
def episodes():
    return sim_episodes([0, 1, 2], steps=16, image_size=16)


def test_pose_stage_learns_the_keypoints_and_keeps_the_world_models_data_record(tmp_path, episodes):
    trainer = Trainer(episodes[:1], tmp_path / "m", TINY, FAST)
    trainer.run_stage("autoencoder", steps=2)
    world_data = read_config(tmp_path / "m")[1]["training"]["data"]
    # The pose stage trains on other bags: a resumed trainer on another episode set.
    trainer = Trainer(episodes, tmp_path / "m", TINY, FAST)
    data = trainer.data
    truth = trainer.renderer().project(data.joints)[0]  # (F, K, 2) pixels
    guess = (truth - truth.mean(dim=0)).norm(dim=-1).mean()  # one place for every keypoint
    trainer.run_stage("pose", steps=200)
    est = load_pose_estimator(tmp_path / "m")
    found = torch.as_tensor(est.keypoints(data.frames), dtype=truth.dtype)
    assert (found - truth).norm(dim=-1).mean() < 0.5 * guess
    assert est.cfg.joint_names == JOINTS and est.cfg.image_size == TINY.image_size
    assert est.cfg.keypoints == trainer.renderer().skeleton.keypoint_names
    frames = torch.as_tensor(data.frames[:5])
    torch.testing.assert_close(est(frames), trainer.pose.eval()(frames))
    training = read_config(tmp_path / "m")[1]["training"]
    assert training["data"] == world_data  # the world model's data record is kept
    assert training["data_by_stage"]["pose"]["train_episodes"] == 3
    assert set(training["device_by_stage"]) == {"autoencoder", "pose"}
    load_model(tmp_path / "m")  # the world model is still loadable beside it
    assert Trainer(episodes, tmp_path / "m", TINY, FAST).pose is not None


def test_the_fit_recovers_joints_from_their_keypoints_and_names_a_foreign_renderer():
    renderer = model_prompt_renderer(ModelConfig(image_size=64))
    limits = renderer.model.joint_limits
    q = np.random.default_rng(0).uniform(0.9 * limits[:, 0], 0.9 * limits[:, 1], (16, 4))
    uv = renderer.project(q)[0].double().numpy()
    fitted, residual = fit_joints(uv, renderer, starts=64, iterations=200)
    assert np.abs(fitted - q).max() < 0.02 and residual.max() < 0.1
    # one keypoint 3 px off: the robust fit keeps the others, the residual shows it
    uv[:, 2, 0] += 3.0
    fitted, residual = fit_joints(uv, renderer, starts=64, iterations=200)
    assert np.median(np.abs(fitted - q).max(axis=1)) < 0.15 and np.all(residual > 0.3)
    est = PoseEstimator(PoseConfig(image_size=16, keypoints=("base_link", "tool")))
    with pytest.raises(ValueError, match="finds keypoints"):
        est.fit(uv, renderer)
    est = PoseEstimator(PoseConfig(image_size=16, keypoints=renderer.skeleton.keypoint_names))
    with pytest.raises(ValueError, match="reads 16 px images"):
        est.fit(uv, renderer)


def test_pose_estimator_names_a_wrong_frame_size_and_a_bad_config():
    est = PoseEstimator(PoseConfig(image_size=16, num_joints=4, keypoints=KEYPOINTS))
    assert est(torch.zeros(2, 16, 16, 3, dtype=torch.uint8)).shape == (2, len(KEYPOINTS), 2)
    with pytest.raises(ValueError, match=r"\(N, 16, 16, 3\) frames"):
        est(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="multiple of 8"):
        PoseConfig(image_size=20)
    with pytest.raises(ValueError, match="joint_mean"):
        PoseConfig(num_joints=4, joint_mean=(0.0, 1.0))
    with pytest.raises(ValueError, match="keypoints must name"):
        PoseEstimator(PoseConfig(image_size=16))


def test_joint_goal_counts_only_beyond_the_margin():
    targets = torch.zeros(3, 2, 2)
    targets[:, -1, 0] = torch.tensor([0.1, 0.3, -0.5])  # final target of joint 0
    goal = torch.zeros(2)

    def cost(margin):
        cfg = CostConfig(smoothness=0.0, joint_goal=2.0, joint_goal_margin=margin)
        kw = {"latents": None, "goal_latent": None, "q0": torch.zeros(2)}
        return plan_cost(cfg, targets=targets, clipped_by=torch.zeros(3), goal_joints=goal, **kw)

    torch.testing.assert_close(cost(0.0), 2.0 * torch.tensor([0.01, 0.09, 0.25]))
    torch.testing.assert_close(cost(0.2), 2.0 * torch.tensor([0.0, 0.01, 0.09]))
    with pytest.raises(ValueError, match="joint_goal_margin"):
        CostConfig(joint_goal_margin=-0.1)


class FixedPose(PoseEstimator):
    """An estimator that finds the keypoints of one pose in every image."""

    def __init__(self, q):
        cfg = PoseConfig(image_size=16, num_joints=4, keypoints=KEYPOINTS, joint_names=JOINTS)
        super().__init__(cfg)
        self.q = np.asarray(q, dtype=np.float64)

    def keypoints(self, frames, batch=256):
        uv = model_prompt_renderer(TINY).project(self.q)[0].double().numpy()
        return np.repeat(uv[None], len(frames), axis=0)


def session_with(goal_pose, pose):
    cfg = PlanningSessionConfig(
        planner=PlannerConfig(
            horizon=4, goal_pose=goal_pose, cem=CEMConfig(num_samples=8, num_elites=2)
        )
    )
    return PlanningSession(cfg, WorldModel(TINY).eval(), pose=pose)


def test_the_goal_pose_comes_from_the_image_unless_one_is_given():
    with TabletopSim(SimConfig(image_width=16, image_height=16)) as sim:
        sim.reset(3)
        goal, q, cam = sim.task.goal_image, sim.task.goal_joints, sim.camera_model()
    read = np.array([0.1, -0.2, 0.3, -0.4])

    def session(goal_pose):
        s = session_with(goal_pose, FixedPose(read))
        s.set_goal(goal)
        assert s.goal_joints() is None  # the fit waits for the camera
        s.set_camera(cam.width, cam.height, cam.k.ravel(), cam.d)
        return s

    auto = session("auto")
    np.testing.assert_allclose(auto.goal_joints(), read, atol=0.02)  # the image alone
    status = auto.goal_pose_status()
    assert status["goal_pose"] == "image" and 0 <= status["goal_pose_fit_px"] < 0.1
    auto.set_goal_joints(JOINTS, q)
    np.testing.assert_array_equal(auto.goal_joints(), q)  # a sent pose wins
    assert auto.goal_pose_status() == {"goal_pose": "given", "goal_pose_fit_px": None}
    image = session("image")
    image.set_goal_joints(JOINTS, q)
    np.testing.assert_allclose(image.goal_joints(), read, atol=0.02)
    image.set_goal(np.ascontiguousarray(goal[::-1]))  # a new goal: fitted again at once
    np.testing.assert_allclose(image.goal_joints(), read, atol=0.02)
    given = session_with("given", FixedPose(read))
    given.set_goal(goal)
    assert given.goal_joints() is None  # never the estimate
    assert session_with("auto", None).goal_joints() is None
    assert session_with("auto", None).goal_pose_status()["goal_pose"] == "none"
    with pytest.raises(ValueError, match="pose estimator"):
        session_with("image", None)
    with pytest.raises(ValueError, match="goal_pose must be one of"):
        PlannerConfig(goal_pose="guess")
    other = PoseEstimator(PoseConfig(image_size=16, keypoints=("base_link", "tool")))
    with pytest.raises(ValueError, match="finds keypoints"):
        session_with("image", other)


class NoArm(FixedPose):
    """Finds every keypoint in one corner: no pose of the arm fits that."""

    def keypoints(self, frames, batch=256):
        return np.full((len(frames), len(KEYPOINTS), 2), 15.0)


def test_a_goal_pose_that_does_not_fit_the_keypoints_is_not_used():
    with TabletopSim(SimConfig(image_width=16, image_height=16)) as sim:
        sim.reset(3)
        goal, cam = sim.task.goal_image, sim.camera_model()
    session = session_with("auto", NoArm(np.zeros(4)))
    session.set_camera(cam.width, cam.height, cam.k.ravel(), cam.d)
    session.set_goal(goal)
    assert session.goal_joints() is None  # no joint-goal term rather than a wrong one
    status = session.goal_pose_status()
    assert status["goal_pose"] == "unfit" and status["goal_pose_fit_px"] > 1.0, status
    with pytest.raises(ValueError, match="goal_pose_max_fit_px"):
        PlannerConfig(goal_pose_max_fit_px=0.0)


def test_pose_policy_covers_the_joint_range_that_exploration_leaves_out():
    def joints_visited(name, seeds):
        with TabletopSim(SimConfig(image_width=16, image_height=16)) as sim:
            q = []
            for s in seeds:
                sim.reset(s)
                policy = collection_policy(name, s)
                policy.reset(sim)
                for _ in range(40):
                    sim.step(policy(sim))
                    q.append(sim.joint_positions())
        return np.array(q)

    poses, explore = joints_visited("poses", range(4)), joints_visited("explore", range(4))
    assert np.abs(poses[:, 0]).max() > 1.3  # exploration waypoints keep the base within 1.2
    assert np.all(poses.std(axis=0) > explore.std(axis=0)), (poses.std(0), explore.std(0))
    with pytest.raises(ValueError, match="unknown collection policy"):
        collection_policy("wander", 0)
    with pytest.raises(ValueError, match="joint_speed"):
        ExplorationPolicy(0, joint_speed=(0.5, 0.2))
    with pytest.raises(ValueError, match="joint_steps"):
        ExplorationPolicy(0, joint_steps=(0, 4))


def test_the_data_record_names_each_run_of_seeds():
    eps = [SimpleNamespace(seed=s) for s in (*range(1000, 1003), 2000000, 2000001, 7)]
    assert _seed_span(eps) == "7..7 (1), 1000..1002 (3), 2000000..2000001 (2)"
    assert _seed_span([SimpleNamespace(seed=None)]) == ""


def test_eval_pose_writes_its_figures_and_names_a_missing_estimator(tmp_path, episodes, caplog):
    from wm_ros.cli import main

    trainer = Trainer(episodes[:1], tmp_path / "m", TINY, FAST)
    trainer.run_stage("autoencoder", steps=2)
    args = ["eval", "pose", "--model", str(tmp_path / "m"), "--episodes", "3"]
    assert main([*args, "--json", str(tmp_path / "none.json")]) == 2
    assert "no 'pose' section" in caplog.text and not (tmp_path / "none.json").exists()
    trainer.run_stage("pose", steps=20)
    assert main([*args, "--json", str(tmp_path / "pose.json")]) == 0
    figures = json.loads((tmp_path / "pose.json").read_text())
    goals = figures["goal_images"]
    assert figures["seeds"] == [0, 2] and goals["images"] == 3 and len(goals["mae_rad"]) == 4
    assert 0.0 <= goals["max_joint_error_rad"]["within_0.15"] <= 1.0
