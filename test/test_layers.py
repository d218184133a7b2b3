"""The layering rule: the core never imports rclpy or a message package."""

import subprocess
import sys
from pathlib import Path

import wm_ros

PACKAGE = Path(wm_ros.__file__).parent


def core_modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts
        if "ros" in parts[1:2] or parts[-1] in ("cli", "__main__"):
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_core_imports_no_ros():
    modules = core_modules()
    assert "wm_ros.camera" in modules and len(modules) > 3
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'rclpy' "
        "or m.split('.')[0].endswith('_msgs') or m.split('.')[0] == 'std_srvs')\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"core modules pulled in ROS: {out.stdout.strip()}"
