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
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from teleop.device import Button, DeviceNotFoundError, DeviceReadError, TeleopConfigError
from teleop.leader_arm import SO101_JOINTS, LeaderArm, LeaderArmConfig, LeaderState
from teleop.registry import make_device
from tests.teleop.test_keyboard import terminal, type_keys  # noqa: F401 - the pty fixture

PORT = "/dev/ttyFAKE0"
GRIPPER_RANGE = (-0.15, 1.72)
TOLERANCE = 0.08
RATE_HZ = 50.0
# where the policy left the follower (rad; the gripper in the twin's gripper units)
FOLLOWER = np.array([0.4, -0.6, 0.9, 0.3, -0.2, 0.6])


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
        lo, hi = GRIPPER_RANGE
        want = [np.pi / 2, -np.pi / 4, np.pi / 6, 0.0, -np.pi, lo + 0.25 * (hi - lo)]
        arm.observe_follower(np.array(want), 12.5)
        arm.request_engage()
        cmd = arm.read(12.5)
        assert cmd.stamp == 12.5 and cmd.engaged and cmd.ee_delta is None
        np.testing.assert_allclose(cmd.joint_targets, want)
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
        arm.observe_follower(np.array([-np.pi / 2, 0.1]), 0.0)
        arm.request_engage()
        cmd = arm.read(0.0)
        np.testing.assert_allclose(cmd.joint_targets, [-np.pi / 2, 0.1])
        assert cmd.gripper is None
        arm.release()  # e.g. a foot pedal released
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


# -- engaging and releasing --------------------------------------------------------------------


def put_leader(fake: FakeFeetechBus, q: np.ndarray) -> None:
    """Move the simulated leader so that it reads ``q`` in follower units (inverse of the
    device's default conversion: degrees for the body, percent of the range for the gripper)."""
    lo, hi = GRIPPER_RANGE
    for motor, value in zip(SO101_JOINTS, q, strict=True):
        if motor == "gripper":
            fake.positions[motor] = 100.0 * (value - lo) / (hi - lo)
        else:
            fake.positions[motor] = float(np.rad2deg(value))


class Session:
    """Reads the leader at 50 Hz the way the intervention node does: the follower's pose
    first, then the device; the follower stays where the policy left it unless the leader's
    targets move it."""

    def __init__(self, arm: LeaderArm, fake: FakeFeetechBus, follower: np.ndarray) -> None:
        self.arm, self.fake, self.follower = arm, fake, follower.copy()
        self.t = 0.0
        self.commands = []

    def step(self, leader: np.ndarray | None = None):
        if leader is not None:
            put_leader(self.fake, leader)
        self.t += 1.0 / RATE_HZ
        self.arm.observe_follower(self.follower, self.t)
        cmd = self.arm.read(self.t)
        if cmd.joint_targets is not None:
            self.follower = np.asarray(cmd.joint_targets).copy()  # a follower that keeps up
        self.commands.append((cmd, self.arm.state))
        return cmd

    def hold(self, seconds: float):
        return [self.step() for _ in range(round(seconds * RATE_HZ))]

    def move(self, to: np.ndarray, seconds: float):
        start = self.leader()
        n = round(seconds * RATE_HZ)
        return [self.step(start + (to - start) * (i + 1) / n) for i in range(n)]

    def leader(self) -> np.ndarray:
        reading = {f"{m}.pos": v for m, v in self.fake.positions.items()}
        return self.arm.joint_targets_from(reading)[0]


@pytest.fixture
def connected(bus, tmp_path: Path):
    """``connect(**config) -> (arm, fake bus)``, closed at the end."""
    write_calibration_file(tmp_path, "blue")
    arms = []

    def connect(**overrides):
        arm = make(tmp_path, match_tolerance=TOLERANCE, **overrides)
        arm.connect()
        arms.append(arm)
        return arm, bus.instances[-1]

    yield connect
    for arm in arms:
        arm.close()


