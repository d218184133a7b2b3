"""Node graphs: one description (`config/graphs.yaml`) for both ways of starting nodes.

- `ros2 launch wm_ros <graph>.launch.py name:=value` (robots with ROS 2 installed): each launch
  file calls `launch_description(graph)`, which turns the graph into `DeclareLaunchArgument`s
  and `launch_ros.actions.Node`s through `node_launch_kwargs`.
- `wm-ros bringup <graph> name:=value` (this machine, which has no ros2 launch):
  `wm_ros.ros.bringup` starts one process per node with the argv from `node_argv`.

Both read the same validated `NodeSpec`s, and the two translations sit side by side here, so
they cannot drift apart. Strings in the graph may refer to launch arguments as `$(var name)`;
after substitution a parameter value is read as YAML (`"64"` -> 64, `"true"` -> True), exactly
as launch_ros does, and rcl does for `-p name:=value`.

This module never imports rclpy; `launch`/`launch_ros` are imported only by the launch helpers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wm_ros.paths import share_dir

GRAPHS_FILE = "config/graphs.yaml"

ParamValue = bool | int | float | str | tuple[bool, ...] | tuple[int, ...] | tuple[float, ...]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PACKAGE = re.compile(r"[a-z][a-z0-9_]*")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")

_GRAPH_KEYS = {"description", "include", "arguments", "nodes"}
_ARGUMENT_KEYS = {"default", "description", "choices"}
_NODE_KEYS = {
    "package",
    "executable",
    "name",
    "namespace",
    "param_files",
    "parameters",
    "remappings",
    "arguments",
    "respawn",
    "respawn_delay",
}


class GraphError(ValueError):
    """A graph description, a launch-argument override or a parameter file is wrong."""


class UnknownGraphError(GraphError):
    """No graph of that name."""


@dataclass(frozen=True)
class VarRef:
    """A `$(var name)` reference to a launch argument inside a template string."""

    name: str


Template = tuple[str | VarRef, ...]


def parse_template(text: str, where: str = "") -> Template:
    """Split `text` into literal pieces and `$(var name)` references.

    Raises:
        GraphError: a `$(...)` other than `$(var name)` (find-pkg-share, env, ... are not
            supported: they would mean different things to ros2 launch and to bringup).
    """
    parts: list[str | VarRef] = []
    pos = 0
    for match in _SUBSTITUTION.finditer(text):
        if match.start() > pos:
            parts.append(text[pos : match.start()])
        words = match.group(1).split()
        if len(words) != 2 or words[0] != "var" or not _NAME.fullmatch(words[1]):
            raise GraphError(
                f"{where}: unsupported substitution {match.group(0)!r} in {text!r}; "
                "only $(var <argument>) is supported"
            )
        parts.append(VarRef(words[1]))
        pos = match.end()
    if pos < len(text):
        parts.append(text[pos:])
    if "$(" in "".join(p for p in parts if isinstance(p, str)):
        raise GraphError(f"{where}: unbalanced '$(' in {text!r}")
    return tuple(parts)


def template_vars(text: str) -> set[str]:
    """Names of the launch arguments `text` refers to."""
    return {p.name for p in parse_template(text) if isinstance(p, VarRef)}


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with every `$(var name)` replaced by `values[name]`.

    Raises:
        GraphError: a referenced argument has no value.
    """
    out = []
    for part in parse_template(text):
        if isinstance(part, VarRef):
            if part.name not in values:
                raise GraphError(f"$(var {part.name}) has no value (in {text!r})")
            out.append(values[part.name])
        else:
            out.append(part)
    return "".join(out)


