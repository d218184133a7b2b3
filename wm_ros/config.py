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


TASK_KINDS = ("reach", "push")  # the simulator's tasks (wm_ros.sim.tasks)
PUSH_STARTS = ("clear", "staged")  # TaskConfig.push_start
PUSH_GOAL_POSES = ("contact", "backed_off")  # TaskConfig.push_goal_pose, the default first
# SimConfig.puck_radius_m: the default, what the shipped model saw (about 8 px across at 64x64;
# at 0.04 m the puck was too small a part of the goal image for the oracle, README), and the
# range the workspace and the scripted pusher are laid out for.
PUCK_RADIUS_M = 0.07
PUCK_RADIUS_RANGE_M = (0.02, 0.08)


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
        push_start: where a push episode starts: "clear" (the seeded start pose, anywhere
            clear of the puck; what data collection records) or "staged" (the scripted pusher's
            approach is played first: the tip rests a couple of centimetres behind the puck,
            facing the goal, still clear of it; the push itself is the task). Closed-loop
            evaluation and the demo start staged: from a clear start the tip must first go
            round the puck, a detour no goal-image distance rewards within one 8-step horizon
            (the oracle failed it: README, closed-loop figures).
        push_goal_pose: the arm in a push goal: "contact" (the pusher holds its tip where the
            push ended, against the puck) or "backed_off" (it first backs away to the scripted
            pusher's orbit radius). The arm dominates a goal image's latent distance, so
            "contact" makes matching the goal's arm pose the very motion that pushes the puck;
            a backed-off goal pose pulls the tip off the puck before the push is done.
    """

    kind: str = "push"
    episode_steps: int = 60
    reach_tolerance_m: float = 0.02
    reach_joint_tolerance_rad: float = 0.15
    push_tolerance_m: float = 0.03
    push_min_displacement_m: float = 0.20
    goal_steps: int = 40
    push_start: str = "clear"
    push_goal_pose: str = "contact"

    def __post_init__(self) -> None:
        if self.push_start not in PUSH_STARTS:
            raise ValueError(f"push_start must be one of {PUSH_STARTS}, got {self.push_start!r}")
        if self.push_goal_pose not in PUSH_GOAL_POSES:
            raise ValueError(
                f"push_goal_pose must be one of {PUSH_GOAL_POSES}, got {self.push_goal_pose!r}"
            )
        if self.kind not in TASK_KINDS:
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
        puck_radius_m: the puck's radius, metres (PUCK_RADIUS_RANGE_M). The scripted pusher's
            contact and staging distances and the start clearance follow it.
        seed: seed of the first episode; each reset uses the next one.
        task: the active task.
    """

    urdf: str = ""
    image_width: int = 64
    image_height: int = 64
    physics_dt: float = 0.002
    control_dt: float = 0.1
    camera_position: tuple[float, ...] = (0.32, -0.7, 0.9)
    camera_lookat: tuple[float, ...] = (0.32, 0.0, 0.0)
    camera_fovy_deg: float = 50.0
    puck_radius_m: float = PUCK_RADIUS_M
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
        lo, hi = PUCK_RADIUS_RANGE_M
        if not lo <= self.puck_radius_m <= hi:
            raise ValueError(
                f"puck_radius_m must be within [{lo}, {hi}] m, got {self.puck_radius_m}"
            )
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


def _parse_hex_color(text: str, where: str) -> tuple[float, float, float]:
    """'#rrggbb' -> (r, g, b) in [0, 1]."""
    s = str(text).strip().lstrip("#")
    if len(s) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in s):
        raise ValueError(f"{where}: expected a colour '#rrggbb', got {text!r}")
    return (int(s[0:2], 16) / 255.0, int(s[2:4], 16) / 255.0, int(s[4:6], 16) / 255.0)


