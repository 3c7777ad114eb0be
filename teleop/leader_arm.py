"""SO-101 leader arm through LeRobot: the person moves a passive copy of the robot.

Why LeRobot's own ``SOLeader``: it owns the Feetech bus protocol, the motor table and the
calibration format; the calibration a person made with ``lerobot-calibrate`` for this leader
is used as is, so joint zeros agree with every other LeRobot tool. LeRobot is imported inside
``connect()`` (it pulls torch).

What LeRobot returns and what vla-dojo sends: ``SOLeader.get_action()`` gives
``{"<motor>.pos": value}`` with the body joints in degrees (``use_degrees=True``: 0 at the
middle of the calibrated range) and the gripper in percent of its calibrated range (0 .. 100).
This device turns that into ``joint_targets`` in the follower's joint order and units:

    body joint (rad) = sign * radians(degrees) + offset
    gripper (follower units) = gripper_range[0] + pct / 100 * (gripper_range[1] - gripper_range[0])
    TeleopCommand.gripper    = 1 - pct / 100      (LeRobot's range starts closed: 0 % = closed)

The defaults (sign +1, offset 0) fit the SO-101 MJCF ``so101_new_calib.xml`` of the twin,
whose zero pose is LeRobot's mid-range calibration pose; ``gripper_range`` defaults to the
twin's gripper limits (rad, closed .. open).

Frames: a leader arm commands joints, not Cartesian motion, so ``ee_delta`` is None. Joint
angles follow the follower's MJCF axes (right-hand rule about each joint axis)::

      shoulder_pan  about base z      wrist_flex   about its own y (pitch of the hand)
      shoulder_lift about its own y   wrist_roll   about the forearm axis
      elbow_flex    about its own y   gripper      the moving jaw

Calibration: with no calibration file for ``id``, ``connect()`` refuses with the command that
makes one (LeRobot's calibration asks questions with ``input()``, which a driver must never
do). When the motors hold a different calibration than the file, the file's is written to the
motors, as LeRobot does when its calibration prompt is answered with Enter.

Engaging: a leader arm has no deadman of its own; ``engaged`` (config, and the :attr:`engaged`
attribute the caller may set from a pedal or a key) says whether its targets are in control.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teleop.device import (
    DeviceNotFoundError,
    DeviceReadError,
    TeleopCommand,
    TeleopConfigError,
    TeleopDevice,
)

log = logging.getLogger(__name__)

SO101_JOINTS = (
    "shoulder_pan",
    "shoulder_lift",
    "elbow_flex",
    "wrist_flex",
    "wrist_roll",
    "gripper",
)


@dataclass
class LeaderArmConfig:
    """``port``: the leader's serial port. ``id``: LeRobot's id of this leader (the calibration
    file is ``<calibration_dir>/<id>.json``). ``calibration_dir``: default LeRobot's
    (``~/.cache/huggingface/lerobot/calibration/teleoperators/so_leader``).
    ``joint_names``: the follower's joints, in its order. ``motor_names``: the leader motor
    read for each joint (default: the same names). ``gripper_joint``: which joint is the
    gripper (None: no gripper). ``gripper_range``: follower gripper units at 0 % and 100 %.
    ``signs``/``offsets``: per joint, applied to the body joints after degrees -> rad.
    ``engaged``: initial engage state. ``num_read_retries``: LeRobot's retries of a corrupted
    bus read before it fails."""

    port: str = "/dev/ttyACM0"
    id: str = "leader"
    calibration_dir: str | None = None
    joint_names: tuple[str, ...] = SO101_JOINTS
    motor_names: tuple[str, ...] | None = None
    gripper_joint: str | None = "gripper"
    gripper_range: tuple[float, float] = (-0.15, 1.72)
    signs: tuple[float, ...] | None = None
    offsets: tuple[float, ...] | None = None
    engaged: bool = True
    num_read_retries: int = 2

    def __post_init__(self) -> None:
        where = "leader_arm"
        self.joint_names = tuple(self.joint_names)
        d = len(self.joint_names)
        if d == 0:
            raise TeleopConfigError(f"{where}: 'joint_names' is empty")
        motors = tuple(self.motor_names) if self.motor_names is not None else self.joint_names
        if len(motors) != d:
            raise TeleopConfigError(f"{where}: 'motor_names' has {len(motors)} names, not {d}")
        unknown = [m for m in motors if m not in SO101_JOINTS]
        if unknown:
            raise TeleopConfigError(
                f"{where}: 'motor_names' {unknown} are not SO-101 leader motors {SO101_JOINTS}"
            )
        self.motor_names = motors
        if self.gripper_joint is not None and self.gripper_joint not in self.joint_names:
            raise TeleopConfigError(
                f"{where}: 'gripper_joint'={self.gripper_joint!r} is not in 'joint_names'"
            )
        for key in ("signs", "offsets"):
            value = getattr(self, key)
            if value is not None:
                arr = tuple(float(v) for v in value)
                if len(arr) != d or not all(math.isfinite(v) for v in arr):
                    raise TeleopConfigError(f"{where}: '{key}' needs {d} finite values")
                setattr(self, key, arr)
        lo, hi = (float(v) for v in self.gripper_range)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise TeleopConfigError(f"{where}: 'gripper_range' must be finite")
        self.gripper_range = (lo, hi)


class LeaderArm(TeleopDevice):
    """LeRobot's SO-101 leader; see the module docstring for units and calibration."""

    name = "SO-101 leader arm"

    def __init__(self, config: LeaderArmConfig | None = None) -> None:
        super().__init__()
        self.config = config or LeaderArmConfig()
        c = self.config
        d = len(c.joint_names)
        self._signs = np.asarray(c.signs if c.signs is not None else [1.0] * d)
        self._offsets = np.asarray(c.offsets if c.offsets is not None else [0.0] * d)
        self._g = c.joint_names.index(c.gripper_joint) if c.gripper_joint else None
        self.engaged = c.engaged
        self._leader = None

    @property
    def where(self) -> str:
        return f"{self.name} '{self.config.id}' on {self.config.port}"

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self.config.joint_names

    def _connect(self) -> None:
        c = self.config
        try:
            from lerobot.teleoperators.so_leader import SOLeader, SOLeaderTeleopConfig
        except ImportError as exc:
            raise DeviceNotFoundError(
                f"{self.where}: LeRobot with Feetech support is not installed "
                f"(pip install 'lerobot[feetech]'): {exc}"
            ) from exc
        lr_config = SOLeaderTeleopConfig(
            port=c.port,
            id=c.id,
            calibration_dir=Path(c.calibration_dir) if c.calibration_dir else None,
            use_degrees=True,
            num_read_retries=c.num_read_retries,
        )
        try:
            leader = SOLeader(lr_config)
        except (ImportError, ModuleNotFoundError) as exc:
            raise DeviceNotFoundError(
                f"{self.where}: LeRobot's Feetech bus needs its SDK "
                f"(pip install 'lerobot[feetech]'): {exc}"
            ) from exc
        if not leader.calibration:
            raise DeviceNotFoundError(
                f"{self.where}: no calibration file {leader.calibration_fpath}; calibrate once "
                f"with: lerobot-calibrate --teleop.type=so101_leader --teleop.port={c.port} "
                f"--teleop.id={c.id}"
            )
        missing = [m for m in c.motor_names if m not in leader.bus.motors]
        if missing:
            raise TeleopConfigError(f"{self.where}: the leader has no motor(s) {missing}")
        self._leader = leader
        try:
            leader.connect(calibrate=False)
        except Exception as exc:
            raise DeviceNotFoundError(
                f"{self.where}: cannot connect ({type(exc).__name__}: {exc}); plugged in and "
                "powered? right port (lerobot-find-port)? in group 'dialout'?"
            ) from exc
        try:
            if not leader.is_calibrated:
                log.info(
                    "%s: writing calibration %s to the motors", self.where, leader.calibration_fpath
                )
                leader.bus.write_calibration(leader.calibration)
        except Exception as exc:
            raise DeviceReadError(f"{self.where}: calibration check failed: {exc}") from exc
        log.info("%s connected", self.where)

    def _close(self) -> None:
        leader, self._leader = self._leader, None
        if leader is not None and leader.is_connected:
            leader.disconnect()

    def help(self) -> str:
        return (
            f"{self.where}: move the leader arm; the follower copies its joints "
            f"({', '.join(self.config.joint_names)})."
        )

    def joint_targets_from(self, action: dict[str, float]) -> tuple[np.ndarray, float | None]:
        """Follower joint targets ``(D,)`` and the 0..1 gripper command from LeRobot's
        ``get_action()`` dictionary."""
        c = self.config
        values = []
        for motor in c.motor_names:
            key = f"{motor}.pos"
            if key not in action:
                raise DeviceReadError(f"{self.where}: the reading has no '{key}': {sorted(action)}")
            values.append(float(action[key]))
        raw = np.asarray(values)
        if not np.all(np.isfinite(raw)):
            raise DeviceReadError(f"{self.where}: non-finite reading {raw.tolist()}")
        q = self._signs * np.deg2rad(raw) + self._offsets
        gripper = None
        if self._g is not None:
            frac = float(np.clip(raw[self._g] / 100.0, 0.0, 1.0))
            lo, hi = c.gripper_range
            q[self._g] = lo + frac * (hi - lo)
            gripper = 1.0 - frac
        return q, gripper

    def _read(self, now: float) -> TeleopCommand:
        assert self._leader is not None
        try:
            action = self._leader.get_action()
        except Exception as exc:
            raise DeviceReadError(
                f"{self.where}: read failed ({type(exc).__name__}: {exc})"
            ) from exc
        q, gripper = self.joint_targets_from(action)
        return TeleopCommand(stamp=now, engaged=self.engaged, joint_targets=q, gripper=gripper)
