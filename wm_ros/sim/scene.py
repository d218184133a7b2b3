"""Build the MuJoCo tabletop scene: the project's URDF arm, a table, a puck, a light, a camera.

The arm comes from a plain URDF (by default `assets/arm.urdf`, the same file that skeleton prompts
are drawn from). MuJoCo's URDF importer is told to keep visual geoms and not to fuse fixed links,
so every URDF link stays its own body and can get its own segmentation label. Everything that
URDF cannot say (actuators, armature, contact filtering, the puck, the camera) is added here
through `mujoco.MjSpec`.

Contact filtering: only the pusher (the arm's URDF collision elements) touches the puck; the arm
touches neither itself nor the table; the puck rests and slides on the table.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from wm_ros.config import SimConfig
from wm_ros.paths import ARM_URDF

DEFAULT_URDF = ARM_URDF

# Segmentation labels. The arm's links get ARM_LABEL_START + i, i = link index in model order.
BACKGROUND_LABEL = 0  # table and anything else that is neither arm nor puck
PUCK_LABEL = 1
ARM_LABEL_START = 2
# The packaged arm's links in model order and their labels (arm mask = labels in ARM_LABELS).
ARM_LINKS = ("base_link", "link1", "link2", "link3", "link4", "tool")
ARM_LABELS = tuple(range(ARM_LABEL_START, ARM_LABEL_START + len(ARM_LINKS)))

PUCK_HALF_HEIGHT = 0.015  # m
PUCK_MASS = 0.12  # kg
# Sliding friction puck-table and puck-pusher: a pushed puck stops soon after contact ends (~5 cm
# of slide when struck at ~0.6 m/s, as CEM plans often do).
PUCK_FRICTION = (0.35, 0.005, 0.0001)  # (slide, torsion, roll)

# Workspace, in the base frame (metres). Episodes start with the puck in this annulus in front of
# the base and the pusher tip in the tool region (both inside the default camera's view), the tip
# at least START_CLEARANCE_M from the puck's edge, whatever its size.
PUCK_REGION_RADIUS_M = (0.30, 0.52)
PUCK_REGION_Y_M = (-0.25, 0.25)
TOOL_REGION_X_M = (0.12, 0.68)
TOOL_REGION_Y_M = (-0.38, 0.38)
START_CLEARANCE_M = 0.06

TABLE_COLOR = (0.50, 0.45, 0.40, 1.0)
PUCK_COLOR = (0.95, 0.95, 0.95, 1.0)

# Contact bits: puck <-> table and puck <-> pusher collide, pusher <-> table do not.
_PUCK_CONTYPE, _PUCK_CONAFFINITY = 1, 3
_TABLE_CONTYPE, _TABLE_CONAFFINITY = 1, 0
_PUSHER_CONTYPE, _PUSHER_CONAFFINITY = 2, 0
_HIDDEN_GROUP = 3  # geom group the renderer does not draw (collision duplicates of visuals)

# Position servo per joint: stiffness scales with the joint's effort limit (N m per rad of error
# per N m of effort), damping is set for a damping ratio about 1 at the zero pose. The armature
# stands for the reflected rotor inertia of a geared joint (kg m^2).
_KP_PER_EFFORT = 12.0  # (N m / rad) / (N m)
_DAMPRATIO = 1.0
_ARMATURE_PER_EFFORT = 0.004  # (kg m^2) / (N m)


@dataclass(frozen=True)
class UrdfJoint:
    """One movable URDF joint: limits as the URDF states them."""

    name: str
    lower: float  # rad (or m)
    upper: float  # rad (or m)
    velocity: float  # rad/s (or m/s)
    effort: float  # N m (or N)


def read_urdf_joints(urdf_text: str) -> dict[str, UrdfJoint]:
    """Movable (revolute/prismatic) joints of a URDF with their <limit> values, by name.

    Raises:
        ValueError: a movable joint without a complete <limit> (the simulator needs all four).
    """
    root = ET.fromstring(urdf_text)
    joints: dict[str, UrdfJoint] = {}
    for joint in root.iter("joint"):
        if joint.get("type") not in ("revolute", "prismatic"):
            continue
        name = joint.get("name", "")
        limit = joint.find("limit")
        keys = ("lower", "upper", "velocity", "effort")
        if limit is None or any(limit.get(k) is None for k in keys):
            raise ValueError(f"URDF joint {name!r} needs <limit lower upper velocity effort>")
        values = [float(limit.get(k)) for k in keys]  # type: ignore[arg-type]
        joints[name] = UrdfJoint(name, *values)
    return joints


@dataclass(frozen=True)
class Scene:
    """The compiled model plus the indices the simulator needs.

    Attributes:
        model: compiled MuJoCo model.
        joint_names: arm joints in model order (J,).
        joint_limits: (J, 2) lower/upper position limits, rad.
        velocity_limits: (J,) rad/s, from the URDF.
        effort_limits: (J,) N m, from the URDF.
        qpos_adr, dof_adr: (J,) addresses of the arm joints in qpos / qvel.
        link_names: arm bodies (URDF links) in model order; label of link i = ARM_LABEL_START + i.
        link_body_ids: (L,) body ids of those links.
        tool_body_id: body whose origin is the tool point (the URDF's last link).
        puck_body_id: the puck's body id.
        puck_qpos_adr: address of the puck's free joint in qpos (3 position + 4 quaternion).
        puck_dof_adr: address of the puck's free joint in qvel (6 values).
        camera_id: the fixed camera.
        geom_labels: (ngeom,) segmentation label of every geom.
    """

    model: mujoco.MjModel
    joint_names: tuple[str, ...]
    joint_limits: np.ndarray
    velocity_limits: np.ndarray
    effort_limits: np.ndarray
    qpos_adr: np.ndarray
    dof_adr: np.ndarray
    link_names: tuple[str, ...]
    link_body_ids: np.ndarray
    tool_body_id: int
    puck_body_id: int
    puck_qpos_adr: int
    puck_dof_adr: int
    camera_id: int
    geom_labels: np.ndarray


def camera_axes(position: np.ndarray, lookat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MuJoCo camera x (right) and y (up) axes for a camera at `position` looking at `lookat`.

    MuJoCo cameras look along their -z axis with +y up. World +z is "up" unless the camera looks
    straight down, where world +y is used instead.
    """
    forward = np.asarray(lookat, float) - np.asarray(position, float)
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError("camera_position and camera_lookat coincide")
    forward /= norm
    up = np.array([0.0, 0.0, 1.0])
    if abs(forward @ up) > 0.999:
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    return right, cam_up


def _load_urdf_spec(urdf_path: Path) -> tuple[mujoco.MjSpec, str]:
    text = urdf_path.read_text()
    root = ET.fromstring(text)
    if root.tag != "robot":
        raise ValueError(f"{urdf_path}: not a URDF (root element <{root.tag}>)")
    # Keep visual geoms and every link as its own body. A <mujoco> block inside <robot> is
    # the importer's documented extension point; the file on disk stays plain URDF.
    compiler = ET.Element(
        "compiler",
        discardvisual="false",
        fusestatic="false",
        meshdir=str(urdf_path.parent),
        strippath="false",
    )
    block = root.find("mujoco")
    if block is None:
        block = ET.Element("mujoco")
        root.insert(0, block)
    block.append(compiler)
    spec = mujoco.MjSpec.from_string(ET.tostring(root, encoding="unicode"))
    spec.compiler.fusestatic = False
    return spec, text


def build_scene(cfg: SimConfig) -> Scene:
    """Compile the tabletop model described by `cfg` (arm URDF, camera, image size)."""
    urdf_path = Path(cfg.urdf) if cfg.urdf else DEFAULT_URDF
    if not urdf_path.is_file():
        raise FileNotFoundError(f"arm URDF not found: {urdf_path}")
    spec, urdf_text = _load_urdf_spec(urdf_path)
    urdf_joints = read_urdf_joints(urdf_text)
    arm_bodies = [b for b in spec.bodies if b.name != "world"]
    if not arm_bodies:
        raise ValueError(f"{urdf_path}: no links")

    spec.option.timestep = cfg.physics_dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.global_.offwidth = max(cfg.image_width, 640)
    spec.visual.global_.offheight = max(cfg.image_height, 480)
    spec.visual.quality.offsamples = 0  # no multisampling: crisp labels, fast renders
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.45, 0.45, 0.45]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]

    # Arm geoms: visuals are drawn, URDF collision elements (the pusher) are hidden and only
    # touch the puck.
    for geom in spec.geoms:
        if geom.contype or geom.conaffinity:  # a URDF <collision> element
            geom.contype, geom.conaffinity = _PUSHER_CONTYPE, _PUSHER_CONAFFINITY
            geom.group = _HIDDEN_GROUP
            geom.friction = list(PUCK_FRICTION)
        else:
            geom.group = 1

    # Joints: armature and actuators from the URDF's effort limits.
    joint_specs = [j for j in spec.joints if j.name in urdf_joints]
    if not joint_specs:
        raise ValueError(f"{urdf_path}: no revolute or prismatic joints with limits")
    for joint in joint_specs:
        info = urdf_joints[joint.name]
        joint.armature = _ARMATURE_PER_EFFORT * info.effort
        joint.range = [info.lower, info.upper]
        actuator = spec.add_actuator(name=f"{joint.name}_servo", target=joint.name)
        actuator.trntype = mujoco.mjtTrn.mjTRN_JOINT
        actuator.set_to_position(kp=_KP_PER_EFFORT * info.effort, dampratio=_DAMPRATIO)
        actuator.ctrlrange = [info.lower, info.upper]
        actuator.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuator.forcerange = [-info.effort, info.effort]
        actuator.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE

    world = spec.worldbody
    world.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[1.3, 1.3, 0.25],  # large enough to fill the camera's view behind the workspace
        pos=[0.4, 0.2, 0.0],
        rgba=list(TABLE_COLOR),
        friction=list(PUCK_FRICTION),
        contype=_TABLE_CONTYPE,
        conaffinity=_TABLE_CONAFFINITY,
    )
    puck = world.add_body(name="puck", pos=[0.4, 0.0, PUCK_HALF_HEIGHT])
    puck.add_freejoint(name="puck_free")
    puck.add_geom(
        name="puck",
        type=mujoco.mjtGeom.mjGEOM_CYLINDER,
        size=[cfg.puck_radius_m, PUCK_HALF_HEIGHT, 0.0],
        mass=PUCK_MASS,
        rgba=list(PUCK_COLOR),
        friction=list(PUCK_FRICTION),
        condim=4,  # torsional friction: a pushed puck stops spinning
        contype=_PUCK_CONTYPE,
        conaffinity=_PUCK_CONAFFINITY,
    )
    world.add_light(
        name="top", pos=[0.4, -0.2, 1.5], dir=[0.0, 0.1, -1.0], castshadow=False,
        diffuse=[0.5, 0.5, 0.5], specular=[0.0, 0.0, 0.0],
    )  # fmt: skip
    right, up = camera_axes(np.array(cfg.camera_position), np.array(cfg.camera_lookat))
    camera = world.add_camera(name="scene", pos=list(cfg.camera_position), fovy=cfg.camera_fovy_deg)
    camera.alt.type = mujoco.mjtOrientation.mjORIENTATION_XYAXES
    camera.alt.xyaxes = [*right, *up]

    model = spec.compile()

    joint_ids = [
        i
        for i in range(model.njnt)
        if model.joint(i).name in urdf_joints
        and int(model.jnt_type[i])
        in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    ]
    names = tuple(model.joint(i).name for i in joint_ids)
    infos = [urdf_joints[n] for n in names]
    link_names = tuple(b.name for b in arm_bodies)
    link_body_ids = np.array([model.body(n).id for n in link_names])
    # The tool: the last URDF link in model order (a leaf of the chain).
    tool_body_id = int(link_body_ids[-1])
    puck_body_id = model.body("puck").id
    puck_joint = model.joint("puck_free")

    geom_labels = np.full(model.ngeom, BACKGROUND_LABEL, dtype=np.int32)
    for label, body_id in enumerate(link_body_ids, start=ARM_LABEL_START):
        geom_labels[model.geom_bodyid == body_id] = label
    geom_labels[model.geom_bodyid == puck_body_id] = PUCK_LABEL

    return Scene(
        model=model,
        joint_names=names,
        joint_limits=np.array([[j.lower, j.upper] for j in infos]),
        velocity_limits=np.array([j.velocity for j in infos]),
        effort_limits=np.array([j.effort for j in infos]),
        qpos_adr=model.jnt_qposadr[joint_ids].copy(),
        dof_adr=model.jnt_dofadr[joint_ids].copy(),
        link_names=link_names,
        link_body_ids=link_body_ids,
        tool_body_id=tool_body_id,
        puck_body_id=puck_body_id,
        puck_qpos_adr=int(puck_joint.qposadr[0]),
        puck_dof_adr=int(puck_joint.dofadr[0]),
        camera_id=model.camera("scene").id,
        geom_labels=geom_labels,
    )


def tool_in_view(point: np.ndarray) -> bool:
    """Whether a tool point (x, y, ...) lies in the tool region of the workspace."""
    return bool(
        TOOL_REGION_X_M[0] <= point[0] <= TOOL_REGION_X_M[1]
        and TOOL_REGION_Y_M[0] <= point[1] <= TOOL_REGION_Y_M[1]
    )


def fovy_focal_px(fovy_deg: float, height: int) -> float:
    """Focal length in pixels of a camera with vertical field of view `fovy_deg` (degrees)."""
    return 0.5 * height / math.tan(math.radians(fovy_deg) / 2)
