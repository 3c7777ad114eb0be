"""Universal Robots (e-Series and CB3) through ``ur-rtde``.

``send`` sets the target; a servo thread of the driver's own streams ``servoJ`` at the robot's
rate (500 Hz e-Series, 125 Hz CB3: ``servo_hz``), interpolating linearly from the previous
target over one control period, so the robot sees a smooth reference whatever the policy rate.
``lookahead`` and ``gain`` come from config (ranges 0.03..0.2 s and 100..2000, checked).

Safety, in the servo thread, every cycle:

- the RTDE **watchdog** is armed at connect (``setWatchdog(watchdog_hz)``) and kicked every
  cycle: if this process stalls, the robot's control script stops the arm by itself;
- **protective and emergency stops** (``isProtectiveStopped``/``isEmergencyStopped``, safety
  mode) and a control script that stopped running (the watchdog expired, a teach-pendant stop)
  latch a fault: streaming stops, ``send`` holds and returns the measured position, and
  nothing clears it automatically. ``recover(operator)`` unlocks a protective stop through the
  dashboard server and re-uploads the control script; an e-stop must be released on the robot.

``connect`` probes the RTDE port with a short timeout first, so an unreachable robot is
refused in ``connect_timeout`` s naming the address, not after ur_rtde's long retry.

Test depth: API boundary. ``tests/robot/arms/test_ur.py`` drives a fake ``RTDEControlInterface``/
``RTDEReceiveInterface``/``DashboardClient`` with the same method names and a watchdog that
expires when not kicked; a protocol-level RTDE fake (the robot's 30004 server plus script
upload) was not built. Real robot: ``pytest -m hardware --robot ur5e --host <ip>``; URSim
(the Docker simulator) also works there.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from robot.arm_interface import ArmError
from robot.arms.hardware_arm import HardwareArm
from robot.schema import JointState, RobotSpec

log = logging.getLogger(__name__)

_PI = np.pi
# Joint ranges and max speeds from the UR datasheets (rad, rad/s).
MODELS: dict[str, dict[str, Any]] = {
    "ur3e": {"range": [2 * _PI] * 6, "speed": [_PI] * 3 + [2 * _PI] * 3, "hz": 500},
    "ur5e": {"range": [2 * _PI] * 6, "speed": [_PI] * 6, "hz": 500},
    "ur10e": {"range": [2 * _PI] * 6, "speed": [2 * _PI / 3] * 2 + [_PI] * 4, "hz": 500},
    "ur16e": {"range": [2 * _PI] * 6, "speed": [2 * _PI / 3] * 2 + [_PI] * 4, "hz": 500},
    "ur3": {"range": [2 * _PI] * 6, "speed": [_PI] * 3 + [2 * _PI] * 3, "hz": 125},
    "ur5": {"range": [2 * _PI] * 6, "speed": [_PI] * 6, "hz": 125},
    "ur10": {"range": [2 * _PI] * 6, "speed": [2 * _PI / 3] * 2 + [_PI] * 4, "hz": 125},
}
SAFETY_MODES = {
    1: "normal",
    2: "reduced",
    3: "protective stop",
    4: "recovery",
    5: "safeguard stop",
    6: "system emergency stop",
    7: "robot emergency stop",
    8: "violation",
    9: "fault",
    10: "validate joint id",
    11: "undefined",
    12: "automatic mode safeguard stop",
    13: "system three-position enabling stop",
}


@dataclass
class URConfig:
    model: str = "ur5e"
    host: str = ""
    servo_hz: float = 0.0  # 0: the model's rate (500 e-Series, 125 CB3)
    lookahead: float = 0.1
    gain: float = 300.0
    watchdog_hz: float = 10.0
    connect_timeout: float = 2.0
    rtde_port: int = 30004


def _sdk() -> SimpleNamespace:
    try:
        import dashboard_client
        import rtde_control
        import rtde_receive
    except ImportError as exc:  # pragma: no cover - the hardware extra is missing
        raise ArmError("ur_rtde is not installed: pip install 'vla-dojo[hardware]'") from exc
    return SimpleNamespace(
        RTDEControlInterface=rtde_control.RTDEControlInterface,
        RTDEReceiveInterface=rtde_receive.RTDEReceiveInterface,
        DashboardClient=dashboard_client.DashboardClient,
    )


class URArm(HardwareArm):
    """A UR arm. ``sdk``: the ur_rtde classes (tests pass fakes with the same API)."""

    def __init__(
        self,
        spec: RobotSpec,
        config: URConfig,
        sdk: Any = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(spec, clock=clock)
        if config.model not in MODELS:
            raise ArmError(
                f"robot '{spec.name}': UR model {config.model!r} not in {sorted(MODELS)}"
            )
        if not config.host:
            raise ArmError(f"UR {config.model}: no robot address given (driver.host)")
        if spec.dof != 6:
            raise ArmError(f"UR {config.model} @ {config.host}: has 6 joints, spec has {spec.dof}")
        if not 0.03 <= config.lookahead <= 0.2:
            raise ArmError(f"UR @ {config.host}: lookahead={config.lookahead} not in [0.03, 0.2] s")
        if not 100 <= config.gain <= 2000:
            raise ArmError(f"UR @ {config.host}: gain={config.gain} not in [100, 2000]")
        self.config = config
        self.servo_hz = float(config.servo_hz or MODELS[config.model]["hz"])
        self._sdk = sdk
        self._ctrl = None
        self._recv = None
        self._lock = threading.Lock()
        self._target: np.ndarray | None = None
        self._prev_target: np.ndarray | None = None
        self._target_time = 0.0
        self._streaming = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cycles = 0

    @property
    def device(self) -> str:
        return f"UR {self.config.model} @ {self.config.host}"

    def device_limits(self):
        m = MODELS[self.config.model]
        rng = np.asarray(m["range"])
        return -rng, rng, np.asarray(m["speed"])

    # ------------------------------------------------------------------ device steps

    def _device_connect(self) -> None:
        host = self.config.host
        try:
            with socket.create_connection(
                (host, self.config.rtde_port), self.config.connect_timeout
            ):
                pass
        except OSError as exc:
            raise ArmError(
                f"{self.device}: unreachable (RTDE port {self.config.rtde_port}: {exc})"
            ) from exc
        sdk = self._sdk or _sdk()
        try:
            self._recv = sdk.RTDEReceiveInterface(host)
            self._ctrl = sdk.RTDEControlInterface(host, self.servo_hz)
        except RuntimeError as exc:
            raise ArmError(f"{self.device}: RTDE connection failed: {exc}") from exc
        self._dashboard = sdk.DashboardClient(host)
        if not self._ctrl.setWatchdog(self.config.watchdog_hz):
            raise ArmError(f"{self.device}: could not arm the RTDE watchdog")
        self._ctrl.kickWatchdog()
        self._check_safety()
        self._stop.clear()
        self._thread = threading.Thread(target=self._servo_loop, name="ur-servo", daemon=True)
        self._thread.start()

    def _device_read(self) -> JointState:
        recv = self._recv
        q = np.asarray(recv.getActualQ(), dtype=np.float64)
        qd = np.asarray(recv.getActualQd(), dtype=np.float64)
        return JointState(stamp=self.clock(), position=q, velocity=qd)

    def _device_enable(self) -> None:
        with self._lock:
            q = self._device_read().position
            self._target = self._prev_target = q
            self._target_time = time.monotonic()
        self._streaming.set()

    def _device_send(self, q: np.ndarray) -> np.ndarray:
        if self._thread is None or not self._thread.is_alive():
            raise ArmError(f"{self.device}: servo thread is not running")
        lower, upper, _ = self.device_limits()
        q = np.clip(q, lower, upper)
        with self._lock:
            now = time.monotonic()
            self._prev_target = self._interpolated(now)
            self._target = q.copy()
            self._target_time = now
        self._streaming.set()
        return q

    def _interpolated(self, now: float) -> np.ndarray:
        if self._target is None:
            return self._device_read().position
        if self._prev_target is None:
            return self._target
        a = min(1.0, (now - self._target_time) * self.spec.control_hz)
        return self._prev_target + a * (self._target - self._prev_target)

    def _device_hold(self) -> None:
        self._streaming.clear()
        if self._ctrl is not None:
            self._ctrl.servoStop(2.0)
        with self._lock:
            self._target = self._prev_target = None

    def _device_disable(self) -> None:
        self._streaming.clear()

    def _device_stop(self) -> None:
        self._streaming.clear()
        if self._ctrl is not None:
            self._ctrl.servoStop(4.0)

    def _device_close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for obj in (self._ctrl, self._recv):
            if obj is not None:
                try:
                    if obj is self._ctrl:
                        obj.stopScript()
                    obj.disconnect()
                except Exception as exc:
                    log.warning("%s: disconnect: %s", self.device, exc)
        self._ctrl = self._recv = None

    def _device_recover(self) -> None:
        recv = self._recv
        if recv.isEmergencyStopped():
            raise ArmError(f"{self.device}: emergency stop still pressed; release it on the robot")
        if recv.isProtectiveStopped():
            self._dashboard.connect()
            self._dashboard.closeSafetyPopup()
            self._dashboard.unlockProtectiveStop()
            self._dashboard.disconnect()
        if not self._ctrl.isProgramRunning():
            self._ctrl.reuploadScript()
        if not self._ctrl.setWatchdog(self.config.watchdog_hz):
            raise ArmError(f"{self.device}: could not re-arm the RTDE watchdog")
        if recv.isProtectiveStopped():
            raise ArmError(f"{self.device}: protective stop is still active after unlock")

    # ------------------------------------------------------------------ the servo thread

    def _check_safety(self) -> str | None:
        recv = self._recv
        if recv.isEmergencyStopped():
            return "emergency stop"
        if recv.isProtectiveStopped():
            return "protective stop"
        mode = int(recv.getSafetyMode())
        if mode not in (1, 2):
            return f"safety mode {mode} ({SAFETY_MODES.get(mode, 'unknown')})"
        if self._ctrl is not None and not self._ctrl.isProgramRunning():
            return "control script not running (RTDE watchdog expired or stopped on the pendant)"
        return None

    def _servo_loop(self) -> None:
        dt = 1.0 / self.servo_hz
        try:
            while not self._stop.is_set():
                t0 = self._ctrl.initPeriod()
                problem = self._check_safety()
                if problem and self._fault is None:
                    self._streaming.clear()
                    self.latch(f"{problem} detected on {self.device}")
                if self._fault is None:
                    self._ctrl.kickWatchdog()
                    if self._streaming.is_set():
                        with self._lock:
                            target = self._interpolated(time.monotonic())
                        self._ctrl.servoJ(
                            target.tolist(), 0.0, 0.0, dt, self.config.lookahead, self.config.gain
                        )
                self.cycles += 1
                self._ctrl.waitPeriod(t0)
        except Exception as exc:
            self.latch(f"servo thread failed: {type(exc).__name__}: {exc}")
