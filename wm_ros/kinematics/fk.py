"""Batched forward kinematics in torch: (..., J) joint values -> (..., L, 4, 4) link poses.

Works on any device and float dtype: the constants are built on first use for the (device,
dtype) of the joint tensor and cached. All links are computed at once per tree level of the
model order: one Rodrigues/prismatic evaluation for every joint in a single batched op, then one
small batched matmul per link to compose down the tree (a loop over the few links, never over
the batch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wm_ros.kinematics.urdf import RobotModel, URDFError


def _skew(axis: np.ndarray) -> np.ndarray:
    x, y, z = axis
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


class ForwardKinematics:
    """Forward kinematics of a URDF tree, batched over any leading dimensions.

    Poses are expressed in the frame of `base_link` (the URDF root by default). Joint values are
    in the model's actuated-joint order (`joint_names`); mimic joints follow their masters.

    Args:
        model: the parsed URDF.
        base_link: the frame poses are expressed in; default the root. When it is not the root,
            poses are premultiplied by the inverse of its (possibly joint-dependent) pose.
    """

    def __init__(self, model: RobotModel, base_link: str | None = None) -> None:
        self.model = model
        self.base_link = base_link or model.root
        self.base_index = model.link_index(self.base_link)
        self.joint_names = model.actuated_joint_names
        self.link_names = model.link_names
        self.parents = model.parent_index()  # (L,) parent link index, -1 for the root

        actuated = {name: i for i, name in enumerate(self.joint_names)}
        n = len(model.joints)
        src = np.zeros(n, dtype=np.int64)  # column of q feeding each joint (fixed: any)
        mult = np.zeros(n)  # value = mult * q[src] + offset  (fixed joints: 0 * q + 0)
        offset = np.zeros(n)
        revolute = np.zeros(n)
        prismatic = np.zeros(n)
        origin_rot = np.zeros((n, 3, 3))
        origin_trans = np.zeros((n, 3))
        skew = np.zeros((n, 3, 3))
        for i, joint in enumerate(model.joints):
            origin_rot[i], origin_trans[i] = joint.origin[:3, :3], joint.origin[:3, 3]
            skew[i] = _skew(joint.axis)
            if not joint.movable:
                continue
            master, mult[i], offset[i] = model.resolve_mimic(joint)
            src[i] = actuated[master]
            revolute[i] = float(joint.type in ("revolute", "continuous"))
            prismatic[i] = float(joint.type == "prismatic")
        self._np = {
            "src": src,
            "mult": mult,
            "offset": offset,
            "revolute": revolute,
            "prismatic": prismatic,
            "origin_rot": origin_rot,
            "origin_trans": origin_trans,
            # Translation of a prismatic joint in the parent frame per metre: R0 @ axis.
            "slide": np.einsum("nij,nj->ni", origin_rot, np.stack([j.axis for j in model.joints]))
            if n
            else np.zeros((0, 3)),
            # Rodrigues folded into the origin: R0 R(axis, t) = R0 + sin t R0 K + (1 - cos t) R0 K^2
            # (zero for non-revolute joints), so the local rotations are elementwise.
            "rot_sin": origin_rot @ skew * revolute[:, None, None],
            "rot_cos": origin_rot @ (skew @ skew) * revolute[:, None, None],
        }
        self._cache: dict[tuple[torch.device, torch.dtype], dict[str, torch.Tensor]] = {}

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def link_index(self, name: str) -> int:
        return self.model.link_index(name)

    def _consts(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        key = (device, dtype)
        consts = self._cache.get(key)
        if consts is None:
            consts = {
                k: torch.as_tensor(v, device=device, dtype=torch.long if k == "src" else dtype)
                for k, v in self._np.items()
            }
            self._cache[key] = consts
        return consts

    def _check(self, q: torch.Tensor) -> None:
        if not torch.is_tensor(q) or not q.is_floating_point():
            raise ValueError("joint values must be a floating-point torch tensor")
        if q.shape[-1:] != (self.num_joints,):
            raise ValueError(
                f"joint values have shape {tuple(q.shape)}; the last axis must hold the "
                f"{self.num_joints} actuated joints {list(self.joint_names)}"
            )

    def local_transforms(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every joint's child-in-parent transform at `q`, batch last.

        Args:
            q: (B, J) joint values (rad or m).
        Returns:
            rot: (L-1, 3, 3, B) and trans: (L-1, 3, B), for joints in model order.
        """
        c = self._consts(q.device, q.dtype)
        values = q.t()[c["src"]] * c["mult"][:, None] + c["offset"][:, None]  # (L-1, B)
        sin = torch.sin(values)[:, None, None]
        one_minus_cos = (1 - torch.cos(values))[:, None, None]
        rot = torch.addcmul(c["origin_rot"][..., None], sin, c["rot_sin"][..., None])
        rot.addcmul_(one_minus_cos, c["rot_cos"][..., None])  # (L-1, 3, 3, B)
        slide = (values * c["prismatic"][:, None])[:, None]  # (L-1, 1, B)
        trans = torch.addcmul(c["origin_trans"][..., None], slide, c["slide"][..., None])
        return rot, trans

    def _compose(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Link rotations (L, 3, 3, B) and origins (L, 3, B), base frame, batch last."""
        rots, trans = self._compose_links(q)
        return torch.stack(rots), torch.stack(trans)

    def _compose_links(self, q: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per link (model order): rotation (3, 3, B) and origin (3, B), base frame."""
        self._check(q)
        flat = q.reshape(-1, self.num_joints)  # (B, J)
        batch = flat.shape[0]
        # Composed batch-last: 3x3 products as broadcast multiply-adds run long vectorised
        # loops over the batch (batched 3x3 matmuls are dominated by per-matrix overhead).
        eye = torch.eye(3, dtype=q.dtype, device=q.device)[..., None].expand(3, 3, batch)
        zero = torch.zeros(3, batch, dtype=q.dtype, device=q.device)
        rots, trans = [eye], [zero]
        if len(self.parents) > 1:
            local_rot, local_trans = self.local_transforms(flat)
            for i, parent in enumerate(self.parents[1:]):
                rots.append(_matmul3(rots[parent], local_rot[i]))
                trans.append(_matvec3(rots[parent], local_trans[i]).add_(trans[parent]))
        if self.base_index != 0:
            # Relative to the base: R_b^T R and R_b^T (p - p_b).
            base_t = rots[self.base_index].transpose(0, 1)
            origin = trans[self.base_index]
            rots = [_matmul3(base_t, r) for r in rots]
            trans = [_matvec3(base_t, t - origin) for t in trans]
        return rots, trans

    def rotations_translations(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Link rotations (..., L, 3, 3) and origins (..., L, 3), base frame, at `q` (..., J)."""
        rot, pos = self._compose(q)  # (L, 3, 3, B), (L, 3, B)
        lead, num_links = q.shape[:-1], len(self.parents)
        rot = rot.permute(3, 0, 1, 2).contiguous().view(*lead, num_links, 3, 3)
        return rot, pos.permute(2, 0, 1).contiguous().view(*lead, num_links, 3)

    def link_poses(self, q: torch.Tensor) -> torch.Tensor:
        """(..., L, 4, 4) homogeneous poses of every link (model order) in the base frame.

        Args:
            q: (..., J) actuated joint values, rad or m, any float dtype and device.
        """
        rot, pos = self.rotations_translations(q)
        pose = torch.zeros(*rot.shape[:-2], 4, 4, dtype=rot.dtype, device=rot.device)
        pose[..., :3, :3] = rot
        pose[..., :3, 3] = pos
        pose[..., 3, 3] = 1
        return pose

    def link_positions(self, q: torch.Tensor, links: Sequence[str] | None = None) -> torch.Tensor:
        """(..., L', 3) origins of `links` (default: all links, model order), metres."""
        _, pos = self.rotations_translations(q)
        if links is None:
            return pos
        index = torch.as_tensor([self.link_index(n) for n in links], device=pos.device)
        return pos.index_select(-2, index)

    def points(self, q: torch.Tensor, links: Sequence[int], offsets: np.ndarray) -> torch.Tensor:
        """(..., K, 3) points fixed in links: point k = pose(links[k]) @ offsets[k].

        Args:
            q: (..., J) joint values.
            links: (K,) link indices (model order).
            offsets: (K, 3) points in those links' frames, metres.
        """
        # Only the links asked for are stacked: (K, 3, B), no (L, 3, 3, B) copy of rotations.
        rots, trans = self._compose_links(q)
        links = [int(i) for i in links]
        offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 3)
        points = torch.stack([trans[i] for i in links])  # (K, 3, B)
        for k in np.flatnonzero(np.any(offsets != 0, axis=1)):  # points off their link's origin
            off = torch.as_tensor(offsets[k], device=q.device, dtype=q.dtype)
            points[k] += (rots[links[k]] * off[None, :, None]).sum(1)
        return points.permute(2, 0, 1).reshape(*q.shape[:-1], len(offsets), 3)


def _matmul3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(3, 3, B) x (3, 3, B) -> (3, 3, B) batch-last matrix product."""
    r = a[:, 0, None] * b[0, None]
    return r.addcmul_(a[:, 1, None], b[1, None]).addcmul_(a[:, 2, None], b[2, None])


def _matvec3(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(3, 3, B) x (3, B) -> (3, B) batch-last matrix-vector product."""
    r = a[:, 0] * v[0]
    return r.addcmul_(a[:, 1], v[1]).addcmul_(a[:, 2], v[2])


def check_reachable(model: RobotModel, base_link: str, tip_link: str) -> tuple[str, ...]:
    """The chain of links from `base_link` to `tip_link`; URDFError if there is none."""
    for name in (base_link, tip_link):
        if name not in model.link_names:
            raise URDFError(
                f"robot {model.name!r} has no link {name!r}; links: {list(model.link_names)}"
            )
    return model.chain(base_link, tip_link)


__all__ = ["ForwardKinematics", "check_reachable"]
