"""SO-101 leader arm: LeRobot's real ``SOLeader`` (connect, configure, calibration file
loading, ``get_action``) over a simulated Feetech bus.

Level reached: the bus is faked at the public API of ``lerobot.motors.feetech.FeetechMotorsBus``
(``connect``/``disconnect``/``is_calibrated``/``write_calibration``/``sync_read``...), patched
into the module ``SOLeader`` takes it from. LeRobot's own serial-level mock (``MockMotors`` on
``mock_serial`` with ``scservo_sdk``) lives in LeRobot's test tree, not in its wheel, and needs
``feetech-servo-sdk``, ``pyserial`` and ``mock-serial``, which the project does not install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from teleop.device import DeviceNotFoundError, DeviceReadError
from teleop.leader_arm import SO101_JOINTS, LeaderArm, LeaderArmConfig
from teleop.registry import make_device

PORT = "/dev/ttyFAKE0"
GRIPPER_RANGE = (-0.15, 1.72)


class FakeFeetechBus:
    """The public API of LeRobot's FeetechMotorsBus that SOLeader uses, on simulated motors.

    ``positions``: what ``sync_read("Present_Position")`` returns, in LeRobot's normalised
    units (degrees for the body with ``use_degrees=True``, 0..100 for the gripper).
    ``motor_calibration``: what the motors' EEPROM holds. ``read_error``: raised by reads.
    """

    instances: ClassVar[list[FakeFeetechBus]] = []
    present = True  # False: nothing answers on the port
    eeprom_differs = False  # True: the motors hold another calibration than the file

    def __init__(self, port, motors, calibration=None, protocol_version=0) -> None:
        self.port = port
        self.motors = motors
        self.calibration = calibration or {}
        self.motor_calibration = {} if FakeFeetechBus.eeprom_differs else dict(self.calibration)
        self.positions = dict.fromkeys(motors, 0.0)
        self.read_error: Exception | None = None
        self.writes: list[tuple[str, str, int]] = []
        self.calibration_writes = 0
        self._connected = False
        FakeFeetechBus.instances.append(self)

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, handshake: bool = True) -> None:
        if not FakeFeetechBus.present:
            raise ConnectionError(f"Could not connect on port '{self.port}'.")
        self._connected = True

    def disconnect(self, disable_torque: bool = True) -> None:
        self._connected = False

    @property
    def is_calibrated(self) -> bool:
        return self.motor_calibration == self.calibration

    def write_calibration(self, calibration_dict, cache: bool = True) -> None:
        self.calibration_writes += 1
        self.motor_calibration = dict(calibration_dict)
        if cache:
            self.calibration = calibration_dict

    def disable_torque(self, motors=None, num_retry: int = 0) -> None:
        pass

    def configure_motors(self, *args, **kwargs) -> None:
        pass

    def write(self, data_name: str, motor: str, value, **kwargs) -> None:
        self.writes.append((data_name, motor, value))

    def sync_read(self, data_name: str, motors=None, *, normalize=True, num_retry: int = 0):
        assert data_name == "Present_Position"
        if self.read_error is not None:
            raise self.read_error
        return dict(self.positions)


@pytest.fixture
def bus(monkeypatch: pytest.MonkeyPatch) -> type[FakeFeetechBus]:
    FakeFeetechBus.instances = []
    FakeFeetechBus.present = True
    FakeFeetechBus.eeprom_differs = False
    so_leader_module = pytest.importorskip("lerobot.teleoperators.so_leader.so_leader")
    monkeypatch.setattr(so_leader_module, "FeetechMotorsBus", FakeFeetechBus)
    return FakeFeetechBus


def write_calibration_file(directory: Path, arm_id: str) -> Path:
    """A calibration file in the format LeRobot's ``lerobot-calibrate`` writes."""
    calib = {
        motor: {
            "id": i,
            "drive_mode": 0,
            "homing_offset": 10 * i,
            "range_min": 800,
            "range_max": 3300,
        }
        for i, motor in enumerate(SO101_JOINTS, start=1)
    }
    path = directory / f"{arm_id}.json"
    path.write_text(json.dumps(calib, indent=4))
    return path


def make(tmp_path: Path, **overrides) -> LeaderArm:
    base = dict(port=PORT, id="blue", calibration_dir=str(tmp_path), gripper_range=GRIPPER_RANGE)
    base.update(overrides)
    return LeaderArm(LeaderArmConfig(**base))


def test_no_io_in_constructor(bus, tmp_path: Path) -> None:
    make(tmp_path)
    assert bus.instances == []


