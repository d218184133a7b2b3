"""Minimal stand-ins for ROS 2's `launch` and `launch_ros` (not installable from PyPI), and an
evaluator that reads the recorded `launch_ros.actions.Node` kwargs the way launch_ros does.

`write_fake_launch_modules(dir)` writes the fake packages as files, so that both an in-process
test (dir prepended to sys.path) and a subprocess (dir on PYTHONPATH) can import them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml

_RECORDER = '''
class Recorded:
    """Keeps the arguments it was built with."""

    def __init__(self, *args, **kwargs):
        self.args = args
        self.kwargs = kwargs
'''

FAKE_SOURCES = {
    "launch/__init__.py": _RECORDER
    + """

class LaunchDescription(Recorded):
    @property
    def entities(self):
        return list(self.args[0]) if self.args else []
""",
    "launch/actions.py": "from launch import Recorded\n\n\n"
    "class DeclareLaunchArgument(Recorded):\n    pass\n\n\n"
    "class Shutdown(Recorded):\n    pass\n",
    "launch/substitutions.py": """
class LaunchConfiguration:
    def __init__(self, variable_name):
        self.variable_name = variable_name


class PathJoinSubstitution:
    def __init__(self, substitutions):
        self.substitutions = list(substitutions)
""",
    "launch_ros/__init__.py": "",
    "launch_ros/actions.py": "from launch import Recorded\n\n\nclass Node(Recorded):\n    pass\n",
}


def write_fake_launch_modules(directory: Path) -> Path:
    """Write the fake `launch` and `launch_ros` packages under `directory`; returns it."""
    for rel, source in FAKE_SOURCES.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return directory


def forget_launch_modules() -> None:
    """Drop any imported `launch*` modules (so the next import finds the fakes)."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("launch", "launch_ros"):
            del sys.modules[name]


def perform(sub: Any, values: dict[str, str]) -> str:
    """Evaluate a (fake) substitution, as launch's perform_substitutions would."""
    if isinstance(sub, str):
        return sub
    if isinstance(sub, list | tuple):
        return "".join(perform(s, values) for s in sub)
    kind = type(sub).__name__
    if kind == "LaunchConfiguration":
        return values[sub.variable_name]
    if kind == "PathJoinSubstitution":
        return os.path.join(*(perform(s, values) for s in sub.substitutions))
    raise TypeError(f"not a substitution: {sub!r}")


def _is_substitution(value: Any) -> bool:
    if isinstance(value, list):
        return any(_is_substitution(v) for v in value)
    return type(value).__name__ in ("LaunchConfiguration", "PathJoinSubstitution")


def evaluate_node(kwargs: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """What a recorded Node(**kwargs) would start, in launch_ros's terms.

    Parameter dict values: a plain string stays a string; a substitution is performed and read
    as YAML; numbers, bools and lists are kept. Returns name, namespace, parameter files,
    parameters (name -> value), remappings and extra arguments.
    """
    files, params = [], {}
    for entry in kwargs.get("parameters", []):
        if isinstance(entry, dict):
            for name, value in entry.items():
                if _is_substitution(value):
                    params[name] = yaml.safe_load(perform(value, values))
                else:
                    params[name] = list(value) if isinstance(value, tuple) else value
        else:
            files.append(perform(entry, values))
    namespace = kwargs.get("namespace")
    return {
        "name": kwargs["name"],
        "namespace": "/" + namespace.strip("/") if namespace else "/",
        "param_files": files,
        "parameters": params,
        "remappings": [(perform(a, values), perform(b, values)) for a, b in kwargs["remappings"]],
        "arguments": [perform(a, values) for a in kwargs.get("arguments", [])],
    }


def parse_argv(argv: list[str]) -> dict[str, Any]:
    """The same structure as `evaluate_node`, read from a bringup argv (`... --ros-args ...`).

    `-p name:=value` values are read as YAML, as rcl does.
    """
    split = argv.index("--ros-args")
    out: dict[str, Any] = {
        "name": None,
        "namespace": "/",
        "param_files": [],
        "parameters": {},
        "remappings": [],
        "arguments": argv[:split],
    }
    rest = argv[split + 1 :]
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        key, _, text = value.partition(":=")
        if flag == "--params-file":
            out["param_files"].append(value)
        elif flag == "-p":
            out["parameters"][key] = yaml.safe_load(text)
        elif flag == "-r" and key == "__node":
            out["name"] = text
        elif flag == "-r" and key == "__ns":
            out["namespace"] = text
        elif flag == "-r":
            out["remappings"].append((key, text))
        else:
            raise ValueError(f"unexpected {flag} {value}")
    return out
