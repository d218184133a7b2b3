"""The planner's state between replans, without ROS: recent frames, joints, camera, goal.

planner_node feeds it converted messages and calls `replan(now)`; `wm-ros eval plan` and the demo
call the same methods in-process. Every replan checks its inputs first and raises PlanSkippedError
(with a reason that goes on /diagnostics) rather than plan from stale or inconsistent data:
no camera info / image / joint state / goal yet, an image older than max_observation_age_s, or
a joint state further than max_image_joint_gap_s from the image.

Thread safety: inputs may arrive on other threads while a replan runs (planner_node's
multi-threaded executor). A lock guards the inputs; a replan takes a consistent snapshot of them
under the lock and plans outside it, so the history keeps filling meanwhile.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from wm_ros.camera import CameraModel
from wm_ros.config import PlanningSessionConfig, PromptConfig
from wm_ros.kinematics.fk import ForwardKinematics
from wm_ros.kinematics.urdf import RobotModel, load_urdf
from wm_ros.model.autoencoder import to_uint8_images
from wm_ros.paths import ARM_URDF, share_dir
from wm_ros.planning.actions import JointDeltaActions, ToolDeltaActions
from wm_ros.planning.backends import planning_world
from wm_ros.planning.costs import object_centroid
from wm_ros.planning.planner import (
    ObjectGoal,
    Planner,
    PlanResult,
    PromptDrawer,
    RobotMasker,
    WorldModelRollout,
)

# A goal joint state belongs to the goal image stamped within this many seconds of it.
GOAL_STAMP_TOLERANCE_S = 1e-3


class PlanSkippedError(Exception):
    """No plan this cycle; `reason` is a short key for diagnostics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def resolve_model_dir(name: str) -> Path:
    """A model directory: as given when it exists, else under the package's share directory."""
    path = Path(name)
    if path.is_dir() or path.is_absolute():
        return path
    return share_dir() / path


