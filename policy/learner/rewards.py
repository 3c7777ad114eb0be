"""Rewards and done for chunk transitions: the critic's anchored potential, or sparse success.

**Why anchored.** Summing a critic's step-to-step deltas is not a potential: a critic that rates
moving forward +0.3 and moving back only -0.1 (any imperfect one) pays a policy for going back
and forth. Here the potential of a frame is its progress *against the episode's first frame*
(``critic.progress(..., mode="anchor")``, as VLAC's value is), and the reward of a chunk from
frame ``s`` to frame ``e`` is the potential-based shaping term (Ng et al., 1999)

    r = scale * (gamma^k * Phi[e] - Phi[s]),      k = e - s,

whose sum over an episode telescopes to ``Phi[T] - Phi[0]`` (at gamma = 1): an episode that
returns to where it started earns nothing, however it got there (``tests/policy/learner``
checks that on a back-and-forth episode). Done is the critic's done head over a calibrated
threshold; the chunk that first crosses it ends the episode for the learner and earns +1.

``sparse``: 0 everywhere, +1 and done on the last chunk of a successful episode; a failed
episode's last chunk is a time limit, not a terminal (it bootstraps).

A NaN potential or done probability (a critic failure) excludes the chunk: it is counted in
:attr:`RewardStats.excluded` and never trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class RewardStats:
    """Counts of what the reward labelling did, for ``learner/status`` and the report."""

    labelled: int = 0
    excluded: int = 0  # non-finite potential or done: dropped, never trained on
    terminal: int = 0

    def add(self, other: RewardStats) -> None:
        self.labelled += other.labelled
        self.excluded += other.excluded
        self.terminal += other.terminal


def sparse_rewards(
    starts: np.ndarray, ends: np.ndarray, n_steps: int, success: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, RewardStats]:
    """``(reward, done, keep)`` per chunk ``[starts[i], ends[i]]`` of an episode."""
    reward = np.zeros(len(starts), dtype=np.float32)
    done = np.zeros(len(starts), dtype=bool)
    if success and len(starts):
        last = ends == n_steps - 1
        reward[last] = 1.0
        done[last] = True
    keep = np.ones(len(starts), dtype=bool)
    return reward, done, keep, RewardStats(len(starts), 0, int(done.sum()))


def potential_rewards(
    starts: np.ndarray,
    ends: np.ndarray,
    potential: np.ndarray,
    done_prob: np.ndarray,
    *,
    gamma: float,
    scale: float = 1.0,
    done_threshold: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, RewardStats]:
    """``(reward, done, keep)`` per chunk from the frame potentials ``(T,)`` and done
    probabilities ``(T,)``. Chunks after the first done are not kept (the episode has ended
    for the learner); chunks touching a non-finite value are not kept and are counted."""
    potential = np.asarray(potential, dtype=np.float64)
    done_prob = np.asarray(done_prob, dtype=np.float64)
    k = (ends - starts).astype(np.float64)
    phi_s, phi_e = potential[starts], potential[ends]
    reward = scale * (gamma**k * phi_e - phi_s)
    finite = np.isfinite(phi_s) & np.isfinite(phi_e) & np.isfinite(done_prob[ends])
    crossed = np.where(finite, done_prob[ends] >= done_threshold, False)
    done = np.zeros(len(starts), dtype=bool)
    keep = finite.copy()
    if crossed.any():
        first = int(np.flatnonzero(crossed)[0])
        done[first] = True
        reward[first] += 1.0
        keep[first + 1 :] = False
    stats = RewardStats(int(keep.sum()), int((~finite).sum()), int(done.sum()))
    return np.where(keep, reward, 0.0).astype(np.float32), done, keep, stats