@dataclass(frozen=True)
class PromptConfig(ConfigBase):
    """Visual action prompts: a robot pose drawn as a skeleton image (arXiv 2508.13104).

    Keypoints (link origins and the tool point) come from forward kinematics of the URDF, are
    projected through the camera and drawn as anti-aliased, per-link coloured segments with dots
    at the joints, on black. Sizes in pixels are at the prompt resolution.

    Attributes:
        image_width, image_height: prompt size, pixels; the camera's intrinsics are rescaled to
            it (`CameraModel.with_size`).
        channels: 3 for RGB (a colour per link) or 1 for grey (brightness only).
        base_link: the frame FK and the camera pose are expressed in; "" means the URDF root.
        tool_link: the link whose origin (plus `tool_offset`) is the tool point; it must be
            reachable from the base link.
        tool_offset: (3,) tool point in the tool link's frame, metres.
        skeleton_links: links whose origins are keypoints, each joined to its nearest listed
            ancestor; empty selects the chain base -> tool link plus gripper fingers if any.
        line_width_px: full width of a link segment, pixels (anti-aliased over one more pixel).
        joint_radius_px: radius of the dot drawn at each joint keypoint, pixels.
        tool_radius_px: radius of the dot marking the tool point, pixels.
        depth_near_m, depth_far_m: distances along the optical axis (metres) drawn at full and at
            `depth_min_brightness` brightness; linear in between, clamped outside.
        depth_min_brightness: brightness factor (0, 1] at `depth_far_m`; 1 turns the depth
            cue off.
        palette: colours '#rrggbb' of the segments in skeleton edge order (cycled when there
            are more edges); the default matches the simulated arm's link colours.
        joint_color: colour of the joint dots, '#rrggbb'.
        tool_color: colour of the tool-point dot, '#rrggbb'.
    """

    image_width: int = 64
    image_height: int = 64
    channels: int = 3
    base_link: str = ""
    tool_link: str = "tool"
    tool_offset: tuple[float, ...] = (0.0, 0.0, 0.0)
    skeleton_links: tuple[str, ...] = ()
    line_width_px: float = 1.5
    joint_radius_px: float = 1.5
    tool_radius_px: float = 2.0
    depth_near_m: float = 0.7
    depth_far_m: float = 1.5
    depth_min_brightness: float = 0.4
    palette: tuple[str, ...] = (
        "#4d4d52",  # base: grey
        "#d92626",  # red
        "#26b340",  # green
        "#2659e6",  # blue
        "#f2cc1a",  # yellow
        "#26c6da",  # cyan
        "#ff8c1a",  # orange
        "#8c4de6",  # purple
    )
    joint_color: str = "#ffffff"
    tool_color: str = "#cc33cc"

    def __post_init__(self) -> None:
        if not 4 <= self.image_width <= 4096 or not 4 <= self.image_height <= 4096:
            size = f"{self.image_width}x{self.image_height}"
            raise ValueError(f"prompt size must be within 4..4096 pixels, got {size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")
        if not self.tool_link:
            raise ValueError("tool_link must name a link of the URDF")
        if len(self.tool_offset) != 3:
            raise ValueError(f"tool_offset needs 3 values (metres), got {self.tool_offset}")
        if not 0.25 <= self.line_width_px <= 64:
            raise ValueError(f"line_width_px must be within [0.25, 64], got {self.line_width_px}")
        for name in ("joint_radius_px", "tool_radius_px"):
            if not 0.0 <= getattr(self, name) <= 64:
                raise ValueError(f"{name} must be within [0, 64] pixels")
        if not 0.0 < self.depth_near_m < self.depth_far_m:
            raise ValueError(
                f"need 0 < depth_near_m < depth_far_m, got {self.depth_near_m}, {self.depth_far_m}"
            )
        if not 0.0 < self.depth_min_brightness <= 1.0:
            raise ValueError("depth_min_brightness must be within (0, 1]")
        if not self.palette:
            raise ValueError("palette needs at least one colour")
        for i, color in enumerate(self.palette):
            _parse_hex_color(color, f"palette[{i}]")
        _parse_hex_color(self.joint_color, "joint_color")
        _parse_hex_color(self.tool_color, "tool_color")

    def palette_rgb(self) -> list[tuple[float, float, float]]:
        """Palette as (r, g, b) floats in [0, 1]."""
        return [_parse_hex_color(c, "palette") for c in self.palette]

    def joint_rgb(self) -> tuple[float, float, float]:
        return _parse_hex_color(self.joint_color, "joint_color")

    def tool_rgb(self) -> tuple[float, float, float]:
        return _parse_hex_color(self.tool_color, "tool_color")


# The simulator camera's optical frame in the robot base frame (SimConfig's camera_position /
# camera_lookat): the default camera pose of the nodes that draw or plan for the simulated arm.
SIM_CAMERA_TRANSLATION = (0.32, -0.7, 0.9)
SIM_CAMERA_QUAT_XYZW = (-0.9458731991, 0.0, 0.0, 0.3245364252)


def _check_camera_pose(translation: tuple[float, ...], quat_xyzw: tuple[float, ...]) -> None:
    if len(translation) != 3 or len(quat_xyzw) != 4:
        raise ValueError("camera_translation needs 3 values (m), camera_quat_xyzw 4")
    if not 0.5 < sum(v * v for v in quat_xyzw) ** 0.5 < 1.5:
        raise ValueError("camera_quat_xyzw must be a unit quaternion (x, y, z, w)")


