"""The one way to build a teleop device from its name and plain configuration values.

Why one registry: :data:`DEVICES` (a :class:`robot.registry.Registry`, the pattern arms,
cameras, policies and critics use too) is the only place a device is looked up, so the CLI,
the intervention node and the tests cannot disagree about which names exist. Entries name each
device and its config dataclass as ``module:attribute`` text, so listing the names imports no
device module; building a device does no I/O (devices open in ``connect()``), and no hardware
SDK is imported before that.

    make_device("spacemouse", max_speed=0.05)      -> SpaceMouse (not yet connected)
    make_device("keyboard", step=0.002)            -> Keyboard
    make_device("gamepad", backend="evdev")        -> Gamepad
    make_device("leader_arm", port="/dev/ttyACM1") -> LeaderArm

A misspelt name or key fails at once with the nearest valid one suggested.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from robot.registry import Registry, UnknownNameError, did_you_mean
from teleop.device import TeleopConfigError, TeleopDevice

DEVICES: Registry[TeleopDevice] = Registry("teleop device")
DEVICES.register("keyboard", "teleop.keyboard:Keyboard", config="teleop.keyboard:KeyboardConfig")
DEVICES.register("gamepad", "teleop.gamepad:Gamepad", config="teleop.gamepad:GamepadConfig")
DEVICES.register(
    "spacemouse", "teleop.spacemouse:SpaceMouse", config="teleop.spacemouse:SpaceMouseConfig"
)
DEVICES.register(
    "leader_arm", "teleop.leader_arm:LeaderArm", config="teleop.leader_arm:LeaderArmConfig"
)


def device_names() -> list[str]:
    return DEVICES.names()


def config_class(name: str) -> type:
    """The configuration dataclass of device ``name``."""
    try:
        return DEVICES.entry(name).config_class()
    except UnknownNameError as err:
        raise TeleopConfigError(str(err)) from None


def make_device(name: str, **config: Any) -> TeleopDevice:
    """A new, unconnected device ``name`` configured by ``config`` (its config's fields)."""
    cls_config = config_class(name)
    fields = [f.name for f in dataclasses.fields(cls_config)]
    unknown = [k for k in config if k not in fields]
    if unknown:
        key = unknown[0]
        raise TeleopConfigError(
            f"teleop device '{name}': unknown config key '{key}' (keys: {fields})"
            f"{did_you_mean(key, fields, cutoff=0.5)}"
        )
    try:
        cfg = cls_config(**config)
    except (TypeError, ValueError) as exc:
        raise TeleopConfigError(f"teleop device '{name}': {exc}") from exc
    return DEVICES.entry(name).load()(cfg)
