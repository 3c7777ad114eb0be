"""The MuJoCo twin: scenes, tasks with ground-truth success, the simulated arm, sim clocks.

Modules: ``scene`` (MjSpec composition, names), ``tasks`` (language goals, resets, success),
``twin`` (:class:`~robot.sim.twin.Twin` and its :class:`~robot.sim.twin.SimArm`), ``clock``
(real-time pacing or lockstep), ``meshes`` (decimated render meshes, cached by content).

Rendering without a screen: MuJoCo picks its GL backend from ``MUJOCO_GL`` when ``mujoco`` is
first imported. When nothing chose one and there is no display, this package selects EGL (the
Makefile does the same), so importing the twin on a headless machine renders instead of failing
in GLFW. Set ``MUJOCO_GL=osmesa`` to force pure software rendering.

The heavy names are imported lazily (``from robot.sim import Twin`` works, ``import robot.sim``
stays cheap).
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

if "mujoco" not in sys.modules and "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
    os.environ["MUJOCO_GL"] = "egl"
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

_EXPORTS = {
    "Twin": "robot.sim.twin",
    "TwinConfig": "robot.sim.twin",
    "SimArm": "robot.sim.twin",
    "TwinError": "robot.sim.twin",
    "TaskConfig": "robot.sim.tasks",
    "Goal": "robot.sim.tasks",
    "EpisodeSetup": "robot.sim.tasks",
    "make_task": "robot.sim.tasks",
    "parse_instruction": "robot.sim.tasks",
    "Scene": "robot.sim.scene",
    "build_scene": "robot.sim.scene",
    "ClockMode": "robot.sim.clock",
    "RealTimePacer": "robot.sim.clock",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'robot.sim' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
