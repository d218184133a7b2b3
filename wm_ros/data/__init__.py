"""Episodes (numpy, ROS-free) and training windows for the world model."""

from wm_ros.data.episodes import (
    Episode,
    array_fingerprint,
    episodes_fingerprint,
    record_episode,
    sim_episodes,
)
from wm_ros.data.windows import EpisodeSet

__all__ = [
    "Episode",
    "EpisodeSet",
    "array_fingerprint",
    "episodes_fingerprint",
    "record_episode",
    "sim_episodes",
]
