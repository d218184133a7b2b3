"""The standard `main()` of every wm_ros node: init, spin, clean shutdown; and the signal
handling it shares with the bag tools."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions, get_current_signal_handlers_options

log = logging.getLogger(__name__)

# How long one executor wait may block: the delay between a signal and the start of teardown.
SPIN_POLL_S = 0.1


def rclpy_handles_signals() -> bool:
    """Whether rclpy's own SIGINT/SIGTERM handlers are installed (after `rclpy.init()`).

    They shut down every context on SIGINT/SIGTERM (and chain SIGINT on to Python, which
    raises KeyboardInterrupt); Python's `signal.getsignal` cannot see them, and replacing them
    with `signal.signal` would lose them for good, so they are left alone.
    """
    return get_current_signal_handlers_options() != SignalHandlerOptions.NO


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """In the main thread: SIGINT / SIGTERM set `stop` (a second SIGINT raises).

    Where rclpy's handlers are installed they are kept: they shut the contexts down (the loops
    check `Context.ok()`) and SIGINT raises KeyboardInterrupt, which the loops catch.
    """
    if threading.current_thread() is not threading.main_thread() or rclpy_handles_signals():
        yield
        return

    def handler(signum: int, _frame) -> None:
        if signum == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        log.info("got %s, stopping", signal.Signals(signum).name)
        stop.set()

    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def run_node(
    factory: Callable[[], Node],
    label: str,
    args: list[str] | None = None,
) -> int:
    """Create the node with `factory`, spin it until Ctrl-C, SIGTERM or shutdown, and tear down.

    All callbacks run on this thread (MuJoCo's EGL renderer must stay on the thread
    that made it); a node whose work would block its inputs runs that work on a thread of its
    own (planner_node: rclpy's multi-threaded executor spins without waiting while a long
    callback runs, and starved it of the GIL). A ValueError while building the node (bad
    parameters, a bad URDF) is reported as one line on stderr and exit code 2, without a
    traceback.

    rclpy's own signal handlers are not installed: they shut the context down from their own
    thread while this one may still run a callback or destroy the node, and that race
    segfaulted in `destroy_node` (CI, a prompt_node stopped by SIGINT). Here a signal only stops
    the spin loop; the callback in flight finishes, then the executor, the node and the context
    are torn down in that order on this thread. A second Ctrl-C interrupts a stuck callback.
    """
    # A crash in native code (DDS, torch, EGL) then prints every thread's Python stack to
    # stderr, so a rare segfault can be traced from the node log.
    faulthandler.enable()
    rclpy.init(
        args=args if args is not None else sys.argv,
        signal_handler_options=SignalHandlerOptions.NO,
    )
    node = None
    executor = SingleThreadedExecutor()
    stop = threading.Event()
    try:
        with stop_on_signals(stop):
            node = factory()
            executor.add_node(node)
            while not stop.is_set() and rclpy.ok():
                executor.spin_once(timeout_sec=SPIN_POLL_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as err:
        sys.stderr.write(f"{label}: {err}\n")
        return 2
    except Exception as err:
        # Someone shut the context down (rclpy.shutdown() in a callback, a launch system)
        # while a callback that was already ready still ran; its publish then fails
        # ("publisher's context is invalid"). That is a shutdown, not a crash.
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
