"""run_node, the `main()` of every node: exit codes and teardown order at shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

# A node whose timer does what a shutdown from elsewhere (rclpy.shutdown() in a callback, a
# launch system) can make happen: the context is shut down, then a callback publishes on it.
LATE_CALLBACK = textwrap.dedent(
    """
    import sys, rclpy
    from rclpy.node import Node
    from std_msgs.msg import String
    from wm_ros.ros.spin import run_node

    class Late(Node):
        def __init__(self):
            super().__init__("late")
            self.pub = self.create_publisher(String, "late", 1)
            self.create_timer(0.05, self.tick)

        def tick(self):
            if sys.argv[1] == "shutdown_first":
                rclpy.shutdown()
            self.pub.publish(String(data=None if sys.argv[1] == "bad_message" else "x"))

    sys.exit(run_node(Late, "late", []))
    """
)


def run_late(mode: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", LATE_CALLBACK, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_callback_after_shutdown_exits_cleanly_and_says_so():
    done = run_late("shutdown_first")
    assert done.returncode == 0, done.stderr
    assert "late: a callback ran after shutdown" in done.stderr


def test_a_callback_failing_while_running_is_still_a_crash():
    done = run_late("bad_message")
    assert done.returncode != 0
    assert "Traceback" in done.stderr


# A node whose timer callback takes a while; it reports when the callback starts and ends and
# when the node is destroyed.
BUSY_CALLBACK = textwrap.dedent(
    """
    import sys, time
    from rclpy.node import Node
    from std_msgs.msg import String
    from wm_ros.ros.spin import run_node

    class Busy(Node):
        def __init__(self):
            super().__init__("busy")
            self.pub = self.create_publisher(String, "busy", 1)
            self.create_subscription(String, "busy", lambda m: None, 1)
            self.create_timer(0.05, self.tick)

        def tick(self):
            print("start", flush=True)
            time.sleep(1.0)
            self.pub.publish(String(data="x"))
            print("end", flush=True)

        def destroy_node(self):
            super().destroy_node()
            print("destroyed", flush=True)

    sys.exit(run_node(Busy, "busy", []))
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_lets_the_callback_in_flight_finish_then_tears_down_in_order(sig):
    proc = subprocess.Popen(
        [sys.executable, "-c", BUSY_CALLBACK],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "start"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    # rclpy's own handler would have raised KeyboardInterrupt inside the sleep (no "end") or
    # shut the context down under the publish; here the callback completes, then teardown.
    assert proc.returncode == 0, err
    assert out.split() == ["end", "destroyed"], (out, err)
    assert "Traceback" not in err
