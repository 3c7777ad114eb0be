"""xArm driver at the xarm-python-sdk API boundary (a fake XArmAPI with its return codes)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from robot.arm_interface import ArmError
from robot.arms.xarm import MODELS, XArm, XArmConfig
from robot.schema import RobotSpec


def spec(lower0=-6.0) -> RobotSpec:
    m = MODELS["xarm6"]
    return RobotSpec.from_mapping(
        {
            "name": "xarm6",
            "joint_names": [f"joint{i}" for i in range(1, 7)],
            "limits": {
                "position_lower": [lower0] + [x + 0.05 for x in m["lower"][1:]],
                "position_upper": [x - 0.05 for x in m["upper"]],
                "velocity": [1.0] * 6,
                "acceleration": [5.0] * 6,
                "max_step": [0.05] * 6,
            },
            "home": [0.0, -0.5, -0.5, 0.0, 0.5, 0.0],
            "workspace": {"lower": [-1, -1, 0], "upper": [1, 1, 1]},
            "control_hz": 30,
        }
    )


class FakeXArmAPI:
    instances: ClassVar[list] = []

    def __init__(self, port=None, is_radian=False, do_not_open=False, **kw):
        assert do_not_open, "the driver must open in connect(), not in the constructor"
        self.host, self.connected, self.error_code = port, False, 0
        self.q = [0.0, -0.5, -0.5, 0.0, 0.5, 0.0]
        self.mode = self.state = None
        self.servo = []
        self.cleaned = 0
        FakeXArmAPI.instances.append(self)

    def connect(self):
        if self.host == "192.0.2.1":
            raise ConnectionError("connect 192.0.2.1:502 timed out")
        self.connected = True

    def disconnect(self):
        self.connected = False

    def get_joint_states(self, is_radian=True):
        return 0, [list(self.q), [0.0] * 6, [0.0] * 6]

    def motion_enable(self, enable=True):
        return 0

    def set_mode(self, mode):
        self.mode = mode
        return 0

    def set_state(self, state):
        self.state = state
        return 0

    def set_servo_angle_j(self, angles, is_radian=True):
        if self.error_code:
            return 1
        self.servo.append(list(angles))
        self.q = list(angles)
        return 0

    def clean_error(self):
        self.cleaned += 1
        self.error_code = 0

    def clean_warn(self):
        pass


def test_servo_mode_streaming_and_a_latched_controller_error():
    arm = XArm(spec(), XArmConfig(host="10.0.0.5"), api=FakeXArmAPI)
    arm.connect()
    fake = FakeXArmAPI.instances[-1]
    arm.enable()
    assert fake.mode == 1 and fake.state == 0
    target = np.array([0.1, -0.5, -0.5, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(arm.send(target), target)
    assert fake.servo[-1] == pytest.approx(target.tolist())
    fake.error_code = 31  # collision: the controller stopped the arm
    n = len(fake.servo)
    held = arm.send(target + 0.05)
    assert "error_code 31" in arm.fault and "10.0.0.5" in arm.fault
    assert len(fake.servo) == n and fake.state == 4
    np.testing.assert_allclose(held, target)
    arm.recover("erin")
    assert arm.fault is None and fake.cleaned == 1 and fake.mode == 1
    arm.close()
    assert not fake.connected


def test_unreachable_address_is_named():
    arm = XArm(spec(), XArmConfig(host="192.0.2.1"), api=FakeXArmAPI)
    with pytest.raises(ArmError, match=r"xarm6 @ 192\.0\.2\.1: unreachable"):
        arm.connect()


def test_limits_wider_than_the_model_are_refused():
    arm = XArm(spec(lower0=-7.0), XArmConfig(host="10.0.0.5"), api=FakeXArmAPI)
    with pytest.raises(ArmError, match=r"'joint1' position_lower=-7 .*-6\.283"):
        arm.connect()
    assert FakeXArmAPI.instances[-1].servo == []


def test_registry_builds_each_driver_without_io_and_suggests_on_typos():
    from robot.arms.registry import make_arm

    arm = make_arm(spec(), "xarm", {"host": "10.0.0.5", "model": "xarm6"})
    assert isinstance(arm, XArm) and not arm.connected
    with pytest.raises(ArmError, match="did you mean 'xarm'"):
        make_arm(spec(), "xarn", {})
    with pytest.raises(ArmError, match="did you mean 'host'"):
        make_arm(spec(), "xarm", {"hots": "10.0.0.5"})
    with pytest.raises(ArmError, match="needs the twin"):
        make_arm(spec(), "sim", {})


def test_joint_states_are_stamped_with_the_injected_clock():
    """One clock for arms and cameras: the driver node passes ROS time; the default is
    time.time, as for cameras."""
    from robot.arms.registry import make_arm

    arm = XArm(spec(), XArmConfig(host="10.0.0.5"), api=FakeXArmAPI, clock=lambda: 1234.5)
    arm.connect()
    assert arm.read().stamp == 1234.5
    built = make_arm(spec(), "xarm", {"host": "10.0.0.5"}, clock=lambda: 42.0)
    assert built.clock() == 42.0
