"""Real arms behind :class:`~robot.arm.Arm`: SO-100/101 and Koch (LeRobot), UR, Franka, xArm.

Each driver imports its SDK inside the methods that talk to the device, so this package imports
on a laptop without any of them. Build one from config with
:func:`robot.arms.registry.make_arm`, the only place a driver is chosen (``sim`` included).
"""
