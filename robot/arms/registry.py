"""The one place an arm driver is chosen: ``make_arm(spec, driver, options)``.

``driver`` is the robot preset's ``driver`` key; ``options`` its ``device`` section (port,
host, model, ...), a plain mapping checked against the driver's config dataclass. ``sim``
returns the MuJoCo twin's own arm and needs the twin (``twin=``), which the robot driver
composes from the same preset. Unknown drivers and misspelt option keys name the nearest valid
one.

:data:`DRIVERS` is a :class:`robot.registry.Registry` whose entries name their driver module
as text, so listing or validating driver names imports no SDK and no driver; a driver module
is imported when its entry is built (and imports its SDK only on ``connect``). Adding a driver:
one class and config dataclass in ``robot/arms/``, one ``DRIVERS.register`` line below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from robot.arm_interface import Arm, ArmError
from robot.registry import Registry, UnknownNameError, did_you_mean
from robot.schema import RobotSpec

DRIVERS: Registry[Arm] = Registry("arm driver")
DRIVERS.register("sim", lambda spec, config, twin, clock: twin.arm, doc="the MuJoCo twin's arm")
for _model in ("so101", "so100", "koch"):
    DRIVERS.register(
        _model,
        "robot.arms.lerobot_arm:LeRobotArm",
        config="robot.arms.lerobot_arm:LeRobotArmConfig",
        doc=f"{_model} follower arm through LeRobot",
    )
DRIVERS.register("ur", "robot.arms.ur:URArm", config="robot.arms.ur:URConfig", doc="ur-rtde")
DRIVERS.register(
    "franka", "robot.arms.franka:FrankaArm", config="robot.arms.franka:FrankaConfig", doc="franky"
)
DRIVERS.register(
    "xarm", "robot.arms.xarm:XArm", config="robot.arms.xarm:XArmConfig", doc="xarm-python-sdk"
)


def _options(cls, options: Mapping[str, Any], where: str, **fixed: Any):
    names = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ArmError(
            f"{where}: unknown device option(s) {unknown}{did_you_mean(unknown[0], names)} "
            f"(valid: {names})"
        )
    return cls(**{**options, **fixed})


def make_arm(
    spec: RobotSpec,
    driver: str,
    options: Mapping[str, Any] | None = None,
    *,
    twin: Any = None,
    clock: Callable[[], float] | None = None,
) -> Arm:
    """The :class:`~robot.arm_interface.Arm` for ``driver``; constructs only (no device I/O).

    ``clock``: what a real driver stamps joint states with (default ``time.time``; the robot
    driver node passes ROS time). A config with a ``robot_type`` field (LeRobot's, one class
    for several arms) gets the driver name as its ``robot_type``.
    """
    opts = dict(options or {})
    where = f"robot '{spec.name}' (driver {driver!r})"
    try:
        entry = DRIVERS.entry(driver)
    except UnknownNameError as err:
        raise ArmError(f"{where}: {err}") from None
    config_class = entry.config_class()
    if config_class is None:  # the twin's own arm
        if twin is None:
            raise ArmError(f"{where}: the sim driver needs the twin it belongs to")
        return entry.load()(spec, None, twin, clock)
    fixed = {"robot_type": driver} if "robot_type" in config_class.__dataclass_fields__ else {}
    return entry.load()(spec, _options(config_class, opts, where, **fixed), clock=clock)