def to_model_size(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 (bilinear; unchanged when already that size)."""
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


class FrameHistory:
    """The last frames at the model's size, read back at the model's frame period."""

    def __init__(self, count: int, period_s: float, size: int) -> None:
        self.count, self.period, self.size = count, period_s, size
        self._frames: deque[tuple[float, np.ndarray]] = deque(maxlen=8 * count + 8)

    def add(self, image: np.ndarray, stamp: float) -> None:
        if self._frames and stamp <= self._frames[-1][0]:
            self._frames.clear()  # time went backwards (a new episode, a replayed bag)
        self._frames.append((stamp, to_model_size(image, self.size)))

    @property
    def latest_stamp(self) -> float | None:
        return self._frames[-1][0] if self._frames else None

    def frames(self) -> np.ndarray:
        """(count, S, S, 3): the frames nearest to latest - j * period, oldest first; before
        the history is that long, the oldest frame repeats (as training pads its windows)."""
        stamps = np.array([s for s, _ in self._frames])
        wanted = stamps[-1] - self.period * np.arange(self.count)[::-1]
        idx = np.abs(stamps[None, :] - wanted[:, None]).argmin(axis=1)
        return np.stack([self._frames[i][1] for i in idx])

    def clear(self) -> None:
        self._frames.clear()


class PlanningSession:
    """Recent observations + a Planner + a WorldModelRollout (module doc).

    Args:
        cfg: the session settings.
        model: the world model (eval mode, on its device); prior: its action prior or None;
            pose: its goal-pose estimator (wm_ros.planning.goal_pose) or None: with one, a goal
            image without a goal joint state still gets a goal pose (PlannerConfig.goal_pose).
            cfg.backend / precision / cuda_graphs pick what runs it (`self.world`,
            wm_ros.planning.backends); the goal, context and candidates all go through that.
    Raises:
        ValueError: a URDF that cannot be read, a planner horizon not a multiple of the model's, a
            prior or pose estimator over other joints than the robot's, goal_pose "image" without
            a pose estimator.
    """

    def __init__(self, cfg: PlanningSessionConfig, model, prior=None, pose=None) -> None:
        self.cfg, self.model = cfg, model
        self.device = next(model.parameters()).device
        source = cfg.robot_description or cfg.urdf or ARM_URDF
        self.robot: RobotModel = load_urdf(source)
        mc, pc = model.cfg, cfg.planner
        if pc.horizon % mc.horizon:
            raise ValueError(
                f"planner horizon {pc.horizon} is not a multiple of the model's {mc.horizon}"
            )
        if prior is not None and pc.use_prior and prior.cfg.horizon != pc.horizon:
            raise ValueError(
                f"the action prior predicts {prior.cfg.horizon} steps, the planner plans "
                f"{pc.horizon}: turn use_prior off or plan the model's horizon"
            )
        self.joint_names = self.robot.actuated_joint_names
        joints = self.robot.actuated_joints
        limits = [np.array([getattr(j, k) for j in joints]) for k in ("lower", "upper", "velocity")]
        steps = {"horizon": pc.horizon, "dt": pc.dt, "knots": pc.knots, "device": self.device}
        if pc.tool_axes:
            tool = PromptConfig()
            fk = ForwardKinematics(self.robot)
            self.actions = ToolDeltaActions(
                fk,
                *limits,
                tool_link=tool.tool_link,
                tool_offset=tool.tool_offset,
                axes=pc.tool_axes,
                **steps,
            )
        else:
            self.actions = JointDeltaActions(self.joint_names, *limits, joints=pc.joints, **steps)
        if prior is not None and tuple(prior.cfg.joint_names) not in ((), self.joint_names):
            raise ValueError(
                f"the action prior covers joints {prior.cfg.joint_names}, the robot "
                f"{self.joint_names}"
            )
        if pose is not None and tuple(pose.cfg.joint_names) not in ((), self.joint_names):
            raise ValueError(
                f"the pose estimator covers joints {pose.cfg.joint_names}, the robot "
                f"{self.joint_names}"
            )
        if pose is None and pc.goal_pose == "image":
            raise ValueError(
                "planner.goal_pose 'image' needs the model's pose estimator (pose.safetensors; "
                "`wm-ros train --stage pose`)"
            )
        self.pose = pose if pc.goal_pose != "given" else None
        if self.pose is not None:
            _check_pose_skeleton(self.pose.cfg, self.robot)
        self.planner = Planner(pc, self.actions, prior=prior)
        self.world = planning_world(model, cfg, resolve_model_dir(cfg.model) / "onnx")
        self.history = FrameHistory(mc.memory + mc.context, pc.dt, mc.image_size)
        self.rollout: WorldModelRollout | None = None
        self.masker: RobotMasker | None = None  # with cost.robot_mask_px, once a camera is set
        self._goal_joints: tuple[np.ndarray, float | None] | None = None  # the goal's pose
        self._goal_keypoints: np.ndarray | None = None  # (K, 2) found in the goal image
        self._goal_pose_estimate: np.ndarray | None = None  # fitted to them (needs the camera)
        self._goal_pose_residual: float | None = None  # px, how well it fits them
        self._pose_renderer = None  # the fit's keypoint projection, on the CPU
        self._goal_stamp: float | None = None
        self.camera: CameraModel | None = None
        self._joints: tuple[np.ndarray, float] | None = None
        self._goal: torch.Tensor | None = None
        self._goal_image: np.ndarray | None = None  # at the model's size
        self._objects: ObjectGoal | None = None  # the object term, with cost.object_goal
        self._goal_generation = 0  # bumped by every set_goal: a replan spanning one is dropped
        self._last_plan_stamp: float | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ inputs

    def set_camera(self, width: int, height: int, k: Sequence[float], d: Sequence[float]) -> None:
        """CameraInfo values; the prompts are drawn at the model's size from them.

        Raises:
            PlanSkippedError("bad_camera_info"): an unusable K (the previous camera is dropped).
        """
        try:
            cam = CameraModel.from_pose(
                width,
                height,
                np.asarray(k, dtype=np.float64),
                translation=self.cfg.camera_translation,
                quat_xyzw=self.cfg.camera_quat_xyzw,
                d=np.asarray(d, dtype=np.float64),
            )
        except ValueError as err:
            with self._lock:
                self.camera, self.rollout = None, None
            raise PlanSkippedError("bad_camera_info", f"camera info unusable: {err}") from None
        s = self.model.cfg.image_size
        cam = cam.with_size(s, s)
        if self.camera is not None and np.array_equal(cam.k, self.camera.k):
            return
        from wm_ros.prompts import PromptRenderer

        pcfg = PromptConfig(image_width=s, image_height=s, channels=self.model.cfg.prompt_channels)
        renderer = (
            PromptRenderer(self.robot, cam, pcfg, device=str(self.device))
            if self.model.cfg.conditioning == "prompt"
            else None
        )
        rollout = WorldModelRollout(
            self.world,
            renderer,
            self.joint_names,
            sampler_steps=self.cfg.planner.sampler_steps,
            seed=self.cfg.planner.seed,
            noise_scale=self.cfg.planner.sampler_noise_scale,
        )
        masker = None
        mask_px = self.cfg.planner.cost.robot_mask_px
        if mask_px > 0:
            prompts = rollout.prompts  # the model's own drawings: the candidates are drawn once
            if prompts is None:  # a joint-conditioned model: only the drawn pixels matter
                grey = PromptRenderer(self.robot, cam, pcfg.replace(channels=1), str(self.device))
                prompts = PromptDrawer(grey, self.joint_names)
            masker = RobotMasker(prompts, mask_px, self.model.latent_shape()[1:])
        pose_renderer = None
        if self.pose is not None:  # its own renderer: the fit runs in the caller's thread
            pose_renderer = PromptRenderer(self.robot, cam, pcfg.replace(channels=1))
        with self._lock:
            self.camera, self.rollout, self.masker = cam, rollout, masker
            self._pose_renderer, self._goal_pose_estimate = pose_renderer, None
            self._goal_pose_residual = None
        self._fit_goal_pose()

    def add_image(self, image: np.ndarray, stamp: float) -> None:
        """(H, W, 3) uint8 RGB camera frame with its stamp, s."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PlanSkippedError("bad_image", f"expected (H, W, 3) uint8 RGB, got {image.shape}")
        with self._lock:
            self.history.add(image, stamp)

    def set_joints(self, names: Sequence[str], positions: Sequence[float], stamp: float) -> None:
        """A joint state, matched by name (extra joints ignored).

        Raises:
            PlanSkippedError("joint_state_mismatch"): a robot joint missing from the message.
        """
        joints = self._by_name(names, positions, "joint_state_mismatch", "joint state")
        with self._lock:
            self._joints = (joints, stamp)

    def _by_name(self, names, positions, reason: str, what: str) -> np.ndarray:
        """(J,) positions in the robot's joint order, matched by name (extras ignored)."""
        lookup = dict(zip(names, positions, strict=False))
        missing = [n for n in self.joint_names if n not in lookup]
        if missing:
            raise PlanSkippedError(reason, f"{what} lacks joints {missing}")
        return np.array([lookup[n] for n in self.joint_names], dtype=np.float64)

    def set_goal(self, image: np.ndarray, stamp: float | None = None) -> None:
        """The goal image (any size, RGB uint8) and its stamp (s, None in-process); a new goal
        forgets the previous plan."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise PlanSkippedError("bad_goal", f"expected (H, W, 3) uint8 RGB, got {image.shape}")
        goal = to_model_size(image, self.model.cfg.image_size)
        if self._goal_image is not None and np.array_equal(goal, self._goal_image):
            return  # the same goal again (a re-sent latched message): keep planning toward it
        with torch.no_grad():
            latent = self.world.encode_frames(goal[None])[0]
        keypoints = None if self.pose is None else self.pose.keypoints(goal[None])[0]
        objects, cost = None, self.cfg.planner.cost
        if cost.object_goal > 0:
            image = torch.as_tensor(np.array(goal), device=self.device).permute(2, 0, 1)
            centre, found = object_centroid(image[None].float() / 255.0, cost)
            objects = ObjectGoal(self.world.decode, centre[0], cost) if found[0] else None
        with self._lock:
            self._goal_image, self._goal, self._goal_stamp = goal, latent, stamp
            self._objects = objects
            self._goal_keypoints, self._goal_pose_estimate = keypoints, None
            self._goal_pose_residual = None
            self._goal_generation += 1
            self.planner.reset()
            self._last_plan_stamp = None
        self._fit_goal_pose()

    def _fit_goal_pose(self) -> None:
        """Fit the goal pose to the goal image's keypoints once both they and the camera are
        known (wm_ros.planning.goal_pose); a goal or camera that changes meanwhile wins. A
        pose that fits them worse than planner.goal_pose_max_fit_px is not used."""
        with self._lock:
            renderer, keypoints = self._pose_renderer, self._goal_keypoints
            generation = self._goal_generation
            if renderer is None or keypoints is None or self._goal_pose_residual is not None:
                return
        q, residual = self.pose.fit(keypoints[None], renderer)
        fits = residual[0] <= self.cfg.planner.goal_pose_max_fit_px  # else: no arm it can fit
        with self._lock:
            if generation == self._goal_generation and renderer is self._pose_renderer:
                self._goal_pose_estimate = q[0] if fits else None
                self._goal_pose_residual = float(residual[0])

    def set_goal_joints(
        self, names: Sequence[str], positions: Sequence[float], stamp: float | None = None
    ) -> None:
        """The goal's joint state, matched by name (optional: the joint-goal cost and the
        goal's robot mask use it). It counts only for the goal image with the same stamp
        (within GOAL_STAMP_TOLERANCE_S; both None in-process), whichever of the two arrives
        first, so a pose never meets another goal's image.

        Raises:
            PlanSkippedError("goal_joint_mismatch"): a robot joint missing from the message.
        """
        q = self._by_name(names, positions, "goal_joint_mismatch", "goal joint state")
        if not np.all(np.isfinite(q)):
            raise PlanSkippedError("goal_joint_mismatch", "goal joint positions are not finite")
        with self._lock:
            self._goal_joints = (q, stamp)
            self.planner.reset()

    def goal_joints(self) -> np.ndarray | None:
        """(J,) the goal pose of the current goal image, or None: the goal joint state sent
        with it, or the pose estimated from it (PlannerConfig.goal_pose says which)."""
        source = self.cfg.planner.goal_pose
        given = self._given_goal_joints() if source != "image" else None
        if given is not None or source == "given":
            return given
        return self._goal_pose_estimate

    def goal_pose_status(self) -> dict:
        """For diagnostics: where the goal pose comes from ("given", "image", "unfit": read off
        the image but fitting worse than planner.goal_pose_max_fit_px, so not used, or "none")
        and, for one read off the image, the mean distance (px) of its keypoints to those
        found."""
        with self._lock:
            source = self.cfg.planner.goal_pose
            if source != "image" and self._given_goal_joints() is not None:
                return {"goal_pose": "given", "goal_pose_fit_px": None}
            fit = self._goal_pose_residual if self.pose is not None else None
            if fit is None:
                return {"goal_pose": "none", "goal_pose_fit_px": None}
            used = self._goal_pose_estimate is not None
            return {"goal_pose": "image" if used else "unfit", "goal_pose_fit_px": fit}

    def goal_object_status(self) -> dict:
        """For diagnostics: whether the cost's object term is in use ("off": object_goal is 0;
        "found"; "not_found": no pixel of the goal image has the object's colour, so the term
        drops out) and where the object is in the goal image, px (row, col) at the model's
        size."""
        with self._lock:
            if self.cfg.planner.cost.object_goal <= 0:
                return {"goal_object": "off", "goal_object_px": None}
            if self._objects is None:
                status = "not_found" if self._goal is not None else "no_goal"
                return {"goal_object": status, "goal_object_px": None}
            return {"goal_object": "found", "goal_object_px": self._objects.goal_px.tolist()}

    def _given_goal_joints(self) -> np.ndarray | None:
        """The goal joint state that belongs to the current goal image, or None."""
        if self._goal_joints is None or self._goal is None:
            return None
        q, stamp = self._goal_joints
        if (stamp is None) != (self._goal_stamp is None):
            return None
        if stamp is not None and abs(stamp - self._goal_stamp) > GOAL_STAMP_TOLERANCE_S:
            return None
        return q

    def reset(self) -> None:
        """A new episode: no frames, no previous plan (the goal is kept until replaced)."""
        with self._lock:
            self.history.clear()
            self._goal_generation += 1  # a replan still running belongs to the old episode
            self.planner.reset()
            self._last_plan_stamp = None

    # ------------------------------------------------------------------ planning

    def check(self, now: float) -> tuple[np.ndarray, float]:
        """The joints and image stamp to plan from, or PlanSkippedError saying what is wrong
        (the caller holds the lock, or no other thread feeds the session)."""
        if self.rollout is None:
            raise PlanSkippedError("no_camera_info", "no usable camera info yet")
        stamp = self.history.latest_stamp
        if stamp is None:
            raise PlanSkippedError("no_image", "no camera image yet")
        if self._joints is None:
            raise PlanSkippedError("no_joint_state", "no joint state yet")
        if self._goal is None:
            raise PlanSkippedError("no_goal", "no goal image yet")
        age = now - stamp
        if age > self.cfg.max_observation_age_s:
            raise PlanSkippedError(
                "stale_image",
                f"latest image is {age:.3f} s old (> {self.cfg.max_observation_age_s})",
            )
        q, joint_stamp = self._joints
        gap = abs(joint_stamp - stamp)
        if gap > self.cfg.max_image_joint_gap_s:
            raise PlanSkippedError(
                "image_joint_gap",
                f"joint state {gap:.3f} s from the image (> {self.cfg.max_image_joint_gap_s})",
            )
        return q, stamp

    def _inputs(self, now: float) -> dict:
        """What a replan at `now` plans from, read in one consistent snapshot (the inputs keep
        arriving while it plans), with the model's context set from the frames: q, stamp,
        goal (latent), goal_joints (tensor or None), masker, objects (the object term or None),
        generation, rollout, and elapsed: control steps since the last plan's image (1 when
        none)."""
        with self._lock:
            q, stamp = self.check(now)
            model_rollout, goal, generation = self.rollout, self._goal, self._goal_generation
            masker, goal_q, objects = self.masker, self.goal_joints(), self._objects
            frames = self.history.frames()
            elapsed = 1
            if self._last_plan_stamp is not None:  # warm start from where the last plan is now
                elapsed = max(1, round((stamp - self._last_plan_stamp) / self.cfg.planner.dt))
        assert model_rollout is not None and goal is not None  # check() made sure
        model_rollout.set_context(frames)
        return {
            "q": q,
            "stamp": stamp,
            "goal": goal,
            "goal_joints": None if goal_q is None else torch.as_tensor(goal_q, dtype=torch.float32),
            "masker": masker,
            "objects": objects,
            "generation": generation,
            "rollout": model_rollout,
            "elapsed": elapsed,
        }

    def replan(self, now: float, rollout=None, imagine: bool = True) -> tuple[PlanResult, float]:
        """One replan; returns the plan and the stamp of the image it was made from (the
        plan's times count from there). `rollout` replaces the world model as the scorer of
        candidates (the oracle planner's simulator); the context still comes from the frames.
        imagine: also return the best plan's imagined latents (one more rollout).
        """
        inp = self._inputs(now)
        result = self.planner.plan(
            inp["q"],
            inp["rollout"] if rollout is None else rollout,
            inp["goal"],
            context=inp["rollout"].context,
            goal_joints=inp["goal_joints"],
            elapsed_steps=inp["elapsed"],
            imagine=imagine,
            masker=inp["masker"],
            objects=inp["objects"],
        )
        with self._lock:
            if inp["generation"] != self._goal_generation:
                # The goal (or episode) changed meanwhile: neither publish nor warm start this.
                self.planner.reset()
                raise PlanSkippedError("goal_changed", "the goal changed during the replan")
            self._last_plan_stamp = inp["stamp"]
        return result, inp["stamp"]

    def score(self, now: float, params: torch.Tensor, rollout=None) -> torch.Tensor:
        """The costs (N,) a replan at `now` would give candidate parameters (N, P, D), from
        the same inputs and checks as replan(); `rollout` as in replan(). For comparing
        scorers on the same candidates (benchmarks/plan_rank_probe.py)."""
        inp = self._inputs(now)
        return self.planner.score(
            params,
            inp["q"],
            inp["rollout"] if rollout is None else rollout,
            inp["goal"],
            goal_joints=inp["goal_joints"],
            masker=inp["masker"],
            objects=inp["objects"],
        )

    @torch.no_grad()
    def imagined_frames(self, result: PlanResult) -> np.ndarray | None:
        """(H, S, S, 3) uint8: the best plan's imagined latents decoded (None when the replan
        was not asked to imagine)."""
        if result.latents is None:
            return None
        return to_uint8_images(self.world.decode(result.latents))


def _check_pose_skeleton(cfg, robot: RobotModel) -> None:
    """Raise ValueError unless the pose estimator finds the keypoints of the robot's prompt
    skeleton (its fit projects them)."""
    from wm_ros.prompts.renderer import prompt_skeleton

    names = prompt_skeleton(robot, PromptConfig()).keypoint_names
    if tuple(names) != tuple(cfg.keypoints):
        raise ValueError(
            f"the pose estimator finds keypoints {cfg.keypoints}, the robot's skeleton has {names}"
        )


def load_planning_session(
    cfg: PlanningSessionConfig, directory: str | Path, device: str | torch.device = "cpu"
) -> PlanningSession:
    """A session on the model directory's world model, with its action prior when cfg uses one
    and its goal-pose estimator when the cost reads a goal pose that may come from the image.

    Raises:
        CheckpointError: a model directory, prior or estimator that cannot be loaded.
        ValueError: settings the model does not fit (PlanningSession).
    """
    from wm_ros.model import load_model
    from wm_ros.planning.goal_pose import has_pose_estimator, load_pose_estimator
    from wm_ros.planning.prior import has_prior, load_prior

    pc = cfg.planner
    model = load_model(directory, device)
    prior = load_prior(directory, device) if pc.use_prior and has_prior(directory) else None
    reads_pose = pc.cost.joint_goal > 0 or pc.cost.robot_mask_px > 0
    pose = None
    if pc.goal_pose == "image" or (
        pc.goal_pose == "auto" and reads_pose and has_pose_estimator(directory)
    ):
        pose = load_pose_estimator(directory, device)
    return PlanningSession(cfg, model, prior, pose)
