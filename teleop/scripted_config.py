"""The scripted operator's settings, apart from the operator itself.

Why a module of its own: ``dojo/conf`` registers :class:`ScriptedConfig` as the hydra schema of
``teleop.scripted`` and is imported on every config load; the operator
(:mod:`teleop.scripted`) imports MuJoCo and mink, which a laptop validating a config should not
pay for. Nothing here imports more than the standard library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


class OperatorError(ValueError):
    """The operator cannot run as configured. The message names the offending value."""


@dataclass
class ScriptedConfig:
    """Plain settings (hydra registers this as a structured config).

    ``noise_std``: standard deviation (rad, or the joint's unit) of smooth joint-space noise
    added to the arm targets (an Ornstein-Uhlenbeck process with a 0.3 s time constant).
    ``failure_rate``: probability per episode of a deliberate failure (release early or pick a
    wrong cube; push to the wrong side or stop short). ``seed``: seed of episode 0 when
    :meth:`teleop.scripted.ScriptedOperator.reset` gets none. ``horizon``: steps per chunk.
    ``chunk_dt``: s between chunk steps; 0 means the robot's control period.
    """

    noise_std: float = 0.0
    failure_rate: float = 0.0
    seed: int = 0
    horizon: int = 10
    chunk_dt: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise OperatorError(f"noise_std={self.noise_std} must be >= 0")
        if not 0.0 <= self.failure_rate <= 1.0:
            raise OperatorError(f"failure_rate={self.failure_rate} must be in [0, 1]")
        if self.horizon < 1:
            raise OperatorError(f"horizon={self.horizon} must be >= 1")
        if not (math.isfinite(self.chunk_dt) and self.chunk_dt >= 0):
            raise OperatorError(f"chunk_dt={self.chunk_dt} must be >= 0 (0: control period)")
