"""Node graphs (config/graphs.yaml): loading and validation, the --ros-args that bringup passes
(checked against rcl itself), the launch files (through fake launch/launch_ros modules, checked
to start exactly what bringup starts), and bringup's process supervision with fake nodes."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml

import wm_ros
from test.launch_fakes import (
    evaluate_node,
    forget_launch_modules,
    parse_argv,
    write_fake_launch_modules,
)
from wm_ros import graph as g
from wm_ros.paths import config_path, models_dir, share_dir, source_root
from wm_ros.ros.bringup import child_environment, executable_command

REPO = Path(wm_ros.__file__).resolve().parents[1]
LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))


def write_graphs(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "graphs.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def write_params(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


# --------------------------------------------------------------------------- share dir


def test_share_dir_of_a_checkout_is_the_checkout():
    assert source_root() == REPO
    assert share_dir() == REPO
    assert config_path("sim.yaml") == REPO / "config" / "sim.yaml"
    assert models_dir() == REPO / "models"
    with pytest.raises(FileNotFoundError, match=r"no config file 'nope\.yaml'"):
        config_path("nope.yaml")


# --------------------------------------------------------------------------- packaged graphs


def test_packaged_sim_graph():
    graph = g.load_graph("sim")
    assert [n.executable for n in graph.nodes] == ["sim_node", "prompt_node"]
    node = graph.node("sim")
    assert (node.package, node.name, node.namespace) == ("wm_ros", "sim", "")
    assert node.param_files == (str(REPO / "config" / "sim.yaml"),)
    values = graph.resolve_arguments({})
    assert values["use_sim_time"] == "false"
    assert values["image_width"] == "64"
    argv = g.node_argv(node, graph.resolve_arguments({"use_sim_time": "true"}))
    assert argv[:3] == ["--ros-args", "-r", "__node:=sim"]
    assert ["--params-file", str(REPO / "config" / "sim.yaml")] == argv[3:5]
    assert "use_sim_time:=true" in argv and "sim.image_width:=64" in argv


def test_the_plan_graph_layers_the_planner_files_like_eval_plan():
    """`wm-ros bringup plan` with its defaults (task:=push) plans with the settings `wm-ros eval
    plan --task push` uses: config/planner.yaml, then config/planner_push.yaml."""
    from wm_ros.config import planning_session_from_yaml
    from wm_ros.eval.plan import task_planner_config

    graph = g.load_graph("plan")
    values = graph.resolve_arguments({})
    files = g.resolve_param_files(graph.node("planner_node"), values)
    assert values["task"] == "push"
    assert planning_session_from_yaml(*files) == task_planner_config("push")


def _file_value(param_file: Path, node: g.NodeSpec, dotted: str):
    data = yaml.safe_load(param_file.read_text())
    for section, body in data.items():
        if g._pattern_matches("/" + section.strip("/"), node.fully_qualified_name):
            value = body["ros__parameters"]
            for key in dotted.split("."):
                if not isinstance(value, dict) or key not in value:
                    break
                value = value[key]
            else:
                return value
    return None


@pytest.mark.parametrize("graph_name", g.graph_names())
def test_packaged_argument_defaults_equal_param_file_values(graph_name):
    """An argument feeding a parameter that a params file also sets defaults to the file's
    value, so that the params file stays the one place where defaults are read."""
    graph = g.load_graph(graph_name)
    defaults = graph.resolve_arguments({arg.name: "" for arg in graph.arguments if not arg.default})
    checked = 0
    for node in graph.nodes:
        for name, value in node.parameters:
            if not (isinstance(value, str) and g.parse_template(value) == (g.VarRef(value[6:-1]),)):
                continue
            for path in g.resolve_param_files(node, defaults):
                in_file = _file_value(path, node, name)
                if in_file is not None:
                    assert yaml.safe_load(defaults[value[6:-1]]) == in_file, (node.label, name)
                    checked += 1
    if graph_name == "sim":
        assert checked >= 3  # image_width, image_height, task.kind, publish_clock


@pytest.mark.parametrize("graph_name", g.graph_names())
def test_packaged_executables_are_console_scripts(graph_name):
    for node in g.load_graph(graph_name).nodes:
        if node.package != "wm_ros":
            continue
        eps = metadata.entry_points(group="console_scripts", name=node.executable)
        assert [ep.value for ep in eps if ep.dist and ep.dist.name == "wm_ros"], node.executable
        cmd = executable_command(node.package, node.executable)
        assert cmd[:2] == [sys.executable, "-c"]


# --------------------------------------------------------------------------- validation

GOOD_NODE = """
      - package: fakepkg
        executable: fake_node
        name: talker
