"""Turns timed action chunks into one joint target per control tick.

A policy computes a chunk from an observation stamped ``t0`` and it arrives some latency
later; step ``i`` is due at ``t0 + times[i]``. The executor drops the steps whose due time has
passed on arrival and never replays them, interpolates linearly between the steps around
``now``, and holds (target ``None``) rather than guess: when nothing is queued or the chunk is
exhausted (no extrapolation), when the joint state is stale, or when the human's set-point
stream has gone silent (watchdog). A policy that goes silent is not cut off mid-chunk: every
step carries its own due time, so its chunk runs out on schedule and the arm holds within one
control period after the last step (the chunk's age was bounded on arrival by
``max_chunk_age`` and its length by ``max_horizon``).

Overlapping policy chunks are blended by one of three rules (``ExecutorConfig.blend``):

- ``latest``: a new chunk replaces the queued steps from its first kept step on; queued steps
  due before that stay, so the target ramps from the old plan into the new one.
- ``temporal_ensemble`` (ACT): the weighted mean of every chunk that has a step at ``now``,
  weight ``exp(-ensemble_decay * i)`` with ``i`` the age rank among those chunks, **oldest
  first (weight 1)**, as in ACT's reference implementation; a small decay trusts the older,
  already-executing plans, which smooths switching.
- ``rtc`` (real-time chunking): the already-executing trajectory is committed for
  ``rtc_prefix`` seconds after a new chunk arrives, then crossfades linearly into the new chunk
  over ``rtc_blend`` seconds. :meth:`ChunkExecutor.plan` is what it will run if no new chunk
  arrives, and :func:`committed_prefix` samples it at the next chunk's step times: the prefix a
  real-time-chunking policy continues (the in-process rollout and the policy node both use it;
  the node hears the plan from the driver on ``driver/plan``).

A new chunk whose first kept step is still in the future while nothing else is executing
holds that step's value until it is due (the safety layer limits how fast the arm gets there).

Human over policy: while an intervention is active only teleop commands run; activating it
flushes the policy queue, so the human command (if one is fresh) takes effect on the very next
tick; policy chunks are refused while it lasts; on release the human queue is dropped and the
policy resumes only with a chunk stamped at or after the release. A teleop command is a
set-point stream: its latest step stands until the next command or the watchdog, so a device
sending at the control rate never flickers to hold between messages.

Buffers are sized from rates: a chunk lives at most ``max_horizon + max_chunk_future`` seconds
after arrival, so at one submission per control tick at most
``ceil((max_horizon + max_chunk_future) * control_hz) + 1`` chunks overlap; beyond that the
oldest is evicted. A chunk has at most ``MAX_CHUNK_STEPS`` steps and the step queue at most
twice that.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np

from robot.registry import did_you_mean
from robot.schema import ActionChunk, ControlSource, RobotSpec, SchemaError

log = logging.getLogger(__name__)

BLEND_RULES = ("latest", "temporal_ensemble", "rtc")
MAX_CHUNK_STEPS = 4096
_QUEUE_CAPACITY = 2 * MAX_CHUNK_STEPS
_LOG_EVERY = 1.0  # s: a repeated refusal of the same kind is logged at WARNING at most this often


@dataclass
class ExecutorConfig:
    """How chunks are blended and when the executor holds. Times in seconds (ROS time).

    Plain types only: hydra registers this dataclass as a structured config.
    """

    blend: str = "latest"
    ensemble_decay: float = 0.01
    rtc_prefix: float = 0.1
    rtc_blend: float = 0.2
    max_obs_age: float = 0.2
    watchdog: float = 0.5
    max_chunk_future: float = 0.05
    max_chunk_age: float = 1.0
    max_horizon: float = 4.0  # refuse chunks whose last step is further than this after the stamp

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the key for a value that cannot work."""
        if self.blend not in BLEND_RULES:
            hint = did_you_mean(self.blend, BLEND_RULES)
            raise ValueError(
                f"ExecutorConfig.blend={self.blend!r} is not one of {list(BLEND_RULES)}{hint}"
            )
        must_be_positive = ("max_obs_age", "watchdog", "max_chunk_age", "max_horizon")
        may_be_zero = ("ensemble_decay", "rtc_prefix", "rtc_blend", "max_chunk_future")
        for key in must_be_positive + may_be_zero:
            value = getattr(self, key)
            ok = isinstance(value, int | float) and math.isfinite(value)
            ok = ok and (value > 0 if key in must_be_positive else value >= 0)
            if not ok:
                relation = "> 0" if key in must_be_positive else ">= 0"
                raise ValueError(
                    f"ExecutorConfig.{key}={value!r} must be a finite number {relation}"
                )


