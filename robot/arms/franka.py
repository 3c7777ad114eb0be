"""Franka Emika Panda / FR3 through ``franky-control``.

Targets at the policy rate, in one of three modes (``mode``):

- ``joint``: each ``send`` starts an asynchronous ``JointMotion`` (``return_when_finished=False``)
  that takes over from the running one; franky's trajectory generator keeps the 1 kHz
  reference smooth and within the robot's limits (scaled by ``dynamics_factor``);
- ``joint_impedance``: one ``JointImpedanceTrackingMotion`` runs from ``enable``; each ``send``
  sets its ``JointReference``;
- ``cartesian_impedance``: one ``CartesianImpedanceTrackingMotion``; each ``send``'s joint
  target becomes an end-effector pose through franky's own model (``Model.pose``).

Reflex errors (collision, joint limit, communication constraints) come out of franky as
exceptions of the running motion: ``poll_motion`` raises them at the next ``read``/``send``,
and the driver latches a fault naming the reflex. Nothing recovers by itself; the operator's
``recover(operator)`` calls franky's ``recover_from_errors`` (libfranka's automatic error
recovery) and only a successful one clears the latch.

Test depth: protocol level. ``tests/robot/arms/test_franka_sim.py`` runs franky's own
libfranka client against ``franky-sim`` (a libfranka network-protocol server over a MuJoCo FR3)
on this machine: connect, state, joint-mode streaming at 20 Hz, joint impedance tracking,
hold, an unreachable address. Reflexes cannot be provoked in franky-sim, so latching and
operator recovery are tested at the franky API boundary with a fake module
(``test_franka.py``). Cartesian impedance is exercised only against that fake. Real robot:
``pytest -m hardware --robot fr3 --host <ip>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot.arm_interface import ArmError
from robot.arms.hardware_arm import HardwareArm
from robot.schema import JointState, RobotSpec

log = logging.getLogger(__name__)

# Joint limits from Franka's datasheets (rad, rad/s).
MODELS: dict[str, dict[str, list[float]]] = {
    "fr3": {
        "lower": [-2.7437, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159],
        "upper": [2.7437, 1.7837, 2.9007, -0.1518, 2.8065, 4.5169, 3.0159],
        "speed": [2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26],
    },
    "panda": {
        "lower": [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973],
        "upper": [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973],
        "speed": [2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61],
    },
}
MODES = ("joint", "joint_impedance", "cartesian_impedance")


@dataclass
class FrankaConfig:
    model: str = "fr3"
    host: str = ""
    mode: str = "joint"
    dynamics_factor: float = 0.2
    realtime: bool = True  # False: RealtimeConfig.Ignore, for a kernel without PREEMPT_RT
    joint_stiffness: list[float] | None = None
    translational_stiffness: float = 500.0
    rotational_stiffness: float = 50.0


def _franky():
    try:
        import franky
    except ImportError as exc:  # pragma: no cover - the hardware extra is missing
        raise ArmError("franky is not installed: pip install 'vla-dojo[hardware]'") from exc
    return franky


class FrankaArm(HardwareArm):
    """A Panda or FR3 arm (7 joints). ``franky``: the module (tests pass a fake)."""

    def __init__(
        self,
        spec: RobotSpec,
        config: FrankaConfig,
        franky: Any = None,
        *,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(spec, clock=clock)
        if config.model not in MODELS:
            raise ArmError(
                f"robot '{spec.name}': Franka model {config.model!r} not in {list(MODELS)}"
            )
        if config.mode not in MODES:
            raise ArmError(f"Franka @ {config.host}: mode={config.mode!r} not in {list(MODES)}")
        if not config.host:
            raise ArmError(f"Franka {config.model}: no robot address given (driver.host)")
        arm_joints = spec.dof - (1 if spec.gripper_joint else 0)
        if arm_joints != 7:
            raise ArmError(
                f"Franka {config.model} @ {config.host}: 7 arm joints, spec has {arm_joints}"
            )
        if not 0 < config.dynamics_factor <= 1:
            raise ArmError(
                f"Franka @ {config.host}: dynamics_factor={config.dynamics_factor} not in (0, 1]"
            )
        self.config = config
        self._fr = franky
        self._robot = None
        self._motion = None
        self._arm_idx = np.array(
            [i for i, j in enumerate(spec.joint_names) if j != spec.gripper_joint]
        )
        self._gripper = 0.0

    @property
    def device(self) -> str:
        return f"Franka {self.config.model} @ {self.config.host}"

    def device_limits(self):
        m = MODELS[self.config.model]
        lower = np.full(self.spec.dof, -np.inf)  # the gripper is checked by its own driver
        upper = np.full(self.spec.dof, np.inf)
        speed = np.full(self.spec.dof, np.inf)
        lower[self._arm_idx], upper[self._arm_idx] = m["lower"], m["upper"]
        speed[self._arm_idx] = m["speed"]
        return lower, upper, speed

    # ------------------------------------------------------------------ device steps

    def _device_connect(self) -> None:
        fr = self._fr or _franky()
        self._fr = fr
        kwargs = {}
        if not self.config.realtime:
            kwargs["realtime_config"] = fr.RealtimeConfig.Ignore
        try:
            self._robot = fr.Robot(self.config.host, **kwargs)
        except Exception as exc:
            raise ArmError(f"{self.device}: connection failed: {exc}") from exc
        self._robot.relative_dynamics_factor = self.config.dynamics_factor
        if self._robot.has_errors:
            self.latch(f"robot reports errors at connect on {self.device}")

    def _poll(self) -> None:
        """Surface a reflex of the running motion as a latched fault."""
        try:
            self._robot.poll_motion()
        except Exception as exc:
            self._motion = None
            self.latch(f"reflex on {self.device}: {type(exc).__name__}: {exc}")

    def _device_read(self) -> JointState:
        self._poll()
        js = self._robot.current_joint_state
        q = np.zeros(self.spec.dof)
        v = np.zeros(self.spec.dof)
        q[self._arm_idx] = np.asarray(js.position, dtype=np.float64)
        v[self._arm_idx] = np.asarray(js.velocity, dtype=np.float64)
        if self.spec.gripper_joint:
            q[self.spec.joint_index([self.spec.gripper_joint])[0]] = self._gripper
        return JointState(stamp=self.clock(), position=q, velocity=v)

    def _device_enable(self) -> None:
        if self._robot.has_errors:
            raise ArmError(f"{self.device}: robot reports errors; recover(operator) first")
        self._motion = None
        if self.config.mode != "joint":
            self._start_tracking()

    def _start_tracking(self) -> None:
        fr, cfg = self._fr, self.config
        if cfg.mode == "joint_impedance":
            kw = {}
            if cfg.joint_stiffness:
                kw["stiffness"] = np.asarray(cfg.joint_stiffness, dtype=np.float64)
            self._motion = fr.JointImpedanceTrackingMotion(**kw)
        else:
            self._motion = fr.CartesianImpedanceTrackingMotion(
                translational_stiffness=cfg.translational_stiffness,
                rotational_stiffness=cfg.rotational_stiffness,
            )
        self._robot.move(self._motion, asynchronous=True)

    def _device_send(self, q: np.ndarray) -> np.ndarray:
        self._poll()
        if self._fault is not None:
            return self._device_read().position
        lower, upper, _ = self.device_limits()
        sent = np.clip(q, lower, upper)
        arm_q = sent[self._arm_idx]
        fr = self._fr
        if self.config.mode == "joint":
            motion = fr.JointMotion(fr.JointState(arm_q), return_when_finished=False)
            self._robot.move(motion, asynchronous=True)
        elif self.config.mode == "joint_impedance":
            if self._motion is None:
                self._start_tracking()
            self._motion.set_reference(fr.JointReference(arm_q))
        else:
            if self._motion is None:
                self._start_tracking()
            state = self._robot.state
            pose = self._robot.model.pose(fr.Frame.EndEffector, arm_q, state.F_T_EE, state.EE_T_K)
            self._motion.set_reference(fr.CartesianReference(pose))
        if self.spec.gripper_joint:
            self._gripper = float(sent[self.spec.joint_index([self.spec.gripper_joint])[0]])
        return sent

    def _device_hold(self) -> None:
        if self.config.mode == "joint" or self._motion is None:
            self._robot.move(fr_stop(self._fr), asynchronous=True)
        else:
            q = np.asarray(self._robot.current_joint_state.position, dtype=np.float64)
            if self.config.mode == "joint_impedance":
                self._motion.set_reference(self._fr.JointReference(q))
            else:
                self._motion.set_reference(
                    self._fr.CartesianReference(self._robot.current_pose.end_effector_pose)
                )

    def _device_disable(self) -> None:
        self._device_stop()

    def _device_stop(self) -> None:
        if self._robot is not None:
            self._robot.stop()
            self._motion = None

    def _device_close(self) -> None:
        self._robot = None

    def _device_recover(self) -> None:
        if not self._robot.recover_from_errors():
            raise ArmError(f"{self.device}: automatic error recovery failed; check the robot")


def fr_stop(fr: Any) -> Any:
    """A motion that brings the arm to rest and holds there."""
    return fr.JointStopMotion()
