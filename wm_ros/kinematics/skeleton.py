"""Which points of a robot a skeleton prompt draws, and how they are connected.

A skeleton is a small graph: keypoints fixed in links (link origins, the tool point, gripper
fingers) and edges between them. It is chosen once from the URDF and the prompt configuration;
the renderer then only evaluates it, batched.

Default (no links configured): the chain of links from the base to the tool link, plus the
gripper's fingers if the robot has a gripper. Fingers are the links hanging off the "hand" by a
movable joint, where the hand is the last link of the chain reached through a movable joint
together with everything fixed to it after it on the chain. Links whose origin always coincides
with their parent's (zero joint offset, not prismatic) are merged into the parent, so no edge has
zero length by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wm_ros.kinematics.urdf import RobotModel, URDFError

TOOL_KEYPOINT = "<tool>"


@dataclass(frozen=True)
class Skeleton:
    """Keypoints fixed in links and the edges drawn between them.

    Attributes:
        keypoint_names: (K,) the link a keypoint is the origin of, or TOOL_KEYPOINT.
        keypoint_links: (K,) link index (model order) each keypoint is fixed in.
        keypoint_offsets: (K, 3) keypoint position in its link's frame, metres.
        keypoint_kinds: (K,) "joint", "tool" or "finger": how the dot is drawn.
        edges: (E, 2) keypoint index pairs (parent, child).
        edge_names: (E,) the link each edge stands for: the parent keypoint's link, whose body
            spans from its origin to the child's ("<gripper>" for the bar between two fingers);
            edge e is drawn in palette colour e.
        tool_index: index of the tool keypoint.
        gripper: True when fingers were found (their opening is drawn as a bar between the
            first two fingers).
    """

    keypoint_names: tuple[str, ...]
    keypoint_links: tuple[int, ...]
    keypoint_offsets: np.ndarray
    keypoint_kinds: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    edge_names: tuple[str, ...]
    tool_index: int
    gripper: bool

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    @classmethod
    def from_model(
        cls,
        model: RobotModel,
        tool_link: str,
        base_link: str = "",
        links: Sequence[str] = (),
        tool_offset: Sequence[float] = (0.0, 0.0, 0.0),
    ) -> Skeleton:
        """Build the skeleton of `model`.

        Args:
            model: the parsed URDF.
            tool_link: the link whose origin (plus `tool_offset`) is the tool point.
            base_link: where the chain starts; "" means the URDF root.
            links: links whose origins are keypoints; empty selects the default (module doc).
                Each link is connected to its nearest ancestor in the list.
            tool_offset: (3,) tool point in the tool link's frame, metres.
        Raises:
            URDFError (a ValueError): unknown links, or the tool link not reachable from the base.
        """
        base = base_link or model.root
        for name in (base, tool_link, *links):
            if name not in model.link_names:
                raise URDFError(
                    f"skeleton: robot {model.name!r} has no link {name!r}; "
                    f"links: {list(model.link_names)}"
                )
        chain = model.chain(base, tool_link)  # raises if the tool is not below the base
        offset = np.asarray(tool_offset, dtype=np.float64).reshape(3)
        fingers: list[str] = []
        direct: list[str] = []
        if links:
            chosen = list(dict.fromkeys(links))
        else:
            chosen = _merge_coincident(model, chain)
            direct, fingers = _fingers(model, chain)
            chosen += [f for f in fingers if f not in chosen]
        if tool_link not in chosen:
            chosen.append(tool_link)
        chosen = [n for n in model.link_names if n in chosen]  # model order: parents first
        fingers = [f for f in fingers if f in chosen]
        direct = [f for f in direct if f in chosen]

        names, link_ids, offsets, kinds = [], [], [], []
        for name in chosen:
            names.append(name)
            link_ids.append(model.link_index(name))
            offsets.append(np.zeros(3))
            kinds.append("finger" if name in fingers else "joint")
        edges, edge_names = [], []
        for k, name in enumerate(chosen):
            parent = _nearest_listed_ancestor(model, name, chosen)
            if parent is not None:
                edges.append((chosen.index(parent), k))
                edge_names.append(parent)
        tool_k = chosen.index(tool_link)
        if np.any(offset != 0):
            names.append(TOOL_KEYPOINT)
            link_ids.append(model.link_index(tool_link))
            offsets.append(offset)
            kinds.append("tool")
            edges.append((tool_k, len(names) - 1))
            edge_names.append(tool_link)
            tool_k = len(names) - 1
        else:
            kinds[tool_k] = "tool"
        if len(direct) >= 2:
            # The gripper's opening: a bar between the first two fingers.
            edges.append((chosen.index(direct[0]), chosen.index(direct[1])))
            edge_names.append("<gripper>")
        return cls(
            keypoint_names=tuple(names),
            keypoint_links=tuple(link_ids),
            keypoint_offsets=np.stack(offsets),
            keypoint_kinds=tuple(kinds),
            edges=tuple(edges),
            edge_names=tuple(edge_names),
            tool_index=tool_k,
            gripper=len(direct) >= 2,
        )


def _coincides_with_parent(model: RobotModel, link: str) -> bool:
    joint = model.parent_joint(link)
    return (
        joint is not None
        and joint.type != "prismatic"
        and bool(np.allclose(joint.origin[:3, 3], 0.0, atol=1e-9))
    )


def _merge_coincident(model: RobotModel, chain: Sequence[str]) -> list[str]:
    """Chain links minus those whose origin always equals their parent's (not the ends)."""
    keep = [chain[0]]
    for name in chain[1:-1]:
        if not _coincides_with_parent(model, name):
            keep.append(name)
    if len(chain) > 1:
        keep.append(chain[-1])
    return keep


def _fingers(model: RobotModel, chain: Sequence[str]) -> tuple[list[str], list[str]]:
    """(direct, all): links attached by movable joints to the hand (module doc), and those plus
    their subtrees (coincident links merged)."""
    last_moving = 0
    for i, name in enumerate(chain):
        joint = model.parent_joint(name)
        if i > 0 and joint is not None and joint.movable:
            last_moving = i
    hand = set(chain[last_moving:]) if last_moving > 0 else set()
    on_chain = set(chain)
    direct: list[str] = []
    fingers: list[str] = []
    for joint in model.joints:
        if joint.parent in hand and joint.child not in on_chain and joint.movable:
            direct.append(joint.child)
            fingers.append(joint.child)
            fingers.extend(
                d for d in model.descendants(joint.child) if not _coincides_with_parent(model, d)
            )
    return direct, fingers


def _nearest_listed_ancestor(model: RobotModel, link: str, listed: Sequence[str]) -> str | None:
    joint = model.parent_joint(link)
    while joint is not None:
        if joint.parent in listed:
            return joint.parent
        joint = model.parent_joint(joint.parent)
    return None


__all__ = ["TOOL_KEYPOINT", "Skeleton"]
