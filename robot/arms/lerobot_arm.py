"""SO-100/SO-101 (Feetech STS3215) and Koch v1.1 (Dynamixel) through LeRobot's robot classes.

LeRobot's ``SOFollower``/``KochFollower`` own the motor bus, its configuration and the
calibration file from LeRobot's own flow (``lerobot-calibrate --robot.type=so101_follower
--robot.id=<id>`` writes ``<calibration_dir>/<id>.json``). This driver never runs that
interactive flow (a node has no stdin): a missing calibration file is refused with the command
to run, and a file that disagrees with the motors is written to them, as LeRobot does when its
operator presses ENTER.

Units: body joints in rad (LeRobot's degrees mode: 0 at the middle of the calibrated range),
the gripper in LeRobot's 0..100 (closed..open), so a preset states ``joint_units: [..., percent]``.
The device limits are the calibrated ranges; a preset wider than them is refused at connect.

Reads retry (``read_retries`` extra attempts, each a full ``sync_read``) so a corrupted status
packet is absorbed; when every attempt fails the bus is declared lost: the arm latches a fault,
the servos are told to hold their last measured position (they hold a goal on their own, so
this is the stop that does not drop a loaded arm, unlike torque off) and ``read`` raises naming
the port. Only ``recover(operator)`` after the bus answers again clears it. Enabling torque
retries as often (it is idempotent); a bus that still does not answer refuses ``enable``.

Test depth: fake hardware. ``tests/robot/arms/test_so101.py`` and ``test_koch.py`` run
LeRobot's real ``FeetechMotorsBus``/``DynamixelMotorsBus`` with ``scservo_sdk``/``dynamixel_sdk``
over a pseudo-terminal, with a protocol-level STS3215 (protocol 0) or X-series (protocol 2.0,
CRC and byte stuffing) emulator on the other end: register memory, ping/read/write/sync
read/sync write, lost replies injected. ``test_driver_node_so101.py`` runs the robot_driver
node process on it. Real arms: ``pytest -m hardware --robot so101 --port /dev/ttyACM0``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot.arm_interface import ArmError
from robot.arms.hardware_arm import ArmFault, HardwareArm
from robot.schema import JointState, RobotSpec

log = logging.getLogger(__name__)

MOTORS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
GRIPPER = "gripper"


@dataclass
class LeRobotArmConfig:
    """``robot_type``: ``so101``, ``so100`` or ``koch``. ``port``: the bus's serial port.
    ``id``: the calibration id (LeRobot's ``--robot.id``). ``calibration_dir``: where LeRobot
    keeps calibrations ("" = LeRobot's default under ``HF_LEROBOT_CALIBRATION``)."""

    robot_type: str = "so101"
    port: str = ""
    id: str = "follower"
    calibration_dir: str = ""
    read_retries: int = 2
    connect_attempts: int = 3  # the handshake pings every motor once; a busy adapter drops one
    # how long to wait for a servo's status packet beyond its bytes' transfer time (0: the
    # SDK's own: 50 ms as LeRobot patches scservo, 34 ms in dynamixel_sdk). A USB-serial
    # adapter with a long latency timer, a hub, or an emulator on a loaded machine answers
    # later; a reply that arrives after the timeout answers the *next* request instead
    reply_timeout_ms: float = 0.0


_MODELS = {"so101": "SO-101", "so100": "SO-100", "koch": "Koch v1.1"}


def _wait_for_replies(port_handler, extra_ms: float) -> None:
    """Make this bus's SDK port wait ``extra_ms`` for a status packet beyond its transfer time
    (both SDKs compute the timeout in ``setPacketTimeout``; this replaces it on this port only,
    as LeRobot's own patch of scservo does, not for every bus in the process)."""

    def set_packet_timeout(packet_length: int) -> None:
        port_handler.packet_start_time = port_handler.getCurrentTime()
        port_handler.packet_timeout = port_handler.tx_time_per_byte * packet_length + extra_ms

    port_handler.setPacketTimeout = set_packet_timeout


class LeRobotArm(HardwareArm):
    """An SO-100/101 or Koch follower arm. See the module docstring."""

    def __init__(
        self,
        spec: RobotSpec,
        config: LeRobotArmConfig,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(spec, clock=clock)
        if config.robot_type not in _MODELS:
            raise ArmError(
                f"robot '{spec.name}': robot_type={config.robot_type!r} is not one of "
                f"{sorted(_MODELS)}"
            )
        if not config.port:
            raise ArmError(f"{_MODELS[config.robot_type]}: no serial port given (driver.port)")
        if tuple(spec.joint_names) != MOTORS:
            raise ArmError(
                f"{_MODELS[config.robot_type]} on {config.port}: joint_names must be "
                f"{list(MOTORS)} (LeRobot's motor names), got {list(spec.joint_names)}"
            )
        if not config.reply_timeout_ms >= 0:
            raise ArmError(
                f"{_MODELS[config.robot_type]} on {config.port}: reply_timeout_ms="
                f"{config.reply_timeout_ms} must be >= 0 (0: the SDK's default)"
            )
        self.config = config
        self._robot = None
        self._prev: tuple[float, np.ndarray] | None = None
        self.read_failures = 0  # attempts that failed, for status and tests

    @property
    def device(self) -> str:
        return f"{_MODELS[self.config.robot_type]} on {self.config.port}"

    # ------------------------------------------------------------------ LeRobot objects

    def _make_robot(self):
        # degrees mode for the body joints (Koch's LeRobot default is -100..100): rad here
        kwargs: dict[str, Any] = {
            "port": self.config.port,
            "id": self.config.id,
            "use_degrees": True,
        }
        if self.config.calibration_dir:
            kwargs["calibration_dir"] = Path(self.config.calibration_dir)
        if self.config.robot_type == "koch":
            from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig

            robot = KochFollower(KochFollowerConfig(**kwargs))
        else:
            from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig

            robot = SOFollower(SOFollowerRobotConfig(**kwargs))
        if self.config.reply_timeout_ms > 0:
            _wait_for_replies(robot.bus.port_handler, self.config.reply_timeout_ms)
        return robot

    @property
    def bus(self):
        if self._robot is None:
            raise ArmError(f"{self.name}: not connected")
        return self._robot.bus

    # ------------------------------------------------------------------ device steps

    def _device_connect(self) -> None:
        robot = self._make_robot()
        if not robot.calibration:
            raise ArmError(
                f"{self.device}: no calibration file {robot.calibration_fpath}; run LeRobot's "
                f"calibration first: lerobot-calibrate --robot.type={robot.name} "
                f"--robot.port={self.config.port} --robot.id={self.config.id}"
            )
        self._robot = robot
        try:
            # the calibrated ranges are the device limits: refuse a wider preset before any I/O
            self._check_device_limits()
            # the whole handshake retries, not only the ping: one lost status packet while the
            # calibration or the present position is read must not kill the driver at start-up
            # (every step is idempotent, and a reopened port starts with an empty buffer)
            for attempt in range(1, max(1, self.config.connect_attempts) + 1):
                try:
                    self._handshake(robot)
                    break
                except Exception as exc:
                    if robot.bus.is_connected:
                        robot.bus.port_handler.closePort()
                    if attempt >= max(1, self.config.connect_attempts):
                        raise ArmError(
                            f"{self.device}: could not connect after {attempt} attempt(s); is "
                            f"{self.config.port} the arm's motor bus? "
                            f"({type(exc).__name__}: {str(exc).strip()})"
                        ) from exc
                    log.warning("%s: connect attempt %d failed: %s", self.device, attempt, exc)
        except BaseException:
            self._robot = None
            if robot.bus.is_connected:
                robot.bus.disconnect(disable_torque=False)
            raise

    def _handshake(self, robot) -> None:
        """Open the bus, make the motors agree with the calibration file, torque on in place."""
        robot.bus.connect()
        if not robot.bus.is_calibrated:
            log.warning(
                "%s: motors disagree with %s; writing the calibration file to them",
                self.device,
                robot.calibration_fpath,
            )
            robot.bus.write_calibration(robot.calibration)
        # LeRobot's configure() ends with torque on: make the goal the present position
        # first, so torque comes on where the arm is instead of at a stale goal
        present = robot.bus.sync_read("Present_Position", normalize=False)
        robot.bus.sync_write("Goal_Position", present, normalize=False)
        robot.configure()

    def device_limits(self) -> tuple[np.ndarray, np.ndarray, None]:
        """The calibrated range of each motor, in the driver's units (rad; gripper 0..100)."""
        lower, upper = [], []
        for motor in MOTORS:
            cal = self.bus.calibration[motor]
            if motor == GRIPPER:
                lower.append(0.0)
                upper.append(100.0)
                continue
            # LeRobot's degrees mode: (raw - mid) * 360 / (resolution - 1)
            max_res = self.bus.model_resolution_table[self.bus.motors[motor].model] - 1
            mid = (cal.range_min + cal.range_max) / 2.0
            lower.append((cal.range_min - mid) * 2 * math.pi / max_res)
            upper.append((cal.range_max - mid) * 2 * math.pi / max_res)
        return np.asarray(lower), np.asarray(upper), None

    def _to_device(self, q: np.ndarray) -> dict[str, float]:
        return {
            m: float(v) if m == GRIPPER else math.degrees(float(v))
            for m, v in zip(MOTORS, q, strict=True)
        }

    def _from_device(self, values: dict[str, float]) -> np.ndarray:
        return np.array(
            [values[m] if m == GRIPPER else math.radians(values[m]) for m in MOTORS],
            dtype=np.float64,
        )

    def _device_read(self) -> JointState:
        if self._fault is not None:
            raise ArmFault(f"{self.name}: read() refused, fault latched: {self._fault}")
        errors = []
        for _ in range(1 + max(0, self.config.read_retries)):
            try:
                values = self.bus.sync_read("Present_Position")
                break
            except (ConnectionError, OSError, RuntimeError) as exc:
                self.read_failures += 1
                errors.append(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc))
        else:
            reason = (
                f"motor bus on {self.config.port} did not answer {len(errors)} reads in a row "
                f"(last: {errors[-1]})"
            )
            self.latch(reason)
            raise ArmFault(f"{self.name}: {reason}; arm stopped, holding its last goal")
        if errors:
            log.warning("%s: read recovered after %d failed attempt(s)", self.name, len(errors))
        now = self.clock()
        q = self._from_device(values)
        velocity = np.zeros_like(q)
        if self._prev is not None and now > self._prev[0]:
            velocity = (q - self._prev[1]) / (now - self._prev[0])
        self._prev = (now, q)
        return JointState(stamp=now, position=q, velocity=velocity)

    def _device_enable(self) -> None:
        # hold where the arm is before (re)enabling torque: no jump to a stale goal
        self.bus.sync_write("Goal_Position", self._to_device(self._device_read().position))
        # torque on is idempotent, so a lost status reply is retried like a read
        self.bus.enable_torque(num_retry=max(0, self.config.read_retries))

    def _device_send(self, q: np.ndarray) -> np.ndarray:
        lower, upper, _ = self.device_limits()
        sent = np.clip(q, lower, upper)
        self.bus.sync_write("Goal_Position", self._to_device(sent))
        return sent

    def _device_hold(self) -> None:
        if self._last_state is not None:
            self.bus.sync_write("Goal_Position", self._to_device(self._last_state.position))

    def _device_disable(self) -> None:
        # Torque stays on: an SO-101 or Koch without torque falls under gravity. Holding the
        # measured position is the disabled state (LeRobot's configure() leaves torque on too).
        pass

    def _device_stop(self) -> None:
        if self._robot is not None and self._last_state is not None:
            self.bus.sync_write("Goal_Position", self._to_device(self._last_state.position))

    def _device_close(self) -> None:
        robot, self._robot = self._robot, None
        if robot is not None and robot.bus.is_connected:
            robot.bus.disconnect(disable_torque=False)

    def _device_recover(self) -> None:
        values = self.bus.sync_read("Present_Position")  # raises if the bus is still lost
        self._last_state = JointState(self.clock(), self._from_device(values), np.zeros(6))
