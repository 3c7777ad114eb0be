"""ControlLoop with a fake arm: what reaches the arm when things go wrong."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from robot.arm_interface import ArmError
from robot.control import ControlLoop, TickResult
from robot.executor import ChunkExecutor, ExecutorConfig, ExecutorOutput
from robot.safety import SafetyLimits
from robot.schema import ActionChunk, ControlSource, RobotSpec

DT = 0.02


@pytest.fixture
def loop(spec: RobotSpec, fk: Callable, fake_arm) -> ControlLoop:
    control = ControlLoop(fake_arm, SafetyLimits(spec, fk), ChunkExecutor(spec, ExecutorConfig()))
    control.start()
    return control


def tick(loop: ControlLoop, now: float) -> TickResult:
    loop.arm.t = now  # the fake arm stamps its state with the tick time
    return loop.tick(now)


def ramp(spec: RobotSpec, stamp: float, duration: float, rate: float = 0.5) -> ActionChunk:
    """Move shoulder_pan at ``rate`` rad/s from home, one step per control period."""
    times = np.arange(0.0, duration + 1e-9, DT)
    positions = np.repeat(spec.home[None, :], len(times), axis=0)
    positions[:, 0] += rate * (stamp + times)
    return ActionChunk(stamp, spec.joint_names, positions, times)


def test_start_reads_the_arm_and_holds_where_it_is(loop: ControlLoop, spec: RobotSpec) -> None:
    result = tick(loop, 0.0)
    assert result.held and result.source is ControlSource.HOLD
    np.testing.assert_array_equal(loop.arm.sent[-1], spec.home)
    np.testing.assert_array_equal(result.command, loop.arm.sent[-1])


def test_the_recorded_command_is_what_the_driver_reports_it_sent(loop: ControlLoop, spec) -> None:
    loop.executor.submit(ramp(spec, 0.0, 1.0), now=0.0)
    loop.arm.device_clamp = lambda q: np.round(q, 3)
    for k in range(10):
        result = tick(loop, k * DT)
        assert result.source is ControlSource.POLICY
        np.testing.assert_array_equal(result.command, loop.arm.sent[-1])
        np.testing.assert_array_equal(result.command, np.round(result.command, 3))


def test_a_nan_chunk_holds_the_arm(loop: ControlLoop, spec: RobotSpec) -> None:
    positions = np.repeat(spec.home[None, :], 3, axis=0)
    positions[1, 1] = np.nan
    sub = loop.executor.submit(ActionChunk(0.0, spec.joint_names, positions, [0.0, 0.1, 0.2]), 0.0)
    assert not sub.accepted and "shoulder_lift" in sub.reason
    for k in range(10):
        result = tick(loop, k * DT)
        assert result.held and result.source is ControlSource.HOLD
        np.testing.assert_array_equal(loop.arm.sent[-1], spec.home)


def test_a_nan_target_that_slips_past_the_executor_is_held_by_safety(
    loop: ControlLoop, spec: RobotSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = spec.home.copy()
    bad[2] = np.nan
    monkeypatch.setattr(
        loop.executor, "next_action", lambda now: ExecutorOutput(bad, ControlSource.POLICY)
    )
    result = tick(loop, 0.0)
    assert result.held and result.source is ControlSource.HOLD
    assert any("elbow_flex" in r for r in result.reasons)
    np.testing.assert_array_equal(loop.arm.sent[-1], spec.home)


def test_estop_holds_until_an_operator_resets_it(loop: ControlLoop, spec: RobotSpec) -> None:
    loop.executor.submit(ramp(spec, 0.0, 3.0), now=0.0)
    for k in range(10):
        tick(loop, k * DT)
    moving_at = loop.arm.position.copy()
    sends = len(loop.arm.sent)
    loop.estop("light curtain")
    assert loop.arm.holds == 1  # held at once, not at the next tick
    for k in range(10, 60):
        loop.executor.submit(ramp(spec, k * DT, 1.0), now=k * DT)  # the policy keeps talking
        result = tick(loop, k * DT)
        assert result.held and result.source is ControlSource.HOLD
        assert any("light curtain" in r for r in result.reasons)
        np.testing.assert_array_equal(result.command, moving_at)
    assert len(loop.arm.sent) == sends  # nothing was sent while e-stopped
    assert loop.arm.holds == 51
    loop.reset_estop("bob")
    assert not loop.safety.estopped
    after = tick(loop, 60 * DT)
    assert after.held  # the queue was cleared: it needs a fresh chunk
    loop.executor.submit(ramp(spec, 61 * DT, 1.0), now=61 * DT)
    assert not tick(loop, 61 * DT).held


def test_the_policy_going_silent_holds_within_one_period(loop: ControlLoop, spec) -> None:
    loop.executor.submit(ramp(spec, 0.0, 0.3), now=0.0)  # last step due at 0.30
    results = [tick(loop, k * DT) for k in range(30)]  # up to 0.58
    ends = 0.3
    moving = [r for r in results if r.stamp <= ends + 1e-9]
    after = [r for r in results if r.stamp > ends + 1e-9]
    assert all(r.source is ControlSource.POLICY for r in moving)
    first_hold = after[0]
    assert first_hold.stamp - ends <= spec.control_period + 1e-9
    for r in after:
        assert r.held and r.source is ControlSource.HOLD
        np.testing.assert_array_equal(r.command, moving[-1].command)


def test_arm_failure_holds_and_names_the_arm(loop: ControlLoop, spec: RobotSpec) -> None:
    loop.executor.submit(ramp(spec, 0.0, 1.0), now=0.0)
    tick(loop, 0.0)
    loop.arm.fail_on.add("send")
    holds = loop.arm.holds
    with pytest.raises(ArmError, match=r"FakeArm\(test_arm3\).*send.*injected"):
        tick(loop, DT)
    assert loop.arm.holds == holds + 1


def test_a_failing_read_also_holds(loop: ControlLoop) -> None:
    loop.arm.fail_on.add("read")
    with pytest.raises(ArmError, match="read"):
        tick(loop, 0.0)
    assert loop.arm.holds == 1


def test_garbage_from_the_driver_is_an_arm_error(loop: ControlLoop) -> None:
    loop.arm.device_clamp = lambda q: np.full_like(q, np.nan)
    with pytest.raises(ArmError, match="send"):
        tick(loop, 0.0)


def test_before_start_and_after_stop_the_arm_is_held(spec, fk, make_arm) -> None:
    arm = make_arm(spec)
    control = ControlLoop(arm, SafetyLimits(spec, fk), ChunkExecutor(spec, ExecutorConfig()))
    result = control.tick(0.0)
    assert result.held and arm.holds == 1 and not arm.sent
    control.start()
    control.tick(0.02)
    assert len(arm.sent) == 1
    control.stop()
    control.tick(0.04)
    assert arm.holds == 3 and len(arm.sent) == 1


def test_mismatched_joints_are_refused(spec, fk, make_spec, make_arm) -> None:
    other = make_spec(joint_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="disagree"):
        ControlLoop(make_arm(other), SafetyLimits(spec, fk), ChunkExecutor(spec, ExecutorConfig()))
