"""Asynchronous inference and hot swap (policy/async_runner.py), in sim time."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest

from policy.async_runner import AsyncPolicyRunner
from policy.base import ChunkPolicy, PolicyError
from robot.executor import ChunkExecutor, ExecutorConfig
from robot.schema import ActionChunk, Observation
from tests.policy.conftest import JOINTS, tiny_spec

DT = 0.02  # the tiny robot's control period (50 Hz)
WAIT = 10.0  # s: bound on every wait for the worker


class ConstantPolicy(ChunkPolicy):
    """Chunks of a constant target; ``gate`` (an Event) makes an inference wait until set."""

    def __init__(self, value: float, gate: threading.Event | None = None, joints=JOINTS):
        self.value = value
        self.gate = gate
        self.joint_names = tuple(joints)
        self.cameras = ()
        self.horizon = 10
        self.chunk_dt = 0.1
        self.started = threading.Event()
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def predict(self, obs, instruction, committed=None) -> ActionChunk:
        self.started.set()
        if self.gate is not None and not self.gate.wait(WAIT):
            raise RuntimeError("test gate never opened")
        return ActionChunk(
            obs.stamp,
            self.joint_names,
            np.full((self.horizon, len(self.joint_names)), self.value),
            self.chunk_times(),
        )


def obs_at(t: float) -> Observation:
    return Observation(t, np.zeros(3), np.zeros(3))


@pytest.fixture
def spec():
    return tiny_spec()


def run_sim(spec, replan_horizon: float, latency: float, seconds: float = 10.0) -> int:
    """Tick executor and runner in sim time; a chunk reaches the executor ``latency`` s of sim
    time after it was requested. Returns the ticks that held for lack of an action, counted
    from the first chunk on."""
    executor = ChunkExecutor(spec, ExecutorConfig())
    arrived: queue.Queue = queue.Queue()
    runner = AsyncPolicyRunner(
        ConstantPolicy(0.1),
        spec,
        replan_horizon=replan_horizon,
        on_chunk=lambda chunk, lat: arrived.put(chunk),
    )
    runner.start()
    runner.set_instruction("hold still")
    in_flight: list[tuple[float, ActionChunk]] = []
    holds, started = 0, False
    try:
        for k in range(round(seconds / DT)):
            now = k * DT
            runner.update_observation(obs_at(now))
            executor.observe(now)
            if runner.tick(now):
                assert runner.wait_idle(WAIT), "inference did not finish"
                in_flight.append((now + latency, arrived.get(timeout=WAIT)))
            for due, chunk in [c for c in in_flight if c[0] <= now + 1e-9]:
                executor.submit(chunk, now)
                in_flight.remove((due, chunk))
                started = True
            out = executor.next_action(now)
            holds += int(started and out.target is None)
    finally:
        runner.close()
    return holds


def test_inference_faster_than_the_horizon_never_leaves_the_executor_without_a_chunk(spec):
    assert run_sim(spec, replan_horizon=0.3, latency=0.1) == 0


def test_inference_slower_than_the_horizon_does_leave_it_without_one(spec):
    """The control for the test above: the same loop does count holds when they happen."""
    assert run_sim(spec, replan_horizon=0.3, latency=0.6) > 0


def test_a_new_checkpoint_is_swapped_in_between_two_inferences(spec):
    gate = threading.Event()
    old = ConstantPolicy(0.0, gate)
    new = ConstantPolicy(1.0)
    chunks: queue.Queue = queue.Queue()
    events: queue.Queue = queue.Queue()
    runner = AsyncPolicyRunner(
        old,
        spec,
        replan_horizon=0.3,
        on_chunk=lambda c, lat: chunks.put(c),
        on_event=lambda k, m: events.put((k, m)),
        loader=lambda path: new,
    )
    runner.start()
    try:
        runner.set_instruction("go")
        runner.update_observation(obs_at(0.0))
        assert runner.tick(0.0)
        assert old.started.wait(WAIT)  # an inference with the old weights is running
        runner.swap("ckpt-2")
        gate.set()
        first = chunks.get(timeout=WAIT)
        assert first.positions[0, 0] == 0.0  # the running inference finished on the old weights
        assert events.get(timeout=WAIT) == ("swapped", "ckpt-2")
        runner.update_observation(obs_at(1.0))
        assert runner.tick(1.0)
        second = chunks.get(timeout=WAIT)
        assert second.positions[0, 0] == 1.0
        assert runner.checkpoint == "ckpt-2" and runner.stats.swaps == 1
        assert new.resets == 1  # the new policy starts the episode from a reset
    finally:
        runner.close()


@pytest.mark.parametrize(
    "loader, reason",
    [
        (lambda path: (_ for _ in ()).throw(PolicyError(f"{path}: corrupt")), "corrupt"),
        (lambda path: ConstantPolicy(1.0, joints=["a", "b"]), "trained for joints"),
    ],
    ids=["fails-to-load", "other-robot"],
)
def test_a_checkpoint_that_fails_keeps_the_old_weights(spec, loader, reason):
    chunks: queue.Queue = queue.Queue()
    events: queue.Queue = queue.Queue()
    runner = AsyncPolicyRunner(
        ConstantPolicy(0.0),
        spec,
        replan_horizon=0.3,
        on_chunk=lambda c, lat: chunks.put(c),
        on_event=lambda k, m: events.put((k, m)),
        loader=loader,
    )
    runner.checkpoint = "ckpt-1"
    runner.start()
    try:
        runner.swap("ckpt-bad")
        kind, message = events.get(timeout=WAIT)
        assert kind == "swap_failed" and reason in message and "keeping ckpt-1" in message
        runner.set_instruction("go")
        runner.update_observation(obs_at(0.0))
        assert runner.tick(0.0)
        assert chunks.get(timeout=WAIT).positions[0, 0] == 0.0
        assert runner.stats.swap_failures == 1 and runner.checkpoint == "ckpt-1"
    finally:
        runner.close()


def test_nothing_is_requested_while_a_person_has_control(spec):
    runner = AsyncPolicyRunner(
        ConstantPolicy(0.0), spec, replan_horizon=0.3, on_chunk=lambda c, lat: None
    )
    runner.start()
    try:
        runner.set_instruction("go")
        runner.update_observation(obs_at(0.0))
        runner.set_paused(True)
        assert not runner.tick(0.0)
        runner.set_paused(False)
        assert runner.tick(0.02)
        assert runner.wait_idle(WAIT)
    finally:
        runner.close()


def test_a_policy_for_another_robot_is_refused_before_anything_runs(spec):
    with pytest.raises(PolicyError, match="trained for joints"):
        AsyncPolicyRunner(
            ConstantPolicy(0.0, joints=["x"]),
            spec,
            replan_horizon=0.3,
            on_chunk=lambda c, lat: None,
        )


# -- the committed prefix (real-time chunking) and refusals ------------------------------------


class RampPolicy(ChunkPolicy):
    """Chunks whose every joint reads its step's due time; records what each call was given
    (``calls``: ``committed``, or the string "two-arg" for a call without it)."""

    def __init__(self, joints=JOINTS):
        self.joint_names = tuple(joints)
        self.cameras = ()
        self.horizon = 10
        self.chunk_dt = 0.1
        self.calls: list = []

    def reset(self) -> None:
        pass

    def predict(self, obs, instruction, *committed) -> ActionChunk:
        self.calls.append(committed[0] if committed else "two-arg")
        times = self.chunk_times()
        return ActionChunk(
            obs.stamp, self.joint_names, np.repeat((obs.stamp + times)[:, None], 3, 1), times
        )


class TwoArgPolicy(RampPolicy):
    def predict(self, obs, instruction) -> ActionChunk:  # no committed argument at all
        return super().predict(obs, instruction)


def request(runner, chunks: queue.Queue, now: float) -> ActionChunk:
    runner.update_observation(obs_at(now))
    assert runner.tick(now), f"no request at t={now}"
    return chunks.get(timeout=WAIT)


def rtc_runner(spec, policy, rtc_prefix=0.1):
    chunks: queue.Queue = queue.Queue()
    runner = AsyncPolicyRunner(
        policy,
        spec,
        replan_horizon=0.4,
        on_chunk=lambda c, lat: chunks.put(c),
        rtc_prefix=rtc_prefix,
    )
    runner.start()
    runner.set_instruction("go")
    return runner, chunks


def test_with_rtc_each_inference_continues_the_drivers_committed_plan(spec):
    policy = RampPolicy()
    runner, chunks = rtc_runner(spec, policy)
    executor = ChunkExecutor(spec, ExecutorConfig(blend="rtc", rtc_prefix=0.1))
    executor.observe(0.0)
    try:
        first = request(runner, chunks, 0.0)
        assert policy.calls == ["two-arg"]  # no plan yet: nothing to continue
        assert executor.submit(first, 0.06).accepted  # the driver took it 60 ms after its obs
        runner.set_plan(executor.plan(0.06))
        assert not runner.tick(0.5)  # 0.5 s of plan left > replan_horizon
        request(runner, chunks, 0.62)
        # k = ceil((0.06 s latency + 0.1 s rtc_prefix) / 0.1) = 2: targets at 0.72 and 0.82
        committed = policy.calls[-1]
        executed = []
        for t in (0.72, 0.82):
            executor.observe(t)
            executed.append(executor.next_action(t).target)
        np.testing.assert_allclose(committed, executed, atol=1e-9)
        np.testing.assert_allclose(committed[:, 0], [0.72, 0.82], atol=1e-9)
        assert runner.stats.prefixed == 1 and runner.stats.prefix_steps == 2
        # the driver has not confirmed the second chunk: its old plan is no prefix to continue
        request(runner, chunks, 1.24)
        assert policy.calls[-1] == "two-arg"
    finally:
        runner.close()


def test_without_rtc_or_a_committed_argument_the_call_keeps_two_arguments(spec):
    executor = ChunkExecutor(spec, ExecutorConfig())
    executor.observe(0.0)
    for policy, rtc_prefix in ((RampPolicy(), None), (TwoArgPolicy(), 0.1)):
        runner, chunks = rtc_runner(spec, policy, rtc_prefix)
        try:
            chunk = request(runner, chunks, 0.0)
            executor.submit(chunk, 0.02)
            runner.set_plan(executor.plan(0.02))
            request(runner, chunks, 0.62)
            assert policy.calls == ["two-arg", "two-arg"] and runner.stats.prefixed == 0
        finally:
            runner.close()


def test_a_refused_chunk_is_replanned_at_once_and_its_refusal_heard_once(spec):
    policy = RampPolicy()
    runner, chunks = rtc_runner(spec, policy)
    executor = ChunkExecutor(spec, ExecutorConfig(blend="rtc"))
    executor.observe(0.0)
    try:
        first = request(runner, chunks, 0.0)
        executor.submit(first, 0.02)
        runner.set_plan(executor.plan(0.02))
        request(runner, chunks, 0.6)  # the driver refuses this one (say, stamped before release)
        assert not runner.tick(0.64)  # the runner believes it runs until 1.6
        assert not runner.chunk_refused(0.0)  # a refusal of an older chunk changes nothing
        assert runner.chunk_refused(0.6)
        assert not runner.chunk_refused(0.6)  # driver/status repeats it: heard once
        request(runner, chunks, 0.66)  # at once, not 0.6 s later
        # the plan without the refused chunk is what the executor runs: it is continued (one
        # step: k = ceil((0 s latency, as the last inference took no ROS time here + 0.1) / 0.1))
        np.testing.assert_allclose(policy.calls[-1][:, 0], [0.76], atol=1e-9)
        assert runner.stats.refused == 1
    finally:
        runner.close()
