"""Progress accumulation, pair labels, rewards and shaping (critic.value)."""

from __future__ import annotations

import numpy as np
import pytest

from critic.value import (
    accumulate,
    relative_delta,
    rewards_from_deltas,
    shaped_reward,
    spearman,
    step,
    voc,
)


def test_accumulate_follows_vlac_rule():
    # +50% of the remaining from 0 -> 0.5; +50% -> 0.75; -20% of achieved -> 0.6; +100% -> 1
    v = accumulate([0.5, 0.5, -0.2, 1.0])
    np.testing.assert_allclose(v, [0.0, 0.5, 0.75, 0.6, 1.0])


def test_accumulate_stays_in_unit_interval():
    rng = np.random.default_rng(0)
    v = accumulate(rng.uniform(-1, 1, 500), v0=0.3)
    assert v.min() >= 0.0 and v.max() <= 1.0
    assert accumulate([-1.0], v0=0.7)[-1] == 0.0  # "back to the start"


def test_relative_delta_inverts_step():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0, 1, 1000), rng.uniform(0, 1, 1000)
    d = relative_delta(a, b)
    assert np.all(np.abs(d) <= 1.0)
    np.testing.assert_allclose(step(a, d), b, atol=1e-9)
    assert np.all(np.sign(d) == np.sign(b - a))


def test_labels_of_consecutive_frames_chain_back_to_progress():
    p = np.linspace(0, 1, 30) ** 1.5
    v = accumulate(relative_delta(p[:-1], p[1:]))
    np.testing.assert_allclose(v, p, atol=1e-9)


def test_accumulate_refuses_nan_naming_the_step():
    with pytest.raises(ValueError, match="delta 2"):
        accumulate([0.1, 0.2, float("nan")])


def test_rewards_delta_mode():
    d = [0.2, -0.1, 0.5]
    r, v = rewards_from_deltas(d, "delta")
    np.testing.assert_allclose(r, [0.2, -0.1, 0.5, 0.0])
    np.testing.assert_allclose(v, accumulate(d))


def test_rewards_shaping_mode_telescopes():
    d = np.random.default_rng(2).uniform(-0.5, 0.8, 40)
    r, v = rewards_from_deltas(d, "shaping", gamma=0.9)
    np.testing.assert_allclose(r[:-1], 0.9 * v[1:] - v[:-1])
    assert r[-1] == 0.0
    r1, v1 = rewards_from_deltas(d, "shaping", gamma=1.0)
    assert r1.sum() == pytest.approx(v1[-1] - v1[0])


def test_reward_mode_and_gamma_are_checked():
    with pytest.raises(ValueError, match="reward mode 'sparse'"):
        rewards_from_deltas([0.1], "sparse")
    with pytest.raises(ValueError, match="gamma=0"):
        rewards_from_deltas([0.1], "shaping", gamma=0.0)


def _optimal_policy(P: np.ndarray, R: np.ndarray, gamma: float, terminal: np.ndarray):
    """Value iteration on an MDP with P[s, a, s'] and R[s, a, s']; terminal states absorb
    with zero reward."""
    n_s = P.shape[0]
    V = np.zeros(n_s)
    for _ in range(2000):
        Q = (P * (R + gamma * np.where(terminal, 0.0, V)[None, None, :])).sum(-1)
        V_new = np.where(terminal, 0.0, Q.max(1))
        if np.max(np.abs(V_new - V)) < 1e-12:
            break
        V = V_new
    return Q.argmax(1), Q


def _random_mdp(seed: int, n_s: int = 7, n_a: int = 3):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(n_s) * 0.5, size=(n_s, n_a))
    R = rng.normal(size=(n_s, n_a, n_s))
    terminal = np.zeros(n_s, dtype=bool)
    terminal[-1] = True  # a goal state
    return P, R, terminal


@pytest.mark.parametrize("seed", range(5))
def test_potential_shaping_leaves_the_optimal_policy_unchanged(seed):
    gamma = 0.9
    P, R, terminal = _random_mdp(seed)
    phi = np.random.default_rng(100 + seed).uniform(0, 1, P.shape[0])  # a progress value
    phi_next = np.where(terminal, 0.0, phi)  # the potential of an absorbing state is 0
    R_shaped = R + shaped_reward(phi[:, None, None], phi_next[None, None, :], gamma)
    pi, Q = _optimal_policy(P, R, gamma, terminal)
    pi_s, Q_s = _optimal_policy(P, R_shaped, gamma, terminal)
    live = ~terminal
    assert np.array_equal(pi[live], pi_s[live])
    # and Q' = Q - phi(s) exactly (Ng et al. 1999)
    np.testing.assert_allclose(Q_s[live], (Q - phi[:, None])[live], atol=1e-8)


def test_non_potential_bonus_does_change_the_policy():
    """The invariance test above could not pass by accident: a bonus that is not a potential
    difference (reward for taking action 0) does change the optimal policy on these MDPs."""
    gamma = 0.9
    changed = 0
    for seed in range(5):
        P, R, terminal = _random_mdp(seed)
        bonus = np.zeros_like(R)
        bonus[:, 0, :] = 5.0
        pi, _ = _optimal_policy(P, R, gamma, terminal)
        pi_b, _ = _optimal_policy(P, R + bonus, gamma, terminal)
        changed += int(not np.array_equal(pi[~terminal], pi_b[~terminal]))
    assert changed >= 1


def test_voc_and_spearman():
    assert voc(np.arange(10.0)) == pytest.approx(1.0)
    assert voc(np.arange(10.0)[::-1]) == pytest.approx(-1.0)
    assert voc(np.ones(5)) == 0.0
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
