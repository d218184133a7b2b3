"""Episodes (numpy, ROS-free) and training windows for the world model."""

from wm_ros.data.episodes import Episode, episodes_fingerprint, record_episode, sim_episodes
from wm_ros.data.windows import EpisodeSet

__all__ = ["Episode", "EpisodeSet", "episodes_fingerprint", "record_episode", "sim_episodes"]
