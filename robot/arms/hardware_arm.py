"""What every real arm driver shares: device naming, latched faults, limit checks, stopping.

- **No device I/O in the constructor.** ``connect`` opens, reads the state and checks the
  configured limits against what the device reports (:func:`check_limits`): a config wider
  than the device is refused *before* anything is enabled, naming the joint and both values.
- **Latched faults.** A protective stop, an e-stop, a reflex, a bus that stopped answering:
  :meth:`HardwareArm.latch` records the reason, commands the device to stop, and from then on
  ``send`` only holds (it returns the measured position, which is what gets recorded) until an
  operator calls :meth:`HardwareArm.recover` with their name. Nothing clears it by itself.
- **Guaranteed stop.** :meth:`HardwareArm.stop_safely` is what ``finally`` blocks call: it
  never raises, and tries the device's stop even when the link is half broken.
- **Errors name the device** (``UR5e @ 192.168.1.10``, ``SO-101 on /dev/ttyACM0``) and the
  value that was wrong.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from robot.arm_interface import Arm, ArmError
from robot.schema import JointState, RobotSpec

log = logging.getLogger(__name__)


class ArmFault(ArmError):
    """The arm latched a fault; only an operator's ``recover(operator)`` clears it."""


def check_limits(
    spec: RobotSpec,
    device: str,
    lower: Sequence[float] | None = None,
    upper: Sequence[float] | None = None,
    velocity: Sequence[float] | None = None,
    *,
    tolerance: float = 1e-6,
) -> None:
    """Refuse a spec whose limits are wider than the device's, naming joint and values."""
    problems = []
    for i, joint in enumerate(spec.joint_names):
        u = spec.joint_units[i] if spec.joint_units else "rad"
        if lower is not None and spec.position_lower[i] < lower[i] - tolerance:
            problems.append(
                f"joint '{joint}' position_lower={spec.position_lower[i]:.4g} {u} is below the "
                f"device's {lower[i]:.4g} {u}"
            )
        if upper is not None and spec.position_upper[i] > upper[i] + tolerance:
            problems.append(
                f"joint '{joint}' position_upper={spec.position_upper[i]:.4g} {u} is above the "
                f"device's {upper[i]:.4g} {u}"
            )
        if velocity is not None and spec.velocity_limit[i] > velocity[i] + tolerance:
            problems.append(
                f"joint '{joint}' velocity={spec.velocity_limit[i]:.4g} {u}/s is above the "
                f"device's {velocity[i]:.4g} {u}/s"
            )
    if problems:
        raise ArmError(
            f"{device}: robot '{spec.name}' limits are wider than the device allows; refused "
            "before any motion: " + "; ".join(problems)
        )


class HardwareArm(Arm):
    """Base of the real drivers. Subclasses implement the ``_device_*`` steps.

    ``clock``: the host time source every joint state is stamped with (ROS time on the robot),
    ``time.time`` by default, as for the cameras (:class:`robot.cameras.base.Camera`), so arm
    and camera stamps come from one clock.
    """

    def __init__(self, spec: RobotSpec, *, clock: Callable[[], float] | None = None) -> None:
        super().__init__(spec)
        self.clock = clock or time.time
        self.connected = False
        self.enabled = False
        self._fault: str | None = None
        self._last_state: JointState | None = None

    # ------------------------------------------------------------------ naming

    @property
    def device(self) -> str:
        """The device in words that find it: model and address/port."""
        return type(self).__name__

    @property
    def name(self) -> str:
        return f"{self.device} ({self.spec.name})"

    # ------------------------------------------------------------------ faults

    @property
    def fault(self) -> str | None:
        """The latched fault, or None."""
        return self._fault

    def latch(self, reason: str) -> None:
        """Latch a fault and stop the device. Idempotent; the first reason is kept."""
        if self._fault is None:
            self._fault = reason
            log.error("%s: FAULT latched, holding: %s", self.name, reason)
        self.stop_safely()

    def recover(self, operator: str) -> None:
        """Clear a latched fault on an operator's request (their name is logged).

        The device's own recovery (unlock a protective stop, Franka's error recovery, clear an
        xArm error) runs first; if it fails the fault stays latched.
        """
        if not isinstance(operator, str) or not operator.strip():
            raise ArmError(f"{self.name}: recover() needs the name of the operator")
        if self._fault is None:
            return
        self._require_connected("recover()")
        self._device_recover()
        log.warning("%s: fault (%s) cleared by operator '%s'", self.name, self._fault, operator)
        self._fault = None

    def _require_connected(self, what: str) -> None:
        if not self.connected:
            raise ArmError(f"{self.name}: {what} before connect()")

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> None:
        if self.connected:
            return
        self._device_connect()
        self.connected = True
        try:
            self._last_state = self._device_read()
            self._check_device_limits()
        except BaseException:
            self.close()
            raise

    def enable(self) -> None:
        self._require_connected("enable()")
        if self._fault is not None:
            raise ArmFault(f"{self.name}: enable() refused, fault latched: {self._fault}")
        self._device_enable()
        self.enabled = True

    def read(self) -> JointState:
        self._require_connected("read()")
        state = self._device_read()
        self._last_state = state
        return state

    def send(self, target: np.ndarray) -> np.ndarray:
        self._require_connected("send()")
        if not self.enabled:
            raise ArmError(f"{self.name}: send() while disabled; call enable() first")
        q = np.asarray(target, dtype=np.float64).reshape(-1)
        if q.shape != (self.spec.dof,):
            raise ArmError(f"{self.name}: target has shape {q.shape}, expected ({self.spec.dof},)")
        if not np.all(np.isfinite(q)):
            raise ArmError(f"{self.name}: target is not finite: {q.tolist()}")
        if self._fault is not None:
            self._device_hold()
            held = self._last_state.position if self._last_state is not None else q
            return np.array(held, dtype=np.float64)
        return self._device_send(q)

    def hold(self) -> None:
        self._require_connected("hold()")
        self._device_hold()

    def disable(self) -> None:
        if self.connected:
            try:
                self._device_hold()
            finally:
                self._device_disable()
        self.enabled = False

    def close(self) -> None:
        try:
            if self.connected:
                self.stop_safely()
                self._device_close()
        finally:
            self.connected = False
            self.enabled = False

    def stop_safely(self) -> None:
        """Stop the device; never raises (for ``finally`` and fault handling)."""
        try:
            self._device_stop()
        except Exception as exc:
            log.error("%s: stop failed: %s", self.name, exc)

    def device_limits(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """(lower, upper, velocity) as the device states them; None where it does not."""
        return None, None, None

    def _check_device_limits(self) -> None:
        lower, upper, velocity = self.device_limits()
        check_limits(self.spec, self.name, lower, upper, velocity)

    # ------------------------------------------------------------------ device steps

    def _device_connect(self) -> None:
        raise NotImplementedError

    def _device_enable(self) -> None:
        raise NotImplementedError

    def _device_read(self) -> JointState:
        raise NotImplementedError

    def _device_send(self, q: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _device_hold(self) -> None:
        raise NotImplementedError

    def _device_disable(self) -> None:
        raise NotImplementedError

    def _device_stop(self) -> None:
        raise NotImplementedError

    def _device_close(self) -> None:
        raise NotImplementedError

    def _device_recover(self) -> None:
        """Device-side fault recovery; the default has nothing to do."""