def test_motion_engages_only_once_the_leader_matches_the_follower(connected) -> None:
    arm, fake = connected(engage="motion", motion_rad=0.05, rest_s=1.0)
    s = Session(arm, fake, FOLLOWER)
    rest = np.zeros(6)
    put_leader(fake, rest)
    # a leader at rest, or barely touched, leaves the policy driving
    assert not any(c.engaged for c in s.hold(0.5))
    s.move(rest + 0.03, 0.2)
    assert arm.state is LeaderState.released and not s.commands[-1][0].engaged
    # moved beyond motion_rad: control asked for; the follower holds while the leader is far
    halfway = s.move(rest + 0.5 * (FOLLOWER - rest), 0.6)
    assert arm.state is LeaderState.matching
    first_ask = next(i for i, (c, _) in enumerate(s.commands) if c.engaged)
    assert all(c.joint_targets is None for c, _ in s.commands)
    assert all(st is LeaderState.matching for _, st in s.commands[first_ask:])
    assert all(c.engaged for c in halfway[-5:])  # the person holds control: the policy stops
    assert "shoulder_lift" in arm.prompt() and "elbow_flex" in arm.prompt()
    follower_before = s.follower.copy()
    s.move(FOLLOWER, 0.8)
    # control passed, and its first target is within the tolerance of the follower
    targets = [
        (c.joint_targets, i) for i, (c, _) in enumerate(s.commands) if c.joint_targets is not None
    ]
    assert targets, "the leader reached the follower's pose but never took control"
    first, at = targets[0]
    assert np.abs(first - follower_before).max() <= TOLERANCE
    assert s.commands[at][1] is LeaderState.engaged and arm.prompt() is None
    # not one step before it was within the tolerance
    for cmd, _ in s.commands[:at]:
        assert cmd.joint_targets is None
    # engaged, the follower follows the leader
    s.move(FOLLOWER + 0.2, 0.5)
    np.testing.assert_allclose(s.commands[-1][0].joint_targets, FOLLOWER + 0.2, atol=1e-9)


def test_motion_rest_hands_back_and_the_next_engage_matches_again(connected) -> None:
    arm, fake = connected(engage="motion", motion_rad=0.05, rest_s=1.0)
    s = Session(arm, fake, FOLLOWER)
    put_leader(fake, FOLLOWER - 0.2)
    s.hold(0.2)
    s.move(FOLLOWER, 0.5)
    assert arm.state is LeaderState.engaged
    # let go: after rest_s of stillness control goes back to the policy
    held = s.hold(1.2)
    assert arm.state is LeaderState.released and not held[-1].engaged
    release_at = next(i for i, c in enumerate(held) if not c.engaged)
    # rest_s after it stopped, or a little less: the end of a slow move is already "still"
    assert 0.7 * RATE_HZ <= release_at <= 1.0 * RATE_HZ + 1
    # the policy moves the follower on; touching the leader asks again, and nothing moves
    # the follower until the leader is back on its (new) pose
    s.follower = FOLLOWER + np.array([0.5, 0.3, -0.4, 0.0, 0.2, 0.0])
    s.move(FOLLOWER + 0.1, 0.3)
    assert arm.state is LeaderState.matching
    assert all(c.joint_targets is None for c, _ in s.commands[-15:])
    assert "shoulder_pan" in arm.prompt()
    s.move(s.follower, 0.6)
    assert arm.state is LeaderState.engaged


def test_motion_request_is_dropped_when_the_leader_rests_unmatched(connected) -> None:
    arm, fake = connected(engage="motion", motion_rad=0.05, rest_s=0.5)
    s = Session(arm, fake, FOLLOWER)
    put_leader(fake, np.zeros(6))
    s.hold(0.1)
    s.move(np.full(6, 0.2), 0.2)  # bumped, far from the follower
    assert arm.state is LeaderState.matching
    s.hold(0.7)
    assert arm.state is LeaderState.released and not s.commands[-1][0].engaged


