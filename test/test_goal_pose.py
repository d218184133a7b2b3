"""The goal-pose estimator: its training stage, its files, the session's goal pose from a goal
image, the joint-goal cost's margin and the pose-collection policy."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

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
from wm_ros.model import CheckpointError, WorldModel, load_model
from wm_ros.model.checkpoint import read_config
from wm_ros.planning.costs import plan_cost
from wm_ros.planning.goal_pose import PoseEstimator, load_pose_estimator
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


@pytest.fixture(scope="module")
def episodes():
    return sim_episodes([0, 1, 2], steps=16, image_size=16)


def test_pose_stage_learns_the_joints_and_keeps_the_world_models_data_record(tmp_path, episodes):
    trainer = Trainer(episodes[:1], tmp_path / "m", TINY, FAST)
    trainer.run_stage("autoencoder", steps=2)
    world_data = read_config(tmp_path / "m")[1]["training"]["data"]
    # The pose stage trains on other bags: a resumed trainer on another episode set.
    trainer = Trainer(episodes, tmp_path / "m", TINY, FAST)
    data = trainer.data
    hold_mean = float(np.mean((data.joints - data.joints.mean(axis=0)) ** 2))
    trainer.run_stage("pose", steps=200)
    with torch.no_grad():
        last = np.mean([float(trainer.loss("pose", data, (4, i))) for i in range(4)])
    assert last < 0.5 * hold_mean, (hold_mean, last)  # beats guessing the mean pose
    est = load_pose_estimator(tmp_path / "m")
    assert est.cfg.joint_names == JOINTS and est.cfg.image_size == TINY.image_size
    frames = torch.as_tensor(data.frames[:5])
    torch.testing.assert_close(est(frames), trainer.pose.eval()(frames))
    training = read_config(tmp_path / "m")[1]["training"]
    assert training["data"] == world_data  # the world model's data record is kept
    assert training["data_by_stage"]["pose"]["train_episodes"] == 3
    assert set(training["device_by_stage"]) == {"autoencoder", "pose"}
    load_model(tmp_path / "m")  # the world model is still loadable beside it
    assert Trainer(episodes, tmp_path / "m", TINY, FAST).pose is not None


def test_missing_or_mismatched_pose_estimator_is_named(tmp_path, episodes):
    trainer = Trainer(episodes[:1], tmp_path / "m", TINY, FAST)
    trainer.run_stage("autoencoder", steps=2)
    with pytest.raises(CheckpointError, match="no 'pose' section"):
        load_pose_estimator(tmp_path / "m")
    trainer.run_stage("pose", steps=2)
    path = tmp_path / "m" / "pose.safetensors"
    state = load_file(str(path))
    state.pop(next(iter(state)))
    save_file(state, str(path))
    with pytest.raises(CheckpointError, match="1 missing"):
        load_pose_estimator(tmp_path / "m")


def test_pose_estimator_names_a_wrong_frame_size_and_a_bad_config():
    est = PoseEstimator(PoseConfig(image_size=16, num_joints=4))
    assert est(torch.zeros(2, 16, 16, 3, dtype=torch.uint8)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"\(N, 16, 16, 3\) frames"):
        est(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="multiple of 16"):
        PoseConfig(image_size=20)
    with pytest.raises(ValueError, match="joint_mean"):
        PoseConfig(num_joints=4, joint_mean=(0.0, 1.0))


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
    """An estimator that reads every image as one pose."""

    def __init__(self, q):
        super().__init__(PoseConfig(image_size=16, num_joints=4, joint_names=JOINTS))
        self.q = torch.as_tensor(q, dtype=torch.float32)

    def forward(self, frames):
        return self.q.expand(frames.shape[0], -1)


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
        goal, q = sim.task.goal_image, sim.task.goal_joints
    read = np.array([0.1, -0.2, 0.3, -0.4])
    auto = session_with("auto", FixedPose(read))
    auto.set_goal(goal)
    np.testing.assert_allclose(auto.goal_joints(), read, atol=1e-6)  # the image alone
    auto.set_goal_joints(JOINTS, q)
    np.testing.assert_array_equal(auto.goal_joints(), q)  # a sent pose wins
    image = session_with("image", FixedPose(read))
    image.set_goal(goal)
    image.set_goal_joints(JOINTS, q)
    np.testing.assert_allclose(image.goal_joints(), read, atol=1e-6)
    given = session_with("given", FixedPose(read))
    given.set_goal(goal)
    assert given.goal_joints() is None  # never the estimate
    assert session_with("auto", None).goal_joints() is None
    with pytest.raises(ValueError, match="pose estimator"):
        session_with("image", None)
    with pytest.raises(ValueError, match="goal_pose must be one of"):
        PlannerConfig(goal_pose="guess")


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
