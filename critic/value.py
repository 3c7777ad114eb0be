"""Progress values from pairwise deltas, and the rewards derived from them.

Why accumulate: a pairwise critic says how much closer to the goal the second observation is,
as a fraction of what was left (VLAC). Chaining those answers gives a progress value in
[0, 1] without the critic ever having to name an absolute number::

    v_{t+1} = v_t + (1 - v_t) * c_t     if c_t >= 0   (c_t of the remaining distance)
    v_{t+1} = v_t + v_t * c_t           if c_t <  0   (c_t of what was achieved)

so ``c = 1`` means "done from here", ``c = -1`` "back to the start", and ``v`` never leaves
[0, 1]. The same convention makes a pair's training label exact (:func:`relative_delta`):
accumulating the labels of consecutive frames reproduces the progress they came from.

Rewards, per step of an episode (``rewards[t]`` is for the transition from step t to t+1; the
last step has no recorded successor and gets 0):

- ``delta``: the critic's delta ``c_t`` itself;
- ``shaping``: ``gamma * V(s_{t+1}) - V(s_t)``, potential-based shaping (Ng et al. 1999),
  which adds no incentive the task's own reward did not have: the optimal policy is the same
  with or without it (tested on a small MDP in ``tests/critic/test_value.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REWARD_MODES = ("delta", "shaping")


def step(value: np.ndarray | float, delta: np.ndarray | float) -> np.ndarray:
    """One accumulation step, elementwise: the progress after a pair whose delta is ``delta``."""
    v = np.clip(np.asarray(value, dtype=np.float64), 0.0, 1.0)
    c = np.clip(np.asarray(delta, dtype=np.float64), -1.0, 1.0)
    return np.clip(np.where(c >= 0, v + (1.0 - v) * c, v + v * c), 0.0, 1.0)


def accumulate(deltas: Sequence[float] | np.ndarray, v0: float = 0.0) -> np.ndarray:
    """Progress values ``(T + 1,)`` from ``T`` consecutive deltas, starting at ``v0``."""
    c = np.asarray(deltas, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(c)):
        bad = int(np.flatnonzero(~np.isfinite(c))[0])
        raise ValueError(f"accumulate: delta {bad} is {c[bad]}, not finite")
    if not 0.0 <= v0 <= 1.0:
        raise ValueError(f"accumulate: v0={v0} must be in [0, 1]")
    out = np.empty(c.size + 1, dtype=np.float64)
    out[0] = v0
    for t, ct in enumerate(c):
        out[t + 1] = step(out[t], ct)
    return out


def relative_delta(p_a: np.ndarray | float, p_b: np.ndarray | float) -> np.ndarray:
    """The delta label of a pair whose true progress goes from ``p_a`` to ``p_b``: the inverse
    of :func:`step` (``step(p_a, relative_delta(p_a, p_b)) == p_b``), in [-1, 1]."""
    a = np.clip(np.asarray(p_a, dtype=np.float64), 0.0, 1.0)
    b = np.clip(np.asarray(p_b, dtype=np.float64), 0.0, 1.0)
    up = (b - a) / np.maximum(1.0 - a, 1e-6)
    down = (b - a) / np.maximum(a, 1e-6)
    return np.clip(np.where(b >= a, up, down), -1.0, 1.0)


def shaped_reward(
    value: np.ndarray | float, next_value: np.ndarray | float, gamma: float
) -> np.ndarray:
    """Potential-based shaping term ``gamma * V(s') - V(s)``."""
    return gamma * np.asarray(next_value, dtype=np.float64) - np.asarray(value, dtype=np.float64)


def rewards_from_deltas(
    deltas: Sequence[float] | np.ndarray, mode: str = "delta", gamma: float = 0.99, v0: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step rewards ``(T + 1,)`` and progress values ``(T + 1,)`` of an episode of
    ``T + 1`` steps whose consecutive deltas are ``deltas``. See the module docstring."""
    if mode not in REWARD_MODES:
        raise ValueError(f"reward mode {mode!r} is not one of {REWARD_MODES}")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma={gamma} must be in (0, 1]")
    c = np.clip(np.asarray(deltas, dtype=np.float64).reshape(-1), -1.0, 1.0)
    values = accumulate(c, v0)
    rewards = np.zeros_like(values)
    if mode == "delta":
        rewards[:-1] = c
    else:
        rewards[:-1] = shaped_reward(values[:-1], values[1:], gamma)
    return rewards, values


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); 0 when either side is constant."""
    a = _rank(np.asarray(x, dtype=np.float64).reshape(-1))
    b = _rank(np.asarray(y, dtype=np.float64).reshape(-1))
    if a.size != b.size:
        raise ValueError(f"spearman: {a.size} and {b.size} values")
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def voc(values: Sequence[float] | np.ndarray) -> float:
    """Value-order correlation: Spearman correlation of a progress curve with time."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return spearman(v, np.arange(v.size))


def _rank(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.arange(x.size, dtype=np.float64)
    # average the ranks of ties
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]
