"""The scripted operator solves the twin's tasks from the instruction alone, within limits,
and fails when told to."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import numpy as np
import pytest

from robot.mjcf import ForwardKinematics
from robot.schema import ControlSource
from robot.sim.config import TaskConfig, TaskError, TwinConfig
from robot.sim.tasks import make_task
from robot.sim.twin import Twin
from teleop.scripted import PICK_FAILURES, PUSH_FAILURES, OperatorPhase, ScriptedOperator
from teleop.scripted_config import OperatorError, ScriptedConfig
from teleop.scripted_rollout import chunk_target, rollout
from tests.sim_helpers import robot_spec, seeds_by_goal

ROBOTS = ("so101", "panda")
_twins: dict[tuple[str, str], Twin] = {}


@pytest.fixture(scope="module")
def twin_for():
    """``twin_for(robot, task)``: one physics-only twin per robot and task, shared."""

    def get(robot: str, task: str) -> Twin:
        key = (robot, task)
        if key not in _twins:
            _twins[key] = Twin(robot_spec(robot), TwinConfig(render=False), TaskConfig(name=task))
        return _twins[key]

    yield get
    for twin in _twins.values():
        twin.close()
    _twins.clear()


def _operator(robot: str, **config) -> ScriptedOperator:
    return ScriptedOperator(robot_spec(robot), ScriptedConfig(**config))


def _seeds(twin: Twin) -> dict[tuple, list[int]]:
    return seeds_by_goal(twin.task_config, twin.scene.layout)


def _assert_within_limits(spec, commands: list[np.ndarray], fk) -> None:
    """What SafetyLimits checks, on the commands actually sent, with its own tolerances."""
    q = np.asarray(commands)
    dt = spec.control_period
    step = np.diff(q, axis=0)
    tol = 1e-9
    assert np.all(q >= spec.position_lower - tol) and np.all(q <= spec.position_upper + tol)
    assert np.all(np.abs(step) <= spec.velocity_limit * dt + tol)
    assert np.all(np.abs(step) <= spec.max_step + tol)
    accel = np.diff(step, axis=0) / dt / dt
    assert np.all(np.abs(accel) <= spec.acceleration_limit + 1e-6)
    ee = np.array([fk(c) for c in q[::5]])
    assert np.all(ee >= spec.workspace_lower) and np.all(ee <= spec.workspace_upper)


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("color", ["red", "green", "blue"])
def test_pick_place_succeeds_for_each_colour_within_max_duration(twin_for, robot, color):
    twin = twin_for(robot, "pick_place")
    operator = _operator(robot)
    fk = ForwardKinematics.for_robot(twin.spec)
    for seed in _seeds(twin)[(color,)][:1]:
        result = rollout(twin, operator, seed=seed, keep_commands=True)
        assert result.instruction == f"put the {color} cube in the bin"
        assert result.success, f"{robot} seed {seed}: {result}"
        assert result.operator_done and result.duration < twin.task_config.max_duration
        _assert_within_limits(twin.spec, result.commands, fk)


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_push_succeeds_to_either_side(twin_for, robot, side):
    twin = twin_for(robot, "push")
    operator = _operator(robot)
    fk = ForwardKinematics.for_robot(twin.spec)
    seeds = [s for key, group in _seeds(twin).items() if key[1] == side for s in group[:1]]
    for seed in seeds[:1]:
        result = rollout(twin, operator, seed=seed, keep_commands=True)
        assert result.instruction.endswith(f"to the {side}")
        assert result.success, f"{robot} seed {seed}: {result}"
        assert result.operator_done and result.duration < twin.task_config.max_duration
        _assert_within_limits(twin.spec, result.commands, fk)


@pytest.mark.parametrize("robot", ROBOTS)
@pytest.mark.parametrize("task", ["pick_place", "push"])
def test_with_failure_rate_one_every_failure_mode_fails(twin_for, robot, task):
    twin = twin_for(robot, task)
    operator = _operator(robot, failure_rate=1.0)
    modes = {}
    for seed in range(40):  # find one seed per failure mode (drawing it costs no physics)
        operator.reset(
            make_task(twin.task_config, twin.scene.layout).sample(seed).instruction, seed
        )
        modes.setdefault(operator.failure_mode, seed)
    expected = PICK_FAILURES if task == "pick_place" else PUSH_FAILURES
    assert set(modes) == set(expected)
    for mode, seed in modes.items():
        result = rollout(twin, operator, seed=seed)
        assert result.failure_mode == mode
        assert not result.success, f"{robot} {task} {mode} seed {seed} succeeded"


def test_chunks_are_stamped_script_actions_over_the_horizon(twin_for):
    twin = twin_for("so101", "pick_place")
    operator = _operator("so101", horizon=8)
    instruction = twin.reset(seed=0)
    operator.reset(instruction, seed=0)
    state = twin.arm.read() if twin.arm.connected else None
    if state is None:
        twin.arm.connect()
        state = twin.arm.read()
    chunk = operator.act(state.stamp, state.position, twin.objects())
    assert chunk.source is ControlSource.SCRIPT
    assert chunk.stamp == state.stamp
    assert chunk.joint_names == twin.spec.joint_names
    assert chunk.positions.shape == (8, twin.spec.dof)
    np.testing.assert_allclose(chunk.times, twin.spec.control_period * np.arange(1, 9))
    assert operator.phase is OperatorPhase.APPROACH


def test_a_new_chunk_continues_the_last_one_without_a_jump(twin_for):
    twin = twin_for("panda", "pick_place")
    operator = _operator("panda")
    instruction = twin.reset(seed=1)
    operator.reset(instruction, seed=1)
    spec = twin.spec
    q = spec.home.copy()
    first = operator.act(10.0, q, twin.objects())
    # observed three steps later, the arm where the first chunk said it would be
    second = operator.act(10.06, first.positions[2], twin.objects())
    np.testing.assert_allclose(chunk_target(first, 10.06), first.positions[2])
    step = second.positions[0] - first.positions[2]
    assert np.all(np.abs(step) <= spec.velocity_limit * spec.control_period + 1e-9)
    # same inputs and seed, same chunk
    again = _operator("panda")
    again.reset(instruction, seed=1)
    np.testing.assert_array_equal(again.act(10.0, q, twin.objects()).positions, first.positions)


def test_far_from_its_plan_it_replans_from_the_measured_arm(twin_for):
    twin = twin_for("so101", "pick_place")
    operator = _operator("so101")
    instruction = twin.reset(seed=2)
    operator.reset(instruction, seed=2)
    spec = twin.spec
    operator.act(0.0, spec.home, twin.objects())
    moved = spec.home.copy()
    moved[0] += 0.8  # a person turned the arm away
    chunk = operator.act(0.1, moved, twin.objects())
    assert np.all(np.abs(chunk.positions[0] - moved) <= spec.velocity_limit * spec.control_period)


def test_before_an_instruction_it_keeps_still():
    spec = robot_spec("so101")
    operator = ScriptedOperator(spec)
    chunk = operator.act(0.0, spec.home, {})
    np.testing.assert_allclose(chunk.positions, np.tile(spec.home, (chunk.horizon, 1)))


def test_bad_configs_and_instructions_are_refused():
    spec = robot_spec("so101")
    with pytest.raises(OperatorError, match="failure_rate"):
        ScriptedConfig(failure_rate=1.5)
    with pytest.raises(OperatorError, match="horizon"):
        ScriptedConfig(horizon=0)
    with pytest.raises(OperatorError, match="no 'hand' section"):
        ScriptedOperator(dataclasses.replace(spec, hand=None))
    operator = ScriptedOperator(spec)
    with pytest.raises(TaskError, match="cannot parse"):
        operator.reset("dance")


def test_a_fresh_plan_starts_at_the_last_command_not_at_the_sagging_arm(twin_for):
    """The SO-101's soft servos sit below their target. Told the last command, the first step
    is one the acceleration limit allows from it; from the measured position it would not be."""
    twin = twin_for("so101", "pick_place")
    spec = twin.spec
    instruction = twin.reset(seed=4)  # arm at home, servos targeting home
    twin.arm.connect()
    twin.arm.enable()
    for _ in range(25):
        twin.arm.send(spec.home)
        twin.step(spec.control_period)
    state = twin.arm.read()
    np.testing.assert_allclose(twin.arm.commanded, spec.home)
    allowed = spec.acceleration_limit * spec.control_period**2 + 1e-9
    assert np.any(np.abs(state.position - spec.home) > allowed)  # it sags
    informed, blind = _operator("so101"), _operator("so101")
    for operator in (informed, blind):
        operator.reset(instruction, seed=4)
    chunk = informed.act(state.stamp, state.position, twin.objects(), twin.arm.commanded)
    assert np.all(np.abs(chunk.positions[0] - spec.home) <= allowed)
    chunk = blind.act(state.stamp, state.position, twin.objects())
    assert np.any(np.abs(chunk.positions[0] - spec.home) > allowed)


def test_the_configured_wobble_strays_a_little_and_still_succeeds(twin_for):
    """``dojo/conf``'s operator records demonstrations with joint noise (what teaches a policy
    its way back to the path): the hand strays from the noiseless operator's path by a few
    centimetres at most (2-4 cm on these seeds), every command stays within the safety
    limits, and the episodes are still solved."""
    from dojo import conf

    noise = conf.scripted_config(conf.load([])).noise_std
    assert noise > 0
    twin = twin_for("so101", "pick_place")
    fk = ForwardKinematics.for_robot(twin.spec)
    strays = []
    for color in ("red", "green", "blue"):
        seed = _seeds(twin)[(color,)][0]
        clean = rollout(twin, _operator("so101"), seed=seed, keep_commands=True)
        noisy = rollout(twin, _operator("so101", noise_std=noise), seed=seed, keep_commands=True)
        assert noisy.success, f"seed {seed}: {noisy}"
        _assert_within_limits(twin.spec, noisy.commands, fk)
        n = min(len(clean.commands), len(noisy.commands)) // 3  # the approach: same phase
        ee_clean = np.array([fk(q) for q in clean.commands[:n]])
        ee_noisy = np.array([fk(q) for q in noisy.commands[:n]])
        strays.append(float(np.max(np.linalg.norm(ee_noisy - ee_clean, axis=1))))
    assert 0.005 < max(strays) < 0.08, strays
