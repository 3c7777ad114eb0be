"""``learner.actor=distil``: what it imitates, that it moves the VLA towards it, its checkpoints."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from policy.compact import CompactVLAPolicy
from policy.config import PolicyTrainConfig, VLAConfig
from policy.learner.config import LearnerConfig, LearnerError
from policy.learner.distil import DistilLearner, imitation_weights
from policy.learner.learner import LATEST, make_learner
from policy.train import Trainer
from robot.schema import ControlSource, Observation
from tests.policy.conftest import CAMERAS, JOINTS, learnable_episode
from tests.policy.conftest import tiny_model_overrides as tiny

P, H, S, HOLD = (
    int(ControlSource.POLICY),
    int(ControlSource.HUMAN),
    int(ControlSource.SCRIPT),
    int(ControlSource.HOLD),
)
CAMS = [c[0] for c in CAMERAS]


def test_what_is_imitated_demos_the_person_own_successes_never_the_run_up_to_a_takeover():
    cfg = LearnerConfig(reward="sparse", intervention_weight=2.0, distil_pre_takeover_s=0.2)
    src = np.array([P, P, P, P, H, H, P, P, HOLD, P])
    w = imitation_weights(src, True, cfg, fps=10.0)
    # the two policy steps before the takeover at step 4 are out; the person weighs 2; hold 0
    np.testing.assert_array_equal(w, [1, 1, 0, 0, 2, 2, 1, 1, 0, 1])
    failed = imitation_weights(src, False, cfg, fps=10.0)
    np.testing.assert_array_equal(failed, [0, 0, 0, 0, 2, 2, 0, 0, 0, 0])
    demo = imitation_weights(np.full(5, S), True, cfg, fps=10.0)
    np.testing.assert_array_equal(demo, np.ones(5))


def test_with_the_critic_a_failure_is_imitated_up_to_its_best_progress_where_it_gains():
    cfg = LearnerConfig(reward="critic", chunk_steps=2, distil_min_progress=0.1)
    potential = np.array([0.0, 0.1, 0.3, 0.5, 0.55, 0.65, 0.4, 0.2])  # peaks at step 5
    w = imitation_weights(np.full(8, P), False, cfg, fps=10.0, potential=potential)
    # gains over the next 2 steps: 0.3, 0.4, 0.25, 0.15, then -0.15 (step 4): kept 0-3
    np.testing.assert_array_equal(w, [1, 1, 1, 1, 0, 0, 0, 0])
    sparse = LearnerConfig(reward="sparse", chunk_steps=2, distil_min_progress=0.1)
    assert not imitation_weights(np.full(8, P), False, sparse, 10.0, potential).any()
    nan = potential.copy()
    nan[3] = np.nan  # a critic failure: none of the failure's own steps
    assert not imitation_weights(np.full(8, P), False, cfg, 10.0, nan).any()


def _episode(eid: str, k: int, source: int, success: bool, joint1: float = 0.0):
    """The learnable episode ``k`` (tests/policy/conftest.py), with joint 1 sent to ``joint1``."""
    instruction, q, action, images = learnable_episode(k)
    action = action.copy()
    action[:, 1] = joint1
    n = len(q)
    return SimpleNamespace(
        id=eid,
        instruction=instruction,
        success=success,
        n_steps=n,
        joint_pos=q,
        action=action,
        control_source=np.full(n, source, np.uint8),
        images=images,
    )


def _demo(k: int):
    """Demonstration ``k``: 'left' keeps joint 1 at 0, 'right' sends it to -1 (so the base's
    normalisation spans joint 1 and a shift of it is something the model can express)."""
    return _episode(f"d{k}", k, S, True, joint1=0.0 if k % 2 == 0 else -1.0)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, text_encoder):
    """A tiny compact VLA fitted to the demos: 'left' predicts joint 1 near 0."""
    from episodes.store import EpisodeStore, StoreConfig
    from tests.policy.conftest import FPS, tiny_spec

    root = tmp_path_factory.mktemp("distil")
    store = EpisodeStore.create(
        str(root / "demos.zarr"), tiny_spec(), FPS, StoreConfig(min_free_bytes=0, durable=False)
    )
    for k in range(6):
        ep = _demo(k)
        w = store.begin(ep.instruction, "tiny", started_at=float(k))
        for i in range(ep.n_steps):
            w.append(
                100.0 * k + i / FPS,
                ep.joint_pos[i],
                np.zeros_like(ep.joint_pos[i]),
                ep.action[i],
                S,
                {c: ep.images[c][i] for c in ep.images},
            )
        w.commit("success", True)
    torch.set_num_threads(1)
    cfg = PolicyTrainConfig(
        stores=[store.url],
        out=str(root / "sft"),
        steps=150,
        seconds=0,
        batch_size=16,
        lr=3e-3,
        warmup=5,
        augment_pad=0,
        checkpoint_every=0,
        progress=False,
        model=VLAConfig(**tiny()),
    )
    Trainer(cfg, joint_names=JOINTS, cameras=CAMS, text=text_encoder).run()
    return root / "sft" / "checkpoint"


def _joint1(policy: CompactVLAPolicy) -> float:
    instruction, q, _, images = learnable_episode(0)
    obs = Observation(
        stamp=0.0,
        joint_pos=q[0].astype(np.float32),
        joint_vel=np.zeros(len(JOINTS), np.float32),
        images={c: images[c][0] for c in images},
    )
    return float(policy.predict(obs, instruction).positions[:, 1].mean())


def _learner(base_dir, text_encoder, out, **overrides):
    policy = CompactVLAPolicy.load(base_dir, text_encoder)
    cfg = LearnerConfig(
        **{
            "reward": "sparse",
            "actor": "distil",
            "distil_lr": 3e-3,
            "distil_steps_per_episode": 100,
            "distil_round": 60,
            "distil_threads": 1,
            "chunk_steps": 2,
            **overrides,
        }
    )
    return policy, make_learner(policy, cfg, fps=10.0, base_source=("compact", "", ""), out=out)


def test_distillation_moves_the_vla_to_its_successes_and_not_to_its_failures(
    base_dir, text_encoder, tmp_path
):
    start = _joint1(CompactVLAPolicy.load(base_dir, text_encoder))
    demos = [_demo(k) for k in range(6)]
    finals = {}
    for outcome in (True, False):
        policy, learner = _learner(base_dir, text_encoder, tmp_path / str(outcome))
        assert isinstance(learner, DistilLearner)
        learner.ingest(demos)
        # the policy's own 'left' episodes sent joint 1 to 1.0: imitated only where they succeeded
        own = [_episode(f"p{i}", 2 * i, P, outcome, joint1=1.0) for i in range(3)]
        learner.ingest(own)
        assert learner.train() != {}  # three episodes' credit (300 steps) make a round
        assert learner.status.updates == 300
        finals[outcome] = _joint1(policy)  # trained in place: the driving policy is the new one
    assert abs(start) < 0.15, start
    assert finals[True] > start + 0.1, (start, finals)  # measured 0.17-0.37 (towards 0.5)
    assert abs(finals[False] - start) < 0.05, (start, finals)  # measured under 0.02


def test_a_distilled_checkpoint_is_a_compact_checkpoint_and_a_restart_resumes(
    base_dir, text_encoder, tmp_path
):
    from policy.registry import load_policy

    out = tmp_path / "learner"
    policy, learner = _learner(base_dir, text_encoder, out, distil_steps_per_episode=30)
    learner.ingest([_demo(0), _episode("p0", 0, P, True, joint1=1.0)])
    assert learner.train() == {}  # 30 steps of credit: below a round of 60
    learner.ingest([_episode("p1", 2, P, True, joint1=1.0)])
    learner.train()
    path = learner.save()
    assert path.name == "00000060"
    assert json.loads((out / LATEST).read_text())["checkpoint"] == str(path.resolve())
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporaries
    loaded = load_policy("compact", str(path), joint_names=JOINTS, cameras=CAMS)
    assert abs(_joint1(loaded) - _joint1(policy)) < 1e-5
    again_policy, again = _learner(base_dir, text_encoder, out, distil_steps_per_episode=30)
    assert again.status.checkpoint == str(path.resolve())
    again.ingest([_demo(0)])  # the trainer resumes on the first data
    assert again.trainer.step == 60
    assert abs(_joint1(again_policy) - _joint1(policy)) < 1e-5


def test_distil_refuses_a_policy_that_is_not_the_compact_vla():
    fake = SimpleNamespace(describe=lambda: "LeRobot act")
    with pytest.raises(LearnerError, match=r"learner\.actor=distil"):
        DistilLearner(fake, LearnerConfig(reward="sparse", actor="distil"), fps=10.0)


def test_impossible_distil_settings_name_the_key():
    with pytest.raises(LearnerError, match=r"learner\.distil_round"):
        LearnerConfig(distil_round=0)
    with pytest.raises(LearnerError, match=r"learner\.distil_lr"):
        LearnerConfig(distil_lr=float("nan"))
