"""URDF parsing into a plain, immutable robot description (no ROS, no meshes).

Only what kinematics and skeleton prompts need is read: links (with their visual origins and
primitive sizes, for alignment checks), joints (type, origin, axis, limits, mimic). Mesh files are
never opened: a `package://` URI that cannot be resolved is kept as a string and ignored.

Conventions (URDF spec): lengths in metres, angles in radians; a joint's `<origin rpy>` is the
fixed-axis roll-pitch-yaw rotation R = Rz(yaw) @ Ry(pitch) @ Rx(roll) of the child frame in the
parent frame at zero joint position.

Model order: links and joints are listed depth-first from the root, children in file order (the
order MuJoCo's URDF importer gives bodies, so arrays line up with the simulator's).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED_JOINT_TYPES = ("revolute", "continuous", "prismatic", "fixed")


class URDFError(ValueError):
    """A URDF that cannot be used: missing file, malformed XML, or an inconsistent tree."""


@dataclass(frozen=True)
class Mimic:
    """A joint that follows another: value = multiplier * master + offset.

    Attributes:
        joint: name of the master joint as written in the URDF (may itself be a mimic joint).
        multiplier: unitless factor.
        offset: added after scaling, radians or metres.
    """

    joint: str
    multiplier: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class Visual:
    """One `<visual>` element: its pose in the link frame and its primitive geometry.

    Attributes:
        name: the element's name attribute ("" if none).
        origin: (4, 4) pose of the geometry in the link frame, metres.
        geometry: "box", "cylinder", "sphere", "mesh" or "" (none).
        size: box (x, y, z) full sizes; cylinder (radius, length); sphere (radius,); mesh scale;
            metres.
        filename: the mesh URI as written (never opened); "" for primitives.
    """

    name: str
    origin: np.ndarray
    geometry: str
    size: tuple[float, ...]
    filename: str = ""


@dataclass(frozen=True)
class Link:
    """A URDF link: its name and visual elements."""

    name: str
    visuals: tuple[Visual, ...] = ()


@dataclass(frozen=True)
class Joint:
    """A URDF joint.

    Attributes:
        name: joint name.
        type: one of SUPPORTED_JOINT_TYPES.
        parent, child: link names.
        origin: (4, 4) child frame in the parent frame at zero joint position, metres.
        axis: (3,) unit axis in the child (= joint) frame; (1, 0, 0) when unspecified.
        lower, upper: position limits, rad or m; -inf/inf for continuous joints or a missing
            `<limit>`.
        velocity: velocity limit, rad/s or m/s (inf if missing).
        effort: effort limit, N m or N (inf if missing).
        mimic: the mimic relation, or None.
    """

    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray
    axis: np.ndarray
    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf
    effort: float = math.inf
    mimic: Mimic | None = None

    @property
    def movable(self) -> bool:
        """True for revolute, continuous and prismatic joints (mimic joints included)."""
        return self.type != "fixed"

    @property
    def actuated(self) -> bool:
        """True for movable joints that are not mimic joints: they take a value from the state."""
        return self.movable and self.mimic is None


@dataclass(frozen=True)
class RobotModel:
    """A parsed URDF tree, in model order (depth-first from the root).

    Attributes:
        name: the robot's name attribute.
        root: name of the root link (the only link that is no joint's child).
        links: all links, model order; links[0] is the root.
        joints: all joints, model order; joints[i] is the parent joint of links[i + 1].
    """

    name: str
    root: str
    links: tuple[Link, ...]
    joints: tuple[Joint, ...]

    # ----------------------------------------------------------------- lookups

    @property
    def link_names(self) -> tuple[str, ...]:
        return tuple(link.name for link in self.links)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """All joints, fixed and mimic included, model order."""
        return tuple(j.name for j in self.joints)

    @property
    def actuated_joints(self) -> tuple[Joint, ...]:
        """Joints whose values come from the joint state (movable, not mimic), model order."""
        return tuple(j for j in self.joints if j.actuated)

    @property
    def actuated_joint_names(self) -> tuple[str, ...]:
        """Names of the actuated joints: the column order of (..., J) joint arrays."""
        return tuple(j.name for j in self.actuated_joints)

    @property
    def joint_limits(self) -> np.ndarray:
        """(J, 2) lower/upper limits of the actuated joints, rad or m (+-inf where unlimited)."""
        return np.array([[j.lower, j.upper] for j in self.actuated_joints], dtype=np.float64)

    def link_index(self, name: str) -> int:
        """Index of a link in model order. Raises ValueError naming the known links."""
        for i, link in enumerate(self.links):
            if link.name == name:
                return i
        raise URDFError(f"robot {self.name!r} has no link {name!r}; links: {list(self.link_names)}")

    def link(self, name: str) -> Link:
        return self.links[self.link_index(name)]

    def joint(self, name: str) -> Joint:
        for j in self.joints:
            if j.name == name:
                return j
        raise URDFError(
            f"robot {self.name!r} has no joint {name!r}; joints: {list(self.joint_names)}"
        )

    def parent_joint(self, link: str) -> Joint | None:
        """The joint whose child is `link` (None for the root)."""
        i = self.link_index(link)
        return None if i == 0 else self.joints[i - 1]

    def parent_index(self) -> tuple[int, ...]:
        """(L,) index of each link's parent link in model order (-1 for the root)."""
        index = {name: i for i, name in enumerate(self.link_names)}
        return (-1, *(index[j.parent] for j in self.joints))

    def chain(self, base: str, tip: str) -> tuple[str, ...]:
        """Links from `base` to `tip`, both included, following parent links from the tip.

        Raises:
            URDFError: either link is unknown, or `tip` is not below `base` in the tree.
        """
        self.link_index(base)
        path = [tip]
        joint = self.parent_joint(tip)
        while path[-1] != base:
            if joint is None:
                raise URDFError(
                    f"link {tip!r} is not reachable from link {base!r} in robot {self.name!r} "
                    f"(its chain to the root is {list(reversed(path))})"
                )
            path.append(joint.parent)
            joint = self.parent_joint(joint.parent)
        return tuple(reversed(path))

    def children(self, link: str) -> tuple[Joint, ...]:
        """Joints whose parent is `link`, model order."""
        return tuple(j for j in self.joints if j.parent == link)

    def descendants(self, link: str) -> tuple[str, ...]:
        """Links strictly below `link`, model order."""
        below: set[str] = {link}
        out = []
        for j in self.joints:  # model order visits parents before children
            if j.parent in below:
                below.add(j.child)
                out.append(j.child)
        return tuple(out)

    def resolve_mimic(self, joint: Joint) -> tuple[str, float, float]:
        """(actuated master, multiplier, offset) of a movable joint, following mimic chains.

        An actuated joint resolves to (itself, 1, 0).
        """
        name, mult, off = joint.name, 1.0, 0.0
        seen = [joint.name]
        j = joint
        while j.mimic is not None:
            # value(j) = m * value(master) + o; compose with what we have so far.
            mult, off = mult * j.mimic.multiplier, mult * j.mimic.offset + off
            j = self.joint(j.mimic.joint)
            if j.name in seen:
                raise URDFError(f"mimic joints form a cycle: {[*seen, j.name]}")
            if not j.movable:
                raise URDFError(f"joint {seen[-1]!r} mimics {j.name!r}, which is a fixed joint")
            seen.append(j.name)
            name = j.name
        return name, mult, off

    # ----------------------------------------------------------------- joint states

    def joint_order(self, names: Sequence[str]) -> np.ndarray:
        """Column indices that take a joint state in `names` order to actuated-joint order.

        `values[..., model.joint_order(names)]` is the (..., J) array FK expects. Names the state
        has but the model does not (other robots' joints, mimic joints) are ignored.

        Raises:
            ValueError: an actuated joint of the model is missing from `names`, or a name repeats.
        """
        names = list(names)
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"joint state names repeat: {dupes}")
        where = {n: i for i, n in enumerate(names)}
        wanted = self.actuated_joint_names
        missing = [n for n in wanted if n not in where]
        if missing:
            raise ValueError(
                f"joint state lacks joint(s) {missing} of robot {self.name!r} "
                f"(state has {names}; the robot needs {list(wanted)})"
            )
        return np.array([where[n] for n in wanted], dtype=np.int64)

    def order_joint_values(self, names: Sequence[str], values: np.ndarray) -> np.ndarray:
        """Reorder a joint state (..., len(names)) to the model's (..., J) actuated order."""
        values = np.asarray(values)
        if values.shape[-1:] != (len(names),):
            raise ValueError(
                f"joint values have shape {values.shape}; last axis must match {len(names)} names"
            )
        return values[..., self.joint_order(names)]


