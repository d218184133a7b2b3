"""`wm-ros bringup <graph> [name:=value ...]`: start a node graph without ros2 launch.

Reads the same graph (`config/graphs.yaml`, via `wm_ros.graph`) as `launch/<graph>.launch.py`,
and starts one child process per node:

- a console script of an installed Python distribution (the `wm_ros` nodes) runs as
  `sys.executable -c <load the entry point and call it> ARGS --ros-args ...`, so neither
  `ros2 run` nor the script's location on PATH matter;
- anything else runs as `<prefix>/lib/<package>/<executable>` found through the ament index,
  which is where `ros2 run` looks.

Each child's output (stdout and stderr, which is where ROS logs go) is forwarded line by line,
prefixed with `[<node name>]`. SIGINT/SIGTERM are forwarded to every child (children run in
their own sessions, so a terminal's Ctrl-C reaches them only through here, once); a child that
does not stop within the shutdown timeout gets SIGTERM, then SIGKILL. When a node exits on its
own, it is restarted if its spec says `respawn`; otherwise the whole graph is shut down, with
exit status 1 when the node failed (non-zero exit) and 0 when it finished cleanly.

For local runs the children get `FASTDDS_DEFAULT_PROFILES_FILE=<share>/config/fastdds_local.xml`
and `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST` unless those are already set. The launch files
never set them: a robot's own DDS setup wins there.

This module imports no rclpy: bringup is a process supervisor, not a node.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TextIO

from wm_ros.graph import (
    GraphError,
    GraphSpec,
    NodeSpec,
    describe,
    load_graph,
    load_graphs,
    node_argv,
    parse_overrides,
)
from wm_ros.paths import share_dir

log = logging.getLogger("wm_ros.bringup")

EXIT_OK = 0
EXIT_NODE_FAILED = 1
EXIT_USAGE = 2

_POLL_S = 0.05
_KILL_GRACE_S = 2.0  # s after SIGTERM before SIGKILL

_BOOTSTRAP = (
    "import importlib, sys\n"
    "sys.argv[0] = {name!r}\n"
    "obj = importlib.import_module({module!r})\n"
    "for attr in {attrs!r}: obj = getattr(obj, attr)\n"
    "sys.exit(obj())\n"
)


def _normalize(dist: str) -> str:
    return dist.lower().replace("-", "_").replace(".", "_")


def executable_command(package: str, executable: str) -> list[str]:
    """The command that runs `executable` of `package` (before its own arguments).

    Raises:
        GraphError: neither a console script of a distribution named `package` nor
            `<prefix>/lib/<package>/<executable>` on AMENT_PREFIX_PATH exists.
    """
    for ep in metadata.entry_points(group="console_scripts", name=executable):
        if ep.dist is not None and _normalize(ep.dist.name) == _normalize(package):
            code = _BOOTSTRAP.format(name=executable, module=ep.module, attrs=ep.attr.split("."))
            return [sys.executable, "-c", code]
    candidates = []
    for prefix in filter(None, os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)):
        path = Path(prefix) / "lib" / package / executable
        candidates.append(str(path))
        if path.is_file() and os.access(path, os.X_OK):
            return [str(path)]
    where = candidates or "(AMENT_PREFIX_PATH is unset)"
    raise GraphError(
        f"no executable {executable!r} in package {package!r}: it is neither a console script "
        f"of an installed distribution {package!r} nor any of {where}"
    )


def child_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every child: `base` (default os.environ) plus local-run DDS defaults
    (loopback discovery, the shared-memory Fast DDS profile) where not already set, and
    unbuffered Python output so log lines arrive as they are written."""
    env = dict(os.environ if base is None else base)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = share_dir() / "config" / "fastdds_local.xml"
    if profile.is_file():
        env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if bringup dies without cleaning up (Linux)."""
    _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def display_command(launcher: Sequence[str], node: NodeSpec, args: Sequence[str]) -> str:
    """A readable command line: a console script shows as its name, like `ros2 run` would."""
    head = launcher[0] if len(launcher) == 1 else node.executable
    return shlex.join([head, *args])


@dataclass
class _Child:
    node: NodeSpec
    argv: list[str]
    display: str
    proc: subprocess.Popen[bytes] | None = None
    partial: bytes = b""
    starts: int = 0
    restart_at: float | None = None
    done: bool = False
    exits: list[int] = field(default_factory=list)


class _Supervisor:
    """The children of one graph, their output, signals and shutdown (one thread, no others)."""

    def __init__(
        self, children: list[_Child], env: dict[str, str], out: TextIO, shutdown_timeout_s: float
    ) -> None:
        self.children = children
        self.env = env
        self.out = out
        self.shutdown_timeout_s = shutdown_timeout_s
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.stop_deadline = 0.0
        self.escalated = 0  # 0: graceful signal sent, 1: SIGTERM sent, 2: SIGKILL sent
        self.result = EXIT_OK
        self.pending_signals: list[int] = []

    # ---- processes

    def start(self, child: _Child) -> None:
        child.starts += 1
        child.restart_at = None
        log.info("starting %s: %s", child.node.label, child.display)
        child.proc = subprocess.Popen(
            child.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=_die_with_parent if _LIBC is not None else None,  # noqa: PLW1509
        )
        assert child.proc.stdout is not None
        os.set_blocking(child.proc.stdout.fileno(), False)
        self.selector.register(child.proc.stdout, selectors.EVENT_READ, child)

    def signal_all(self, sig: int) -> None:
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(sig)

    def begin_shutdown(self, sig: int, result: int) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.result = result
        self.stop_deadline = time.monotonic() + self.shutdown_timeout_s
        for child in self.children:
            if child.restart_at is not None:  # exited already, waiting to respawn: stays down
                child.restart_at = None
                child.done = True
        self.signal_all(sig)

    def escalate(self) -> None:
        """SIGTERM to children still running after the timeout, then SIGKILL."""
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        if not running:
            return
        names = [c.node.label for c in running]
        if self.escalated == 0:
            log.warning(
                "%s still running after %.1f s: sending SIGTERM", names, self.shutdown_timeout_s
            )
            self.signal_all(signal.SIGTERM)
            self.stop_deadline = time.monotonic() + _KILL_GRACE_S
        else:
            log.error("%s did not stop: sending SIGKILL", names)
            self.signal_all(signal.SIGKILL)
            self.stop_deadline = float("inf")
        self.escalated += 1
        self.result = max(self.result, EXIT_NODE_FAILED)

    # ---- output

    def emit(self, child: _Child, data: bytes, final: bool = False) -> None:
        data = child.partial + data
        lines = data.split(b"\n")
        child.partial = b"" if final else lines.pop()
        prefix = f"[{child.node.label}] "
        text = "".join(
            f"{prefix}{line.decode('utf-8', 'replace').rstrip(chr(13))}\n"
            for line in lines
            if line or not final
        )
        if text:
            self.out.write(text)
            self.out.flush()

    def read_ready(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            child: _Child = key.data
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if chunk:
                self.emit(child, chunk)
            else:
                self.close_output(key.fileobj, child)

    def close_output(self, fileobj: object, child: _Child) -> None:
        self.emit(child, b"", final=True)
        self.selector.unregister(fileobj)
        fileobj.close()  # type: ignore[attr-defined]

    def drain(self, child: _Child) -> None:
        """Read what an exited child left in its pipe (a grandchild may hold it open: no wait)."""
        proc = child.proc
        if proc is None or proc.stdout is None or proc.stdout.closed:
            return
        while True:
            try:
                chunk = os.read(proc.stdout.fileno(), 65536)
            except BlockingIOError:
                self.emit(child, b"", final=True)
                return
            if not chunk:
                self.close_output(proc.stdout, child)
                return
            self.emit(child, chunk)

    # ---- the loop

    def check_exits(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.done or child.proc is None or child.restart_at is not None:
                continue
            code = child.proc.poll()
            if code is None:
                continue
            self.drain(child)
            child.exits.append(code)
            what = f"{child.node.label} ({child.node.executable}) {_exit_text(code)}"
            if self.stopping:
                child.done = True
                log.info("%s", what)
            elif child.node.respawn:
                log.warning("%s; respawning in %.1f s", what, child.node.respawn_delay)
                child.restart_at = now + child.node.respawn_delay
            elif code == 0:
                child.done = True
                log.info("%s; it has no respawn, so the graph ends", what)
                self.begin_shutdown(signal.SIGINT, EXIT_OK)
            else:
                child.done = True
                log.error("node %s; shutting down the graph", what)
                self.begin_shutdown(signal.SIGINT, EXIT_NODE_FAILED)

    def run(self) -> int:
        try:
            for child in self.children:
                self.start(child)
            while True:
                self.read_ready(_POLL_S)
                while self.pending_signals:
                    sig = self.pending_signals.pop(0)
                    if not self.stopping:
                        log.info("%s received: stopping the graph", signal.Signals(sig).name)
                        self.begin_shutdown(sig, EXIT_OK)
                    else:
                        log.warning("%s received again: killing", signal.Signals(sig).name)
                        self.escalated = max(self.escalated, 1)
                        self.escalate()
                self.check_exits()
                now = time.monotonic()
                for child in self.children:
                    if child.restart_at is not None and now >= child.restart_at:
                        self.start(child)
                if self.stopping:
                    if all(c.proc is None or c.proc.poll() is not None for c in self.children):
                        self.check_exits()
                        return self.result
                    if now >= self.stop_deadline:
                        self.escalate()
        finally:
            for child in self.children:
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.kill()
                    child.proc.wait()
            self.selector.close()


def bringup(
    graph_name: str,
    overrides: Mapping[str, str] | Sequence[str] = (),
    *,
    graphs_file: Path | str | None = None,
    base_dir: Path | str | None = None,
    shutdown_timeout_s: float = 5.0,
    out: TextIO | None = None,
) -> int:
    """Start every node of a graph and supervise them until the graph ends.

    Args:
        graph_name: a graph of the graphs file (`sim`, ...).
        overrides: launch-argument values, `{"use_sim_time": "true"}` or
            `["use_sim_time:=true"]`.
        graphs_file: the graphs YAML; default the packaged `config/graphs.yaml`.
        base_dir: what relative parameter-file paths resolve against; default the share dir.
        shutdown_timeout_s: seconds children get to stop after SIGINT/SIGTERM before SIGTERM,
            then (2 s later) SIGKILL.
        out: where the children's prefixed output goes; default sys.stdout.

    Returns:
        0 when the graph was stopped by a signal or a node finished cleanly; 1 when a node
        failed (or had to be killed); 2 when the graph or an argument is wrong (nothing started).
    """
    out = sys.stdout if out is None else out
    try:
        if isinstance(overrides, str):
            overrides = [overrides]
        values_in = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
        graph = load_graph(graph_name, graphs_file, base_dir)
        values = graph.resolve_arguments(values_in)
        children = []
        for node in graph.nodes:
            launcher = executable_command(node.package, node.executable)
            args = node_argv(node, values)
            children.append(_Child(node, launcher + args, display_command(launcher, node, args)))
    except GraphError as err:
        log.error("%s", err)
        return EXIT_USAGE
    supervisor = _Supervisor(children, child_environment(), out, shutdown_timeout_s)

    def on_signal(sig: int, _frame: object) -> None:
        supervisor.pending_signals.append(sig)

    handled = (signal.SIGINT, signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, on_signal) for s in handled} if in_main else {}
    try:
        log.info(
            "graph %s: %d node(s), %s",
            graph.name,
            len(children),
            " ".join(f"{k}:={v}" for k, v in values.items()) or "no arguments",
        )
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------- command line


def add_bringup_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `wm-ros bringup`; sets `func` (Namespace -> exit code)."""
    parser.description = (
        "Start a node graph of config/graphs.yaml, the same one `ros2 launch wm_ros "
        "<graph>.launch.py` starts, with one child process per node."
    )
    parser.add_argument("graph", nargs="?", help="graph name (see --list)")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="NAME:=VALUE",
        help="launch-argument values, as for ros2 launch (e.g. use_sim_time:=true)",
    )
    parser.add_argument("--list", action="store_true", help="list the graphs and their arguments")
    parser.add_argument(
        "--dry-run", action="store_true", help="print each node's command line and exit"
    )
    parser.add_argument(
        "--graphs-file",
        type=Path,
        help="graphs YAML to read instead of the packaged one (relative parameter files "
        "still resolve against the package share directory)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds nodes get to stop before SIGTERM, then SIGKILL (default 5)",
    )
    parser.set_defaults(func=run_bringup)


