"""The live prompt overlay behind prompt_node: checks that an image, its camera info and a joint
state belong together, then draws the current pose (and a plan's future poses) over the image.

ROS-free: the node converts messages to numpy and calls `LiveOverlay.compose`. Inconsistent
inputs raise `PromptInputError` with the reason; nothing is drawn from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wm_ros.camera import CameraModel
from wm_ros.config import PromptNodeConfig
from wm_ros.kinematics import RobotModel, load_urdf
from wm_ros.paths import ARM_URDF
from wm_ros.prompts.renderer import PromptRenderer
from wm_ros.types import JointTrajectory


class PromptInputError(ValueError):
    """Inputs that must not be drawn from (stale, missing, inconsistent); `reason` is a short
    key for counting in diagnostics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Plan:
    """A received plan: the trajectory and the time (s) its time_from_start counts from."""

    trajectory: JointTrajectory
    start: float


def load_robot(cfg: PromptNodeConfig) -> RobotModel:
    """The robot model from `robot_description` XML, else the `urdf` path, else the sim arm.

    Raises:
        ValueError: a missing or malformed URDF (load_urdf's message).
    """
    if cfg.robot_description.strip():
        return load_urdf(cfg.robot_description)
    return load_urdf(cfg.urdf or ARM_URDF)


class LiveOverlay:
    """Draws skeleton overlays for a stream of camera images.

    Args:
        cfg: the node's configuration (robot, camera pose, ages, plan drawing).
    Raises:
        ValueError: a bad URDF or a tool link not reachable from the base (at construction,
            i.e. when the node configures, never while it runs).
    """

    def __init__(self, cfg: PromptNodeConfig) -> None:
        self.cfg = cfg
        self.robot = load_robot(cfg)
        self._renderer: PromptRenderer | None = None
        self._camera: CameraModel | None = None
        # Fail at configure time on a skeleton that cannot be built (unknown/unreachable tool):
        # a throwaway camera is enough to build one.
        PromptRenderer(self.robot, self._placeholder_camera(), cfg.prompt)

    @staticmethod
    def _placeholder_camera() -> CameraModel:
        return CameraModel(64, 64, np.array([[50.0, 0, 31.5], [0, 50.0, 31.5], [0, 0, 1]]))

    def camera_from_intrinsics(
        self, width: int, height: int, k: np.ndarray, d: np.ndarray
    ) -> CameraModel:
        """The camera model from CameraInfo values and the configured pose.

        Raises:
            PromptInputError: an all-zero or otherwise invalid K.
        """
        try:
            return CameraModel.from_pose(
                width,
                height,
                k,
                translation=self.cfg.camera_translation,
                quat_xyzw=self.cfg.camera_quat_xyzw,
                d=d,
            )
        except ValueError as err:
            raise PromptInputError("bad_camera_info", f"camera info unusable: {err}") from None

    def _renderer_for(self, camera: CameraModel) -> PromptRenderer:
        same = (
            self._camera is not None
            and (self._camera.width, self._camera.height) == (camera.width, camera.height)
            and np.array_equal(self._camera.k, camera.k)
            and np.array_equal(self._camera.d, camera.d)
        )
        if not same or self._renderer is None:
            self._renderer = PromptRenderer(self.robot, camera, self.cfg.prompt)
            self._camera = camera
        return self._renderer

    def compose(
        self,
        image: np.ndarray,
        image_stamp: float,
        *,
        camera: CameraModel | None,
        joint_names: Sequence[str] | None,
        joint_positions: np.ndarray | None,
        joint_stamp: float,
        plan: Plan | None = None,
    ) -> np.ndarray:
        """The image with the current pose (and the plan's future poses, fainter) drawn over it.

        Args:
            image: (H, W, 3) uint8 RGB camera image.
            image_stamp: its stamp, seconds.
            camera: the camera model from the latest CameraInfo (None: none received yet).
            joint_names, joint_positions: the latest joint state (None: none received yet).
            joint_stamp: its stamp, seconds.
            plan: the latest plan, if any.
        Returns:
            (H, W, 3) uint8 RGB overlay.
        Raises:
            PromptInputError: missing, stale or inconsistent inputs (see `reason`).
        """
        if camera is None:
            raise PromptInputError("no_camera_info", "no camera info received yet")
        if joint_names is None or joint_positions is None:
            raise PromptInputError("no_joint_state", "no joint state received yet")
        height, width = image.shape[:2]
        if (camera.width, camera.height) != (width, height):
            raise PromptInputError(
                "size_mismatch",
                f"camera info is {camera.width}x{camera.height} but the image is {width}x{height}",
            )
        age = abs(image_stamp - joint_stamp)
        if age > self.cfg.max_joint_age_s:
            raise PromptInputError(
                "stale_joint_state",
                f"joint state is {age:.3f} s from the image (max_joint_age_s "
                f"{self.cfg.max_joint_age_s})",
            )
        renderer = self._renderer_for(camera)
        try:
            order = renderer.joint_order(joint_names)
        except ValueError as err:
            raise PromptInputError("missing_joints", str(err)) from None
        q = np.asarray(joint_positions, dtype=np.float64)[order]
        if not np.all(np.isfinite(q)):
            raise PromptInputError("non_finite_joints", "joint state has non-finite positions")
        out = image
        for pose, opacity in self._plan_poses(renderer, plan, q, image_stamp):
            out = renderer.overlay(out, pose, opacity=opacity)
        return renderer.overlay(out, q)

    def _plan_poses(
        self, renderer: PromptRenderer, plan: Plan | None, current: np.ndarray, now: float
    ) -> list[tuple[np.ndarray, float]]:
        """(pose, opacity) of the plan's future poses, furthest first (drawn underneath)."""
        if plan is None or self.cfg.plan_poses == 0:
            return []
        if now - plan.start > self.cfg.max_plan_age_s + float(plan.trajectory.times[-1]):
            return []
        traj = plan.trajectory
        names = list(traj.joint_names)
        columns = [names.index(n) if n in names else -1 for n in renderer.joint_names]
        times = np.linspace(0.0, float(traj.times[-1]), self.cfg.plan_poses + 1)[1:]
        poses = []
        for i, t in enumerate(times):
            pose = current.copy()
            for j, col in enumerate(columns):
                if col >= 0:  # joints the plan does not command stay where they are
                    pose[j] = np.interp(t, traj.times, traj.positions[:, col])
            if not np.all(np.isfinite(pose)):
                continue
            near = 1.0 - i / max(1, len(times))
            poses.append((pose, self.cfg.plan_opacity + (1 - self.cfg.plan_opacity) * near * 0.5))
        return poses[::-1]
