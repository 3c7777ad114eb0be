"""The driver's loop in lockstep: as fast as the machine allows while a policy is alive, real
time while none is (nothing to be fast for; racing ahead starved a loading policy's process)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from robot.control import ControlLoop
from robot.executor import ChunkExecutor, ExecutorConfig
from robot.mjcf import ForwardKinematics
from robot.runtime import DriverLoop, LoopConfig, NullObserver
from robot.safety import SafetyLimits
from robot.schema import ActionChunk, ControlSource
from robot.sim.config import TwinConfig
from robot.sim.twin import Twin
from tests.sim_helpers import robot_spec

SPEC = robot_spec("so101")


@pytest.fixture
def lockstep():
    twin = Twin(SPEC, TwinConfig(render=False))
    twin.reset(seed=0)
    twin.arm.connect()
    twin.arm.enable()
    control = ControlLoop(
        twin.arm,
        SafetyLimits(SPEC, ForwardKinematics.for_robot(SPEC)),
        ChunkExecutor(SPEC, ExecutorConfig()),
    )
    control.start()
    loop = DriverLoop(control, SPEC, NullObserver(), LoopConfig(clock="lockstep"), twin=twin)
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    yield loop, thread, stop
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    twin.close()


def _run_for(loop, thread, stop, wall_s: float, each_tick=None) -> float:
    """Sim seconds that passed in ``wall_s`` wall seconds."""
    thread.start()
    while loop.tick_count < 1:
        time.sleep(0.001)
    t0, w0 = loop.now, time.monotonic()
    while time.monotonic() - w0 < wall_s:
        if each_tick is not None:
            each_tick()
        time.sleep(0.002)
    return (loop.now - t0) / (time.monotonic() - w0)


def test_with_no_policy_lockstep_keeps_to_the_wall_clock(lockstep):
    loop, thread, stop = lockstep
    rate = _run_for(loop, thread, stop, 1.5)
    assert 0.5 < rate < 1.5  # sim s per wall s


def test_with_a_live_policy_lockstep_runs_faster_than_real_time(lockstep):
    loop, thread, stop = lockstep

    def policy():  # a policy that always has the next half second queued
        with loop.lock:
            times = np.arange(1, 26) * 0.02
            chunk = ActionChunk(loop.now, SPEC.joint_names, np.tile(SPEC.home, (25, 1)), times,
                                ControlSource.POLICY)  # fmt: skip
            if loop.control.executor.submit(chunk, loop.now).accepted:
                loop.notify_chunk()

    rate = _run_for(loop, thread, stop, 1.5, each_tick=policy)
    assert rate > 2.0
