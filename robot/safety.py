"""The last filter before the arm: every command passes through :class:`SafetyLimits`.

It sits below the policy, the teleop device and the learner, and nothing can configure it
away: a :class:`~robot.schema.RobotSpec` cannot exist without limits, and ``SafetyLimits``
cannot exist without forward kinematics for the workspace box.

The layers run in this order, and the order is the design:

1. **e-stop** first: once latched, nothing else is even looked at. Only
   :meth:`SafetyLimits.reset_estop`, with an operator's name, clears it.
2. **not reset / no action**: without a known last command there is no safe reference to
   limit against, so the arm holds; a missing action holds too.
3. **NaN/Inf and shape** refuse the *whole* action: a vector with one garbage entry came from
   a broken producer, and clamping garbage would only make it look plausible.
4. **position limits** clamp the target before anything is rate limited, so rate limiting
   moves towards a reachable target.
5. **velocity, acceleration, max step, braking** bound the step from the last command.
   Each is an interval for the step of each joint; clamping into them one after another lands
   in their intersection, which is never empty because every previous command satisfied the
   same bounds (braking keeps enough room to stop before a position limit at the acceleration
   limit). ``max_step`` is the backstop when the loop runs at a rate other than
   ``spec.control_hz`` (the limits use that nominal period).
6. **workspace** last, because it needs the joint command that would really be sent: if its
   end-effector position leaves the box, the command is not sent and the arm holds at the last
   command, which was inside. If the arm *starts* outside (the last command is outside), moves
   that make no axis's violation worse are allowed, so it can be brought back.

Holding means: the command is the last command and the commanded velocity becomes 0 (an
abrupt stop is the one thing allowed to exceed the acceleration limit). Safety checks
``raise`` rather than ``assert``: asserts vanish under ``python -O``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robot.schema import RobotSpec

log = logging.getLogger(__name__)

_AXES = ("x", "y", "z")
# A limit counts as violated (and is reported) only beyond this slack; the clamp itself is
# exact. It keeps float rounding from producing spurious reasons.
_REPORT_SLACK = 1e-9


class SafetyConfigError(ValueError):
    """The safety layer cannot be built as configured. The message names the robot."""


class SafetyError(RuntimeError):
    """A safety-relevant misuse at run time (bad reset position, no operator name, ...)."""


@dataclass(frozen=True)
class SafetyEvent:
    """Why one tick's command differs from what was asked.

    ``kind``: "estop", "not_reset", "no_action", "shape", "nan", "position", "velocity",
    "acceleration", "max_step" or "workspace". ``name``: the joint or Cartesian axis concerned
    ("" when the whole action is concerned). ``requested``/``allowed``: the offending value and
    the bound, in the units of ``detail`` (NaN where no number applies). ``outcome``: "clamped",
    "held", or "allowed" (a move back towards the workspace from outside it).
    """

    kind: str
    name: str
    requested: float
    allowed: float
    outcome: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}, {self.outcome}"


@dataclass(frozen=True, eq=False)
class SafetyResult:
    """The command actually to be sent, ``(D,)``, finite and within limits, read-only."""

    command: np.ndarray
    held: bool
    reasons: tuple[SafetyEvent, ...] = ()

    def kinds(self) -> set[str]:
        return {e.kind for e in self.reasons}


def _readonly(arr: np.ndarray) -> np.ndarray:
    out = np.array(arr, dtype=np.float64, copy=True)
    out.setflags(write=False)
    return out


def _stopping_speed(distance: np.ndarray, accel: np.ndarray, dt: float) -> np.ndarray:
    """Largest speed ``v`` with ``v*dt + v**2 / (2*accel) <= distance``.

    Moving one tick at ``v`` and then braking at ``accel`` stays within ``distance``; braking
    one tick at a time covers less than the continuous ``v**2 / (2*accel)``, so this is safe.
    """
    d = np.maximum(distance, 0.0)
    a_dt = accel * dt
    return np.maximum(-a_dt + np.sqrt(a_dt * a_dt + 2.0 * accel * d), 0.0)


class SafetyLimits:
    """Clamps, refuses or holds joint position commands so the arm stays within its limits.

    ``fk`` maps joint positions ``(D,)`` to the end-effector position ``(3,)`` (m, base frame);
    the twin builds one from the MuJoCo model. Call :meth:`reset` with the measured position
    when the arm is enabled; until then every tick holds.
    """

    def __init__(self, spec: RobotSpec, fk: Callable[[np.ndarray], np.ndarray] | None) -> None:
        if not isinstance(spec, RobotSpec):
            raise SafetyConfigError(f"SafetyLimits needs a RobotSpec, got {type(spec).__name__}")
        if fk is None or not callable(fk):
            raise SafetyConfigError(
                f"robot '{spec.name}': SafetyLimits needs forward kinematics fk(q) -> (3,) "
                "end-effector position; without it the workspace box cannot be enforced"
            )
        self.spec = spec
        self._fk = fk
        self._dt = spec.control_period
        unit = spec.joint_units or ("rad",) * spec.dof
        self._units = tuple(unit)
        _, error = self._ee(spec.home)
        if error:
            raise SafetyConfigError(f"robot '{spec.name}': fk(home) failed: {error}")
        self._last: np.ndarray | None = None
        self._last_violation = np.zeros(3)
        self._velocity = np.zeros(spec.dof)
        self._estop_reason: str | None = None
        self._last_tick: float | None = None

    # ------------------------------------------------------------------ state

    @property
    def estopped(self) -> bool:
        return self._estop_reason is not None

    @property
    def estop_reason(self) -> str | None:
        return self._estop_reason

    @property
    def last_command(self) -> np.ndarray:
        """The last command sent (a copy). Raises :class:`SafetyError` before :meth:`reset`."""
        if self._last is None:
            raise SafetyError(f"robot '{self.spec.name}': safety was never reset; no command yet")
        return self._last.copy()

    @property
    def commanded_velocity(self) -> np.ndarray:
        """Velocity implied by the last two commands (0 after a hold), ``(D,)``."""
        return self._velocity.copy()

    def reset(self, position: np.ndarray) -> None:
        """Adopt the measured ``position`` as the last command, at rest. Call at enable.

        Does not clear an e-stop. A position outside the joint limits or an end effector outside
        the workspace is accepted (it is where the arm is) and logged; from there only moves
        back towards the limits and the box are allowed.
        """
        where = f"robot '{self.spec.name}'"
        try:
            q = np.asarray(position, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SafetyError(f"{where}: reset position is not numeric: {exc}") from exc
        if q.shape != (self.spec.dof,):
            raise SafetyError(
                f"{where}: reset position has shape {q.shape}, expected ({self.spec.dof},)"
            )
        if not np.all(np.isfinite(q)):
            raise SafetyError(f"{where}: reset position is not finite: {q.tolist()}")
        ee, error = self._ee(q)
        if error:
            raise SafetyError(f"{where}: forward kinematics failed at reset: {error}")
        outside = (q < self.spec.position_lower) | (q > self.spec.position_upper)
        if np.any(outside):
            names = [self.spec.joint_names[i] for i in np.flatnonzero(outside)]
            log.warning(
                "%s: reset outside joint limits on %s; only moves back allowed", where, names
            )
        violation = self._violation(ee)
        if np.any(violation > 0):
            log.warning("%s: reset with end effector %s outside the workspace", where, ee.tolist())
        self._last = q.copy()
        self._last_violation = violation
        self._velocity = np.zeros(self.spec.dof)
        self._last_tick = None

    def estop(self, reason: str) -> None:
        """Latch an emergency stop; every tick holds until :meth:`reset_estop`."""
        reason = str(reason) or "unspecified"
        if self._estop_reason is None:
            self._estop_reason = reason
            log.error("robot '%s': E-STOP latched: %s", self.spec.name, reason)
        else:
            log.error(
                "robot '%s': e-stop again (%s) while latched (%s)",
                self.spec.name,
                reason,
                self._estop_reason,
            )
        self._velocity = np.zeros(self.spec.dof)

    def reset_estop(self, operator: str) -> None:
        """Clear a latched e-stop. The only way to; the operator's name is logged."""
        if not isinstance(operator, str) or not operator.strip():
            raise SafetyError(
                f"robot '{self.spec.name}': reset_estop needs the name of the operator resetting it"
            )
        if self._estop_reason is None:
            log.info(
                "robot '%s': reset_estop by %s, but no e-stop was latched", self.spec.name, operator
            )
            return
        log.warning(
            "robot '%s': e-stop (%s) reset by operator '%s'",
            self.spec.name,
            self._estop_reason,
            operator.strip(),
        )
        self._estop_reason = None
        self._velocity = np.zeros(self.spec.dof)

    # ------------------------------------------------------------------ the filter

    def filter(self, target: np.ndarray | None, now: float) -> SafetyResult:
        """The command to send this tick for ``target`` (or the reasons it is held)."""
        self._check_clock(now)
        if self._estop_reason is not None:
            return self._hold(
                SafetyEvent(
                    "estop",
                    "",
                    math.nan,
                    math.nan,
                    "held",
                    f"e-stop latched ({self._estop_reason}); only reset_estop(operator) clears it",
                )
            )
        if self._last is None:
            # Nothing safe to send; the home position is returned only because a command
            # must be finite. ControlLoop calls arm.hold() instead of sending it.
            return SafetyResult(
                command=_readonly(self.spec.home),
                held=True,
                reasons=(
                    SafetyEvent(
                        "not_reset",
                        "",
                        math.nan,
                        math.nan,
                        "held",
                        "reset(measured position) was never called; do not send this command",
                    ),
                ),
            )
        if target is None:
            return self._hold(
                SafetyEvent("no_action", "", math.nan, math.nan, "held", "no target this tick")
            )
        refusal = self._refuse_malformed(target)
        if refusal:
            return self._hold(*refusal)
        requested = np.asarray(target, dtype=np.float64)
        events: list[SafetyEvent] = []
        clamped = self._clamp_position(requested, events)
        last = self._last
        step = self._limit_step(last, clamped - last, events)
        # Exact rounding can leave the sum a hair outside; never outside the limits (or, for an
        # arm reset outside them, never further out than where it started).
        command = np.clip(
            last + step,
            np.minimum(self.spec.position_lower, last),
            np.maximum(self.spec.position_upper, last),
        )
        ee, error = self._ee(command)
        if error:
            return self._hold(
                SafetyEvent(
                    "workspace", "", math.nan, math.nan, "held", f"forward kinematics: {error}"
                )
            )
        violation = self._violation(ee)
        if np.any(violation > 0):
            worse = violation > self._last_violation
            if np.any(worse):
                return self._hold(self._workspace_event(ee, int(np.argmax(violation * worse))))
            events.append(self._workspace_event(ee, int(np.argmax(violation)), outcome="allowed"))
        self._velocity = (command - last) / self._dt
        self._last = command
        self._last_violation = violation
        return SafetyResult(command=_readonly(command), held=False, reasons=tuple(events))

    # ------------------------------------------------------------------ helpers

    def _hold(self, *events: SafetyEvent) -> SafetyResult:
        self._velocity = np.zeros(self.spec.dof)
        # Before reset() only an e-stop gets here; home is returned because a command must be
        # finite, and ControlLoop calls arm.hold() rather than sending it.
        command = self._last if self._last is not None else self.spec.home
        return SafetyResult(command=_readonly(command), held=True, reasons=tuple(events))

    def _refuse_malformed(self, target: object) -> tuple[SafetyEvent, ...]:
        d = self.spec.dof
        try:
            arr = np.asarray(target, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            return (
                SafetyEvent(
                    "shape", "", math.nan, math.nan, "held", f"action is not numeric ({exc})"
                ),
            )
        if arr.shape != (d,):
            return (
                SafetyEvent(
                    "shape",
                    "",
                    float(arr.size),
                    float(d),
                    "held",
                    f"action has shape {arr.shape}, expected ({d},) for joints "
                    f"{list(self.spec.joint_names)}; whole action refused",
                ),
            )
        bad = np.flatnonzero(~np.isfinite(arr))
        return tuple(
            SafetyEvent(
                "nan",
                self.spec.joint_names[i],
                float(arr[i]),
                math.nan,
                "held",
                f"joint '{self.spec.joint_names[i]}' (index {i}) is {arr[i]}; whole action refused",
            )
            for i in bad
        )

    def _clamp_position(self, target: np.ndarray, events: list[SafetyEvent]) -> np.ndarray:
        lower, upper = self.spec.position_lower, self.spec.position_upper
        clamped = np.clip(target, lower, upper)
        for i in np.flatnonzero(target != clamped):
            name, u = self.spec.joint_names[i], self._units[i]
            side, bound = ("upper", upper[i]) if target[i] > upper[i] else ("lower", lower[i])
            relation = ">" if side == "upper" else "<"
            events.append(
                SafetyEvent(
                    "position",
                    name,
                    float(target[i]),
                    float(bound),
                    "clamped",
                    f"joint '{name}' target {target[i]:.3g} {u} {relation} {side} limit "
                    f"{bound:.3g} {u}",
                )
            )
        return clamped

    def _limit_step(
        self, last: np.ndarray, step: np.ndarray, events: list[SafetyEvent]
    ) -> np.ndarray:
        """Clamp each joint's step into velocity, acceleration, max-step and braking bounds."""
        spec, dt, hz = self.spec, self._dt, self.spec.control_hz
        v_last = self._velocity
        accel = spec.acceleration_limit

        v_step = spec.velocity_limit * dt
        step = self._clip(
            step,
            -v_step,
            v_step,
            events,
            "velocity",
            lambda i, s, _lo, hi: (
                abs(s),
                hi,
                f"step {abs(s):.3g} {self._units[i]} > {hi:.3g} {self._units[i]} allowed "
                f"at {hz:g} Hz",
            ),
        )
        a_lo = (v_last - accel * dt) * dt
        a_hi = (v_last + accel * dt) * dt
        step = self._clip(
            step,
            a_lo,
            a_hi,
            events,
            "acceleration",
            lambda i, s, _lo, _hi: (
                abs(s / dt - v_last[i]),
                accel[i] * dt,
                f"velocity change {abs(s / dt - v_last[i]):.3g} {self._units[i]}/s > "
                f"{accel[i] * dt:.3g} {self._units[i]}/s allowed at {hz:g} Hz",
            ),
        )
        step = self._clip(
            step,
            -spec.max_step,
            spec.max_step,
            events,
            "max_step",
            lambda i, s, _lo, hi: (
                abs(s),
                hi,
                f"step {abs(s):.3g} {self._units[i]} > max_step {hi:.3g} {self._units[i]}",
            ),
        )
        up_speed = _stopping_speed(spec.position_upper - last, accel, dt)
        down_speed = _stopping_speed(last - spec.position_lower, accel, dt)

        def braking(i: int, s: float, _lo: float, hi: float) -> tuple[float, float, str]:
            u = self._units[i]
            side = "upper" if s > 0 else "lower"
            bound = spec.position_upper[i] if s > 0 else spec.position_lower[i]
            allowed = (up_speed if s > 0 else down_speed)[i]
            return (
                abs(s) / dt,
                float(allowed),
                f"joint '{spec.joint_names[i]}' at {abs(s) / dt:.3g} {u}/s could not stop "
                f"before its {side} limit {bound:.3g} {u}; braking to {allowed:.3g} {u}/s",
            )

        return self._clip(
            step, -down_speed * dt, up_speed * dt, events, "position", braking, name_joint=False
        )

    def _clip(
        self,
        step: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        events: list[SafetyEvent],
        kind: str,
        describe: Callable[[int, float, float, float], tuple[float, float, str]],
        *,
        name_joint: bool = True,
    ) -> np.ndarray:
        clipped = np.minimum(np.maximum(step, lo), hi)
        for i in np.flatnonzero((step > hi + _REPORT_SLACK) | (step < lo - _REPORT_SLACK)):
            requested, allowed, text = describe(int(i), float(step[i]), float(lo[i]), float(hi[i]))
            name = self.spec.joint_names[i]
            detail = f"joint '{name}' {text}" if name_joint else text
            events.append(SafetyEvent(kind, name, requested, allowed, "clamped", detail))
        return clipped

    def _ee(self, q: np.ndarray) -> tuple[np.ndarray, str]:
        """End-effector position for ``q`` and an error message ("" when fine)."""
        try:
            ee = np.asarray(self._fk(np.array(q, dtype=np.float64, copy=True)), dtype=np.float64)
        except Exception as exc:  # fk is user code; a failure must hold, not crash the loop
            return np.full(3, np.nan), f"{type(exc).__name__}: {exc}"
        if ee.shape != (3,):
            return np.full(3, np.nan), f"fk returned shape {ee.shape}, expected (3,)"
        if not np.all(np.isfinite(ee)):
            return ee, f"fk returned a non-finite position {ee.tolist()}"
        return ee, ""

    def _violation(self, ee: np.ndarray) -> np.ndarray:
        """Per-axis distance (m) of ``ee`` outside the workspace box; 0 inside."""
        lower, upper = self.spec.workspace_lower, self.spec.workspace_upper
        return np.maximum(lower - ee, 0.0) + np.maximum(ee - upper, 0.0)

    def _workspace_event(self, ee: np.ndarray, axis: int, outcome: str = "held") -> SafetyEvent:
        lower, upper = self.spec.workspace_lower[axis], self.spec.workspace_upper[axis]
        value = float(ee[axis])
        below = value < lower
        bound = float(lower if below else upper)
        where = "below the workspace lower" if below else "above the workspace upper"
        detail = f"end effector {_AXES[axis]}={value:.3g} m is {where} bound {bound:.3g} m"
        if outcome == "allowed":
            detail += " (started outside; this move is not further out)"
        return SafetyEvent("workspace", _AXES[axis], value, bound, outcome, detail)

    def _check_clock(self, now: float) -> None:
        if self._last_tick is not None and now < self._last_tick:
            log.warning(
                "robot '%s': safety tick at t=%.6f is before the previous one (t=%.6f)",
                self.spec.name,
                now,
                self._last_tick,
            )
        self._last_tick = now
