"""The one interface every teleop device speaks: connect, read a :class:`TeleopCommand`, close.

Why one small interface: the intervention node must not care whether the person holds a
keyboard, a gamepad, a SpaceMouse or a leader arm. Each device turns its own protocol (terminal
bytes, SDL/evdev events, HID reports, servo positions) into the same command, stamped with the
ROS time the caller passes in, so the arbitration and recording code is written once.

Rules every device follows (tests check them):

- no device I/O in ``__init__``: construction only stores the configuration; ``connect()`` opens
  the device, ``close()`` releases it (idempotent, safe after a failed ``connect()``), and the
  context manager does both, closing in ``finally``;
- ``read(now)`` never blocks: it drains whatever input is pending and returns at once;
- errors name the device and say what to check (``"SpaceMouse: no HID device with vendor
  0x256f found; plugged in? udev rule?"``);
- hardware SDKs (``hid``, ``pygame``, ``evdev``, ``lerobot``) are imported inside ``connect()``,
  so ``import teleop`` works on a laptop without them.

Frames. ``ee_delta`` is a small Cartesian displacement of the end effector per command, in the
robot's base frame (the frame of :mod:`robot.mjcf`)::

            z (up)
            ^
            |   y (left)
            |  /
            | /
     base --+---------> x (forward, away from the robot)

    ee_delta = [dx, dy, dz, droll, dpitch, dyaw]
               metres along base x, y, z; radians about base x, y, z (right-hand rule),
               the rotation applied about the end effector's own position:
               R_new = exp([droll, dpitch, dyaw]^) @ R_now

Each device module draws how its own frame maps onto this one.
"""

from __future__ import annotations

import abc
import enum
import math
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import numpy as np


class TeleopError(RuntimeError):
    """A teleop device failed. The message starts with the device's name."""


class DeviceNotFoundError(TeleopError):
    """The device is not there (unplugged, no permission, wrong port or path)."""


class DeviceReadError(TeleopError):
    """The device was connected but reading it failed (unplugged, protocol error)."""


class DeviceNotConnectedError(TeleopError):
    """``read()`` was called before ``connect()`` or after ``close()``."""


class TeleopConfigError(ValueError):
    """A device configuration value is invalid. The message names the key."""


class Button(enum.Enum):
    """Edge-triggered events a person can send with a device.

    ``SUCCESS``/``FAILURE``: end the episode with that outcome. ``RESET``: reset the scene
    (episode discarded). ``ENGAGE``: the engage control was pressed (the resulting state is
    :attr:`TeleopCommand.engaged`). ``GRIPPER``: the gripper toggle was pressed (the resulting
    command is :attr:`TeleopCommand.gripper`).
    """

    SUCCESS = "success"
    FAILURE = "failure"
    RESET = "reset"
    ENGAGE = "engage"
    GRIPPER = "gripper"


