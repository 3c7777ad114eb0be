"""Driving the twin with the scripted operator in process, without ROS or the executor.

Why apart from :mod:`teleop.scripted`: the operator plans (it is what the ROS nodes run); this
is a test and benchmark harness that steps a :class:`robot.sim.twin.Twin` at the control rate
and follows the operator's chunks, the way the driver would, so the operator's success rate
and limits can be measured in seconds of CPU (``tests/teleop``, ``bench/sim.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from robot.schema import ActionChunk
from teleop.scripted import ScriptedOperator


@dataclass
class RolloutResult:
    """One episode driven by :func:`rollout`. ``duration``: sim seconds from the reset."""

    instruction: str
    success: bool
    duration: float
    ticks: int
    chunks: int
    operator_done: bool
    failure_mode: str | None = None
    commands: list[np.ndarray] = field(default_factory=list)


def chunk_target(chunk: ActionChunk, t: float) -> np.ndarray:
    """The chunk's target at time ``t``: linear between steps, its first step before it
    starts, its last after it ends."""
    due = chunk.due
    if t <= due[0]:
        return chunk.positions[0].copy()
    if t >= due[-1]:
        return chunk.positions[-1].copy()
    i = int(np.searchsorted(due, t, side="right")) - 1
    w = (t - due[i]) / (due[i + 1] - due[i])
    return (1.0 - w) * chunk.positions[i] + w * chunk.positions[i + 1]


def rollout(
    twin,
    operator: ScriptedOperator,
    *,
    seed: int | None = None,
    max_duration: float | None = None,
    replan_every: int | None = None,
    command_filter: Callable[[np.ndarray, float], np.ndarray] | None = None,
    keep_commands: bool = False,
    settle: float = 0.5,
) -> RolloutResult:
    """Reset ``twin`` (a :class:`robot.sim.twin.Twin`) and let ``operator`` solve the episode,
    driving the twin directly at the control rate (no ROS, no executor).

    Every ``replan_every`` ticks (default: half the horizon) the operator gets the latest
    joint state and objects; in between, the chunk is followed. ``command_filter(target,
    now)`` (e.g. a safety layer) may change each target before it is sent. Stops ``settle``
    seconds after the operator is done (back home), or after ``max_duration`` (default: the
    task's); success is judged then.
    """
    spec = twin.spec
    period = spec.control_period
    instruction = twin.reset(seed=seed)
    operator.reset(instruction, seed=seed)
    if not twin.arm.connected:
        twin.arm.connect()
    if not twin.arm.enabled:
        twin.arm.enable()
    limit = max_duration if max_duration is not None else twin.task_config.max_duration
    every = replan_every or max(1, operator.config.horizon // 2)
    start = twin.time
    n_ticks = round(limit / period)
    chunk = None
    done_at: float | None = None
    chunks = ticks = 0
    commands: list[np.ndarray] = []
    for k in range(n_ticks):
        state = twin.arm.read()
        if k % every == 0:
            chunk = operator.act(state.stamp, state.position, twin.objects(), twin.arm.commanded)
            chunks += 1
        assert chunk is not None
        target = chunk_target(chunk, state.stamp + period)
        if command_filter is not None:
            target = command_filter(target, state.stamp)
        sent = twin.arm.send(target)
        if keep_commands:
            commands.append(sent)
        twin.step(period)
        ticks += 1
        if operator.done:
            done_at = twin.time if done_at is None else done_at
            if twin.time - done_at >= settle - 1e-9:
                break
    return RolloutResult(
        instruction=instruction,
        success=bool(twin.success()),
        duration=twin.time - start,
        ticks=ticks,
        chunks=chunks,
        operator_done=operator.done,
        failure_mode=operator.failure_mode,
        commands=commands,
    )
