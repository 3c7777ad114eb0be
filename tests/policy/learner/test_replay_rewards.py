"""Chunk transitions, rewards and the replay buffers, on hand-made episodes with known answers."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from critic.value import accumulate
from policy.learner.config import LearnerConfig, LearnerError
from policy.learner.features import FrozenBase
from policy.learner.replay import (
    ReplayBuffers,
    StoreFollower,
    chunk_segments,
    episode_transitions,
)
from policy.learner.rewards import potential_rewards
from robot.schema import ControlSource

P, H, S, HOLD = (
    int(ControlSource.POLICY),
    int(ControlSource.HUMAN),
    int(ControlSource.SCRIPT),
    int(ControlSource.HOLD),
)


class ToyBase(FrozenBase):
    """Features = the joint state; base chunk = hold the current position."""

    def __init__(self, dof: int = 2, horizon: int = 6) -> None:
        self.policy = SimpleNamespace(
            joint_names=tuple(f"j{i}" for i in range(dof)),
            cameras=("front",),
            horizon=horizon,
            chunk_dt=0.1,
            describe=lambda: "toy",
        )
        self.feature_dim = dof

    def encode(self, images, joint_pos, instructions):
        q = np.asarray(joint_pos, dtype=np.float32)
        return q.copy(), np.repeat(q[:, None].astype(np.float64), self.horizon, axis=1)


def toy_episode(source, success=True, n=None, eid="e0"):
    source = np.asarray(source, dtype=np.uint8)
    n = len(source)
    q = np.stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)], 1)
    return SimpleNamespace(
        id=eid,
        instruction="put the red cube in the bin",
        success=success,
        n_steps=n,
        joint_pos=q,
        action=q + 0.5,
        control_source=source,
        images={"front": np.zeros((n, 4, 4, 3), np.uint8)},
    )


def test_segments_are_cut_at_a_change_of_source_and_never_start_on_a_hold():
    src = [P, P, P, P, P, P, P, H, H, H, HOLD, P, P]
    starts, ends, sources, skipped = chunk_segments(np.array(src), 5)
    assert starts.tolist() == [0, 5, 7, 11]
    assert ends.tolist() == [5, 7, 10, 12]
    assert sources.tolist() == [P, P, H, P]
    assert skipped == 1


def test_transitions_carry_the_executed_actions_masked_after_a_takeover():
    ep = toy_episode([P] * 7 + [H] * 6)
    cfg = LearnerConfig(reward="sparse", chunk_steps=5, gamma=0.9)
    t, report = episode_transitions(ep, ToyBase(), cfg)
    assert len(t) == report.transitions == 3
    # the second chunk is cut at the takeover (steps 5, 6): two executed, three masked
    np.testing.assert_array_equal(t.mask[1], [1, 1, 0, 0, 0])
    np.testing.assert_allclose(t.actions[1][:, 0], [5.5, 6.5, 6.5, 6.5, 6.5])
    np.testing.assert_allclose(t.q[:, 0], [0, 5, 7])
    np.testing.assert_allclose(t.next_q[:, 0], [5, 7, 12])
    # sparse: only the last chunk of a successful episode pays, and it is terminal
    np.testing.assert_allclose(t.reward, [0, 0, 1])
    np.testing.assert_array_equal(t.done, [False, False, True])
    np.testing.assert_allclose(t.discount, [0.9**5, 0.9**2, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(t.source, [P, P, H])
    assert t.weight[2] == cfg.intervention_weight and t.weight[0] == 1.0


def test_failed_episode_ends_on_a_time_limit_not_a_terminal():
    t, _ = episode_transitions(
        toy_episode([P] * 11, success=False), ToyBase(), LearnerConfig(reward="sparse")
    )
    assert not t.done.any() and np.all(t.reward == 0) and np.all(t.discount > 0)


def test_critic_rewards_are_the_potential_differences_and_done_from_the_threshold():
    n = 16
    potential = np.linspace(0.0, 0.9, n)
    done_prob = np.where(np.arange(n) >= 12, 0.8, 0.1)
    cfg = LearnerConfig(reward="critic", chunk_steps=5, gamma=1.0, done_threshold=0.5)
    t, report = episode_transitions(
        toy_episode([P] * n), ToyBase(), cfg, potential=potential, done_prob=done_prob
    )
    # chunks [0,5], [5,10], [10,15]: the third crosses done at its end (15 >= 12)
    np.testing.assert_allclose(
        t.reward[:2], [potential[5] - potential[0], potential[10] - potential[5]], rtol=1e-6
    )
    assert t.reward[2] == pytest.approx(potential[15] - potential[10] + 1.0)
    assert t.done.tolist() == [False, False, True]
    assert report.rewards.terminal == 1


def test_a_back_and_forth_episode_earns_nothing_from_the_anchored_potential():
    """A critic that rates forward +0.3 and back only -0.1 pays chained deltas for dithering;
    the anchored potential (each frame against the first) pays exactly nothing."""
    frames = [0, 1, 0, 1, 0, 1, 0, 1, 0]  # the arm goes A, B, A, B ... and ends where it began
    chained_delta = {(0, 1): 0.3, (1, 0): -0.1}
    anchored_progress = {0: 0.0, 1: 0.3}  # delta(first frame, this frame) through step()
    chain = accumulate([chained_delta[(a, b)] for a, b in itertools.pairwise(frames)])
    potential = np.array([anchored_progress[f] for f in frames])
    starts, ends = np.arange(len(frames) - 1), np.arange(1, len(frames))
    r_anchor, *_ = potential_rewards(starts, ends, potential, np.zeros(len(frames)), gamma=1.0)
    r_chain, *_ = potential_rewards(starts, ends, chain, np.zeros(len(frames)), gamma=1.0)
    assert r_anchor.sum() == pytest.approx(0.0, abs=1e-6)
    assert r_chain.sum() > 0.5  # the exploit a chained value leaves open


def test_a_nan_potential_excludes_its_chunks_and_is_counted():
    n = 16
    potential = np.linspace(0.0, 0.5, n)
    potential[7] = np.nan
    cfg = LearnerConfig(reward="critic", chunk_steps=5)
    t, report = episode_transitions(
        toy_episode([P] * n), ToyBase(), cfg, potential=potential, done_prob=np.zeros(n)
    )
    assert report.rewards.excluded == 0  # step 7 is inside a chunk, not at its ends
    potential[5] = np.nan
    t, report = episode_transitions(
        toy_episode([P] * n), ToyBase(), cfg, potential=potential, done_prob=np.zeros(n)
    )
    assert report.rewards.excluded == 2  # [0,5] and [5,10] touch frame 5
    assert len(t) == 1 and np.all(np.isfinite(t.reward))


def test_rlpd_sampling_ratio_bounds_and_interventions_in_both_buffers():
    cfg = LearnerConfig(
        reward="sparse", chunk_steps=2, batch_size=8, buffer_seconds=4.0, prior_ratio=0.25
    )
    buffers = ReplayBuffers(cfg, fps=10.0)
    cap = cfg.buffer_capacity(10.0)
    assert cap == 20 and buffers.prior.capacity == cap
    base = ToyBase()
    demo, _ = episode_transitions(toy_episode([S] * 9, eid="demo"), base, cfg)
    mixed, _ = episode_transitions(toy_episode([P] * 4 + [H] * 4 + [P], eid="mix"), base, cfg)
    buffers.add(demo)
    assert buffers.split(8) == (8, 0)  # no online data yet: all from prior
    buffers.add(mixed)
    assert len(buffers.prior) == 4 + 2 and len(buffers.online) == 2 + 2  # human chunks: both
    batch, is_prior = buffers.sample(8, np.random.default_rng(0))
    assert is_prior.sum() == 2 and len(batch) == 8
    for _ in range(30):  # far past the capacity: the ring never grows
        buffers.add(mixed)
    assert len(buffers.online) == cap and len(buffers.prior) == cap


def test_impossible_learner_configs_name_the_key():
    with pytest.raises(LearnerError, match=r"learner\.prior_ratio"):
        LearnerConfig(prior_ratio=1.5)
    with pytest.raises(LearnerError, match=r"learner\.reward"):
        LearnerConfig(reward="dense")
    with pytest.raises(LearnerError, match=r"learner\.batch_size"):
        LearnerConfig(buffer_seconds=1.0, batch_size=256).buffer_capacity(10.0)
    with pytest.raises(LearnerError, match=r"learner\.chunk_steps"):
        LearnerConfig(chunk_steps=12).check_policy(horizon=10)


def test_follower_sees_committed_episodes_once_and_never_an_uncommitted_one(tmp_path):
    from episodes.store import EpisodeStore, StoreConfig
    from episodes.synthetic import storage_spec

    spec = storage_spec("toy", ["j0", "j1"], [("front", 4, 4)], 50.0)
    store = EpisodeStore.create(
        str(tmp_path / "s.zarr"), spec, 10.0, StoreConfig(min_free_bytes=0, durable=False)
    )

    def write(commit: bool):
        w = store.begin("put the red cube in the bin", "pick_place", started_at=0.0)
        for i in range(3):
            w.append(
                i / 10,
                np.zeros(2),
                np.zeros(2),
                np.zeros(2),
                P,
                {"front": np.zeros((4, 4, 3), np.uint8)},
            )
        if commit:
            w.commit("success", True)
        return w

    follower = StoreFollower(str(tmp_path / "s.zarr"))
    write(True)
    open_writer = write(False)
    assert len(follower.poll()) == 1
    assert follower.poll() == []
    open_writer.commit("failure", False)
    assert len(follower.poll()) == 1
