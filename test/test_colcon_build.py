"""The package as ROS 2 builds it: a real `colcon build` of a copy of the sources, the installed
layout checked (executables in lib/wm_ros, share files, ament index marker), the installed code
finding its share directory and graphs through the ament index, and package.xml checked against
what the code imports."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

import pytest

import wm_ros
from test.launch_fakes import write_fake_launch_modules
from wm_ros import graph as g

REPO = Path(wm_ros.__file__).resolve().parents[1]
PACKAGE = "wm_ros"
# What setup.py installs from: the package definition, the code and the data_files folders.
PACKAGE_ENTRIES = (
    "setup.py",
    "setup.cfg",
    "package.xml",
    "resource",
    "wm_ros",
    "launch",
    "config",
    "models",
)
COLCON = Path(sys.executable).parent / "colcon"
BUILD_LIMIT_S = 60.0


def package_files() -> list[str]:
    """Repository-relative files of the package: git's view (tracked, and untracked files that
    are not ignored) when this is a git checkout, else the known folders minus caches."""
    listed: list[str] = []
    if (REPO / ".git").exists() and shutil.which("git"):
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO, capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        listed = [p for p in out.stdout.decode().split("\0") if p]
    if not listed:
        listed = [str(p.relative_to(REPO)) for e in PACKAGE_ENTRIES for p in
                  ([REPO / e] if (REPO / e).is_file() else (REPO / e).rglob("*"))]  # fmt: skip
    return sorted(
        p for p in listed
        if p.split("/")[0] in PACKAGE_ENTRIES and "__pycache__" not in p and (REPO / p).is_file()
    )  # fmt: skip


@pytest.fixture(scope="module")
def colcon_install(tmp_path_factory):
    """`colcon build` of a copy of the package; yields (workspace, install prefix, seconds)."""
    if not COLCON.exists():
        pytest.skip(f"colcon is not installed next to {sys.executable} (see requirements-dev.txt)")
    ws = tmp_path_factory.mktemp("colcon_ws")
    src = ws / "src" / PACKAGE
    for rel in package_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    env = dict(os.environ)
    env.update(
        AMENT_PREFIX_PATH=sys.prefix,  # where the ros-* wheels put share/ament_index
        COLCON_HOME=str(ws / "colcon_home"),  # no user defaults or mixins
        PYTHONDONTWRITEBYTECODE="1",
    )
    t0 = time.monotonic()
    result = subprocess.run(
        [str(COLCON), "--log-base", "log", "build", "--base-paths", "src",
         "--build-base", "build", "--install-base", "install"],
        cwd=ws, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - t0
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout}\n{result.stderr}"
    yield ws, ws / "install" / PACKAGE, seconds


def test_colcon_build_is_quick(colcon_install):
    _, _, seconds = colcon_install
    assert seconds < BUILD_LIMIT_S, f"colcon build took {seconds:.1f} s"


def test_colcon_installs_the_ament_layout(colcon_install):
    _, prefix, _ = colcon_install
    share = prefix / "share" / PACKAGE
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    for rel in ("package.xml", "launch/sim.launch.py", "config/graphs.yaml", "config/sim.yaml",
                "config/fastdds_local.xml"):  # fmt: skip
        assert (share / rel).is_file(), rel
    # Every file of launch/, config/ and models/ is installed (data_files globs the folders).
    for rel in package_files():
        if rel.split("/")[0] in ("launch", "config", "models"):
            assert (share / rel).is_file(), f"{rel} is not installed to share/{PACKAGE}"
    # `ros2 run wm_ros <node>` looks in lib/wm_ros: every node executable of every graph is there.
    executables = {"sim_node"} | {
        n.executable
        for graph in g.load_graphs().values()
        for n in graph.nodes
        if n.package == PACKAGE
    }
    for exe in sorted(executables):
        path = prefix / "lib" / PACKAGE / exe
        assert path.is_file() and os.access(path, os.X_OK), f"lib/{PACKAGE}/{exe} missing"
        assert path.read_text().startswith("#!"), exe


def test_installed_package_finds_its_share_dir_and_graphs(colcon_install, tmp_path):
    """The installed wm_ros (not this checkout) resolves share files through the ament index,
    and the installed launch file points the nodes at installed parameter files."""
    _, prefix, _ = colcon_install
    (site,) = {p.parent.parent for p in prefix.glob("lib/python*/*-packages/wm_ros/__init__.py")}
    fakes = write_fake_launch_modules(tmp_path / "fakes")
    share = prefix / "share" / PACKAGE
    code = textwrap.dedent(f"""
        import json, runpy
        import wm_ros
        from importlib import metadata
        from wm_ros import graph, paths
        node = graph.load_graph("sim").node("sim")
        launch = runpy.run_path({str(share / "launch" / "sim.launch.py")!r})
        description = launch["generate_launch_description"]()
        nodes = [e for e in description.entities if type(e).__name__ == "Node"]
        (ep,) = metadata.entry_points(group="console_scripts", name="sim_node")
        print(json.dumps({{
            "module": wm_ros.__file__,
            "source_root": str(paths.source_root()),
            "share": str(paths.share_dir()),
            "param_files": list(node.param_files),
            "launch_params": nodes[0].kwargs["parameters"][0],
            "entry_point": ep.value,
            "version": metadata.version("wm_ros"),
        }}))
    """)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(fakes), str(site)])
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), sys.prefix])
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert Path(info["module"]).is_relative_to(site)
    assert info["source_root"] == "None"
    assert info["share"] == str(share)
    assert info["param_files"] == [str(share / "config" / "sim.yaml")]
    assert info["launch_params"] == str(share / "config" / "sim.yaml")
    assert info["entry_point"] == "wm_ros.ros.sim_node:main"
    assert info["version"] == wm_ros.__version__

    # Without the ament prefix the installed package says what is missing.
    env["AMENT_PREFIX_PATH"] = sys.prefix
    out = subprocess.run(
        [sys.executable, "-c", "from wm_ros.paths import share_dir; share_dir()"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode != 0
    assert "ShareDirNotFoundError" in out.stderr and "AMENT_PREFIX_PATH" in out.stderr


# --------------------------------------------------------------------------- package.xml

NOT_ON_PYPI = ("launch", "launch_ros")
# Python libraries that rosdep resolves to system packages: their keys go in package.xml.
ROSDEP_KEYS = {"numpy": "python3-numpy", "yaml": "python3-yaml", "PIL": "python3-pil",
               "tqdm": "python3-tqdm", "OpenGL": "python3-opengl"}  # fmt: skip


def third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported anywhere in wm_ros/ (also inside functions) that are neither
    the standard library nor wm_ros itself -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != PACKAGE:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def pinned_requirements() -> set[str]:
    names = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*==", line)
        if match:
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return names


def test_package_xml_is_format_3_and_matches_setup():
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == PACKAGE
    assert root.findtext("export/build_type") == "ament_python"
    assert root.findtext("license") and root.find("maintainer").get("email")
    setup_call = next(
        n for n in ast.walk(ast.parse((REPO / "setup.py").read_text()))
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup"
    )  # fmt: skip
    setup_version = next(k.value.value for k in setup_call.keywords if k.arg == "version")
    assert root.findtext("version") == setup_version == wm_ros.__version__
    assert (REPO / "resource" / PACKAGE).is_file()
    assert "install_scripts=$base/lib/wm_ros" in (REPO / "setup.cfg").read_text().replace(" ", "")


def test_package_xml_declares_what_the_code_imports():
    """Every third-party import is declared: ROS packages and rosdep-resolvable libraries as
    exec_depend/depend in package.xml; pip-only libraries (no rosdep key) pinned in
    requirements.txt."""
    root = ET.parse(REPO / "package.xml").getroot()
    declared = {e.text.strip() for tag in ("exec_depend", "depend") for e in root.iter(tag)}
    pinned = pinned_requirements()
    dists = metadata.packages_distributions()
    missing = []
    for module, files in sorted(third_party_imports().items()):
        if module in ROSDEP_KEYS:
            if ROSDEP_KEYS[module] not in declared:
                missing.append(f"<exec_depend>{ROSDEP_KEYS[module]}</exec_depend> ({module})")
            continue
        module_dists = {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(module, [])}
        # launch/launch_ros are not on PyPI: only robots with ROS 2 installed have them.
        is_ros = any(d.startswith("ros-") for d in module_dists) or module in NOT_ON_PYPI
        if is_ros:
            if module not in declared:
                missing.append(f"<exec_depend>{module}</exec_depend> (imported by {sorted(files)})")
        elif not module_dists & pinned:
            missing.append(f"{module}: pin it in requirements.txt or give it a rosdep key here")
    assert not missing, "undeclared runtime dependencies:\n" + "\n".join(missing)
