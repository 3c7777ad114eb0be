"""ChunkExecutor: timing, blending, human takeover, holds and refusals, in simulated time."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot.executor import ChunkExecutor, ExecutorConfig, ExecutorOutput, committed_prefix
from robot.schema import ActionChunk, ControlSource, RobotSpec

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex")
DT = 0.02


def chunk(
    stamp: float,
    times: list[float] | np.ndarray,
    values: list[float] | np.ndarray | None = None,
    *,
    joints: tuple[str, ...] = JOINTS,
    source: ControlSource = ControlSource.POLICY,
) -> ActionChunk:
    """A chunk whose step ``i`` sets every joint to ``values[i]`` (default: its due time)."""
    times = np.asarray(times, dtype=np.float64)
    values = stamp + times if values is None else np.asarray(values, dtype=np.float64)
    positions = np.repeat(values[:, None], len(joints), axis=1)
    return ActionChunk(stamp, joints, positions, times, source=source)


def constant(stamp: float, value: float, duration: float, first: float = 0.0) -> ActionChunk:
    times = np.arange(first, duration + 1e-9, DT)
    return chunk(stamp, times, np.full(len(times), value))


def executor(spec: RobotSpec, **config: object) -> ChunkExecutor:
    return ChunkExecutor(spec, ExecutorConfig(**config))


def act(ex: ChunkExecutor, now: float) -> ExecutorOutput:
    """One tick with a fresh observation."""
    ex.observe(now)
    return ex.next_action(now)


def value(out: ExecutorOutput) -> float:
    assert out.target is not None, f"held: {out.reason}"
    assert np.ptp(out.target) == 0.0
    return float(out.target[0])


# --------------------------------------------------------------------------- config


def test_unknown_blend_names_the_key_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"blend='ensemble'.*latest.*temporal_ensemble.*rtc"):
        ExecutorConfig(blend="ensemble")
    with pytest.raises(ValueError, match="did you mean 'rtc'"):
        ExecutorConfig(blend="rct")


@pytest.mark.parametrize("key", ["watchdog", "max_obs_age", "max_chunk_age", "max_horizon"])
def test_non_positive_durations_are_refused_by_name(key: str) -> None:
    with pytest.raises(ValueError, match=f"ExecutorConfig.{key}"):
        ExecutorConfig(**{key: 0.0})
    with pytest.raises(ValueError, match=f"ExecutorConfig.{key}"):
        ExecutorConfig(**{key: math.nan})


def test_a_config_mutated_after_construction_is_checked_again(spec: RobotSpec) -> None:
    config = ExecutorConfig()
    config.blend = "newest"
    with pytest.raises(ValueError, match="blend"):
        ChunkExecutor(spec, config)


# --------------------------------------------------------------------------- timing


def test_past_steps_are_dropped_and_never_replayed(spec: RobotSpec) -> None:
    ex = executor(spec)
    c = chunk(1.0, [0.0, 0.02, 0.04, 0.06, 0.08], [10.0, 11.0, 12.0, 13.0, 14.0])
    sub = ex.submit(c, now=1.05)
    assert sub.accepted and sub.dropped_steps == 3
    assert "3" in sub.reason
    seen = [value(act(ex, t)) for t in (1.05, 1.06, 1.07, 1.08)]
    assert seen == [13.0, 13.0, pytest.approx(13.5), 14.0]  # before the first kept step: its value
    out = act(ex, 1.09)
    assert out.target is None and out.source is ControlSource.HOLD
    assert "exhausted" in out.reason


def test_linear_interpolation_between_steps_is_exact(spec: RobotSpec) -> None:
    ex = executor(spec)
    a, b = np.array([0.1, -0.2, 0.3]), np.array([0.5, 0.2, -0.1])
    ex.submit(ActionChunk(0.0, JOINTS, np.stack([a, b]), [0.1, 0.2]), now=0.0)
    for t in (0.1, 0.125, 0.15, 0.2):
        out = act(ex, t)
        np.testing.assert_allclose(out.target, a + (t - 0.1) / 0.1 * (b - a), rtol=0, atol=1e-12)
        assert out.source is ControlSource.POLICY


def test_columns_are_mapped_by_joint_name(spec: RobotSpec) -> None:
    ex = executor(spec)
    reordered = ("elbow_flex", "shoulder_pan", "shoulder_lift")
    ex.submit(ActionChunk(0.0, reordered, [[3.0, 1.0, 2.0]], [0.0]), now=0.0)
    np.testing.assert_array_equal(act(ex, 0.0).target, [1.0, 2.0, 3.0])


def test_scripted_chunks_are_reported_as_script(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.submit(chunk(0.0, [0.0, 0.1], source=ControlSource.SCRIPT), now=0.0)
    assert act(ex, 0.05).source is ControlSource.SCRIPT


# --------------------------------------------------------------------------- blending


def test_latest_replaces_the_queue_from_the_new_chunks_first_step(spec: RobotSpec) -> None:
    ex = executor(spec, blend="latest", watchdog=5.0)
    ex.submit(constant(0.0, 0.0, 2.0), now=0.0)
    assert value(act(ex, 0.5)) == 0.0
    # arrives at 0.5; first step due at 0.6
    assert ex.submit(constant(0.5, 1.0, 1.0, first=0.1), now=0.5).accepted
    assert value(act(ex, 0.55)) == 0.0  # old steps before 0.6 still run
    assert value(act(ex, 0.59)) == pytest.approx(0.5)  # old step at 0.58 -> new step at 0.60
    assert value(act(ex, 0.6)) == 1.0
    assert value(act(ex, 1.2)) == 1.0
    assert ex.remaining_horizon(1.2) == pytest.approx(0.3)  # the old chunk's tail is gone


def test_temporal_ensemble_matches_act_weighting(spec: RobotSpec) -> None:
    m = 0.5
    ex = executor(spec, blend="temporal_ensemble", ensemble_decay=m, watchdog=5.0)
    ex.submit(constant(0.00, 0.0, 1.0), now=0.00)
    ex.submit(constant(0.02, 1.0, 1.0), now=0.02)
    ex.submit(constant(0.04, 2.0, 1.0), now=0.04)
    # ACT: weights exp(-m * i), i = 0 for the oldest chunk
    w = np.exp(-m * np.arange(3))
    expected = (w @ np.array([0.0, 1.0, 2.0])) / w.sum()
    assert value(act(ex, 0.5)) == pytest.approx(expected, abs=1e-12)
    # after the oldest chunk ends (t > 1.0) only the other two count, re-ranked from 0
    w2 = np.exp(-m * np.arange(2))
    assert value(act(ex, 1.01)) == pytest.approx((w2 @ [1.0, 2.0]) / w2.sum(), abs=1e-12)


def test_temporal_ensemble_interpolates_each_chunk_before_averaging(spec: RobotSpec) -> None:
    ex = executor(spec, blend="temporal_ensemble", ensemble_decay=0.01)
    ex.submit(chunk(0.0, [0.0, 0.1, 0.2]), now=0.0)  # value = due time: a ramp
    ex.submit(chunk(0.05, [0.0, 0.1, 0.2]), now=0.05)
    assert value(act(ex, 0.12)) == pytest.approx(0.12, abs=1e-12)


def test_rtc_keeps_the_committed_prefix_then_crossfades(spec: RobotSpec) -> None:
    ex = executor(spec, blend="rtc", rtc_prefix=0.1, rtc_blend=0.2, watchdog=5.0)
    ex.submit(constant(0.0, 0.0, 2.0), now=0.0)
    committed = ex.committed_actions(0.5, 0.1)
    assert committed.shape == (6, 3) and np.all(committed == 0.0)
    ex.submit(constant(0.5, 1.0, 1.5), now=0.5)
    expected = {0.5: 0.0, 0.58: 0.0, 0.6: 0.0, 0.65: 0.25, 0.7: 0.5, 0.75: 0.75, 0.8: 1.0, 1.2: 1.0}
    for t, v in expected.items():
        assert value(act(ex, t)) == pytest.approx(v, abs=1e-12), t
    assert ex.remaining_horizon(1.2) == pytest.approx(0.8)


def test_rtc_chunk_arriving_with_nothing_running_takes_over_at_once(spec: RobotSpec) -> None:
    ex = executor(spec, blend="rtc")
    ex.submit(constant(0.0, 3.0, 0.2), now=0.0)
    assert value(act(ex, 0.02)) == 3.0


def test_committed_actions_are_what_gets_executed(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.submit(chunk(0.0, np.arange(0.0, 0.5, 0.1)), now=0.0)  # ramp 0 .. 0.4
    planned = ex.committed_actions(0.1, 0.2)
    executed = np.stack([act(ex, 0.1 + k * DT).target for k in range(len(planned))])
    assert planned.shape == (11, 3)
    np.testing.assert_allclose(planned, executed, atol=1e-12)
    # it stops where the plan ends
    assert len(ex.committed_actions(0.35, 1.0)) == 3  # 0.35, 0.37, 0.39


def test_the_plan_is_what_gets_executed_stamped_with_the_newest_chunk(spec: RobotSpec) -> None:
    ex = executor(spec, blend="rtc", rtc_prefix=0.1, rtc_blend=0.2, watchdog=5.0)
    assert ex.plan(0.0) is None  # nothing queued
    ex.submit(chunk(0.0, np.arange(0.1, 1.01, 0.1)), now=0.0)  # ramp: value = due time
    ex.submit(constant(0.4, 2.0, 1.0, first=0.1), now=0.42)
    plan = ex.plan(0.42)
    assert plan.stamp == 0.4 and plan.joint_names == spec.joint_names
    np.testing.assert_allclose(plan.due[[0, -1]], [0.42, 1.4], atol=1e-9)
    executed = np.stack([act(ex, t).target for t in plan.due])
    np.testing.assert_allclose(plan.positions, executed, atol=1e-12)
    ex.set_intervention(True, now=0.5)
    assert ex.plan(0.5) is None


def test_committed_prefix_samples_the_plan_at_the_next_chunk_steps(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.submit(chunk(0.0, np.arange(0.1, 1.01, 0.1)), now=0.0)  # value = due time
    plan = ex.plan(0.3)
    # k = ceil((latency 0.12 + rtc_prefix 0.1) / 0.1) = 3 steps after the stamp 0.34
    prefix = committed_prefix(plan, 0.34, 0.1, 0.22)
    np.testing.assert_allclose(prefix[:, 0], [0.44, 0.54, 0.64], atol=1e-9)
    assert prefix.shape == (3, 3)
    assert committed_prefix(plan, 0.84, 0.1, 0.3).shape == (1, 3)  # the plan ends at 1.0
    assert committed_prefix(plan, 0.1, 0.1, 0.3) is None  # the plan starts after t=0.2
    assert committed_prefix(plan, 0.34, 0.1, 0.0) is None
    assert committed_prefix(None, 0.34, 0.1, 0.3) is None


def test_chunk_buffers_are_bounded(spec: RobotSpec) -> None:
    ex = executor(spec, blend="temporal_ensemble", max_horizon=1.0)
    assert ex.max_chunks == math.ceil((1.0 + 0.05) * 50) + 1
    for k in range(3 * ex.max_chunks):
        assert ex.submit(constant(0.0, float(k), 1.0), now=0.0).accepted
    assert len(ex._policy) == ex.max_chunks


# --------------------------------------------------------------------------- human over policy


def test_takeover_is_effective_on_the_next_tick_and_flushes_policy(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.submit(constant(0.0, 0.0, 2.0), now=0.0)
    assert act(ex, 0.50).source is ControlSource.POLICY
    ex.submit_teleop(chunk(0.50, [0.0], [7.0]), now=0.505)
    ex.set_intervention(True, now=0.51)
    out = act(ex, 0.52)
    assert out.source is ControlSource.HUMAN and value(out) == 7.0
    assert ex.remaining_horizon(0.52) == 0.0
    assert len(ex.committed_actions(0.52, 0.5)) == 0


def test_teleop_arriving_after_the_flag_takes_effect_on_the_next_tick(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.submit(constant(0.0, 0.0, 2.0), now=0.0)
    ex.set_intervention(True, now=0.5)
    waiting = act(ex, 0.5)
    assert waiting.target is None and "no human command" in waiting.reason
    ex.submit_teleop(chunk(0.505, [0.0], [7.0]), now=0.51)
    assert value(act(ex, 0.52)) == 7.0


def test_no_policy_step_runs_during_or_after_an_intervention(spec: RobotSpec) -> None:
    ex = executor(spec, watchdog=10.0)  # so that only the flush can stop the old chunk
    ex.submit(constant(0.0, 0.0, 3.0), now=0.0)
    ex.submit_teleop(chunk(0.5, [0.0], [7.0]), now=0.5)
    ex.set_intervention(True, now=0.5)
    refused = ex.submit(constant(0.6, 0.0, 1.0), now=0.6)
    assert not refused.accepted and "intervention active" in refused.reason
    for k in range(10):
        t = 0.52 + k * DT
        ex.submit_teleop(chunk(t, [0.0], [7.0]), now=t)
        assert act(ex, t).source is ControlSource.HUMAN
    ex.set_intervention(False, now=0.8)
    for k in range(50):  # the old policy chunk ran until 3.0; none of it comes back
        out = act(ex, 0.8 + k * DT)
        assert out.target is None and out.source is ControlSource.HOLD


def test_policy_resumes_only_with_chunks_stamped_after_release(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.set_intervention(True, now=1.0)
    ex.set_intervention(False, now=2.0)
    stale = ex.submit(constant(1.99, 0.0, 1.0), now=2.01)
    assert not stale.accepted and "before the intervention was released" in stale.reason
    assert ex.submit(constant(2.0, 5.0, 1.0), now=2.01).accepted
    out = act(ex, 2.02)
    assert out.source is ControlSource.POLICY and value(out) == 5.0


def test_repeated_release_does_not_move_the_release_time(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.set_intervention(True, now=1.0)
    ex.set_intervention(False, now=2.0)
    ex.set_intervention(False, now=3.0)  # the flag is re-published
    assert ex.submit(constant(2.5, 5.0, 1.0), now=3.0).accepted


def test_human_steps_are_dropped_on_release(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.set_intervention(True, now=0.0)
    ex.submit_teleop(chunk(0.0, [0.0, 1.0], [1.0, 2.0]), now=0.0)
    assert act(ex, 0.1).source is ControlSource.HUMAN
    ex.set_intervention(False, now=0.2)
    ex.set_intervention(True, now=0.3)
    assert act(ex, 0.3).target is None  # the earlier human plan did not survive the release


def test_a_teleop_set_point_stands_until_the_watchdog(spec: RobotSpec) -> None:
    ex = executor(spec, watchdog=0.5)
    ex.set_intervention(True, now=0.0)
    sub = ex.submit_teleop(chunk(0.0, [0.0], [4.0]), now=0.01)  # its one step is already past
    assert sub.accepted and sub.dropped_steps == 0
    assert value(act(ex, 0.3)) == 4.0
    assert value(act(ex, 0.51)) == 4.0
    out = act(ex, 0.52)
    assert out.target is None and "watchdog" in out.reason


def test_policy_chunks_cannot_claim_to_be_human(spec: RobotSpec) -> None:
    ex = executor(spec)
    sub = ex.submit(chunk(0.0, [0.0], source=ControlSource.HUMAN), now=0.0)
    assert not sub.accepted and "submit_teleop" in sub.reason


# --------------------------------------------------------------------------- holds


def test_hold_without_or_with_a_stale_observation(spec: RobotSpec) -> None:
    ex = executor(spec, max_obs_age=0.2)
    ex.submit(constant(0.0, 1.0, 2.0), now=0.0)
    first = ex.next_action(0.0)
    assert first.target is None and "no observation" in first.reason
    ex.observe(0.0)
    assert value(ex.next_action(0.2)) == 1.0
    stale = ex.next_action(0.21)
    assert stale.target is None and stale.source is ControlSource.HOLD
    assert "stale" in stale.reason
    ex.observe(0.1)
    ex.observe(0.05)  # arriving out of order, an older stamp does not count
    assert value(ex.next_action(0.28)) == 1.0


def test_a_silent_policy_runs_its_chunk_out_then_holds_within_one_period(spec: RobotSpec) -> None:
    ex = executor(spec, watchdog=0.5)
    ex.submit(constant(0.0, 1.0, 2.0), now=0.0)
    # silent for longer than the watchdog: the chunk's steps are still due, so they still run
    assert value(act(ex, 1.9)) == 1.0
    assert value(act(ex, 2.0)) == 1.0
    out = act(ex, 2.0 + spec.control_period)
    assert out.target is None and "exhausted" in out.reason
    ex.submit(constant(2.1, 2.0, 1.0), now=2.1)
    assert value(act(ex, 2.12)) == 2.0


def test_hold_when_the_chunk_is_exhausted_no_extrapolation(spec: RobotSpec) -> None:
    ex = executor(spec)
    ex.submit(chunk(0.0, [0.0, 0.1]), now=0.0)  # a ramp that would continue past 0.1
    assert value(act(ex, 0.1)) == pytest.approx(0.1)
    out = act(ex, 0.11)
    assert out.target is None and "exhausted" in out.reason
    assert ex.remaining_horizon(0.11) == 0.0


def test_nothing_queued_holds(spec: RobotSpec) -> None:
    out = act(executor(spec), 0.0)
    assert out.target is None and out.source is ControlSource.HOLD and out.reason


# --------------------------------------------------------------------------- refusals


def _nan_chunk() -> ActionChunk:
    positions = np.zeros((3, 3))
    positions[1, 2] = np.nan
    return ActionChunk(0.0, JOINTS, positions, [0.0, 0.1, 0.2])


@pytest.mark.parametrize(
    ("submission", "now", "message"),
    [
        (_nan_chunk(), 0.0, r"nan.*'elbow_flex'.*step 1"),
        (
            ActionChunk(0.0, (*JOINTS, "wrist_roll"), np.zeros((1, 4)), [0.0]),
            0.0,
            r"unknown joints: \['wrist_roll'\]",
        ),
        (
            ActionChunk(0.0, JOINTS[:2], np.zeros((1, 2)), [0.0]),
            0.0,
            r"missing joints: \['elbow_flex'\]",
        ),
        (
            ActionChunk(
                0.0, ("shoulder_pan", "shoulder_pan", "elbow_flex"), np.zeros((1, 3)), [0.0]
            ),
            0.0,
            "duplicate joints",
        ),
        (chunk(1.0, [0.0, 0.1]), 0.9, r"future stamp.*0\.100 s ahead.*max_chunk_future"),
        (chunk(0.0, [0.0, 2.0]), 1.5, r"too old.*1\.500 s ago.*max_chunk_age"),
        (chunk(0.0, [0.0, 0.1]), 0.2, r"stale: all 2 steps are past due"),
        (chunk(0.0, [0.0, 5.0]), 0.0, r"too long.*max_horizon"),
    ],
)
def test_refusals_say_why(
    spec: RobotSpec, submission: ActionChunk, now: float, message: str
) -> None:
    ex = executor(spec)
    result = ex.submit(submission, now=now)
    assert not result.accepted
    assert result.reason and result.dropped_steps == 0
    assert re.search(message, result.reason), result.reason
    assert act(ex, now).target is None  # nothing was queued


def test_refused_teleop_chunk_says_why(spec: RobotSpec) -> None:
    ex = executor(spec)
    result = ex.submit_teleop(_nan_chunk(), now=0.0)
    assert not result.accepted and "elbow_flex" in result.reason


# --------------------------------------------------------------------------- horizon


def test_remaining_horizon(spec: RobotSpec) -> None:
    ex = executor(spec)
    assert ex.remaining_horizon(0.0) == 0.0
    ex.submit(chunk(0.0, np.arange(0.0, 1.0 + 1e-9, 0.1)), now=0.0)
    assert ex.remaining_horizon(0.3) == pytest.approx(0.7)
    assert ex.remaining_horizon(1.5) == 0.0
    ens = executor(spec, blend="temporal_ensemble")
    ens.submit(constant(0.0, 0.0, 1.0), now=0.0)
    ens.submit(constant(0.0, 0.0, 0.5), now=0.0)
    assert ens.remaining_horizon(0.2) == pytest.approx(0.8)


# --------------------------------------------------------------------------- property

submissions = st.lists(
    st.tuples(
        st.floats(0.0, 0.3),  # latency: arrival - stamp
        st.floats(-0.1, 0.2),  # first step's time from stamp
        st.integers(1, 12),  # steps
        st.floats(0.01, 0.1),  # step spacing
        st.integers(0, 15),  # control ticks until the next submission
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blend=st.sampled_from(["latest", "temporal_ensemble", "rtc"]), plan=submissions)
def test_a_stale_action_is_never_replayed(spec: RobotSpec, blend: str, plan: list) -> None:
    """Every chunk encodes the same ramp f(t) = t, so a target below ``now`` is a replay."""
    ex = executor(spec, blend=blend)
    now = 1.0
    for latency, first, steps, spacing, ticks in plan:
        stamp = now - latency
        times = first + spacing * np.arange(steps)
        ex.submit(chunk(stamp, times), now=now)
        for _ in range(ticks + 1):
            out = act(ex, now)
            if out.target is not None:
                assert np.all(out.target >= now - 1e-9), (out.target, now)
                assert out.source is ControlSource.POLICY
            now += DT
