"""The learner learns, its checkpoints are atomic, and a restarted learner resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from policy.learner.agent import ChunkLearner
from policy.learner.config import LearnerConfig
from policy.learner.learner import LATEST, Learner, read_checkpoint
from policy.learner.replay import ReplayBuffers, Transitions
from tests.policy.learner.test_replay_rewards import ToyBase, toy_episode

P = 0
D, HORIZON, CHUNK = 2, 6, 3
BEST = 0.08  # the optimal offset of joint 0, in rad, signed by the context


def bandit_batch(rng, n: int, scale: float) -> Transitions:
    """One-step episodes: context x in {-1, +1} (the joint state), reward -|a0 - x * BEST| summed
    over the chunk; behaviour actions uniform in the residual's range."""
    x = rng.choice([-1.0, 1.0], size=n).astype(np.float32)
    q = np.stack([x, np.zeros(n, np.float32)], 1)
    base = np.repeat(q[:, None], HORIZON, 1)
    offsets = rng.uniform(-scale, scale, size=(n, CHUNK, D)).astype(np.float32)
    actions = q[:, None] + offsets
    reward = -np.abs(offsets[..., 0] - x[:, None] * BEST).sum(1) - np.abs(offsets[..., 1]).sum(1)
    z = np.zeros(n, np.float32)
    return Transitions(
        feat=q.copy(),
        next_feat=q.copy(),
        q=q,
        next_q=q,
        base=base,
        next_base=base,
        actions=actions,
        mask=np.ones((n, CHUNK), np.float32),
        reward=reward.astype(np.float32),
        discount=z,
        done=np.ones(n, bool),
        source=np.full(n, P, np.uint8),
        weight=z + 1,
    )


def chunk_reward(net: ChunkLearner, x: float) -> float:
    q = torch.tensor([[x, 0.0]])
    base = q[:, None].repeat(1, HORIZON, 1)
    chunk = net.select(q, q, base, explore=False)[0, :CHUNK].numpy() - q.numpy()
    return float(-np.abs(chunk[:, 0] - x * BEST).sum() - np.abs(chunk[:, 1]).sum())


def test_the_learner_finds_the_optimum_of_a_contextual_chunk_bandit():
    cfg = LearnerConfig(
        reward="sparse",
        chunk_steps=CHUNK,
        batch_size=128,
        hidden=64,
        residual_scale=0.15,
        bc_weight=0.0,
        bc_weight_final=0.0,
        lr=3e-3,
        init_temperature=1e-4,
        buffer_seconds=600.0,
    )
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    net = ChunkLearner(cfg, D, HORIZON, D, np.full(D, 0.1))
    buffers = ReplayBuffers(cfg, fps=10.0)
    buffers.add(bandit_batch(rng, 1500, cfg.residual_scale))
    untrained = np.mean([chunk_reward(net, x) for x in (-1.0, 1.0)])
    for _ in range(600):
        batch, is_prior = buffers.sample(cfg.batch_size, rng)
        b = net.tensors(batch)
        net.critic_update(b)
        net.actor_update(b, torch.as_tensor(is_prior, dtype=torch.float32))
    trained = np.mean([chunk_reward(net, x) for x in (-1.0, 1.0)])
    optimum = 0.0
    # the untrained actor holds (residual 0): it loses BEST per step on joint 0
    assert untrained == pytest.approx(-CHUNK * BEST, abs=1e-3)
    assert trained > untrained + 0.6 * (optimum - untrained), (untrained, trained)


def test_awac_moves_the_residual_towards_the_better_executed_chunks():
    """AWAC regresses onto what was executed, weighted by advantage: from uniform behaviour it
    must end nearer the optimum than both the untrained actor and the behaviour's mean (0)."""
    cfg = LearnerConfig(
        reward="sparse",
        actor="awac",
        chunk_steps=CHUNK,
        batch_size=128,
        hidden=64,
        residual_scale=0.15,
        lr=3e-3,
        awac_beta=0.3,
        buffer_seconds=600.0,
    )
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    net = ChunkLearner(cfg, D, HORIZON, D, np.full(D, 0.1))
    buffers = ReplayBuffers(cfg, fps=10.0)
    buffers.add(bandit_batch(rng, 1500, cfg.residual_scale))
    untrained = np.mean([chunk_reward(net, x) for x in (-1.0, 1.0)])
    for _ in range(600):
        batch, is_prior = buffers.sample(cfg.batch_size, rng)
        b = net.tensors(batch)
        net.critic_update(b)
        net.actor_update(b, torch.as_tensor(is_prior, dtype=torch.float32))
    trained = np.mean([chunk_reward(net, x) for x in (-1.0, 1.0)])
    assert untrained == pytest.approx(-CHUNK * BEST, abs=1e-3)
    assert trained > untrained + 0.5 * (0.0 - untrained), (untrained, trained)


