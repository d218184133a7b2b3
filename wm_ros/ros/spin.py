"""The standard `main()` of every wm_ros node: init, spin, clean shutdown."""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


def run_node(
    factory: Callable[[], Node],
    label: str,
    args: list[str] | None = None,
    executor: Callable[[], Executor] = SingleThreadedExecutor,
) -> int:
    """Create the node with `factory`, spin it until Ctrl-C or shutdown, and tear down cleanly.

    By default all callbacks run on this thread (MuJoCo's EGL renderer must stay on the thread
    that made it); a node whose work may block its inputs passes a multi-threaded executor
    factory and callback groups. A ValueError while building the node (bad parameters, a bad
    URDF) is reported as one line on stderr and exit code 2, without a traceback.
    """
    # A crash in native code (DDS, torch, EGL) then prints every thread's Python stack to
    # stderr, so a rare segfault (seen once at SIGINT teardown) can be traced from the node log.
    faulthandler.enable()
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    executor = executor()
    try:
        node = factory()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as err:
        sys.stderr.write(f"{label}: {err}\n")
        return 2
    except Exception as err:
        # rclpy's Ctrl-C/SIGTERM handler shuts the context down while the executor may still
        # run a callback that was ready; its publish then fails ("publisher's context is
        # invalid"). That is the shutdown the user asked for, not a crash.
        if node is None or rclpy.ok():
            raise
        sys.stderr.write(f"{label}: a callback ran after shutdown ({type(err).__name__}: {err})\n")
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0
