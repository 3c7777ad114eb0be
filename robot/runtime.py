"""The driver's loop: run a ControlLoop at the arm's rate, with no transport inside.

Why a library object and not code in the ROS node: the loop's timing is what a robot engineer
checks first (``bench/control_loop.py`` runs exactly this object), and the node stays a thin
shell that converts messages. The node passes an observer that publishes what each tick
produced.

One iteration, at ROS time ``now``::

    observer.on_clock(now)                      the twin is the clock source in simulation
    result = control.tick(now)                  read state, pick action, safety, send
    observer.on_tick(result)                    joint states, executed command
    cameras due at ``now`` -> observer.on_frame  each camera at its own rate (twin only):
                                                 lockstep renders here, in order; realtime
                                                 hands a state snapshot to a render thread
    pace                                         realtime: wait for the wall clock;
                                                 lockstep: wait (bounded) for the policy,
                                                 or the wall clock while no policy is alive
    twin.step(period)                            physics advances exactly one control period

A real arm has no twin: ``now`` comes from the ``clock`` callable and the arm's own I/O paces.
The loop always ends holding the arm (``finally``), whatever raised.

Why a render thread in real time: a frame of the SO-101 twin costs ~30 ms of CPU rendering, more
than a 20 ms control period, so rendering on the control thread made ticks late by whole
periods. The control thread now only copies the state (``Twin.snapshot``, microseconds); frames
are stamped with the snapshot's time, and a frame that cannot be rendered before the next one
is due is dropped and counted (``frames_dropped``) rather than delaying the arm.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from robot.control import ControlLoop, TickResult
from robot.schema import RobotSpec
from robot.sim.clock import RealTimePacer

log = logging.getLogger(__name__)


class TickObserver(Protocol):
    def on_clock(self, now: float) -> None: ...
    def on_tick(self, result: TickResult) -> None: ...
    def on_frame(self, camera: str, image: np.ndarray, stamp: float) -> None: ...
    def on_scene(self, now: float) -> None: ...


class NullObserver:
    """Publishes nothing: for running the loop without a transport (benchmarks, tests)."""

    def on_clock(self, now: float) -> None:
        pass

    def on_tick(self, result: TickResult) -> None:
        pass

    def on_frame(self, camera: str, image: np.ndarray, stamp: float) -> None:
        pass

    def on_scene(self, now: float) -> None:
        pass


@dataclass
class LoopConfig:
    clock: str = "realtime"  # "realtime" | "lockstep" (lockstep needs a twin)
    lockstep_min_horizon: float = 0.06  # s of queued actions below which lockstep waits
    lockstep_wait: float = 2.0  # wall s, the most lockstep waits for the policy per tick
    scene_hz: float = 10.0  # how often the observer is told to publish scene state (twin)


class FrameWorker:
    """Renders twin snapshots on its own thread and hands each frame to the observer."""

    def __init__(self, twin, observer: TickObserver, depth: int = 2) -> None:
        self._twin = twin
        self._observer = observer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="render", daemon=True)
        self.dropped = 0
        self.rendered = 0
        self.error: Exception | None = None
        self._thread.start()

    def submit(self, cameras: list[str], snapshot) -> None:
        try:
            self._queue.put_nowait((cameras, snapshot))
        except queue.Full:
            self.dropped += len(cameras)

    def _run(self) -> None:
        from robot.sim.twin import SnapshotRenderer

        renderer = SnapshotRenderer(self._twin)  # GL contexts belong to this thread
        try:
            while not self._stop.is_set():
                try:
                    cameras, snap = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
                for cam in cameras:
                    self._observer.on_frame(cam, renderer.render(cam, snap), snap.time)
                    self.rendered += 1
        except Exception as err:  # a camera failing must not take the arm down; it is reported
            self.error = err
            log.error("render thread stopped: %s", err)
        finally:
            renderer.close()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout)


class DriverLoop:
    """Runs ``control`` until ``stop`` is set. Thread-safe through ``lock``.

    ``lock`` guards the executor: ROS callbacks submit chunks under it while this loop ticks.
    ``chunk_arrived`` is notified by whoever submits a chunk, so lockstep wakes at once.
    Between ticks, ``requests`` (callables) run on this thread: that is how a service resets
    the twin without touching MuJoCo from another thread.
    """

    def __init__(
        self,
        control: ControlLoop,
        spec: RobotSpec,
        observer: TickObserver,
        config: LoopConfig,
        *,
        twin=None,
        clock: Callable[[], float] | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        if config.clock not in ("realtime", "lockstep"):
            raise ValueError(f"clock={config.clock!r}: expected 'realtime' or 'lockstep'")
        if config.clock == "lockstep" and twin is None:
            raise ValueError("clock='lockstep' needs the twin: a real arm runs in real time")
        if twin is None and clock is None:
            raise ValueError("a real arm needs a clock callable (ROS time in seconds)")
        self.control = control
        self.spec = spec
        self.observer = observer
        self.config = config
        self.twin = twin
        self.clock = clock
        self.lock = lock or threading.RLock()
        self.chunk_arrived = threading.Condition(self.lock)
        self.requests: deque[Callable[[], None]] = deque()
        self.now = 0.0
        self.tick_count = 0
        # wall-clock tick starts, for period statistics; bounded: 60 s at the control rate
        self.tick_walltimes: deque[float] = deque(maxlen=int(60 * spec.control_hz))
        self.lockstep_waits = 0
        self.lockstep_timeouts = 0
        self._next_frame: dict[str, float] = {}
        self._next_scene = 0.0
        self._frames: FrameWorker | None = None
        self.pacer: RealTimePacer | None = None
        self._last_chunk_seen = -np.inf
        self._idle = False  # lockstep with no live policy: paced to the wall clock

    # -- called from other threads ------------------------------------------------------------

    def notify_chunk(self) -> None:
        """Call (holding ``lock``) after submitting a chunk: lockstep stops waiting."""
        self._last_chunk_seen = self.now
        self.chunk_arrived.notify_all()

    def request(self, fn: Callable[[], None]) -> threading.Event:
        """Run ``fn`` on the loop thread between two ticks; the event is set once it ran."""
        done = threading.Event()

        def wrapped() -> None:
            try:
                fn()
            finally:
                done.set()

        with self.lock:
            self.requests.append(wrapped)
            self.chunk_arrived.notify_all()
        return done

    def reset_camera_schedule(self) -> None:
        self._next_frame = {cam.name: self.now for cam in self.spec.cameras}
        self._next_scene = self.now

    # -- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        period = self.spec.control_period
        self.now = self.twin.time if self.twin is not None else self.clock()
        self.reset_camera_schedule()
        # stop.wait as the pacer's sleep: a stop request never waits out a period
        self.pacer = RealTimePacer(
            "realtime", max_lag=period, sleep=lambda seconds: stop.wait(seconds)
        )
        render = self.twin is not None and getattr(self.twin.config, "render", True)
        if render and self.config.clock == "realtime":
            self._frames = FrameWorker(self.twin, self.observer)
        try:
            while not stop.is_set():
                while self.requests:
                    self.requests.popleft()()
                if self.twin is not None:
                    self.now = self.twin.time
                else:
                    self.now = self.clock()
                self.tick_walltimes.append(time.monotonic())
                self.observer.on_clock(self.now)
                with self.lock:
                    result = self.control.tick(self.now)
                self.tick_count += 1
                self.observer.on_tick(result)
                if self.twin is not None:
                    self._publish_due_frames()
                if self.config.clock == "lockstep":
                    self._wait_for_policy(stop)
                else:
                    self.pacer.wait(self.now + period)  # late by a period: re-anchor, no burst
                if self.twin is not None:
                    self.twin.step(period)
        finally:
            try:
                self.control.stop()
            finally:
                if self._frames is not None:
                    self._frames.close()

    @property
    def frames_dropped(self) -> int:
        return 0 if self._frames is None else self._frames.dropped

    def _publish_due_frames(self) -> None:
        render = getattr(self.twin.config, "render", True)
        due_now = []
        for cam in self.spec.cameras:
            due = self._next_frame.get(cam.name, self.now)
            if render and self.now + 1e-9 >= due:
                due_now.append(cam.name)
                # next frame on the camera's own grid, skipping frames rather than bursting
                step = 1.0 / cam.fps
                self._next_frame[cam.name] = due + step * max(1, np.ceil((self.now - due) / step))
        if due_now and self._frames is not None:
            self._frames.submit(due_now, self.twin.snapshot())
        else:
            for name in due_now:
                self.observer.on_frame(name, self.twin.render(name), self.now)
        if self.now + 1e-9 >= self._next_scene:
            self.observer.on_scene(self.now)
            self._next_scene += 1.0 / self.config.scene_hz

    def _wait_for_policy(self, stop: threading.Event) -> None:
        """Lockstep: hold the world still while a live policy computes its next chunk.

        With no policy alive (none yet, or one that went quiet) it runs in real time: there is
        nothing to be fast for, and racing ahead rendering frames took both cores of a small
        machine from the policy process that was loading."""
        executor = self.control.executor
        watchdog = getattr(executor.config, "watchdog", 0.5)
        period = self.spec.control_period
        deadline = time.monotonic() + self.config.lockstep_wait
        with self.lock:
            policy_alive = self.now - self._last_chunk_seen <= watchdog
        if not policy_alive:
            if not self._idle:
                self._idle = True
                self.pacer.reset()  # anchor afresh: the time spent in lockstep is no lag
            self.pacer.wait(self.now + period)
            return
        self._idle = False
        with self.lock:
            waited = False
            while (
                executor.remaining_horizon(self.now + period) < self.config.lockstep_min_horizon
                and not stop.is_set()
                and not self.requests
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    self.lockstep_timeouts += 1
                    log.warning(
                        "lockstep: no chunk within %.1f s wall at t=%.3f; stepping on",
                        self.config.lockstep_wait,
                        self.now,
                    )
                    break
                waited = True
                self.chunk_arrived.wait(timeout=min(left, 0.1))
            self.lockstep_waits += int(waited)

    def period_errors(self) -> np.ndarray:
        """Measured tick interval minus the nominal period, in s, over the last minute."""
        t = np.asarray(self.tick_walltimes)
        if t.size < 2:
            return np.zeros(0)
        return np.diff(t) - self.spec.control_period
