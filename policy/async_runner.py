"""Asynchronous chunked inference: the policy thinks while the arm moves.

The driver's executor runs the current chunk; this runner computes the next one on its own
thread, from the latest observation, as soon as the current chunk has less than
``replan_horizon`` seconds left. The chunk comes back stamped with its observation's time, so
the executor drops the steps whose time passed during inference (never replays them) and
starts from the first step still due. As long as inference is faster than ``replan_horizon``
the executor always has a chunk to run: no tick holds for want of an action.

Nothing here blocks its callers: :meth:`update_observation` and :meth:`tick` store data and
notify the worker; inference, and loading a new checkpoint, happen on threads of their own.

Hot swap: :meth:`swap` loads new weights on a loader thread while inference continues with the
old ones; the worker switches policies between two inferences, never during one. A checkpoint
that fails to load (corrupt file, another robot's joints, a missing camera) is reported through
``on_event`` and the old weights stay.

Where the remaining horizon comes from: the runner knows the chunks it sent, so it mirrors the
executor's plan end (``stamp + times[-1]`` of the last chunk). A chunk the driver refused
(during an intervention, say) makes the runner ask again one ``replan_horizon`` later.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from policy.base import ChunkPolicy, PolicyError
from robot.schema import ActionChunk, Observation, RobotSpec

log = logging.getLogger(__name__)


@dataclass
class RunnerStats:
    """Counters for ``policy/status``. ``latencies``: the last 256 inference times (s)."""

    requests: int = 0
    chunks: int = 0
    failures: int = 0
    swaps: int = 0
    swap_failures: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=256))

    def to_json(self) -> dict:
        lat = np.asarray(self.latencies) if self.latencies else np.zeros(1)
        return {
            "requests": self.requests,
            "chunks": self.chunks,
            "failures": self.failures,
            "swaps": self.swaps,
            "swap_failures": self.swap_failures,
            "latency_p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 2),
            "latency_p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 2),
        }


class AsyncPolicyRunner:
    """See the module docstring.

    ``on_chunk(chunk, latency_s)`` and ``on_event(kind, message)`` are called from the worker
    or loader thread; they must be quick and thread-safe (a ROS publish is).
    ``loader(path) -> ChunkPolicy`` loads a checkpoint for :meth:`swap`.
    """

    def __init__(
        self,
        policy: ChunkPolicy,
        spec: RobotSpec,
        *,
        replan_horizon: float,
        on_chunk: Callable[[ActionChunk, float], None],
        on_event: Callable[[str, str], None] | None = None,
        loader: Callable[[str], ChunkPolicy] | None = None,
    ) -> None:
        policy.check(spec)
        self.spec = spec
        self.replan_horizon = float(replan_horizon)
        self.on_chunk = on_chunk
        self._on_event = on_event or (lambda kind, msg: log.info("%s: %s", kind, msg))
        self.loader = loader
        self.stats = RunnerStats()
        self._policy = policy
        self._pending_policy: tuple[ChunkPolicy, str] | None = None
        self._lock = threading.Condition()
        self._obs: Observation | None = None
        self._instruction = ""
        self._plan_end = -math.inf
        self._retry_at = -math.inf
        self._want = False
        self._busy = False
        self._stop = False
        self._paused = False
        self._epoch = 0  # bumps on a new instruction: results of older requests are dropped
        self._worker = threading.Thread(target=self._run, name="policy-inference", daemon=True)
        self._loader: threading.Thread | None = None
        self.checkpoint = ""

    def on_event(self, kind: str, message: str) -> None:
        """Report through the caller's callback; a failing callback never stops the worker."""
        try:
            self._on_event(kind, message)
        except Exception:
            log.exception("policy event callback failed (%s: %s)", kind, message)

    # -- inputs (any thread; never block) ----------------------------------------------------------

    def start(self) -> None:
        self._worker.start()

    def set_instruction(self, instruction: str) -> None:
        """A new episode: forget the plan, reset the policy before the next inference."""
        with self._lock:
            self._instruction = instruction
            self._plan_end = -math.inf
            self._retry_at = -math.inf
            self._epoch += 1
            self._lock.notify_all()

    def set_paused(self, paused: bool) -> None:
        """While a person has control the driver refuses policy chunks: do not compute any.
        On release the plan is forgotten, so the next tick asks for a fresh chunk."""
        with self._lock:
            self._paused = bool(paused)
            self._plan_end = -math.inf
            self._retry_at = -math.inf

    def update_observation(self, obs: Observation) -> None:
        with self._lock:
            self._obs = obs

    def tick(self, now: float) -> bool:
        """Call on every joint state (ROS time ``now``): request a chunk if the plan runs out
        within ``replan_horizon``. Returns whether a request was made."""
        with self._lock:
            if (
                self._busy
                or self._want
                or self._paused
                or not self._instruction
                or self._obs is None
            ):
                return False
            if self._plan_end - now > self.replan_horizon or now < self._retry_at:
                return False
            self._want = True
            self.stats.requests += 1
            self._lock.notify_all()
            return True

    def chunk_refused(self, now: float) -> None:
        """The driver did not take the last chunk: ask again after one replan horizon."""
        with self._lock:
            self._plan_end = -math.inf
            self._retry_at = now + self.replan_horizon

    def swap(self, checkpoint: str) -> None:
        """Load ``checkpoint`` in the background; switch to it between two inferences."""
        if self.loader is None:
            self.on_event("swap_failed", f"{checkpoint}: this runner has no loader")
            return
        if self._loader is not None and self._loader.is_alive():
            self.on_event("swap_failed", f"{checkpoint}: still loading the previous checkpoint")
            return
        self._loader = threading.Thread(
            target=self._load, args=(checkpoint,), name="policy-loader", daemon=True
        )
        self._loader.start()

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout)
        if self._loader is not None and self._loader.is_alive():
            self._loader.join(timeout)

    @property
    def policy(self) -> ChunkPolicy:
        return self._policy

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is pending or running (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._want or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    # -- threads ----------------------------------------------------------------------------------

    def _load(self, checkpoint: str) -> None:
        try:
            policy = self.loader(checkpoint)
            policy.check(self.spec)
        except Exception as err:  # a bad checkpoint must never take the running policy down
            self.stats.swap_failures += 1
            self.on_event(
                "swap_failed",
                f"{checkpoint}: {err}; keeping {self.checkpoint or 'the current weights'}",
            )
            return
        with self._lock:
            self._pending_policy = (policy, checkpoint)
            self._lock.notify_all()

    def _run(self) -> None:
        epoch_seen = -1
        while True:
            with self._lock:
                while not (self._stop or self._want or self._pending_policy):
                    self._lock.wait(0.5)
                if self._stop:
                    return
                if self._pending_policy is not None:  # between two inferences: swap now
                    self._policy, self.checkpoint = self._pending_policy
                    self._pending_policy = None
                    self.stats.swaps += 1
                    epoch_seen = -1
                    self.on_event("swapped", self.checkpoint)
                if not self._want:
                    continue
                self._want = False
                self._busy = True
                obs, instruction, epoch = self._obs, self._instruction, self._epoch
                policy = self._policy
            try:
                if epoch != epoch_seen:
                    policy.reset()
                    epoch_seen = epoch
                t0 = time.perf_counter()
                chunk = policy.predict(obs, instruction)
                latency = time.perf_counter() - t0
                ok = True
            except (PolicyError, ValueError, RuntimeError) as err:
                ok = False
                self.stats.failures += 1
                self.on_event("inference_failed", str(err))
            with self._lock:
                self._busy = False
                if ok and epoch == self._epoch:
                    self.stats.chunks += 1
                    self.stats.latencies.append(latency)
                    self._plan_end = chunk.stamp + float(chunk.times[-1])
                elif not ok:
                    self._retry_at = obs.stamp + self.replan_horizon
                self._lock.notify_all()
            if ok and epoch == self._epoch:
                try:
                    self.on_chunk(chunk, latency)
                except Exception:
                    log.exception("publishing a chunk failed")
