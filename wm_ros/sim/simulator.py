"""TabletopSim: the ROS-free MuJoCo tabletop simulator (arm + puck + fixed camera + task).

Control: one position target per arm joint. Like a robot's joint controller, the servo setpoint
moves towards the target no faster than the URDF velocity limits (updated every
`SETPOINT_PERIOD_STEPS` physics steps) and stiff, damped position servos (effort-limited as the
URDF says) track the setpoint. `step()` advances one control step (`SimConfig.control_dt`) by
default.

Rendering is offscreen (MUJOCO_GL=egl must be set before mujoco is first imported; importing
`wm_ros.sim` first sets it when unset). An OpenGL context belongs to the thread that made it
current, so all rendering runs on one render thread owned by the simulator: `render()` and
`segmentation()` may be called from any thread (one at a time), and `close()` frees the context
on the thread that made it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import mujoco
import numpy as np

from wm_ros.camera import CameraModel
from wm_ros.config import SimConfig
from wm_ros.sim.scene import (
    ARM_LABEL_START,
    BACKGROUND_LABEL,
    PUCK_HALF_HEIGHT,
    PUCK_LABEL,
    PUCK_REGION_RADIUS_M,
    PUCK_REGION_Y_M,
    START_CLEARANCE_M,
    build_scene,
    fovy_focal_px,
    tool_in_view,
)
from wm_ros.sim.tasks import Task, make_task

log = logging.getLogger(__name__)
_T = TypeVar("_T")

_STATE_SPEC = int(mujoco.mjtState.mjSTATE_INTEGRATION)

# Physics steps between updates of the rate-limited servo setpoint (10 ms at physics_dt = 2 ms).
SETPOINT_PERIOD_STEPS = 5


class TabletopSim:
    """MuJoCo tabletop: a URDF arm, a puck on a table, a fixed camera and the active task.

    Attributes:
        cfg: the configuration it was built from.
        model, data: the MuJoCo model and data (read them; change state through the methods).
        joint_names: (J,) arm joint names, model order.
        joint_limits: (J, 2) position limits, rad.
        velocity_limits: (J,) rad/s (URDF <limit velocity>).
        link_names: arm links (URDF links) in model order; label of link i = ARM_LABEL_START + i.
        link_labels: link name -> segmentation label.
        episode_seed: seed of the current episode.
        task: the current episode's task (built by `reset`).
    """

    def __init__(self, cfg: SimConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else SimConfig()
        self._scene = build_scene(self.cfg)
        self.model = self._scene.model
        self.data = mujoco.MjData(self.model)
        self.joint_names = self._scene.joint_names
        self.joint_limits = self._scene.joint_limits.copy()
        self.velocity_limits = self._scene.velocity_limits.copy()
        self.link_names = self._scene.link_names
        self.link_labels = {n: ARM_LABEL_START + i for i, n in enumerate(self.link_names)}
        self._mj_state_size = mujoco.mj_stateSize(self.model, _STATE_SPEC)
        self._target = np.zeros(len(self.joint_names))
        self._scratch = mujoco.MjData(self.model)  # kinematics queries that leave `data` alone
        # One thread creates, uses and frees the OpenGL renderer (created on first use).
        self._render_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-render")
        self._renderer: mujoco.Renderer | None = None
        self._render_lock = threading.Lock()
        self._closed = False
        self.episode_seed = self.cfg.seed
        self.task: Task
        self.reset(self.cfg.seed)

    # ------------------------------------------------------------------ episodes

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: seeded start pose and puck, then the task's goal.

        Args:
            seed: the episode's seed; None takes the one after the current episode's.
        Deterministic: the same seed gives the same start state, goal state and goal image.
        """
        seed = self.episode_seed + 1 if seed is None else int(seed)
        self.episode_seed = seed
        rng = np.random.default_rng(seed)
        self._place_start(rng)
        self.task = make_task(self, self.cfg.task, rng)
        log.debug("episode %d: %s task ready", seed, self.cfg.task.kind)

    def _place_start(self, rng: np.random.Generator) -> None:
        """Random arm pose (pusher in view, clear of the puck) and puck position; settle."""
        mujoco.mj_resetData(self.model, self.data)
        lo, hi = self.joint_limits[:, 0], self.joint_limits[:, 1]
        for _ in range(1000):
            radius = rng.uniform(*PUCK_REGION_RADIUS_M)
            angle = rng.uniform(-1.0, 1.0)
            puck = np.array([radius * np.cos(angle), radius * np.sin(angle)])
            if not PUCK_REGION_Y_M[0] <= puck[1] <= PUCK_REGION_Y_M[1]:
                continue
            q = rng.uniform(0.8 * lo, 0.8 * hi)
            q[0] = rng.uniform(-1.0, 1.0)
            tool = self.tool_position_at(q)
            if not tool_in_view(tool):
                continue
            if np.linalg.norm(tool[:2] - puck) >= START_CLEARANCE_M + self.puck_radius:
                break
        else:  # pragma: no cover - the regions above overlap widely
            raise RuntimeError("could not sample a start state")
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._scene.qpos_adr] = q
        adr = self._scene.puck_qpos_adr
        self.data.qpos[adr : adr + 3] = (*puck, PUCK_HALF_HEIGHT)
        self.data.qpos[adr + 3 : adr + 7] = (1.0, 0.0, 0.0, 0.0)
        self.data.ctrl[:] = q
        self._target = q.copy()
        mujoco.mj_forward(self.model, self.data)
        # Let the puck's contact settle, then call that time zero.
        mujoco.mj_step(self.model, self.data, self.cfg.substeps)
        self.data.time = 0.0
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ physics

    @property
    def time(self) -> float:
        """Simulated time since the episode started, seconds."""
        return float(self.data.time)

    def step(self, target: np.ndarray | None = None, substeps: int | None = None) -> None:
        """Set the joint position target and advance the physics.

        Args:
            target: (J,) joint positions, rad, clipped to the joint limits; None keeps the
                current target.
            substeps: physics steps to take; default `cfg.substeps` (one control step).
        Raises:
            ValueError: wrong target shape, a non-finite target, or substeps < 0.
        """
        if target is not None:
            target = np.asarray(target, dtype=np.float64)
            if target.shape != (len(self.joint_names),):
                raise ValueError(
                    f"target must have shape ({len(self.joint_names)},), got {target.shape}"
                )
            if not np.all(np.isfinite(target)):
                raise ValueError(f"target must be finite, got {target}")
            self._target = np.clip(target, self.joint_limits[:, 0], self.joint_limits[:, 1])
        n = self.cfg.substeps if substeps is None else int(substeps)
        if n < 0:
            raise ValueError(f"substeps must be >= 0, got {n}")
        dt = self.model.opt.timestep
        while n > 0:
            chunk = min(n, SETPOINT_PERIOD_STEPS)
            max_move = self.velocity_limits * (chunk * dt)
            setpoint = self.data.ctrl
            setpoint += np.clip(self._target - setpoint, -max_move, max_move)
            mujoco.mj_step(self.model, self.data, chunk)
            n -= chunk
        # mj_step leaves body poses at the state before its last integration; recompute them so
        # that positions and images always match qpos (and a restored state renders the same).
        mujoco.mj_forward(self.model, self.data)

    def target(self) -> np.ndarray:
        """(J,) the current joint position target, rad (the servo setpoint ramps towards it)."""
        return self._target.copy()

    def joint_positions(self) -> np.ndarray:
        """(J,) arm joint positions, rad, in `joint_names` order."""
        return self.data.qpos[self._scene.qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        """(J,) arm joint velocities, rad/s."""
        return self.data.qvel[self._scene.dof_adr].copy()

    @property
    def state_size(self) -> int:
        """Length of the `get_state` vector."""
        return self._mj_state_size + len(self.joint_names)

    def get_state(self) -> np.ndarray:
        """(state_size,) full state: MuJoCo's integration state (time, qpos, qvel, servo
        setpoints, warm start, ...) followed by the (J,) joint target."""
        state = np.empty(self.state_size)
        mujoco.mj_getState(self.model, self.data, state[: self._mj_state_size], _STATE_SPEC)
        state[self._mj_state_size :] = self._target
        return state

    def set_state(self, state: np.ndarray) -> None:
        """Restore a state from `get_state` (kinematics are recomputed)."""
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (self.state_size,):
            raise ValueError(f"state must have shape ({self.state_size},), got {state.shape}")
        mujoco.mj_setState(self.model, self.data, state[: self._mj_state_size], _STATE_SPEC)
        self._target = state[self._mj_state_size :].copy()
        mujoco.mj_forward(self.model, self.data)

    def tool_position(self) -> np.ndarray:
        """(3,) the tool point (pusher tip), base frame, metres."""
        return self.data.xpos[self._scene.tool_body_id].copy()

    def tool_position_at(self, q: np.ndarray) -> np.ndarray:
        """(3,) the tool point for joint positions `q` (J,), without touching the episode."""
        scratch = self._scratch
        scratch.qpos[self._scene.qpos_adr] = q
        mujoco.mj_kinematics(self.model, scratch)
        return scratch.xpos[self._scene.tool_body_id].copy()

    def tool_kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool point and its Jacobian at joint positions `q` (J,), without touching the episode.

        Returns:
            point: (3,) tool point, base frame, metres.
            jacobian: (3, J) d point / d q, metres per radian.
        """
        scratch = self._scratch
        scratch.qpos[self._scene.qpos_adr] = q
        mujoco.mj_kinematics(self.model, scratch)
        mujoco.mj_comPos(self.model, scratch)
        jacp = np.zeros((3, self.model.nv))
        mujoco.mj_jacBody(self.model, scratch, jacp, None, self._scene.tool_body_id)
        return scratch.xpos[self._scene.tool_body_id].copy(), jacp[:, self._scene.dof_adr]

    def puck_position(self) -> np.ndarray:
        """(3,) puck centre, base frame, metres."""
        return self.data.xpos[self._scene.puck_body_id].copy()

    def puck_velocity(self) -> np.ndarray:
        """(3,) puck linear velocity, m/s."""
        adr = self._scene.puck_dof_adr
        return self.data.qvel[adr : adr + 3].copy()

    def body_positions(self) -> dict[str, np.ndarray]:
        """Origin (3,) of every arm link and of the puck, base frame, metres."""
        out = {
            n: self.data.xpos[i].copy()
            for n, i in zip(self.link_names, self._scene.link_body_ids, strict=True)
        }
        out["puck"] = self.puck_position()
        return out

    @property
    def puck_radius(self) -> float:
        """Puck radius, metres (SimConfig.puck_radius_m)."""
        return self.cfg.puck_radius_m

    @property
    def tool_body_id(self) -> int:
        """MuJoCo body id whose origin is the tool point (for Jacobians)."""
        return self._scene.tool_body_id

    @property
    def qpos_adr(self) -> np.ndarray:
        """(J,) addresses of the arm joints in qpos."""
        return self._scene.qpos_adr

    @property
    def dof_adr(self) -> np.ndarray:
        """(J,) addresses of the arm joints in qvel (columns of Jacobians)."""
        return self._scene.dof_adr

    def set_joint_positions(self, q: np.ndarray) -> None:
        """Teleport the arm to joint positions `q` (J,), rad (clipped to the limits), at rest,
        with the target and the servo setpoint there too (for tests and tools, not control)."""
        q = np.clip(
            np.asarray(q, dtype=np.float64), self.joint_limits[:, 0], self.joint_limits[:, 1]
        )
        self.data.qpos[self._scene.qpos_adr] = q
        self.data.qvel[self._scene.dof_adr] = 0.0
        self.data.ctrl[:] = q
        self._target = q.copy()
        mujoco.mj_forward(self.model, self.data)

    def set_puck(self, xy: np.ndarray) -> None:
        """Place the puck at rest at `xy` (2,), metres (for data collection and tests)."""
        adr = self._scene.puck_qpos_adr
        self.data.qpos[adr : adr + 3] = (xy[0], xy[1], PUCK_HALF_HEIGHT)
        self.data.qpos[adr + 3 : adr + 7] = (1.0, 0.0, 0.0, 0.0)
        dof = self._scene.puck_dof_adr
        self.data.qvel[dof : dof + 6] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def shift_puck(self, dxy: np.ndarray) -> None:
        """Move the puck by `dxy` (2,), metres, on the table, keeping its velocity and
        orientation (to draw it where a model of known error would: eval.plan.PuckError)."""
        adr = self._scene.puck_qpos_adr
        self.data.qpos[adr : adr + 2] += np.asarray(dxy, dtype=np.float64)
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ camera

    def _on_render_thread(self, job: Callable[[mujoco.Renderer], _T]) -> _T:
        """Run `job(renderer)` on the render thread and return its result."""

        def run() -> _T:
            if self._renderer is None:
                _check_gl_backend()
                renderer = mujoco.Renderer(
                    self.model, height=self.cfg.image_height, width=self.cfg.image_width
                )
                flags = renderer.scene.flags
                flags[int(mujoco.mjtRndFlag.mjRND_SHADOW)] = 0
                flags[int(mujoco.mjtRndFlag.mjRND_REFLECTION)] = 0
                flags[int(mujoco.mjtRndFlag.mjRND_SKYBOX)] = 0
                self._renderer = renderer
            return job(self._renderer)

        with self._render_lock:  # the caller's data must not change while it is drawn
            if self._closed:
                raise RuntimeError("this TabletopSim was closed: it cannot render any more")
            return self._render_thread.submit(run).result()

    def render(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image from the fixed camera."""

        def job(renderer: mujoco.Renderer) -> np.ndarray:
            renderer.disable_segmentation_rendering()
            renderer.update_scene(self.data, camera=self._scene.camera_id)
            return renderer.render()

        return self._on_render_thread(job)

    def gl_renderer(self) -> str:
        """The OpenGL renderer that draws the images (e.g. "llvmpipe ...": software on the CPU),
        for benchmark reports; "unknown" if it cannot be read."""

        def job(renderer: mujoco.Renderer) -> str:
            try:
                from OpenGL import GL
            except ImportError:
                return "unknown"
            name = GL.glGetString(GL.GL_RENDERER)
            return name.decode() if name else "unknown"

        return self._on_render_thread(job)

    def geom_ids(self) -> np.ndarray:
        """(H, W) int32 id of the MuJoCo geom seen at each pixel; -1 where none."""

        def job(renderer: mujoco.Renderer) -> np.ndarray:
            renderer.enable_segmentation_rendering()
            renderer.update_scene(self.data, camera=self._scene.camera_id)
            seg = renderer.render()  # (H, W, 2): object id, object type
            renderer.disable_segmentation_rendering()
            return seg

        seg = self._on_render_thread(job)
        is_geom = seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)
        return np.where(is_geom, seg[..., 0], -1).astype(np.int32)

    def segmentation(self) -> np.ndarray:
        """(H, W) int32 labels: BACKGROUND_LABEL (table and background), PUCK_LABEL, and
        ARM_LABEL_START + i for arm link i (see `link_labels`)."""
        ids = self.geom_ids()
        labels = np.full(ids.shape, BACKGROUND_LABEL, dtype=np.int32)
        seen = ids >= 0
        labels[seen] = self._scene.geom_labels[ids[seen]]
        return labels

    def arm_mask(self, labels: np.ndarray | None = None) -> np.ndarray:
        """(H, W) bool: pixels showing any arm link (from `labels`, else a fresh segmentation)."""
        labels = self.segmentation() if labels is None else labels
        return labels >= ARM_LABEL_START

    def puck_mask(self, labels: np.ndarray | None = None) -> np.ndarray:
        """(H, W) bool: pixels showing the puck."""
        labels = self.segmentation() if labels is None else labels
        return labels == PUCK_LABEL

    def camera_model(self) -> CameraModel:
        """The fixed camera as a pinhole model that matches `render()` exactly.

        Intrinsics: square pixels, f = (H/2) / tan(fovy/2), principal point at the image centre
        ((W-1)/2, (H-1)/2) with pixel centres at integers. Pose: MuJoCo's camera frame (looking
        along -z, y up) turned into the optical frame (z forward, x right, y down).
        """
        cam = self._scene.camera_id
        width, height = self.cfg.image_width, self.cfg.image_height
        f = fovy_focal_px(float(self.model.cam_fovy[cam]), height)
        k = np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
        mj_rot = self.data.cam_xmat[cam].reshape(3, 3)  # columns: camera x, y, z in the base frame
        rotation = mj_rot @ np.diag([1.0, -1.0, -1.0])
        return CameraModel(width, height, k, np.zeros(5), self.data.cam_xpos[cam].copy(), rotation)

    def close(self) -> None:
        """Free the renderer (on its own thread) and stop the render thread. Idempotent; the
        simulator can still step afterwards, but not render."""
        with self._render_lock:
            if self._closed:
                return
            self._closed = True
            if self._renderer is not None:
                renderer, self._renderer = self._renderer, None
                self._render_thread.submit(renderer.close).result()
            self._render_thread.shutdown(wait=True)

    def __del__(self) -> None:
        """A simulator nobody closed: free what can be freed without ever waiting. Under the
        cyclic garbage collector the render thread's executor may be collected with us and its
        thread gone, so waiting for it (as close() does) would hang forever; and the renderer
        must be closed on its own thread, where its GL context is current."""
        if not hasattr(self, "_closed") or self._closed:  # closed, or __init__ failed early
            return
        self._closed = True
        renderer, self._renderer = self._renderer, None
        with contextlib.suppress(RuntimeError):  # the thread is gone (shutdown, interpreter exit)
            if renderer is not None:
                self._render_thread.submit(renderer.close)
            self._render_thread.shutdown(wait=False)

    def __enter__(self) -> TabletopSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_gl_backend() -> None:
    """Fail clearly when mujoco picked GLFW on a machine without a display: that happens when
    mujoco was imported before MUJOCO_GL was set."""
    backend = getattr(getattr(mujoco, "GLContext", None), "__module__", "")  # e.g. "mujoco.egl"
    if sys.platform.startswith("linux") and "glfw" in backend and not os.environ.get("DISPLAY"):
        raise RuntimeError(
            "MuJoCo is using GLFW but there is no display: export MUJOCO_GL=egl (or osmesa) "
            "before starting Python, or import wm_ros.sim before mujoco"
        )