@dataclass(frozen=True)
class ArgumentSpec:
    """A launch argument of a graph.

    Attributes:
        name: the argument's name (`name:=value` on both command lines).
        default: its default text; None means it must be given.
        description: one line for `--help`/`--list` and `ros2 launch --show-args`.
        choices: the allowed values; empty means any.
    """

    name: str
    default: str | None = None
    description: str = ""
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class NodeSpec:
    """One node of a graph, as both bringup and the launch files start it.

    Attributes:
        package: the ament package holding the executable.
        executable: the executable (a console script for Python packages).
        name: the node's name (`-r __node:=name`).
        namespace: the node's namespace, relative (to the launch namespace) or absolute; "" for
            the root namespace.
        param_files: parameter YAML files, applied in order: absolute paths, or templates with
            `$(var ...)` whose relative results resolve against `base_dir`.
        parameters: inline parameters (dotted names -> values), applied after `param_files`
            so they win; string values may contain `$(var ...)`.
        remappings: (from, to) name remappings; `to` may contain `$(var ...)`.
        arguments: extra command-line arguments before `--ros-args`; may contain `$(var ...)`.
        respawn: restart the node when it exits, instead of ending the whole graph.
        respawn_delay: seconds to wait before a restart.
        base_dir: the directory relative parameter-file paths resolve against (the package's
            share directory for the packaged graphs).
    """

    package: str
    executable: str
    name: str
    namespace: str = ""
    param_files: tuple[str, ...] = ()
    parameters: tuple[tuple[str, ParamValue], ...] = ()
    remappings: tuple[tuple[str, str], ...] = ()
    arguments: tuple[str, ...] = ()
    respawn: bool = False
    respawn_delay: float = 0.0
    base_dir: Path = Path()

    @property
    def fully_qualified_name(self) -> str:
        """`/namespace/name` (a relative namespace counts from the root)."""
        ns = self.namespace.strip("/")
        return f"/{ns}/{self.name}" if ns else f"/{self.name}"

    @property
    def label(self) -> str:
        """The fully qualified name without its leading slash: the prefix of its log lines."""
        return self.fully_qualified_name[1:]

    def referenced_arguments(self) -> set[str]:
        """Names of the launch arguments this node's templates refer to."""
        texts = [*self.param_files, *self.arguments, *(to for _, to in self.remappings)]
        texts += [v for _, v in self.parameters if isinstance(v, str)]
        return set().union(*(template_vars(t) for t in texts))