# --------------------------------------------------------------------------- parsing


def load_urdf(source: str | Path) -> RobotModel:
    """Parse a URDF from XML text or from a file path.

    Args:
        source: URDF XML (a string starting with '<', e.g. a `robot_description` parameter), or
            a path to a .urdf file.
    Raises:
        URDFError (a ValueError): missing file, malformed XML, no/several root links, unknown
            link references, unsupported joint types, bad numbers, mimic cycles.
    """
    if isinstance(source, Path) or not str(source).lstrip().startswith("<"):
        path = Path(source)
        if not path.is_file():
            raise URDFError(f"URDF file not found: {path}")
        text, where = path.read_text(), str(path)
    else:
        text, where = str(source), "URDF string"
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise URDFError(f"malformed URDF XML in {where}: {err}") from err
    if root.tag != "robot":
        raise URDFError(f"{where}: not a URDF (root element is <{root.tag}>, expected <robot>)")
    return _build_model(root, where)


def _floats(text: str | None, count: int, default: Sequence[float], what: str) -> np.ndarray:
    if text is None:
        return np.asarray(default, dtype=np.float64)
    try:
        values = [float(v) for v in text.split()]
    except ValueError as err:
        raise URDFError(f"{what}: expected {count} numbers, got {text!r}") from err
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise URDFError(f"{what}: expected {count} finite numbers, got {text!r}")
    return np.asarray(values, dtype=np.float64)


