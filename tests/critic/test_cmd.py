"""``dojo train critic``, ``dojo eval critic``, ``dojo critic relabel|audit|curves``: end to end
on a tiny store with a tiny critic (the real MiniLM text encoder, a few training steps)."""

from __future__ import annotations

import json

import pytest

from dojo import cli, conf, critic_cmd
from episodes.store import EpisodeStore


def dojo(argv: list[str]) -> int:
    """``dojo ...`` in process: its exit status."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code


def test_arguments_are_checked_and_typed():
    cfg = critic_cmd.TRAIN.load(["store=a.zarr,b.zarr", "critic_train.steps=7",
                                 "critic_train.pairs.mismatch=0.5",
                                 "critic_train.image_size=[32,48]"])  # fmt: skip
    config = conf.section(cfg, "critic_train")
    assert critic_cmd._stores(cfg) == ["a.zarr", "b.zarr"] and config.steps == 7
    assert config.pairs.mismatch == 0.5 and config.image_size == [32, 48]
    with pytest.raises(conf.ConfigError, match=r"did you mean 'critic_train\.steps'"):
        critic_cmd.TRAIN.load(["critic_train.stpes=3"])
    with pytest.raises(conf.ConfigError, match=r"'critic_train\.steps'"):
        critic_cmd.TRAIN.load(["critic_train.steps=many"])
    with pytest.raises(conf.ConfigError, match="not key=value"):
        critic_cmd.TRAIN.load(["steps"])


def test_unknown_subcommand_suggests(capsys):
    assert dojo(["critic", "relable"]) == 2
    assert "did you mean 'relabel'" in capsys.readouterr().err
    assert dojo(["train", "critic", "store="]) == 2  # no stores: refused, not a traceback


def test_train_eval_relabel_audit_curves(tiny_store, tmp_path, capsys):
    ckpt = tmp_path / "critic"
    code = dojo(
        ["train", "critic", f"store={tiny_store}", f"out={ckpt}", "critic_train.steps=4",
         "critic_train.batch_size=8", "critic_train.ref_batch=2", "critic_train.cameras=[front]",
         "critic_train.image_size=[32,32]", "critic_train.widths=[8,8]",
         "critic_train.embed_dim=16", "critic_train.ref_frames=4"]
    )  # fmt: skip
    assert code == 0
    meta = json.loads((ckpt / "critic.json").read_text())
    cid = meta["critic_id"]
    out = tmp_path / "eval"
    assert dojo(["eval", "critic", f"checkpoint={ckpt}", f"store={tiny_store}",
                                f"out={out}"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["critic_id"] == cid and metrics["episodes"] == 6
    assert (out / "progress_curves.png").exists()
    assert dojo(["critic", "relabel", f"store={tiny_store}",
                                f"checkpoint={ckpt}", "relabel.reward=shaping"]) == 0  # fmt: skip
    store = EpisodeStore.open(tiny_store)
    ep = store.read(store.episode_ids()[0])
    assert ep.reward_attrs[cid]["reward"] == "shaping"
    assert dojo(["critic", "audit", f"store={tiny_store}", f"audit.critic_id={cid}",
                                f"out={tmp_path / 'audit.json'}"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "audit.json").read_text())["episodes"] == 6
    png = tmp_path / "curves.png"
    assert dojo(["critic", "curves", f"store={tiny_store}", f"checkpoint={ckpt}",
                                f"out={png}"]) == 0  # fmt: skip
    assert png.exists()
    capsys.readouterr()
    assert dojo(["critic", "relabel", f"store={tmp_path / 'none.zarr'}",
                                f"checkpoint={ckpt}"]) == 2  # fmt: skip
    assert "none.zarr" in capsys.readouterr().err


def test_graph_runs_the_critic_node_only_when_configured(tmp_path):
    from dojo import conf, graph

    def names(overrides):
        return [n.name for n in graph.build(conf.load(overrides), tmp_path / "c.yaml")]

    assert "critic" not in names([])
    node = next(
        n for n in graph.build(conf.load(["critic.checkpoint=/x"]), tmp_path / "c.yaml")
        if n.name == "critic"
    )  # fmt: skip
    assert node.module == "dojo.nodes.critic" and not node.required
    with pytest.raises(conf.ConfigError, match=r"critic\.checkpoint"):
        conf.load(["critic.enabled=true"])
    with pytest.raises(conf.ConfigError, match=r"critic\.rate_hz"):
        conf.load(["critic.checkpoint=/x", "critic.rate_hz=0"])
    with pytest.raises(conf.ConfigError, match=r"critic\.threads"):
        conf.load(["critic.checkpoint=/x", "critic.threads=-1"])


def test_critic_is_a_config_group_with_presets():
    from dojo import conf

    assert conf.presets("critic") == ["compact", "vlm"]
    default = conf.load([]).critic
    assert default.name == "compact" and default.backend == "compact" and not default.checkpoint
    vlm = conf.load(["critic=vlm", "critic.checkpoint=/models/VLAC"]).critic
    assert vlm.backend == "vlm" and list(vlm.cameras) == ["front"] and vlm.rate_hz == 1.0
    with pytest.raises(conf.ConfigError, match="did you mean 'critic=vlm'"):
        conf.load(["critic=vml"])
    with pytest.raises(conf.ConfigError, match=r"critic=vlm critic\.checkpoint=/models/VLAC"):
        conf.load(["critic.checkpoint=vlm:/models/VLAC"])
    with pytest.raises(conf.ConfigError, match=r"critic\.backend"):
        conf.load(["critic.backend=gpt"])
    with pytest.raises(conf.ConfigError, match="a model directory"):
        conf.load(["critic=vlm", "critic.enabled=true"])
