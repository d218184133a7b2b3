"""QoS profiles shared by wm_ros nodes, and the QoS logic of the bag recorder and player.

The rules mirror rosbag2's: a recorder subscribes with a profile compatible with every
publisher it finds (reliable only if they all are; transient_local only if they all are, so a
latched topic such as `/wm/goal_image` hands its last message to the recorder), and records the
publishers' offered profiles in the bag; the player publishes with the recorded reliability and
durability so a latched topic stays latched on playback.
"""

from __future__ import annotations

from collections.abc import Sequence

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    LivelinessPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)

__all__ = [
    "from_bag_qos",
    "latched_qos",
    "recorder_qos",
    "reliable_qos",
    "to_bag_qos",
]

_NS_PER_S = 1_000_000_000


def latched_qos(depth: int = 1) -> QoSProfile:
    """Reliable + transient_local: late subscribers get the last `depth` messages (goal image)."""
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL,
    )


def reliable_qos(depth: int = 10) -> QoSProfile:
    """Reliable + volatile, keep last `depth`."""
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
    )


def recorder_qos(offered: Sequence[QoSProfile], depth: int = 1000) -> QoSProfile:
    """A subscription profile that matches every publisher in `offered` (rosbag2's rule).

    Reliable if every publisher is reliable (a reliable reader cannot match a best-effort
    writer), else best effort; transient_local if every publisher is transient_local (a
    transient_local reader cannot match a volatile writer), else volatile. Keep last `depth`:
    deep enough that a burst of hundreds of messages per second is not overwritten before the
    recorder takes it.
    """
    reliable = bool(offered) and all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(
        p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered
    )
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def _to_time(duration: Duration) -> QosTime:
    sec, nsec = divmod(max(0, int(duration.nanoseconds)), _NS_PER_S)
    return QosTime(sec, nsec)


def _to_duration(value: QosTime) -> Duration:
    return Duration(nanoseconds=value.sec * _NS_PER_S + value.nsec)


def _enum_by_name(enum_type, name: str, default):
    return enum_type.__members__.get(name, default)


def to_bag_qos(profile: QoSProfile) -> Qos:
    """The rosbags (metadata.yaml) form of an rclpy QoS profile."""
    return Qos(
        history=_enum_by_name(QosHistory, profile.history.name, QosHistory.UNKNOWN),
        depth=int(profile.depth),
        reliability=_enum_by_name(QosReliability, profile.reliability.name, QosReliability.UNKNOWN),
        durability=_enum_by_name(QosDurability, profile.durability.name, QosDurability.UNKNOWN),
        deadline=_to_time(profile.deadline),
        lifespan=_to_time(profile.lifespan),
        liveliness=_enum_by_name(QosLiveliness, profile.liveliness.name, QosLiveliness.UNKNOWN),
        liveliness_lease_duration=_to_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=bool(profile.avoid_ros_namespace_conventions),
    )


def from_bag_qos(offered: Sequence[Qos], depth: int = 100) -> QoSProfile:
    """A playback publisher profile from the profiles recorded in a bag.

    Reliable unless every recorded publisher was best effort; transient_local if every
    recorded publisher was (so latched topics stay latched, with their recorded depth); keep
    last `depth` otherwise (at least the recorded depth). An empty list (a bag written without
    QoS) gives reliable + volatile.
    """
    best_effort = bool(offered) and all(
        q.reliability == QosReliability.BEST_EFFORT for q in offered
    )
    latched = bool(offered) and all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    recorded_depth = max((int(q.depth) for q in offered), default=0)
    # A latched topic keeps its recorded depth: late subscribers get the last message(s) only.
    depth = max(1, recorded_depth) if latched else max(depth, recorded_depth)
    return QoSProfile(
        depth=depth,
        history=HistoryPolicy.KEEP_LAST,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        liveliness=LivelinessPolicy.SYSTEM_DEFAULT,
    )
