"""Pinhole camera model (OpenCV convention) and the one batched projection used everywhere.

Frames: the camera's optical frame has z forward, x right, y down (REP 103 "_optical"). Its pose
is given in the robot base frame. Pixels follow OpenCV: the centre of the top-left pixel is (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


def quat_to_matrix(quat_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) from a unit quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(quat_xyzw, dtype=np.float64) / np.linalg.norm(quat_xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) from a rotation matrix (3, 3); w >= 0."""
    m = np.asarray(rot, dtype=np.float64)
    w = np.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = np.sqrt(max(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2
    y = np.sqrt(max(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2
    z = np.sqrt(max(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2
    x = np.copysign(x, m[2, 1] - m[1, 2])
    y = np.copysign(y, m[0, 2] - m[2, 0])
    z = np.copysign(z, m[1, 0] - m[0, 1])
    q = np.array([x, y, z, w])
    return q / np.linalg.norm(q)


@dataclass(frozen=True)
class CameraModel:
    """Intrinsics of a calibrated camera plus its pose in the robot base frame.

    Attributes:
        width, height: image size in pixels.
        k: (3, 3) intrinsic matrix [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], pixels.
        d: plumb_bob distortion (k1, k2, t1, t2, k3); zeros for an ideal camera.
        translation: (3,) camera optical-frame origin in the base frame, metres.
        rotation: (3, 3) rotation taking optical-frame vectors to base-frame vectors.
    """

    width: int
    height: int
    k: np.ndarray
    d: np.ndarray = field(default_factory=lambda: np.zeros(5))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self) -> None:
        k = np.asarray(self.k, dtype=np.float64).reshape(3, 3)
        d = np.zeros(5)
        d_in = np.asarray(self.d, dtype=np.float64).ravel()
        d[: min(5, d_in.size)] = d_in[:5]
        object.__setattr__(self, "k", k)
        object.__setattr__(self, "d", d)
        object.__setattr__(self, "translation", np.asarray(self.translation, float).reshape(3))
        object.__setattr__(self, "rotation", np.asarray(self.rotation, float).reshape(3, 3))
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if k[0, 0] <= 0 or k[1, 1] <= 0 or not np.all(np.isfinite(k)):
            raise ValueError(f"camera intrinsics need positive finite fx, fy; got K={k.tolist()}")
        if not np.allclose(self.rotation @ self.rotation.T, np.eye(3), atol=1e-6):
            raise ValueError("camera rotation is not orthonormal")

    @classmethod
    def from_pose(
        cls, width: int, height: int, k: np.ndarray, *, translation, quat_xyzw, d=None
    ) -> CameraModel:
        """Build from a translation and an (x, y, z, w) quaternion of the optical frame."""
        return cls(
            width,
            height,
            k,
            np.zeros(5) if d is None else d,
            translation,
            quat_to_matrix(quat_xyzw),
        )

    def with_size(self, width: int, height: int) -> CameraModel:
        """The same camera resampled to another image size (intrinsics scaled)."""
        sx, sy = width / self.width, height / self.height
        k = self.k.copy()
        # Pixel centres sit at integers, so the principal point scales about -0.5.
        k[0, 0] *= sx
        k[1, 1] *= sy
        k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
        k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
        return CameraModel(width, height, k, self.d, self.translation, self.rotation)

    @property
    def quat_xyzw(self) -> np.ndarray:
        return matrix_to_quat(self.rotation)


def project_points(points: torch.Tensor, camera: CameraModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Project base-frame points to pixels.

    Args:
        points: (..., 3) points in the robot base frame, metres; any float dtype and device.
        camera: the camera model.
    Returns:
        uv: (..., 2) pixel coordinates (OpenCV convention, plumb_bob distortion applied).
        depth: (...,) distance along the optical axis, metres (<= 0 means behind the camera).
    """
    dtype, device = points.dtype, points.device
    rot = torch.as_tensor(camera.rotation, dtype=dtype, device=device)
    trans = torch.as_tensor(camera.translation, dtype=dtype, device=device)
    cam = (points - trans) @ rot  # (..., 3) in the optical frame: R^T (p - t)
    depth = cam[..., 2]
    z = torch.where(depth.abs() < 1e-9, torch.full_like(depth, 1e-9), depth)
    x, y = cam[..., 0] / z, cam[..., 1] / z
    k1, k2, t1, t2, k3 = (float(v) for v in camera.d)
    if any((k1, k2, t1, t2, k3)):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        x, y = (
            x * radial + 2 * t1 * x * y + t2 * (r2 + 2 * x * x),
            y * radial + t1 * (r2 + 2 * y * y) + 2 * t2 * x * y,
        )
    k = camera.k
    u = k[0, 0] * x + k[0, 1] * y + k[0, 2]
    v = k[1, 1] * y + k[1, 2]
    return torch.stack([u, v], dim=-1), depth
