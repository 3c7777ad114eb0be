"""The one way to build a teleop device from its name and plain configuration values.

Why one registry: a table from name to (class, config dataclass) is the only place a device is
looked up, so the CLI, the intervention node and the tests cannot disagree about which names
exist (no if/elif chains elsewhere, no plugins, no name reflection). Building a device does
no I/O (devices open in ``connect()``), and importing this module imports no hardware SDK.

    make_device("spacemouse", max_speed=0.05)      -> SpaceMouse (not yet connected)
    make_device("keyboard", step=0.002)            -> Keyboard
    make_device("gamepad", backend="evdev")        -> Gamepad
    make_device("leader_arm", port="/dev/ttyACM1") -> LeaderArm

A misspelt name or key fails at once with the nearest valid one suggested.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from teleop.device import TeleopConfigError, TeleopDevice
from teleop.gamepad import Gamepad, GamepadConfig
from teleop.keyboard import Keyboard, KeyboardConfig
from teleop.leader_arm import LeaderArm, LeaderArmConfig
from teleop.spacemouse import SpaceMouse, SpaceMouseConfig

DEVICES: dict[str, tuple[type[TeleopDevice], type]] = {
    "keyboard": (Keyboard, KeyboardConfig),
    "gamepad": (Gamepad, GamepadConfig),
    "spacemouse": (SpaceMouse, SpaceMouseConfig),
    "leader_arm": (LeaderArm, LeaderArmConfig),
}


def _nearest(word: str, choices: list[str]) -> str:
    near = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean '{near[0]}'?" if near else ""


def device_names() -> list[str]:
    return sorted(DEVICES)


def config_class(name: str) -> type:
    """The configuration dataclass of device ``name``."""
    if name not in DEVICES:
        raise TeleopConfigError(
            f"unknown teleop device '{name}' (available: {device_names()})"
            f"{_nearest(name, device_names())}"
        )
    return DEVICES[name][1]


def make_device(name: str, **config: Any) -> TeleopDevice:
    """A new, unconnected device ``name`` configured by ``config`` (its config's fields)."""
    cls_config = config_class(name)
    fields = [f.name for f in dataclasses.fields(cls_config)]
    unknown = [k for k in config if k not in fields]
    if unknown:
        key = unknown[0]
        raise TeleopConfigError(
            f"teleop device '{name}': unknown config key '{key}' (keys: {fields})"
            f"{_nearest(key, fields)}"
        )
    try:
        cfg = cls_config(**config)
    except (TypeError, ValueError) as exc:
        raise TeleopConfigError(f"teleop device '{name}': {exc}") from exc
    return DEVICES[name][0](cfg)
