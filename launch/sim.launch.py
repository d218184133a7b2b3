"""ros2 launch wm_ros sim.launch.py [use_sim_time:=true] [image_width:=128] [task:=reach] ...

The simulator graph. The graph itself lives in config/graphs.yaml (graph `sim`), which
`wm-ros bringup sim` reads too; `ros2 launch wm_ros sim.launch.py --show-args` lists the
arguments.
"""

from wm_ros.graph import launch_description


def generate_launch_description():
    """The `sim` graph of config/graphs.yaml as a LaunchDescription."""
    return launch_description("sim")
