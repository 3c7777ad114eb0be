"""Real arms behind :class:`~robot.arm_interface.Arm`: SO-100/101, Koch (LeRobot), UR, Franka, xArm.

What real drivers share is in :mod:`robot.arms.hardware_arm`; end-effector positions of arms
with no MJCF come from DH tables (:mod:`robot.arms.dh_kinematics`).

Each driver imports its SDK inside the methods that talk to the device, so this package imports
on a laptop without any of them. Build one from config with
:func:`robot.arms.registry.make_arm`, the only place a driver is chosen (``sim`` included).
"""