@dataclass(frozen=True)
class Submission:
    """Whether a chunk was queued; ``reason`` says why not (or what was dropped)."""

    accepted: bool
    reason: str
    dropped_steps: int = 0


@dataclass(frozen=True, eq=False)
class ExecutorOutput:
    """This tick's target ``(D,)`` in spec joint order, or ``None`` with source HOLD and why."""

    target: np.ndarray | None
    source: ControlSource
    reason: str = ""


@dataclass(eq=False)
class _Chunk:
    """The kept (not yet due) steps of one accepted chunk, in spec joint order."""

    due: np.ndarray  # (k,) absolute ROS times, strictly increasing
    pos: np.ndarray  # (k, D)
    source: ControlSource
    stamp: float
    arrival: float
    seq: int
    takeover_start: float = 0.0  # rtc: end of the committed prefix of the previous trajectory
    takeover_end: float = 0.0  # rtc: end of the crossfade

    @property
    def end(self) -> float:
        return float(self.due[-1])

    def covers(self, t: float) -> bool:
        return bool(self.due[0] <= t <= self.due[-1])

    def at(self, t: float) -> np.ndarray:
        """Linear interpolation at ``t``; only valid when :meth:`covers` ``t``."""
        return _interpolate(self.due, self.pos, t)

    def takeover_weight(self, t: float) -> float:
        if t < self.takeover_start:
            return 0.0
        if t >= self.takeover_end:
            return 1.0
        return (t - self.takeover_start) / (self.takeover_end - self.takeover_start)


def _interpolate(due: np.ndarray, pos: np.ndarray, t: float) -> np.ndarray:
    i = int(np.searchsorted(due, t, side="right"))  # due[i-1] <= t < due[i]
    if i >= len(due):
        return pos[-1].copy()
    if i == 0:
        return pos[0].copy()
    w = (t - due[i - 1]) / (due[i] - due[i - 1])
    return pos[i - 1] + w * (pos[i] - pos[i - 1])


class _StepQueue:
    """Steps in time order; a newer chunk replaces the queue from its first step on.

    ``hold_last``: the last step stands after its due time (teleop set-points) instead of
    the queue being exhausted (policy plans).
    """

    def __init__(self, dof: int, *, hold_last: bool) -> None:
        self._dof = dof
        self._hold_last = hold_last
        self.clear()

    def clear(self) -> None:
        self._due = np.empty(0)
        self._pos = np.empty((0, self._dof))
        self._src = np.empty(0, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self._due)

    def fits(self, chunk: _Chunk) -> bool:
        return int(np.count_nonzero(self._due < chunk.due[0])) + len(chunk.due) <= _QUEUE_CAPACITY

    def add(self, chunk: _Chunk) -> None:
        keep = self._due < chunk.due[0]
        self._due = np.concatenate([self._due[keep], chunk.due])
        self._pos = np.concatenate([self._pos[keep], chunk.pos])
        src = np.full(len(chunk.due), int(chunk.source), dtype=np.uint8)
        self._src = np.concatenate([self._src[keep], src])

    def prune(self, now: float) -> None:
        """Drop steps before the last one due by ``now``; that one anchors the interpolation."""
        n = len(self._due)
        if n == 0:
            return
        due_or_past = int(np.searchsorted(self._due, now, side="right"))
        if due_or_past == n and self._due[-1] < now and not self._hold_last:
            self.clear()
            return
        drop = max(due_or_past - 1, 0)
        if drop:
            self._due, self._pos, self._src = self._due[drop:], self._pos[drop:], self._src[drop:]

    def value(self, t: float) -> tuple[np.ndarray | None, ControlSource | None]:
        n = len(self._due)
        if n == 0:
            return None, None
        i = int(np.searchsorted(self._due, t, side="right"))
        if i == 0:  # before the first step: hold its value until it is due
            return self._pos[0].copy(), ControlSource(int(self._src[0]))
        if i == n:
            if t <= self._due[-1] or self._hold_last:
                return self._pos[-1].copy(), ControlSource(int(self._src[-1]))
            return None, None  # exhausted: never extrapolate
        w = (t - self._due[i - 1]) / (self._due[i] - self._due[i - 1])
        target = self._pos[i - 1] + w * (self._pos[i] - self._pos[i - 1])
        return target, ControlSource(int(self._src[i]))

    def end_time(self) -> float | None:
        return float(self._due[-1]) if len(self._due) else None


