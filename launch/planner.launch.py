"""ros2 launch wm_ros planner.launch.py [model:=models/NAME] [device:=cuda] [use_sim_time:=true]

The CEM planner node alone, for a robot that publishes /camera/image_raw, /camera/camera_info
and /joint_states (remap them in config/graphs.yaml or with a wrapper launch file). The graph
lives in config/graphs.yaml (graph `planner`), which `wm-ros bringup planner` reads too;
`plan.launch.py` / `wm-ros bringup plan` add the simulator.
"""

from wm_ros.graph import launch_description


def generate_launch_description():
    """The `planner` graph of config/graphs.yaml as a LaunchDescription."""
    return launch_description("planner")
