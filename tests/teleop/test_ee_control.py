"""End-effector commands to joint targets, checked with MuJoCo forward kinematics of the
robot models the twin uses (SO-101: 5 arm joints; Panda: 7), with the limits of the twin's
robot presets."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml

from robot.mjcf import ForwardKinematics, load_robot_model, robot_mjcf_path
from robot.schema import RobotSpec
from teleop.ee_control import EndEffectorController, EndEffectorError

PRESETS = Path(__file__).resolve().parents[2] / "dojo" / "conf" / "robot"


def preset_spec(name: str) -> RobotSpec:
    return RobotSpec.from_mapping(yaml.safe_load((PRESETS / f"sim_{name}.yaml").read_text()))


@pytest.fixture(scope="module", params=["so101", "panda"])
def robot(request) -> tuple[str, RobotSpec, EndEffectorController, ForwardKinematics]:
    name = request.param
    spec = preset_spec(name)
    return name, spec, EndEffectorController(spec), ForwardKinematics.for_robot(spec)


def site_rotation(name: str, spec: RobotSpec, q: np.ndarray) -> np.ndarray:
    """Site orientation in the base frame, straight from MuJoCo (independent of the code
    under test)."""
    m = load_robot_model(spec.model)
    d = mujoco.MjData(m)
    for i, joint in enumerate(spec.joint_names):
        jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, joint)
        if jid >= 0:
            d.qpos[m.jnt_qposadr[jid]] = q[i]
    mujoco.mj_kinematics(m, d)
    site = m.site(spec.ee_site).id
    base = 1  # the first body below the world is the robot's base in both models
    return d.xmat[base].reshape(3, 3).T @ d.site_xmat[site].reshape(3, 3)


def rotation_vector(r: np.ndarray) -> np.ndarray:
    """Axis * angle of a small rotation matrix."""
    return 0.5 * np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])


def test_plus_x_moves_the_end_effector_plus_x(robot) -> None:
    _, spec, ctl, fk = robot
    q = spec.home.copy()
    step = 0.004
    q2 = ctl.targets(q, np.array([step, 0, 0, 0, 0, 0]))
    dp = fk(q2) - fk(q)
    assert dp[0] > 0.7 * step
    assert abs(dp[1]) < 0.2 * dp[0] and abs(dp[2]) < 0.2 * dp[0]


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_each_translation_axis_and_sign(robot, axis: int, sign: float) -> None:
    _, spec, ctl, fk = robot
    q = spec.home.copy()
    delta = np.zeros(6)
    delta[axis] = sign * 0.003
    dp = fk(ctl.targets(q, delta)) - fk(q)
    assert sign * dp[axis] > 0.5 * 0.003, dp
    others = np.delete(dp, axis)
    assert np.all(np.abs(others) < 0.5 * abs(dp[axis])), dp


def test_yaw_turns_about_base_z(robot) -> None:
    name, spec, ctl, _ = robot
    q = spec.home.copy()
    q2 = ctl.targets(q, np.array([0, 0, 0, 0, 0, 0.03]))
    turn = rotation_vector(site_rotation(name, spec, q2) @ site_rotation(name, spec, q).T)
    assert turn[2] > 0.01, turn


def test_repeated_commands_follow_a_line(robot) -> None:
    _, spec, ctl, fk = robot
    q = spec.home.copy()
    start = fk(q)
    for _ in range(10):
        q = ctl.targets(q, np.array([0.0, 0.003, 0.0, 0.0, 0.0, 0.0]))
    moved = fk(q) - start
    assert moved[1] > 0.02
    assert abs(moved[0]) < 0.005 and abs(moved[2]) < 0.005


def test_zero_delta_keeps_the_joints(robot) -> None:
    _, spec, ctl, _ = robot
    rng = np.random.default_rng(0)
    q = spec.position_lower + (spec.position_upper - spec.position_lower) * rng.uniform(
        0.2, 0.8, spec.dof
    )
    np.testing.assert_array_equal(ctl.targets(q, np.zeros(6)), q)
    np.testing.assert_array_equal(ctl.targets(q, None), q)


def test_targets_respect_position_and_step_limits(robot) -> None:
    _, spec, ctl, _ = robot
    rng = np.random.default_rng(1)
    lo, hi = spec.position_lower, spec.position_upper
    per_step = np.minimum(spec.velocity_limit * spec.control_period, spec.max_step)
    for k in range(60):
        if k % 3 == 0:  # at a limit, pushed further
            q = np.where(rng.random(spec.dof) < 0.5, lo, hi)
        else:
            q = lo + (hi - lo) * rng.random(spec.dof)
        delta = np.concatenate([rng.normal(0, 0.05, 3), rng.normal(0, 0.5, 3)])  # far too big
        gripper = float(rng.random())
        out = ctl.targets(q, delta, gripper)
        assert np.all(out >= lo) and np.all(out <= hi), k
        assert np.all(np.abs(out - q) <= per_step + 1e-12), (k, np.abs(out - q) / per_step)


def test_gripper_command_within_its_step(robot) -> None:
    _, spec, ctl, _ = robot
    g = spec.joint_names.index(spec.gripper_joint)
    q = spec.home.copy()
    q[g] = ctl.gripper_open
    per_step = min(spec.velocity_limit[g] * spec.control_period, spec.max_step[g])
    closing = ctl.targets(q, None, gripper=1.0)
    assert 0 < abs(closing[g] - q[g]) <= per_step
    assert np.sign(closing[g] - q[g]) == np.sign(ctl.gripper_closed - ctl.gripper_open)
    np.testing.assert_array_equal(np.delete(closing, g), np.delete(q, g))
    for _ in range(200):
        q = ctl.targets(q, None, gripper=1.0)
    assert q[g] == pytest.approx(ctl.gripper_closed)
    assert ctl.targets(q, None, gripper=None)[g] == q[g]


def test_an_explicit_mjcf_path_is_the_ik_model() -> None:
    spec = preset_spec("so101")
    path = robot_mjcf_path(spec.model)
    ctl = EndEffectorController(spec, "gripperframe", model=path)
    fk = ForwardKinematics.for_robot(spec, str(path))
    q = spec.home.copy()
    assert fk(ctl.targets(q, np.array([0.003, 0, 0, 0, 0, 0])))[0] > fk(q)[0]


def test_errors_name_the_problem() -> None:
    spec = preset_spec("so101")
    with pytest.raises(EndEffectorError, match="no site 'tool0'"):
        EndEffectorController(spec, "tool0")
    ctl = EndEffectorController(spec)
    with pytest.raises(EndEffectorError, match=r"q_now has shape \(5,\), expected \(6,\)"):
        ctl.targets(np.zeros(5), np.zeros(6))
    with pytest.raises(EndEffectorError, match="ee_delta"):
        ctl.targets(spec.home, np.array([np.nan, 0, 0, 0, 0, 0]))
    with pytest.raises(EndEffectorError, match="gripper"):
        ctl.targets(spec.home, None, gripper=1.5)
