"""The one interface every arm implements, real or simulated.

Lifecycle, mirroring a ROS 2 lifecycle node (configure / activate / deactivate / cleanup)::

    Arm(spec, cfg)   no device I/O in the constructor
    connect()        open the device, read its state          (configure)
    enable()         allow motion: servo on, brakes off      (activate)
    send(q)          stream a joint position target; returns what was actually sent
    hold()           stop tracking new targets, keep the current position (deactivate)
    disable()        servo off / brakes on
    close()          release the device                      (cleanup)

``send`` is only ever called with an action that already passed ``SafetyLimits``; a driver may
clamp further (device limits) and must return the target it really commanded, which is what
gets recorded. Drivers run their I/O in ``try/finally`` so the arm is held whatever happens.
"""

from __future__ import annotations

import abc

import numpy as np

from robot.schema import JointState, RobotSpec


class ArmError(RuntimeError):
    """A device-level failure. The message names the device."""


class Arm(abc.ABC):
    """A joint-position-controlled arm (the gripper is one of its joints)."""

    def __init__(self, spec: RobotSpec) -> None:
        self.spec = spec

    @abc.abstractmethod
    def connect(self) -> None: ...

    @abc.abstractmethod
    def enable(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> JointState:
        """The latest measured joint state, stamped in ROS time."""

    @abc.abstractmethod
    def send(self, target: np.ndarray) -> np.ndarray:
        """Command joint position ``target`` ``(D,)``; return the target actually commanded."""

    @abc.abstractmethod
    def hold(self) -> None:
        """Hold the current measured position until the next ``send``."""

    @abc.abstractmethod
    def disable(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @property
    def name(self) -> str:
        return f"{type(self).__name__}({self.spec.name})"
