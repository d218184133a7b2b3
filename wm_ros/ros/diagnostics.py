"""DiagnosticStatus construction shared by every node."""

from __future__ import annotations

from collections.abc import Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def status(
    name: str, level: bytes, message: str, values: Mapping[str, object], hardware_id: str = ""
) -> DiagnosticStatus:
    """One DiagnosticStatus; `level` is OK, WARN or ERROR; `values` become its key/value pairs
    (floats to 6 significant digits)."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=_format(v)) for k, v in values.items()],
    )


def array(stamp, *statuses: DiagnosticStatus) -> DiagnosticArray:
    """A DiagnosticArray stamped with `stamp` (builtin_interfaces/Time)."""
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = list(statuses)
    return msg