@dataclass(frozen=True)
class PromptNodeConfig(ConfigBase):
    """prompt_node: the skeleton prompt drawn over the live camera image, for people.

    Attributes:
        urdf: path of the robot's URDF; empty means the packaged simulator arm.
        robot_description: URDF XML text; when set it wins over `urdf` (the ROS convention).
        camera_translation: (3,) camera optical-frame origin in the base frame, metres.
        camera_quat_xyzw: (4,) rotation of the optical frame in the base frame (x, y, z, w).
        max_joint_age_s: the joint state used for an image may be at most this far from the
            image's stamp, seconds; otherwise nothing is drawn for that image.
        plan_poses: future poses of the latest /wm/plan drawn (evenly spaced over the plan).
        plan_opacity: opacity of the furthest planned pose, 0..1 (nearer ones more opaque).
        max_plan_age_s: a plan older than this (by its stamp, or its receipt) is not drawn, s.
        prompt: line widths, colours and skeleton of the drawing.
    """

    urdf: str = ""
    robot_description: str = ""
    camera_translation: tuple[float, ...] = SIM_CAMERA_TRANSLATION
    camera_quat_xyzw: tuple[float, ...] = SIM_CAMERA_QUAT_XYZW
    max_joint_age_s: float = 0.1
    plan_poses: int = 4
    plan_opacity: float = 0.35
    max_plan_age_s: float = 5.0
    prompt: PromptConfig = field(default_factory=PromptConfig)

    def __post_init__(self) -> None:
        if isinstance(self.prompt, dict):
            object.__setattr__(self, "prompt", PromptConfig.from_dict(self.prompt))
        _check_camera_pose(self.camera_translation, self.camera_quat_xyzw)
        if self.max_joint_age_s <= 0 or self.max_plan_age_s <= 0:
            raise ValueError("max_joint_age_s and max_plan_age_s must be positive (s)")
        if self.plan_poses < 0 or not 0.0 <= self.plan_opacity <= 1.0:
            raise ValueError("plan_poses must be >= 0 and plan_opacity within [0, 1]")