def _list(graphs: Mapping[str, GraphSpec], out: TextIO) -> None:
    out.write("\n".join(describe(g) for g in graphs.values()) + "\n")


def run_bringup(args: argparse.Namespace) -> int:
    """`func` of `wm-ros bringup`: list, print or start a graph; returns the exit code."""
    out = sys.stdout
    try:
        if args.list:
            _list(load_graphs(args.graphs_file), out)
            return EXIT_OK
        if not args.graph:
            log.error("name a graph to start (wm-ros bringup --list shows them)")
            return EXIT_USAGE
        if args.dry_run:
            graph = load_graph(args.graph, args.graphs_file)
            values = graph.resolve_arguments(parse_overrides(args.overrides))
            for node in graph.nodes:
                launcher = executable_command(node.package, node.executable)
                shown = display_command(launcher, node, node_argv(node, values))
                out.write(f"{node.label}: {shown}\n")
            return EXIT_OK
    except GraphError as err:
        log.error("%s", err)
        return EXIT_USAGE
    return bringup(
        args.graph,
        args.overrides,
        graphs_file=args.graphs_file,
        shutdown_timeout_s=args.shutdown_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m wm_ros.ros.bringup ...`: the same as `wm-ros bringup ...`."""
    parser = argparse.ArgumentParser(prog="wm-ros bringup")
    add_bringup_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [bringup]: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
