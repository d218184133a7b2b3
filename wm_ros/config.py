"""Frozen, validated configuration dataclasses: one per component.

These are the single source of settings: ROS parameters map onto them one to one (the nodes read
their parameters into them), and the command line and training build them from the same YAML.
Each field is documented with its unit; `__post_init__` raises ValueError on inconsistent values.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import yaml


class ConfigBase:
    """Shared conversions for the config dataclasses (dict/YAML in, dict out)."""

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> Self:
        """Build from a mapping, rejecting unknown keys; lists become tuples."""
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown setting(s) {unknown}; known: {sorted(names)}"
            )
        hints = typing.get_type_hints(cls)
        converted = {k: _coerce(v, hints[k], f"{cls.__name__}.{k}") for k, v in values.items()}
        return cls(**converted)

    @classmethod
    def from_yaml(cls, path: str | Path, section: str | None = None) -> Self:
        """Load from a YAML file; `section` picks a top-level key (a ROS params file's node
        name: its `ros__parameters` block is used)."""
        data = yaml.safe_load(Path(path).read_text()) or {}
        if section is not None:
            if section not in data:
                raise ValueError(f"{path}: no section {section!r} (has {sorted(data)})")
            data = data[section]
            data = data.get("ros__parameters", data)
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (tuples become lists), suitable for YAML/JSON and ROS parameters."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}  # type: ignore[arg-type]

    def replace(self, **changes: Any) -> Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Light type coercion for values that come from YAML or ROS parameters."""
    origin = typing.get_origin(hint)
    if origin is tuple and isinstance(value, list | tuple):
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin in (types.UnionType, typing.Union):
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ValueError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


@dataclass(frozen=True)
class TaskConfig(ConfigBase):
    """A tabletop task: what the goal is and when it counts as reached.

    Attributes:
        kind: "reach" (match the arm pose of the goal image) or "push" (bring the puck to where
            the goal image shows it).
        episode_steps: control steps an episode may take before it ends unsuccessfully.
        reach_tolerance_m: reach succeeds when the tool point is within this distance (metres)
            of the goal's tool point.
        reach_joint_tolerance_rad: ... and every joint is within this angle (radians) of the goal.
        push_tolerance_m: push succeeds when the puck centre is within this distance (metres) of
            the goal's puck centre.
        push_min_displacement_m: a push goal moves the puck at least this far (metres) from start.
        goal_steps: control steps used to produce the goal by acting from the start state.
    """

    kind: str = "push"
    episode_steps: int = 60
    reach_tolerance_m: float = 0.02
    reach_joint_tolerance_rad: float = 0.15
    push_tolerance_m: float = 0.03
    push_min_displacement_m: float = 0.12
    goal_steps: int = 40

    def __post_init__(self) -> None:
        if self.kind not in ("reach", "push"):
            raise ValueError(f"task kind must be 'reach' or 'push', got {self.kind!r}")
        if self.episode_steps <= 0 or self.goal_steps <= 0:
            raise ValueError("episode_steps and goal_steps must be positive")
        for name in ("reach_tolerance_m", "reach_joint_tolerance_rad", "push_tolerance_m"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.push_min_displacement_m <= self.push_tolerance_m:
            raise ValueError("push_min_displacement_m must exceed push_tolerance_m")


@dataclass(frozen=True)
class SimConfig(ConfigBase):
    """The MuJoCo tabletop simulator.

    Attributes:
        urdf: path to the arm's URDF; empty means the packaged `wm_ros/sim/assets/arm.urdf`.
        image_width, image_height: rendered camera image size, pixels.
        physics_dt: MuJoCo integration step, seconds.
        control_dt: one control (action) step, seconds; a multiple of physics_dt.
        camera_position: camera centre in the base (world) frame, metres.
        camera_lookat: point the camera looks at, base frame, metres.
        camera_fovy_deg: vertical field of view, degrees.
        seed: seed of the first episode; each reset uses the next one.
        task: the active task.
    """

    urdf: str = ""
    image_width: int = 64
    image_height: int = 64
    physics_dt: float = 0.002
    control_dt: float = 0.1
    camera_position: tuple[float, ...] = (0.45, -0.75, 0.85)
    camera_lookat: tuple[float, ...] = (0.45, 0.0, 0.0)
    camera_fovy_deg: float = 45.0
    seed: int = 0
    task: TaskConfig = field(default_factory=TaskConfig)

    def __post_init__(self) -> None:
        if self.image_width < 8 or self.image_height < 8:
            raise ValueError("image size must be at least 8x8 pixels")
        if self.physics_dt <= 0 or self.control_dt < self.physics_dt:
            raise ValueError("need 0 < physics_dt <= control_dt")
        ratio = self.control_dt / self.physics_dt
        if abs(ratio - round(ratio)) > 1e-6:
            raise ValueError("control_dt must be a whole multiple of physics_dt")
        if len(self.camera_position) != 3 or len(self.camera_lookat) != 3:
            raise ValueError("camera_position and camera_lookat need 3 values (metres)")
        if not 1.0 < self.camera_fovy_deg < 170.0:
            raise ValueError("camera_fovy_deg must be within (1, 170) degrees")
        if isinstance(self.task, dict):
            object.__setattr__(self, "task", TaskConfig.from_dict(self.task))

    @property
    def substeps(self) -> int:
        """Physics steps per control step."""
        return round(self.control_dt / self.physics_dt)


@dataclass(frozen=True)
class SimNodeConfig(ConfigBase):
    """The ROS side of the simulator node: rates, clock and frames (the physics is SimConfig).

    Attributes:
        camera_rate_hz: camera image + camera info publishing rate, in simulated time, Hz.
        joint_state_rate_hz: /joint_states publishing rate, in simulated time, Hz.
        diagnostics_rate_hz: /diagnostics publishing rate, wall time, Hz.
        tick_s: simulated seconds advanced per timer tick (a multiple of physics_dt).
        real_time_factor: simulated seconds per wall second (1.0 = real time).
        publish_clock: publish /clock with the simulated time and stamp everything with it.
        base_frame: frame id of the robot base (joint states, camera pose parent).
        camera_frame: frame id of the camera's optical frame (images, camera info).
        sim: the simulator itself.
    """

    camera_rate_hz: float = 10.0
    joint_state_rate_hz: float = 50.0
    diagnostics_rate_hz: float = 1.0
    tick_s: float = 0.01
    real_time_factor: float = 1.0
    publish_clock: bool = False
    base_frame: str = "base_link"
    camera_frame: str = "camera_optical"
    sim: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        if isinstance(self.sim, dict):
            object.__setattr__(self, "sim", SimConfig.from_dict(self.sim))
        for name in ("camera_rate_hz", "joint_state_rate_hz", "diagnostics_rate_hz"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (Hz)")
        if self.real_time_factor <= 0:
            raise ValueError("real_time_factor must be positive")
        ratio = self.tick_s / self.sim.physics_dt
        if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
            raise ValueError("tick_s must be a whole multiple of sim.physics_dt")

    @property
    def tick_substeps(self) -> int:
        """Physics steps per timer tick."""
        return round(self.tick_s / self.sim.physics_dt)
