"""Koch v1.1 through LeRobot's DynamixelMotorsBus over a simulated serial port (protocol 2.0)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

pytest.importorskip("dynamixel_sdk")
pytest.importorskip("lerobot.robots.koch_follower")

from robot.arms.hardware_arm import ArmFault
from robot.arms.lerobot_arm import MOTORS, LeRobotArm, LeRobotArmConfig
from tests.robot.arms.dynamixel_sim import DynamixelBusSim
from tests.robot.arms.test_so101 import settle, spec

KOCH = {
    1: "xl430-w250",
    2: "xl430-w250",
    3: "xl330-m288",
    4: "xl330-m288",
    5: "xl330-m288",
    6: "xl330-m288",
}


@pytest.fixture
def bus():
    sim = DynamixelBusSim(KOCH)
    yield sim
    sim.close()


@pytest.fixture
def arm(bus, tmp_path):
    cal = {
        m: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 1024, "range_max": 3072}
        for i, m in enumerate(MOTORS)
    }
    (tmp_path / "koch1.json").write_text(json.dumps(cal))
    cfg = LeRobotArmConfig(
        robot_type="koch", port=bus.port, id="koch1", calibration_dir=str(tmp_path)
    )
    a = LeRobotArm(spec(), cfg)
    yield a
    a.close()


def test_connect_configures_calibrates_and_streams(bus, arm):
    assert bus.requests == 0  # constructor: no I/O
    arm.connect()
    assert bus.get(2, "Min_Position_Limit") == 1024  # LeRobot's calibration file, written
    assert bus.get(1, "Operating_Mode") == 4  # LeRobot's configure(): extended position
    np.testing.assert_allclose(arm.read().position[:5], 0.0, atol=1e-3)
    arm.enable()
    target = np.array([0.4, -0.3, 0.2, 0.1, -0.1, 70.0])
    np.testing.assert_allclose(arm.send(target), target)
    expected = round(2048 + 0.4 / (2 * math.pi) * 4096)
    settle(lambda: abs(bus.get(1, "Goal_Position") - expected) <= 1, "the goal to arrive")
    np.testing.assert_allclose(arm.read().position, target, atol=0.2)


def test_bus_loss_latches_a_safe_stop_naming_the_port(bus, arm):
    arm.connect()
    arm.enable()
    arm.send(np.array([0.2, 0, 0, 0, 0, 50.0]))
    measured = arm.read().position
    n = len(bus.goal_writes)
    bus.dead = True
    with pytest.raises(ArmFault, match=rf"Koch v1\.1 on {bus.port}.*did not answer 3 reads"):
        arm.read()
    deadline = time.monotonic() + 2.0
    while len(bus.goal_writes) <= n and time.monotonic() < deadline:
        time.sleep(0.005)
    hold = bus.goal_writes[-1][1]
    assert hold == pytest.approx(2048 + measured[0] / (2 * math.pi) * 4096, abs=1)
