"""Test-wide environment: DDS on loopback, one ROS domain per test module, offscreen MuJoCo.

Set before anything imports rclpy or mujoco, and inherited by the node processes tests start.
"""

import os
import zlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_local.xml"))

# Two xdist workers on a 2-core CI machine: one torch/OpenMP thread each, or every
# convolution oversubscribes the cores (several times slower, not faster).
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")

_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_INDEX = int(_WORKER[2:]) if _WORKER[2:].isdigit() else 0


def module_domain(module_name: str) -> int:
    """A ROS domain for one test module: 2..101 (the range Linux leaves free of ephemeral
    ports); its parity is the xdist worker's, so modules on the two workers never share one,
    and a module's node processes never hear another module's."""
    slot = zlib.crc32(f"{os.getppid()}:{module_name}".encode()) % 50
    return 2 + 2 * slot + _INDEX % 2


@pytest.fixture(autouse=True, scope="module")
def _ros_domain_per_module(request):
    previous = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(module_domain(request.module.__name__))
    yield
    if previous is None:
        os.environ.pop("ROS_DOMAIN_ID", None)
    else:
        os.environ["ROS_DOMAIN_ID"] = previous


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module (`pytestmark = pytest.mark.usefixtures(...)`):
    two threads on two busy cores spin against each other (10x slower here), and with xdist
    each worker already has a core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
