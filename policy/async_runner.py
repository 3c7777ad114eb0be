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
(:meth:`chunk_refused`: one computed before an intervention ended, one too old or too long)
is not running, so the runner forgets the mirrored plan and asks again on the next tick
instead of waiting, with the arm holding, for a plan end that will never come.

Real-time chunking (``rtc_prefix`` set: the executor blends with ``rtc``): the runner keeps the
driver's committed plan (:meth:`set_plan`, a :meth:`robot.executor.ChunkExecutor.plan`) and
passes its targets at ``obs.stamp + chunk_dt * (1..k)`` to ``predict`` as ``committed``, ``k =
ceil((expected latency + rtc_prefix) / chunk_dt)`` (:func:`robot.executor.committed_prefix`,
the rule the in-process rollout uses). The expected latency is in ROS time: how late after its
observation the driver took the last chunk (the first point of the plan it published on
accepting it), or, until that plan arrives, the ROS time that had passed when inference ended.
A plan is used only if it holds the last chunk sent (its stamp) or that chunk was refused: a
plan from before the driver took it would be a prefix the executor is no longer going to run.
A policy whose ``predict`` takes no ``committed`` argument keeps the two-argument call.
"""

from __future__ import annotations

import inspect
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from policy.base import ChunkPolicy, PolicyError
from robot.executor import committed_prefix
from robot.schema import ActionChunk, Observation, RobotSpec

log = logging.getLogger(__name__)


@dataclass
class RunnerStats:
    """Counters for ``policy/status``. ``latencies``: the last 256 inference times (s).
    ``refused``: chunks the driver refused; ``prefixed``: chunks computed with a committed
    prefix, ``prefix_steps`` its length for the last chunk (0: none)."""

    requests: int = 0
    chunks: int = 0
    failures: int = 0
    swaps: int = 0
    swap_failures: int = 0
    refused: int = 0
    prefixed: int = 0
    prefix_steps: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=256))

    def to_json(self) -> dict:
        lat = np.asarray(self.latencies) if self.latencies else np.zeros(1)
        return {
            "requests": self.requests,
            "chunks": self.chunks,
            "failures": self.failures,
            "swaps": self.swaps,
            "swap_failures": self.swap_failures,
            "refused": self.refused,
            "prefixed": self.prefixed,
            "prefix_steps": self.prefix_steps,
            "latency_p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 2),
            "latency_p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 2),
        }


class AsyncPolicyRunner:
    """See the module docstring.

    ``on_chunk(chunk, latency_s)`` and ``on_event(kind, message)`` are called from the worker
    or loader thread; they must be quick and thread-safe (a ROS publish is).
    ``loader(path) -> ChunkPolicy`` loads a checkpoint for :meth:`swap`. ``rtc_prefix``: the
    executor's committed prefix (s) when it blends with ``rtc``, else ``None`` (no prefix).
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
        rtc_prefix: float | None = None,
    ) -> None:
        policy.check(spec)
        self.spec = spec
        self.replan_horizon = float(replan_horizon)
        self.rtc_prefix = None if rtc_prefix is None else float(rtc_prefix)
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
        self._now = -math.inf  # ROS time of the latest tick
        self._plan: ActionChunk | None = None  # the driver's committed plan, as last heard
        self._sent: float | None = None  # stamp of the last chunk handed to on_chunk
        self._refused: float | None = None  # stamp of the last chunk the driver refused
        self._lag = 0.0  # ROS s from an observation to the driver taking its chunk
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
            self._now = max(self._now, now)
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

    def chunk_refused(self, stamp: float) -> bool:
        """The driver refused the chunk stamped ``stamp``. If that is the last one sent, it is
        not running: forget the plan it would have made and ask again on the next tick.
        Returns whether it was (a refusal heard again, or of an older chunk, changes nothing)."""
        with self._lock:
            if self._sent is None or abs(stamp - self._sent) > 1e-6 or self._refused == self._sent:
                return False
            self._refused = self._sent
            self.stats.refused += 1
            self._plan_end = -math.inf
            self._retry_at = -math.inf
            return True

    def set_plan(self, plan: ActionChunk | None) -> None:
        """The driver's committed plan (``None``: nothing queued), in this robot's joint order."""
        with self._lock:
            self._plan = plan
            if plan is not None and self._sent is not None and abs(plan.stamp - self._sent) < 1e-6:
                self._lag = max(float(plan.times[0]), 0.0)  # published when it took the chunk

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

    def _prefix(self, policy: ChunkPolicy, obs: Observation):
        """The committed prefix for an inference from ``obs`` (under the lock), or ``None``."""
        if self.rtc_prefix is None or not takes_committed(policy):
            return None
        plan = self._plan
        if plan is None:
            return None
        current = self._sent is None or self._refused == self._sent
        if not current and abs(plan.stamp - self._sent) > 1e-6:
            return None  # the driver has not said it took the last chunk yet
        return committed_prefix(plan, obs.stamp, policy.chunk_dt, self._lag + self.rtc_prefix)

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
                prefix = self._prefix(policy, obs)
            try:
                if epoch != epoch_seen:
                    policy.reset()
                    epoch_seen = epoch
                t0 = time.perf_counter()
                if prefix is None:
                    chunk = policy.predict(obs, instruction)
                else:
                    chunk = policy.predict(obs, instruction, prefix)
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
                    self.stats.prefix_steps = 0 if prefix is None else len(prefix)
                    self.stats.prefixed += int(prefix is not None)
                    self._plan_end = chunk.stamp + float(chunk.times[-1])
                    self._sent = float(chunk.stamp)
                    self._lag = max(self._now - obs.stamp, 0.0)  # until the driver's plan says
                elif not ok:
                    self._retry_at = obs.stamp + self.replan_horizon
                self._lock.notify_all()
            if ok and epoch == self._epoch:
                try:
                    self.on_chunk(chunk, latency)
                except Exception:
                    log.exception("publishing a chunk failed")


def takes_committed(policy) -> bool:
    """Whether ``policy.predict`` accepts a third argument, ``committed`` (every
    :class:`ChunkPolicy`; a duck-typed agent may not)."""
    try:
        inspect.signature(policy.predict).bind(None, "", None)
    except (TypeError, ValueError):
        return False
    return True
