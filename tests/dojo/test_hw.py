"""Real-hardware presets, the camera group, and ``dojo hw`` (check runs on a simulated bus)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from dojo import conf, graph, hw
from tests.robot.arms.conftest import slow_serial_adapters  # noqa: F401 - autouse fixture
from tests.robot.arms.feetech_sim import FeetechBusSim

REAL = ("so101", "ur5e", "fr3", "xarm6")


@pytest.mark.parametrize("robot", REAL)
def test_every_real_preset_composes_with_limits_and_kinematics(robot):
    from robot.arms.dh_kinematics import forward_kinematics

    cfg = conf.load([f"robot={robot}"])
    spec = conf.robot_spec(cfg)
    assert cfg.robot.driver != "sim"
    ee = forward_kinematics(spec, cfg.robot.model)(spec.home)
    assert all(spec.workspace_lower <= ee) and all(ee <= spec.workspace_upper), ee


@pytest.mark.parametrize("camera", ["none", "realsense", "realsense_pair", "uvc"])
def test_camera_presets_compose_and_join_a_real_robots_spec(camera):
    cfg = conf.load(["robot=so101", f"camera={camera}"])
    names = [d["name"] for d in conf.camera_devices(cfg)]
    assert [c.name for c in conf.robot_spec(cfg).cameras] == names
    nodes = [n for n in graph.build(cfg, Path("c.yaml")) if n.module == "dojo.nodes.camera"]
    assert [n.parameters["camera"] for n in nodes] == names


def test_misspelt_driver_camera_preset_and_device_option_name_the_fix():
    with pytest.raises(conf.ConfigError, match="did you mean 'so101'"):
        conf.load(["robot=so101", "robot.driver=so1O1"])
    with pytest.raises(conf.ConfigError, match="did you mean 'camera=realsense'"):
        conf.load(["camera=realsens"])
    with pytest.raises(conf.ConfigError, match=r"robot.device.*did you mean 'port'"):
        conf.load(["robot=so101", "+robot.device.prot=/dev/ttyACM1"])
    with pytest.raises(conf.ConfigError, match=r"camera.devices\[0\].*front.*twin"):
        conf.load(["camera=uvc"])  # the twin already has a 'front' camera


def test_sim_graph_is_unchanged_by_the_camera_group():
    cfg = conf.load([])
    assert not [n for n in graph.build(cfg, Path("c.yaml")) if n.module == "dojo.nodes.camera"]


@pytest.fixture
def bus():
    sim = FeetechBusSim()
    yield sim
    sim.close()


def calibration(tmp_path, lo, hi):
    from robot.arms.lerobot_arm import MOTORS

    cal = {
        m: {"id": i + 1, "drive_mode": 0, "homing_offset": 0, "range_min": lo, "range_max": hi}
        for i, m in enumerate(MOTORS)
    }
    (tmp_path / "arm1.json").write_text(json.dumps(cal))
    return [f"robot.device.calibration_dir={tmp_path}", "robot.device.id=arm1"]


def test_check_connects_reads_and_moves_nothing(bus, tmp_path):
    out = io.StringIO()
    code = hw.check(
        ["robot=so101", f"robot.device.port={bus.port}", *calibration(tmp_path, 0, 4095)], out
    )
    text = out.getvalue()
    assert code == 0, text
    assert "SO-101 on" in text and "shoulder_pan" in text and "nothing was moved" in text
    # every goal written is "stay where you are" (sync writes have no reply: let them land,
    # i.e. wait, bounded, until the emulator has seen no new request for 0.1 s)
    end = time.monotonic() + 2.0
    seen = -1
    while seen != bus.requests and time.monotonic() < end:
        seen = bus.requests
        time.sleep(0.1)
    assert all(g[i] == bus.get(i, "Present_Position") for g in bus.goal_writes for i in g)
    assert bus.goal_writes, "the check wrote the hold goal before torque came on"


def test_check_refuses_limits_wider_than_the_calibrated_range(bus, tmp_path):
    out = io.StringIO()
    code = hw.check(
        ["robot=so101", f"robot.device.port={bus.port}", *calibration(tmp_path, 1024, 3072)], out
    )
    assert code == 2
    assert "'shoulder_pan' position_lower=-1.9 rad is below the device's -1.571" in out.getvalue()
    assert bus.requests == 0


def test_check_refuses_a_port_that_is_not_a_motor_bus(tmp_path):
    import os

    master, slave = os.openpty()
    try:
        out = io.StringIO()
        port = os.ttyname(slave)
        code = hw.check(
            [
                "robot=so101",
                f"robot.device.port={port}",
                "+robot.device.connect_attempts=1",
                *calibration(tmp_path, 0, 4095),
            ],
            out,
        )
        assert code == 2 and f"is {port} the arm's motor bus" in out.getvalue()
    finally:
        os.close(master)
        os.close(slave)


def test_find_commands_run_without_hardware(capsys):
    assert hw.main(["find-port", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    assert hw.main(["find-cameras", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_check_refuses_a_realsense_serial_that_is_not_attached(bus, tmp_path):
    pytest.importorskip("pyrealsense2")
    out = io.StringIO()
    code = hw.check(
        [
            "robot=so101",
            f"robot.device.port={bus.port}",
            *calibration(tmp_path, 0, 4095),
            "camera=realsense",
            "camera.devices.0.realsense.serial=000000000042",
        ],
        out,
    )
    assert code == 2
    assert "RealSense serial '000000000042' is not attached" in out.getvalue()


def test_probe_finds_feetech_and_dynamixel_servos_and_nothing_on_a_silent_port():
    import os

    from tests.robot.arms.dynamixel_sim import DynamixelBusSim

    feetech = FeetechBusSim(ids=(1, 2, 3))
    dxl = DynamixelBusSim({1: "xl430-w250", 6: "xl330-m288"})
    master, slave = os.openpty()
    try:
        assert hw.probe_port(feetech.port) == {"feetech": {1: 777, 2: 777, 3: 777}}
        assert hw.probe_port(dxl.port) == {"dynamixel": {1: 1060, 6: 1200}}
        assert hw.probe_port(os.ttyname(slave)) == {}
        assert feetech.goal_writes == [] and dxl.goal_writes == []  # a ping moves nothing
    finally:
        feetech.close()
        dxl.close()
        os.close(master)
        os.close(slave)
