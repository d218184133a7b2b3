"""Where the package's shared files (config/, launch/, models/) live, installed or not.

Three ways to run wm_ros, one lookup:

- from a source checkout (`pip install -e .`, or `PYTHONPATH=<checkout>`): the files are next to
  the code, in the checkout itself. An editable install puts no ament marker and no share/ files
  anywhere, and any copies elsewhere would go stale as the checkout is edited, so a checkout
  always answers for itself.
- installed by colcon or `pip install .`: the files are in `<prefix>/share/wm_ros`, found through
  the ament index (`AMENT_PREFIX_PATH` must contain `<prefix>`; sourcing a colcon workspace's
  `setup.bash` sets it).
- `colcon build --symlink-install`: the code runs through a symlink to the checkout's package
  folder; it counts as that checkout.

The core never imports rclpy; `ament_index_python` is plain Python and is imported lazily.
"""

from __future__ import annotations

import os
from pathlib import Path

import wm_ros

PACKAGE = "wm_ros"
# The simulated arm: package data, so it sits beside the code in every kind of install.
ARM_URDF = Path(__file__).parent / "sim" / "assets" / "arm.urdf"


class ShareDirNotFoundError(FileNotFoundError):
    """The package's share directory cannot be found (neither a checkout nor an install)."""


def source_root() -> Path | None:
    """The source checkout the running `wm_ros` was imported from, or None when installed.

    A checkout is recognised by `package.xml` and `setup.py` beside the `wm_ros/` package.
    """
    # resolve(): under --symlink-install the package folder is a symlink to the checkout's.
    root = Path(wm_ros.__file__).resolve().parents[1]
    if (root / "package.xml").is_file() and (root / "setup.py").is_file():
        return root
    return None


def installed_share_dir() -> Path | None:
    """`<prefix>/share/wm_ros` of the first prefix on AMENT_PREFIX_PATH that has wm_ros, or None."""
    if not os.environ.get("AMENT_PREFIX_PATH"):
        return None
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, ValueError):
        return None


def share_dir() -> Path:
    """The directory holding the package's `package.xml`, `config/`, `launch/` and `models/`.

    The source checkout when wm_ros runs from one, else `<prefix>/share/wm_ros` through the
    ament index.

    Raises:
        ShareDirNotFoundError: wm_ros is installed but no AMENT_PREFIX_PATH entry holds it.
    """
    root = source_root()
    if root is not None:
        return root
    installed = installed_share_dir()
    if installed is not None:
        return installed
    raise ShareDirNotFoundError(
        f"cannot find the share directory of {PACKAGE}: it is installed at "
        f"{Path(wm_ros.__file__).parent} (not a source checkout) and no prefix on "
        f"AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH', '')!r} has "
        f"share/ament_index/resource_index/packages/{PACKAGE}; source the workspace's "
        "setup.bash or add the install prefix to AMENT_PREFIX_PATH"
    )


def config_path(name: str) -> Path:
    """Path of `config/<name>` in the share directory (e.g. `config_path("sim.yaml")`).

    Raises:
        FileNotFoundError: no such file.
    """
    path = share_dir() / "config" / name
    if not path.is_file():
        raise FileNotFoundError(f"{PACKAGE} has no config file {name!r} (looked for {path})")
    return path


def launch_dir() -> Path:
    """The `launch/` directory of the share directory."""
    return share_dir() / "launch"


def models_dir() -> Path:
    """The `models/` directory of the share directory (shipped model directories live here)."""
    return share_dir() / "models"