def test_rerank_picks_the_proposal_the_critic_prefers():
    cfg = LearnerConfig(
        reward="sparse",
        actor="rerank",
        chunk_steps=CHUNK,
        batch_size=128,
        hidden=64,
        residual_scale=0.15,
        lr=1e-3,
        proposals=64,
        buffer_seconds=600.0,
    )
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    net = ChunkLearner(cfg, D, HORIZON, D, np.full(D, 0.1))
    buffers = ReplayBuffers(cfg, fps=10.0)
    buffers.add(bandit_batch(rng, 1500, cfg.residual_scale))
    base_reward = -CHUNK * BEST
    for _ in range(400):
        batch, _ = buffers.sample(cfg.batch_size, rng)
        net.critic_update(net.tensors(batch))
    picked = np.mean([chunk_reward(net, x) for x in (-1.0, 1.0) for _ in range(5)])
    assert picked > base_reward + 0.05, picked


def make_learner(tmp_path, **overrides) -> Learner:
    cfg = LearnerConfig(
        **{
            "reward": "sparse",
            "chunk_steps": 3,
            "batch_size": 8,
            "hidden": 16,
            "warmup_transitions": 4,
            "checkpoint_every": 5,
            **overrides,
        }
    )
    return Learner(ToyBase(D, HORIZON), cfg, fps=10.0, out=tmp_path / "learner")


def test_checkpoints_round_trip_and_a_restarted_learner_resumes(tmp_path):
    learner = make_learner(tmp_path)
    learner.ingest([toy_episode([P] * 30, eid=f"e{i}") for i in range(3)])
    learner.train(12)
    path = learner.save()
    meta, _state = read_checkpoint(path)
    assert meta["updates"] == 12 and path.name == "00000012"
    assert json.loads((tmp_path / "learner" / LATEST).read_text())["checkpoint"] == str(path)
    again = make_learner(tmp_path)
    again.ingest([toy_episode([P] * 30, eid="e0")])
    assert again.status.updates == 0 and int(again.net.updates) == 12
    for k, v in again.net.state_dict().items():
        torch.testing.assert_close(v, learner.net.state_dict()[k])
    again.train(3)
    assert again.save().name == "00000015"


def test_a_practised_checkpoint_drives_like_the_learner_that_wrote_it(tmp_path):
    from policy.learner.policy import PracticedPolicy
    from robot.schema import Observation

    learner = make_learner(tmp_path)
    learner.ingest([toy_episode([P] * 30)])
    learner.train(10)
    path = learner.save()
    base = learner.base  # a toy, not a ChunkPolicy the registry loads: rebuild the nets
    meta, state = read_checkpoint(path)
    net = ChunkLearner(
        learner.config,
        meta["feature_dim"],
        meta["horizon"],
        D,
        np.asarray(meta["action_scale"]),
        state,
    )
    policy = PracticedPolicy(base, net)
    obs = Observation(
        stamp=1.0,
        joint_pos=np.array([1.0, 0.0]),
        joint_vel=np.zeros(2),
        images={"front": np.zeros((4, 4, 3), np.uint8)},
        image_stamps={"front": 1.0},
    )
    mine = PracticedPolicy(base, learner.net).predict(obs, "put the red cube in the bin")
    theirs = policy.predict(obs, "put the red cube in the bin")
    np.testing.assert_allclose(mine.positions, theirs.positions, atol=1e-6)
    assert mine.positions.shape == (HORIZON, D)


