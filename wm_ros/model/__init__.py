"""The action-conditioned video world model (see world_model.py for the architecture).

from wm_ros.model import WorldModel, load_model, save_model
model = WorldModel(ModelConfig())
z = model.encode(frames)                                  # (..., 3, S, S) -> (..., c, h, w)
future = model.rollout(z_ctx, z_mem, prompts, steps=2)    # (N, L, c, h, w)
"""

from wm_ros.model.autoencoder import FrameAutoencoder
from wm_ros.model.checkpoint import CheckpointError, load_model, save_model
from wm_ros.model.world_model import Adapter, BaseModel, VelocityParts, WorldModel

__all__ = [
    "Adapter",
    "BaseModel",
    "CheckpointError",
    "FrameAutoencoder",
    "VelocityParts",
    "WorldModel",
    "load_model",
    "save_model",
]
