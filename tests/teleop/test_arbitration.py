"""When the scripted person takes over: a stalled or regressing policy, never an arm that no
policy has driven yet."""

from __future__ import annotations

import numpy as np

from robot.schema import ControlSource
from teleop.arbitration import StallMonitor

STILL = np.zeros(6)


def monitor() -> StallMonitor:
    return StallMonitor(stall_s=1.0, stall_rad=0.01, regress_m=0.05, grace_s=1.0)


def run(m: StallMonitor, t0: float, t1: float, source: ControlSource, q=lambda t: STILL):
    """Feed 50 Hz ticks; the first reason given, with its time, or None."""
    for t in np.arange(t0, t1, 0.02):
        m.source(t, source)
        reason = m.update(t, q(t), None)
        if reason is not None:
            return t, reason
    return None


def test_a_held_arm_before_any_policy_drove_is_not_a_stall():
    m = monitor()
    assert run(m, 0.0, 10.0, ControlSource.HOLD) is None


def test_a_still_policy_is_taken_over_after_grace_and_window():
    m = monitor()
    assert run(m, 0.0, 3.0, ControlSource.HOLD) is None
    t, reason = run(m, 3.0, 10.0, ControlSource.POLICY)
    assert reason.startswith("stall") and 4.0 <= t < 4.2  # grace from the policy's first tick


def test_a_policy_that_went_quiet_is_taken_over():
    m = monitor()
    assert run(m, 0.0, 0.5, ControlSource.POLICY, q=lambda t: np.full(6, t)) is None
    t, reason = run(m, 0.5, 5.0, ControlSource.HOLD)
    assert reason.startswith("stall") and t < 2.2


def test_a_moving_policy_is_left_alone_and_a_regress_is_caught():
    m = monitor()
    assert run(m, 0.0, 5.0, ControlSource.POLICY, q=lambda t: np.full(6, 0.1 * t)) is None
    m.reset(5.0)
    m.source(5.0, ControlSource.SCRIPT)
    for t, d in ((5.0, 0.30), (6.5, 0.10), (6.6, 0.12)):
        assert m.update(t, np.full(6, t), d) is None
    assert m.update(6.7, np.full(6, 6.7), 0.20).startswith("regress")


def test_reset_starts_a_new_episode_unjudged():
    m = monitor()
    assert run(m, 0.0, 5.0, ControlSource.POLICY) is not None
    m.reset(5.0)
    assert run(m, 5.0, 10.0, ControlSource.HOLD) is None
