"""prompt_node: the robot's skeleton prompt drawn over the camera image, on `/wm/prompt`.

Subscribes `/camera/image_raw`, `/camera/camera_info`, `/joint_states` and `/wm/plan` (planned
future poses are drawn fainter). Parameters map one to one onto PromptNodeConfig. A bad URDF or
tool link stops the node at start with a clear error; bad or inconsistent messages at run time
are skipped, logged (throttled) and counted on `/diagnostics`.
"""

from __future__ import annotations

import sys
from collections import Counter

from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

from wm_ros.camera import CameraModel
from wm_ros.config import PromptNodeConfig
from wm_ros.prompts.live import LiveOverlay, Plan, PromptInputError
from wm_ros.ros import diagnostics, topics
from wm_ros.ros.conversions import (
    image_to_numpy,
    numpy_to_image,
    time_to_seconds,
    to_rgb,
    trajectory_msg_to_core,
)
from wm_ros.ros.params import declare_config
from wm_ros.ros.spin import run_node


class PromptNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("prompt_node", **kwargs)
        self.cfg = declare_config(self, PromptNodeConfig)
        self.overlay = LiveOverlay(self.cfg)  # raises ValueError on a bad URDF: main() reports
        self._camera: CameraModel | None = None
        self._joints: JointState | None = None
        self._plan: Plan | None = None
        self._published = 0
        self._skipped: Counter[str] = Counter()
        self._last_error = ""
        self.pub = self.create_publisher(Image, topics.PROMPT, 5)
        self.diag_pub = self.create_publisher(diagnostics.DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.create_subscription(Image, topics.IMAGE, self._on_image, 5)
        self.create_subscription(CameraInfo, topics.CAMERA_INFO, self._on_info, 5)
        self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, 20)
        self.create_subscription(JointTrajectoryMsg, topics.PLAN, self._on_plan, 5)
        self.create_timer(1.0, self._publish_diagnostics)

    def _skip(self, reason: str, message: str) -> None:
        self._skipped[reason] += 1
        self._last_error = message
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            self._camera = self.overlay.camera_from_intrinsics(msg.width, msg.height, msg.k, msg.d)
        except PromptInputError as err:
            self._camera = None  # never draw with the previous, now contradicted, intrinsics
            self._skip(err.reason, str(err))

    def _on_joints(self, msg: JointState) -> None:
        self._joints = msg

    def _on_plan(self, msg: JointTrajectoryMsg) -> None:
        try:
            traj = trajectory_msg_to_core(msg)
        except ValueError as err:
            self._skip("bad_plan", f"plan not drawn: {err}")
            return
        stamp = time_to_seconds(msg.header.stamp)
        start = stamp if stamp > 0 else self.get_clock().now().nanoseconds * 1e-9
        self._plan = Plan(traj, start)

    def _on_image(self, msg: Image) -> None:
        try:
            image = to_rgb(image_to_numpy(msg), msg.encoding)
            joints = self._joints
            out = self.overlay.compose(
                image,
                time_to_seconds(msg.header.stamp),
                camera=self._camera,
                joint_names=None if joints is None else list(joints.name),
                joint_positions=None if joints is None else list(joints.position),
                joint_stamp=0.0 if joints is None else time_to_seconds(joints.header.stamp),
                plan=self._plan,
            )
        except PromptInputError as err:
            self._skip(err.reason, str(err))
            return
        except ValueError as err:  # an image we cannot decode
            self._skip("bad_image", f"image not drawn: {err}")
            return
        self.pub.publish(numpy_to_image(out, "rgb8", msg.header.stamp, msg.header.frame_id))
        self._published += 1

    def _publish_diagnostics(self) -> None:
        level = diagnostics.WARN if sum(self._skipped.values()) else diagnostics.OK
        values: dict[str, object] = {"published": self._published}
        values.update({f"skipped_{k}": v for k, v in sorted(self._skipped.items())})
        values["last_error"] = self._last_error
        self.diag_pub.publish(
            diagnostics.array(
                self.get_clock().now().to_msg(),
                diagnostics.status("wm_ros: prompt", level, self._last_error or "ok", values),
            )
        )


def main(args: list[str] | None = None) -> int:
    return run_node(PromptNode, "prompt_node", args)


if __name__ == "__main__":
    sys.exit(main())
