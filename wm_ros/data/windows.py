"""Training windows: [memory | context | future] frame indices drawn from a set of episodes.

A window of an episode starts at frame s: context frames s .. s+K-1, future frames
s+K .. s+K+H-1, and M memory frames drawn without replacement from 0 .. s-1 with recency
weighting P(age a) ~ exp(-a / tau) (age 0 = the frame just before the context), kept in time
order. When fewer than M older frames exist, the missing (oldest) slots repeat the episode's
first frame (at s = 0: the first context frame), so memory stays in time order.
The actions of the future steps are actions[i - 1] for each future frame i (module
wm_ros.data.episodes: actions[t] leads from frame t to t + 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wm_ros.data.episodes import Episode


class EpisodeSet:
    """Episodes concatenated into flat arrays, with window sampling by global frame index.

    Args:
        episodes: at least one episode, all of the same image size and joint count, each
            at least context + horizon frames long.
        context, horizon, memory: K, H, M.
        memory_tau: recency scale of the memory sampling, frames.
        image_size: expected frame size, pixels (None: take the episodes').
    Attributes:
        frames (F, S, S, 3) uint8, joints (F, J), actions (F, J), labels (F, S, S) or None.
    Raises:
        ValueError: no episodes, frames of the wrong size, mixed joint counts, short episodes.
    """

    def __init__(
        self,
        episodes: Sequence[Episode],
        context: int,
        horizon: int,
        *,
        memory: int = 0,
        memory_tau: float = 8.0,
        image_size: int | None = None,
    ) -> None:
        if not episodes:
            raise ValueError("no episodes")
        size = image_size if image_size is not None else episodes[0].image_size
        joints = episodes[0].joints.shape[1]
        for i, ep in enumerate(episodes):
            if ep.image_size != size:
                raise ValueError(
                    f"episode {i} (seed {ep.seed}) has {ep.image_size}x{ep.image_size} frames; "
                    f"the model takes {size}x{size}"
                )
            if ep.joints.shape[1] != joints:
                raise ValueError(f"episode {i} has {ep.joints.shape[1]} joints, not {joints}")
            if len(ep) < context + horizon:
                raise ValueError(
                    f"episode {i} has {len(ep)} frames, fewer than context + horizon = "
                    f"{context + horizon}"
                )
        self.context, self.horizon, self.memory, self.memory_tau = (
            context,
            horizon,
            memory,
            memory_tau,
        )
        self.frames = np.concatenate([ep.frames for ep in episodes])  # (F, S, S, 3)
        self.joints = np.concatenate([ep.joints for ep in episodes])  # (F, J)
        self.actions = np.concatenate([ep.actions for ep in episodes])  # (F, J)
        has_labels = all(ep.labels is not None for ep in episodes)
        self.labels = np.concatenate([ep.labels for ep in episodes]) if has_labels else None
        lengths = np.array([len(ep) for ep in episodes])
        self.offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # (E,)
        # Every valid window start, as (episode offset, start within the episode).
        starts = [
            (off, s)
            for off, n in zip(self.offsets, lengths, strict=True)
            for s in range(n - context - horizon + 1)
        ]
        self._starts = np.array(starts, dtype=np.int64)  # (W, 2)

    def __len__(self) -> int:
        """Number of distinct windows (start positions)."""
        return len(self._starts)

    def window_indices(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        """(B, M + K + H) global frame indices: memory, context, future, in that order."""
        k, h, m = self.context, self.horizon, self.memory
        picks = self._starts[rng.integers(0, len(self._starts), size=batch)]  # (B, 2)
        out = np.empty((batch, m + k + h), dtype=np.int64)
        for b, (off, s) in enumerate(picks):
            out[b, m:] = off + s + np.arange(k + h)
            if m == 0:
                continue
            older = np.arange(s)  # candidate memory frames within the episode
            chosen = np.full(m, 0 if s > 0 else s)  # pad: the episode's first frame
            if len(older):
                weights = np.exp(-(s - 1 - older) / self.memory_tau)
                n = min(m, len(older))
                sel = rng.choice(older, size=n, replace=False, p=weights / weights.sum())
                chosen[m - n :] = np.sort(sel)
            out[b, :m] = off + chosen
        return out

    def future_actions(self, indices: np.ndarray) -> np.ndarray:
        """(B, H, J) actions leading to the future frames of window indices (B, M + K + H)."""
        return self.actions[indices[:, -self.horizon :] - 1]