def _frozen_array(value: object, name: str, shape: tuple[int, ...] | None) -> np.ndarray:
    arr = np.array(value, dtype=np.float64)
    if shape is not None and arr.shape != shape:
        raise ValueError(f"TeleopCommand: {name} has shape {arr.shape}, expected {shape}")
    if arr.ndim != 1:
        raise ValueError(f"TeleopCommand: {name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"TeleopCommand: {name} contains NaN/Inf: {arr.tolist()}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class TeleopCommand:
    """What a person commanded at one read of a device.

    ``stamp``: ROS time (s) of the read, as passed by the caller.
    ``engaged``: the person is in control while True (deadman held, engage toggled on, or the
    device is being moved, depending on the device). Engaged with neither ``ee_delta`` nor
    ``joint_targets``: the person has taken control but commands no motion yet, and the
    follower holds (a leader arm while it is brought to the follower's pose).
    ``ee_delta``: ``(6,)`` ``[dx, dy, dz, droll, dpitch, dyaw]`` (m, rad) in the robot base
    frame for this command (see the module docstring), or None for devices that command
    joints. Velocity devices (gamepad, SpaceMouse) already scaled it by the time since the
    previous read.
    ``joint_targets``: ``(D,)`` absolute joint targets in the follower's joint order and units
    (leader arms), or None.
    ``gripper``: 0 open .. 1 closed, or None to leave the gripper as it is.
    ``buttons``: events pressed since the previous read.
    """

    stamp: float
    engaged: bool
    ee_delta: np.ndarray | None = None
    joint_targets: np.ndarray | None = None
    gripper: float | None = None
    buttons: frozenset[Button] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not math.isfinite(self.stamp):
            raise ValueError(f"TeleopCommand: stamp={self.stamp} is not finite")
        object.__setattr__(self, "engaged", bool(self.engaged))
        if self.ee_delta is not None:
            object.__setattr__(self, "ee_delta", _frozen_array(self.ee_delta, "ee_delta", (6,)))
        if self.joint_targets is not None:
            arr = _frozen_array(self.joint_targets, "joint_targets", None)
            object.__setattr__(self, "joint_targets", arr)
        if self.gripper is not None:
            g = float(self.gripper)
            if not 0.0 <= g <= 1.0:
                raise ValueError(f"TeleopCommand: gripper={g} must be in [0, 1] (0 open)")
            object.__setattr__(self, "gripper", g)
        buttons = frozenset(self.buttons)
        bad = [b for b in buttons if not isinstance(b, Button)]
        if bad:
            raise ValueError(f"TeleopCommand: buttons must be Button members, got {bad}")
        object.__setattr__(self, "buttons", buttons)

    @property
    def moving(self) -> bool:
        """True when the command asks for any Cartesian motion."""
        return self.ee_delta is not None and bool(np.any(self.ee_delta != 0.0))


class PeriodTracker:
    """Time since the previous read, for devices that command a velocity.

    The first read uses ``nominal`` (s); later reads use ``now - previous``, clamped to
    ``[0, max_period]`` so that a pause (a stalled loop, a clock jump) never turns into one
    large step, and a clock that goes backwards gives no motion.
    """

    def __init__(self, nominal: float, max_period: float) -> None:
        if not (nominal > 0 and max_period >= nominal):
            raise TeleopConfigError(
                f"period={nominal} must be > 0 and max_period={max_period} >= period"
            )
        self.nominal = nominal
        self.max_period = max_period
        self._last: float | None = None

    def reset(self) -> None:
        self._last = None

    def __call__(self, now: float) -> float:
        last, self._last = self._last, now
        if last is None:
            return self.nominal
        return min(max(now - last, 0.0), self.max_period)


def apply_deadzone(values: np.ndarray, deadzone: float | np.ndarray) -> np.ndarray:
    """Per-axis deadzone on values in [-1, 1], rescaled so the output still spans [-1, 1]
    without a jump at the edge of the deadzone."""
    v = np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0)
    dz = np.broadcast_to(np.asarray(deadzone, dtype=np.float64), v.shape)
    mag = np.abs(v)
    out = np.where(mag > dz, np.sign(v) * (mag - dz) / np.maximum(1.0 - dz, 1e-9), 0.0)
    return np.asarray(out, dtype=np.float64)


def check_positive(where: str, **values: float) -> None:
    """Raise :class:`TeleopConfigError` naming the first value that is not finite and > 0."""
    for key, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise TeleopConfigError(f"{where}: '{key}'={value!r} must be a number > 0")


class TeleopDevice(abc.ABC):
    """Base class of every teleop device.

    Subclasses set :attr:`name` and implement :meth:`_connect`, :meth:`_read` and
    :meth:`_close`; this class handles the connection state and the error wording.
    """

    name: str = "teleop device"

    def __init__(self) -> None:
        self._connected = False

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def connect(self) -> None:
        """Open the device. Raises :class:`DeviceNotFoundError` naming what to check."""
        if self._connected:
            return
        try:
            self._connect()
        except BaseException:
            # release whatever the failed attempt opened, then report the original error
            try:
                self._close()
            finally:
                self._connected = False
            raise
        self._connected = True

    def read(self, now: float) -> TeleopCommand:
        """The command at ROS time ``now`` (s). Never blocks."""
        if not self._connected:
            raise DeviceNotConnectedError(
                f"{self.name}: read() before connect() (or after close())"
            )
        return self._read(float(now))

    def close(self) -> None:
        """Release the device. Idempotent; safe after a failed :meth:`connect`."""
        if not self._connected:
            return
        try:
            self._close()
        finally:
            self._connected = False

    def help(self) -> str:
        """Human-readable controls of this device, for the CLI to show."""
        return f"{self.name}: no help available"

    def observe_follower(self, positions: np.ndarray, stamp: float) -> None:
        """The follower's measured joint positions (its joint order) at ROS time ``stamp``.

        Called by whoever reads the device, before each :meth:`read`. A device that commands
        absolute joint targets (a leader arm) needs them to hand control over without a jump;
        devices that command Cartesian deltas ignore them (the default)."""
        return None

    def prompt(self) -> str | None:
        """What the person must do before control passes (e.g. which leader joints to move
        onto the follower's pose), for a console or log to show; None when nothing."""
        return None

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "connected" if self._connected else "closed"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    # -- to implement -----------------------------------------------------------------------

    @abc.abstractmethod
    def _connect(self) -> None: ...

    @abc.abstractmethod
    def _read(self, now: float) -> TeleopCommand: ...

    @abc.abstractmethod
    def _close(self) -> None:
        """Release what :meth:`_connect` opened; must tolerate a half-finished connect."""
