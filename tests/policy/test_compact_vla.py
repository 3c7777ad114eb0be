"""The compact VLA: shapes, normalisation, the RTC prefix, checkpoints and their bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from episodes.synthetic import storage_spec
from policy.base import PolicyError
from policy.compact import CompactVLAPolicy, load_model, save_checkpoint
from policy.models.encoders import images_to_tensor
from policy.models.vla import CompactVLA, VLAConfig
from robot.schema import Observation
from tests.policy.conftest import CAMERAS, JOINTS, tiny_model_overrides, tiny_spec


def tiny_model(**extra) -> CompactVLA:
    cfg = VLAConfig(
        joint_names=JOINTS, cameras=[c[0] for c in CAMERAS], **tiny_model_overrides(**extra)
    )
    model = CompactVLA(cfg)
    model.set_stats(
        state_mean=[0.1, -0.2, 0.3],
        state_std=[0.5, 2.0, 1.0],
        action_mean=[1.0, -1.0, 0.5],
        action_std=[0.2, 0.4, 3.0],
    )
    return model.eval()


def observation(stamp: float = 12.5, seed: int = 0, size=(32, 40)) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(
        stamp=stamp,
        joint_pos=rng.normal(size=3).astype(np.float32),
        joint_vel=np.zeros(3, np.float32),
        images={c[0]: rng.integers(0, 255, (*size, 3), dtype=np.uint8) for c in CAMERAS},
    )


def test_normalisation_round_trips():
    model = tiny_model(action_mode="absolute")
    a = torch.randn(5, 4, 3)
    assert torch.allclose(model.unnormalise_action(model.normalise_action(a)), a, atol=1e-6)
    q = torch.tensor([[0.1, -0.2, 0.3]])
    assert torch.allclose(model.normalise_state(q), torch.zeros(1, 3), atol=1e-6)


def test_delta_actions_are_relative_to_the_state_the_chunk_starts_from():
    model = tiny_model(action_mode="delta")
    a = torch.randn(5, 4, 3)
    q = torch.randn(5, 3)
    back = model.unnormalise_action(model.normalise_action(a, q), q)
    assert torch.allclose(back, a, atol=1e-5)
    # the same targets from another state are another network target
    assert not torch.allclose(model.normalise_action(a, q), model.normalise_action(a, q + 0.5))
    with pytest.raises(ValueError, match=r"delta.*joint state"):
        model.normalise_action(a)


@pytest.mark.parametrize("head", ["regression", "flow"])
def test_delta_chunks_continue_the_committed_prefix_exactly(text_encoder, head):
    policy = CompactVLAPolicy(tiny_model(head=head, action_mode="delta"), text_encoder)
    committed = np.array([[1.1, -0.9, 0.4], [1.2, -0.8, 0.3]])
    chunk = policy.predict(observation(), "move the arm left", committed)
    np.testing.assert_allclose(chunk.positions[:2], committed, atol=1e-5)


def test_an_unknown_action_mode_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"action_mode='relative'.*absolute"):
        tiny_model(action_mode="relative")


def test_a_joint_that_never_moved_does_not_blow_up_normalisation():
    model = tiny_model()
    model.set_stats([0, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 1])
    assert float(model.state_std.min()) > 0 and float(model.action_std.min()) > 0


def test_predict_returns_a_stamped_chunk_in_raw_units(text_encoder):
    policy = CompactVLAPolicy(tiny_model(), text_encoder)
    obs = observation()
    chunk = policy.predict(obs, "move the arm left")
    assert chunk.positions.shape == (4, 3)
    assert chunk.joint_names == tuple(JOINTS)
    assert chunk.stamp == obs.stamp
    np.testing.assert_allclose(chunk.times, 0.1 * np.arange(1, 5))
    # a fresh model predicts ~0 in normalised units: raw output sits near the action mean
    assert np.all(
        np.abs(chunk.positions.mean(0) - [1.0, -1.0, 0.5]) < 3 * np.array([0.2, 0.4, 3.0])
    )


def test_images_of_any_size_are_resized_but_wrong_channels_are_refused():
    t = images_to_tensor(np.zeros((2, 240, 320, 3), np.uint8), (32, 40))
    assert t.shape == (2, 3, 32, 40)
    with pytest.raises(ValueError, match=r"\(B, H, W, 3\) uint8"):
        images_to_tensor(np.zeros((2, 32, 40, 4), np.uint8), (32, 40))
    with pytest.raises(ValueError, match="float32"):
        images_to_tensor(np.zeros((2, 32, 40, 3), np.float32), (32, 40))


@pytest.mark.parametrize("head", ["regression", "flow"])
def test_chunk_continues_the_committed_prefix_exactly(text_encoder, head):
    policy = CompactVLAPolicy(tiny_model(head=head), text_encoder)
    committed = np.array([[1.1, -0.9, 0.4], [1.2, -0.8, 0.3]])
    chunk = policy.predict(observation(), "move the arm left", committed)
    np.testing.assert_allclose(chunk.positions[:2], committed, atol=1e-5)
    assert chunk.positions.shape == (4, 3)


def test_the_prefix_conditions_the_rest_of_the_chunk(text_encoder):
    """Not just pasted in: the prediction after the prefix depends on it."""
    torch.manual_seed(1)
    policy = CompactVLAPolicy(tiny_model(), text_encoder)
    obs = observation()
    a = policy.predict(obs, "move the arm left", np.array([[3.0, 3.0, 3.0]]))
    b = policy.predict(obs, "move the arm left", np.array([[-3.0, -3.0, -3.0]]))
    assert not np.allclose(a.positions[1:], b.positions[1:])


def test_checkpoint_save_load_gives_the_same_chunks(tmp_path, text_encoder):
    model = tiny_model()
    path = save_checkpoint(model, tmp_path / "ckpt", {"step": 7})
    loaded, meta = load_model(path)
    assert meta["trained"]["step"] == 7
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    obs = observation()
    a = CompactVLAPolicy(model, text_encoder).predict(obs, "move the arm right")
    b = CompactVLAPolicy.load(path, text_encoder).predict(obs, "move the arm right")
    np.testing.assert_array_equal(a.positions, b.positions)
    # the statistics travel with the weights
    assert torch.equal(loaded.action_std, model.action_std)
    assert json.loads((path / "config.json").read_text())["model"]["joint_names"] == JOINTS


def test_saving_over_a_checkpoint_replaces_it_whole(tmp_path):
    path = save_checkpoint(tiny_model(), tmp_path / "ckpt")
    save_checkpoint(tiny_model(dim=64), path)
    loaded, _ = load_model(path)
    assert loaded.config.dim == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary left behind


def test_a_corrupt_safetensors_file_is_named(tmp_path):
    path = save_checkpoint(tiny_model(), tmp_path / "ckpt")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(PolicyError, match="corrupt or truncated safetensors"):
        load_model(path)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    path = save_checkpoint(tiny_model(), tmp_path / "ckpt")
    meta = json.loads((path / "config.json").read_text())
    meta["model"]["dim"] = 64
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(PolicyError, match="shape"):
        load_model(path)


def test_not_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(PolicyError, match=r"no config\.json"):
        load_model(tmp_path)


def test_a_checkpoint_from_another_robot_is_refused(tmp_path, text_encoder):
    policy = CompactVLAPolicy.load(save_checkpoint(tiny_model(), tmp_path / "c"), text_encoder)
    policy.check(tiny_spec())  # its own robot: fine
    other = storage_spec("other", ["a", "b", "c", "d"], CAMERAS, 50.0)
    with pytest.raises(PolicyError, match=r"trained for joints \['j0', 'j1', 'j2'\].*'other'"):
        policy.check(other)
    one_camera = storage_spec("onecam", JOINTS, CAMERAS[:1], 50.0)
    with pytest.raises(PolicyError, match=r"needs cameras \['wrist'\]"):
        policy.check(one_camera)


def test_a_missing_camera_in_the_observation_is_named(text_encoder):
    policy = CompactVLAPolicy(tiny_model(), text_encoder)
    obs = observation()
    partial = Observation(obs.stamp, obs.joint_pos, obs.joint_vel, {"front": obs.images["front"]})
    with pytest.raises(PolicyError, match=r"lacks camera\(s\) \['wrist'\]"):
        policy.predict(partial, "move the arm left")


def test_an_instruction_longer_than_the_encoder_limit_is_refused(text_encoder):
    policy = CompactVLAPolicy(tiny_model(), text_encoder)
    with pytest.raises(PolicyError, match="longer than the text encoder's limit of 256"):
        policy.predict(observation(), "left " * 400)
    with pytest.raises(PolicyError, match="empty"):
        policy.predict(observation(), "   ")


def test_trunk_features_have_one_vector_per_observation(text_encoder):
    model = tiny_model()
    images = {c[0]: torch.rand(2, 3, 32, 40) for c in CAMERAS}
    feats = model.features(images, text_encoder.encode(["a", "b"]), torch.zeros(2, 3))
    assert feats.shape == (2, 32)


def test_instruction_embeddings_are_centred_on_the_training_instructions(tmp_path, text_encoder):
    """The shared part of the training instructions is removed and travels in the checkpoint."""
    model = tiny_model()
    emb = text_encoder.encode(["put the red cube in the bin", "put the blue cube in the bin"])
    model.set_text_stats(emb)
    centred = model.normalise_text(emb)
    assert torch.allclose(centred.mean(0), torch.zeros(384), atol=1e-5)
    assert torch.allclose(centred.norm(dim=-1), torch.ones(2), atol=1e-4)
    cos_before = torch.nn.functional.cosine_similarity(emb[0], emb[1], dim=0)
    cos_after = torch.nn.functional.cosine_similarity(centred[0], centred[1], dim=0)
    assert cos_before > 0.7 and cos_after < -0.9  # only what tells them apart is left
    loaded, _ = load_model(save_checkpoint(model, tmp_path / "c"))
    assert torch.equal(loaded.text_mean, model.text_mean)
