"""The goal-pose estimator: the arm's joint positions from one camera image.

A reach goal arrives as an image. The image distance alone has wrong-fold minima: an arm whose
distal links are folded the other way overlaps its goal about as well as one on the way there
(README, closed-loop reach), so CEM settles in them. This estimator reads the goal image and
estimates the pose it shows; the planner's joint-goal cost (CostConfig.joint_goal, with a margin
for the estimate's error) then keeps the search in the right basin and the image terms finish.

It works in two steps, so that what is learned is local and what is geometry is exact:
1. A small U-Net finds the skeleton's keypoints (the prompt renderer's: link origins and the tool
   point) as heatmaps at half the image size; their soft-argmax gives sub-pixel positions.
2. `fit_joints` finds the joints whose keypoints, through the URDF's kinematics and the camera
   (`PromptRenderer.project`, the prompts' own projection), land on them: gradient descent from
   several starting poses within the joint limits, the best fit wins. A short distal link moves
   its keypoint by a pixel or two over the reach tolerance (0.15 rad), which a direct regression
   of the angles did not resolve (README, goal-pose estimator).

    est = PoseEstimator(PoseConfig(image_size=64, num_joints=4, keypoints=..., joint_names=...))
    uv = est(frames)                      # (N, S, S, 3) uint8 -> (N, K, 2) pixels
    q = est.estimate(frames, renderer)    # -> (N, J) rad; renderer: a PromptRenderer at S x S

It trains on the recorded (frame, joint state) pairs of episode bags (wm_ros.train, stage
"pose"): the keypoints of the recorded joints, projected, are its targets (`keypoint_loss`).
`wm-ros collect --policy poses` records arm motion over the whole joint range for it. Saved
beside the world model as `pose.safetensors`, its PoseConfig under "pose" in config.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from wm_ros.config import PoseConfig
from wm_ros.model.checkpoint import load_part, save_part

POSE_FILE = "pose.safetensors"
HEATMAP_SIGMA_PX = 1.5  # spread of the target heatmaps, image pixels
HEATMAP_WEIGHT = 0.1  # of the heatmap cross-entropy beside the keypoint distance
FIT_ROBUST_PX = 0.5  # the fit's loss is sqrt(d^2 + this^2) per keypoint: one stray keypoint
# pulls less than under squares
FIT_LR = (0.05, 0.01)  # rad per step, first and second half of the fit


class _Res(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class PoseEstimator(nn.Module):
    """Keypoint heatmaps of (N, S, S, 3) frames; joints fitted to them (module doc)."""

    def __init__(self, cfg: PoseConfig) -> None:
        super().__init__()
        if not cfg.keypoints:
            raise ValueError("PoseConfig.keypoints must name the keypoints the estimator finds")
        self.cfg = cfg
        c0, c1, c2, c3 = cfg.width // 2, cfg.width, 2 * cfg.width, 3 * cfg.width
        down = {"kernel_size": 4, "stride": 2, "padding": 1}
        self.enc0 = nn.Sequential(nn.Conv2d(3, c0, 3, padding=1), nn.SiLU())  # S
        self.enc1 = nn.Sequential(nn.Conv2d(c0, c1, **down), _Res(c1))  # S/2
        self.enc2 = nn.Sequential(nn.Conv2d(c1, c2, **down), _Res(c2))  # S/4
        self.enc3 = nn.Sequential(nn.Conv2d(c2, c3, **down), _Res(c3), _Res(c3))  # S/8
        self.dec2 = nn.Sequential(nn.Conv2d(c3 + c2, c2, 3, padding=1), _Res(c2))  # S/4
        self.dec1 = nn.Sequential(nn.Conv2d(c2 + c1, c1, 3, padding=1), _Res(c1))  # S/2
        self.head = nn.Conv2d(c1, len(cfg.keypoints), 1)
        mean = cfg.joint_mean or (0.0,) * cfg.num_joints
        self.register_buffer("joint_mean", torch.tensor(mean, dtype=torch.float32))

    def heatmap_logits(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, S, S, 3) uint8 (or float in [0, 1]) frames -> (N, K, S/2, S/2) logits."""
        s = self.cfg.image_size
        if frames.ndim != 4 or tuple(frames.shape[1:]) != (s, s, 3):
            raise ValueError(
                f"the pose estimator takes (N, {s}, {s}, 3) frames, got {tuple(frames.shape)}"
            )
        x = frames.permute(0, 3, 1, 2).float()
        if frames.dtype == torch.uint8:
            x = x / 255.0
        a = self.enc1(self.enc0(2.0 * x - 1.0))
        b = self.enc2(a)
        up = nn.functional.interpolate(self.enc3(b), scale_factor=2)
        up = nn.functional.interpolate(self.dec2(torch.cat([up, b], 1)), scale_factor=2)
        return self.head(self.dec1(torch.cat([up, a], 1)))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, S, S, 3) frames -> (N, K, 2) keypoints (u, v), pixels of the S x S image."""
        return soft_argmax(self.heatmap_logits(frames), self.cfg.image_size)

    @torch.no_grad()
    def keypoints(self, frames: np.ndarray, batch: int = 256) -> np.ndarray:
        """(N, S, S, 3) uint8 frames -> (N, K, 2) float64 keypoints, pixels."""
        device = self.joint_mean.device
        frames = np.asarray(frames, dtype=np.uint8)
        out = []
        for i in range(0, len(frames), batch):
            chunk = torch.from_numpy(np.array(frames[i : i + batch]))  # a copy: may be read-only
            out.append(self(chunk.to(device)).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.cfg.keypoints), 2))

    def estimate(self, frames: np.ndarray, renderer) -> np.ndarray:
        """(N, S, S, 3) uint8 frames -> (N, J) float64 joint positions, rad (cfg.joint_names
        order), fitted through `renderer` (a wm_ros.prompts.PromptRenderer at S x S whose
        skeleton and joints are the estimator's)."""
        return self.fit(self.keypoints(frames), renderer)[0]

    def fit(self, uv: np.ndarray, renderer) -> tuple[np.ndarray, np.ndarray]:
        """`fit_joints` with this estimator's settings, after checking `renderer` fits it."""
        check_renderer(self.cfg, renderer)
        return fit_joints(
            uv,
            renderer,
            starts=self.cfg.fit_starts,
            iterations=self.cfg.fit_iterations,
            first=np.asarray(self.joint_mean.cpu(), dtype=np.float64),
        )


def check_renderer(cfg: PoseConfig, renderer) -> None:
    """Raise ValueError unless the renderer draws the estimator's keypoints, joints and size."""
    names = tuple(renderer.skeleton.keypoint_names)
    if names != tuple(cfg.keypoints):
        raise ValueError(
            f"the pose estimator finds keypoints {cfg.keypoints}, the robot has {names}"
        )
    if cfg.joint_names and tuple(renderer.joint_names) != tuple(cfg.joint_names):
        raise ValueError(
            f"the pose estimator covers joints {cfg.joint_names}, the robot {renderer.joint_names}"
        )
    size = (renderer.camera.width, renderer.camera.height)
    if size != (cfg.image_size, cfg.image_size):
        raise ValueError(
            f"the pose estimator reads {cfg.image_size} px images; the renderer projects to {size}"
        )


def _cell_centres(r: int, image_size: int, like: torch.Tensor) -> torch.Tensor:
    """(r,) centres of heatmap cells in image pixels (pixel centres at integers, as
    wm_ros.camera projects): cell i covers pixels [i, i + 1) * image_size / r."""
    return (torch.arange(r, device=like.device, dtype=like.dtype) + 0.5) * (image_size / r) - 0.5


def soft_argmax(logits: torch.Tensor, image_size: int) -> torch.Tensor:
    """(N, K, r, r) heatmap logits -> (N, K, 2) expected (u, v), pixels of an image_size image."""
    p = logits.flatten(2).softmax(-1).view(logits.shape)
    centres = _cell_centres(logits.shape[-1], image_size, p)
    u = (p.sum(2) * centres).sum(-1)
    v = (p.sum(3) * centres).sum(-1)
    return torch.stack([u, v], -1)


def keypoint_loss(
    logits: torch.Tensor, target: torch.Tensor, image_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training loss of the heatmaps: L1 distance (pixels) of the soft-argmax to the target
    keypoints plus HEATMAP_WEIGHT x the cross-entropy to a Gaussian around them (keeps the
    heatmaps single-peaked: a soft-argmax between two blobs can sit on neither). Keypoints
    outside the image do not count.

    Args:
        logits: (N, K, r, r) heatmap logits; target: (N, K, 2) keypoints, pixels.
    Returns:
        (loss, mean L1 distance in pixels of the keypoints inside the image).
    """
    target = target.to(logits.dtype)
    inside = ((target >= -0.5) & (target < image_size - 0.5)).all(-1).to(logits.dtype)  # (N, K)
    count = inside.sum().clamp(min=1.0)
    l1 = ((soft_argmax(logits, image_size) - target).abs().sum(-1) * inside).sum() / count
    centres = _cell_centres(logits.shape[-1], image_size, logits)
    gauss = torch.exp(-((centres - target[..., None]) ** 2) / (2 * HEATMAP_SIGMA_PX**2))
    heat = gauss[..., 1, :, None] * gauss[..., 0, None, :]  # (N, K, r, r): rows v, columns u
    heat = heat.flatten(2)
    heat = heat / heat.sum(-1, keepdim=True).clamp(min=1e-12)
    ce = -(heat * logits.flatten(2).log_softmax(-1)).sum(-1)
    return l1 + HEATMAP_WEIGHT * (ce * inside).sum() / count, l1


def fit_joints(
    uv: np.ndarray,
    renderer,
    *,
    starts: int = 64,
    iterations: int = 200,
    first: np.ndarray | None = None,
    seed: int = 0,
    batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """The joints whose projected keypoints land on `uv` (module doc, step 2).

    Args:
        uv: (N, K, 2) keypoints, pixels of the renderer's image, in its skeleton's order.
        renderer: a wm_ros.prompts.PromptRenderer (kinematics, skeleton and camera).
        starts: starting poses per image: `first` (when given) and uniform draws within the
            joint limits ([-pi, pi] for unlimited joints); seeded, so fits repeat.
        iterations: Adam steps, the step size FIT_LR[0] then FIT_LR[1] for the second half;
            every step ends within the limits.
        batch: images fitted at once.
    Returns:
        (N, J) joint positions in the renderer's joint order (rad; m for prismatic joints) and
        (N,) the mean distance of their keypoints to `uv`, pixels (how well it fits).
    """
    uv_all = torch.as_tensor(np.asarray(uv, dtype=np.float64), dtype=renderer.dtype)
    limits = torch.as_tensor(renderer.model.joint_limits, dtype=renderer.dtype)
    lo, hi = limits[:, 0], limits[:, 1]
    unlimited = ~torch.isfinite(lo) | ~torch.isfinite(hi)
    lo_draw = torch.where(unlimited, torch.full_like(lo, -np.pi), lo)
    hi_draw = torch.where(unlimited, torch.full_like(hi, np.pi), hi)
    gen = torch.Generator().manual_seed(seed)
    joints, residual = [], []
    for i in range(0, len(uv_all), batch):
        target = uv_all[i : i + batch].to(renderer.device)[:, None]  # (B, 1, K, 2)
        b = target.shape[0]
        q0 = lo_draw + (hi_draw - lo_draw) * torch.rand(b, starts, len(lo), generator=gen)
        if first is not None:
            q0[:, 0] = torch.as_tensor(first, dtype=q0.dtype)
        q = torch.max(torch.min(q0, hi), lo).to(renderer.device).requires_grad_(True)
        opt = torch.optim.Adam([q], lr=FIT_LR[0])
        for step in range(iterations):
            if step == iterations // 2:
                for group in opt.param_groups:
                    group["lr"] = FIT_LR[1]
            loss = _robust_error(_squared_distances(renderer, q, target)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                q.copy_(torch.max(torch.min(q, hi.to(q.device)), lo.to(q.device)))
        with torch.no_grad():
            d2 = _squared_distances(renderer, q, target)  # (B, starts, K)
            dist = d2.sqrt().mean(-1)
            best = _robust_error(d2).argmin(1)
            rows = torch.arange(b, device=q.device)
            joints.append(q[rows, best].double().cpu())
            residual.append(dist[rows, best].double().cpu())
    if not joints:
        return np.zeros((0, len(lo))), np.zeros(0)
    return torch.cat(joints).numpy(), torch.cat(residual).numpy()


def _squared_distances(renderer, q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, starts, K) squared pixel distances of poses q (B, starts, J) to target (B, 1, K, 2)."""
    return (renderer.project(q)[0] - target).pow(2).sum(-1)


def _robust_error(d2: torch.Tensor) -> torch.Tensor:
    """(B, starts) the fit's loss: sqrt(d^2 + FIT_ROBUST_PX^2) summed over keypoints."""
    return (d2 + FIT_ROBUST_PX**2).sqrt().sum(-1)


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
