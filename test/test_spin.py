"""run_node, the `main()` of every node: exit codes at shutdown."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A node whose timer does what rclpy's Ctrl-C handler can make happen: the context is shut
# down, then a callback that was already ready publishes on it.
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
