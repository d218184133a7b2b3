"""sim_node: the MuJoCo tabletop over ROS 2.

Publishes the camera (`/camera/image_raw`, `/camera/camera_info`), `/joint_states` (by name, with
velocities), the active task's goal image (`/wm/goal_image`, latched), `/diagnostics` and
optionally `/clock`; executes `trajectory_msgs/JointTrajectory` plans from `/wm/plan` under
position control; `~/reset` (std_srvs/Trigger) starts the next seeded episode.

All callbacks run on one thread: MuJoCo's EGL renderer must be used on the thread that made it.
"""

from __future__ import annotations

import sys

from rclpy.node import Node
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

from wm_ros.config import SimNodeConfig
from wm_ros.ros import diagnostics, topics
from wm_ros.ros.conversions import (
    camera_model_to_info,
    numpy_to_image,
    trajectory_msg_to_core,
    vector_to_joint_state,
)
from wm_ros.ros.params import declare_config
from wm_ros.ros.qos import latched_qos
from wm_ros.ros.spin import run_node
from wm_ros.sim import TabletopSim
from wm_ros.trajectory import TrajectoryError, TrajectoryFollower, validate_trajectory


class SimNode(Node):
    """The simulator as a ROS node; parameters map one to one onto SimNodeConfig."""

    def __init__(self, **kwargs) -> None:
        super().__init__("sim", **kwargs)
        self.cfg = declare_config(self, SimNodeConfig)
        self.sim = TabletopSim(self.cfg.sim)
        self.sim.reset(self.cfg.sim.seed)
        self.camera = self.sim.camera_model()
        # Simulated seconds of earlier episodes, so /clock and stamps never go back on reset.
        self._clock_offset = 0.0
        self._follower: TrajectoryFollower | None = None
        self._target = self.sim.joint_positions()
        self._next_camera = 0.0
        self._next_joints = 0.0
        self._plans_accepted = 0
        self._plans_rejected = 0
        self._last_error = ""
        self._wall_start = self.get_clock().now()
        self._sim_elapsed = 0.0

        self.image_pub = self.create_publisher(Image, topics.IMAGE, 5)
        self.info_pub = self.create_publisher(CameraInfo, topics.CAMERA_INFO, 5)
        self.joint_pub = self.create_publisher(JointState, topics.JOINT_STATES, 10)
        self.goal_pub = self.create_publisher(Image, topics.GOAL_IMAGE, latched_qos())
        self.goal_joints_pub = self.create_publisher(
            JointState, topics.GOAL_JOINT_STATES, latched_qos()
        )
        self.diag_pub = self.create_publisher(diagnostics.DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.clock_pub = (
            self.create_publisher(Clock, topics.CLOCK, 10) if self.cfg.publish_clock else None
        )
        self.create_subscription(JointTrajectoryMsg, topics.PLAN, self._on_plan, 10)
        self.create_service(Trigger, "~/reset", self._on_reset)
        self.create_timer(self.cfg.tick_s / self.cfg.real_time_factor, self._on_tick)
        self.create_timer(1.0 / self.cfg.diagnostics_rate_hz, self._publish_diagnostics)
        self._publish_goal()
        self.get_logger().info(
            f"simulating task {self.cfg.sim.task.kind!r}, episode seed {self.sim.episode_seed}, "
            f"joints {list(self.sim.joint_names)}, camera {self.camera.width}x{self.camera.height}"
        )

    # --- time -------------------------------------------------------------------------------
    def _now_seconds(self) -> float:
        """Stamp time in seconds: simulated time with /clock, else the node's (wall) clock."""
        if self.cfg.publish_clock:
            return self._clock_offset + self.sim.time
        return self.get_clock().now().nanoseconds * 1e-9

    def _stamp(self):
        return Time(nanoseconds=round(self._now_seconds() * 1e9)).to_msg()

    # --- main loop ---------------------------------------------------------------------------
    def _on_tick(self) -> None:
        if self._follower is not None:
            self._target = self._follower.target_at(self.sim.time)
            if self._follower.done(self.sim.time):
                self._follower = None
        self.sim.step(self._target, substeps=self.cfg.tick_substeps)
        self._sim_elapsed += self.cfg.tick_s
        if self.clock_pub is not None:
            self.clock_pub.publish(Clock(clock=self._stamp()))
        if self.sim.time + 1e-9 >= self._next_joints:
            self._next_joints = self.sim.time + 1.0 / self.cfg.joint_state_rate_hz
            self._publish_joints()
        if self.sim.time + 1e-9 >= self._next_camera:
            self._next_camera = self.sim.time + 1.0 / self.cfg.camera_rate_hz
            self._publish_camera()

    def _publish_joints(self) -> None:
        msg = vector_to_joint_state(
            self.sim.joint_names,
            self.sim.joint_positions(),
            self.sim.joint_velocities(),
            self._stamp(),
        )
        msg.header.frame_id = self.cfg.base_frame
        self.joint_pub.publish(msg)

    def _publish_camera(self) -> None:
        stamp = self._stamp()
        # Camera info first, so a subscriber that pairs an image with the latest info never
        # sees an image before its intrinsics.
        self.info_pub.publish(camera_model_to_info(self.camera, stamp, self.cfg.camera_frame))
        self.image_pub.publish(
            numpy_to_image(self.sim.render(), "rgb8", stamp, self.cfg.camera_frame)
        )

    def _publish_goal(self) -> None:
        """The goal image and the goal's joint state, with one stamp (that pairs them)."""
        stamp, task = self._stamp(), self.sim.task
        self.goal_pub.publish(numpy_to_image(task.goal_image, "rgb8", stamp, self.cfg.camera_frame))
        self.goal_joints_pub.publish(
            vector_to_joint_state(self.sim.joint_names, task.goal_joints, stamp=stamp)
        )

    # --- commands ----------------------------------------------------------------------------
    def _on_plan(self, msg: JointTrajectoryMsg) -> None:
        try:
            traj = validate_trajectory(
                trajectory_msg_to_core(msg), self.sim.joint_names, self.sim.joint_limits
            )
        except (TrajectoryError, ValueError) as err:
            # The arm holds where it is: a rejected plan never moves it.
            self._plans_rejected += 1
            self._last_error = f"rejected plan: {err}"
            self._follower = None
            self._target = self.sim.joint_positions()
            self.get_logger().error(self._last_error)
            self._publish_diagnostics()
            return
        self._plans_accepted += 1
        self._follower = TrajectoryFollower(
            traj, self._plan_start(msg), self.sim.joint_positions(), received_at=self.sim.time
        )

    def _plan_start(self, msg: JointTrajectoryMsg) -> float:
        """Simulated time at which the plan's time_from_start counts from: its stamp (the
        planner stamps a plan with the image it was planned from, so a plan arriving late is
        followed on its own timeline, from where the arm is to its next point); a zero stamp
        means "now", a future stamp delays the start. Following a late plan from its start
        instead replayed each plan from a pose the arm had left: in the real-time sim graph
        on the 2-core CPU (0.5-0.7 s replans) the reach arm drifted away from its goal."""
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp == 0.0:
            return self.sim.time
        ahead = (stamp - self._now_seconds()) * (
            1.0 if self.cfg.publish_clock else self.cfg.real_time_factor
        )
        return self.sim.time + ahead

    def _on_reset(self, _request: Trigger.Request, response: Trigger.Response):
        self._clock_offset += self.sim.time
        self.sim.reset()
        self._follower = None
        self._target = self.sim.joint_positions()
        self._next_camera = self._next_joints = 0.0
        self._publish_goal()
        response.success = True
        response.message = (
            f"episode seed {self.sim.episode_seed}, task {self.sim.task.kind}, "
            f"goal distance {self.sim.task.distance(self.sim):.4f} m"
        )
        self.get_logger().info(f"reset: {response.message}")
        return response

    def _publish_diagnostics(self) -> None:
        wall = (self.get_clock().now() - self._wall_start).nanoseconds * 1e-9
        task = self.sim.task
        level = diagnostics.WARN if self._last_error else diagnostics.OK
        values = {
            "sim_time_s": self.sim.time,
            "real_time_factor": self._sim_elapsed / wall if wall > 0 else 0.0,
            "episode_seed": self.sim.episode_seed,
            "task": task.kind,
            "goal_distance_m": task.distance(self.sim),
            "success": task.success(self.sim),
            "plans_accepted": self._plans_accepted,
            "plans_rejected": self._plans_rejected,
            "executing_plan": self._follower is not None,
            "last_error": self._last_error,
        }
        self.diag_pub.publish(
            diagnostics.array(
                self._stamp(),
                diagnostics.status(
                    "wm_ros: sim", level, self._last_error or "running", values, "mujoco"
                ),
            )
        )


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, "sim_node", args)


if __name__ == "__main__":
    sys.exit(main())
