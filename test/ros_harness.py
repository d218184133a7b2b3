"""Shared helpers for tests that talk over real DDS (loopback, per-worker domain from conftest).

`RosHarness` is an rclpy context with one node spun on a background thread; `NodeProcess`
starts a node executable as a child process the way bringup does, and stops it with SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, period: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(period)
    return predicate()


class RosHarness:
    """A private rclpy context and node, spun on its own thread; everything is shut down and
    joined on exit (executor first, then the context)."""

    def __init__(self, name: str = "test_harness") -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def subscribe(
        self, topic: str, cls: type, qos: QoSProfile | int = 10, raw: bool = False
    ) -> list[Any]:
        """Messages received on `topic`, appended as they arrive (list shared with the caller)."""
        received: list[Any] = []
        self.node.create_subscription(cls, topic, received.append, qos, raw=raw)
        return received

    def publisher(self, topic: str, cls: type, qos: QoSProfile | int = 10):
        return self.node.create_publisher(cls, topic, qos)

    def call(self, srv_cls: type, name: str, request: Any, timeout: float = 20.0) -> Any:
        client = self.node.create_client(srv_cls, name)
        assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
        future = client.call_async(request)
        assert wait_until(future.done, timeout), f"service {name} did not answer"
        return future.result()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self) -> RosHarness:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NodeProcess:
    """A node module run as `python -m module --ros-args ...` in a child process.

    Its output goes to `log_path`; `stop()` sends SIGINT (a clean shutdown) and returns the exit
    code, killing it only if it does not end in time.
    """

    def __init__(self, module: str, ros_args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *ros_args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT, then SIGKILL after `timeout` s (a loaded 2-core machine can take seconds to
        tear DDS down); the exit code. A kill is noted at the end of the log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._log.write(f"\n[harness] no exit {timeout} s after SIGINT: killed\n")
        self._log.close()
        return self.proc.returncode