WRITER = r"""
import sys, numpy as np
sys.path.insert(0, {root!r})
from pathlib import Path
from tests.policy.learner.test_learning import make_learner
from tests.policy.learner.test_replay_rewards import toy_episode
learner = make_learner(Path({tmp!r}))
learner.ingest([toy_episode([0] * 30)])
print("ready", flush=True)
while True:
    learner.train(1)
    learner.save()
"""


def test_a_learner_killed_mid_write_never_leaves_a_partial_checkpoint(tmp_path):
    root = os.getcwd()
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(root=root, tmp=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        ckpts = tmp_path / "learner" / "checkpoints"
        deadline = time.monotonic() + 60
        while len(list(ckpts.glob("0*"))) < 20:
            assert time.monotonic() < deadline, "the writer made no checkpoints"
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    for path in ckpts.glob("0*"):  # every named checkpoint is whole
        meta, state = read_checkpoint(path)
        assert meta["updates"] == int(path.name) and state
    latest = json.loads((tmp_path / "learner" / LATEST).read_text())["checkpoint"]
    read_checkpoint(latest)


def test_a_critic_that_rates_failures_as_progress_is_no_longer_trusted(tmp_path):
    cfg = LearnerConfig(reward="critic", chunk_steps=3, batch_size=8, hidden=16)
    learner = Learner(ToyBase(D, HORIZON), cfg, fps=10.0, critic=object(), out=tmp_path / "l")
    demo = toy_episode([2] * 10, success=True, eid="demo")  # SCRIPT: not judged
    learner._audit(demo, np.linspace(0, 1, 10), np.zeros(10))
    assert learner.status.critic_audit == {}
    for k in range(Learner.AUDIT_MIN_EPISODES):
        failed = toy_episode([P] * 10, success=False, eid=f"f{k}")
        learner._audit(failed, np.linspace(0, 0.9, 10), np.linspace(0, 0.8, 10))
    audit = learner.status.critic_audit
    assert audit["failed_final_progress"] == pytest.approx(0.9)
    assert audit["done_precision"] == 0.0
    assert "fell_back" in audit and learner.config.reward == "sparse"
    assert learner.status.reward_source.startswith("sparse (critic diverged")


def test_an_honest_critic_keeps_its_reward(tmp_path):
    cfg = LearnerConfig(reward="critic", chunk_steps=3, batch_size=8, hidden=16)
    learner = Learner(ToyBase(D, HORIZON), cfg, fps=10.0, critic=object(), out=tmp_path / "l")
    for k in range(2 * Learner.AUDIT_MIN_EPISODES):
        ok = k % 2 == 0
        end = 0.95 if ok else 0.2
        learner._audit(
            toy_episode([P] * 10, success=ok, eid=f"e{k}"),
            np.linspace(0, end, 10),
            np.full(10, 0.9 if ok else 0.1),
        )
    assert "fell_back" not in learner.status.critic_audit
    assert learner.config.reward == "critic"
    assert learner.status.critic_audit["done_precision"] == 1.0


def test_exploration_noise_is_capped_whatever_spread_the_actor_learned():
    """An actor that has learned a wide spread (log std at its ceiling) still explores with at
    most ``explore_std`` before tanh: the robot's random motion stays bounded."""
    cfg = LearnerConfig(reward="sparse", chunk_steps=CHUNK, hidden=16, explore_std=0.1)
    torch.manual_seed(0)
    net = ChunkLearner(cfg, D, HORIZON, D, np.full(D, 0.1))
    with torch.no_grad():
        net.actor.net[-1].bias[CHUNK * D :] = 5.0  # log std far above any cap
    q = torch.zeros(4000, D)
    base = q[:, None].repeat(1, HORIZON, 1)
    chunk = net.select(q, q, base, explore=True)[:, :CHUNK]
    u = torch.atanh((chunk / cfg.residual_scale).clamp(-0.999999, 0.999999))
    assert float(u.std()) == pytest.approx(0.1, rel=0.1)
    wide = LearnerConfig(reward="sparse", chunk_steps=CHUNK, hidden=16, explore_std=10.0)
    net.config = wide
    chunk = net.select(q, q, base, explore=True)[:, :CHUNK]
    u = torch.atanh((chunk / cfg.residual_scale).clamp(-0.999999, 0.999999))
    assert float(u.std()) > 1.0  # the ceiling of the actor's own range, not the cap
