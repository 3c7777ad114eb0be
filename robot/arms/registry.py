"""The one place an arm driver is chosen: ``make_arm(spec, driver, options)``.

``driver`` is the robot preset's ``driver`` key; ``options`` its ``device`` section (port,
host, model, ...), a plain mapping. ``sim`` returns the MuJoCo twin's own arm and needs the
twin (``twin=``), which the robot driver composes from the same preset. Unknown drivers and
misspelt option keys name the nearest valid one. SDKs are imported by the drivers, not here.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from robot.arm import Arm, ArmError
from robot.schema import RobotSpec

DRIVERS = ("sim", "so101", "so100", "koch", "ur", "franka", "xarm")


def _options(cls, options: Mapping[str, Any], where: str, **fixed: Any):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        near = difflib.get_close_matches(unknown[0], sorted(names), n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ArmError(
            f"{where}: unknown device option(s) {unknown}{hint} (valid: {sorted(names)})"
        )
    return cls(**{**options, **fixed})


def make_arm(
    spec: RobotSpec, driver: str, options: Mapping[str, Any] | None = None, *, twin: Any = None
) -> Arm:
    """The :class:`~robot.arm.Arm` for ``driver``; constructs only (no device I/O)."""
    opts = dict(options or {})
    where = f"robot '{spec.name}' (driver {driver!r})"
    if driver == "sim":
        if twin is None:
            raise ArmError(f"{where}: the sim driver needs the twin it belongs to")
        return twin.arm
    if driver in ("so101", "so100", "koch"):
        from robot.arms.lerobot_arm import LeRobotArm, LeRobotArmConfig

        return LeRobotArm(spec, _options(LeRobotArmConfig, opts, where, robot_type=driver))
    if driver == "ur":
        from robot.arms.ur import URArm, URConfig

        return URArm(spec, _options(URConfig, opts, where))
    if driver == "franka":
        from robot.arms.franka import FrankaArm, FrankaConfig

        return FrankaArm(spec, _options(FrankaConfig, opts, where))
    if driver == "xarm":
        from robot.arms.xarm import XArm, XArmConfig

        return XArm(spec, _options(XArmConfig, opts, where))
    near = difflib.get_close_matches(driver, DRIVERS, n=1)
    hint = f"; did you mean '{near[0]}'?" if near else ""
    raise ArmError(f"{where}: unknown driver{hint} (valid: {list(DRIVERS)})")
