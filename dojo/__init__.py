"""The application: ROS 2 node shells, hydra configs, the node graph and the ``dojo`` CLI.

The only package that imports ``rclpy`` or ``hydra``.
"""
