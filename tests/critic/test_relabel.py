"""Relabelling (resumable), evaluation metrics and the audit, with stub critics on tiny stores."""

from __future__ import annotations

import numpy as np
import pytest

from critic.audit import AuditConfig, audit, flags_for
from critic.base import CriticError
from critic.evaluate import CriticEvalConfig, evaluate, plot_curves
from critic.relabel import RelabelConfig, relabel
from critic.value import rewards_from_deltas
from episodes.store import EpisodeStore
from tests.critic.conftest import OracleCritic


class Flaky(OracleCritic):
    """Dies on the ``n``-th episode it is asked about (an interrupted relabelling)."""

    def __init__(self, die_at: int) -> None:
        super().__init__()
        self.calls = 0
        self.die_at = die_at

    def done_frames(self, frames, instructions):
        self.calls += 1
        if self.calls == self.die_at:
            raise KeyboardInterrupt("interrupted")
        return super().done_frames(frames, instructions)


def test_relabel_writes_tagged_rewards(tiny_store):
    critic = OracleCritic()
    summary = relabel(tiny_store, critic, RelabelConfig(reward="shaping", gamma=0.9),
                      progress=False)  # fmt: skip
    store = EpisodeStore.open(tiny_store)
    assert summary.written == store.episode_ids() and not summary.skipped
    ep = store.read(store.episode_ids()[0])
    cid = critic.critic_id
    assert {cid, f"{cid}.progress", f"{cid}.done"} <= set(ep.rewards)
    attrs = ep.reward_attrs[cid]
    assert attrs["critic_id"] == cid and attrs["critic_version"] == "1"
    assert attrs["reward"] == "shaping" and attrs["gamma"] == 0.9
    frames = {"front": np.asarray(ep.images["front"][:])}
    _, deltas = critic.progress(frames, ep.instruction)
    want, values = rewards_from_deltas(deltas, "shaping", 0.9)
    np.testing.assert_allclose(ep.rewards[cid], want, atol=1e-6)
    np.testing.assert_allclose(ep.rewards[f"{cid}.progress"], values, atol=1e-6)
    assert ep.rewards[f"{cid}.progress"][-1] > 0.95  # the successful episode got there


def test_relabel_resumes_after_interruption(tiny_store):
    flaky = Flaky(die_at=3)
    with pytest.raises(KeyboardInterrupt):
        relabel(tiny_store, flaky, progress=False)
    store = EpisodeStore.open(tiny_store)
    ids = store.episode_ids()
    done_before = [i for i in ids if flaky.critic_id in store.read(i).rewards]
    assert done_before == ids[:2]
    again = OracleCritic()
    summary = relabel(tiny_store, again, progress=False)
    assert summary.skipped == ids[:2] and summary.written == ids[2:]
    assert all(again.critic_id in store.read(i).rewards for i in ids)
    # and a second pass does nothing
    assert relabel(tiny_store, again, progress=False).written == []


def test_relabel_refuses_bad_config(tiny_store):
    with pytest.raises(CriticError, match="reward='bonus'"):
        relabel(tiny_store, OracleCritic(), RelabelConfig(reward="bonus"), progress=False)


def test_metrics_of_a_right_critic(tiny_store, tmp_path):
    metrics, results = evaluate(OracleCritic(), [tiny_store], CriticEvalConfig(), progress=False)
    assert metrics["voc_success"] == pytest.approx(1.0)
    # played backwards, every delta is a regression from 0: the value never leaves 0
    assert metrics["voc_reversed"] == pytest.approx(0.0)
    assert all(np.all(r.values <= 1.0) for r in results)
    assert metrics["sign_accuracy"] == 1.0 and metrics["sign_pairs"] > 0
    assert metrics["reject_mismatch"] == 1.0 and metrics["false_reject_matched"] == 0.0
    assert metrics["done_f1"] == 1.0
    png = plot_curves(results, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_metrics_can_fail():
    """A critic that always says done, and progress backwards, scores badly."""

    class Backwards(OracleCritic):
        def delta_frames(self, a, b, instructions, reference=None):
            return -super().delta_frames(a, b, instructions, reference)

    import tempfile
    from pathlib import Path

    from tests.critic.conftest import make_store

    with tempfile.TemporaryDirectory() as tmp:
        url = make_store(Path(tmp) / "s.zarr", [("red", True), ("blue", False)])
        m, _ = evaluate(Backwards(done_value=1.0), [url], progress=False)
    assert m["sign_accuracy"] == 0.0
    assert m["voc_success"] <= 0.0
    assert m["done_precision"] == 0.5 and m["done_confusion"]["fp"] == 1


def test_audit_lists_false_positives_and_flags(tiny_store):
    report = audit(tiny_store, OracleCritic(done_value=1.0), progress=False)
    fp = [r for r in report.rows if r.verdict == "false_positive"]
    store = EpisodeStore.open(tiny_store)
    failed = [i for i in store.episode_ids() if not store.info(i)["success"]]
    assert sorted(r.episode for r in fp) == sorted(failed)
    # failures go half-way and back: the progress regresses
    assert all(any("regresses" in f for f in r.flags) for r in fp)
    assert "false positive" in str(report)
    good = audit(tiny_store, OracleCritic(), progress=False)
    assert not good.disagreements


def test_audit_reads_relabelled_values(tiny_store):
    critic = OracleCritic()
    relabel(tiny_store, critic, progress=False)
    report = audit(tiny_store, critic_id=critic.critic_id, progress=False)
    assert len(report.rows) == 6 and not report.disagreements
    with pytest.raises(CriticError, match="relabel it first"):
        audit(tiny_store, critic_id="never-relabelled", progress=False)


def test_stagnation_flag():
    v = np.concatenate([np.linspace(0, 0.4, 10), np.full(40, 0.4), np.linspace(0.4, 1, 10)])
    flags = flags_for(v, fps=10.0, config=AuditConfig(stagnation_s=3.0))
    assert any("stagnates" in f for f in flags)
    assert not flags_for(np.linspace(0, 1, 60), 10.0, AuditConfig())


def test_reference_comparison_pairs_demos_of_the_same_instruction(tiny_store):
    from critic.evaluate import reference_comparison

    out = reference_comparison(OracleCritic(), tiny_store, k=4, progress=False)
    assert out["episodes"] == 2  # red and blue: one reference and one scored episode each
    assert out["voc_with_reference"] == pytest.approx(1.0)
    assert out["voc_without_reference"] == pytest.approx(1.0)
