"""One tick of the robot driver, with no transport.

The ``robot_driver`` node calls :meth:`ControlLoop.tick` from a timer (real time) or from the
lockstep loop (simulation); tests call it with simulated times. Keeping the loop free of ROS is
what lets the same code run on a notebook, in the twin and on the robot.

Each tick: read the arm, tell the executor how fresh the state is, take the executor's target,
pass it through :class:`~robot.safety.SafetyLimits`, send the result (or ``arm.hold()`` while
e-stopped), and return what was sent. ``TickResult.command`` is the action to record: the
target the driver reports it actually commanded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot.arm_interface import Arm, ArmError
from robot.executor import ChunkExecutor
from robot.safety import SafetyLimits
from robot.schema import ControlSource, JointState

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class TickResult:
    """What happened at one control tick.

    ``stamp``: the tick's ROS time. ``state``: the joint state read at this tick.
    ``command``: the target sent, as the driver reported it; on ticks where the arm was told to
    hold in place (e-stop, loop not started) the measured position it holds. ``source``: who
    produced it (HOLD whenever ``held``). ``reasons``: the executor's hold reason and every
    safety event, human-readable.
    """

    stamp: float
    state: JointState
    command: np.ndarray
    source: ControlSource
    held: bool
    reasons: tuple[str, ...]


class ControlLoop:
    """Reads the arm, picks the action, filters it through safety and sends it, once per tick.

    ``arm.connect()`` (and ``enable()``) are the caller's: the loop does no device set-up.
    Methods are serialised by a lock, so an e-stop from another thread never interleaves with
    a tick's send.
    """

    def __init__(self, arm: Arm, safety: SafetyLimits, executor: ChunkExecutor) -> None:
        names = {arm.spec.joint_names, safety.spec.joint_names, executor.spec.joint_names}
        if len(names) != 1:
            raise ValueError(
                f"ControlLoop: {arm.name}, its SafetyLimits and its ChunkExecutor disagree on the "
                f"joints: {sorted(names)}"
            )
        self.arm = arm
        self.safety = safety
        self.executor = executor
        self._lock = threading.RLock()
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        """Adopt the measured position as the last command and forget any queued chunks."""
        with self._lock:
            state = self._arm_call("read", self.arm.read)
            self.safety.reset(state.position)
            self.executor.clear()
            self._started = True
            log.info("%s: control loop started at %s", self.arm.name, state.position.tolist())

    def tick(self, now: float) -> TickResult:
        """Run one control tick at ROS time ``now``. On any failure the arm is held first."""
        with self._lock:
            try:
                return self._tick(now)
            except BaseException:
                self._hold_quietly()
                raise

    def estop(self, reason: str) -> None:
        """Latch an e-stop and hold the arm now, not at the next tick."""
        with self._lock:
            self.safety.estop(reason)
            self._arm_call("hold", self.arm.hold)

    def reset_estop(self, operator: str) -> None:
        """Clear the e-stop; resume from the measured position with an empty queue."""
        with self._lock:
            state = self._arm_call("read", self.arm.read)
            self.safety.reset(state.position)
            self.safety.reset_estop(operator)
            self.executor.clear()

    def stop(self) -> None:
        """Hold the arm; ticks hold until :meth:`start` is called again."""
        with self._lock:
            self._started = False
            self._arm_call("hold", self.arm.hold)

    # ------------------------------------------------------------------ internals

    def _tick(self, now: float) -> TickResult:
        state = self._arm_call("read", self.arm.read)
        self.executor.observe(state.stamp)
        if not self._started:
            self._arm_call("hold", self.arm.hold)
            return TickResult(
                stamp=now,
                state=state,
                command=np.array(state.position, dtype=np.float64),
                source=ControlSource.HOLD,
                held=True,
                reasons=("control loop not started: call start() once the arm is enabled",),
            )
        out = self.executor.next_action(now)
        result = self.safety.filter(out.target, now)
        reasons = ((out.reason,) if out.reason else ()) + tuple(str(e) for e in result.reasons)
        if self.safety.estopped:
            self._arm_call("hold", self.arm.hold)
            command = np.array(state.position, dtype=np.float64)
        else:
            # a writable copy: a driver may clamp in place; what it returns is what is recorded
            sent = self._arm_call("send", self.arm.send, result.command.copy())
            command = self._check_sent(sent)
        return TickResult(
            stamp=now,
            state=state,
            command=command,
            source=ControlSource.HOLD if result.held else out.source,
            held=result.held,
            reasons=reasons,
        )

    def _check_sent(self, sent: Any) -> np.ndarray:
        command = np.array(sent, dtype=np.float64)
        if command.shape != (self.arm.spec.dof,) or not np.all(np.isfinite(command)):
            raise ArmError(
                f"{self.arm.name}: send() returned {command.tolist()} (shape {command.shape}); "
                f"expected a finite ({self.arm.spec.dof},) target"
            )
        return command

    def _arm_call(self, op: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise ArmError(f"{self.arm.name}: {op}() failed: {type(exc).__name__}: {exc}") from exc

    def _hold_quietly(self) -> None:
        try:
            self.arm.hold()
        except Exception:
            log.exception("%s: hold() failed while handling a failed tick", self.arm.name)
