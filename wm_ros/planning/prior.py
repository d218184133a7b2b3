"""The learned action prior (the "learned action prior" of arXiv 2406.14436): a small network
that gives the mean and spread of the next H joint targets from the latest K frames (as
world-model latents) and the current joint state. The CEM planner seeds its sampling
distribution with it instead of a blind Gaussian around the current pose.

    prior = ActionPrior(PriorConfig.for_model(model.cfg, joint_names))
    mean, std = prior(z_ctx, joints)        # (N, K, c, s, s), (N, J) -> (N, H, J) each, rad

It predicts offsets from the current joints (the actions of a smooth arm stay near them) and a
log-spread squashed into [min_std, max_std]; it trains by the Gaussian negative log-likelihood
of the recorded actions (wm_ros.train, stage "prior"). Saved beside the world model as
`prior.safetensors`, its PriorConfig under "prior" in config.json.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from wm_ros.config import PriorConfig
from wm_ros.model.checkpoint import load_part, save_part

PRIOR_FILE = "prior.safetensors"


class ActionPrior(nn.Module):
    """(latents (N, K, c, s, s), joints (N, J)) -> (mean (N, H, J), std (N, H, J)), rad."""

    def __init__(self, cfg: PriorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w, s = cfg.width, cfg.latent_size
        self.encoder = nn.Sequential(  # (N, K * c, s, s) -> (N, 2w, s/4, s/4)
            nn.Conv2d(cfg.context * cfg.latent_channels, w, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
        )
        feats = 2 * w * (s // 4) ** 2
        self.mlp = nn.Sequential(
            nn.Linear(feats + cfg.num_joints, cfg.hidden),
            nn.SiLU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.SiLU(),
        )
        self.head = nn.Linear(cfg.hidden, 2 * cfg.horizon * cfg.num_joints)
        nn.init.zeros_(self.head.weight)  # start at "hold the current pose", mid spread
        nn.init.zeros_(self.head.bias)

    def forward(self, latents: torch.Tensor, joints: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cfg = self.cfg
        want = (cfg.context, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
        if tuple(latents.shape[1:]) != want or joints.shape[-1] != cfg.num_joints:
            raise ValueError(
                f"prior takes latents (N, {', '.join(map(str, want))}) and joints "
                f"(N, {cfg.num_joints}); got {tuple(latents.shape)} and {tuple(joints.shape)}"
            )
        h = self.mlp(torch.cat([self.encoder(latents.flatten(1, 2)), joints], dim=1))
        out = self.head(h).view(-1, 2, cfg.horizon, cfg.num_joints)
        mean = joints[:, None, :] + out[:, 0]
        # sigmoid squashing keeps the spread inside [min_std, max_std] on a log scale.
        lo, hi = math.log(cfg.min_std), math.log(cfg.max_std)
        std = torch.exp(lo + (hi - lo) * torch.sigmoid(out[:, 1]))
        return mean, std


def gaussian_nll(mean: torch.Tensor, std: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per action component (constant dropped)."""
    return (0.5 * ((target - mean) / std).pow(2) + std.log()).mean()


def save_prior(prior: ActionPrior, directory: str | Path) -> None:
    """Write prior.safetensors and the "prior" section of config.json."""
    save_part(prior, directory, PRIOR_FILE, "prior")


def has_prior(directory: str | Path) -> bool:
    return (Path(directory) / PRIOR_FILE).is_file()


def load_prior(directory: str | Path, device: str | torch.device = "cpu") -> ActionPrior:
    """Rebuild the prior from config.json's "prior" section and load its weights (eval mode).

    Raises:
        CheckpointError: no prior in the directory, or weights that do not match the config.
    """
    return load_part(directory, PRIOR_FILE, "prior", ActionPrior, PriorConfig, device=device)
