"""The data that crosses the core <-> ROS boundary, as plain numpy.

The ROS layer converts messages into these once; the core never sees a message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wm_ros.camera import CameraModel

__all__ = ["CameraModel", "JointTrajectory", "Observation"]


@dataclass(frozen=True)
class Observation:
    """One synchronised observation of the robot and the scene.

    Attributes:
        stamp: time of the image, seconds (ROS time or sim time).
        image: (H, W, 3) uint8 RGB camera image.
        joint_names: names of the joints, in the order of `positions`.
        positions: (J,) joint positions, radians or metres.
        velocities: (J,) joint velocities, rad/s or m/s.
        joint_stamp: time of the joint state, seconds.
        camera: the camera model the image was taken with.
    """

    stamp: float
    image: np.ndarray
    joint_names: tuple[str, ...]
    positions: np.ndarray
    velocities: np.ndarray
    joint_stamp: float
    camera: CameraModel | None = None


@dataclass(frozen=True)
class JointTrajectory:
    """A joint-space trajectory: positions at times from its start.

    Attributes:
        joint_names: names of the joints, in the column order of `positions`.
        times: (T,) strictly increasing times from the start, seconds (first may be 0).
        positions: (T, J) joint positions at those times.
    """

    joint_names: tuple[str, ...]
    times: np.ndarray
    positions: np.ndarray
