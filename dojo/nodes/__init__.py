"""ROS 2 node shells: each converts messages and calls a library object that knows no ROS."""
