"""The one IK model of a robot: its MJCF with the hand welded and the spec's joint limits.

Why one builder: end-effector teleop (:mod:`teleop.ee_control`) and the scripted operator
(:mod:`teleop.scripted`) both solve differential IK with ``mink`` on the robot's own MJCF, so
the frame a person commands, the frame the script plans in and the frame the safety layer
checks are one. Both need the same model: only the arm joints left (the gripper and any
linkage welded where the MJCF puts them at rest, since they never move the end-effector site),
each arm joint's range narrowed to the spec's position limits, actuators, tendons, equality
constraints, sensors and keyframes dropped (IK needs none), and the arm joints first in
``qpos``, in the spec's order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import mujoco
import numpy as np

from robot.mjcf import load_robot_spec
from robot.schema import RobotSpec


class IKModelError(ValueError):
    """The robot's MJCF cannot serve as its IK model. The message names the joint or site."""


def arm_joint_names(spec: RobotSpec) -> list[str]:
    """The spec's arm joints (every joint but the gripper), in spec order."""
    return [n for n in spec.joint_names if n != spec.gripper_joint]


def arm_ik_model(
    spec: RobotSpec,
    model: str | os.PathLike[str] | None = None,
    *,
    tcp_offset: Sequence[float] | None = None,
) -> mujoco.MjModel:
    """The compiled IK model of ``spec`` (see the module docstring). ``model``: the MJCF,
    default ``spec.model`` (with the spec's ``model_edits``). ``tcp_offset``: also add a site
    ``tcp`` at this offset (m) in the frame of ``spec.ee_site``, with the site's orientation."""
    name = os.fspath(model or spec.model)
    robot = load_robot_spec(name, spec.model_edits if name == spec.model else None)
    arm = arm_joint_names(spec)
    if not arm:
        raise IKModelError(f"robot '{spec.name}': no arm joint besides the gripper")
    for group in (robot.actuators, robot.tendons, robot.equalities, robot.sensors, robot.keys):
        for element in list(group):
            robot.delete(element)
    have = {j.name for j in robot.joints}
    missing = [n for n in arm if n not in have]
    if missing:
        raise IKModelError(
            f"robot '{spec.name}': joint(s) {missing} are not in model '{name}' "
            f"(joints: {sorted(have)})"
        )
    for joint in list(robot.joints):
        if joint.name not in arm:
            robot.delete(joint)
    for name_, i in zip(arm, spec.joint_index(arm), strict=True):
        joint = robot.joint(name_)
        if joint.type not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
            raise IKModelError(f"robot '{spec.name}': joint '{name_}' is not hinge or slide")
        joint.range = [spec.position_lower[i], spec.position_upper[i]]
        joint.limited = mujoco.mjtLimited.mjLIMITED_TRUE
    if tcp_offset is not None:
        site = robot.site(spec.ee_site)
        if site is None:
            raise IKModelError(f"robot model '{name}' has no site '{spec.ee_site}'")
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, np.asarray(site.quat, dtype=np.float64))
        offset = np.asarray(tcp_offset, dtype=np.float64)
        site.parent.add_site(
            name="tcp",
            pos=list(np.asarray(site.pos) + rot.reshape(3, 3) @ offset),
            quat=list(site.quat),
        )
    compiled = robot.compile()
    order = [int(compiled.joint(n).qposadr[0]) for n in arm]
    if order != list(range(len(order))):
        raise IKModelError(f"robot model '{name}': arm joints are not in config order")
    return compiled