@dataclass(frozen=True)
class ModelConfig(ConfigBase):
    """The action-conditioned video world model (wm_ros.model): everything needed to rebuild
    its networks. Latent frames are (latent_channels, image_size / 4, image_size / 4).

    Attributes:
        image_size: square frame size the autoencoder takes, pixels (a multiple of 4).
        latent_channels: channels c of a latent frame.
        ae_width: channels of the autoencoder's first conv layer (doubled after downsampling).
        horizon: H, future frames predicted per model call (one chunk).
        context: K, most recent frames the prediction is conditioned on.
        memory: M, older frames (sampled with recency weighting) also given as input; 0 = none.
        widths: channels of the denoiser's two resolution levels (latent grid, then half).
        emb_dim: size of the flow-time / step-size embedding.
        use_base: False = the adapter alone is the model (ablation "adapter without base").
        conditioning: "prompt" (skeleton prompt images, the default), "joints" (raw joint-vector
            ablation) or "none" (action-free: base only).
        use_mask: True = final = m * base + (1 - m) * adapter with a learned mask m; False =
            the plain sum base + adapter (ablation).
        adapter_from_base: True = the adapter's own prediction is the base's prediction (one of
            its inputs) plus its network's output, whose last layer is zero-initialised, so the
            masked model starts exactly at the base and the mask weighs the adapter's
            correction. False = the adapter predicts from scratch and starts as a random
            network mixed in at m = 0.5 (models saved before the field existed). Needs use_base
            and use_mask (the plain sum already starts at the base).
        prompt_channels: channels of one prompt image (1 grey or 3 RGB; PromptConfig.channels).
        prompt_features: features per future step the prompt encoder gives the adapter.
        num_joints: J, joints per action vector (the "joints" conditioning).
        shortcut_levels: the sampler can take 1, 2, 4, ... 2**shortcut_levels steps with a
            trained step size (shortcut models, Frans et al. 2024); other counts use d = 0.
        residual: True = the flow's data is the change of each future latent from the last
            context latent, (z_future - z_context[:, -1:]) / residual_scale, and sampling adds
            that latent back: "nothing changes" is the zero prediction. False = the future
            latents themselves (models saved before the field existed).
        residual_scale: the fixed divisor of the residual, about the std of those changes on
            the training data, so the flow's data has about unit scale like its noise.
        frame_head: hidden channels of the adapter's per-frame head (0 = none): a small conv net
            run on each future frame alone, from the U-Net's shared features, that frame's noisy
            latent, the base's velocity and its own step's prompt features, whose
            zero-initialised output adds to the adapter's velocity. The U-Net stacks all H frames
            along channels; the head gives each frame's output its own action features.
    """

    image_size: int = 64
    latent_channels: int = 4
    ae_width: int = 32
    horizon: int = 8
    context: int = 2
    memory: int = 2
    widths: tuple[int, ...] = (32, 64)
    emb_dim: int = 128
    use_base: bool = True
    conditioning: str = "prompt"
    use_mask: bool = True
    adapter_from_base: bool = False
    prompt_channels: int = 3
    prompt_features: int = 4
    num_joints: int = 4
    shortcut_levels: int = 3
    residual: bool = False
    residual_scale: float = 1.0
    frame_head: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, >= 8; got {self.image_size}")
        for name in ("latent_channels", "ae_width", "horizon", "context", "emb_dim"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.memory < 0:
            raise ValueError(f"memory must be >= 0, got {self.memory}")
        if len(self.widths) != 2 or min(self.widths) <= 0 or any(w % 8 for w in self.widths):
            raise ValueError(f"widths needs 2 positive multiples of 8, got {self.widths}")
        if self.conditioning not in ("prompt", "joints", "none"):
            raise ValueError(
                f"conditioning must be 'prompt', 'joints' or 'none', got {self.conditioning!r}"
            )
        if self.conditioning == "none" and not self.use_base:
            raise ValueError("an action-free model (conditioning 'none') needs use_base")
        if not self.use_base and not self.use_mask:
            raise ValueError("use_mask=False (plain sum) needs a base model (use_base)")
        if self.adapter_from_base and not (self.use_base and self.use_mask):
            raise ValueError(
                "adapter_from_base needs use_base and use_mask (set it false for those ablations)"
            )
        if self.prompt_channels not in (1, 3):
            raise ValueError(f"prompt_channels must be 1 or 3, got {self.prompt_channels}")
        if self.prompt_features <= 0 or self.num_joints <= 0:
            raise ValueError("prompt_features and num_joints must be positive")
        if not 0 <= self.shortcut_levels <= 7:
            raise ValueError(f"shortcut_levels must be within 0..7, got {self.shortcut_levels}")
        if not self.residual_scale > 0:
            raise ValueError(f"residual_scale must be positive, got {self.residual_scale}")
        if self.frame_head < 0:
            raise ValueError(f"frame_head must be >= 0, got {self.frame_head}")

    @property
    def latent_size(self) -> int:
        """Side of the latent grid, cells."""
        return self.image_size // 4

    @property
    def has_adapter(self) -> bool:
        return self.conditioning != "none"


@dataclass(frozen=True)
class PriorConfig(ConfigBase):
    """The learned action prior (wm_ros.planning.prior): mean and spread of the next H joint
    targets given the latest K frames (as world-model latents) and the current joint state.

    Attributes:
        context: K, latest frames it sees (the world model's context).
        horizon: H, future actions it predicts.
        num_joints: J, joints per action.
        latent_channels, latent_size: shape of one latent frame (c, s, s) of the world model.
        width: channels of its conv encoder (doubled at its second stage).
        hidden: size of its MLP.
        min_std, max_std: bounds of the predicted spread, rad.
        joint_names: the joints of the action columns, in order (matched by name at run time).
    """

    context: int = 2
    horizon: int = 8
    num_joints: int = 4
    latent_channels: int = 4
    latent_size: int = 16
    width: int = 32
    hidden: int = 256
    min_std: float = 0.01
    max_std: float = 1.0
    joint_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("context", "horizon", "num_joints", "latent_channels", "width", "hidden"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.latent_size < 4 or self.latent_size % 4:
            raise ValueError(f"latent_size must be a multiple of 4, got {self.latent_size}")
        if not 0.0 < self.min_std < self.max_std:
            raise ValueError("need 0 < min_std < max_std (rad)")
        if self.joint_names and len(self.joint_names) != self.num_joints:
            raise ValueError(f"{len(self.joint_names)} joint_names for {self.num_joints} joints")

    @classmethod
    def for_model(cls, cfg: ModelConfig, joint_names: tuple[str, ...] = (), **kw: Any) -> Self:
        """The prior matching a world model's context, horizon, joints and latent shape."""
        return cls(
            context=cfg.context,
            horizon=cfg.horizon,
            num_joints=cfg.num_joints,
            latent_channels=cfg.latent_channels,
            latent_size=cfg.latent_size,
            joint_names=tuple(joint_names),
            **kw,
        )


@dataclass(frozen=True)
class PoseConfig(ConfigBase):
    """The goal-pose estimator (wm_ros.planning.goal_pose): the arm's joint positions from one
    camera image, for the joint-goal cost when a goal comes as an image alone. A network finds
    the skeleton's keypoints in the image; the joints are fitted to them through the URDF and
    the camera.

    Attributes:
        image_size: S of the (S, S, 3) images it reads (the world model's); a multiple of 8.
        num_joints: J, joints it estimates.
        keypoints: the skeleton keypoints it finds, in order (wm_ros.kinematics.Skeleton names;
            checked against the renderer it fits with).
        width: channels of its network at S/2 (S/2 at S, 2x at S/4, 3x at S/8); a multiple of 8.
        joint_mean: (J,) mean joint positions of its training data, rad (one of the fit's
            starting poses, and the guess its figures are compared with).
        joint_names: the joints of its outputs, in order (matched by name at run time).
        fit_starts: starting poses of the fit per image (the mean pose and random ones within the
            joint limits); the one that fits the keypoints best wins.
        fit_iterations: gradient steps of the fit.
    """

    image_size: int = 64
    num_joints: int = 4
    keypoints: tuple[str, ...] = ()
    width: int = 32
    joint_mean: tuple[float, ...] = ()
    joint_names: tuple[str, ...] = ()
    fit_starts: int = 64
    fit_iterations: int = 200

    def __post_init__(self) -> None:
        for name in ("num_joints", "width", "fit_starts", "fit_iterations"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.image_size < 16 or self.image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 from 16, got {self.image_size}")
        if self.width % 8:
            raise ValueError(f"width must be a multiple of 8, got {self.width}")
        for name in ("joint_mean", "joint_names"):
            if getattr(self, name) and len(getattr(self, name)) != self.num_joints:
                raise ValueError(f"{len(getattr(self, name))} {name} for {self.num_joints} joints")


@dataclass(frozen=True)
class CEMConfig(ConfigBase):
    """The cross-entropy method over action parameters (wm_ros.planning.cem).

    Attributes:
        num_samples: N candidates drawn per iteration (the current mean is always one of them).
        num_elites: lowest-cost candidates the distribution is refitted on.
        iterations: I refits per replan.
        init_std: spread of a fresh distribution, in parameter units (rad for joint offsets,
            metres for tool offsets).
        min_std: floor of the spread, so the search never collapses completely.
        momentum: weight of the previous mean and std in each refit (0 = elites only).
        warm_start: start each replan from the previous mean shifted by one knot.
    """

    num_samples: int = 256
    num_elites: int = 32
    iterations: int = 3
    init_std: float = 0.2
    min_std: float = 0.02
    momentum: float = 0.1
    warm_start: bool = True

    def __post_init__(self) -> None:
        if self.num_samples < 2 or not 1 <= self.num_elites <= self.num_samples:
            raise ValueError("need num_samples >= 2 and 1 <= num_elites <= num_samples")
        if self.iterations <= 0:
            raise ValueError(f"iterations must be positive, got {self.iterations}")
        if not 0.0 <= self.min_std <= self.init_std or self.init_std <= 0:
            raise ValueError("need 0 <= min_std <= init_std and init_std > 0")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be within [0, 1), got {self.momentum}")


@dataclass(frozen=True)
class CostConfig(ConfigBase):
    """Weights of the planning cost (wm_ros.planning.costs); each term is per candidate.

    Attributes:
        goal_final: squared distance between the imagined final latent and the goal image's
            latent (mean over latent cells).
        goal_all: the same distance averaged over all H imagined steps.
        joint_goal: squared joint distance of the final target to a goal pose, rad^2 (only
            when a goal pose is given).
        smoothness: squared second differences of the targets (q0 first), rad^2.
        limit: squared distance the sampler had to move a candidate into the limits, rad^2.
        robot_mask_px: pixels (at the model's image size) around the robot's skeleton whose
            latent cells are left out of the goal distances, in each imagined step and, when
            the goal's joints are given, in the goal: the goal is judged on the scene (a pushed
            object), not on the arm's pose. 0: off, the whole image counts.
        pyramid: scales of the goal distances: 1 compares latent cells; 2 and 3 add 2x2 and
            4x4 average-pooled cells, so that an object missing its goal by a few cells costs
            less than one far away.
        joint_goal_margin: rad; each joint's distance to the goal pose counts in joint_goal only
            beyond this. With a pose estimated from the goal image (PlannerConfig.goal_pose), the
            joint term then keeps the search in the estimate's basin and the image terms set
            the precision within it.
        object_goal: weight per px^2 (at the model's image size) of the squared distance
            between an object's place in the imagined final frame (decoded) and in the goal
            image: the object is the densest blob of pixels within object_tolerance of
            object_rgb. A pushed object weighs little in a whole-image distance beside the arm;
            this term weighs it by where it is. 0: off.
        object_rgb: the object's colour, RGB in [0, 1] (the simulator's puck: white).
        object_tolerance: RGB distance (0 to sqrt(3)) within which a pixel is the object's.
        object_radius_px: half-size of the square, px, the object's centroid is taken in (about
            the object's radius), so stray pixels of its colour elsewhere do not move it.
    """

    goal_final: float = 1.0
    goal_all: float = 0.0
    joint_goal: float = 0.0
    smoothness: float = 0.01
    limit: float = 10.0
    robot_mask_px: float = 0.0
    pyramid: int = 1
    joint_goal_margin: float = 0.0
    object_goal: float = 0.0
    object_rgb: tuple[float, ...] = (0.95, 0.95, 0.95)
    object_tolerance: float = 0.25
    object_radius_px: int = 4

    def __post_init__(self) -> None:
        for name, value in self.to_dict().items():
            if not isinstance(value, list) and value < 0:
                raise ValueError(f"cost weight {name} must be >= 0, got {value}")
        if self.pyramid not in (1, 2, 3):
            raise ValueError(f"pyramid must be 1, 2 or 3, got {self.pyramid}")
        if len(self.object_rgb) != 3 or not all(0.0 <= c <= 1.0 for c in self.object_rgb):
            raise ValueError(f"object_rgb must be 3 values in [0, 1], got {self.object_rgb}")
        if self.object_tolerance <= 0 or self.object_radius_px < 1:
            raise ValueError(
                f"object_tolerance must be > 0 and object_radius_px >= 1, got "
                f"{self.object_tolerance} and {self.object_radius_px}"
            )


GOAL_POSE_SOURCES = ("auto", "given", "image")  # PlannerConfig.goal_pose


@dataclass(frozen=True)
class PlannerConfig(ConfigBase):
    """One replan of the planning core (wm_ros.planning.planner): CEM over joint-delta knots
    scored through a rollout model.

    Attributes:
        horizon: H control steps planned: the world model's chunk length or a multiple of it
            (imagined chunk by chunk, each from the model's own latest predictions).
        dt: seconds per control step (the simulator's control_dt; the plan's point spacing).
        knots: P knots the H steps interpolate through (0 = one per step).
        joints: joints the planner moves, by name (empty = all actuated joints).
        tool_axes: base-frame axes ("x", "y", "z") of tool-point knots, turned into joint
            targets by inverse kinematics (wm_ros.planning.actions.ToolDeltaActions); empty:
            knots of joint offsets. With tool axes, cem.init_std and min_std are metres.
        sampler_steps: flow sampler steps per world-model rollout (1, 2, 4 or 8 trained).
        sampler_noise_scale: factor on the rollout's starting noise (wm_ros.model.flow.sample):
            1 imagines a sample of the futures the model thinks possible, 0 a deterministic
            prediction near their centre, which CEM cannot exploit by picking candidates whose
            noise happened to land near the goal.
        goal_pose: where the goal pose of the joint-goal cost (and the goal's robot mask) comes
            from: "given" (a goal joint state sent with the goal image), "image" (estimated from
            the goal image by the model directory's pose estimator, wm_ros.planning.goal_pose),
            "auto" (given when one was sent for this goal, else estimated when the model has an
            estimator).
        goal_pose_max_fit_px: an estimated goal pose whose keypoints land further than this
            from those found in the goal image (mean, pixels at the model's size) is not used:
            the image shows no arm the estimator can fit (about 0.05 px on simulator goals, 0.12
            at most; 1.7-7 px on blank, noise or shifted images), and the goal gets no pose.
        use_prior: seed a fresh search from the learned action prior when the model has one
            (off by default: the shipped prior learnt exploration, and seeding reach episodes
            from it led the oracle planner away from the goal; see the README).
        prior_std_scale: factor on the prior's spread before CEM uses it (never below
            cem.init_std).
        seed: seeds the candidate sampling and the model noise.
        cem: the CEM settings (CEMConfig).
        cost: the cost weights (CostConfig).
    """

    horizon: int = 8
    dt: float = 0.1
    knots: int = 0
    joints: tuple[str, ...] = ()
    tool_axes: tuple[str, ...] = ()
    sampler_steps: int = 2
    sampler_noise_scale: float = 1.0
    goal_pose: str = "auto"
    goal_pose_max_fit_px: float = 1.0
    use_prior: bool = False
    prior_std_scale: float = 1.0
    seed: int = 0
    cem: CEMConfig = field(default_factory=CEMConfig)
    cost: CostConfig = field(default_factory=CostConfig)

    def __post_init__(self) -> None:
        for name, kind in (("cem", CEMConfig), ("cost", CostConfig)):
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, kind.from_dict(getattr(self, name)))
        if self.horizon <= 0 or self.dt <= 0 or self.sampler_steps <= 0:
            raise ValueError("horizon, dt (s) and sampler_steps must be positive")
        if not 0 <= self.knots <= self.horizon:
            raise ValueError(f"knots must be within 0..horizon ({self.horizon}), got {self.knots}")
        if self.prior_std_scale <= 0:
            raise ValueError("prior_std_scale must be positive")
        if self.sampler_noise_scale < 0:
            raise ValueError(f"sampler_noise_scale must be >= 0, got {self.sampler_noise_scale}")
        if self.goal_pose_max_fit_px <= 0:
            raise ValueError(
                f"goal_pose_max_fit_px must be positive, got {self.goal_pose_max_fit_px}"
            )
        if self.goal_pose not in GOAL_POSE_SOURCES:
            raise ValueError(
                f"goal_pose must be one of {GOAL_POSE_SOURCES}, got {self.goal_pose!r}"
            )
        axes = tuple(self.tool_axes)
        if any(a not in ("x", "y", "z") for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"tool_axes must be distinct among x, y, z, got {list(axes)}")
        if axes and self.joints:
            raise ValueError("tool_axes move every joint: leave planner.joints empty")


# planner_node parameters that belong to the node, not to the planning session (its params file
# sets them beside PlanningSessionConfig's).
PLANNER_NODE_ONLY = ("autostart", "replan_deadline_s")


def read_planner_params(*paths: str | Path) -> dict:
    """The planner_node.ros__parameters block of params files, layered in order as ROS applies
    several --params-file (a later file's values win, nested sections merge).

    Raises:
        ValueError: no file given, or a file without a planner_node.ros__parameters section.
    """
    if not paths:
        raise ValueError("no planner params file given")
    merged: dict = {}
    for path in paths:
        data = yaml.safe_load(Path(path).read_text()) or {}
        block = (data.get("planner_node") or {}).get("ros__parameters")
        if block is None:
            raise ValueError(f"{path}: no planner_node.ros__parameters section")
        merged = _merge(merged, block)
    return merged


def planning_session_from_params(block: dict) -> PlanningSessionConfig:
    """PlanningSessionConfig from a planner_node parameter block (node-only keys dropped)."""
    return PlanningSessionConfig.from_dict(
        {k: v for k, v in block.items() if k not in PLANNER_NODE_ONLY}
    )


def planning_session_from_yaml(*paths: str | Path) -> PlanningSessionConfig:
    """PlanningSessionConfig from planner_node params files, layered (read_planner_params)."""
    return planning_session_from_params(read_planner_params(*paths))


def _merge(base: dict, top: dict) -> dict:
    """base with top's values on top, nested mappings merged key by key."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class PlanningSessionConfig(ConfigBase):
    """What the planner needs besides the search itself (wm_ros.planning.session), and what
    planner_node reads from its parameters.

    Attributes:
        model: model directory (config.json + safetensors); relative paths are looked up in
            the working directory, then in the package's share directory.
        device: "auto" (cuda when available), "cpu", "cuda" or "cuda:i".
        backend: what runs the world model's networks: "torch", or "onnxruntime" (the graphs
            of `wm-ros export-onnx` in `<model>/onnx`, exported afresh to a temporary folder
            when absent or of other weights; CUDA needs requirements-gpu.txt). The sampler,
            the cost and the search are the same code for both.
        precision: "fp32", or "bf16" (the denoiser under bf16 autocast: the GPU fast path;
            torch backend only; check planning success with `wm-ros eval plan` first).
        cuda_graphs: replay each denoiser evaluation from a CUDA graph (torch backend on a CUDA
            device; ignored on CPU).
        urdf: the robot's URDF path; empty means the packaged simulator arm.
        robot_description: URDF XML text; wins over `urdf` when set (the ROS convention).
        camera_translation: (3,) camera optical-frame origin in the robot base frame, metres.
        camera_quat_xyzw: (4,) rotation of the optical frame in the base frame (x, y, z, w).
        replan_rate_hz: replans per second (a replan still running when the next is due makes
            that one skipped and counted).
        max_observation_age_s: the latest image may be at most this old when a replan starts.
        max_image_joint_gap_s: the joint state used must be at most this far from the image.
        planner: the search (PlannerConfig); its horizon is a multiple of the model's.
    """

    model: str = "models/sim_tabletop"
    device: str = "auto"
    backend: str = "torch"
    precision: str = "fp32"
    cuda_graphs: bool = False
    urdf: str = ""
    robot_description: str = ""
    camera_translation: tuple[float, ...] = SIM_CAMERA_TRANSLATION
    camera_quat_xyzw: tuple[float, ...] = SIM_CAMERA_QUAT_XYZW
    replan_rate_hz: float = 2.0
    max_observation_age_s: float = 0.5
    max_image_joint_gap_s: float = 0.1
    planner: PlannerConfig = field(default_factory=PlannerConfig)

    def __post_init__(self) -> None:
        if isinstance(self.planner, dict):
            object.__setattr__(self, "planner", PlannerConfig.from_dict(self.planner))
        _check_camera_pose(self.camera_translation, self.camera_quat_xyzw)
        if self.backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {self.backend!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.backend == "onnxruntime" and (self.precision != "fp32" or self.cuda_graphs):
            raise ValueError("backend onnxruntime runs fp32 without cuda_graphs (torch options)")
        if self.replan_rate_hz <= 0 or self.max_observation_age_s <= 0:
            raise ValueError("replan_rate_hz and max_observation_age_s must be positive")
        if self.max_image_joint_gap_s <= 0:
            raise ValueError("max_image_joint_gap_s must be positive (s)")


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Training of the world model (`wm-ros train`). Steps are optimiser steps per stage.

    Attributes:
        seed: seeds weights, window sampling and noise.
        batch_size: windows (or frames, for the autoencoder) per step.
        lr: AdamW learning rate (cosine decay to lr / 10 after warmup_steps).
        weight_decay: AdamW weight decay.
        warmup_steps: linear learning-rate warm-up, steps.
        grad_clip: gradient norm clip (0 = off).
        autoencoder_steps, base_steps, adapter_steps, prior_steps, pose_steps, decoder_steps:
            steps of each stage (decoder: the decoder fine-tuned alone, encoder frozen, by name
            after the others; 0 = not run).
        pose_batch_size: frames per step of the pose stage.
        foreground_weight: extra reconstruction weight of arm and puck pixels (labels > 0),
            so the small moving objects are not averaged away.
        flow_foreground_weight: extra weight, in the adapter's flow loss, of the latent cells
            that hold the arm or the puck in a future frame or in the last context frame
            (labels > 0 pooled onto the latent grid): the cells where the actions move things,
            which a uniform loss over the mostly static grid underweights. The base, which
            cannot know the actions, keeps a uniform loss. 0 = uniform for both (the shipped
            model: README says what a weight did to it).
        flow_puck_weight: extra weight, on top of that, of the cells that hold the puck (in a
            future frame or the last context frame): a few cells of the grid carry where a
            pushed puck goes, which the arm's many cells otherwise outweigh. 0 = off.
        latent_l2: weight of a small L2 penalty on the autoencoder's latents.
        shortcut_fraction: fraction of each batch trained on the shortcut self-consistency
            target (the rest on plain flow matching, d = 0).
        memory_tau: recency weighting of memory frames: P(age a) ~ exp(-a / memory_tau), frames.
        checkpoint_every: steps between checkpoints (a killed run resumes from the last one).
        log_every: steps between loss log lines.
        val_fraction: fraction of episodes held out for the validation loss (at least one when
            there are two or more episodes).
        device: "cpu", "cuda" or "auto" (cuda when available).
    """

    seed: int = 0
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    grad_clip: float = 1.0
    autoencoder_steps: int = 2000
    base_steps: int = 4000
    adapter_steps: int = 4000
    prior_steps: int = 1500
    pose_steps: int = 3000
    decoder_steps: int = 0
    pose_batch_size: int = 64
    foreground_weight: float = 10.0
    flow_foreground_weight: float = 0.0
    flow_puck_weight: float = 0.0
    latent_l2: float = 1e-4
    shortcut_fraction: float = 0.25
    memory_tau: float = 8.0
    checkpoint_every: int = 250
    log_every: int = 25
    val_fraction: float = 0.1
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.pose_batch_size <= 0 or self.lr <= 0:
            raise ValueError("batch_size, pose_batch_size and lr must be positive")
        for name in (
            "autoencoder_steps",
            "base_steps",
            "adapter_steps",
            "prior_steps",
            "pose_steps",
            "decoder_steps",
            "warmup_steps",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.checkpoint_every <= 0 or self.log_every <= 0:
            raise ValueError("checkpoint_every and log_every must be positive")
        if not 0.0 <= self.shortcut_fraction < 1.0:
            raise ValueError("shortcut_fraction must be within [0, 1)")
        if (
            self.memory_tau <= 0
            or min(
                self.foreground_weight,
                self.flow_foreground_weight,
                self.flow_puck_weight,
                self.latent_l2,
            )
            < 0
        ):
            raise ValueError(
                "memory_tau must be positive; foreground_weight, flow_foreground_weight, "
                "flow_puck_weight, latent_l2 >= 0"
            )
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be within [0, 1)")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:i]', got {self.device!r}")
