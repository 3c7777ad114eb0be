"""How many CPU threads a training step gets, chosen by measuring steps, not guessed.

On this kind of machine the right count depends on what else runs, and that changes during a
run. Alone on a 2-core machine, two torch threads make a compact-VLA step 1.5x faster than one
(80 against 120 ms). Beside another busy process (the critic trained beside the policy in
``dojo demo``, a ROS graph, a test suite) two threads collapse: OpenMP's workers spin-wait on
the core the other process holds and a step takes 5-50x longer. A fixed count is wrong in one
of the two cases, so :class:`ThreadGovernor` measures: it times a few steps at each candidate
count, keeps the fastest, and probes again now and then, so a run that starts alone and is
joined by other work (or the reverse) follows the machine.

What a probe costs is bounded: a candidate is dropped after ``probe_s`` seconds of its steps
even if it has not finished its ``window`` steps (one collapsed step is all it gets), and a
probe that confirms the count in use doubles the wait before the next one (``reprobe_s`` up to
``max_reprobe_s``: at most 3 s of slow steps every 2 minutes, a few percent, and a machine
that frees up is used within 2 minutes, as when ``dojo demo``'s critic finishes). Between
probes it watches the chosen count: when its steps become ``slowdown`` times slower than when
it was chosen (another job started), it probes at once instead of waiting out the backoff.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import numpy as np
import torch

WATCH_STEPS = 5
"""Between probes, the median of this many steps is compared with the chosen count's time:
a collapse is noticed after three slow steps."""


def default_threads() -> int:
    """Half the cores, at least one. torch's default (every core) busy-waits in OpenMP: beside
    anything else busy (the ROS graph, a second training run) a step then took 50x longer on
    this 2-core machine (5.4 s instead of 0.1 s); one thread per spare core does not."""
    return max(1, (os.cpu_count() or 2) // 2)


def candidate_threads(cores: int | None = None) -> tuple[int, ...]:
    """The counts worth trying: half the cores (safe beside other work) and all of them."""
    cores = cores or os.cpu_count() or 2
    return tuple(sorted({max(1, cores // 2), cores}))


class ThreadGovernor:
    """Times training steps and keeps torch at the fastest thread count.

    Wrap each step in :meth:`step` (time outside it, an evaluation or a checkpoint write, is
    not counted). ``set_threads`` and ``clock`` are injectable for tests."""

    def __init__(
        self,
        candidates: Sequence[int] | None = None,
        *,
        window: int = 12,
        probe_s: float = 3.0,
        reprobe_s: float = 60.0,
        max_reprobe_s: float = 120.0,
        slowdown: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.candidates = tuple(candidates or candidate_threads())
        if not self.candidates or min(self.candidates) < 1:
            raise ValueError(f"ThreadGovernor: candidates={self.candidates!r} must be counts >= 1")
        if window < 2:
            raise ValueError(f"ThreadGovernor: window={window} must be >= 2 (the first is warm-up)")
        self.window = window
        self.probe_s = probe_s
        self.base_reprobe_s = reprobe_s
        self.reprobe_s = reprobe_s
        self.max_reprobe_s = max_reprobe_s
        self.slowdown = slowdown
        self.clock = clock
        self._set = set_threads
        self.switches = 0
        self.probes = 0
        # the probe in progress: the counts still to try and the step times of each so far
        self._queue: list[int] = list(self.candidates)
        self._times: dict[int, list[float]] = {}
        self._next_probe = 0.0
        self._expected = float("inf")  # the chosen count's step time when it was chosen
        self._recent: deque[float] = deque(maxlen=WATCH_STEPS)
        self.best = self.candidates[0]
        self.threads = 0
        self._use(self._queue[0])

    @property
    def probing(self) -> bool:
        return bool(self._queue)

    def _use(self, n: int) -> None:
        if n != self.threads:
            self._set(n)
            if self.threads:
                self.switches += 1
            self.threads = n

    @contextmanager
    def step(self):
        t0 = self.clock()
        yield
        self._record(self.clock() - t0)

    def _record(self, seconds: float) -> None:
        now = self.clock()
        if not self._queue:
            if len(self.candidates) == 1:
                return
            self._recent.append(seconds)
            slowed = (
                len(self._recent) > WATCH_STEPS // 2
                and float(np.median(self._recent)) > self.slowdown * self._expected
            )
            if slowed or now >= self._next_probe:
                self._start_probe()
            return
        times = self._times.setdefault(self.threads, [])
        times.append(seconds)
        done = len(times) >= self.window or sum(times) >= self.probe_s
        if not done:
            return
        self._queue.pop(0)
        if self._queue:
            self._use(self._queue[0])
            return
        self._finish_probe(now)

    def _start_probe(self) -> None:
        self.probes += 1
        # the current count first (its time now, under today's load), then the others
        self._queue = [self.best] + [n for n in self.candidates if n != self.best]
        self._times = {}
        self._recent.clear()
        self._use(self._queue[0])

    def _finish_probe(self, now: float) -> None:
        def cost(n: int) -> float:
            times = self._times.get(n, [])
            t = times[1:] or times  # the first step after a switch warms the pool
            return float(np.median(t)) if t else float("inf")

        previous = self.best
        self.best = min(self.candidates, key=cost)
        if self.probes and self.best == previous:
            self.reprobe_s = min(self.reprobe_s * 2, self.max_reprobe_s)
        else:
            self.reprobe_s = self.base_reprobe_s
        self._use(self.best)
        self._expected = cost(self.best)
        self._next_probe = now + self.reprobe_s

    def summary(self) -> dict:
        return {
            "threads": self.threads,
            "candidates": list(self.candidates),
            "probes": self.probes + 1,
            "switches": self.switches,
        }
