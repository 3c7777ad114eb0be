"""Franka driver at the franky API boundary (franky-sim cannot keep 1 kHz here; see driver)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from robot.arm_interface import ArmError
from robot.arms.franka import MODELS, FrankaArm, FrankaConfig
from robot.schema import RobotSpec

HOME = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]


def spec(upper0=2.7) -> RobotSpec:
    m = MODELS["fr3"]
    lower = [x + 0.05 for x in m["lower"]] + [0.0]
    upper = [upper0] + [x - 0.05 for x in m["upper"][1:]] + [0.08]
    return RobotSpec.from_mapping(
        {
            "name": "fr3",
            "joint_names": [f"fr3_joint{i}" for i in range(1, 8)] + ["gripper"],
            "gripper_joint": "gripper",
            "limits": {
                "position_lower": lower,
                "position_upper": upper,
                "velocity": [1.0] * 7 + [0.1],
                "acceleration": [5.0] * 8,
                "max_step": [0.05] * 8,
            },
            "home": [*HOME, 0.04],
            "workspace": {"lower": [-1, -1, 0], "upper": [1, 1, 1]},
            "control_hz": 20,
        }
    )


class Reflex(Exception):
    pass


def fake_franky():
    """A ``franky`` stand-in: class and method names as franky 2.0 has them."""
    log = SimpleNamespace(
        moves=[], references=[], stops=0, recoveries=0, pending=None, q=list(HOME)
    )

    class JointState:
        def __init__(self, position, velocity=None):
            self.position = np.asarray(position)
            self.velocity = np.zeros(7) if velocity is None else velocity

    class JointMotion:
        def __init__(
            self,
            target,
            reference_type=None,
            relative_dynamics_factor=1.0,
            return_when_finished=True,
        ):
            self.target, self.return_when_finished = target, return_when_finished

    class Tracking:
        def __init__(self, **kw):
            self.kw = kw

        def set_reference(self, ref):
            log.references.append(ref)
            log.q = list(ref.q)

    class JointReference:
        def __init__(self, q=None, dq=None, tau_ff=None):
            self.q = np.asarray(q)

    class Robot:
        def __init__(self, host, **kw):
            if host == "10.255.255.1":
                raise RuntimeError("libfranka: Connection timeout")
            self.relative_dynamics_factor = 1.0
            self.has_errors = False

        @property
        def current_joint_state(self):
            return JointState(log.q)

        def move(self, motion, asynchronous=False):
            log.moves.append(motion)
            if isinstance(motion, JointMotion):
                log.q = list(motion.target.position)

        def poll_motion(self):
            if log.pending is not None:
                exc, log.pending = log.pending, None
                self.has_errors = True
                raise exc
            return True

        def stop(self):
            log.stops += 1

        def recover_from_errors(self):
            log.recoveries += 1
            self.has_errors = False
            return True

    fr = SimpleNamespace(
        Robot=Robot,
        JointMotion=JointMotion,
        JointState=JointState,
        JointReference=JointReference,
        JointImpedanceTrackingMotion=Tracking,
        CartesianImpedanceTrackingMotion=Tracking,
        JointStopMotion=lambda: "stop",
        RealtimeConfig=SimpleNamespace(Ignore="ignore"),
    )
    return fr, log


def test_joint_mode_streams_asynchronous_joint_motions():
    fr, log = fake_franky()
    arm = FrankaArm(spec(), FrankaConfig(host="10.0.0.2", dynamics_factor=0.3), franky=fr)
    arm.connect()
    arm.enable()
    target = np.array([*HOME, 0.02])
    target[0] += 0.05
    sent = arm.send(target)
    np.testing.assert_allclose(sent, target)
    motion = log.moves[-1]
    assert not motion.return_when_finished
    np.testing.assert_allclose(motion.target.position, target[:7])
    np.testing.assert_allclose(arm.read().position[:7], target[:7])
    arm.close()
    assert log.stops >= 1


def test_joint_impedance_sets_references_on_one_tracking_motion():
    fr, log = fake_franky()
    arm = FrankaArm(spec(), FrankaConfig(host="10.0.0.2", mode="joint_impedance"), franky=fr)
    arm.connect()
    arm.enable()
    for k in range(3):
        arm.send(np.array([*HOME, 0.0]) + 0.01 * k)
    assert len(log.moves) == 1 and len(log.references) == 3
    arm.close()


def test_reflex_latches_and_only_operator_recovery_clears_it():
    fr, log = fake_franky()
    arm = FrankaArm(spec(), FrankaConfig(host="10.0.0.2"), franky=fr)
    arm.connect()
    arm.enable()
    arm.send(np.array([*HOME, 0.0]))
    log.pending = Reflex("cartesian_reflex: collision detected")
    moves = len(log.moves)
    held = arm.send(np.array([*HOME, 0.0]) + 0.05)
    assert "cartesian_reflex" in arm.fault and "10.0.0.2" in arm.fault
    assert len(log.moves) == moves  # nothing new commanded
    np.testing.assert_allclose(held[:7], HOME)
    arm.send(np.array([*HOME, 0.0]) + 0.05)
    assert arm.fault is not None and log.recoveries == 0
    arm.recover("dave")
    assert arm.fault is None and log.recoveries == 1
    arm.close()


def test_unreachable_robot_names_the_address():
    fr, _ = fake_franky()
    arm = FrankaArm(spec(), FrankaConfig(host="10.255.255.1"), franky=fr)
    with pytest.raises(ArmError, match=r"Franka fr3 @ 10\.255\.255\.1.*timeout"):
        arm.connect()


def test_limits_wider_than_the_datasheet_are_refused():
    fr, log = fake_franky()
    arm = FrankaArm(spec(upper0=2.9), FrankaConfig(host="10.0.0.2"), franky=fr)
    with pytest.raises(ArmError, match=r"'fr3_joint1' position_upper=2\.9 .*2\.744"):
        arm.connect()
    assert log.moves == []
