"""The ROS 2 layer: the only part of wm_ros that imports rclpy or message packages.

- `conversions`: messages <-> numpy / core dataclasses (images, camera info, joint states,
  trajectories, stamps).
- `qos`: shared QoS profiles and the recorder/player QoS rules.
- `bag`: rosbag2 writing, reading, recording and playback (`wm-ros bag record|play`).
- the nodes (`sim_node`, ...), which convert each message once and call the core.

Importing this package imports nothing from ROS; its modules do.
"""
