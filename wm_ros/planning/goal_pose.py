"""The goal-pose estimator: the arm's joint positions from one camera image.

A reach goal arrives as an image. The image distance alone has wrong-fold minima: an arm whose
distal links are folded the other way overlaps its goal about as well as one on the way there
(README, closed-loop reach), so CEM settles in them. This small CNN reads the goal image and
estimates the pose it shows; the planner's joint-goal cost (CostConfig.joint_goal, with a margin
for the estimate's error) then keeps the search in the right basin and the image terms finish.

    est = PoseEstimator(PoseConfig(image_size=64, num_joints=4, joint_mean=..., joint_names=...))
    q = est(frames)                       # (N, S, S, 3) uint8 -> (N, J) rad

It trains by mean squared error on the recorded (frame, joint state) pairs of episode bags
(wm_ros.train, stage "pose"; `wm-ros collect --policy poses` records arm motion over the whole
joint range for it). Saved beside the world model as `pose.safetensors`, its PoseConfig under
"pose" in config.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from wm_ros.config import PoseConfig
from wm_ros.model.checkpoint import load_part, save_part

POSE_FILE = "pose.safetensors"


class PoseEstimator(nn.Module):
    """(N, S, S, 3) uint8 RGB frames (or float in [0, 1]) -> (N, J) joint positions, rad."""

    def __init__(self, cfg: PoseConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.encoder = nn.Sequential(  # (N, 3, S, S) -> (N, 4w, S/16, S/16)
            nn.Conv2d(3, w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
        )
        feats = 4 * w * (cfg.image_size // 16) ** 2
        self.head = nn.Sequential(
            nn.Linear(feats, cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, cfg.num_joints),
        )
        mean = cfg.joint_mean or (0.0,) * cfg.num_joints
        self.register_buffer("joint_mean", torch.tensor(mean, dtype=torch.float32))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        s = self.cfg.image_size
        if frames.ndim != 4 or tuple(frames.shape[1:]) != (s, s, 3):
            raise ValueError(
                f"the pose estimator takes (N, {s}, {s}, 3) frames, got {tuple(frames.shape)}"
            )
        x = frames.permute(0, 3, 1, 2).float()
        if frames.dtype == torch.uint8:
            x = x / 255.0
        return self.joint_mean + self.head(self.encoder(2.0 * x - 1.0))

    @torch.no_grad()
    def estimate(self, frames: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 frames -> (N, J) float64 joint positions, rad."""
        device = self.joint_mean.device
        frames = torch.as_tensor(np.array(frames, dtype=np.uint8), device=device)
        return self(frames).double().cpu().numpy()


def save_pose_estimator(est: PoseEstimator, directory: str | Path) -> None:
    """Write pose.safetensors and the "pose" section of config.json."""
    save_part(est, directory, POSE_FILE, "pose")


def has_pose_estimator(directory: str | Path) -> bool:
    return (Path(directory) / POSE_FILE).is_file()


def load_pose_estimator(directory: str | Path, device: str | torch.device = "cpu") -> PoseEstimator:
    """Rebuild the estimator from config.json's "pose" section and load its weights (eval mode).

    Raises:
        CheckpointError: no estimator in the directory, or weights that do not match the config.
    """
    return load_part(directory, POSE_FILE, "pose", PoseEstimator, PoseConfig, device=device)
