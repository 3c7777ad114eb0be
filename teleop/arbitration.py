"""Intervention arbitration rules: when control passes from the policy to the person.

Why here and not in the intervention node: the rules are pure logic on samples (time, joint
positions, distance to the goal, who drove each driver tick), so they are unit-tested without
ROS and reused by anything that plays the person (the ``intervention`` node today). The node
(``dojo/nodes/intervention.py``) only feeds them messages and publishes the decision.

The rules, for a scripted person standing in for a human:

- nothing is judged until a policy or script has driven since the episode began: an arm held
  while the policy loads is not a stall, one held after it went quiet is;
- after ``grace_s`` of driving, take over when the arm moved less than ``stall_rad`` (every
  joint) over ``stall_s`` (a stall), or when the named cube got ``regress_m`` further from its
  goal than it has been (a regression).

A person with a device arbitrates for themselves: the device's engage button is the rule.
"""

from __future__ import annotations

import numpy as np

from robot.schema import ControlSource


def bin_distance(target: str, objects) -> float | None:
    """How far (m, in the table plane) the ``target`` cube is from the bin: the task's distance
    to goal that :meth:`StallMonitor.update` watches for regress; None without both objects."""
    cube, bin_ = objects.get(target), objects.get("bin")
    if cube is None or bin_ is None:
        return None
    return float(np.linalg.norm(cube.position[:2] - bin_.position[:2]))


class StallMonitor:
    """Decides when the scripted person takes over: a stalled arm or a regressing task.

    Pure logic on (time, joint positions, distance-to-goal) samples and the control source of
    each driver tick, so it is unit-testable. Nothing is judged until a policy or script has
    driven since the last :meth:`reset` (the grace period starts then): an arm held while the
    policy loads is not a stall, but one held after the policy went quiet is.
    """

    def __init__(self, stall_s: float, stall_rad: float, regress_m: float, grace_s: float) -> None:
        self.stall_s, self.stall_rad = stall_s, stall_rad
        self.regress_m, self.grace_s = regress_m, grace_s
        self.reset(0.0)

    def reset(self, t0: float) -> None:
        self._t0 = t0
        self._driven = False
        self._history: list[tuple[float, np.ndarray]] = []
        self._best = np.inf

    def source(self, t: float, source: ControlSource) -> None:
        """Who drove the driver's tick at ``t``."""
        if not self._driven and source in (ControlSource.POLICY, ControlSource.SCRIPT):
            self._driven, self._t0 = True, t

    def update(self, t: float, q: np.ndarray, goal_distance: float | None) -> str | None:
        """The reason to take over now, or None."""
        if not self._driven:
            return None
        self._history.append((t, np.asarray(q, dtype=np.float64)))
        while self._history and self._history[0][0] < t - self.stall_s:
            self._history.pop(0)
        if goal_distance is not None:
            self._best = min(self._best, goal_distance)
        if t - self._t0 < self.grace_s:
            return None
        window = np.array([h[1] for h in self._history])
        spanned = self._history[-1][0] - self._history[0][0] >= self.stall_s * 0.9
        if spanned and np.ptp(window, axis=0).max() < self.stall_rad:
            return f"stall: arm moved < {self.stall_rad} rad in {self.stall_s} s"
        if goal_distance is not None and goal_distance - self._best > self.regress_m:
            return f"regress: {goal_distance - self._best:.3f} m further from the goal than before"
        return None
