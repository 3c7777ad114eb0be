"""The arm's moves between calibration views, as a schedule of joint targets.

One rule for every rig: a straight joint-space path on a cosine time law, slow enough for
``speed`` of the velocity and acceleration limits, so the safety layer never has to clamp it.
A rig in process sends it tick by tick (``calibration.twin_rig``); a rig over the graph sends
it as action chunks stamped on ROS time (``dojo.ros.calibration_rig``).
"""

from __future__ import annotations

import math

import numpy as np

from robot.schema import RobotSpec


def glide(start: np.ndarray, goal: np.ndarray, spec: RobotSpec, speed: float) -> np.ndarray:
    """``(n, D)`` targets, one per control period, from ``start`` (excluded) to ``goal``
    (the last row): cosine law over ``T``, peak speed ``pi A / 2T``, peak acceleration
    ``pi^2 A / 2T^2``, both within ``speed`` of the limits."""
    start = np.asarray(start, dtype=np.float64)
    goal = np.asarray(goal, dtype=np.float64)
    span = np.abs(goal - start)
    vmax = speed * np.asarray(spec.velocity_limit, dtype=np.float64)
    amax = speed * np.asarray(spec.acceleration_limit, dtype=np.float64)
    duration = float(
        max(np.max(np.pi * span / (2 * vmax)), np.max(np.pi * np.sqrt(span / (2 * amax))))
    )
    n = max(1, math.ceil(duration / spec.control_period))
    s = 0.5 - 0.5 * np.cos(np.pi * np.arange(1, n + 1) / n)
    return start + s[:, None] * (goal - start)
