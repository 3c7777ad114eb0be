"""UFACTORY xArm 5/6/7 and Lite 6 through ``xarm-python-sdk`` (``xarm.wrapper.XArmAPI``).

Joint targets stream in servo mode (``set_mode(1)``, ``set_servo_angle_j`` in rad) at the
policy rate; the controller interpolates. Every SDK call returns a code: a non-zero code, or
``error_code`` on the controller, latches a fault naming the code (collision, joint limit,
e-stop: the xArm stops itself). ``recover(operator)`` clears errors and warnings, re-enables
motion and returns to servo mode; nothing recovers automatically.

``connect`` uses ``XArmAPI(host, is_radian=True, do_not_open=True)`` then ``connect()`` so
that the constructor here does no I/O and an unreachable address fails in ``connect`` with
the address named.

Test depth: API boundary (``tests/robot/arms/test_xarm.py`` fakes ``XArmAPI`` with its method
names and return codes). UFACTORY Studio's simulator or a real arm: ``pytest -m hardware
--robot xarm6 --host <ip>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot.arm_interface import ArmError
from robot.arms.hardware_arm import HardwareArm
from robot.schema import JointState, RobotSpec

_D = np.pi / 180
# Joint ranges (rad) and max joint speed from the UFACTORY user manuals.
MODELS: dict[str, dict[str, Any]] = {
    "xarm6": {
        "lower": [-2 * np.pi, -118 * _D, -225 * _D, -2 * np.pi, -97 * _D, -2 * np.pi],
        "upper": [2 * np.pi, 120 * _D, 11 * _D, 2 * np.pi, 180 * _D, 2 * np.pi],
        "speed": [np.pi] * 6,
    },
    "xarm7": {
        "lower": [-2 * np.pi, -118 * _D, -2 * np.pi, -11 * _D, -2 * np.pi, -97 * _D, -2 * np.pi],
        "upper": [2 * np.pi, 120 * _D, 2 * np.pi, 225 * _D, 2 * np.pi, np.pi, 2 * np.pi],
        "speed": [np.pi] * 7,
    },
    "lite6": {
        "lower": [-2 * np.pi, -150 * _D, -3.5 * _D, -2 * np.pi, -124 * _D, -2 * np.pi],
        "upper": [2 * np.pi, 150 * _D, 300 * _D, 2 * np.pi, 124 * _D, 2 * np.pi],
        "speed": [np.pi] * 6,
    },
}


@dataclass
class XArmConfig:
    model: str = "xarm6"
    host: str = ""


def _sdk():
    try:
        from xarm.wrapper import XArmAPI
    except ImportError as exc:  # pragma: no cover - the hardware extra is missing
        raise ArmError(
            "xarm-python-sdk is not installed: pip install 'vla-dojo[hardware]'"
        ) from exc
    return XArmAPI


class XArm(HardwareArm):
    """A UFACTORY arm. ``api``: the ``XArmAPI`` class (tests pass a fake)."""

    def __init__(
        self,
        spec: RobotSpec,
        config: XArmConfig,
        api: Any = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(spec, clock=clock)
        if config.model not in MODELS:
            raise ArmError(
                f"robot '{spec.name}': xArm model {config.model!r} not in {list(MODELS)}"
            )
        if not config.host:
            raise ArmError(f"{config.model}: no robot address given (driver.host)")
        n = len(MODELS[config.model]["lower"])
        if spec.dof != n:
            raise ArmError(f"{config.model} @ {config.host}: has {n} joints, spec has {spec.dof}")
        self.config = config
        self._api_cls = api
        self._arm = None

    @property
    def device(self) -> str:
        return f"{self.config.model} @ {self.config.host}"

    def device_limits(self):
        m = MODELS[self.config.model]
        return np.asarray(m["lower"]), np.asarray(m["upper"]), np.asarray(m["speed"])

    def _check(self, what: str, code: Any) -> None:
        code = code[0] if isinstance(code, tuple | list) else code
        if code not in (0, None):
            self.latch(
                f"{what} returned code {code} on {self.device} (error_code "
                f"{getattr(self._arm, 'error_code', '?')})"
            )
            raise ArmError(f"{self.device}: {what} failed with code {code}")

    def _device_connect(self) -> None:
        cls = self._api_cls or _sdk()
        arm = cls(self.config.host, is_radian=True, do_not_open=True)
        try:
            arm.connect()
        except Exception as exc:
            raise ArmError(f"{self.device}: unreachable: {exc}") from exc
        if not arm.connected:
            raise ArmError(f"{self.device}: unreachable (connect() did not connect)")
        self._arm = arm
        if arm.error_code:
            self.latch(f"controller error_code {arm.error_code} at connect on {self.device}")

    def _device_read(self) -> JointState:
        arm = self._arm
        if arm.error_code and self._fault is None:
            self.latch(f"controller error_code {arm.error_code} on {self.device}")
        code, states = arm.get_joint_states(is_radian=True)
        if code != 0:
            raise ArmError(f"{self.device}: get_joint_states failed with code {code}")
        q = np.asarray(states[0][: self.spec.dof], dtype=np.float64)
        v = np.asarray(states[1][: self.spec.dof], dtype=np.float64)
        return JointState(stamp=self.clock(), position=q, velocity=v)

    def _device_enable(self) -> None:
        arm = self._arm
        self._check("motion_enable", arm.motion_enable(enable=True))
        self._check("set_mode(1)", arm.set_mode(1))
        self._check("set_state(0)", arm.set_state(0))

    def _device_send(self, q: np.ndarray) -> np.ndarray:
        if self._arm.error_code:
            self.latch(f"controller error_code {self._arm.error_code} on {self.device}")
            return self._device_read().position
        lower, upper, _ = self.device_limits()
        sent = np.clip(q, lower, upper)
        self._check("set_servo_angle_j", self._arm.set_servo_angle_j(sent.tolist(), is_radian=True))
        return sent

    def _device_hold(self) -> None:
        if self._arm is not None and self._last_state is not None and not self._fault:
            self._arm.set_servo_angle_j(self._last_state.position.tolist(), is_radian=True)

    def _device_disable(self) -> None:
        if self._arm is not None:
            self._arm.set_state(4)  # stop

    def _device_stop(self) -> None:
        if self._arm is not None:
            self._arm.set_state(4)

    def _device_close(self) -> None:
        arm, self._arm = self._arm, None
        if arm is not None:
            arm.disconnect()

    def _device_recover(self) -> None:
        arm = self._arm
        arm.clean_error()
        arm.clean_warn()
        if arm.error_code:
            raise ArmError(f"{self.device}: error_code {arm.error_code} persists after clean_error")
        self._check("motion_enable", arm.motion_enable(enable=True))
        self._check("set_mode(1)", arm.set_mode(1))
        self._check("set_state(0)", arm.set_state(0))