"""


def one_node(fields: str, arguments: str = "{}") -> str:
    """Graph `a` with `arguments` and one node `{package: p, executable: e, name: n<fields>}`."""
    return (
        f"  a:\n    arguments: {arguments}\n    nodes:\n"
        f"      - {{package: p, executable: e, name: n{fields}}}\n"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (one_node(", parms: {}"), "unknown key(s) ['parms']"),
        ("  a:\n    nodes:\n      - {package: p, name: n}\n", "missing key(s) ['executable']"),
        ("  a:\n    nodes: []\n", "has no nodes"),
        ("  a:\n    nodez:" + GOOD_NODE, "unknown key(s) ['nodez']"),
        (one_node("").replace("name: n", "name: 1talker"), "not a valid ROS node name"),
        (one_node(", namespace: 'a//b'"), "not a valid namespace"),
        (one_node("").replace("package: p", "package: P-kg"), "not a valid package name"),
        (one_node(", param_files: [nope.yaml]"), "nope.yaml does not exist"),
        (
            one_node(", param_files: [other.yaml]"),
            "has no ros__parameters for /n (its sections: ['/someone_else'])",
        ),
        (one_node(", parameters: {x: $(var nope)}"), "undeclared argument(s) ['nope']"),
        (
            "  a:\n    arguments: {x: {default: 1}}\n    nodes:" + GOOD_NODE,
            "argument(s) ['x'] are used by no node",
        ),
        (one_node(", parameters: {x: $(env HOME)}"), "only $(var <argument>) is supported"),
        (
            "  a:\n    include: [b]\n    nodes:"
            + GOOD_NODE
            + "  b:\n    include: [a]\n    nodes:"
            + GOOD_NODE,
            "include cycle a -> b -> a",
        ),
        ("  a:\n    include: [zzz]\n    nodes:" + GOOD_NODE, "no graph 'zzz' to include"),
        ("  a:\n    nodes:" + GOOD_NODE + GOOD_NODE, "two nodes named ['/talker']"),
        (
            one_node(", parameters: {x: $(var x)}", "{x: {default: c, choices: [a, b]}}"),
            "default 'c' is not one of ['a', 'b']",
        ),
        (one_node(", parameters: {x: []}"), "empty lists cannot be typed"),
        (one_node(", parameters: {x: [1, a]}"), "list items must all have one type"),
        (one_node(", respawn: yes please"), "expected true or false"),
        (one_node(", respawn_delay: -1"), "non-negative number of seconds"),
        (one_node(", parameters: {x: $(var}"), "unbalanced"),
    ],
)
def test_invalid_graphs_are_rejected_with_a_clear_message(tmp_path, body, message):
    write_params(tmp_path, "other.yaml", {"someone_else": {"ros__parameters": {"a": 1}}})
    path = write_graphs(tmp_path, "graphs:\n" + body)
    with pytest.raises(g.GraphError) as info:
        g.load_graphs(path, base_dir=tmp_path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_graph_lists_the_known_ones():
    with pytest.raises(g.UnknownGraphError, match=r"no graph 'simm'; known graphs: \[.*'sim'"):
        g.load_graph("simm")


def test_not_a_graphs_file(tmp_path):
    with pytest.raises(g.GraphError, match="top-level mapping"):
        g.load_graphs(write_graphs(tmp_path, "sim: {}\n"), base_dir=tmp_path)
    with pytest.raises(g.GraphError, match="no graphs file"):
        g.load_graphs(tmp_path / "missing.yaml", base_dir=tmp_path)


@pytest.mark.parametrize(
    ("section", "namespace", "ok"),
    [
        ("talker", "", True),
        ("/talker", "", True),
        ("/**", "robot", True),
        ("/**/talker", "robot/arm", True),
        ("/**/talker", "", True),
        ("robot/talker", "robot", True),
        ("/robot/*", "robot", True),
        ("talker", "robot", False),
        ("/robot/*", "", False),
        ("listener", "", False),
    ],
)
def test_param_file_sections_match_like_rcl(tmp_path, section, namespace, ok):
    path = write_params(tmp_path, "p.yaml", {section: {"ros__parameters": {"a": 1}}})
    node = g.NodeSpec("fakepkg", "fake_node", "talker", namespace=namespace)
    if ok:
        g.check_param_file(path, node)
    else:
        with pytest.raises(g.GraphError, match="has no ros__parameters"):
            g.check_param_file(path, node)


def test_nested_namespace_sections_count(tmp_path):
    path = write_params(tmp_path, "p.yaml", {"robot": {"talker": {"ros__parameters": {"a": 1}}}})
    g.check_param_file(path, g.NodeSpec("p", "e", "talker", namespace="robot"))


# --------------------------------------------------------------------------- arguments


def two_node_graph(tmp_path: Path) -> g.GraphSpec:
    write_params(tmp_path, "talker.yaml", {"/robot/talker": {"ros__parameters": {"rate": 5}}})
    write_params(tmp_path, "alt.yaml", {"/**": {"ros__parameters": {"rate": 7}}})
    path = write_graphs(
        tmp_path,
        """
        graphs:
          base:
            description: one talker
            arguments:
              rate_hz: {default: 5, description: "publish rate, Hz"}
              mode: {default: fast, choices: [fast, slow]}
              params: {default: talker.yaml}
            nodes:
              - package: fakepkg
                executable: fake_node
                name: talker
                namespace: robot
                param_files: [$(var params)]
                parameters:
                  rate: $(var rate_hz)
                  frame: "64"
                  scale: 1
                  gains: [1, 2.5]
                  names: [a, b]
                  flags: [true, false]
                  mode: $(var mode)
                  label: "cam_$(var mode)"
                  nested: {deep: {value: 0.5}}
                remappings: {chatter: /robot/chatter_$(var mode), ~/out: out2}
                arguments: [serve, "--rate=$(var rate_hz)"]
          more:
            include: [base]
            arguments:
              rate_hz: {default: 9}
              who: {}
            nodes:
              - package: fakepkg
                executable: fake_node
                name: listener
                parameters: {who: $(var who)}
                respawn: true
                respawn_delay: 0.5
        """,
    )
    return g.load_graphs(path, base_dir=tmp_path)


def test_resolve_arguments(tmp_path):
    graphs = two_node_graph(tmp_path)
    base, more = graphs["base"], graphs["more"]
    assert base.resolve_arguments({}) == {"rate_hz": "5", "mode": "fast", "params": "talker.yaml"}
    assert base.resolve_arguments({"mode": "slow"})["mode"] == "slow"
    with pytest.raises(g.GraphError, match=r"no argument\(s\) \['rat'\]; its arguments"):
        base.resolve_arguments({"rat": "1"})
    with pytest.raises(g.GraphError, match=r"mode:=medium .* not one of \['fast', 'slow'\]"):
        base.resolve_arguments({"mode": "medium"})
    # An included graph's nodes come first; re-declaring an argument changes its default.
    assert [n.name for n in more.nodes] == ["talker", "listener"]
    with pytest.raises(g.GraphError, match="needs argument 'who'"):
        more.resolve_arguments({})
    assert more.resolve_arguments({"who": "me"})["rate_hz"] == "9"
    assert more.argument("rate_hz").description == "publish rate, Hz"  # inherited
    assert more.argument("mode").choices == ("fast", "slow")
    assert more.node("listener").respawn and more.node("listener").respawn_delay == 0.5
    assert more.node("/robot/talker").name == "talker"


def test_parse_overrides():
    assert g.parse_overrides(["a:=1", "b:=x:=y", "a:=2", "c:="]) == {"a": "2", "b": "x:=y", "c": ""}
    for bad in ("a=1", ":=1", "a b:=1"):
        with pytest.raises(g.GraphError, match="name:=value"):
            g.parse_overrides([bad])


def test_yaml_text_keeps_types():
    cases = [("64", "'64'"), ("true", "'true'"), ("", "''"), ("base_link", "base_link"),
             (1.0, "1.0"), (3, "3"), (True, "true"), ((1.0, 2.5), "[1.0, 2.5]"),
             (("a", "b"), "[a, b]")]  # fmt: skip
    for value, text in cases:
        assert g.yaml_text(value) == text
        back = yaml.safe_load(text)
        assert back == (list(value) if isinstance(value, tuple) else value)
        assert type(back) is (list if isinstance(value, tuple) else type(value))


def test_ros_arguments_exact(tmp_path):
    graphs = two_node_graph(tmp_path)
    node = graphs["base"].node("talker")
    values = graphs["base"].resolve_arguments({"mode": "slow", "rate_hz": "12"})
    assert g.node_argv(node, values) == [
        "serve", "--rate=12",
        "--ros-args", "-r", "__node:=talker", "-r", "__ns:=/robot",
        "--params-file", str(tmp_path / "talker.yaml"),
        "-p", "rate:=12", "-p", "frame:='64'", "-p", "scale:=1", "-p", "gains:=[1.0, 2.5]",
        "-p", "names:=[a, b]", "-p", "flags:=[true, false]", "-p", "mode:=slow",
        "-p", "label:=cam_slow", "-p", "nested.deep.value:=0.5",
        "-r", "chatter:=/robot/chatter_slow", "-r", "~/out:=out2",
    ]  # fmt: skip
    # A parameter file chosen by an argument: relative to base_dir, absolute as given, checked.
    alt = g.ros_arguments(node, {**values, "params": str(tmp_path / "alt.yaml")})
    assert alt[alt.index("--params-file") + 1] == str(tmp_path / "alt.yaml")
    with pytest.raises(g.GraphError, match=r"missing\.yaml does not exist"):
        g.ros_arguments(node, {**values, "params": "missing.yaml"})


@pytest.mark.ros
def test_rcl_reads_the_ros_arguments_as_intended(tmp_path):
    """The argv bringup builds, parsed by rcl itself: name, namespace, parameter types and
    precedence (inline over file), remapping."""
    import rclpy
    from rclpy.node import Node

    graphs = two_node_graph(tmp_path)
    node_spec = graphs["base"].node("talker")
    values = graphs["base"].resolve_arguments({"rate_hz": "12"})
    argv = g.ros_arguments(node_spec, values)
    context = rclpy.Context()
    rclpy.init(
        args=["fake_node", *argv], context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"])
    )
    try:
        node = Node(
            "default_name", context=context, automatically_declare_parameters_from_overrides=True
        )
        try:
            assert node.get_fully_qualified_name() == "/robot/talker"
            params = {name: node.get_parameter(name).value for name in (
                "rate", "frame", "scale", "gains", "names", "flags", "mode", "label",
                "nested.deep.value")}  # fmt: skip
            assert params["rate"] == 12 and type(params["rate"]) is int  # inline beats file (5)
            assert params["frame"] == "64"
            assert type(params["scale"]) is int
            assert list(params["gains"]) == [1.0, 2.5]
            assert list(params["names"]) == ["a", "b"]
            assert list(params["flags"]) == [True, False]
            assert (params["mode"], params["label"]) == ("fast", "cam_fast")
            assert params["nested.deep.value"] == 0.5
            assert node.resolve_topic_name("chatter") == "/robot/chatter_fast"
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


# --------------------------------------------------------------------------- launch files


@pytest.fixture
def fake_launch(tmp_path, monkeypatch):
    """Fake `launch`/`launch_ros` importable for the duration of a test."""
    forget_launch_modules()
    monkeypatch.syspath_prepend(str(write_fake_launch_modules(tmp_path / "fakes")))
    yield
    forget_launch_modules()


def run_launch_file(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def test_sim_launch_file(fake_launch):
    description = run_launch_file(REPO / "launch" / "sim.launch.py")
    graph = g.load_graph("sim")
    declared = [e for e in description.entities if type(e).__name__ == "DeclareLaunchArgument"]
    nodes = [e for e in description.entities if type(e).__name__ == "Node"]
    assert [d.args[0] for d in declared] == [a.name for a in graph.arguments]
    by_name = {d.args[0]: d.kwargs for d in declared}
    assert by_name["use_sim_time"]["default_value"] == "false"
    assert by_name["use_sim_time"]["choices"] == ["true", "false"]
    assert by_name["image_width"]["default_value"] == "64"
    assert "choices" not in by_name["image_width"]
    assert [n.kwargs["executable"] for n in nodes] == ["sim_node", "prompt_node"]
    kwargs = nodes[0].kwargs
    assert (kwargs["package"], kwargs["executable"], kwargs["name"]) == (
        "wm_ros",
        "sim_node",
        "sim",
    )
    assert kwargs["parameters"][0] == str(REPO / "config" / "sim.yaml")
    assert type(kwargs["parameters"][1]["use_sim_time"]).__name__ == "LaunchConfiguration"
    assert kwargs["parameters"][1]["sim.image_width"].variable_name == "image_width"
    assert kwargs["respawn"] is False
    assert type(kwargs["on_exit"]).__name__ == "Shutdown"
    assert kwargs["output"] == "screen"
    assert "namespace" not in kwargs


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
@pytest.mark.parametrize("overrides", ["defaults", "overridden"])
def test_launch_files_start_what_bringup_starts(fake_launch, launch_file, overrides):
    """Every launch file's nodes, evaluated the way launch_ros evaluates them, equal what
    bringup passes on the command line (read back the way rcl reads it)."""
    description = run_launch_file(launch_file)
    declared = [e for e in description.entities if type(e).__name__ == "DeclareLaunchArgument"]
    nodes = [e for e in description.entities if type(e).__name__ == "Node"]
    matches = [
        graph
        for graph in g.load_graphs().values()
        if [n.name for n in graph.nodes] == [n.kwargs["name"] for n in nodes]
    ]
    assert len(matches) == 1, f"{launch_file.name} matches no single graph"
    graph = matches[0]
    given = {}
    if overrides == "overridden":
        for arg in graph.arguments:
            others = [c for c in arg.choices if c != arg.default]
            given[arg.name] = (
                others[0] if others else ("7" if (arg.default or "").isdigit() else arg.default)
            )
    values = graph.resolve_arguments(given)
    assert {d.args[0]: d.kwargs.get("default_value") for d in declared} == {
        a.name: a.default for a in graph.arguments
    }
    for node_spec, launched in zip(graph.nodes, nodes, strict=True):
        assert launched.kwargs["executable"] == node_spec.executable
        assert launched.kwargs["package"] == node_spec.package
        assert evaluate_node(launched.kwargs, values) == parse_argv(g.node_argv(node_spec, values))


def test_launch_kwargs_match_bringup_for_every_feature(fake_launch, tmp_path):
    graphs = two_node_graph(tmp_path)
    values = graphs["more"].resolve_arguments({"who": "true", "mode": "slow", "params": "alt.yaml"})
    for node in graphs["more"].nodes:
        kwargs = g.node_launch_kwargs(node)
        assert evaluate_node(kwargs, values) == parse_argv(g.node_argv(node, values))
    listener = g.node_launch_kwargs(graphs["more"].node("listener"))
    assert listener["respawn"] is True and listener["respawn_delay"] == 0.5
    assert "on_exit" not in listener
    talker = g.node_launch_kwargs(graphs["more"].node("talker"))
    assert talker["namespace"] == "robot"
    assert type(talker["parameters"][0]).__name__ == "PathJoinSubstitution"


# --------------------------------------------------------------------------- bringup

FAKE_NODE = r"""#!{python}
import json, os, signal, sys, time
mode = sys.argv[1]
info = {{"argv": sys.argv[1:], "pid": os.getpid(),
        "fastdds": os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"),
        "range": os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE")}}
print("start " + json.dumps(info), flush=True)
if mode in ("crash", "finish"):
    # With FAKE_READY_DIR set, end only once a serving sibling has its signal handlers in
    # place: otherwise, on a loaded machine, the shutdown could reach it before they exist.
    ready_dir = os.environ.get("FAKE_READY_DIR")
    deadline = time.monotonic() + 20
    while ready_dir and not os.listdir(ready_dir) and time.monotonic() < deadline:
        time.sleep(0.01)
if mode == "crash":
    sys.stdout.write("bye without newline")
    sys.exit(3)
if mode == "finish":
    sys.exit(0)
if mode == "flaky":
    with open(sys.argv[2], "a+") as f:
        f.write("x")
        f.seek(0)
        starts = len(f.read())
    if starts < 3:
        print(f"flaky start {{starts}} fails", flush=True)
        sys.exit(1)
stop = []
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_IGN if mode == "stubborn" else lambda s, f: stop.append(s))
print("ready", flush=True)
if os.environ.get("FAKE_READY_DIR"):
    open(os.path.join(os.environ["FAKE_READY_DIR"], str(os.getpid())), "w").close()
while not stop:
    time.sleep(0.01)
print("got " + signal.Signals(stop[0]).name, flush=True)
"""


@pytest.fixture
def sibling_ready(tmp_path, monkeypatch):
    """Fake nodes in `crash`/`finish` mode wait until a `serve` sibling is ready."""
    ready = tmp_path / "ready"
    ready.mkdir()
    monkeypatch.setenv("FAKE_READY_DIR", str(ready))


@pytest.fixture
def fake_prefix(tmp_path):
    """An ament prefix with package `fakepkg` whose executable `fake_node` is the script above."""
    prefix = tmp_path / "prefix"
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / "fakepkg"
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    exe = prefix / "lib" / "fakepkg" / "fake_node"
    exe.parent.mkdir(parents=True)
    exe.write_text(FAKE_NODE.format(python=sys.executable))
    exe.chmod(0o755)
    return prefix


class Bringup:
    """`python -m wm_ros.ros.bringup ...` in a subprocess, its output collected by threads."""

    def __init__(self, prefix: Path | None, graphs: Path | None, *args: str) -> None:
        env = dict(os.environ)
        env["AMENT_PREFIX_PATH"] = os.pathsep.join(
            filter(None, [str(prefix or ""), env.get("AMENT_PREFIX_PATH")])
        )
        env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        graphs_args = ["--graphs-file", str(graphs)] if graphs else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wm_ros.ros.bringup", *graphs_args, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for t in self.threads:
            t.start()

    def _read(self, stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            self.lines.put(line)

    def wait_for(self, *texts: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not all(any(t in line for line in self.stdout) for t in texts):
            if time.monotonic() > deadline or (self.proc.poll() is not None and self.lines.empty()):
                raise AssertionError(
                    f"never saw {texts}; stdout {self.stdout}, stderr {self.stderr}"
                )
            with contextlib.suppress(queue.Empty):
                self.lines.get(timeout=0.1)

    def finish(self, timeout: float = 20.0) -> int:
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for t in self.threads:
            t.join(5)
        return rc

    def started(self, label: str) -> list[dict]:
        prefix = f"[{label}] start "
        return [json.loads(line[len(prefix) :]) for line in self.stdout if line.startswith(prefix)]


def bringup_graph(tmp_path: Path, nodes: str, arguments: str = "{}") -> Path:
    return write_graphs(
        tmp_path,
        f"graphs:\n  test:\n    arguments: {arguments}\n    nodes:\n"
        + textwrap.indent(textwrap.dedent(nodes), "      "),
    )


def test_bringup_prefixes_output_sets_dds_env_and_forwards_sigint(tmp_path, fake_prefix):
    params = write_params(tmp_path, "a.yaml", {"a": {"ros__parameters": {"x": 1}}})
    graphs = bringup_graph(
        tmp_path,
        f"""
        - {{package: fakepkg, executable: fake_node, name: a, arguments: [serve],
            param_files: ['{params}'], parameters: {{x: $(var x)}}}}
        - {{package: fakepkg, executable: fake_node, name: b, namespace: ns, arguments: [serve]}}
        """,
        "{x: {default: 1}}",
    )
    run = Bringup(fake_prefix, graphs, "test", "x:=42")
    run.wait_for("[a] ready", "[ns/b] ready")
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0, run.stderr
    assert "[a] got SIGINT" in run.stdout and "[ns/b] got SIGINT" in run.stdout
    (a,), (b,) = run.started("a"), run.started("ns/b")
    assert a["argv"] == [
        "serve",
        "--ros-args",
        "-r",
        "__node:=a",
        "--params-file",
        str(params),
        "-p",
        "x:=42",
    ]
    assert b["argv"] == ["serve", "--ros-args", "-r", "__node:=b", "-r", "__ns:=/ns"]
    assert a["fastdds"] == str(REPO / "config" / "fastdds_local.xml")
    assert a["range"] == "LOCALHOST"
    assert any("SIGINT received" in line for line in run.stderr)


def test_child_environment_keeps_what_is_set():
    env = child_environment(
        {"FASTDDS_DEFAULT_PROFILES_FILE": "/robot.xml", "ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    )
    assert env["FASTDDS_DEFAULT_PROFILES_FILE"] == "/robot.xml"
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "SUBNET"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_bringup_sigterm_is_forwarded(tmp_path, fake_prefix):
    graphs = bringup_graph(
        tmp_path, "- {package: fakepkg, executable: fake_node, name: a, arguments: [serve]}"
    )
    run = Bringup(fake_prefix, graphs, "test")
    run.wait_for("[a] ready")
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 0
    assert "[a] got SIGTERM" in run.stdout


def test_a_crashing_node_ends_the_graph_with_an_error(tmp_path, fake_prefix, sibling_ready):
    graphs = bringup_graph(
        tmp_path,
        """
        - {package: fakepkg, executable: fake_node, name: a, arguments: [serve]}
        - {package: fakepkg, executable: fake_node, name: b, arguments: [crash]}
        """,
    )
    run = Bringup(fake_prefix, graphs, "test")
    assert run.finish() == 1
    assert "[b] bye without newline" in run.stdout  # the last, unterminated line is not lost
    assert "[a] got SIGINT" in run.stdout
    assert any(
        "node b (fake_node) exit code 3; shutting down the graph" in line for line in run.stderr
    )


def test_a_node_that_finishes_ends_the_graph_cleanly(tmp_path, fake_prefix, sibling_ready):
    graphs = bringup_graph(
        tmp_path,
        """
        - {package: fakepkg, executable: fake_node, name: a, arguments: [serve]}
        - {package: fakepkg, executable: fake_node, name: b, arguments: [finish]}
        """,
    )
    run = Bringup(fake_prefix, graphs, "test")
    assert run.finish() == 0
    assert "[a] got SIGINT" in run.stdout


def test_respawn_restarts_a_node(tmp_path, fake_prefix):
    counter = tmp_path / "starts.txt"
    graphs = bringup_graph(
        tmp_path,
        f"""
        - {{package: fakepkg, executable: fake_node, name: a, arguments: [flaky, '{counter}'],
            respawn: true, respawn_delay: 0.1}}
        """,
    )
    run = Bringup(fake_prefix, graphs, "test")
    run.wait_for("[a] ready")
    assert len(run.started("a")) == 3
    assert "[a] flaky start 1 fails" in run.stdout and "[a] flaky start 2 fails" in run.stdout
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0
    assert sum("respawning in 0.1 s" in line for line in run.stderr) == 2


def test_a_node_ignoring_signals_is_killed(tmp_path, fake_prefix):
    graphs = bringup_graph(
        tmp_path, "- {package: fakepkg, executable: fake_node, name: a, arguments: [stubborn]}"
    )
    run = Bringup(fake_prefix, graphs, "--shutdown-timeout", "0.2", "test")
    run.wait_for("[a] ready")
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 1
    assert time.monotonic() - t0 < 8.0
    assert any("sending SIGTERM" in line for line in run.stderr)
    assert any("sending SIGKILL" in line for line in run.stderr)
    assert any("killed by SIGKILL" in line for line in run.stderr)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_children_die_with_a_killed_bringup(tmp_path, fake_prefix):
    graphs = bringup_graph(
        tmp_path, "- {package: fakepkg, executable: fake_node, name: a, arguments: [serve]}"
    )
    run = Bringup(fake_prefix, graphs, "test")
    run.wait_for("[a] ready")
    pid = run.started("a")[0]["pid"]
    run.proc.kill()
    run.finish()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survived = _alive(pid)
    if survived:
        os.kill(pid, signal.SIGKILL)
    assert not survived, "child outlived a SIGKILLed bringup"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "no graph 'nope'; known graphs: ['test']"),
        (["test", "y:=1"], "has no argument(s) ['y']"),
        (["test", "y=1"], "is not of the form name:=value"),
        ([], "name a graph to start"),
    ],
)
def test_bringup_usage_errors(tmp_path, fake_prefix, args, message):
    graphs = bringup_graph(
        tmp_path, "- {package: fakepkg, executable: fake_node, name: a, arguments: [serve]}"
    )
    run = Bringup(fake_prefix, graphs, *args)
    assert run.finish() == 2
    assert any(message in line for line in run.stderr), run.stderr
    assert not run.stdout


def test_bringup_missing_executable(tmp_path, fake_prefix):
    graphs = bringup_graph(tmp_path, "- {package: fakepkg, executable: not_there, name: a}")
    run = Bringup(fake_prefix, graphs, "test")
    assert run.finish() == 2
    assert any("no executable 'not_there' in package 'fakepkg'" in line for line in run.stderr)


def test_bringup_list_and_dry_run(tmp_path, fake_prefix):
    graphs = bringup_graph(
        tmp_path,
        "- {package: fakepkg, executable: fake_node, name: a, parameters: {x: $(var x)}}",
        "{x: {default: 1, description: the x}}",
    )
    run = Bringup(fake_prefix, graphs, "--list")
    assert run.finish() == 0
    assert run.stdout[0] == "test"
    assert "x:=  default '1'  the x" in run.stdout[1]
    run = Bringup(fake_prefix, graphs, "--dry-run", "test", "x:=5")
    assert run.finish() == 0
    exe = fake_prefix / "lib" / "fakepkg" / "fake_node"
    assert run.stdout == [f"a: {exe} --ros-args -r __node:=a -p x:=5"]


@pytest.mark.ros
@pytest.mark.slow
def test_bringup_starts_the_packaged_sim_graph(tmp_path):
    """`wm-ros bringup sim image_width:=96` over real DDS: the simulator comes up with the
    overridden parameter, and SIGINT stops it cleanly."""
    from sensor_msgs.msg import CameraInfo

    from test.ros_harness import RosHarness, wait_until

    run = Bringup(None, None, "sim", "image_width:=96", "task:=reach")
    try:
        with RosHarness("bringup_probe") as ros:
            infos = ros.subscribe("/camera/camera_info", CameraInfo)
            assert wait_until(lambda: bool(infos), timeout=60), (run.stdout, run.stderr)
            assert (infos[-1].width, infos[-1].height) == (96, 64)
    finally:
        run.proc.send_signal(signal.SIGINT)
        rc = run.finish(timeout=30)
    assert rc == 0, run.stderr
    assert any(line.startswith("[sim] ") and "reach" in line for line in run.stdout), run.stdout
