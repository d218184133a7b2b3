"""Default topic names (all remappable) and the simulator's extra ground-truth topics."""

IMAGE = "/camera/image_raw"
CAMERA_INFO = "/camera/camera_info"
JOINT_STATES = "/joint_states"
GOAL_IMAGE = "/wm/goal_image"
# Optional: the goal's joint state, stamped like its goal image (the cost's robot mask and
# joint-goal term use it; the simulator publishes it, a user may).
GOAL_JOINT_STATES = "/wm/goal_joint_states"
PLAN = "/wm/plan"
IMAGINED = "/wm/imagined"
PROMPT = "/wm/prompt"
DIAGNOSTICS = "/diagnostics"
CLOCK = "/clock"
# Simulator ground truth recorded by `wm-ros collect` for evaluation (no robot has these):
SEGMENTATION = "/sim/segmentation"  # mono8 labels: 0 background, arm links, puck (wm_ros.sim)
PUCK_POSE = "/sim/puck_pose"  # geometry_msgs/PoseStamped, base frame
