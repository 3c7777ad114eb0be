"""Replay from the episode store: chunk transitions, two bounded buffers, RLPD sampling.

**Transitions at chunk granularity** (Q-chunking): a transition starts at a recorded step ``s``
and covers the next ``chunk_steps`` steps the driver actually executed (the store's ``action``:
what was sent, after safety), ending at the observation ``e = s + k``. A transition never spans
a change of control source: when the person takes over mid-chunk, it is cut there (``k <
chunk_steps``), the missing steps are masked (``mask``) and it bootstraps from the takeover's
observation with ``gamma^k``. Steps the arm held (``HOLD``) never start a transition.

**Two buffers** (RLPD, HIL-SERL): the *prior* buffer holds demonstrations and every human
intervention; the *online* buffer holds the policy's own chunks and, as HIL-SERL does, the
interventions too. A batch draws ``prior_ratio`` of its rows from the prior buffer (0.5: the
symmetric sampling of RLPD), the rest from online; while one is empty the other fills the
batch. Each buffer is a ring of at most :meth:`LearnerConfig.buffer_capacity` transitions
(robot time at the store's rate), so memory is bounded whatever runs for how long.

**What a transition holds**: the frozen base's features and base chunk at both ends
(:mod:`policy.learner.features`; frames are encoded once, at the model's input size, then
dropped), the joint positions at both ends, the executed actions, reward, done, discount
``gamma^k * (1 - done)``, the control source and an imitation weight (interventions weigh
``intervention_weight``).

:class:`StoreFollower` reads committed episodes only, picking up new ones as they commit (a
local store or an fsspec URL several robots write to); an uncommitted episode is invisible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from policy.learner.config import LearnerConfig, LearnerError, RewardSource
from policy.learner.features import FrozenBase
from policy.learner.rewards import RewardStats, potential_rewards, sparse_rewards
from robot.schema import ControlSource

PRIOR_SOURCES = (int(ControlSource.HUMAN), int(ControlSource.SCRIPT))


def chunk_segments(control_source: np.ndarray, chunk_steps: int) -> tuple[np.ndarray, ...]:
    """``(starts, ends, sources, skipped)``: transitions ``[start, end]`` of at most
    ``chunk_steps`` steps, each of one control source; ``skipped``: held steps not started."""
    src = np.asarray(control_source).astype(np.int64)
    n = len(src)
    starts, ends, sources = [], [], []
    skipped = 0
    t = 0
    while t < n - 1:
        if src[t] == int(ControlSource.HOLD):
            skipped += 1
            t += 1
            continue
        e = t + 1
        while e < min(t + chunk_steps, n - 1) and src[e] == src[t]:
            e += 1
        starts.append(t)
        ends.append(e)
        sources.append(src[t])
        t = e
    as_int = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return as_int(starts), as_int(ends), as_int(sources), skipped


@dataclass
class Transitions:
    """A batch of transitions, column-wise (numpy, float32 unless noted)."""

    feat: np.ndarray  # (N, F)
    next_feat: np.ndarray  # (N, F)
    q: np.ndarray  # (N, D) joint positions at the start
    next_q: np.ndarray  # (N, D)
    base: np.ndarray  # (N, H, D) the frozen base's chunk at the start
    next_base: np.ndarray  # (N, H, D)
    actions: np.ndarray  # (N, h, D) executed, the masked tail repeats the last executed step
    mask: np.ndarray  # (N, h) 1 for executed steps
    reward: np.ndarray  # (N,)
    discount: np.ndarray  # (N,) gamma^k * (1 - done)
    done: np.ndarray  # (N,) bool
    source: np.ndarray  # (N,) uint8 ControlSource of the chunk
    weight: np.ndarray  # (N,) imitation weight

    FIELDS: ClassVar[tuple[str, ...]] = (
        "feat",
        "next_feat",
        "q",
        "next_q",
        "base",
        "next_base",
        "actions",
        "mask",
        "reward",
        "discount",
        "done",
        "source",
        "weight",
    )

    def __len__(self) -> int:
        return len(self.reward)

    def take(self, index: np.ndarray) -> Transitions:
        return Transitions(**{f: getattr(self, f)[index] for f in self.FIELDS})

    @classmethod
    def concat(cls, parts: list[Transitions]) -> Transitions:
        return cls(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in cls.FIELDS})


@dataclass
class EpisodeReport:
    """What building one episode's transitions found."""

    episode_id: str
    transitions: int = 0
    prior: int = 0
    online: int = 0
    held_skipped: int = 0
    steps: int = 0
    human_steps: int = 0  # recorded steps a person drove
    rewards: RewardStats = field(default_factory=RewardStats)

    @classmethod
    def of(cls, episode) -> EpisodeReport:
        """An empty report of ``episode`` with its step counts."""
        human = np.asarray(episode.control_source) == int(ControlSource.HUMAN)
        return cls(episode.id, steps=int(episode.n_steps), human_steps=int(human.sum()))


