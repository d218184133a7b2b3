"""PromptRenderer: joint trajectories -> skeleton prompt images, in one batched call.

    renderer = PromptRenderer("arm.urdf", camera, PromptConfig(), device="cpu")
    prompts = renderer.render(joints)          # (N, H, J) -> (N, H, C, h, w), floats in [0, 1]

FK of the URDF -> keypoints (link origins, tool point) -> projection through the camera
(`wm_ros.camera.project_points`, the project's one projection) -> the skeleton rasteriser.
Everything runs on the renderer's device in its dtype; nothing loops over candidates or steps.
A renderer keeps workspaces between calls: use one per thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from wm_ros.camera import CameraModel, project_points
from wm_ros.config import PromptConfig
from wm_ros.kinematics import ForwardKinematics, RobotModel, Skeleton, load_urdf
from wm_ros.prompts.raster import RasterStyle, SkeletonRasterizer


def prompt_skeleton(model: RobotModel, cfg: PromptConfig) -> Skeleton:
    """The skeleton a PromptRenderer with these settings draws."""
    return Skeleton.from_model(
        model,
        tool_link=cfg.tool_link,
        base_link=cfg.base_link,
        links=cfg.skeleton_links,
        tool_offset=cfg.tool_offset,
    )


class PromptRenderer:
    """Draws a robot's poses as skeleton prompts (see module doc).

    Args:
        robot: a parsed RobotModel, URDF XML text (e.g. `robot_description`) or a URDF path.
        camera: the camera, at any resolution (its intrinsics are rescaled to the prompt size);
            its pose is in the frame of `cfg.base_link`.
        cfg: what to draw and how.
        device: where prompts are made ("cpu", "cuda", ...).
        dtype: float dtype of FK, projection and the prompts.
    Raises:
        ValueError: a bad URDF, a tool link that is unknown or not reachable from the base, a
            camera that is not a CameraModel.
    """

    def __init__(
        self,
        robot: RobotModel | str | Path,
        camera: CameraModel,
        cfg: PromptConfig | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not isinstance(camera, CameraModel):
            raise ValueError(f"camera must be a wm_ros.camera.CameraModel, got {type(camera)}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a float dtype, got {dtype}")
        self.cfg = cfg if cfg is not None else PromptConfig()
        self.model = robot if isinstance(robot, RobotModel) else load_urdf(robot)
        self.skeleton = prompt_skeleton(self.model, self.cfg)
        self.fk = ForwardKinematics(self.model, self.cfg.base_link or None)
        self.device = torch.device(device)
        self.dtype = dtype
        self.source_camera = camera
        self.camera = camera.with_size(self.cfg.image_width, self.cfg.image_height)
        self.rasterizer = SkeletonRasterizer(
            RasterStyle.from_config(self.skeleton, self.cfg),
            self.cfg.image_height,
            self.cfg.image_width,
        )
        self._overlay_rasterizers: dict[tuple[int, int, float], SkeletonRasterizer] = {}

    # ----------------------------------------------------------------- properties

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The actuated joints, in the column order `render` expects."""
        return self.fk.joint_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of one prompt."""
        return (self.rasterizer.channels, self.cfg.image_height, self.cfg.image_width)

    def joint_order(self, names: Sequence[str]) -> np.ndarray:
        """Column indices that reorder a joint state in `names` order to `joint_names` order.

        Raises:
            ValueError: a joint of the robot is missing from `names` (extra names are fine).
        """
        return self.model.joint_order(names)

    # ----------------------------------------------------------------- pipeline

    def _joints(self, joints: torch.Tensor | np.ndarray) -> torch.Tensor:
        q = torch.as_tensor(joints, device=self.device)
        if not q.is_floating_point():
            q = q.to(self.dtype)
        q = q.to(device=self.device, dtype=self.dtype)
        if q.ndim < 1 or q.shape[-1] != self.fk.num_joints:
            raise ValueError(
                f"joints have shape {tuple(q.shape)}; the last axis must hold the "
                f"{self.fk.num_joints} joints {list(self.joint_names)} (match names with "
                "joint_order)"
            )
        if not bool(torch.isfinite(q).all()):
            bad = (~torch.isfinite(q)).nonzero()[0].tolist()
            raise ValueError(f"joint values must be finite; first non-finite entry at {bad}")
        return q

    def keypoints(self, joints: torch.Tensor | np.ndarray) -> torch.Tensor:
        """(..., K, 3) skeleton keypoints in the base frame (metres) for joints (..., J)."""
        q = self._joints(joints)
        sk = self.skeleton
        return self.fk.points(q, sk.keypoint_links, sk.keypoint_offsets)

    def project(self, joints: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints in the prompt image: uv (..., K, 2) pixels and depth (..., K) metres."""
        return project_points(self.keypoints(joints), self.camera)

    def render(
        self, joints: torch.Tensor | np.ndarray, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Skeleton prompts for joint values.

        Args:
            joints: (..., J) joint values in `joint_names` order, rad or m; typically (N, H, J)
                candidates x future steps.
            out: optional contiguous (..., C, h, w) tensor on the renderer's device and of its
                dtype, reused across calls; on CPU this saves ~30 ms of page faults per 100 MB.
        Returns:
            (..., C, h, w) prompts in [0, 1] on the renderer's device (`out` when given).
        Raises:
            ValueError: wrong shape or non-finite joint values; a mismatched `out`.
        """
        uv, depth = self.project(joints)  # (..., K, 2), (..., K)
        lead = uv.shape[:-2]
        flat_out = None
        if out is not None:
            if tuple(out.shape) != (*lead, *self.image_shape) or out.dtype != self.dtype:
                raise ValueError(
                    f"out must be {(*lead, *self.image_shape)} {self.dtype}; got "
                    f"{tuple(out.shape)} {out.dtype}"
                )
            flat_out = out.view(-1, *self.image_shape)
        images = self.rasterizer(
            uv.reshape(-1, *uv.shape[-2:]), depth.reshape(-1, depth.shape[-1]), out=flat_out
        )  # (B, C, h, w)
        return images.view(*lead, *self.image_shape)

    def render_state(self, names: Sequence[str], positions: np.ndarray) -> torch.Tensor:
        """The prompt (C, h, w) of one joint state given by name (extra joints are ignored)."""
        q = np.asarray(positions, dtype=np.float64)[self.joint_order(names)]
        return self.render(q)

    # ----------------------------------------------------------------- overlays

    def overlay_rasterizer(self, width: int, height: int, scale: float) -> SkeletonRasterizer:
        """A rasteriser at another image size with sizes multiplied by `scale` (cached)."""
        key = (width, height, scale)
        r = self._overlay_rasterizers.get(key)
        if r is None:
            style = RasterStyle.from_config(self.skeleton, self.cfg, scale=scale)
            r = SkeletonRasterizer(style, height, width)
            self._overlay_rasterizers[key] = r
        return r

    def overlay(
        self,
        image: np.ndarray,
        joints: torch.Tensor | np.ndarray,
        opacity: float = 1.0,
        scale: float | None = None,
    ) -> np.ndarray:
        """Draw the skeleton of one pose over a camera image, for people.

        Args:
            image: (H, W, 3) uint8 RGB image from the renderer's camera (any resolution: the
                camera's intrinsics are rescaled to it).
            joints: (J,) joint values in `joint_names` order.
            opacity: 0..1, how opaque the skeleton is.
            scale: line width / dot radius factor relative to the prompt's; default
                max(1, W / cfg.image_width / 2), readable on large images.
        Returns:
            (H, W, 3) uint8 RGB.
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        if not 0.0 <= opacity <= 1.0:
            raise ValueError(f"opacity must be within [0, 1], got {opacity}")
        height, width = image.shape[:2]
        if scale is None:
            scale = max(1.0, width / self.cfg.image_width / 2)
        q = self._joints(joints)
        if q.ndim != 1:
            raise ValueError(f"overlay draws one pose: joints must be (J,), got {tuple(q.shape)}")
        camera = self.source_camera.with_size(width, height)
        sk = self.skeleton
        points = self.fk.points(q[None], sk.keypoint_links, sk.keypoint_offsets)  # (1, K, 3)
        uv, depth = project_points(points.to(torch.float64), camera)
        r = self.overlay_rasterizer(width, height, float(scale))
        rgba = r(uv.float().cpu(), depth.float().cpu(), alpha=True)[0]  # (C + 1, H, W)
        rgb = rgba[: r.channels].expand(3, height, width).permute(1, 2, 0).numpy()
        a = rgba[-1].numpy()[..., None] * opacity
        # The colours are premultiplied by coverage: image * (1 - a) + colour * a.
        blended = image.astype(np.float32) / 255.0 * (1.0 - a) + rgb * opacity
        return np.clip(np.round(blended * 255.0), 0, 255).astype(np.uint8)
