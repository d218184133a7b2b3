"""MuJoCo tabletop simulator: the project's URDF arm, a puck, a fixed camera, reach/push tasks,
scripted controllers and the exploration policy used for data collection.

    from wm_ros.sim import TabletopSim
    sim = TabletopSim()            # SimConfig() defaults; the first episode is ready
    image = sim.render()           # (H, W, 3) uint8
    sim.step(sim.task.goal_joints) # one control step towards a joint target
"""

import os

# Offscreen rendering without a display. MuJoCo reads MUJOCO_GL when it is first imported, so
# this must run before `import mujoco`; an explicit user setting wins.
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

from wm_ros.sim.scene import (
    ARM_LABEL_START,
    ARM_LABELS,
    ARM_LINKS,
    BACKGROUND_LABEL,
    DEFAULT_URDF,
    PUCK_LABEL,
)
from wm_ros.sim.simulator import TabletopSim
from wm_ros.sim.tasks import Task, make_task

__all__ = [
    "ARM_LABELS",
    "ARM_LABEL_START",
    "ARM_LINKS",
    "BACKGROUND_LABEL",
    "DEFAULT_URDF",
    "PUCK_LABEL",
    "TabletopSim",
    "Task",
    "make_task",
]
