"""`wm-ros collect`: exploration episodes written straight from the simulator core to rosbag2.

One bag per episode (`OUT/episode_<seed>/`), with the topics and types a real robot records:
camera images and camera info at the control rate, joint states at JOINT_RATE_PER_STEP x that,
the commanded action of every control step on `/wm/plan`, plus the simulator's ground truth
(segmentation labels, puck pose) for evaluation and the episode's goal image. No DDS is involved:
messages are built and serialised in-process, so collection runs as fast as the simulator.
`OUT/collect.json` summarises the run (throughput, fraction of steps in which the puck moved).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from tqdm import tqdm

from wm_ros.config import SimConfig, SimNodeConfig
from wm_ros.ros import topics
from wm_ros.ros.bag import BagWriter
from wm_ros.ros.conversions import (
    camera_model_to_info,
    core_to_trajectory_msg,
    numpy_to_image,
    seconds_to_time,
    vector_to_joint_state,
)
from wm_ros.sim import TabletopSim
from wm_ros.sim.exploration import POLICIES, ExplorationPolicy, collection_policy
from wm_ros.types import JointTrajectory

log = logging.getLogger(__name__)

JOINT_RATE_PER_STEP = 5  # joint-state messages per control step (50 Hz at control_dt = 0.1 s)
PUCK_MOVING_M = 0.001  # a control step "moves the puck" when its centre travels more than this
EPOCH_S = 1_700_000_000.0  # bag time of every episode's start: realistic, deterministic stamps
# The frame ids sim_node stamps its messages with, so collected bags and live ones agree.
BASE_FRAME = SimNodeConfig().base_frame
CAMERA_FRAME = SimNodeConfig().camera_frame


def _bag_ns(sim_time: float) -> int:
    """Bag timestamp (ns) of a simulated time within an episode."""
    return round((EPOCH_S + sim_time) * 1e9)


def episode_dir(out: Path, seed: int) -> Path:
    return out / f"episode_{seed:06d}"


def _write_episode(
    sim: TabletopSim, policy: ExplorationPolicy, bag: BagWriter, steps: int
) -> tuple[int, int]:
    """Run one episode into `bag`; returns (frames written, control steps the puck moved in)."""
    cfg = sim.cfg
    camera = sim.camera_model()
    sub = cfg.substeps // JOINT_RATE_PER_STEP

    def write_joints() -> None:
        msg = vector_to_joint_state(
            sim.joint_names,
            sim.joint_positions(),
            sim.joint_velocities(),
            seconds_to_time(EPOCH_S + sim.time),
        )
        msg.header.frame_id = BASE_FRAME
        bag.write(topics.JOINT_STATES, _bag_ns(sim.time), msg)

    def write_camera() -> None:
        stamp = seconds_to_time(EPOCH_S + sim.time)
        t = _bag_ns(sim.time)
        bag.write(topics.IMAGE, t, numpy_to_image(sim.render(), "rgb8", stamp, CAMERA_FRAME))
        bag.write(topics.CAMERA_INFO, t, camera_model_to_info(camera, stamp, CAMERA_FRAME))
        labels = sim.segmentation().astype(np.uint8)
        bag.write(topics.SEGMENTATION, t, numpy_to_image(labels, "mono8", stamp, CAMERA_FRAME))
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = stamp, BASE_FRAME
        x, y, z = (float(v) for v in sim.puck_position())
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = x, y, z
        pose.pose.orientation.w = 1.0
        bag.write(topics.PUCK_POSE, t, pose)

    goal_stamp = seconds_to_time(EPOCH_S)
    bag.write(
        topics.GOAL_IMAGE,
        _bag_ns(0.0),
        numpy_to_image(sim.task.goal_image, "rgb8", goal_stamp, CAMERA_FRAME),
    )
    policy.reset(sim)
    moved = 0
    for _ in range(steps):
        write_camera()
        target = policy(sim)
        command = JointTrajectory(
            sim.joint_names, np.array([cfg.control_dt]), np.asarray(target, float)[None]
        )
        bag.write(
            topics.PLAN,
            _bag_ns(sim.time),
            core_to_trajectory_msg(command, seconds_to_time(EPOCH_S + sim.time)),
        )
        puck_before = sim.puck_position()[:2].copy()
        for _ in range(JOINT_RATE_PER_STEP):
            write_joints()
            sim.step(target, substeps=sub)
        moved += int(np.linalg.norm(sim.puck_position()[:2] - puck_before) > PUCK_MOVING_M)
    write_camera()
    write_joints()
    return steps + 1, moved


def collect(
    episodes: int,
    seed: int,
    out: Path,
    *,
    steps: int = 50,
    image_size: int = 64,
    storage: str = "mcap",
    sim_cfg: SimConfig | None = None,
    policy: str = "explore",
) -> dict:
    """Collect `episodes` episodes of the `policy` mixture (wm_ros.sim.exploration.POLICIES)
    with seeds seed, seed+1, ... into `out`.

    Returns the summary also written to `out/collect.json`.
    Raises:
        ValueError: a non-positive count, or an episode bag that exists already (never
            overwritten).
    """
    if episodes <= 0 or steps <= 0:
        raise ValueError("--episodes and --steps must be positive")
    collection_policy(policy, seed)  # an unknown name fails before anything is written
    cfg = (sim_cfg or SimConfig()).replace(image_width=image_size, image_height=image_size)
    if cfg.substeps % JOINT_RATE_PER_STEP:
        raise ValueError(
            f"control_dt / physics_dt = {cfg.substeps} must be a multiple of {JOINT_RATE_PER_STEP}"
        )
    seeds = list(range(seed, seed + episodes))
    existing = [episode_dir(out, s) for s in seeds if episode_dir(out, s).exists()]
    if existing:
        raise ValueError(f"{existing[0]} exists already; choose another --out or --seed")
    start = time.perf_counter()
    frames = moved = 0
    per_episode = []
    with TabletopSim(cfg.replace(seed=seed)) as sim:
        bar = tqdm(seeds, desc="collect", unit="episode")
        for s in bar:
            sim.reset(s)
            with BagWriter(episode_dir(out, s), storage=storage) as bag:
                n, m = _write_episode(sim, collection_policy(policy, s), bag, steps)
            frames += n
            moved += m
            per_episode.append({"seed": s, "frames": n, "puck_moving_fraction": m / steps})
            bar.set_postfix(fps=f"{frames / (time.perf_counter() - start):.0f}")
    wall = time.perf_counter() - start
    summary = {
        "episodes": episodes,
        "seed": seed,
        "steps": steps,
        "frames": frames,
        "wall_s": wall,
        "frames_per_s": frames / wall,
        "puck_moving_fraction": moved / (episodes * steps),
        "puck_moving_threshold_m": PUCK_MOVING_M,
        "storage": storage,
        "policy": policy,
        "policy_settings": POLICIES[policy],  # the mixture's ExplorationPolicy keywords
        "sim": cfg.to_dict(),
        "machine": f"{platform.machine()} {platform.processor() or ''} {platform.node()}".strip(),
        "per_episode": per_episode,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "collect.json").write_text(json.dumps(summary, indent=2))
    return summary