def episode_transitions(
    episode,
    base: FrozenBase,
    config: LearnerConfig,
    *,
    potential: np.ndarray | None = None,
    done_prob: np.ndarray | None = None,
    batch_size: int = 64,
) -> tuple[Transitions, EpisodeReport]:
    """The chunk transitions of one committed episode (an :class:`episodes.store.Episode`).

    ``potential``/``done_prob`` ``(T,)``: the critic's anchored progress and done per frame
    (``config.reward == critic``); a sparse reward needs neither."""
    report = EpisodeReport.of(episode)
    if tuple(episode_joint_names(episode, base)) != base.joint_names:
        raise LearnerError(f"episode {episode.id}: joints do not match the policy's")
    starts, ends, sources, report.held_skipped = chunk_segments(
        episode.control_source, config.chunk_steps
    )
    n = episode.n_steps
    if config.reward == RewardSource.critic:
        if potential is None or done_prob is None:
            raise LearnerError(f"episode {episode.id}: learner.reward=critic needs its potential")
        if len(potential) != n or len(done_prob) != n:
            raise LearnerError(f"episode {episode.id}: {len(potential)} potentials for {n} steps")
        reward, done, keep, stats = potential_rewards(
            starts,
            ends,
            potential,
            done_prob,
            gamma=config.gamma,
            scale=config.shaping_scale,
            done_threshold=config.done_threshold,
        )
    else:
        reward, done, keep, stats = sparse_rewards(starts, ends, n, bool(episode.success))
    report.rewards = stats
    starts, ends, sources = starts[keep], ends[keep], sources[keep]
    reward, done = reward[keep], done[keep]
    if not len(starts):
        return _empty(base, config), report
    frames = np.unique(np.concatenate([starts, ends]))
    feats, chunks = _encode(episode, base, frames, batch_size)
    where = {int(f): i for i, f in enumerate(frames)}
    si = np.array([where[int(s)] for s in starts])
    ei = np.array([where[int(e)] for e in ends])
    h = config.chunk_steps
    steps = np.minimum(starts[:, None] + np.arange(h)[None], (ends - 1)[:, None])
    mask = (starts[:, None] + np.arange(h)[None]) < ends[:, None]
    k = (ends - starts).astype(np.float64)
    human = sources == int(ControlSource.HUMAN)
    out = Transitions(
        feat=feats[si],
        next_feat=feats[ei],
        q=episode.joint_pos[starts].astype(np.float32),
        next_q=episode.joint_pos[ends].astype(np.float32),
        base=chunks[si].astype(np.float32),
        next_base=chunks[ei].astype(np.float32),
        actions=episode.action[steps].astype(np.float32),
        mask=mask.astype(np.float32),
        reward=reward.astype(np.float32),
        discount=(config.gamma**k * (1.0 - done)).astype(np.float32),
        done=done,
        source=sources.astype(np.uint8),
        weight=np.where(human, config.intervention_weight, 1.0).astype(np.float32),
    )
    report.transitions = len(out)
    report.prior = int(np.isin(sources, PRIOR_SOURCES).sum())
    report.online = int(((sources == int(ControlSource.POLICY)) | human).sum())
    return out, report


def episode_joint_names(episode, base: FrozenBase) -> tuple[str, ...]:
    """The episode's joint names where it carries them, else the policy's (checked by width)."""
    names = getattr(episode, "joint_names", None)
    if names:
        return tuple(names)
    if episode.action.shape[1] != len(base.joint_names):
        raise LearnerError(
            f"episode {episode.id}: {episode.action.shape[1]} joints, the policy drives "
            f"{len(base.joint_names)}"
        )
    return base.joint_names


def _encode(episode, base: FrozenBase, frames: np.ndarray, batch_size: int):
    feats, chunks = [], []
    for s in range(0, len(frames), batch_size):
        idx = frames[s : s + batch_size]
        images = {c: np.asarray(episode.images[c][idx]) for c in base.cameras}
        f, c = base.encode(images, episode.joint_pos[idx], [episode.instruction] * len(idx))
        feats.append(f)
        chunks.append(c)
    return np.concatenate(feats), np.concatenate(chunks)


