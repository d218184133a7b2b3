"""ament_python package definition: colcon builds it on a robot, pip installs it here."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "wm_ros"
HERE = Path(__file__).parent


def tree(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries installing every file under `folder` into share/wm_ros/<folder>."""
    entries: dict[str, list[str]] = {}
    for path in sorted((HERE / folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            rel = path.relative_to(HERE)
            entries.setdefault(f"share/{PACKAGE}/{rel.parent}", []).append(str(rel))
    return sorted(entries.items())


NODES = ["sim_node", "prompt_node", "planner_node"]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={PACKAGE: ["sim/assets/*"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *tree("launch"),
        *tree("config"),
        *tree("models"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="wm_ros developers",
    maintainer_email="dev@wm-ros.invalid",
    description="Model-predictive planning through a learned video world model, for ROS 2.",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "wm-ros = wm_ros.cli:main",
            *[f"{node} = wm_ros.ros.{node}:main" for node in NODES],
        ],
    },
)
