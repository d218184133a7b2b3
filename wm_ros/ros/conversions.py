"""Message <-> core conversions: the one place where ROS messages become numpy and back.

Nodes convert each incoming message once, here, and hand the core plain numpy arrays and the
dataclasses of `wm_ros.types` / `wm_ros.camera`. Every function raises `ValueError` naming the
problem (encoding, size, joint names, ...) instead of returning something half-right.

Images: `image_to_numpy` returns a zero-copy view of `msg.data` whenever the pixel data can be
viewed as it is (any row padding is sliced away, not copied); only big-endian multi-byte data is
copied (into native byte order). `numpy_to_image` assigns `bytes` to `msg.data` (assigning an
ndarray to a `uint8[]` field is three orders of magnitude slower).

The core dataclasses are imported where they are built, so `import wm_ros.ros.conversions`
(and the bag tools, which use its stamp helpers) stays free of torch.

Time: ROS stamps are integer nanoseconds split into (sec, nanosec). `ns_to_time` / `time_to_ns`
are exact; the float-seconds helpers round to the nearest nanosecond, which is exact as long as
the float itself holds nanosecond resolution (times below ~1e6 s; wall-clock epoch stamps as
float64 only resolve ~0.2 us).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from builtin_interfaces.msg import Duration, Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg
from trajectory_msgs.msg import JointTrajectoryPoint

if TYPE_CHECKING:
    from wm_ros.camera import CameraModel
    from wm_ros.types import JointTrajectory

__all__ = [
    "camera_info_to_model",
    "camera_model_to_info",
    "compressed_image_to_rgb",
    "core_to_trajectory_msg",
    "duration_to_ns",
    "duration_to_seconds",
    "encoding_info",
    "image_msg_to_rgb",
    "image_to_numpy",
    "joint_state_to_vector",
    "ns_to_duration",
    "ns_to_time",
    "numpy_to_image",
    "seconds_to_duration",
    "seconds_to_time",
    "time_to_ns",
    "time_to_seconds",
    "to_rgb",
    "trajectory_msg_to_core",
    "vector_to_joint_state",
]

_NS_PER_S = 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1

# --------------------------------------------------------------------------------------------
# Time stamps
# --------------------------------------------------------------------------------------------


def _split_ns(ns: int, what: str) -> tuple[int, int]:
    sec, nanosec = divmod(int(ns), _NS_PER_S)  # floor: nanosec always in [0, 1e9)
    if not _INT32_MIN <= sec <= _INT32_MAX:
        raise ValueError(f"{what} of {ns} ns does not fit a ROS stamp (int32 seconds)")
    return sec, nanosec


def _seconds_to_ns(seconds: float, what: str) -> int:
    if not math.isfinite(seconds):
        raise ValueError(f"{what} must be finite, got {seconds}")
    # Split first so the fraction keeps all the precision the float has.
    whole = math.floor(seconds)
    return int(whole) * _NS_PER_S + round((seconds - whole) * _NS_PER_S)


def ns_to_time(ns: int) -> Time:
    """builtin_interfaces/Time from integer nanoseconds (exact); negative times are rejected."""
    if ns < 0:
        raise ValueError(f"a ROS Time cannot be negative, got {ns} ns")
    sec, nanosec = _split_ns(ns, "time")
    return Time(sec=sec, nanosec=nanosec)


def time_to_ns(stamp: Time) -> int:
    """Integer nanoseconds of a builtin_interfaces/Time (exact)."""
    return stamp.sec * _NS_PER_S + stamp.nanosec


def seconds_to_time(seconds: float) -> Time:
    """builtin_interfaces/Time from seconds, rounded to the nearest nanosecond."""
    return ns_to_time(_seconds_to_ns(seconds, "time"))


def time_to_seconds(stamp: Time) -> float:
    """Seconds of a builtin_interfaces/Time (float: ~0.2 us resolution at epoch times)."""
    return stamp.sec + stamp.nanosec * 1e-9


def ns_to_duration(ns: int) -> Duration:
    """builtin_interfaces/Duration from integer nanoseconds (exact; may be negative)."""
    sec, nanosec = _split_ns(ns, "duration")
    return Duration(sec=sec, nanosec=nanosec)


def duration_to_ns(duration: Duration) -> int:
    """Integer nanoseconds of a builtin_interfaces/Duration (exact)."""
    return duration.sec * _NS_PER_S + duration.nanosec


def seconds_to_duration(seconds: float) -> Duration:
    """builtin_interfaces/Duration from seconds, rounded to the nearest nanosecond."""
    return ns_to_duration(_seconds_to_ns(seconds, "duration"))


def duration_to_seconds(duration: Duration) -> float:
    """Seconds of a builtin_interfaces/Duration."""
    return duration.sec + duration.nanosec * 1e-9


def _as_time(stamp: Time | float) -> Time:
    """A Time message from a Time message or float seconds."""
    if isinstance(stamp, Time):
        return stamp
    if isinstance(stamp, (int, float, np.floating, np.integer)):
        return seconds_to_time(float(stamp))
    raise TypeError(f"stamp must be builtin_interfaces/Time or seconds, got {type(stamp)}")


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------

# encoding -> (dtype, channels); 8UC3 etc. are added by the pattern below.
_NAMED_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "rgb16": ("u2", 3),
    "bgr16": ("u2", 3),
    "rgba16": ("u2", 4),
    "bgra16": ("u2", 4),
    "mono8": ("u1", 1),
    "mono16": ("u2", 1),
    **{f"bayer_{p}8": ("u1", 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
    **{f"bayer_{p}16": ("u2", 1) for p in ("rggb", "bggr", "gbrg", "grbg")},
}
_CV_PATTERN = re.compile(r"^(8U|8S|16U|16S|32S|32F|64F)C([1-4])$")
_CV_DTYPES = {
    "8U": "u1",
    "8S": "i1",
    "16U": "u2",
    "16S": "i2",
    "32S": "i4",
    "32F": "f4",
    "64F": "f8",
}


def encoding_info(encoding: str) -> tuple[np.dtype, int]:
    """(native-order dtype, channels) of a sensor_msgs/Image encoding.

    Raises:
        ValueError: the encoding is not one of the REP-104 / sensor_msgs image_encodings names
            this package reads (rgb8, bgr8, rgba8, bgra8, rgb16..., mono8, mono16, bayer_*8/16,
            8UC1..64FC4).
    """
    if encoding in _NAMED_ENCODINGS:
        code, channels = _NAMED_ENCODINGS[encoding]
        return np.dtype(code), channels
    match = _CV_PATTERN.match(encoding)
    if match is None:
        known = [*sorted(_NAMED_ENCODINGS), "8UC1..4", "8SC1..4", "16UC/16SC/32SC/32FC/64FC1..4"]
        raise ValueError(f"unsupported image encoding {encoding!r}; supported: {known}")
    return np.dtype(_CV_DTYPES[match.group(1)]), int(match.group(2))


def image_to_numpy(msg: Image) -> np.ndarray:
    """The pixels of a sensor_msgs/Image as a numpy array, without copying where possible.

    Args:
        msg: the image. Row padding (`step > width * bytes_per_pixel`) and `is_bigendian` are
            honoured.
    Returns:
        (H, W) for one-channel encodings, else (H, W, C), in the encoding's dtype (uint8 for
        rgb8/mono8, uint16 for mono16/16UC1, float32 for 32FC1, ...) and channel order (bgr8
        stays BGR; see `to_rgb`). The array is a view of `msg.data` (it aliases the message)
        unless the data is big-endian with multi-byte pixels, which is converted to native order.
    Raises:
        ValueError: unknown encoding, `step` smaller than a row, or `len(data) != step * height`.
    """
    dtype, channels = encoding_info(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(
            f"image step {step} B is smaller than a row of {width} px x {channels} ch x "
            f"{dtype.itemsize} B = {row_bytes} B (encoding {msg.encoding!r})"
        )
    size = len(msg.data)
    if size != step * height:
        raise ValueError(
            f"image data has {size} B, expected step * height = {step} * {height} = "
            f"{step * height} B (encoding {msg.encoding!r}, {width}x{height})"
        )
    shape = (height, width) if channels == 1 else (height, width, channels)
    if size == 0:
        return np.zeros(shape, dtype)
    order = ">" if msg.is_bigendian else "<"
    stored = dtype.newbyteorder(order) if dtype.itemsize > 1 else dtype
    raw = np.frombuffer(msg.data, dtype=np.uint8)  # (step * H,), aliases msg.data
    rows = raw.reshape(height, step)
    if step != row_bytes:
        rows = rows[:, :row_bytes]  # drop the padding: still a view, rows are `step` apart
    pixels = rows.view(stored).reshape(shape)
    if not stored.isnative:
        pixels = pixels.astype(dtype)  # big-endian data on a little-endian host: one copy
    return pixels


def to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an 8-bit image array as returned by `image_to_numpy`.

    rgb8 / 8UC3 (assumed RGB) are returned as they are (a view); rgba8 drops alpha (a view);
    bgr8 / bgra8 are reordered into a new contiguous array; mono8 / 8UC1 are repeated to three
    channels.

    Raises:
        ValueError: a non-8-bit encoding (16-bit, float, bayer) or a shape that does not match.
    """
    _, channels = encoding_info(encoding)
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"to_rgb needs uint8 pixels, got {image.dtype} ({encoding!r})")
    if encoding in ("rgb8", "8UC3"):
        order = None
    elif encoding == "rgba8":
        order = slice(0, 3)
    elif encoding in ("bgr8", "bgra8"):
        order = [2, 1, 0]
    elif encoding in ("mono8", "8UC1"):
        order = "mono"
    else:
        raise ValueError(f"to_rgb cannot turn encoding {encoding!r} into 8-bit RGB")
    if order == "mono":
        gray = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
        if gray.ndim != 2:
            raise ValueError(f"{encoding} image must be (H, W), got {image.shape}")
        return np.repeat(gray[:, :, None], 3, axis=2)  # (H, W, 3)
    if image.ndim != 3 or image.shape[-1] != channels:
        raise ValueError(f"{encoding} image must be (H, W, {channels}), got {image.shape}")
    if order is None:
        return image
    if isinstance(order, slice):
        return image[..., order]
    return np.ascontiguousarray(image[..., order])