class _ChunkList:
    """Overlapping chunks for temporal ensembling or real-time chunking, oldest first."""

    def __init__(self, max_chunks: int, *, rule: str, decay: float) -> None:
        self._max_chunks = max_chunks
        self._rule = rule
        self._decay = decay
        self._chunks: list[_Chunk] = []

    def clear(self) -> None:
        self._chunks.clear()

    def __len__(self) -> int:
        return len(self._chunks)

    def fits(self, chunk: _Chunk) -> bool:
        return True  # full lists evict their oldest chunk

    def add(self, chunk: _Chunk) -> None:
        self._chunks.append(chunk)
        if len(self._chunks) > self._max_chunks:
            evicted = self._chunks.pop(0)
            log.debug(
                "chunk buffer full (%d): evicted chunk stamped %.3f",
                self._max_chunks,
                evicted.stamp,
            )

    def prune(self, now: float) -> None:
        chunks = [c for c in self._chunks if c.end >= now]
        if self._rule == "rtc":
            # Chunks older than the newest one that has fully taken over no longer matter.
            for k in range(len(chunks) - 1, 0, -1):
                if chunks[k].takeover_end <= now and chunks[k].due[0] <= now:
                    chunks = chunks[k:]
                    break
        self._chunks = chunks

    def value(self, t: float) -> tuple[np.ndarray | None, ControlSource | None]:
        if self._rule == "rtc":
            return self._rtc_value(t)
        return self._ensemble_value(t)

    def _ensemble_value(self, t: float) -> tuple[np.ndarray | None, ControlSource | None]:
        active = sorted((c for c in self._chunks if c.covers(t)), key=lambda c: (c.stamp, c.seq))
        if not active:
            pending = [c for c in self._chunks if c.due[0] > t]
            if not pending:
                return None, None
            first = min(pending, key=lambda c: (c.due[0], -c.seq))
            return first.pos[0].copy(), first.source
        weights = np.exp(-self._decay * np.arange(len(active)))  # oldest first, weight 1
        values = np.stack([c.at(t) for c in active])
        return weights @ values / weights.sum(), active[-1].source

    def _rtc_value(self, t: float) -> tuple[np.ndarray | None, ControlSource | None]:
        target: np.ndarray | None = None
        source: ControlSource | None = None
        for c in self._chunks:
            started, ended = c.due[0] <= t, t > c.end
            if target is None:  # nothing is executing: this chunk governs at once
                if not ended:
                    target = c.at(t) if started else c.pos[0].copy()
                    source = c.source
                continue
            w = c.takeover_weight(t)
            if w <= 0.0 or not started:
                continue  # committed prefix, or the new chunk has not started yet
            if ended:
                if w >= 1.0:
                    target, source = None, None  # the plan that took over is exhausted
                continue
            target = (1.0 - w) * target + w * c.at(t)
            source = c.source
        return target, source

    def end_time(self) -> float | None:
        if not self._chunks:
            return None
        if self._rule == "rtc":
            return self._chunks[-1].end
        return max(c.end for c in self._chunks)


