"""One IK model per robot: the hand welded, the spec's limits, a tcp site where asked."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import numpy as np
import pytest

from teleop.ik_model import IKModelError, arm_ik_model, arm_joint_names
from tests.sim_helpers import robot_spec


@pytest.mark.parametrize("robot", ["so101", "panda"])
def test_only_the_arm_joints_are_left_with_the_spec_limits(robot):
    spec = robot_spec(robot)
    m = arm_ik_model(spec)
    arm = arm_joint_names(spec)
    assert [m.joint(j).name for j in range(m.njnt)] == arm
    assert m.nu == 0 and m.neq == 0
    idx = spec.joint_index(arm)
    np.testing.assert_allclose(m.jnt_range[:, 0], spec.position_lower[idx])
    np.testing.assert_allclose(m.jnt_range[:, 1], spec.position_upper[idx])


def test_a_tcp_site_sits_at_the_offset_in_the_ee_site_frame():
    spec = robot_spec("panda")
    m = arm_ik_model(spec, tcp_offset=(0.0, 0.0, 0.01))
    ee, tcp = m.site(spec.ee_site), m.site("tcp")
    assert tcp.bodyid == ee.bodyid
    assert np.linalg.norm(tcp.pos - ee.pos) == pytest.approx(0.01)


def test_a_joint_the_model_lacks_is_named():
    spec = robot_spec("so101")
    joints = ("shoulder_pan", "elbow", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
    with pytest.raises(IKModelError, match=r"\['elbow'\]"):
        arm_ik_model(dataclasses.replace(spec, joint_names=joints))