def compressed_image_to_rgb(msg: CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB decoded from a sensor_msgs/CompressedImage (JPEG, PNG, ... via PIL).

    `format` is informational (image_transport writes e.g. "rgb8; jpeg compressed bgr8"): the
    codec is read from the data itself, and PIL decodes to RGB whatever order the encoder was
    given, so no channel swap is needed.

    Raises:
        ValueError: empty data, or data PIL cannot decode (the format string is quoted).
    """
    import io

    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    data = bytes(msg.data)
    if not data:
        raise ValueError(f"CompressedImage has no data (format {msg.format!r})")
    try:
        with PILImage.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))  # (H, W, 3) uint8
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot decode CompressedImage (format {msg.format!r}): {err}") from None


def image_msg_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a sensor_msgs/Image (8-bit encodings, see `to_rgb`) or a
    sensor_msgs/CompressedImage (decoded)."""
    if isinstance(msg, CompressedImage):
        return compressed_image_to_rgb(msg)
    return to_rgb(image_to_numpy(msg), msg.encoding)


def numpy_to_image(
    array: np.ndarray, encoding: str, stamp: Time | float = 0.0, frame_id: str = ""
) -> Image:
    """A sensor_msgs/Image holding a copy of `array`.

    Args:
        array: (H, W) or (H, W, 1) for one-channel encodings, else (H, W, C); its dtype must be
            the encoding's (uint8 for rgb8, uint16 for mono16, float32 for 32FC1, ...).
        encoding: the image encoding (see `encoding_info`).
        stamp: header stamp, builtin_interfaces/Time or seconds.
        frame_id: header frame (the camera's optical frame).
    Raises:
        ValueError: unknown encoding, or a shape / dtype that does not match it.
    """
    dtype, channels = encoding_info(encoding)
    array = np.asarray(array)
    if array.dtype.newbyteorder("=") != dtype:
        raise ValueError(f"encoding {encoding!r} needs {dtype} pixels, got {array.dtype}")
    if channels == 1 and array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    expected_ndim = 2 if channels == 1 else 3
    if array.ndim != expected_ndim or (channels > 1 and array.shape[-1] != channels):
        want = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(f"encoding {encoding!r} needs a {want} array, got {array.shape}")
    array = np.ascontiguousarray(array, dtype=dtype)  # native byte order, C order
    msg = Image()
    msg.header.stamp = _as_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(array.shape[0]), int(array.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and dtype.itemsize > 1)
    msg.step = msg.width * channels * dtype.itemsize
    msg.data = array.tobytes()  # bytes, not ndarray: ~0.1 ms instead of ~46 ms for 640x480
    return msg


# --------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------

_PLUMB_BOB_MODELS = ("plumb_bob", "rational_polynomial")


def camera_info_to_model(
    msg: CameraInfo,
    translation: Sequence[float] | np.ndarray = (0.0, 0.0, 0.0),
    quat_xyzw: Sequence[float] | np.ndarray = (0.0, 0.0, 0.0, 1.0),
) -> CameraModel:
    """A CameraModel from a sensor_msgs/CameraInfo plus the camera pose.

    The pose does not come from CameraInfo: it is the optical frame's pose in the robot base
    frame (parameters or TF), `translation` in metres and `quat_xyzw` as (x, y, z, w).

    Distortion: `plumb_bob` with 5 (or 0) coefficients, an empty model with no coefficients
    (ideal camera), or `rational_polynomial` whose extra coefficients k4..k6 are all zero.
    Intrinsics are taken from K (the raw image's camera matrix).

    Raises:
        ValueError: zero width/height, an all-zero K (an uncalibrated camera), a distortion
            model this package cannot apply, or D of the wrong length.
    """
    from wm_ros.camera import CameraModel  # imports torch: only where a camera is built

    if msg.width == 0 or msg.height == 0:
        raise ValueError(f"CameraInfo has zero image size {msg.width}x{msg.height}")
    k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.any(k):
        raise ValueError("CameraInfo K is all zeros: the camera is not calibrated")
    d = np.asarray(msg.d, dtype=np.float64)
    model = msg.distortion_model
    if model == "" and d.size == 0:
        pass
    elif model in _PLUMB_BOB_MODELS:
        n_coeffs = 5 if model == "plumb_bob" else 8
        if d.size not in (0, n_coeffs):
            raise ValueError(f"{model} needs {n_coeffs} distortion coefficients, D has {d.size}")
        if d.size == 8 and np.any(d[5:]):
            raise ValueError(
                "rational_polynomial with non-zero k4..k6 is not supported (plumb_bob only): "
                f"D={d.tolist()}"
            )
        d = d[:5]
    else:
        raise ValueError(
            f"unsupported distortion model {model!r} (D has {d.size} values); "
            "supported: plumb_bob, rational_polynomial with k4..k6 = 0, or none"
        )
    if not np.all(np.isfinite(d)):
        raise ValueError(f"CameraInfo D is not finite: {d.tolist()}")
    return CameraModel.from_pose(
        int(msg.width), int(msg.height), k, translation=translation, quat_xyzw=quat_xyzw, d=d
    )


def camera_model_to_info(
    model: CameraModel, stamp: Time | float = 0.0, frame_id: str = ""
) -> CameraInfo:
    """A sensor_msgs/CameraInfo for a CameraModel: K, D (plumb_bob), R = I, P = [K | 0].

    The pose is not part of CameraInfo (publish it as parameters / TF).
    """
    msg = CameraInfo()
    msg.header.stamp = _as_time(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(model.width), int(model.height)
    msg.distortion_model = "plumb_bob"
    msg.d = [float(v) for v in model.d]
    msg.k = [float(v) for v in model.k.ravel()]
    msg.r = [float(v) for v in np.eye(3).ravel()]
    p = np.zeros((3, 4))
    p[:, :3] = model.k
    msg.p = [float(v) for v in p.ravel()]
    return msg


# --------------------------------------------------------------------------------------------
# Joint states and trajectories
# --------------------------------------------------------------------------------------------


def joint_state_to_vector(msg: JointState, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities of the joints `names`, matched by name, never by position.

    Joints in the message that are not in `names` are ignored (grippers, other arms...).

    Args:
        msg: the joint state.
        names: the J joints wanted, in the order of the returned vectors.
    Returns:
        positions (J,) float64 (rad or m) and velocities (J,) float64 (rad/s or m/s; zeros if the
        message carries no velocities).
    Raises:
        ValueError: a wanted joint is missing (all missing names are listed), the message has
            duplicate names or position/velocity arrays of the wrong length, or a wanted
            position or velocity is not finite.
    """
    msg_names = list(msg.name)
    index = {name: i for i, name in enumerate(msg_names)}
    if len(index) != len(msg_names):
        dupes = sorted({n for n in msg_names if msg_names.count(n) > 1})
        raise ValueError(f"JointState has duplicate joint names {dupes}")
    if len(msg.position) != len(msg_names):
        raise ValueError(f"JointState has {len(msg_names)} names but {len(msg.position)} positions")
    if len(msg.velocity) not in (0, len(msg_names)):
        raise ValueError(
            f"JointState has {len(msg_names)} names but {len(msg.velocity)} velocities"
        )
    missing = [name for name in names if name not in index]
    if missing:
        raise ValueError(f"JointState lacks joints {missing} (it has {msg_names})")
    rows = np.fromiter((index[name] for name in names), dtype=np.intp, count=len(names))
    positions = np.asarray(msg.position, dtype=np.float64)[rows]  # (J,)
    if not np.all(np.isfinite(positions)):
        bad = [names[i] for i in np.flatnonzero(~np.isfinite(positions))]
        raise ValueError(f"JointState positions are not finite for joints {bad}")
    if len(msg.velocity) == 0:
        velocities = np.zeros(len(names))  # (J,)
    else:
        velocities = np.asarray(msg.velocity, dtype=np.float64)[rows]  # (J,)
        if not np.all(np.isfinite(velocities)):
            bad = [names[i] for i in np.flatnonzero(~np.isfinite(velocities))]
            raise ValueError(f"JointState velocities are not finite for joints {bad}")
    return positions, velocities


def vector_to_joint_state(
    names: Sequence[str],
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
    stamp: Time | float = 0.0,
) -> JointState:
    """A sensor_msgs/JointState from (J,) positions and optional (J,) velocities.

    Raises:
        ValueError: the lengths of names, positions and velocities differ.
    """
    positions = np.asarray(positions, dtype=np.float64).ravel()
    if positions.shape[0] != len(names):
        raise ValueError(f"{len(names)} joint names but {positions.shape[0]} positions")
    msg = JointState()
    msg.header.stamp = _as_time(stamp)
    msg.name = list(names)
    msg.position = positions.tolist()
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=np.float64).ravel()
        if velocities.shape[0] != len(names):
            raise ValueError(f"{len(names)} joint names but {velocities.shape[0]} velocities")
        msg.velocity = velocities.tolist()
    return msg


def trajectory_msg_to_core(msg: JointTrajectoryMsg) -> JointTrajectory:
    """A core JointTrajectory (times in seconds from the start, (T, J) positions).

    Velocities, accelerations and efforts in the points are not carried over.

    Raises:
        ValueError: duplicate joint names, a point whose positions do not have one value per
            joint, non-finite positions, or times from start that are not strictly increasing.
    """
    from wm_ros.types import JointTrajectory  # imports torch (via wm_ros.camera): lazily

    names = tuple(msg.joint_names)
    if len(set(names)) != len(names):
        raise ValueError(f"JointTrajectory has duplicate joint names {list(names)}")
    n_points, n_joints = len(msg.points), len(names)
    times = np.empty(n_points)  # (T,)
    positions = np.empty((n_points, n_joints))  # (T, J)
    for i, point in enumerate(msg.points):
        if len(point.positions) != n_joints:
            raise ValueError(
                f"trajectory point {i} has {len(point.positions)} positions for "
                f"{n_joints} joints {list(names)}"
            )
        positions[i] = point.positions
        times[i] = duration_to_seconds(point.time_from_start)
    if not np.all(np.isfinite(positions)):
        raise ValueError("JointTrajectory positions are not finite")
    if n_points > 1 and not np.all(np.diff(times) > 0):
        raise ValueError(f"trajectory times are not strictly increasing: {times.tolist()}")
    return JointTrajectory(joint_names=names, times=times, positions=positions)


def core_to_trajectory_msg(
    traj: JointTrajectory, stamp: Time | float = 0.0, frame_id: str = ""
) -> JointTrajectoryMsg:
    """A trajectory_msgs/JointTrajectory from a core JointTrajectory.

    Args:
        traj: times (T,) seconds from the start and positions (T, J).
        stamp: header stamp: when the trajectory starts (0 means "now" to most controllers).
        frame_id: header frame.
    Raises:
        ValueError: the shapes of times, positions and joint names do not agree.
    """
    times = np.asarray(traj.times, dtype=np.float64).ravel()  # (T,)
    positions = np.asarray(traj.positions, dtype=np.float64)  # (T, J)
    if positions.ndim != 2 or positions.shape != (times.shape[0], len(traj.joint_names)):
        raise ValueError(
            f"trajectory positions {positions.shape} do not match {times.shape[0]} times x "
            f"{len(traj.joint_names)} joints"
        )
    msg = JointTrajectoryMsg()
    msg.header.stamp = _as_time(stamp)
    msg.header.frame_id = frame_id
    msg.joint_names = list(traj.joint_names)
    msg.points = [
        JointTrajectoryPoint(positions=row.tolist(), time_from_start=seconds_to_duration(t))
        for t, row in zip(times.tolist(), positions, strict=True)
    ]
    return msg