def test_key_mode_toggles_and_still_needs_the_match(connected, terminal) -> None:  # noqa: F811
    master, slave = terminal
    arm, fake = connected(engage="key", key_fd=slave)
    s = Session(arm, fake, FOLLOWER)
    put_leader(fake, FOLLOWER)
    # matched but not asked: the policy keeps driving, however the leader moves
    s.move(FOLLOWER + 0.3, 0.2)
    s.move(FOLLOWER, 0.2)
    assert arm.state is LeaderState.released
    assert not any(c.engaged for c, _ in s.commands)
    put_leader(fake, FOLLOWER + np.array([0.0, 0.3, 0.0, 0.0, 0.0, 0.0]))
    type_keys(master, slave, b" ")
    cmd = s.step()
    assert Button.ENGAGE in cmd.buttons and cmd.engaged and cmd.joint_targets is None
    assert arm.state is LeaderState.matching and "shoulder_lift -0.30 rad" in arm.prompt()
    cmd = s.step(FOLLOWER + 0.01)
    assert arm.state is LeaderState.engaged
    assert np.abs(cmd.joint_targets - FOLLOWER).max() <= TOLERANCE
    # resting does not release in key mode; the key does, and Enter is a verdict
    s.hold(0.5)
    assert arm.state is LeaderState.engaged
    type_keys(master, slave, b" \n")
    cmd = s.step()
    assert arm.state is LeaderState.released and not cmd.engaged
    assert Button.SUCCESS in cmd.buttons and cmd.joint_targets is None
    arm.close()  # restores the terminal while it is still open


def test_key_mode_needs_a_terminal(bus, tmp_path: Path) -> None:
    write_calibration_file(tmp_path, "blue")
    r, w = os.pipe()
    try:
        arm = make(tmp_path, engage="key", key_fd=r)
        with pytest.raises(DeviceNotFoundError, match="not a terminal"):
            arm.connect()
        assert not arm.connected
    finally:
        os.close(r), os.close(w)


def test_without_a_recent_follower_pose_control_never_passes(connected) -> None:
    arm, fake = connected(engage="always", follower_timeout_s=0.2)
    put_leader(fake, FOLLOWER)
    cmd = arm.read(1.0)  # no follower pose yet
    assert cmd.engaged and cmd.joint_targets is None and "waiting for the follower" in arm.prompt()
    arm.observe_follower(FOLLOWER, 1.0)
    assert arm.read(1.5).joint_targets is None  # 0.5 s old: stale
    arm.observe_follower(FOLLOWER, 1.5)
    cmd = arm.read(1.52)
    np.testing.assert_allclose(cmd.joint_targets, FOLLOWER, atol=1e-9)
    # always: resting never hands back, release() matches again
    for k in range(100):
        arm.observe_follower(FOLLOWER, 2.0 + k / RATE_HZ)
        assert arm.read(2.0 + k / RATE_HZ).joint_targets is not None
    arm.release()
    arm.observe_follower(FOLLOWER + 0.5, 4.0)
    cmd = arm.read(4.0)
    assert arm.state is LeaderState.matching and cmd.engaged and cmd.joint_targets is None


def test_a_follower_with_other_joints_is_refused(connected) -> None:
    arm, _ = connected()
    with pytest.raises(TeleopConfigError, match="the follower has 7 joints, the leader drives 6"):
        arm.observe_follower(np.zeros(7), 0.0)


def test_engage_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"'engage'='pedal' is not one of \['motion', 'key'"):
        LeaderArmConfig(engage="pedal")
    with pytest.raises(ValueError, match="'match_tolerance'"):
        LeaderArmConfig(match_tolerance=0.0)
    with pytest.raises(ValueError, match="'rest_s'"):
        LeaderArmConfig(rest_s=-1.0)
    assert make_device("leader_arm", engage="key").config.engage.value == "key"
