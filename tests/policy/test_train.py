"""Supervised fine-tuning: it learns, it resumes, and it refuses data it cannot use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from policy.compact import CompactVLAPolicy
from policy.config import PolicyTrainConfig, VLAConfig
from policy.data import DataError, DemoDataset, random_shift
from policy.train import Trainer, TrainError, default_threads
from robot.schema import Observation
from tests.policy.conftest import (
    CAMERAS,
    INSTRUCTIONS,
    JOINTS,
    learnable_episode,
    tiny_model_overrides,
)

CAMS = [c[0] for c in CAMERAS]


def trainer(store, out, text_encoder, **kw) -> Trainer:
    cfg = PolicyTrainConfig(
        stores=[store.url],
        out=str(out),
        batch_size=16,
        lr=3e-3,
        warmup=5,
        augment_pad=0,
        log_every=5,
        checkpoint_every=0,
        progress=False,
        **{"model": VLAConfig(**tiny_model_overrides()), **kw},
    )
    return Trainer(cfg, joint_names=JOINTS, cameras=CAMS, text=text_encoder)


def test_dataset_targets_are_the_next_actions_with_a_mask_at_the_end(learnable_store):
    data = DemoDataset(
        [learnable_store.url],
        cameras=CAMS,
        joint_names=JOINTS,
        image_size=(32, 40),
        horizon=4,
        progress=False,
    )
    assert len(data.episodes) == 6 and data.fps == 10.0
    ep = data.episodes[0]
    last = int(np.flatnonzero(data.index[:, 0] == 0)[-1])
    batch = data.batch(np.array([0, last]))
    np.testing.assert_array_equal(batch["actions"][0], ep.action[1:5])
    assert batch["actions"][0, 0, 0] == 0.5 and data.episodes[1].action[0, 0] == -0.5
    assert batch["action_mask"][0].all()
    assert batch["action_mask"][1].sum() == 1  # one step left before the episode ends
    assert batch["instructions"][0] == INSTRUCTIONS[0]


@pytest.mark.parametrize("action_mode", ["absolute", "delta"])
def test_training_overfits_a_handful_of_episodes(
    learnable_store, tmp_path, text_encoder, action_mode
):
    tr = trainer(
        learnable_store,
        tmp_path / "run",
        text_encoder,
        steps=150,
        model=VLAConfig(**tiny_model_overrides(action_mode=action_mode)),
    )
    summary = tr.run()
    losses = [h["loss"] for h in tr.history if "loss" in h]
    assert losses[-1] < 0.25 * losses[0], losses
    # and the trained policy follows the instruction: 'left' moves joint 0 up, 'right' down
    policy = CompactVLAPolicy.load(summary["checkpoint"], text_encoder)
    _, q, _, images = learnable_episode(0)
    obs = Observation(1.0, q[5], np.zeros(3), {c: images[c][5] for c in CAMS})
    left = policy.predict(obs, INSTRUCTIONS[0]).positions[:, 0]
    right = policy.predict(obs, INSTRUCTIONS[1]).positions[:, 0]
    assert left.mean() > 0.25 and right.mean() < -0.25, (left, right)
    assert (tmp_path / "run" / "training.png").stat().st_size > 1000


def test_an_interrupted_run_resumes_where_it_stopped(learnable_store, tmp_path, text_encoder):
    out = tmp_path / "run"
    first = trainer(learnable_store, out, text_encoder, steps=20)
    first.cfg.steps = 10  # interrupted after 10 of 20 steps
    first.run()
    state = json.loads((out / "train_state.json").read_text())
    assert state["step"] == 10
    resumed = trainer(learnable_store, out, text_encoder, steps=20)
    assert resumed.step == 10
    # the optimiser moments came back too, not just the weights
    moments = [s["exp_avg"] for s in resumed.opt.state_dict()["state"].values()]
    assert moments and any(float(m.abs().sum()) > 0 for m in moments)
    for name, tensor in first._unwrapped().state_dict().items():
        assert torch.equal(tensor, resumed._unwrapped().state_dict()[name]), name
    assert resumed.run()["steps"] == 20


def test_resuming_with_another_model_is_refused(learnable_store, tmp_path, text_encoder):
    out = tmp_path / "run"
    trainer(learnable_store, out, text_encoder, steps=2).run()
    cfg = PolicyTrainConfig(
        stores=[learnable_store.url],
        out=str(out),
        steps=4,
        progress=False,
        model=VLAConfig(**tiny_model_overrides(dim=64)),
    )
    with pytest.raises(TrainError, match=r"different model \(differs in \['dim'\]\)"):
        Trainer(cfg, joint_names=JOINTS, cameras=CAMS, text=text_encoder)


def test_a_wall_clock_budget_stops_training(learnable_store, tmp_path, text_encoder):
    summary = trainer(
        learnable_store, tmp_path / "run", text_encoder, steps=10_000, seconds=1.0
    ).run()
    assert summary["stopped_by"] == "seconds" and summary["steps"] < 10_000


def test_threads_are_measured_unless_set(learnable_store, tmp_path, text_encoder):
    before = torch.get_num_threads()
    try:
        measured = trainer(learnable_store, tmp_path / "auto", text_encoder, steps=40).run()
        assert measured["threads"]["probes"] >= 1
        assert measured["threads"]["threads"] in measured["threads"]["candidates"]
        assert torch.get_num_threads() == default_threads()  # what runs after gets the fixed count
        fixed = trainer(learnable_store, tmp_path / "one", text_encoder, steps=10, threads=1).run()
        assert fixed["threads"] == 1 and torch.get_num_threads() == 1
        history = json.loads((tmp_path / "one" / "train_state.json").read_text())["history"]
        assert {h["threads"] for h in history if "threads" in h} == {1}
    finally:
        torch.set_num_threads(before)


def test_a_store_without_the_cameras_is_refused_naming_them(learnable_store):
    with pytest.raises(DataError, match=r"no camera\(s\) \['top'\]"):
        DemoDataset(
            [learnable_store.url],
            cameras=["top"],
            joint_names=JOINTS,
            image_size=(32, 40),
            horizon=4,
            progress=False,
        )
    with pytest.raises(DataError, match="recorded joints"):
        DemoDataset(
            [learnable_store.url],
            cameras=CAMS,
            joint_names=["a", "b", "c"],
            image_size=(32, 40),
            horizon=4,
            progress=False,
        )


def test_random_shift_keeps_shape_and_moves_content():
    torch.manual_seed(0)
    x = torch.zeros(8, 3, 16, 16)
    x[:, :, 8, 8] = 1.0
    y = random_shift(x, 4)
    assert y.shape == x.shape
    moved = [tuple(torch.nonzero(y[i, 0])[0].tolist()) != (8, 8) for i in range(8)]
    assert any(moved)


def test_start_weight_draws_an_episodes_first_steps_more_often(
    learnable_store, tmp_path, text_encoder
):
    tr = trainer(learnable_store, tmp_path / "run", text_encoder, steps=1, start_weight=5.0)
    early = tr.data.index[:, 1] < 10  # first second at 10 fps
    p = tr.sampler.p  # one process: its shard is every row
    assert p is not None and p[early][0] == pytest.approx(5 * p[~early][0])
    rows = tr.sampler.sample(tr.rng, 4000)
    share = early[rows].mean()
    expected = 5 * early.sum() / (5 * early.sum() + (~early).sum())
    assert abs(share - expected) < 0.05
    with pytest.raises(TrainError, match="start_weight=0"):
        trainer(learnable_store, tmp_path / "bad", text_encoder, steps=1, start_weight=0.0)


def test_weight_averaging_publishes_the_average_and_resumes_both(
    learnable_store, tmp_path, text_encoder
):
    from policy.compact import load_model

    out = tmp_path / "run"
    first = trainer(learnable_store, out, text_encoder, steps=12, ema=0.9)
    first.cfg.steps = 6  # interrupted after 6 of 12 steps
    first.run()
    raw = first._unwrapped().state_dict()
    average = first.ema.state
    weights = [k for k, v in raw.items() if v.is_floating_point() and v.numel() > 1]
    # the average trails the raw weights, and it is what the checkpoint carries
    assert any(not torch.allclose(raw[k], average[k]) for k in weights)
    published = load_model(out / "checkpoint")[0].state_dict()
    for k in weights:
        torch.testing.assert_close(published[k], average[k])
    # resuming brings back both: the raw weights to train on, the average to go on averaging
    resumed = trainer(learnable_store, out, text_encoder, steps=12, ema=0.9)
    for k in weights:
        assert torch.equal(resumed._unwrapped().state_dict()[k], raw[k]), k
        assert torch.equal(resumed.ema.state[k], average[k]), k
    assert resumed.run()["steps"] == 12


def test_a_weight_average_outside_zero_to_one_is_refused(learnable_store, tmp_path, text_encoder):
    with pytest.raises(TrainError, match=r"ema=1\.5"):
        trainer(learnable_store, tmp_path / "run", text_encoder, steps=2, ema=1.5)
