"""SafetyLimits: whatever comes in, what goes out is finite, within limits, and explained."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robot.safety import SafetyConfigError, SafetyError, SafetyLimits, SafetyResult
from robot.schema import RobotSpec

Fk = Callable[[np.ndarray], np.ndarray]
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = 1e-9


def _safety(spec: RobotSpec, fk: Fk, start: np.ndarray | None = None) -> SafetyLimits:
    safety = SafetyLimits(spec, fk)
    safety.reset(spec.home if start is None else start)
    return safety


def _inside(spec: RobotSpec, fk: Fk, q: np.ndarray) -> bool:
    ee = fk(q)
    return bool(np.all(ee >= spec.workspace_lower) and np.all(ee <= spec.workspace_upper))


def _run(safety: SafetyLimits, targets: list, t0: float = 0.0) -> list[SafetyResult]:
    dt = safety.spec.control_period
    return [safety.filter(target, t0 + k * dt) for k, target in enumerate(targets)]


# --------------------------------------------------------------------------- construction


def test_fk_is_required_and_the_error_names_the_robot(spec: RobotSpec) -> None:
    with pytest.raises(SafetyConfigError, match="test_arm3"):
        SafetyLimits(spec, None)


def test_fk_with_wrong_output_is_refused_at_construction(spec: RobotSpec) -> None:
    with pytest.raises(SafetyConfigError, match=r"test_arm3.*shape"):
        SafetyLimits(spec, lambda q: np.zeros(2))


def test_reset_refuses_a_bad_position(spec: RobotSpec, fk: Fk) -> None:
    safety = SafetyLimits(spec, fk)
    with pytest.raises(SafetyError, match="shape"):
        safety.reset(np.zeros(2))
    with pytest.raises(SafetyError, match="finite"):
        safety.reset(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(SafetyError, match="never reset"):
        _ = safety.last_command


# --------------------------------------------------------------------------- holds


def test_before_reset_it_holds_instead_of_raising(spec: RobotSpec, fk: Fk) -> None:
    result = SafetyLimits(spec, fk).filter(spec.home + 0.01, 0.0)
    assert result.held
    assert result.kinds() == {"not_reset"}
    assert np.all(np.isfinite(result.command))


def test_no_action_holds_at_the_last_command(spec: RobotSpec, fk: Fk) -> None:
    result = _safety(spec, fk).filter(None, 0.0)
    assert result.held and result.kinds() == {"no_action"}
    np.testing.assert_array_equal(result.command, spec.home)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_refuses_the_whole_action_naming_the_joint(
    spec: RobotSpec, fk: Fk, bad: float
) -> None:
    safety = _safety(spec, fk)
    target = spec.home + 0.01
    target[1] = bad
    result = safety.filter(target, 0.0)
    assert result.held
    np.testing.assert_array_equal(result.command, spec.home)
    (event,) = result.reasons
    assert event.kind == "nan" and event.name == "shoulder_lift"
    assert "shoulder_lift" in str(event) and "index 1" in str(event)


@pytest.mark.parametrize(
    "target", [np.zeros(2), np.zeros(4), np.zeros((3, 1)), np.zeros((1, 3)), "abc", [1, [2]]]
)
def test_wrong_shape_holds(spec: RobotSpec, fk: Fk, target: object) -> None:
    result = _safety(spec, fk).filter(target, 0.0)
    assert result.held and result.kinds() == {"shape"}
    np.testing.assert_array_equal(result.command, spec.home)


def test_command_is_read_only(spec: RobotSpec, fk: Fk) -> None:
    result = _safety(spec, fk).filter(spec.home, 0.0)
    with pytest.raises(ValueError):
        result.command[0] = 1.0


# --------------------------------------------------------------------------- clamps


def test_velocity_reason_reads_like_the_log_line(spec: RobotSpec, fk: Fk) -> None:
    result = _safety(spec, fk).filter(spec.home + np.array([0.0, 0.0, 0.31]), 0.0)
    velocity = [e for e in result.reasons if e.kind == "velocity"]
    assert [str(e) for e in velocity] == [
        "velocity: joint 'elbow_flex' step 0.31 rad > 0.03 rad allowed at 50 Hz, clamped"
    ]
    assert velocity[0].requested == pytest.approx(0.31)
    assert velocity[0].allowed == pytest.approx(0.03)


def test_acceleration_limits_the_first_step_from_rest(spec: RobotSpec, fk: Fk) -> None:
    safety = _safety(spec, fk)
    result = safety.filter(spec.home + np.array([0.0, 0.0, 0.02]), 0.0)
    # from rest, one tick may add acceleration * dt of velocity: a step of a * dt**2
    np.testing.assert_allclose(result.command - spec.home, [0.0, 0.0, 8.0 * 0.02**2])
    assert [(e.kind, e.name) for e in result.reasons] == [("acceleration", "elbow_flex")]
    np.testing.assert_allclose(safety.commanded_velocity, [0.0, 0.0, 0.16])


def test_max_step_binds_where_it_is_tighter_than_velocity(make_spec, fk: Fk) -> None:
    spec = make_spec(limits={"acceleration": [1e4, 1e4, 1e4]})  # take acceleration out of play
    result = _safety(spec, fk).filter(spec.home + np.array([0.0, 0.05, 0.0]), 0.0)
    np.testing.assert_allclose(result.command - spec.home, [0.0, 0.01, 0.0])
    assert [(e.kind, e.name) for e in result.reasons] == [
        ("velocity", "shoulder_lift"),
        ("max_step", "shoulder_lift"),
    ]


def test_position_clamp_is_reported_and_reached_without_overshoot(spec: RobotSpec, fk: Fk) -> None:
    safety = _safety(spec, fk)
    target = spec.home + np.array([5.0, 0.0, 0.0])  # pan far beyond its upper limit 2.0
    results = _run(safety, [target] * 400)
    first = results[0].reasons
    assert ("position", "shoulder_pan") in [(e.kind, e.name) for e in first]
    assert "upper limit 2 rad" in str(first[0])
    pans = np.array([r.command[0] for r in results])
    assert np.all(pans <= 2.0)
    assert pans[-1] == pytest.approx(2.0, abs=1e-6)
    # braking before the limit keeps deceleration within the acceleration limit
    velocity = np.diff(np.concatenate([[0.0], pans])) / spec.control_period
    assert np.all(np.abs(np.diff(velocity)) <= 5.0 * spec.control_period + TOL)


def test_hold_stops_and_motion_restarts_from_rest(spec: RobotSpec, fk: Fk) -> None:
    safety = _safety(spec, fk)
    target = spec.home + np.array([1.0, 0.0, 0.0])
    _run(safety, [target] * 20)
    assert safety.commanded_velocity[0] > 0.5
    held = safety.filter(None, 1.0)
    assert held.held
    np.testing.assert_array_equal(safety.commanded_velocity, 0.0)
    moved = safety.filter(target, 1.02)
    assert moved.command[0] - held.command[0] == pytest.approx(5.0 * 0.02**2)


# --------------------------------------------------------------------------- workspace


def test_workspace_floor_holds_at_the_last_command_inside(spec: RobotSpec, fk: Fk) -> None:
    safety = _safety(spec, fk)
    below_floor = np.array([0.0, -0.5, -2.0])
    assert fk(below_floor)[2] < 0.0
    results = _run(safety, [below_floor] * 600)
    assert all(_inside(spec, fk, r.command) for r in results)
    held = [r for r in results if r.held]
    assert held, "the floor was never reached"
    event = held[0].reasons[0]
    assert (event.kind, event.name, event.outcome) == ("workspace", "z", "held")
    assert "z=" in str(event) and "below the workspace lower bound 0 m" in str(event)
    index = results.index(held[0])
    np.testing.assert_array_equal(held[0].command, results[index - 1].command)


def test_started_outside_the_workspace_it_may_only_move_back(spec: RobotSpec, fk: Fk) -> None:
    start = np.array([0.0, -0.5, -0.5])
    deeper_target = np.array([0.0, -0.5, -1.0])
    assert fk(deeper_target)[2] < fk(start)[2] < 0.0
    safety = _safety(spec, fk, start)
    deeper = safety.filter(deeper_target, 0.0)
    assert deeper.held and deeper.kinds() == {"workspace"}
    back = _run(safety, [spec.home] * 200, t0=0.02)
    heights = [fk(r.command)[2] for r in back]
    assert not any(r.held for r in back)
    # while still below the floor, no tick goes further down
    assert all(b >= a - TOL for a, b in itertools.pairwise(heights) if a < 0.0)
    assert heights[-1] > 0.0
    assert any(e.outcome == "allowed" for r in back for e in r.reasons)


def test_failing_fk_holds(spec: RobotSpec, fk: Fk) -> None:
    calls = {"n": 0}

    def flaky_fk(q: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 2:  # construction and reset succeed
            raise RuntimeError("model lost")
        return fk(q)

    safety = _safety(spec, flaky_fk)
    result = safety.filter(spec.home + 0.01, 0.0)
    assert result.held and result.kinds() == {"workspace"}
    assert "model lost" in str(result.reasons[0])


# --------------------------------------------------------------------------- e-stop


def test_estop_latches_and_only_an_operator_clears_it(
    spec: RobotSpec, fk: Fk, caplog: pytest.LogCaptureFixture
) -> None:
    safety = _safety(spec, fk)
    _run(safety, [spec.home + 0.1] * 5)
    before = safety.last_command
    safety.estop("operator pressed the button")
    assert safety.estopped and safety.estop_reason == "operator pressed the button"
    safety.reset(before)  # re-syncing the position does not clear it
    for result in _run(safety, [spec.home + 0.1] * 200, t0=1.0):
        assert result.held and result.kinds() == {"estop"}
        assert "operator pressed the button" in str(result.reasons[0])
        np.testing.assert_array_equal(result.command, before)
    with pytest.raises(SafetyError, match="operator"):
        safety.reset_estop("  ")
    assert safety.estopped
    with caplog.at_level(logging.WARNING, logger="robot.safety"):
        safety.reset_estop("alice")
    assert not safety.estopped and safety.estop_reason is None
    assert "alice" in caplog.text
    assert not safety.filter(spec.home + 0.1, 5.0).held


def test_second_estop_keeps_the_first_reason(spec: RobotSpec, fk: Fk) -> None:
    safety = _safety(spec, fk)
    safety.estop("first")
    safety.estop("second")
    assert safety.estop_reason == "first"


# --------------------------------------------------------------------------- properties

finite_in_range = st.floats(-3.0, 3.0, allow_nan=False)
any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
targets = st.one_of(
    st.none(),
    hnp.arrays(np.float64, 3, elements=finite_in_range),
    hnp.arrays(np.float64, 3, elements=finite_in_range),  # twice: mostly plausible targets
    hnp.arrays(np.float64, 3, elements=any_float),
    hnp.arrays(np.float64, hnp.array_shapes(max_dims=2, max_side=4), elements=finite_in_range),
)


@st.composite
def start_positions(draw: st.DrawFn) -> np.ndarray:
    return np.array(
        [
            draw(st.floats(-2.0, 2.0)),
            draw(st.floats(-0.5, 2.0)),
            draw(st.floats(-2.0, 2.0)),
        ]
    )


@HYPOTHESIS
@given(start=start_positions(), sequence=st.lists(targets, min_size=1, max_size=80))
def test_any_input_yields_a_safe_command(
    spec: RobotSpec, fk: Fk, start: np.ndarray, sequence: list
) -> None:
    if not _inside(spec, fk, start):
        start = spec.home
    safety = _safety(spec, fk, start)
    dt = spec.control_period
    previous, velocity = start.copy(), np.zeros(3)
    for k, target in enumerate(sequence):
        result = safety.filter(target, k * dt)
        cmd = result.command
        assert cmd.shape == (3,) and np.all(np.isfinite(cmd))
        assert np.all(cmd >= spec.position_lower) and np.all(cmd <= spec.position_upper)
        step = cmd - previous
        assert np.all(np.abs(step) <= spec.velocity_limit * dt + TOL)
        assert np.all(np.abs(step) <= spec.max_step + TOL)
        assert _inside(spec, fk, cmd)
        if result.held:
            assert result.reasons
            np.testing.assert_array_equal(cmd, previous)
            velocity = np.zeros(3)
        else:
            new_velocity = step / dt
            assert np.all(np.abs(new_velocity - velocity) <= spec.acceleration_limit * dt + 1e-6)
            # every joint that did not get what it asked for has a reason naming it
            asked = np.asarray(target, dtype=np.float64)
            named = {e.name for e in result.reasons}
            for j in np.flatnonzero(np.abs(cmd - asked) > TOL):
                assert spec.joint_names[j] in named
            velocity = new_velocity
        previous = cmd.copy()


@HYPOTHESIS
@given(sequence=st.lists(st.one_of(targets, st.just("reset")), min_size=1, max_size=60))
def test_estop_stays_latched_through_anything_but_reset_estop(
    spec: RobotSpec, fk: Fk, sequence: list
) -> None:
    safety = _safety(spec, fk)
    safety.estop("test")
    for k, item in enumerate(sequence):
        if isinstance(item, str):
            safety.reset(spec.home)
            continue
        result = safety.filter(item, k * spec.control_period)
        assert result.held and result.kinds() == {"estop"}
        np.testing.assert_array_equal(result.command, spec.home)
    assert safety.estopped
