"""Test-wide environment: DDS on loopback, one ROS domain per pytest worker, offscreen MuJoCo.

Set before anything imports rclpy or mujoco, and inherited by subprocesses the tests start.
"""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_local.xml"))
# Each xdist worker (gw0, gw1, ...) gets its own domain so parallel ROS tests never see each
# other; the base is spread by pid so two pytest runs on one machine do not collide either.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_index = int(_worker[2:]) if _worker[2:].isdigit() else 0
os.environ["ROS_DOMAIN_ID"] = str(10 + (os.getppid() % 20) * 4 + _index % 4)
