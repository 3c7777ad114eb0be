"""The compact critic: training smoke test, checkpoints, the API's bounds and its bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from critic.base import CriticError, Reference
from critic.config import CriticTrainConfig
from critic.evaluate import CriticEvalConfig, evaluate
from critic.models.compact import (
    META,
    WEIGHTS,
    CompactConfig,
    CompactCritic,
    CompactCriticNet,
)
from critic.pairs import EpisodeIndex
from critic.registry import load_critic
from critic.train import train
from robot.schema import Observation
from tests.critic.conftest import H, W, instruction, make_store, square_frames

TINY = dict(image_size=[32, 32], embed_dim=32, ref_frames=4, widths=[8, 8])


def tiny_critic(fake_text, **kw) -> CompactCritic:
    cfg = CompactConfig(
        cameras=["front"], camera_sizes={"front": [H, W]}, token_dim=8,
        hidden=32, key_dim=8, **{**TINY, **kw},
    )  # fmt: skip
    return CompactCritic(CompactCriticNet(cfg), text_encoder=fake_text)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from tests.critic.conftest import FakeText

    tmp = tmp_path_factory.mktemp("compact")
    eps = [("red", True), ("blue", True)] * 3 + [("red", False), ("blue", False)]
    url = make_store(tmp / "train.zarr", eps, n=10)
    cfg = CriticTrainConfig(
        stores=[url], out=str(tmp / "ckpt"), cameras=["front"], steps=120, batch_size=16,
        ref_batch=4, lr=3e-3, warmup=10, log_every=20, **TINY,
    )  # fmt: skip
    critic = train(cfg, text_encoder=FakeText(), progress=False)
    return critic, cfg, url, tmp


def test_training_smoke_writes_a_checkpoint_and_learns(trained):
    critic, cfg, _, _ = trained
    hist = critic.meta["train"]["history"]
    assert hist[-1]["delta"] < hist[0]["delta"]  # the delta loss went down
    meta = json.loads((critic_dir := __import__("pathlib").Path(cfg.out) / META).read_text())
    assert (critic_dir.parent / WEIGHTS).read_bytes()[8:9] == b"{"  # safetensors, no pickle
    assert meta["critic_id"] == critic.critic_id
    assert critic.critic_id.startswith("compact-") and len(critic.critic_id) == len("compact-") + 8
    assert meta["config"]["camera_sizes"] == {"front": [H, W]}
    assert sorted(meta["instructions"]) == sorted([instruction("red"), instruction("blue")])
    assert not list(critic_dir.parent.glob(".*tmp"))  # written to a temporary name, renamed


def test_checkpoint_round_trip_is_exact(trained, fake_text):
    critic, cfg, _, _ = trained
    again = load_critic(cfg.out, text_encoder=fake_text)
    assert again.critic_id == critic.critic_id
    a = {"front": square_frames(5, "red", True)}
    b = {"front": square_frames(5, "red", True, seed=3)[::-1].copy()}
    np.testing.assert_allclose(
        again.delta_frames(a, b, instruction("red")), critic.delta_frames(a, b, instruction("red"))
    )


def test_trained_critic_orders_its_training_task(trained):
    critic, _, url, _ = trained
    metrics, _ = evaluate(critic, [url], CriticEvalConfig(pairs_per_episode=16), progress=False)
    assert metrics["sign_accuracy"] > 0.7
    assert metrics["voc_success"] > 0.5


def test_outputs_are_bounded_and_batched(fake_text):
    critic = tiny_critic(fake_text)
    fa = {"front": square_frames(6, "red", True)}
    fb = {"front": square_frames(6, "blue", False)}
    d = critic.delta_frames(fa, fb, instruction("red"))
    assert d.shape == (6,) and np.all(np.abs(d) <= 1)
    p = critic.done_frames(fb, [instruction("red")] * 6)
    assert p.shape == (6,) and np.all((p >= 0) & (p <= 1))
    obs = [Observation(0.0, np.zeros(2), np.zeros(2), {"front": f}) for f in fa["front"][:2]]
    assert isinstance(critic.delta(obs[0], obs[1], instruction("red")), float)
    assert critic.done(obs, instruction("red")).shape == (2,)


def test_bad_inputs_name_the_problem(fake_text):
    critic = tiny_critic(fake_text)
    good = {"front": square_frames(2, "red", True)}
    red = instruction("red")
    with pytest.raises(CriticError, match=r"trained on 32x24"):
        critic.delta_frames({"front": np.zeros((2, 48, 64, 3), np.uint8)}, good, red)
    with pytest.raises(CriticError, match="channels first"):
        critic.delta_frames({"front": np.zeros((2, 3, H, W), np.uint8)}, good, red)
    with pytest.raises(CriticError, match="uint8"):
        critic.done_frames({"front": good["front"].astype(np.float32)}, red)
    with pytest.raises(CriticError, match=r"no camera\(s\) \['front'\]"):
        critic.done_frames({"wrist": good["front"]}, red)
    with pytest.raises(CriticError, match="empty"):
        critic.done_frames(good, "  ")
    other = Reference(instruction("blue"), {"front": square_frames(4, "blue", True)}, "ep_x")
    with pytest.raises(CriticError, match="another task"):
        critic.delta_frames(good, good, red, other)
    same = Reference(red, {"front": square_frames(4, "red", True)})
    assert critic.delta_frames(good, good, red, same).shape == (2,)
    obs = Observation(0.0, np.zeros(2), np.zeros(2), {"wrist": good["front"][0]})
    with pytest.raises(CriticError, match="camera 'front'"):
        critic.done(obs, red)


def test_store_without_the_cameras_is_refused(trained, tmp_path, fake_text):
    from episodes.store import EpisodeStore, StoreConfig
    from episodes.synthetic import append_steps, storage_spec, synthetic_episode

    critic, _, _, _ = trained
    url = str(tmp_path / "wrist_only.zarr")
    spec = storage_spec("tiny", ("j0", "j1"), (("wrist", W, H),), 50.0)
    store = EpisodeStore.create(url, spec, 10.0, StoreConfig(min_free_bytes=0, durable=False))
    w = store.begin(instruction("red"), "pick_place", 0.0)
    append_steps(w, synthetic_episode(0, 3, ("j0", "j1"), (("wrist", W, H),), 10.0))
    w.commit("success", True)
    with pytest.raises(CriticError, match=r"no camera\(s\) \['front'\].*trained on"):
        evaluate(critic, [url], progress=False)
    with pytest.raises(CriticError, match=r"no camera\(s\) \['front'\]"):
        EpisodeIndex.from_stores([url], ["front"], [16, 16], progress=False)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(CriticError, match=r"critic\.json"):
        load_critic(tmp_path / "nothing")


@pytest.mark.parametrize("ref_align", ["instruction", "neutral"])
def test_reference_paths_agree(fake_text, ref_align):
    """Pairs scored one by one, within an episode, and along the episode give the same
    deltas, with and without a reference."""
    critic = tiny_critic(fake_text, ref_align=ref_align)
    red = instruction("red")
    frames = {"front": square_frames(6, "red", True)}
    ref = Reference(red, {"front": square_frames(4, "red", True, seed=5)})
    for reference in (None, ref):
        ia, ib = np.arange(5), np.arange(1, 6)
        one = critic.delta_frames({"front": frames["front"][ia]}, {"front": frames["front"][ib]},
                                  red, reference)  # fmt: skip
        within = critic.pairs_within(frames, red, ia, ib, reference)["delta"]
        chain = critic.episode(frames, red, reference)["deltas"]
        np.testing.assert_allclose(one, within, atol=1e-5)
        np.testing.assert_allclose(one, chain, atol=1e-5)
    with_ref = critic.delta_frames(frames, frames, red, ref)
    without = critic.delta_frames(frames, frames, red)
    assert not np.allclose(with_ref, without)  # the reference does reach the pair head