def _empty(base: FrozenBase, config: LearnerConfig) -> Transitions:
    D, H, h, F = len(base.joint_names), base.horizon, config.chunk_steps, base.feature_dim
    z = lambda *s: np.zeros(s, dtype=np.float32)  # noqa: E731
    return Transitions(
        z(0, F),
        z(0, F),
        z(0, D),
        z(0, D),
        z(0, H, D),
        z(0, H, D),
        z(0, h, D),
        z(0, h),
        z(0),
        z(0),
        np.zeros(0, bool),
        np.zeros(0, np.uint8),
        z(0),
    )


class ReplayBuffer:
    """A ring of at most ``capacity`` transitions; the oldest are overwritten first."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise LearnerError(f"replay buffer capacity {capacity} must be >= 1")
        self.capacity = capacity
        self._data: Transitions | None = None
        self._next = 0
        self.size = 0
        self.added = 0

    def add(self, batch: Transitions) -> None:
        if not len(batch):
            return
        if self._data is None:
            self._data = Transitions(
                **{
                    f: np.zeros(
                        (self.capacity, *getattr(batch, f).shape[1:]), getattr(batch, f).dtype
                    )
                    for f in Transitions.FIELDS
                }
            )
        n = len(batch)
        if n > self.capacity:
            batch, n = batch.take(np.arange(n - self.capacity, n)), self.capacity
        idx = (self._next + np.arange(n)) % self.capacity
        for f in Transitions.FIELDS:
            getattr(self._data, f)[idx] = getattr(batch, f)
        self._next = int((self._next + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)
        self.added += n

    def sample(self, n: int, rng: np.random.Generator) -> Transitions:
        if self.size == 0 or self._data is None:
            raise LearnerError("sampling from an empty replay buffer")
        return self._data.take(rng.integers(0, self.size, size=n))

    def __len__(self) -> int:
        return self.size


class ReplayBuffers:
    """The prior and online buffers, and RLPD's symmetric sampling between them."""

    def __init__(self, config: LearnerConfig, fps: float) -> None:
        capacity = config.buffer_capacity(fps)
        self.config = config
        self.prior = ReplayBuffer(capacity)
        self.online = ReplayBuffer(capacity)

    def add(self, batch: Transitions) -> None:
        """Demonstration/scripted chunks to prior; policy chunks to online; human chunks to
        both (HIL-SERL)."""
        src = batch.source.astype(np.int64)
        human = src == int(ControlSource.HUMAN)
        self.prior.add(batch.take(np.flatnonzero(np.isin(src, PRIOR_SOURCES))))
        self.online.add(batch.take(np.flatnonzero((src == int(ControlSource.POLICY)) | human)))

    def split(self, n: int) -> tuple[int, int]:
        """Rows from prior and online in a batch of ``n``."""
        if not len(self.online):
            return n, 0
        if not len(self.prior):
            return 0, n
        k = round(n * self.config.prior_ratio)
        return k, n - k

    def sample(self, n: int, rng: np.random.Generator) -> tuple[Transitions, np.ndarray]:
        """A batch and its ``is_prior`` column (the imitation term applies to those rows)."""
        k_prior, k_online = self.split(n)
        parts, flags = [], []
        if k_prior:
            parts.append(self.prior.sample(k_prior, rng))
            flags.append(np.ones(k_prior, bool))
        if k_online:
            parts.append(self.online.sample(k_online, rng))
            flags.append(np.zeros(k_online, bool))
        return Transitions.concat(parts), np.concatenate(flags)

    def __len__(self) -> int:
        return len(self.prior) + len(self.online)


class StoreFollower:
    """The committed episodes of a store, as they commit; each is returned once by
    :meth:`poll` (an uncommitted episode, still being written or left by a crash, is never)."""

    def __init__(self, url: str, seen: Iterable[str] = ()) -> None:
        self.url = url
        self.seen: set[str] = set(seen)

    def poll(self, limit: int = 0) -> list:
        from episodes.store import EpisodeStore

        store = EpisodeStore.open(self.url)
        new = [e for e in store.episode_ids() if e not in self.seen]
        if limit:
            new = new[:limit]
        out = []
        for eid in new:
            out.append(store.read(eid, verify=False))
            self.seen.add(eid)
        return out
