"""Episodes as plain numpy arrays (no ROS): the unit the world model trains and evaluates on.

Bags become episodes in `wm_ros.ros.episodes`; tests and quick experiments make them straight
from the simulator core with `sim_episodes` (same exploration policy and timing as
`wm-ros collect`, no bag in between).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Episode:
    """One recorded episode, one row per camera frame (control step).

    Attributes:
        frames: (T, S, S, 3) uint8 RGB camera images.
        joints: (T, J) float32 measured joint positions at each frame, rad.
        actions: (T, J) float32 joint target commanded right after frame t, rad: actions[t]
            leads from frame t to frame t + 1 (the last row, after the final frame, repeats
            the one before: the arm holds its target).
        labels: (T, S, S) uint8 segmentation labels (wm_ros.sim labels) or None.
        joint_names: (J,) names of the joint columns.
        seed: the episode's seed, if known.
    """

    frames: np.ndarray
    joints: np.ndarray
    actions: np.ndarray
    labels: np.ndarray | None = None
    joint_names: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        f, q, a = self.frames, self.joints, self.actions
        if f.ndim != 4 or f.shape[3] != 3 or f.dtype != np.uint8:
            raise ValueError(f"frames must be (T, S, S, 3) uint8, got {f.shape} {f.dtype}")
        if f.shape[1] != f.shape[2]:
            raise ValueError(f"frames must be square, got {f.shape[1]}x{f.shape[2]}")
        t = f.shape[0]
        if q.ndim != 2 or q.shape[0] != t or a.shape != q.shape:
            raise ValueError(
                f"joints and actions must both be (T={t}, J); got {q.shape} and {a.shape}"
            )
        if self.labels is not None and self.labels.shape != f.shape[:3]:
            raise ValueError(f"labels must be (T, S, S) = {f.shape[:3]}, got {self.labels.shape}")
        if self.joint_names and len(self.joint_names) != q.shape[1]:
            raise ValueError(f"{len(self.joint_names)} joint names for {q.shape[1]} joints")
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(a))):
            raise ValueError("joints and actions must be finite")

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def image_size(self) -> int:
        return int(self.frames.shape[1])


def array_fingerprint(arrays: Iterable[np.ndarray | None]) -> str:
    """A short SHA-256 (16 hex digits) of arrays in order: their dtypes, shapes and bytes
    (None counts as a value of its own)."""
    digest = hashlib.sha256()
    for a in arrays:
        if a is None:
            digest.update(b"none")
            continue
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()[:16]


def episodes_fingerprint(episodes: Sequence[Episode]) -> str:
    """`array_fingerprint` of the episodes' frames, joints, actions and labels.

    Two evaluations saw the same data exactly when their fingerprints agree. Seeds alone do not
    settle it: the same seeds collected on another host can give other episodes (MuJoCo's
    contacts amplify the last bits of floating-point differences between CPUs; README).
    """
    return array_fingerprint(
        a for ep in episodes for a in (ep.frames, ep.joints, ep.actions, ep.labels)
    )


def record_episode(sim, policy, steps: int) -> Episode:
    """Run `policy` in `sim` for `steps` control steps from its current state.

    Args:
        sim: a wm_ros.sim.TabletopSim (reset to the wanted episode).
        policy: callable sim -> (J,) joint target (e.g. ExplorationPolicy; reset it first).
        steps: control steps; the episode has steps + 1 frames.
    """
    frames, labels, joints, actions = [], [], [], []
    for _ in range(steps + 1):
        frames.append(sim.render())
        labels.append(sim.segmentation().astype(np.uint8))
        joints.append(sim.joint_positions())
        if len(actions) < steps:
            target = np.asarray(policy(sim), dtype=np.float64)
            actions.append(target)
            sim.step(target)
    actions.append(actions[-1])  # after the last frame: hold
    return Episode(
        frames=np.stack(frames),
        joints=np.stack(joints).astype(np.float32),
        actions=np.stack(actions).astype(np.float32),
        labels=np.stack(labels),
        joint_names=tuple(sim.joint_names),
        seed=int(sim.episode_seed),
    )


def sim_episodes(seeds: Iterable[int], steps: int = 50, image_size: int = 64) -> list[Episode]:
    """Exploration episodes from the simulator core, one per seed (as `wm-ros collect` runs
    them: reset(seed), ExplorationPolicy(seed))."""
    from wm_ros.config import SimConfig
    from wm_ros.sim import TabletopSim
    from wm_ros.sim.exploration import ExplorationPolicy

    seeds = list(seeds)
    if not seeds or steps <= 0:
        raise ValueError("need at least one seed and a positive number of steps")
    cfg = SimConfig(image_width=image_size, image_height=image_size, seed=seeds[0])
    out = []
    with TabletopSim(cfg) as sim:
        for s in seeds:
            sim.reset(s)
            policy = ExplorationPolicy(seed=s)
            policy.reset(sim)
            out.append(record_episode(sim, policy, steps))
    return out
