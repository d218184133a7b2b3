"""How good the learned action prior is on held-out episodes (wm_ros.planning.prior).

Per future step 1..H: mean absolute error of the prior's mean to the recorded joint targets,
beside the "hold the current pose" baseline (what CEM centres on without a prior); the mean
predicted spread; and calibration: the fraction of recorded targets within one and two
predicted standard deviations (a calibrated Gaussian gives 0.68 and 0.95).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wm_ros.data import Episode
from wm_ros.eval.predict import PredictionDataError, choose_windows, window_frames
from wm_ros.model import WorldModel
from wm_ros.planning.prior import ActionPrior, gaussian_nll


@torch.no_grad()
def evaluate_prior(
    prior: ActionPrior,
    model: WorldModel,
    episodes: Sequence[Episode],
    *,
    seed: int = 0,
    windows_per_episode: int = 4,
) -> dict:
    """Figures of `prior` (module doc) on windows of `episodes` drawn as eval predict draws
    them; `model` supplies the latents the prior reads."""
    cfg, dev = prior.cfg, next(prior.parameters()).device
    k, h = cfg.context, cfg.horizon
    order = np.arange(episodes[0].actions.shape[1])
    if cfg.joint_names and episodes[0].joint_names:
        names = list(episodes[0].joint_names)
        missing = [n for n in cfg.joint_names if n not in names]
        if missing:
            raise PredictionDataError(f"episodes lack the prior's joints {missing} (have {names})")
        order = np.array([names.index(n) for n in cfg.joint_names])
    windows = choose_windows([len(e) for e in episodes], k + h, 0, windows_per_episode, seed)
    if not windows:
        raise PredictionDataError(f"every episode is shorter than {k + h} frames")
    frames, joints, targets = [], [], []
    for e, s in windows:
        ep, idx = episodes[e], window_frames(s, k, 0, h)
        frames.append(ep.frames[idx[:k]])
        joints.append(ep.joints[idx[k - 1], order])
        targets.append(ep.actions[idx[k:] - 1][:, order])  # actions[i - 1] leads to frame i
    z = model.encode_frames(np.stack(frames))  # (B, K, c, s, s)
    q = torch.as_tensor(np.stack(joints), device=dev)
    target = torch.as_tensor(np.stack(targets), device=dev)  # (B, H, J)
    mean, std = prior(z, q)
    err = (mean - target).abs()  # (B, H, J)
    hold = (q[:, None] - target).abs()
    z_score = (target - mean).abs() / std

    def per_step(v: torch.Tensor) -> list[float]:
        return [float(x) for x in v.mean(dim=(0, 2)).cpu()]

    return {
        "windows": len(windows),
        "mae_rad": per_step(err),
        "hold_pose_mae_rad": per_step(hold),
        "std_rad": per_step(std),
        "within_1_std": per_step((z_score <= 1).float()),
        "within_2_std": per_step((z_score <= 2).float()),
        "nll": float(gaussian_nll(mean, std, target)),
        "summary": {
            "mae_rad_mean": float(err.mean()),
            "hold_pose_mae_rad_mean": float(hold.mean()),
            "within_1_std": float((z_score <= 1).float().mean()),
            "within_2_std": float((z_score <= 2).float().mean()),
        },
    }
