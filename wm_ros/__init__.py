"""wm_ros: model-predictive planning through a learned, action-conditioned video world model.

The core (everything outside `wm_ros.ros`) never imports rclpy or message packages.
"""

__version__ = "0.1.0"
