"""planner_node: closed-loop planning through the world model, as a ROS 2 lifecycle node.

configure: reads its parameters (PlanningSessionConfig, one to one; `config/planner.yaml`),
loads the model (and its action prior) and builds the planning session; a missing or broken
model fails the transition with the reason logged. activate: subscribes `/camera/image_raw`,
`/camera/camera_info`, `/joint_states`, `/wm/goal_image` (latched), optionally the goal's
joint state `/wm/goal_joint_states` (latched, stamped like its image), and replans at
`replan_rate_hz` on a thread of its own, publishing `/wm/plan` (JointTrajectory stamped with
the image it was planned from), `/wm/imagined` (goal | the best candidate's imagined frames) and
`/diagnostics`.
Nothing is planned from stale or inconsistent inputs (wm_ros.planning.session); a replan that
takes longer than `replan_deadline_s` is not published and counted as missed.

With `autostart` true (the default) the node configures and activates itself at start, so it
runs without a lifecycle manager (`ros2 run wm_ros planner_node`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter

import numpy as np
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from sensor_msgs.msg import CameraInfo, Image, JointState
from trajectory_msgs.msg import JointTrajectory as JointTrajectoryMsg

from wm_ros.config import PLANNER_NODE_ONLY, PlanningSessionConfig
from wm_ros.eval.images import grid, labelled_tile
from wm_ros.planning.session import (
    PlanningSession,
    PlanSkippedError,
    resolve_model_dir,
    to_model_size,
)
from wm_ros.ros import diagnostics, topics
from wm_ros.ros.conversions import (
    core_to_trajectory_msg,
    image_to_numpy,
    numpy_to_image,
    time_to_seconds,
    to_rgb,
)
from wm_ros.ros.params import declare_config
from wm_ros.ros.qos import latched_qos
from wm_ros.ros.spin import run_node
from wm_ros.types import JointTrajectory

NODE = "planner_node"


class PlannerNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__(NODE, **kwargs)
        self.cfg = declare_config(self, PlanningSessionConfig)
        autostart, deadline = PLANNER_NODE_ONLY  # the node's own, beside the session's
        self.autostart = self.declare_parameter(autostart, True).value
        self.deadline = self.declare_parameter(deadline, 0.0).value
        self.session: PlanningSession | None = None
        self._subs: list = []
        self._goal_image: np.ndarray | None = None
        self._timer = None
        self._worker: threading.Thread | None = None
        self._wake = threading.Event()  # set by the replan timer
        self._stopping = threading.Event()
        self._counts: Counter[str] = Counter()
        self._last = {"error": "", "latency_ms": 0.0, "cost": float("nan"), "age_s": 0.0}
        self.diag_pub = self.create_publisher(diagnostics.DiagnosticArray, topics.DIAGNOSTICS, 10)
        self.plan_pub = self.create_lifecycle_publisher(JointTrajectoryMsg, topics.PLAN, 5)
        self.imagined_pub = self.create_lifecycle_publisher(Image, topics.IMAGINED, 2)
        self.create_timer(1.0, self._publish_diagnostics)
        if self.autostart:
            self.trigger_configure()
            if self.session is not None:
                self.trigger_activate()

    # ------------------------------------------------------------------ lifecycle

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        from wm_ros.model import CheckpointError
        from wm_ros.planning.session import load_planning_session
        from wm_ros.train import resolve_device

        directory = resolve_model_dir(self.cfg.model)
        try:
            device = resolve_device(self.cfg.device)
            self.session = load_planning_session(self.cfg, directory, device)
        except (CheckpointError, ValueError, RuntimeError) as err:
            self._last["error"] = f"configure failed: {err}"
            self.get_logger().error(self._last["error"])
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(
            f"model {directory} on {device}; planning {len(self.session.joint_names)} joints, "
            f"{self.cfg.planner.cem.num_samples} candidates x {self.cfg.planner.horizon} steps"
        )
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._subs = [
            self.create_subscription(Image, topics.IMAGE, self._on_image, 5),
            self.create_subscription(CameraInfo, topics.CAMERA_INFO, self._on_info, 5),
            self.create_subscription(JointState, topics.JOINT_STATES, self._on_joints, 20),
            self.create_subscription(Image, topics.GOAL_IMAGE, self._on_goal, latched_qos()),
            self.create_subscription(
                JointState, topics.GOAL_JOINT_STATES, self._on_goal_joints, latched_qos()
            ),
        ]
        # A replan takes long on a CPU: it runs on a thread of its own, woken by the timer (on
        # the node's clock), while the executor's thread keeps filling the history (the
        # session locks it). As a callback on rclpy's multi-threaded executor it had the
        # executor spin without waiting while it ran, starving it of the GIL: 2-4 s replans
        # in the sim graph on the 2-core CPU that took 0.7 s alone, most of them dropped.
        self._stopping.clear()
        self._worker = threading.Thread(target=self._plan_loop, name="replan", daemon=True)
        self._worker.start()
        self._timer = self.create_timer(1.0 / self.cfg.replan_rate_hz, self._wake.set)
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        self.session = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_io()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self) -> None:
        self._stop_io()  # no replan may publish through a destroyed node
        super().destroy_node()

    def _stop_io(self) -> None:
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None
        if self._worker is not None:  # the replan in flight finishes first
            self._stopping.set()
            self._wake.set()
            self._worker.join()
            self._worker = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    # ------------------------------------------------------------------ inputs

    def _skip(self, err: PlanSkippedError) -> None:
        self._counts[f"skipped_{err.reason}"] += 1
        self._last["error"] = str(err)
        self.get_logger().warning(str(err), throttle_duration_sec=5.0)

    def _on_info(self, msg: CameraInfo) -> None:
        try:
            self.session.set_camera(msg.width, msg.height, msg.k, msg.d)
        except PlanSkippedError as err:
            self._skip(err)

    def _on_image(self, msg: Image) -> None:
        try:
            image = to_rgb(image_to_numpy(msg), msg.encoding)
            self.session.add_image(image, time_to_seconds(msg.header.stamp))
        except PlanSkippedError as err:
            self._skip(err)
        except ValueError as err:
            self._skip(PlanSkippedError("bad_image", f"image not used: {err}"))

    def _on_joints(self, msg: JointState) -> None:
        try:
            self.session.set_joints(msg.name, msg.position, time_to_seconds(msg.header.stamp))
        except PlanSkippedError as err:
            self._skip(err)

    def _on_goal(self, msg: Image) -> None:
        try:
            goal = to_rgb(image_to_numpy(msg), msg.encoding)
            self.session.set_goal(goal, time_to_seconds(msg.header.stamp))
            self._goal_image = goal
        except PlanSkippedError as err:
            self._skip(err)
        except ValueError as err:
            self._skip(PlanSkippedError("bad_goal", f"goal image not used: {err}"))

    def _on_goal_joints(self, msg: JointState) -> None:
        try:
            stamp = time_to_seconds(msg.header.stamp)
            self.session.set_goal_joints(msg.name, msg.position, stamp)
        except PlanSkippedError as err:
            self._skip(err)

    # ------------------------------------------------------------------ planning

    def _plan_loop(self) -> None:
        """The replan thread: one replan per timer tick; ticks during a replan merge."""
        while True:
            self._wake.wait()
            if self._stopping.is_set():
                return
            self._wake.clear()
            self._replan()

    def _replan(self) -> None:
        if self.session is None:
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        start = time.perf_counter()
        try:
            # Imagining the best plan costs one more rollout: only for someone watching.
            watched = self.imagined_pub.get_subscription_count() > 0
            result, stamp = self.session.replan(now, imagine=watched)
        except PlanSkippedError as err:
            self._skip(err)
            return
        except Exception as err:  # noqa: BLE001 - a replan failure must not kill the node
            self._counts["errors"] += 1
            self._last["error"] = f"replan failed: {type(err).__name__}: {err}"
            self.get_logger().error(self._last["error"], throttle_duration_sec=5.0)
            return
        elapsed = time.perf_counter() - start
        deadline = self.deadline or 1.0 / self.cfg.replan_rate_hz
        self._last.update(latency_ms=elapsed * 1e3, cost=result.cost, age_s=now - stamp)
        if elapsed > deadline:
            self._counts["skipped_deadline_missed"] += 1
            self._last["error"] = f"replan took {elapsed:.3f} s (> {deadline:.3f} s): not published"
            self.get_logger().warning(self._last["error"], throttle_duration_sec=5.0)
            return
        traj = JointTrajectory(self.session.joint_names, result.times, result.targets)
        self.plan_pub.publish(core_to_trajectory_msg(traj, stamp))
        self._counts["published"] += 1
        if result.latents is not None:
            self.imagined_pub.publish(numpy_to_image(self._imagined(result), "rgb8", stamp))

    def _imagined(self, result) -> np.ndarray:
        frames = self.session.imagined_frames(result)  # (H, S, S, 3)
        tiles = [labelled_tile(f, f"+{t:.1f}s") for f, t in zip(frames, result.times, strict=True)]
        if self._goal_image is not None:
            goal = to_model_size(self._goal_image, frames.shape[1])
            tiles.insert(0, labelled_tile(goal, "goal"))
        return grid([tiles])

    def _publish_diagnostics(self) -> None:
        skipped = sum(v for k, v in self._counts.items() if k.startswith("skipped_"))
        level = diagnostics.WARN if skipped or self._counts["errors"] else diagnostics.OK
        if self.session is None:
            level = diagnostics.ERROR
        values: dict[str, object] = dict(sorted(self._counts.items()))
        values.update(
            latency_ms=round(self._last["latency_ms"], 1),
            cost=self._last["cost"],
            observation_age_s=round(self._last["age_s"], 3),
            last_error=self._last["error"],
        )
        message = self._last["error"] or "ok"
        if self.session is not None:
            fit = self.session.goal_pose_status()
            values.update(goal_pose=fit["goal_pose"])
            if fit["goal_pose_fit_px"] is not None:
                values.update(goal_pose_fit_px=round(fit["goal_pose_fit_px"], 2))
            if fit["goal_pose"] == "unfit":  # planning on without a goal pose
                level = diagnostics.ERROR if level == diagnostics.ERROR else diagnostics.WARN
                message = "no arm pose fits the goal image; planning without the joint-goal term"
            found = self.session.goal_object_status()
            values.update(goal_object=found["goal_object"])
            if found["goal_object"] == "not_found":  # planning on without the object term
                level = diagnostics.ERROR if level == diagnostics.ERROR else diagnostics.WARN
                message = "no object of cost.object_rgb in the goal image; planning without it"
        self.diag_pub.publish(
            diagnostics.array(
                self.get_clock().now().to_msg(),
                diagnostics.status("wm_ros: planner", level, message, values),
            )
        )


def main(args: list[str] | None = None) -> int:
    # The executor's thread runs the inputs and the timers; replans run on the node's own.
    return run_node(PlannerNode, NODE, args)


if __name__ == "__main__":
    sys.exit(main())
