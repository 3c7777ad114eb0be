"""SO-101 through LeRobot's FeetechMotorsBus over a simulated serial port (fake-hardware layer)."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest

pytest.importorskip("scservo_sdk")
pytest.importorskip("lerobot.robots.so_follower")

from robot.arm_interface import ArmError
from robot.arms.hardware_arm import ArmFault
from robot.arms.lerobot_arm import MOTORS, LeRobotArm, LeRobotArmConfig
from robot.schema import RobotSpec
from tests.robot.arms.feetech_sim import FeetechBusSim

RANGE = (1024, 3072)  # calibrated range of every motor: +-90 degrees around the middle
HALF = (RANGE[1] - 2048) * 2 * math.pi / 4095  # LeRobot's degrees mode: 360 deg = 4095 ticks


def spec(**limits) -> RobotSpec:
    lower = [-1.5] * 5 + [0.0]
    upper = [1.5] * 5 + [100.0]
    lim = {
        "position_lower": lower,
        "position_upper": upper,
        "velocity": [2.0] * 5 + [200.0],
        "acceleration": [15.0] * 5 + [1000.0],
        "max_step": [0.06] * 5 + [5.0],
        **limits,
    }
    return RobotSpec.from_mapping(
        {
            "name": "so101",
            "joint_names": list(MOTORS),
            "joint_units": ["rad"] * 5 + ["percent"],
            "limits": lim,
            "home": [0.0] * 5 + [50.0],
            "workspace": {"lower": [-1, -1, -1], "upper": [1, 1, 1]},
            "control_hz": 30,
        }
    )


@pytest.fixture
def bus():
    sim = FeetechBusSim()
    yield sim
    sim.close()


@pytest.fixture
def calibration(tmp_path):
    cal = {
        m: {
            "id": i + 1,
            "drive_mode": 0,
            "homing_offset": 0,
            "range_min": RANGE[0],
            "range_max": RANGE[1],
        }
        for i, m in enumerate(MOTORS)
    }
    (tmp_path / "arm1.json").write_text(json.dumps(cal))
    return tmp_path


def settle(cond, what, timeout=2.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def make(bus, calibration, s=None, **kw) -> LeRobotArm:
    cfg = LeRobotArmConfig(port=bus.port, id="arm1", calibration_dir=str(calibration), **kw)
    return LeRobotArm(s or spec(), cfg)


def test_constructor_does_no_io(bus, calibration):
    make(bus, calibration)
    assert bus.requests == 0


def test_connect_writes_calibration_reads_state_and_streams_targets(bus, calibration):
    arm = make(bus, calibration)
    arm.connect()
    try:
        # the motors had factory ranges; LeRobot's calibration file was written to them
        assert bus.get(1, "Min_Position_Limit") == RANGE[0]
        assert bus.get(6, "Max_Position_Limit") == RANGE[1]
        state = arm.read()
        np.testing.assert_allclose(state.position[:5], 0.0, atol=1e-3)  # 2048 = mid-range
        assert state.position[5] == pytest.approx(50.0, abs=0.1)
        arm.enable()
        assert bus.get(1, "Torque_Enable") == 1
        target = np.array([0.3, -0.2, 0.1, 0.0, 0.5, 80.0])
        sent = arm.send(target)
        np.testing.assert_allclose(sent, target)
        # a sync write has no reply: wait (bounded) for the emulator to have handled it
        expected = round(2048 + 0.3 / (2 * math.pi) * 4096)
        settle(lambda: abs(bus.get(1, "Goal_Position") - expected) <= 1, "the goal to arrive")
        np.testing.assert_allclose(arm.read().position, target, atol=2e-3 * 100)
        # beyond the calibrated range the driver clamps and reports what it sent
        sent = arm.send(np.array([3.0, 0, 0, 0, 0, 50.0]))
        assert sent[0] == pytest.approx(HALF)
    finally:
        arm.close()
    assert not arm.connected


def test_transient_read_failure_is_absorbed(bus, calibration):
    arm = make(bus, calibration, read_retries=2)
    arm.connect()
    try:
        bus.drop_replies = 1  # one corrupted status packet
        state = arm.read()
        assert arm.read_failures == 1 and arm.fault is None
        assert state.position.shape == (6,)
    finally:
        arm.close()


def test_a_lost_reply_while_enabling_torque_is_retried(bus, calibration, monkeypatch):
    arm = make(bus, calibration, read_retries=2)
    arm.connect()
    try:
        read = arm._device_read

        def read_then_lose_the_next_reply():
            state = read()
            bus.drop_replies = 1  # the first Torque_Enable write's status packet
            return state

        monkeypatch.setattr(arm, "_device_read", read_then_lose_the_next_reply)
        arm.enable()
        assert arm.enabled and bus.get(1, "Torque_Enable") == 1 and bus.drop_replies == 0
    finally:
        arm.close()


def test_a_lost_reply_while_the_calibration_is_read_at_connect_is_retried(bus, calibration):
    arm = make(bus, calibration, connect_attempts=3)
    make_robot = arm._make_robot
    opened = []

    def robot_whose_first_open_loses_the_next_reply():
        robot = make_robot()
        connect = robot.bus.connect

        def connect_then_lose_one(*args, **kwargs):
            connect(*args, **kwargs)
            if not opened:
                bus.drop_replies = 1  # the first calibration register read's status packet
            opened.append(True)

        robot.bus.connect = connect_then_lose_one
        return robot

    arm._make_robot = robot_whose_first_open_loses_the_next_reply
    arm.connect()
    try:
        assert len(opened) == 2 and bus.drop_replies == 0
        assert bus.get(1, "Min_Position_Limit") == RANGE[0]  # the calibration still went on
        assert arm.read().position.shape == (6,)
    finally:
        arm.close()


def test_repeated_read_failures_latch_a_safe_stop(bus, calibration):
    arm = make(bus, calibration, read_retries=2)
    arm.connect()
    arm.enable()
    arm.send(np.array([0.2, 0, 0, 0, 0, 50.0]))
    before = arm.read().position
    writes = len(bus.goal_writes)
    bus.dead = True
    with pytest.raises(ArmFault, match=rf"SO-101 on {bus.port}.*did not answer 3 reads"):
        arm.read()
    assert arm.fault is not None
    # the stop: the servos were told to hold the last measured position (the emulator
    # thread handles the broadcast write asynchronously: wait for it, bounded)
    deadline = time.monotonic() + 2.0
    while len(bus.goal_writes) <= writes and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(bus.goal_writes) > writes
    assert bus.goal_writes[-1][1] == pytest.approx(2048 + before[0] / (2 * math.pi) * 4096, abs=1)
    # latched: sends hold and move nothing, enable is refused, nothing clears it by itself
    bus.dead = False
    held = arm.send(np.array([1.0, 0, 0, 0, 0, 50.0]))
    np.testing.assert_allclose(held, before)
    with pytest.raises(ArmFault):
        arm.read()
    n = len(bus.goal_writes)
    arm.hold()  # a round trip through the emulator: every earlier write has been handled
    deadline = time.monotonic() + 2.0
    while len(bus.goal_writes) <= n and time.monotonic() < deadline:
        time.sleep(0.005)
    assert all(w[1] == bus.goal_writes[writes][1] for w in bus.goal_writes[writes:])
    with pytest.raises(ArmFault):
        arm.enable()
    with pytest.raises(ArmError, match="operator"):
        arm.recover("")
    arm.recover("alice")
    assert arm.fault is None
    arm.close()


def test_limits_wider_than_the_calibrated_range_are_refused_before_motion(bus, calibration):
    wide = spec(position_upper=[2.0] + [1.5] * 4 + [100.0])
    arm = make(bus, calibration, s=wide)
    with pytest.raises(ArmError, match=r"SO-101 on .*'shoulder_pan' position_upper=2 rad .*1\.571"):
        arm.connect()
    assert not arm.connected
    assert bus.requests == 0  # refused from the calibration file, before the bus was touched


def test_a_port_that_is_not_a_motor_bus_is_refused(tmp_path, calibration):
    master, slave = os.openpty()  # a serial port where nothing answers
    try:
        arm = LeRobotArm(
            spec(),
            LeRobotArmConfig(
                port=os.ttyname(slave),
                id="arm1",
                calibration_dir=str(calibration),
                connect_attempts=1,
            ),
        )
        with pytest.raises(ArmError, match=rf"{os.ttyname(slave)}.*motor bus"):
            arm.connect()
    finally:
        os.close(master)
        os.close(slave)


def test_missing_calibration_names_lerobots_command(bus, tmp_path):
    arm = LeRobotArm(
        spec(), LeRobotArmConfig(port=bus.port, id="nobody", calibration_dir=str(tmp_path))
    )
    with pytest.raises(ArmError, match=r"lerobot-calibrate --robot\.type=so"):
        arm.connect()
    assert bus.requests == 0


def test_reply_timeout_waits_longer_for_a_status_packet_on_this_bus_only(bus, calibration):
    arm = make(bus, calibration, reply_timeout_ms=300.0)
    other = make(bus, calibration)
    arm.connect()
    try:
        port = arm.bus.port_handler
        port.setPacketTimeout(10)
        assert port.packet_timeout == pytest.approx(port.tx_time_per_byte * 10 + 300.0)
        default = other._make_robot().bus.port_handler  # another bus keeps the SDK's own
        default.tx_time_per_byte = port.tx_time_per_byte
        default.setPacketTimeout(10)
        assert default.packet_timeout < 300.0
    finally:
        arm.close()
    with pytest.raises(ArmError, match=r"reply_timeout_ms=-1"):
        make(bus, calibration, reply_timeout_ms=-1.0)
