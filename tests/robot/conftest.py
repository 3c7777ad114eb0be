"""Shared fixtures for the control-path tests: a 3-joint arm, its analytic FK, a fake driver.

The arm, seen from the side (``shoulder_pan`` yaws the whole plane about z)::

          z
          |        o  end effector
          |       / forearm 0.2 m (elbow_flex, relative to the upper arm)
          |  o---o
          |  |    upper arm 0.2 m (shoulder_lift, from horizontal)
          |  |  base 0.1 m
    ------+--+----------- reach (x cos pan, y sin pan)

Limits are chosen so that each of velocity, acceleration and max_step can be the binding one,
and so that the workspace floor (z >= 0) is reachable within the joint limits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from robot.arm_interface import Arm
from robot.schema import JointState, RobotSpec

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex")
BASE_HEIGHT, UPPER_ARM, FOREARM = 0.1, 0.2, 0.2

SPEC_CONFIG: dict[str, Any] = {
    "name": "test_arm3",
    "joint_names": list(JOINTS),
    "limits": {
        "position_lower": [-2.0, -0.5, -2.0],
        "position_upper": [2.0, 2.0, 2.0],
        "velocity": [1.0, 1.0, 1.5],  # per tick at 50 Hz: 0.02, 0.02, 0.03 rad
        "acceleration": [5.0, 5.0, 8.0],  # per tick: 0.1, 0.1, 0.16 rad/s of velocity change
        "max_step": [0.05, 0.01, 0.05],  # binds before velocity on shoulder_lift
    },
    "home": [0.0, 0.5, 0.5],
    "workspace": {"lower": [-0.5, -0.5, 0.0], "upper": [0.5, 0.5, 0.6]},
    "control_hz": 50.0,
}


def planar_fk(q: np.ndarray) -> np.ndarray:
    """End-effector position (m) of the test arm."""
    pan, lift, flex = np.asarray(q, dtype=np.float64)
    reach = UPPER_ARM * np.cos(lift) + FOREARM * np.cos(lift + flex)
    height = BASE_HEIGHT + UPPER_ARM * np.sin(lift) + FOREARM * np.sin(lift + flex)
    return np.array([reach * np.cos(pan), reach * np.sin(pan), height])


def spec_config(**overrides: Any) -> dict[str, Any]:
    """A deep copy of the test config; ``limits``/``workspace`` overrides merge key by key."""
    cfg = copy.deepcopy(SPEC_CONFIG)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    return cfg


class FakeArm(Arm):
    """An arm that tracks every sent target perfectly and records what it was told.

    ``t`` stamps the next :meth:`read`; ``fail_on`` names operations that raise;
    ``device_clamp`` (optional) models a driver that clamps further and reports it.
    """

    def __init__(self, spec: RobotSpec, position: np.ndarray | None = None) -> None:
        super().__init__(spec)
        self.position = np.array(spec.home if position is None else position, dtype=np.float64)
        self.t = 0.0
        self.sent: list[np.ndarray] = []
        self.holds = 0
        self.fail_on: set[str] = set()
        self.device_clamp: Callable[[np.ndarray], np.ndarray] | None = None
        self.connected = self.enabled = False

    def _maybe_fail(self, op: str) -> None:
        if op in self.fail_on:
            raise RuntimeError(f"injected {op} failure")

    def connect(self) -> None:
        self.connected = True

    def enable(self) -> None:
        self.enabled = True

    def read(self) -> JointState:
        self._maybe_fail("read")
        return JointState(self.t, self.position.copy(), np.zeros(self.spec.dof))

    def send(self, target: np.ndarray) -> np.ndarray:
        self._maybe_fail("send")
        commanded = np.array(target, dtype=np.float64)
        if self.device_clamp is not None:
            commanded = self.device_clamp(commanded)
        self.sent.append(commanded.copy())
        self.position = commanded.copy()
        return commanded

    def hold(self) -> None:
        self._maybe_fail("hold")
        self.holds += 1

    def disable(self) -> None:
        self.enabled = False

    def close(self) -> None:
        self.connected = False


@pytest.fixture(scope="session")
def spec() -> RobotSpec:
    return RobotSpec.from_mapping(spec_config())


@pytest.fixture(scope="session")
def fk() -> Callable[[np.ndarray], np.ndarray]:
    return planar_fk


@pytest.fixture(scope="session")
def make_config() -> Callable[..., dict[str, Any]]:
    """Factory: a fresh copy of the test robot's config, some keys overridden."""
    return spec_config


@pytest.fixture(scope="session")
def make_spec() -> Callable[..., RobotSpec]:
    """Factory: a test spec with some config keys overridden."""
    return lambda **overrides: RobotSpec.from_mapping(spec_config(**overrides))


@pytest.fixture(scope="session")
def make_arm() -> Callable[..., FakeArm]:
    """Factory: ``make_arm(spec, position=None)``, a connected and enabled :class:`FakeArm`."""

    def build(spec: RobotSpec, position: np.ndarray | None = None) -> FakeArm:
        arm = FakeArm(spec, position)
        arm.connect()
        arm.enable()
        return arm

    return build


@pytest.fixture
def fake_arm(spec: RobotSpec) -> FakeArm:
    arm = FakeArm(spec)
    arm.connect()
    arm.enable()
    return arm
