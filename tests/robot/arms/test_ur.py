"""UR driver at the ur_rtde API boundary: servoJ streaming, watchdog, latched stops."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from robot.arm_interface import ArmError
from robot.arms.ur import URArm, URConfig
from robot.schema import RobotSpec
from tests.robot.arms.ur_fake import FakeUR

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3"]


def spec(upper=6.2, velocity=1.0) -> RobotSpec:
    return RobotSpec.from_mapping(
        {
            "name": "ur5e",
            "joint_names": JOINTS,
            "limits": {
                "position_lower": [-6.2] * 6,
                "position_upper": [upper] + [6.2] * 5,
                "velocity": [velocity] * 6,
                "acceleration": [5.0] * 6,
                "max_step": [0.05] * 6,
            },
            "home": [0.0, -1.57, 1.57, -1.57, -1.57, 0.0],
            "workspace": {"lower": [-1, -1, 0], "upper": [1, 1, 1]},
            "control_hz": 50,
        }
    )


@pytest.fixture
def rtde_port():
    """A listening socket standing in for the robot's RTDE port (the reachability probe)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    yield srv.getsockname()[1]
    srv.close()


def wait_for(cond, timeout=2.0, what="condition"):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def make(fake, port, s=None, **kw):
    cfg = URConfig(model="ur5e", host="127.0.0.1", rtde_port=port, servo_hz=100, **kw)
    return URArm(s or spec(), cfg, sdk=fake.sdk())


def test_streams_servoj_with_configured_lookahead_and_gain(rtde_port):
    fake = FakeUR()
    arm = make(fake, rtde_port, lookahead=0.05, gain=500)
    assert fake.watchdog_hz == 0  # constructor: no I/O
    arm.connect()
    try:
        assert fake.watchdog_hz == 10.0  # armed at connect
        arm.enable()
        target = np.array(fake.q) + 0.02
        arm.send(target)
        wait_for(lambda: np.allclose(fake.q, target), what="servoJ to reach the target")
        _, t, lookahead, gain = fake.servo_calls[-1]
        assert (t, lookahead, gain) == (pytest.approx(0.01), 0.05, 500)
        # interpolation: the first servoJ after a new target is between old and new
        first = [c[0] for c in fake.servo_calls if not np.allclose(c[0], fake.servo_calls[0][0])]
        assert 0 < first[0][0] - (target[0] - 0.02) < 0.02 + 1e-9
        np.testing.assert_allclose(arm.read().position, target)
    finally:
        arm.close()


def test_protective_stop_mid_motion_latches_a_hold_that_never_clears_itself(rtde_port):
    fake = FakeUR()
    arm = make(fake, rtde_port)
    arm.connect()
    try:
        arm.enable()
        start = np.array(fake.q)
        arm.send(start + 0.01)
        wait_for(lambda: len(fake.servo_calls) > 5, what="streaming")
        fake.protective = True
        wait_for(lambda: arm.fault is not None, what="the fault to latch")
        assert "protective stop" in arm.fault and "127.0.0.1" in arm.fault
        assert fake.servo_stops >= 1
        fake.protective = False  # cleared on the robot: the driver stays latched
        calls = len(fake.servo_calls)
        arm.read()
        held = arm.send(start + 0.04)
        time.sleep(0.1)  # a bounded observation window: nothing may be streamed in it
        assert len(fake.servo_calls) == calls
        assert arm.fault is not None
        np.testing.assert_allclose(held, arm.read().position)
        fake.protective = True
        arm.recover("bob")  # the operator's request: unlock through the dashboard
        assert fake.unlocks == 1 and arm.fault is None
    finally:
        arm.close()


def test_emergency_stop_is_latched_and_recovery_refused_while_pressed(rtde_port):
    fake = FakeUR()
    arm = make(fake, rtde_port)
    arm.connect()
    try:
        arm.enable()
        fake.estop = True
        wait_for(lambda: arm.fault is not None, what="the e-stop to latch")
        assert "emergency stop" in arm.fault
        with pytest.raises(ArmError, match="emergency stop still pressed"):
            arm.recover("bob")
        assert arm.fault is not None
    finally:
        arm.close()


def test_watchdog_expiry_stops_the_robot_and_latches(rtde_port):
    fake = FakeUR()
    arm = make(fake, rtde_port, watchdog_hz=20.0)
    arm.connect()
    try:
        arm.enable()
        wait_for(lambda: len(fake.servo_calls) > 3, what="streaming")
        fake.stall.set()  # this process stalls for 0.3 s > 1/20 s: the robot's watchdog fires
        wait_for(lambda: arm.fault is not None, timeout=3.0, what="watchdog expiry")
        assert "watchdog" in arm.fault and not fake.program_running
        fake.stall.clear()
        arm.recover("carol")
        assert fake.reuploads == 1 and arm.fault is None
    finally:
        arm.close()


def test_unreachable_robot_is_refused_naming_the_address():
    fake = FakeUR()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # bound, not listening: connection refused
        arm = make(fake, closed)
        with pytest.raises(ArmError, match=rf"UR ur5e @ 127.0.0.1: unreachable.*{closed}"):
            arm.connect()


def test_limits_wider_than_the_model_are_refused_before_motion(rtde_port):
    fake = FakeUR()
    arm = make(fake, rtde_port, s=spec(velocity=4.0))
    with pytest.raises(ArmError, match=r"UR ur5e @ 127.0.0.1.*velocity=4 .*3\.142"):
        arm.connect()
    assert fake.servo_calls == [] and not arm.connected


def test_bad_gain_names_the_value():
    with pytest.raises(ArmError, match="gain=5000"):
        URArm(spec(), URConfig(host="10.0.0.2", gain=5000))
