"""Practice is not only for the compact VLA: the learner on a tiny offline LeRobot ACT."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lerobot.policies.act.modeling_act", reason="lerobot 0.6 is not installed")

from policy.learner.config import LearnerConfig
from policy.learner.features import GenericBase, frozen_base
from policy.learner.learner import Learner
from policy.learner.policy import PracticedPolicy
from robot.schema import ControlSource
from tests.policy import test_lerobot_adapters as act

act_dir = act.act_dir  # the tiny ACT checkpoint fixture, built offline
no_network = act.no_network


def act_episode(k: int, n: int = 16):
    from types import SimpleNamespace

    rng = np.random.default_rng(k)
    obs = [act.observation(seed=100 * k + i, size=(48, 64)) for i in range(n)]
    q = np.stack([o.joint_pos for o in obs])
    source = np.full(n, int(ControlSource.POLICY), np.uint8)
    source[n // 2 :] = int(ControlSource.HUMAN)
    return SimpleNamespace(
        id=f"act{k}",
        instruction="put the red cube in the bin",
        success=bool(k % 2),
        n_steps=n,
        joint_pos=q,
        action=q + 0.01 * rng.normal(size=q.shape).astype(np.float32),
        control_source=source,
        images={c: np.stack([o.images[c] for o in obs]) for c in act.CAMS},
    )


def test_the_learner_trains_on_an_act_base_and_its_policy_predicts_a_chunk(act_dir, tmp_path):
    policy = act.load(act_dir)
    base = frozen_base(policy)
    assert isinstance(base, GenericBase)
    cfg = LearnerConfig(
        reward="sparse", chunk_steps=3, batch_size=8, hidden=16, warmup_transitions=4
    )
    learner = Learner(
        base,
        cfg,
        fps=act.FPS,
        base_source=("lerobot", str(act_dir), "act"),
        out=tmp_path / "learner",
    )
    reports = learner.ingest([act_episode(k) for k in range(2)])
    assert all(r.prior > 0 and r.online > 0 for r in reports)
    learner.train(10)
    assert learner.status.updates == 10
    path = learner.save()
    from policy.registry import load_policy

    loaded = load_policy(
        "compact", str(path), joint_names=act.JOINTS, cameras=act.CAMS, fps=act.FPS
    )  # the checkpoint names its own base: lerobot ACT
    assert isinstance(loaded, PracticedPolicy)
    obs = act.observation(seed=7)
    chunk = loaded.predict(obs, "put the red cube in the bin")
    mine = PracticedPolicy(base, learner.net).predict(obs, "put the red cube in the bin")
    assert chunk.positions.shape == (policy.horizon, len(act.JOINTS))
    np.testing.assert_allclose(chunk.positions, mine.positions, atol=1e-5)