def _float_attr(elem: ET.Element, key: str, default: float, what: str) -> float:
    text = elem.get(key)
    if text is None:
        return default
    try:
        return float(text)
    except ValueError as err:
        raise URDFError(f"{what}: attribute {key}={text!r} is not a number") from err


def rpy_to_matrix(rpy: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation of URDF fixed-axis roll, pitch, yaw (radians): Rz(y) @ Ry(p) @ Rx(r)."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = (
        math.cos(r),
        math.sin(r),
        math.cos(p),
        math.sin(p),
        math.cos(y),
        math.sin(y),
    )
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def _origin(elem: ET.Element | None, what: str) -> np.ndarray:
    pose = np.eye(4)
    if elem is None:
        return pose
    pose[:3, :3] = rpy_to_matrix(_floats(elem.get("rpy"), 3, (0, 0, 0), f"{what} <origin rpy>"))
    pose[:3, 3] = _floats(elem.get("xyz"), 3, (0, 0, 0), f"{what} <origin xyz>")
    return pose


def _visual(elem: ET.Element, link: str) -> Visual:
    name = elem.get("name", "")
    what = f"link {link!r} visual {name!r}"
    origin = _origin(elem.find("origin"), what)
    geom = elem.find("geometry")
    shape = None if geom is None else next(iter(geom), None)
    if shape is None:
        return Visual(name, origin, "", ())
    if shape.tag == "box":
        return Visual(name, origin, "box", tuple(_floats(shape.get("size"), 3, (0, 0, 0), what)))
    if shape.tag == "cylinder":
        radius = _float_attr(shape, "radius", 0.0, what)
        return Visual(name, origin, "cylinder", (radius, _float_attr(shape, "length", 0.0, what)))
    if shape.tag == "sphere":
        return Visual(name, origin, "sphere", (_float_attr(shape, "radius", 0.0, what),))
    if shape.tag == "mesh":
        # Never opened: meshes are not needed for kinematics or skeletons.
        scale = tuple(_floats(shape.get("scale"), 3, (1, 1, 1), what))
        return Visual(name, origin, "mesh", scale, shape.get("filename", ""))
    return Visual(name, origin, shape.tag, ())


