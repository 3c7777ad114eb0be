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

Engaging and releasing. A leader arm has no deadman of its own, and one that is always in
control leaves no room for a policy: with ``teleop=leader_arm`` the policy would never drive.
``engage`` (:class:`EngageMode`) says how the person asks for control and gives it back:

- ``motion`` (default): moving the leader more than ``motion_rad`` (any joint) from where it
  last rested asks for control; holding it still (every joint within ``motion_rad``) for
  ``rest_s`` gives control back. Nothing but the leader is needed; the price is that a person
  who holds the leader still for ``rest_s`` mid-task hands back, so ``rest_s`` is long enough
  for a pause and short enough that letting go returns the arm to the policy soon;
- ``key``: a key on the terminal toggles (space, as the keyboard device; a USB foot pedal set to
  type a space works the same way); Enter / Backspace / Esc send success / failure / reset.
  The keys are read by a :class:`teleop.keyboard.Keyboard` on ``key_fd`` (None: standard
  input), so the node reading the leader needs a terminal;
- ``always``: control is asked for at connect and never given back (recording demonstrations
  with the leader alone, no policy).

:meth:`request_engage` / :meth:`release` do the same from code (a pedal read elsewhere, an
operator console).

No jump when control passes. The leader is passive and, while the policy drives, the follower
moves away from it; taking its pose as the target at that moment would throw the follower
across the difference at whatever speed the safety limits allow. Two ways out: move the
follower to the leader (under the safety limits), or bring the leader to the follower. This
device does the second: after the request it is *matching* (:class:`LeaderState`) and reports
``engaged`` with no targets, so the follower holds where it is and the policy's queue is
flushed; only when every joint of the leader (gripper included) is within
``match_tolerance`` of the follower's measured pose (:meth:`observe_follower`, at most
``follower_timeout_s`` old) does it pass its targets, so its first target is within the
tolerance of where the follower is. Why not move the follower instead: the path between the
two poses is checked by nobody (the safety limits clamp speed, joint range and workspace, not
collisions with the scene or with what the gripper holds), and it would be a motion that no
one commanded, on a robot the person is standing next to. :meth:`prompt` says which joints to
move and by how much, for the console to show.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teleop.device import (
    Button,
    DeviceNotFoundError,
    DeviceReadError,
    TeleopCommand,
    TeleopConfigError,
    TeleopDevice,
    check_positive,
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


class EngageMode(enum.Enum):
    """How the person asks for control and gives it back (see the module docstring)."""

    motion = "motion"
    key = "key"
    always = "always"


class LeaderState(enum.Enum):
    """``released``: the policy drives. ``matching``: the person asked for control; the
    follower holds until the leader is brought onto its pose. ``engaged``: the follower
    follows the leader."""

    released = "released"
    matching = "matching"
    engaged = "engaged"


@dataclass
class LeaderArmConfig:
    """``port``: the leader's serial port. ``id``: LeRobot's id of this leader (the calibration
    file is ``<calibration_dir>/<id>.json``). ``calibration_dir``: default LeRobot's
    (``~/.cache/huggingface/lerobot/calibration/teleoperators/so_leader``).
    ``joint_names``: the follower's joints, in its order. ``motor_names``: the leader motor
    read for each joint (default: the same names). ``gripper_joint``: which joint is the
    gripper (None: no gripper). ``gripper_range``: follower gripper units at 0 % and 100 %.
    ``signs``/``offsets``: per joint, applied to the body joints after degrees -> rad.
    ``num_read_retries``: LeRobot's retries of a corrupted bus read before it fails.

    Engaging (module docstring): ``engage``: motion, key or always. ``match_tolerance``: rad
    (follower units), the largest leader-follower difference of any joint at which control
    passes. ``motion_rad``: rad, leader motion that asks for control (``motion``) and the
    stillness that gives it back. ``rest_s``: s of stillness that gives control back
    (``motion``). ``follower_timeout_s``: a follower pose older than this is not matched
    against. ``key_fd``: the terminal ``key`` reads (None: standard input)."""

    port: str = "/dev/ttyACM0"
    id: str = "leader"
    calibration_dir: str | None = None
    joint_names: tuple[str, ...] = SO101_JOINTS
    motor_names: tuple[str, ...] | None = None
    gripper_joint: str | None = "gripper"
    gripper_range: tuple[float, float] = (-0.15, 1.72)
    signs: tuple[float, ...] | None = None
    offsets: tuple[float, ...] | None = None
    num_read_retries: int = 2
    engage: EngageMode = EngageMode.motion
    match_tolerance: float = 0.08
    motion_rad: float = 0.05
    rest_s: float = 1.5
    follower_timeout_s: float = 0.5
    key_fd: int | None = None

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
        try:
            self.engage = EngageMode(getattr(self.engage, "value", self.engage))
        except ValueError:
            raise TeleopConfigError(
                f"{where}: 'engage'={self.engage!r} is not one of {[m.value for m in EngageMode]}"
            ) from None
        check_positive(
            where,
            match_tolerance=self.match_tolerance,
            motion_rad=self.motion_rad,
            rest_s=self.rest_s,
            follower_timeout_s=self.follower_timeout_s,
        )


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
        self._leader = None
        self._keys = None  # the terminal's keys (engage=key)
        self._reset_engagement()

    def _reset_engagement(self) -> None:
        self.state = LeaderState.released
        self._follower: np.ndarray | None = None
        self._follower_stamp = -math.inf
        self._rested_at: np.ndarray | None = None  # where the leader last came to rest
        self._recent: deque[tuple[float, np.ndarray]] = deque()
        self._mismatch: np.ndarray | None = None
        self._prompt: str | None = None
        self._requested = self.config.engage is EngageMode.always

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
        self._reset_engagement()
        if c.engage is EngageMode.key:
            from teleop.keyboard import Keyboard, KeyboardConfig

            self._keys = Keyboard(KeyboardConfig(fd=c.key_fd))
            self._keys.connect()  # refuses, naming the fd, when it is not a terminal
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
        keys, self._keys = self._keys, None
        try:
            if keys is not None:
                keys.close()  # the terminal is restored first, whatever the bus does
        finally:
            if leader is not None and leader.is_connected:
                leader.disconnect()
        self._reset_engagement()

    def help(self) -> str:
        c = self.config
        how = {
            EngageMode.motion: f"move the leader to take control; hold it still for "
            f"{c.rest_s:g} s to give it back",
            EngageMode.key: "space takes / gives back control; Enter success, Backspace "
            "failure, Esc reset",
            EngageMode.always: "control is yours from the start",
        }[c.engage]
        return (
            f"{self.where}: {how}. Before control passes, bring the leader onto the "
            f"follower's pose (every joint within {c.match_tolerance:g} rad); the follower "
            f"then copies its joints ({', '.join(c.joint_names)})."
        )

    # -- engaging -------------------------------------------------------------------------------

    def observe_follower(self, positions: np.ndarray, stamp: float) -> None:
        q = np.asarray(positions, dtype=np.float64)
        d = len(self.config.joint_names)
        if q.shape != (d,):
            raise TeleopConfigError(
                f"{self.where}: the follower has {q.shape[0] if q.ndim == 1 else q.shape} "
                f"joints, the leader drives {d} ({', '.join(self.config.joint_names)})"
            )
        if np.all(np.isfinite(q)):
            self._follower, self._follower_stamp = q.copy(), float(stamp)

    def request_engage(self) -> None:
        """Ask for control (as the engage key or motion does); it passes once matched."""
        self._requested = True

    def release(self) -> None:
        """Give control back to the policy at the next read (``always``: match again)."""
        self._requested = self.config.engage is EngageMode.always
        self._set_state(LeaderState.released, "released")

    @property
    def mismatch(self) -> np.ndarray | None:
        """Leader minus follower per joint at the last read (None: no recent follower pose)."""
        return None if self._mismatch is None else self._mismatch.copy()

    def prompt(self) -> str | None:
        return self._prompt

    def _set_state(self, state: LeaderState, why: str) -> None:
        if state is not self.state:
            log.info("%s: %s -> %s (%s)", self.where, self.state.value, state.value, why)
            self.state = state

    def _still(self, now: float, q: np.ndarray) -> bool:
        """The leader moved less than ``motion_rad`` (every joint) over the last ``rest_s``."""
        c = self.config
        self._recent.append((now, q))
        while len(self._recent) > 1 and self._recent[1][0] <= now - c.rest_s:
            self._recent.popleft()
        span = now - self._recent[0][0]
        if span < c.rest_s:
            return False
        window = np.stack([r[1] for r in self._recent])
        return bool(np.ptp(window, axis=0).max() < c.motion_rad)

    def _by_motion(self, now: float, q: np.ndarray) -> None:
        c = self.config
        still = self._still(now, q)
        if self._rested_at is None or (still and self.state is LeaderState.released):
            self._rested_at = q
        moved = float(np.abs(q - self._rested_at).max())
        if self.state is LeaderState.released and moved > c.motion_rad:
            self._requested = True
            log.info("%s: moved %.3f rad from rest: control asked for", self.where, moved)
        elif self.state is not LeaderState.released and still:
            self.release()
            self._rested_at = q

    def _update_match(self, now: float, q: np.ndarray) -> bool:
        c = self.config
        fresh = self._follower is not None and now - self._follower_stamp <= c.follower_timeout_s
        if not fresh:
            self._mismatch = None
            self._prompt = f"{self.where}: waiting for the follower's joint positions"
            return False
        self._mismatch = q - self._follower
        off = [
            f"{name} {-err:+.2f} rad"
            for name, err in zip(c.joint_names, self._mismatch, strict=True)
            if abs(err) > c.match_tolerance
        ]
        if off:
            self._prompt = f"{self.where}: bring the leader onto the follower: {', '.join(off)}"
            return False
        self._prompt = None
        return True

    # -- reading --------------------------------------------------------------------------------

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
        buttons: set[Button] = set()
        if self._keys is not None:
            keys = self._keys.read(now)
            buttons |= keys.buttons - {Button.GRIPPER}  # the leader has its own gripper
            if Button.ENGAGE in keys.buttons:
                if self.state is LeaderState.released and not self._requested:
                    self.request_engage()
                else:
                    self.release()
        elif self.config.engage is EngageMode.motion:
            self._by_motion(now, q)
        if self._requested and self.state is LeaderState.released:
            self._set_state(LeaderState.matching, "control asked for")
        if self.state is LeaderState.matching and self._update_match(now, q):
            self._set_state(LeaderState.engaged, "the leader matches the follower")
        elif self.state is not LeaderState.matching:
            self._prompt = None
        if self.state is LeaderState.engaged:
            return TeleopCommand(
                stamp=now, engaged=True, joint_targets=q, gripper=gripper, buttons=buttons
            )
        # matching: the person has control and the follower holds; released: the policy's
        return TeleopCommand(stamp=now, engaged=self.state is LeaderState.matching, buttons=buttons)