@dataclass(frozen=True)
class GraphSpec:
    """A named node graph: its launch arguments and nodes (includes already expanded).

    Attributes:
        name: the graph's name (`wm-ros bringup <name>`, `<name>.launch.py`).
        description: one line.
        arguments: launch arguments, in declaration order.
        nodes: the nodes, in start order.
        source: the graphs file it was read from.
    """

    name: str
    description: str
    arguments: tuple[ArgumentSpec, ...]
    nodes: tuple[NodeSpec, ...]
    source: Path = Path()

    def argument(self, name: str) -> ArgumentSpec:
        for arg in self.arguments:
            if arg.name == name:
                return arg
        raise GraphError(f"graph {self.name!r} has no argument {name!r}")

    def node(self, name: str) -> NodeSpec:
        """The node called `name` (its plain or fully qualified name)."""
        for node in self.nodes:
            if name in (node.name, node.fully_qualified_name, node.label):
                return node
        raise GraphError(
            f"graph {self.name!r} has no node {name!r} (has {[n.label for n in self.nodes]})"
        )

    def resolve_arguments(self, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """Every argument's value: its default, or the override given for it.

        Raises:
            GraphError: an override names no argument of this graph, a value is not among the
                argument's choices, or a required argument (no default) is not given.
        """
        overrides = dict(overrides or {})
        known = [a.name for a in self.arguments]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise GraphError(
                f"graph {self.name!r} has no argument(s) {unknown}; its arguments: {known}"
            )
        values: dict[str, str] = {}
        for arg in self.arguments:
            value = overrides.get(arg.name, arg.default)
            if value is None:
                raise GraphError(
                    f"graph {self.name!r} needs argument {arg.name!r} ({arg.description}); "
                    f"pass {arg.name}:=<value>"
                )
            if arg.choices and value not in arg.choices:
                raise GraphError(
                    f"argument {arg.name}:={value} of graph {self.name!r} is not one of "
                    f"{list(arg.choices)}"
                )
            values[arg.name] = value
        return values


# --------------------------------------------------------------------------- loading


def graphs_path() -> Path:
    """The packaged graphs file (`<share>/config/graphs.yaml`)."""
    return share_dir() / GRAPHS_FILE


def load_graphs(
    path: Path | str | None = None, base_dir: Path | str | None = None
) -> dict[str, GraphSpec]:
    """Read and validate every graph of a graphs file.

    Args:
        path: the graphs YAML; default the packaged `config/graphs.yaml`.
        base_dir: what relative parameter-file paths resolve against; default the package's
            share directory (the checkout, or `<prefix>/share/wm_ros`).

    Raises:
        GraphError: the file is not valid (the message names the graph, node and key).
    """
    path = Path(path) if path is not None else graphs_path()
    base = Path(base_dir) if base_dir is not None else share_dir()
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise GraphError(f"no graphs file at {path}") from err
    except yaml.YAMLError as err:
        raise GraphError(f"{path}: not valid YAML: {err}") from err
    if (
        not isinstance(data, dict)
        or set(data) != {"graphs"}
        or not isinstance(data["graphs"], dict)
    ):
        raise GraphError(f"{path}: expected one top-level mapping 'graphs: {{<name>: ...}}'")
    raw: dict[str, Any] = data["graphs"]
    for name in raw:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise GraphError(f"{path}: graph name {name!r} is not an identifier")
    loader = _Loader(path, base, raw)
    return {name: loader.graph(name) for name in raw}


def graph_names(path: Path | str | None = None) -> list[str]:
    """Names of the graphs in a graphs file (default the packaged one), in file order."""
    return list(load_graphs(path))


def load_graph(
    name: str, path: Path | str | None = None, base_dir: Path | str | None = None
) -> GraphSpec:
    """One validated graph.

    Raises:
        UnknownGraphError: no graph of that name (the message lists the known ones).
        GraphError: the graphs file is not valid.
    """
    graphs = load_graphs(path, base_dir)
    if name not in graphs:
        raise UnknownGraphError(f"no graph {name!r}; known graphs: {sorted(graphs)}")
    return graphs[name]


class _Loader:
    """Validates the raw YAML graph by graph, expanding `include`s (cycles are errors)."""

    def __init__(self, path: Path, base: Path, raw: dict[str, Any]) -> None:
        self.path = path
        self.base = base
        self.raw = raw
        self.done: dict[str, GraphSpec] = {}
        self.stack: list[str] = []

    def error(self, where: str, message: str) -> GraphError:
        return GraphError(f"{self.path}: {where}: {message}")

    def graph(self, name: str) -> GraphSpec:
        if name in self.done:
            return self.done[name]
        where = f"graphs.{name}"
        if name in self.stack:
            raise self.error(where, f"include cycle {' -> '.join([*self.stack, name])}")
        if name not in self.raw:
            raise self.error(f"graphs.{self.stack[-1]}.include", f"no graph {name!r} to include")
        body = self.raw[name]
        if not isinstance(body, dict):
            raise self.error(where, "expected a mapping")
        _check_keys(body, _GRAPH_KEYS, {"nodes"}, f"{self.path}: {where}")
        self.stack.append(name)
        try:
            arguments: dict[str, ArgumentSpec] = {}
            nodes: list[NodeSpec] = []
            for inc in _str_list(body.get("include", []), f"{self.path}: {where}.include"):
                included = self.graph(inc)
                arguments.update({a.name: a for a in included.arguments})
                nodes.extend(included.nodes)
        finally:
            self.stack.pop()
        raw_args = body.get("arguments") or {}
        if not isinstance(raw_args, dict):
            raise self.error(f"{where}.arguments", "expected a mapping name -> {default, ...}")
        for arg_name, spec in raw_args.items():
            # A graph may re-declare an included graph's argument (to change its default); what
            # it does not re-state (description, choices) is inherited.
            arguments[arg_name] = self.argument(
                arg_name, spec, f"{where}.arguments.{arg_name}", arguments.get(arg_name)
            )
        raw_nodes = body["nodes"]
        if not isinstance(raw_nodes, list):
            raise self.error(f"{where}.nodes", "expected a list of nodes")
        nodes += [self.node(n, f"{where}.nodes[{i}]") for i, n in enumerate(raw_nodes)]
        if not nodes:
            raise self.error(where, "has no nodes")
        names = [n.fully_qualified_name for n in nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise self.error(where, f"two nodes named {duplicates}")
        used = set().union(*(n.referenced_arguments() for n in nodes))
        undeclared = sorted(used - set(arguments))
        if undeclared:
            raise self.error(where, f"refers to undeclared argument(s) {undeclared}")
        unused = sorted(set(arguments) - used)
        if unused:
            raise self.error(where, f"argument(s) {unused} are used by no node")
        description = body.get("description", "")
        if not isinstance(description, str):
            raise self.error(f"{where}.description", "expected a string")
        graph = GraphSpec(name, description, tuple(arguments.values()), tuple(nodes), self.path)
        self.done[name] = graph
        return graph

    def argument(
        self, name: Any, spec: Any, where: str, inherited: ArgumentSpec | None = None
    ) -> ArgumentSpec:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise self.error(where, f"argument name {name!r} is not an identifier")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise self.error(where, "expected a mapping {default, description, choices}")
        _check_keys(spec, _ARGUMENT_KEYS, set(), f"{self.path}: {where}")
        if inherited is not None:
            spec = {
                "description": inherited.description,
                "choices": list(inherited.choices),
                **spec,
            }
        default = spec.get("default")
        default = None if default is None else _argument_text(default, f"{self.path}: {where}")
        choices = tuple(
            _argument_text(c, f"{self.path}: {where}.choices") for c in spec.get("choices", [])
        )
        if choices and default is not None and default not in choices:
            raise self.error(where, f"default {default!r} is not one of {list(choices)}")
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise self.error(f"{where}.description", "expected a string")
        return ArgumentSpec(name, default, description, choices)

    def node(self, spec: Any, where: str) -> NodeSpec:
        if not isinstance(spec, dict):
            raise self.error(where, "expected a mapping")
        loc = f"{self.path}: {where}"
        _check_keys(spec, _NODE_KEYS, {"package", "executable", "name"}, loc)
        package = _string(spec["package"], f"{loc}.package")
        if not _PACKAGE.fullmatch(package):
            raise self.error(f"{where}.package", f"{package!r} is not a valid package name")
        executable = _string(spec["executable"], f"{loc}.executable")
        if not executable or "/" in executable or executable.strip() != executable:
            raise self.error(f"{where}.executable", f"{executable!r} is not an executable name")
        name = _string(spec["name"], f"{loc}.name")
        if not _NAME.fullmatch(name):
            raise self.error(f"{where}.name", f"{name!r} is not a valid ROS node name")
        namespace = _string(spec.get("namespace", ""), f"{loc}.namespace")
        tokens = namespace.strip("/").split("/") if namespace.strip("/") else []
        if "//" in namespace or not all(_NAME.fullmatch(t) for t in tokens):
            raise self.error(f"{where}.namespace", f"{namespace!r} is not a valid namespace")
        node = NodeSpec(
            package=package,
            executable=executable,
            name=name,
            namespace=namespace,
            param_files=tuple(
                self.param_file(f, f"{where}.param_files")
                for f in _str_list(spec.get("param_files", []), f"{loc}.param_files")
            ),
            parameters=tuple(_flatten(spec.get("parameters") or {}, f"{loc}.parameters")),
            remappings=self.remappings(spec.get("remappings") or {}, f"{loc}.remappings"),
            arguments=tuple(_str_list(spec.get("arguments", []), f"{loc}.arguments")),
            respawn=_bool(spec.get("respawn", False), f"{loc}.respawn"),
            respawn_delay=_seconds(spec.get("respawn_delay", 0.0), f"{loc}.respawn_delay"),
            base_dir=self.base,
        )
        for text in (
            *node.param_files,
            *node.arguments,
            *(to for _, to in node.remappings),
            *(v for _, v in node.parameters if isinstance(v, str)),
        ):
            parse_template(text, loc)
        for path in node.param_files:
            if not template_vars(path):
                try:
                    check_param_file(Path(path), node)
                except GraphError as err:
                    raise self.error(f"{where}.param_files", str(err)) from None
        return node

    def param_file(self, text: str, where: str) -> str:
        """Literal relative paths become absolute now; templates resolve at start time."""
        parse_template(text, f"{self.path}: {where}")
        if template_vars(text):
            return text
        path = Path(text)
        return str(path if path.is_absolute() else self.base / path)

    def remappings(self, spec: Any, where: str) -> tuple[tuple[str, str], ...]:
        if not isinstance(spec, dict):
            raise GraphError(f"{where}: expected a mapping from -> to")
        pairs = []
        for src, dst in spec.items():
            if not isinstance(src, str) or not src or template_vars(src):
                raise GraphError(f"{where}: {src!r} is not a name to remap")
            if not isinstance(dst, str) or not dst:
                raise GraphError(f"{where}.{src}: expected a non-empty string, got {dst!r}")
            pairs.append((src, dst))
        return tuple(pairs)


def _check_keys(spec: dict[str, Any], allowed: set[str], required: set[str], where: str) -> None:
    unknown = sorted(set(map(str, spec)) - allowed)
    if unknown:
        raise GraphError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(spec))
    if missing:
        raise GraphError(f"{where}: missing key(s) {missing}")


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise GraphError(f"{where}: expected a string, got {value!r}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise GraphError(f"{where}: expected a list of non-empty strings, got {value!r}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise GraphError(f"{where}: expected true or false, got {value!r}")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise GraphError(f"{where}: expected a non-negative number of seconds, got {value!r}")
    return float(value)


def _argument_text(value: Any, where: str) -> str:
    """A launch-argument value as the text ros2 launch would hold (YAML spelling for bools)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise GraphError(f"{where}: expected a scalar (string, number, bool), got {value!r}")


def _flatten(spec: Any, where: str, prefix: str = "") -> list[tuple[str, ParamValue]]:
    """Nested parameter mappings -> dotted names, values checked and made uniform.

    ROS parameters are scalars or non-empty uniform arrays; lists mixing ints and floats become
    floats (as launch_ros does); anything else is an error here rather than at start time.
    """
    if not isinstance(spec, dict):
        raise GraphError(f"{where}: expected a mapping of parameter names to values")
    flat: list[tuple[str, ParamValue]] = []
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if not isinstance(key, str) or not _PARAM_NAME.fullmatch(name):
            raise GraphError(f"{where}: {name!r} is not a valid parameter name")
        if isinstance(value, dict):
            flat += _flatten(value, where, f"{name}.")
        elif isinstance(value, bool | int | float | str):
            flat.append((name, value))
        elif isinstance(value, list):
            flat.append((name, _uniform_array(value, f"{where}.{name}")))
        else:
            raise GraphError(f"{where}.{name}: unsupported parameter value {value!r}")
    return flat


def _uniform_array(values: list[Any], where: str) -> ParamValue:
    kinds = {type(v) for v in values}
    if not values:
        raise GraphError(f"{where}: empty lists cannot be typed as ROS parameters")
    if kinds <= {int, float}:
        return tuple(float(v) for v in values) if float in kinds else tuple(values)
    if len(kinds) == 1 and kinds <= {bool, str}:
        if str in kinds and any(template_vars(v) for v in values):
            raise GraphError(f"{where}: $(var ...) is supported in scalar values only")
        return tuple(values)
    raise GraphError(f"{where}: list items must all have one type, got {values!r}")


def _param_file_sections(data: Any, prefix: str = "") -> list[str]:
    """Node-name patterns (`/ns/name`, `/**`) that have `ros__parameters` in a params file."""
    if not isinstance(data, dict):
        return []
    found = []
    for key, value in data.items():
        if key == "ros__parameters":
            found.append(prefix or "/")
        elif isinstance(value, dict):
            found += _param_file_sections(value, f"{prefix}/{str(key).strip('/')}")
    return found


def _pattern_matches(pattern: str, fqn: str) -> bool:
    """rcl's node-name matching in params files: `**` spans any namespaces, `*` part of one."""
    regex = "".join(
        "(/[^/]+)*" if seg == "**" else "/" + re.escape(seg).replace(r"\*", "[^/]*")
        for seg in pattern.strip("/").split("/")
    )
    return re.fullmatch(regex, fqn) is not None


def check_param_file(path: Path, node: NodeSpec) -> None:
    """Check that a parameters file exists and has a section for `node`.

    A file whose node names all miss is silently ignored by ROS, which then runs the node with
    defaults: a classic mistake after renaming a node, caught here instead.

    Raises:
        GraphError: the file is missing, unreadable, or has no section matching the node.
    """
    if not path.is_file():
        raise GraphError(f"node {node.label}: parameter file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise GraphError(
            f"node {node.label}: parameter file {path} is not valid YAML: {err}"
        ) from err
    sections = _param_file_sections(data)
    if not any(_pattern_matches(s, node.fully_qualified_name) for s in sections):
        raise GraphError(
            f"node {node.label}: parameter file {path} has no ros__parameters for "
            f"{node.fully_qualified_name} (its sections: {sections})"
        )


# --------------------------------------------------------------------------- bringup side


def parse_overrides(tokens: Iterable[str]) -> dict[str, str]:
    """`["use_sim_time:=true", ...]` -> `{"use_sim_time": "true"}` (later tokens win).

    Raises:
        GraphError: a token is not `name:=value`.
    """
    values: dict[str, str] = {}
    for token in tokens:
        name, sep, value = token.partition(":=")
        if not sep or not _NAME.fullmatch(name):
            raise GraphError(f"launch argument {token!r} is not of the form name:=value")
        values[name] = value
    return values


def yaml_text(value: ParamValue) -> str:
    """A parameter value spelled so that YAML (and so rcl's `-p name:=value`) reads it back
    with the same type: `"64"` -> `'64'`, `1.0` -> `1.0`, `(1, 2)` -> `[1, 2]`."""
    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30).strip()
    return text.removesuffix("\n...").strip()


def resolve_param_files(node: NodeSpec, values: Mapping[str, str]) -> list[Path]:
    """The node's parameter files with arguments substituted, each checked.

    Raises:
        GraphError: a file is missing or has no section for the node.
    """
    paths = []
    for text in node.param_files:
        path = Path(substitute(text, values))
        if not path.is_absolute():
            path = node.base_dir / path
        if template_vars(text):
            check_param_file(path, node)
        paths.append(path)
    return paths


def ros_arguments(node: NodeSpec, values: Mapping[str, str]) -> list[str]:
    """The `--ros-args ...` list that starts `node` with the launch-argument `values`.

    `-r __node:=name`, `-r __ns:=/ns`, `--params-file f` per file, `-p name:=value` per inline
    parameter (after the files, so they win, as in launch_ros), then `-r from:=to`.
    """
    args = ["--ros-args", "-r", f"__node:={node.name}"]
    if node.namespace.strip("/"):
        args += ["-r", f"__ns:=/{node.namespace.strip('/')}"]
    for path in resolve_param_files(node, values):
        args += ["--params-file", str(path)]
    for name, value in node.parameters:
        if isinstance(value, str) and template_vars(value):
            text = substitute(value, values)  # read as YAML, as launch_ros does
        else:
            text = yaml_text(value)
        args += ["-p", f"{name}:={text}"]
    for src, dst in node.remappings:
        args += ["-r", f"{src}:={substitute(dst, values)}"]
    return args


def node_argv(node: NodeSpec, values: Mapping[str, str]) -> list[str]:
    """The node's command-line arguments: its extra `arguments`, then `ros_arguments`."""
    return [substitute(a, values) for a in node.arguments] + ros_arguments(node, values)


# --------------------------------------------------------------------------- launch side


def launch_substitutions(text: str) -> Any:
    """`text` as launch substitutions: the plain string, one `LaunchConfiguration`, or a list
    mixing strings and `LaunchConfiguration`s (launch concatenates it)."""
    from launch.substitutions import LaunchConfiguration

    parts = [
        LaunchConfiguration(p.name) if isinstance(p, VarRef) else p for p in parse_template(text)
    ]
    if len(parts) == 1:
        return parts[0]
    return parts


def node_launch_kwargs(node: NodeSpec) -> dict[str, Any]:
    """Keyword arguments of `launch_ros.actions.Node` for `node`: the launch-file twin of
    `node_argv` (same name, namespace, parameter files then inline parameters, remappings).

    A node without `respawn` ends the launch when it exits (`on_exit=Shutdown`), as bringup does.
    """
    from launch.actions import Shutdown
    from launch.substitutions import PathJoinSubstitution

    parameters: list[Any] = []
    for text in node.param_files:
        if template_vars(text):
            # os.path.join semantics: an absolute argument value replaces base_dir.
            parameters.append(
                PathJoinSubstitution([str(node.base_dir), launch_substitutions(text)])
            )
        else:
            parameters.append(text)
    inline = {
        name: launch_substitutions(value)
        if isinstance(value, str) and template_vars(value)
        else list(value)
        if isinstance(value, tuple)
        else value
        for name, value in node.parameters
    }
    if inline:
        parameters.append(inline)
    kwargs: dict[str, Any] = {
        "package": node.package,
        "executable": node.executable,
        "name": node.name,
        "output": "screen",
        "parameters": parameters,
        "remappings": [(src, launch_substitutions(dst)) for src, dst in node.remappings],
        "respawn": node.respawn,
    }
    if node.namespace:
        kwargs["namespace"] = node.namespace
    if node.arguments:
        kwargs["arguments"] = [launch_substitutions(a) for a in node.arguments]
    if node.respawn:
        kwargs["respawn_delay"] = node.respawn_delay
    else:
        kwargs["on_exit"] = Shutdown(reason=f"node {node.fully_qualified_name} exited")
    return kwargs


def launch_description(graph_name: str, path: Path | str | None = None) -> Any:
    """The `launch.LaunchDescription` of a graph: what every `launch/<graph>.launch.py` returns.

    One `DeclareLaunchArgument` per graph argument, then one `launch_ros.actions.Node` per node.
    Needs ROS 2's `launch` and `launch_ros` (not installable from PyPI).
    """
    from launch.actions import DeclareLaunchArgument
    from launch_ros.actions import Node

    from launch import LaunchDescription

    graph = load_graph(graph_name, path)
    actions: list[Any] = []
    for arg in graph.arguments:
        extra: dict[str, Any] = {}
        if arg.default is not None:
            extra["default_value"] = arg.default
        if arg.choices:
            extra["choices"] = list(arg.choices)
        actions.append(DeclareLaunchArgument(arg.name, description=arg.description, **extra))
    actions += [Node(**node_launch_kwargs(node)) for node in graph.nodes]
    return LaunchDescription(actions)


def describe(graph: GraphSpec) -> str:
    """Several lines describing a graph, its arguments and nodes (for `bringup --list`)."""
    lines = [f"{graph.name}: {graph.description}".rstrip(": ")]
    for arg in graph.arguments:
        default = "(required)" if arg.default is None else f"default {arg.default!r}"
        choices = f", one of {list(arg.choices)}" if arg.choices else ""
        lines.append(f"    {arg.name}:=  {default}{choices}  {arg.description}".rstrip())
    for node in graph.nodes:
        respawn = " (respawn)" if node.respawn else ""
        lines.append(f"    node {node.label}: {node.package}/{node.executable}{respawn}")
    return "\n".join(lines)


__all__ = [
    "ArgumentSpec",
    "GraphError",
    "GraphSpec",
    "NodeSpec",
    "UnknownGraphError",
    "check_param_file",
    "describe",
    "graph_names",
    "graphs_path",
    "launch_description",
    "launch_substitutions",
    "load_graph",
    "load_graphs",
    "node_argv",
    "node_launch_kwargs",
    "parse_overrides",
    "resolve_param_files",
    "ros_arguments",
    "substitute",
    "yaml_text",
]
