"""``dojo train critic``, ``dojo eval critic``, ``dojo critic relabel|audit|curves``: end to end
on a tiny store with a tiny critic (the real MiniLM text encoder, a few training steps)."""

from __future__ import annotations

import json

import pytest

from critic.train import TrainConfig
from dojo import critic_cmd
from dojo.critic_cmd import ArgError, parse_into
from episodes.store import EpisodeStore


def test_arguments_are_checked_and_typed():
    cfg = parse_into(TrainConfig(), ["store=a.zarr,b.zarr", "steps=7", "pairs.mismatch=0.5",
                                     "image_size=32,48"], {"store": "stores"})  # fmt: skip
    assert cfg.stores == ["a.zarr", "b.zarr"] and cfg.steps == 7
    assert cfg.pairs.mismatch == 0.5 and cfg.image_size == [32, 48]
    with pytest.raises(ArgError, match="did you mean 'steps'"):
        parse_into(TrainConfig(), ["stpes=3"])
    with pytest.raises(ArgError, match="'steps=many'"):
        parse_into(TrainConfig(), ["steps=many"])
    with pytest.raises(ArgError, match="not key=value"):
        parse_into(TrainConfig(), ["steps"])


def test_unknown_subcommand_suggests(capsys):
    assert critic_cmd.main(["relable"]) == 2
    assert "did you mean 'relabel'" in capsys.readouterr().err
    assert critic_cmd.train(["store="]) == 2  # no stores: refused, not a traceback


def test_train_eval_relabel_audit_curves(tiny_store, tmp_path, capsys):
    ckpt = tmp_path / "critic"
    code = critic_cmd.dispatch(
        ["train", "critic", f"store={tiny_store}", f"out={ckpt}", "steps=4", "batch_size=8",
         "ref_batch=2", "cameras=front", "image_size=32,32", "widths=8,8", "embed_dim=16",
         "ref_frames=4"]
    )  # fmt: skip
    assert code == 0
    meta = json.loads((ckpt / "critic.json").read_text())
    cid = meta["critic_id"]
    out = tmp_path / "eval"
    assert critic_cmd.dispatch(["eval", "critic", f"critic={ckpt}", f"store={tiny_store}",
                                f"out={out}"]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["critic_id"] == cid and metrics["episodes"] == 6
    assert (out / "progress_curves.png").exists()
    assert critic_cmd.dispatch(["critic", "relabel", f"store={tiny_store}",
                                f"critic={ckpt}", "reward=shaping"]) == 0  # fmt: skip
    store = EpisodeStore.open(tiny_store)
    ep = store.read(store.episode_ids()[0])
    assert ep.reward_attrs[cid]["reward"] == "shaping"
    assert critic_cmd.dispatch(["critic", "audit", f"store={tiny_store}", f"critic_id={cid}",
                                f"json={tmp_path / 'audit.json'}"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "audit.json").read_text())["episodes"] == 6
    png = tmp_path / "curves.png"
    assert critic_cmd.dispatch(["critic", "curves", f"store={tiny_store}", f"critic={ckpt}",
                                f"out={png}"]) == 0  # fmt: skip
    assert png.exists()
    capsys.readouterr()
    assert critic_cmd.dispatch(["critic", "relabel", f"store={tmp_path / 'none.zarr'}",
                                f"critic={ckpt}"]) == 2  # fmt: skip
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