class ChunkExecutor:
    """Queues action chunks from the policy and the human and yields one target per tick.

    Times are ROS time in seconds; ``now`` is passed in, never read from a clock, so the same
    code runs in real time, in lockstep simulation and in tests.
    """

    def __init__(self, spec: RobotSpec, config: ExecutorConfig) -> None:
        config.validate()
        self.spec = spec
        self.config = config
        self._dt = spec.control_period
        self.max_chunks = (
            math.ceil((config.max_horizon + config.max_chunk_future) * spec.control_hz) + 1
        )
        self._policy: _StepQueue | _ChunkList
        if config.blend == "latest":
            self._policy = _StepQueue(spec.dof, hold_last=False)
        else:
            self._policy = _ChunkList(
                self.max_chunks, rule=config.blend, decay=config.ensemble_decay
            )
        self._human = _StepQueue(spec.dof, hold_last=True)
        self._seq = itertools.count()
        self._intervention = False
        self._released_at = -math.inf
        self._last_logged: dict[str, float] = {}
        self.clear()

    # ------------------------------------------------------------------ inputs

    @property
    def intervention_active(self) -> bool:
        return self._intervention

    def clear(self) -> None:
        """Forget queued chunks, source liveness and the observation stamp (at start/reset)."""
        self._policy.clear()
        self._human.clear()
        self._obs_stamp: float | None = None
        self._last_policy_submit: float | None = None
        self._last_human_submit: float | None = None
        self._policy_end: float | None = None
        self._newest_stamp: float | None = None  # stamp of the newest accepted policy chunk

    def observe(self, stamp: float) -> None:
        """Note the stamp of the latest joint state; an older or non-finite stamp is ignored."""
        if not math.isfinite(stamp):
            log.warning("observation stamp %r ignored", stamp)
            return
        if self._obs_stamp is None or stamp > self._obs_stamp:
            self._obs_stamp = float(stamp)

    def submit(self, chunk: ActionChunk, now: float) -> Submission:
        """Queue a policy (or scripted) chunk, or refuse it with the reason."""
        if chunk.source not in (ControlSource.POLICY, ControlSource.SCRIPT):
            return self._refuse(
                "source",
                f"chunk source {chunk.source.name} cannot be submitted as a policy chunk; "
                "human commands go through submit_teleop()",
                now,
            )
        if self._intervention:
            return self._refuse(
                "intervention",
                "intervention active: policy chunks are refused until it is released",
                now,
            )
        if chunk.stamp < self._released_at:
            return self._refuse(
                "before_release",
                f"chunk stamped t={chunk.stamp:.3f} is from before the intervention was released "
                f"at t={self._released_at:.3f}; only chunks computed after release are executed",
                now,
            )
        prepared, reason, dropped = self._prepare(chunk, chunk.source, now, keep_latest_past=False)
        if prepared is None:
            return self._refuse(reason.split(":")[0], reason, now)
        self._policy.prune(now)
        if not self._policy.fits(prepared):
            return self._refuse("full", f"policy step queue is full ({_QUEUE_CAPACITY} steps)", now)
        if self.config.blend == "rtc" and len(self._policy):
            prepared.takeover_start = now + self.config.rtc_prefix
            prepared.takeover_end = prepared.takeover_start + self.config.rtc_blend
        self._policy.add(prepared)
        self._last_policy_submit = now
        self._policy_end = self._policy.end_time()
        self._newest_stamp = float(chunk.stamp)
        return Submission(True, reason, dropped)

    def submit_teleop(self, chunk: ActionChunk, now: float) -> Submission:
        """Queue a human command (recorded as HUMAN whatever ``chunk.source`` says).

        Accepted whether or not an intervention is active, so a command that arrives just
        before the intervention flag takes effect at once; it only runs while one is active.
        """
        prepared, reason, dropped = self._prepare(
            chunk, ControlSource.HUMAN, now, keep_latest_past=True
        )
        if prepared is None:
            return self._refuse("teleop " + reason.split(":")[0], reason, now)
        self._human.prune(now)
        if not self._human.fits(prepared):
            return self._refuse("full", f"human step queue is full ({_QUEUE_CAPACITY} steps)", now)
        self._human.add(prepared)
        self._last_human_submit = now
        if not self._intervention:
            reason = (reason + "; " if reason else "") + "queued; runs only during an intervention"
        return Submission(True, reason, dropped)

    def set_intervention(self, active: bool, now: float) -> None:
        """Hand control to the human (flushing the policy queue) or back to the policy.

        Repeating the current state changes nothing (the flag may be re-published).
        """
        active = bool(active)
        if active == self._intervention:
            return
        self._intervention = active
        if active:
            self._policy.clear()
            self._policy_end = None
            self._newest_stamp = None
            log.warning("t=%.3f: intervention active; policy queue flushed, human in control", now)
        else:
            self._human.clear()
            self._released_at = now
            log.warning(
                "t=%.3f: intervention released; policy resumes with chunks stamped from now on",
                now,
            )

    # ------------------------------------------------------------------ outputs

    def next_action(self, now: float) -> ExecutorOutput:
        """The target for the tick at ``now``, or a hold with the reason."""
        self._policy.prune(now)
        self._human.prune(now)
        cfg = self.config
        if self._obs_stamp is None:
            return _hold("no observation yet")
        obs_age = now - self._obs_stamp
        if obs_age > cfg.max_obs_age:
            return _hold(
                f"observation stale: {obs_age:.3f} s old > max_obs_age {cfg.max_obs_age:.3f} s"
            )
        if self._intervention:
            if self._last_human_submit is None or not len(self._human):
                return _hold("intervention active but no human command yet")
            silent = now - self._last_human_submit
            if silent > cfg.watchdog:
                return _hold(
                    f"watchdog: no human command for {silent:.3f} s > {cfg.watchdog:.3f} s"
                )
            target, _ = self._human.value(now)
            if target is None:
                return _hold("intervention active but no human command queued")
            return ExecutorOutput(target, ControlSource.HUMAN, "")
        target, source = self._policy.value(now)
        if target is None or source is None or self._last_policy_submit is None:
            if self._policy_end is not None and now > self._policy_end:
                return _hold(f"policy chunks exhausted at t={self._policy_end:.3f}")
            return _hold("no policy chunk queued")
        return ExecutorOutput(target, source, "")

    def remaining_horizon(self, now: float) -> float:
        """Seconds of queued policy actions left after ``now`` (0 during an intervention)."""
        if self._intervention:
            return 0.0
        end = self._policy.end_time()
        return max(0.0, end - now) if end is not None else 0.0

    def committed_actions(self, now: float, duration: float) -> np.ndarray:
        """The policy targets it will execute at ``now, now + dt, ...`` up to ``now + duration``.

        ``(k, D)``, assuming no new chunk arrives; it stops early where the plan ends. A
        real-time-chunking policy conditions its next chunk on these (the committed prefix).
        """
        if self._intervention or not duration >= 0:
            return np.empty((0, self.spec.dof))
        n = math.floor(duration / self._dt + 1e-9) + 1
        rows = []
        for k in range(n):
            target, _ = self._policy.value(now + k * self._dt)
            if target is None:
                break
            rows.append(target)
        return np.asarray(rows, dtype=np.float64).reshape(-1, self.spec.dof)

    def plan(self, now: float) -> ActionChunk | None:
        """What :meth:`committed_actions` will run from ``now`` to the end of the queued plan,
        one target per control period, or ``None`` when no policy plan is queued.

        Stamped with the observation stamp of the newest policy chunk it holds (its first step
        is due at ``now``), so whoever computed that chunk can tell the plan already holds it;
        ``source`` is POLICY, joints in spec order. This is what the driver publishes on
        ``driver/plan``.
        """
        end = self._policy.end_time()
        if self._intervention or end is None or end < now or self._newest_stamp is None:
            return None
        rows = self.committed_actions(now, end - now)
        if not len(rows):
            return None
        stamp = self._newest_stamp
        return ActionChunk(
            stamp=stamp,
            joint_names=self.spec.joint_names,
            positions=rows,
            times=(now - stamp) + self._dt * np.arange(len(rows)),
            source=ControlSource.POLICY,
        )

    # ------------------------------------------------------------------ helpers

    def _prepare(
        self, chunk: ActionChunk, source: ControlSource, now: float, *, keep_latest_past: bool
    ) -> tuple[_Chunk | None, str, int]:
        """Map ``chunk`` to spec joint order and drop past steps; or say why it is refused."""
        spec, cfg = self.spec, self.config
        names = chunk.joint_names
        try:
            index = spec.joint_index(names)
        except SchemaError:
            unknown = [n for n in names if n not in spec.joint_names]
            return (
                None,
                f"unknown joints: {unknown}; robot '{spec.name}' has {list(spec.joint_names)}",
                0,
            )
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            return None, f"duplicate joints: {dup}", 0
        missing = [n for n in spec.joint_names if n not in names]
        if missing:
            return None, f"missing joints: {missing}; a chunk must command every joint", 0
        bad = ~np.isfinite(chunk.positions)
        if bad.any():
            cols = np.flatnonzero(bad.any(axis=0))
            rows = np.flatnonzero(bad.any(axis=1))
            joints = [names[c] for c in cols]
            return (
                None,
                f"nan: non-finite positions for joints {joints} (first at step {rows[0]}); "
                "whole chunk refused",
                0,
            )
        ahead = chunk.stamp - now
        if ahead > cfg.max_chunk_future:
            return (
                None,
                f"future stamp: t={chunk.stamp:.3f} is {ahead:.3f} s ahead of now "
                f"> max_chunk_future {cfg.max_chunk_future:.3f} s (clocks disagree?)",
                0,
            )
        if -ahead > cfg.max_chunk_age:
            return (
                None,
                f"too old: stamped t={chunk.stamp:.3f}, {-ahead:.3f} s ago "
                f"> max_chunk_age {cfg.max_chunk_age:.3f} s",
                0,
            )
        if chunk.times[-1] > cfg.max_horizon:
            return (
                None,
                f"too long: last step {chunk.times[-1]:.3f} s after the stamp "
                f"> max_horizon {cfg.max_horizon:.3f} s",
                0,
            )
        if chunk.horizon > MAX_CHUNK_STEPS:
            return None, f"too many steps: {chunk.horizon} > {MAX_CHUNK_STEPS}", 0
        due = chunk.due
        keep = due >= now
        if keep_latest_past and not keep.all():
            keep[int(np.count_nonzero(~keep)) - 1] = True  # the latest set-point stands
        kept = int(np.count_nonzero(keep))
        dropped = chunk.horizon - kept
        if kept == 0:
            return (
                None,
                f"stale: all {chunk.horizon} steps are past due (last due t={due[-1]:.3f}, "
                f"now t={now:.3f})",
                dropped,
            )
        positions = np.empty((chunk.horizon, spec.dof))
        positions[:, index] = chunk.positions
        prepared = _Chunk(
            due=due[keep].copy(),
            pos=positions[keep],
            source=source,
            stamp=float(chunk.stamp),
            arrival=float(now),
            seq=next(self._seq),
        )
        reason = f"dropped {dropped} past-due step(s)" if dropped else ""
        return prepared, reason, dropped

    def _refuse(self, kind: str, reason: str, now: float) -> Submission:
        last = self._last_logged.get(kind)
        if last is None or not (0.0 <= now - last < _LOG_EVERY):
            self._last_logged[kind] = now
            log.warning("chunk refused at t=%.3f: %s", now, reason)
        else:
            log.debug("chunk refused at t=%.3f: %s", now, reason)
        return Submission(False, reason, 0)


