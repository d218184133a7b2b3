"""ros2 launch wm_ros plan.launch.py [task:=push] [model:=models/NAME] [device:=cuda]

The simulator with the planner closing the loop. The graph lives in config/graphs.yaml (graph
`plan`: the `sim` and `planner` graphs together), which `wm-ros bringup plan` reads too.
"""

from wm_ros.graph import launch_description


def generate_launch_description():
    """The `plan` graph of config/graphs.yaml as a LaunchDescription."""
    return launch_description("plan")