def test_refuses_without_calibration_and_says_how(bus, tmp_path: Path) -> None:
    arm = make(tmp_path)
    with pytest.raises(DeviceNotFoundError) as err:
        arm.connect()
    msg = str(err.value)
    assert msg.startswith(f"SO-101 leader arm 'blue' on {PORT}: no calibration file")
    assert "lerobot-calibrate --teleop.type=so101_leader" in msg and "--teleop.id=blue" in msg
    assert not bus.instances[0].is_connected  # never asked anything, never opened the port


def test_reads_joints_in_follower_order_and_units(bus, tmp_path: Path) -> None:
    write_calibration_file(tmp_path, "blue")
    with make(tmp_path) as arm:
        fake = bus.instances[-1]
        assert fake.is_connected and fake.port == PORT
        # LeRobot configured the motors as a leader: position mode on every motor
        assert {m for name, m, _ in fake.writes if name == "Operating_Mode"} == set(SO101_JOINTS)
        fake.positions = {
            "shoulder_pan": 90.0,
            "shoulder_lift": -45.0,
            "elbow_flex": 30.0,
            "wrist_flex": 0.0,
            "wrist_roll": -180.0,
            "gripper": 25.0,
        }
        cmd = arm.read(12.5)
        assert cmd.stamp == 12.5 and cmd.engaged and cmd.ee_delta is None
        lo, hi = GRIPPER_RANGE
        np.testing.assert_allclose(
            cmd.joint_targets,
            [np.pi / 2, -np.pi / 4, np.pi / 6, 0.0, -np.pi, lo + 0.25 * (hi - lo)],
        )
        assert cmd.gripper == pytest.approx(0.75)  # 25 % open = 75 % closed
    assert not fake.is_connected


def test_calibration_from_the_file_reaches_the_motors(bus, tmp_path: Path) -> None:
    write_calibration_file(tmp_path, "blue")
    bus.eeprom_differs = True
    with make(tmp_path):
        fake = bus.instances[-1]
        assert fake.calibration_writes == 1
        assert fake.is_calibrated
        assert fake.motor_calibration["shoulder_lift"].homing_offset == 20


def test_read_failure_names_the_device(bus, tmp_path: Path) -> None:
    write_calibration_file(tmp_path, "blue")
    with make(tmp_path) as arm:
        bus.instances[-1].read_error = ConnectionError(
            "Failed to sync read 'Present_Position' on ids=[1, 2, 3, 4, 5, 6] after 3 tries."
        )
        with pytest.raises(DeviceReadError) as err:
            arm.read(0.0)
    msg = str(err.value)
    assert msg.startswith(f"SO-101 leader arm 'blue' on {PORT}: read failed (ConnectionError:")
    assert "Present_Position" in msg


def test_unplugged_at_connect(bus, tmp_path: Path) -> None:
    write_calibration_file(tmp_path, "blue")
    bus.present = False
    arm = make(tmp_path)
    with pytest.raises(DeviceNotFoundError, match=rf"{PORT}: cannot connect .*plugged in"):
        arm.connect()
    assert not arm.connected


def test_custom_order_signs_and_offsets(bus, tmp_path: Path) -> None:
    write_calibration_file(tmp_path, "blue")
    arm = make(
        tmp_path,
        joint_names=("pan", "lift"),
        motor_names=("shoulder_pan", "shoulder_lift"),
        gripper_joint=None,
        signs=(-1.0, 1.0),
        offsets=(0.0, 0.1),
    )
    with arm:
        bus.instances[-1].positions.update(shoulder_pan=90.0, shoulder_lift=0.0)
        cmd = arm.read(0.0)
        np.testing.assert_allclose(cmd.joint_targets, [-np.pi / 2, 0.1])
        assert cmd.gripper is None
        arm.engaged = False  # e.g. a foot pedal released
        assert not arm.read(0.1).engaged


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="'motor_names'"):
        LeaderArmConfig(motor_names=("elbow",) * 6)
    with pytest.raises(ValueError, match="'signs'"):
        LeaderArmConfig(signs=(1.0,))
    with pytest.raises(ValueError, match="'gripper_joint'"):
        LeaderArmConfig(joint_names=("shoulder_pan",), gripper_joint="gripper")


def test_registry_entry(bus, tmp_path: Path) -> None:
    arm = make_device("leader_arm", port=PORT, id="red", calibration_dir=str(tmp_path))
    assert isinstance(arm, LeaderArm) and arm.config.id == "red"
    assert bus.instances == []