def committed_prefix(
    plan: ActionChunk | None, stamp: float, chunk_dt: float, lead: float
) -> np.ndarray | None:
    """The targets ``plan`` (:meth:`ChunkExecutor.plan`) runs at ``stamp + chunk_dt * (1..k)``
    whatever the next chunk says, ``k = ceil(lead / chunk_dt)`` (``lead``: expected latency +
    the executor's committed ``rtc_prefix``): the prefix a real-time-chunking policy continues.

    ``(k', D)`` with ``k' <= k`` where the plan ends first; ``None`` when there is nothing to
    continue (no plan, ``k = 0``, the plan ends before the first step, or starts after it: a
    plan made after that step was due cannot say what it was).
    """
    k = math.ceil(lead / chunk_dt - 1e-9)
    if plan is None or k <= 0:
        return None
    due = plan.due
    t = stamp + chunk_dt * np.arange(1, k + 1)
    if t[0] < due[0] - 1e-6:
        return None
    t = t[t <= due[-1] + 1e-6]
    if not len(t):
        return None
    t = np.minimum(t, due[-1])
    return np.stack(
        [np.interp(t, due, plan.positions[:, j]) for j in range(plan.positions.shape[1])], axis=1
    )


def _hold(reason: str) -> ExecutorOutput:
    return ExecutorOutput(None, ControlSource.HOLD, reason)
