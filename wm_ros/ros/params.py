"""Map a config dataclass onto ROS parameters, one to one.

Nested dataclasses become dotted names (`sim.task.kind`), exactly how a params YAML file with
nested mappings is flattened by ROS, so `config/*.yaml` and the dataclasses share one layout.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from wm_ros.config import ConfigBase

C = TypeVar("C", bound=ConfigBase)


def _field_doc(cls: type, name: str) -> str:
    """The `name: ...` line of the class docstring's Attributes section, for the descriptor."""
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped.startswith(f"{name}:") or stripped.startswith(f"{name},"):
            return stripped
    return ""


_ARRAY_TYPES = {
    str: Parameter.Type.STRING_ARRAY,
    float: Parameter.Type.DOUBLE_ARRAY,
    int: Parameter.Type.INTEGER_ARRAY,
    bool: Parameter.Type.BOOL_ARRAY,
}


def _flat_defaults(cls: type[C], prefix: str = "") -> dict[str, tuple[Any, str, Any]]:
    """Dotted name -> (default value, description, type hint) for every leaf field of `cls`."""
    hints = typing.get_type_hints(cls)
    default_obj = cls()
    leaves: dict[str, tuple[Any, str, Any]] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        hint = hints[f.name]
        if isinstance(hint, type) and issubclass(hint, ConfigBase):
            leaves.update(_flat_defaults(hint, f"{prefix}{f.name}."))
            continue
        value = getattr(default_obj, f.name)
        if isinstance(value, tuple):
            value = list(value)
        leaves[f"{prefix}{f.name}"] = (value, _field_doc(cls, f.name), hint)
    return leaves


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def declare_config(node: Node, cls: type[C], prefix: str = "") -> C:
    """Declare every field of `cls` as a read-only parameter and build the config from them.

    Raises:
        ValueError: a value of the wrong type or an inconsistent configuration (the dataclass's
            own validation), naming the parameter.
    """
    flat: dict[str, Any] = {}
    for name, (default, doc, hint) in _flat_defaults(cls).items():
        full = f"{prefix}{name}"
        descriptor = ParameterDescriptor(description=doc, read_only=True)
        if isinstance(default, list) and not default:
            # An empty list has no ROS type of its own: take it from the field's type hint.
            (element, *_) = typing.get_args(hint) or (str,)
            declared = node.declare_parameter(full, _ARRAY_TYPES[element], descriptor)
            value = default if declared.value is None else declared.value
        else:
            value = node.declare_parameter(full, default, descriptor).value
        flat[name] = list(value) if isinstance(value, list | tuple) else value
    return cls.from_dict(_nest(flat))
