"""`wm-ros eval pose`: how well the goal-pose estimator (wm_ros.planning.goal_pose) reads the arm's
joints off an image.

On the goal images of simulator tasks (the images it serves in planning, seeded episodes) and,
with --data, on every frame of episode bags: mean absolute error per joint, and the largest
joint error per image (median, 90th percentile, fraction within 0.15 rad (the reach task's
tolerance), 0.3 and 0.5 rad), beside the error of guessing the estimator's mean pose; the
distance of the keypoints it finds to the true ones (pixels, per keypoint) and how well the
fitted joints reproject onto them.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from wm_ros.planning.goal_pose import PoseEstimator

log = logging.getLogger(__name__)

WITHIN_RAD = (0.15, 0.3, 0.5)


def pose_errors(est: PoseEstimator, frames: np.ndarray, joints: np.ndarray, renderer) -> dict:
    """Figures (module doc) of `est` on (N, S, S, 3) uint8 frames with their (N, J) joints;
    `renderer` (a PromptRenderer of the camera that took them, at S x S) projects the true
    keypoints and fits the joints."""
    uv = est.keypoints(frames)
    q, residual = est.fit(uv, renderer)
    truth_uv = renderer.project(np.asarray(joints, dtype=np.float64))[0].double().cpu().numpy()
    keypoint_err = np.linalg.norm(uv - truth_uv, axis=-1)  # (N, K) pixels
    err = np.abs(q - joints)
    worst = err.max(axis=1)
    guess = np.abs(np.asarray(est.joint_mean.cpu(), dtype=np.float64) - joints)
    return {
        "images": len(frames),
        "mae_rad": err.mean(axis=0).round(4).tolist(),
        "mean_pose_mae_rad": guess.mean(axis=0).round(4).tolist(),
        "max_joint_error_rad": {
            "p50": float(np.median(worst)),
            "p90": float(np.quantile(worst, 0.9)),
            **{f"within_{t}": float(np.mean(worst < t)) for t in WITHIN_RAD},
        },
        "keypoint_error_px": {
            "mean_per_keypoint": keypoint_err.mean(axis=0).round(3).tolist(),
            "p90": float(np.quantile(keypoint_err, 0.9)),
        },
        "fit_residual_px_p50": float(np.median(residual)),
    }


def task_goal_images(task: str, seeds: range, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, 3) goal images and (N, J) goal joints of `task` episodes with these seeds,
    set up as `wm-ros eval plan` sets them up."""
    from wm_ros.eval.plan import EpisodeSetup
    from wm_ros.sim import TabletopSim

    cfg = EpisodeSetup().sim_config(task).replace(image_width=image_size, image_height=image_size)
    images, joints = [], []
    with TabletopSim(cfg) as sim:
        for s in seeds:
            sim.reset(s)
            images.append(sim.task.goal_image)
            joints.append(sim.task.goal_joints)
    return np.stack(images), np.stack(joints)


def _cmd_pose(args: argparse.Namespace) -> int:
    from wm_ros.eval.timing import machine_info
    from wm_ros.model import CheckpointError
    from wm_ros.model.checkpoint import read_config
    from wm_ros.model.conditioning import model_prompt_renderer
    from wm_ros.planning.goal_pose import load_pose_estimator
    from wm_ros.ros.episodes import EpisodeBagError, load_episodes

    try:
        est = load_pose_estimator(args.model)
        renderer = model_prompt_renderer(read_config(args.model)[0])
        episodes = load_episodes(args.data, renderer.joint_names) if args.data else []
    except (CheckpointError, EpisodeBagError) as err:
        log.error("wm-ros eval pose: %s", err)
        return 2
    seeds = range(args.seed, args.seed + args.episodes)
    images, joints = task_goal_images(args.task, seeds, est.cfg.image_size)
    out = {
        "model": str(args.model),
        "task": args.task,
        "seeds": [seeds.start, seeds.stop - 1],
        "goal_images": pose_errors(est, images, joints, renderer),
        "machine": machine_info(),
    }
    if episodes:
        if episodes[0].image_size != est.cfg.image_size:
            log.error(
                "wm-ros eval pose: %s holds %d px frames, the estimator reads %d px",
                args.data,
                episodes[0].image_size,
                est.cfg.image_size,
            )
            return 2
        frames = np.concatenate([e.frames for e in episodes])
        out["data"] = {
            "bags": str(args.data),
            "episodes": len(episodes),
            **pose_errors(est, frames, np.concatenate([e.joints for e in episodes]), renderer),
        }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    g = out["goal_images"]
    log.info(
        "%s goal images, seeds %d-%d: mean |error| per joint %s rad (mean pose %s); largest "
        "joint error p50 %.3f rad, within 0.15 rad %.2f; keypoints off by %s px -> %s",
        args.task,
        seeds.start,
        seeds.stop - 1,
        g["mae_rad"],
        g["mean_pose_mae_rad"],
        g["max_joint_error_rad"]["p50"],
        g["max_joint_error_rad"]["within_0.15"],
        g["keypoint_error_px"]["mean_per_keypoint"],
        args.json,
    )
    if episodes:
        d = out["data"]
        log.info(
            "every frame of %d episodes of %s: mean |error| per joint %s rad; largest joint error "
            "p50 %.3f rad, within 0.15 rad %.2f",
            d["episodes"],
            args.data,
            d["mae_rad"],
            d["max_joint_error_rad"]["p50"],
            d["max_joint_error_rad"]["within_0.15"],
        )
    return 0


def add_pose_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros eval pose` (the handler is set as `func`)."""
    from wm_ros.config import TASK_KINDS

    parser.add_argument(
        "--model", type=Path, required=True, help="model directory with pose.safetensors"
    )
    parser.add_argument("--task", choices=TASK_KINDS, default="reach", help="whose goal images")
    parser.add_argument("--seed", type=int, default=0, help="first episode seed")
    parser.add_argument("--episodes", type=int, default=50, help="goal images (episodes)")
    parser.add_argument("--data", type=Path, help="also every frame of these episode bags")
    parser.add_argument("--json", type=Path, required=True, help="write the figures here")
    parser.set_defaults(func=_cmd_pose)