def _joint(elem: ET.Element) -> Joint:
    name = elem.get("name")
    if not name:
        raise URDFError("a <joint> has no name")
    what = f"joint {name!r}"
    jtype = elem.get("type", "")
    if jtype not in SUPPORTED_JOINT_TYPES:
        raise URDFError(f"{what}: type {jtype!r} is not supported (use {SUPPORTED_JOINT_TYPES})")
    parent, child = elem.find("parent"), elem.find("child")
    if parent is None or child is None or not parent.get("link") or not child.get("link"):
        raise URDFError(f"{what}: needs <parent link=...> and <child link=...>")
    axis = _floats(
        None if elem.find("axis") is None else elem.find("axis").get("xyz"),  # type: ignore[union-attr]
        3,
        (1, 0, 0),
        f"{what} <axis>",
    )
    norm = float(np.linalg.norm(axis))
    if jtype != "fixed" and norm < 1e-9:
        raise URDFError(f"{what}: axis is zero")
    axis = axis / norm if norm > 0 else np.array([1.0, 0.0, 0.0])
    lower, upper, velocity, effort = -math.inf, math.inf, math.inf, math.inf
    limit = elem.find("limit")
    if limit is not None and jtype in ("revolute", "prismatic"):
        # URDF: lower/upper default to 0 when <limit> is present.
        lower = _float_attr(limit, "lower", 0.0, what)
        upper = _float_attr(limit, "upper", 0.0, what)
        if lower > upper:
            raise URDFError(f"{what}: limit lower {lower} > upper {upper}")
    if limit is not None:
        velocity = _float_attr(limit, "velocity", math.inf, what)
        effort = _float_attr(limit, "effort", math.inf, what)
    mimic = None
    mimic_elem = elem.find("mimic")
    if mimic_elem is not None and jtype != "fixed":
        master = mimic_elem.get("joint")
        if not master:
            raise URDFError(f"{what}: <mimic> needs a joint attribute")
        mimic = Mimic(
            master,
            _float_attr(mimic_elem, "multiplier", 1.0, what),
            _float_attr(mimic_elem, "offset", 0.0, what),
        )
    return Joint(
        name=name,
        type=jtype,
        parent=str(parent.get("link")),
        child=str(child.get("link")),
        origin=_origin(elem.find("origin"), what),
        axis=axis,
        lower=lower,
        upper=upper,
        velocity=velocity,
        effort=effort,
        mimic=mimic,
    )


def _build_model(root: ET.Element, where: str) -> RobotModel:
    links: dict[str, Link] = {}
    for elem in root.findall("link"):
        name = elem.get("name")
        if not name:
            raise URDFError(f"{where}: a <link> has no name")
        if name in links:
            raise URDFError(f"{where}: link {name!r} is defined twice")
        links[name] = Link(name, tuple(_visual(v, name) for v in elem.findall("visual")))
    if not links:
        raise URDFError(f"{where}: the robot has no links")

    joints: list[Joint] = []
    by_child: dict[str, Joint] = {}
    for elem in root.findall("joint"):
        joint = _joint(elem)
        if any(j.name == joint.name for j in joints):
            raise URDFError(f"{where}: joint {joint.name!r} is defined twice")
        for link in (joint.parent, joint.child):
            if link not in links:
                raise URDFError(f"{where}: joint {joint.name!r} refers to unknown link {link!r}")
        if joint.child in by_child:
            raise URDFError(
                f"{where}: link {joint.child!r} has two parent joints "
                f"({by_child[joint.child].name!r}, {joint.name!r})"
            )
        by_child[joint.child] = joint
        joints.append(joint)

    roots = [name for name in links if name not in by_child]
    if not roots:
        raise URDFError(f"{where}: no root link (every link is some joint's child: a cycle)")
    if len(roots) > 1:
        raise URDFError(f"{where}: several root links {roots}; a URDF is one tree")

    # Depth-first order from the root, children in file order.
    children: dict[str, list[Joint]] = {name: [] for name in links}
    for joint in joints:
        children[joint.parent].append(joint)
    order_links: list[Link] = []
    order_joints: list[Joint] = []
    stack: list[tuple[str, Joint | None]] = [(roots[0], None)]
    while stack:
        name, joint = stack.pop()
        order_links.append(links[name])
        if joint is not None:
            order_joints.append(joint)
        stack.extend((j.child, j) for j in reversed(children[name]))
    if len(order_links) != len(links):
        unreachable = sorted(set(links) - {link.name for link in order_links})
        raise URDFError(f"{where}: links {unreachable} are not connected to root {roots[0]!r}")

    model = RobotModel(
        name=root.get("name", ""),
        root=roots[0],
        links=tuple(order_links),
        joints=tuple(order_joints),
    )
    for joint in model.joints:
        if joint.mimic is not None:
            if joint.mimic.joint not in model.joint_names:
                raise URDFError(
                    f"{where}: joint {joint.name!r} mimics unknown joint {joint.mimic.joint!r}"
                )
            model.resolve_mimic(joint)  # raises on cycles / fixed masters
    return model
