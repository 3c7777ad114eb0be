"""The robot_driver node with ``robot=so101``: the real driver, LeRobot's bus, an emulated arm.

The same node and graph as the twin, changed only by the robot preset: the node process opens
the pty of a protocol-level STS3215 emulator in this process, streams a chunk into it through
SafetyLimits, and dies holding the arm when the bus stops answering.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

pytest.importorskip("scservo_sdk")

from dojo import conf
from dojo.ros import convert, topics
from dojo.ros.env import node_env
from robot.arms.lerobot_arm import MOTORS
from robot.schema import ActionChunk
from tests.integration import conftest as ic
from tests.robot.arms.feetech_sim import FeetechBusSim

CHUNKS = topics.command_chunk(0.5)  # the driver's default command_deadline

pytestmark = pytest.mark.integration

HOME = [0.0, -1.0, 0.6, 1.4, 0.0, 20.0]  # the so101 preset's home


def ticks(q: float) -> int:
    return round(2048 + q / (2 * math.pi) * 4096)


@pytest.fixture
def rig(tmp_path):
    positions = {i + 1: ticks(q) for i, q in enumerate(HOME[:5])}
    positions[6] = round(0.2 * 4095)  # gripper 20 % of its 0..4095 range
    bus = FeetechBusSim(positions=positions)
    cal = {
        m: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": 0, "range_max": 4095}
        for i, m in enumerate(MOTORS)
    }
    (tmp_path / "arm1.json").write_text(json.dumps(cal))
    domain = 20 + next(ic._domains) % 200
    probe = ic.Probe(domain)
    cfg = conf.load(
        [
            "robot=so101",
            f"robot.device.port={bus.port}",
            f"robot.device.calibration_dir={tmp_path}",
            "robot.device.id=arm1",
            # the emulator is a process on a loaded test machine: a slower adapter's timeout,
            # as tests/robot/arms/conftest.py gives the in-process tests
            "robot.device.reply_timeout_ms=250",
            f"out={tmp_path}",
        ]
    )
    cfg_file = tmp_path / "driver.yaml"
    cfg_file.write_text(conf.to_yaml(cfg))
    args = [sys.executable, "-m", "dojo.nodes.robot_driver", "--ros-args"]
    args += [
        "-r",
        "__node:=robot_driver",
        "-p",
        f"config_file:={cfg_file}",
        "-p",
        "autostart:=true",
    ]
    node = ic.NodeProcess(args, node_env(domain), tmp_path / "driver.log")
    yield bus, probe, node
    node.stop()
    probe.close()
    bus.close()


def test_real_driver_streams_a_chunk_to_the_bus_and_dies_holding_when_it_goes_silent(rig):
    bus, probe, node = rig
    probe.record(topics.JOINT_STATES)
    probe.record(topics.DRIVER_STATUS)
    chunk_pub = CHUNKS.publisher(probe.node)
    try:
        ic.wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 5, 60, "joint states")
        ic.wait_until(lambda: chunk_pub.get_subscription_count() > 0, 20, "driver subscribed")
    except AssertionError:
        raise AssertionError(ic.dump_logs_on_failure([node])) from None
    state = convert.joint_state_from_msg(probe.got(topics.JOINT_STATES)[-1], MOTORS)
    np.testing.assert_allclose(state.position, HOME, atol=0.01 * 2)
    # a chunk: shoulder_pan +0.3 rad over 1 s, from the state's stamp (ROS = system time)
    times = np.linspace(0.04, 1.0, 25)
    positions = state.position + np.outer(times, [0.3, 0, 0, 0, 0, 0])
    chunk_pub.publish(convert.chunk_to_msg(ActionChunk(state.stamp, MOTORS, positions, times)))
    target = ticks(0.25)
    try:
        ic.wait_until(lambda: bus.get(1, "Goal_Position") >= target, 10, "shoulder_pan to move")
    except AssertionError:
        raise AssertionError(ic.dump_logs_on_failure([node])) from None
    # SafetyLimits bounded each step: 2 rad/s at 30 Hz is at most ~0.067 rad (44 ticks) a tick
    steps = np.diff([w[1] for w in bus.goal_writes if 1 in w])
    assert np.abs(steps).max() <= 45
    status = json.loads(probe.got(topics.DRIVER_STATUS)[-1].data)
    assert status["arm_fault"] is None
    # the bus goes silent: the driver latches, commands the hold and the node stops, naming it
    bus.dead = True
    node.proc.wait(timeout=30)
    log = node.output()
    assert node.proc.returncode != 0
    assert f"SO-101 on {bus.port}" in log and "did not answer" in log
    last = bus.goal_writes[-1][1]
    assert abs(last - bus.get(1, "Present_Position")) <= 1  # held where it was measured
