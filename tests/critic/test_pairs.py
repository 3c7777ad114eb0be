"""Pair sampling and its labels (critic.pairs)."""

from __future__ import annotations

import numpy as np
import pytest

from critic.base import CriticError, normalize_instruction
from critic.pairs import EpisodeIndex, PairConfig, PairSampler, progress_label
from critic.value import relative_delta
from tests.critic.conftest import instruction, make_store


def _index(lengths=(10, 12, 8, 9, 11), success=(True, True, False, True, False)) -> EpisodeIndex:
    n = int(sum(lengths))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    colors = ["red", "blue", "red", "red", "blue"]
    return EpisodeIndex(
        frames={"front": np.zeros((n, 4, 4, 3), np.uint8)},
        starts=starts.astype(np.int64),
        lengths=np.asarray(lengths, dtype=np.int64),
        instructions=[instruction(c) for c in colors],
        success=np.asarray(success),
        ids=[f"ep{i}" for i in range(len(lengths))],
    )


def _episode_of(index: EpisodeIndex, row: int) -> tuple[int, int]:
    e = int(np.searchsorted(index.starts, row, side="right") - 1)
    return e, row - int(index.starts[e])


def test_labels_of_each_kind():
    index = _index()
    sampler = PairSampler(index, PairConfig(), seed=0)
    batch = sampler.sample(2000)
    seen = set()
    for k in range(len(batch)):
        kind = batch.kinds[k]
        seen.add(kind)
        ea, i = _episode_of(index, int(batch.ia[k]))
        eb, j = _episode_of(index, int(batch.ib[k]))
        assert ea == eb, "a pair never spans two episodes"
        n = int(index.lengths[ea])
        if kind in ("forward", "reversed"):
            assert index.success[ea]
            want = relative_delta(progress_label(i, n), progress_label(j, n))
            assert batch.delta[k] == pytest.approx(float(want), abs=1e-6)
            assert (batch.delta[k] > 0) == (kind == "forward")
            assert batch.texts[k] == index.instructions[ea] and batch.reject[k] == 0
            assert batch.p_b[k] == pytest.approx(j / (n - 1))
        elif kind == "mismatch":
            assert index.success[ea]
            assert normalize_instruction(batch.texts[k]) != normalize_instruction(
                index.instructions[ea]
            )
            assert batch.delta[k] == 0 and batch.reject[k] == 1 and batch.done_b[k] == 0
            assert np.isnan(batch.p_b[k])
        elif kind == "stagnation":
            assert i == j and batch.delta[k] == 0
        elif kind == "failed":
            assert not index.success[ea]
            assert batch.delta[k] == 0 and batch.done_a[k] == 0 and batch.done_b[k] == 0
            edge = max(1, round(0.15 * n))
            assert min(i, j) < edge and max(i, j) >= n - edge
    assert seen == {"forward", "reversed", "mismatch", "stagnation", "failed"}


def test_shares_follow_the_config():
    sampler = PairSampler(_index(), PairConfig(forward=1, reversed=0, mismatch=0,
                                               stagnation=0, failed=1), seed=1)  # fmt: skip
    kinds = sampler.sample(400).kinds
    assert set(kinds) == {"forward", "failed"}
    assert 0.35 < kinds.count("forward") / len(kinds) < 0.65


def test_done_labels_only_at_the_end_of_successes():
    index = _index()
    sampler = PairSampler(index, PairConfig(done_from=0.9), seed=0)
    np.testing.assert_array_equal(sampler.done_label(0, np.arange(10)), [0] * 9 + [1])
    assert not sampler.done_label(2, np.arange(8)).any()  # a failed episode is never done


def test_reference_group_uses_another_episode_of_the_same_instruction():
    index = _index()
    sampler = PairSampler(index, seed=3)
    for _ in range(20):
        ref_rows, batch = sampler.reference_group(6, k=4)
        ref_e = {_episode_of(index, int(r))[0] for r in ref_rows}
        assert len(ref_e) == 1 and len(ref_rows) == 4
        (re,) = ref_e
        for a, text in zip(batch.ia, batch.texts, strict=True):
            e, _ = _episode_of(index, int(a))
            assert e != re and index.success[e]
            assert text == index.instructions[re]


def test_no_successful_episode_is_an_error():
    with pytest.raises(CriticError, match="no successful episodes"):
        PairSampler(_index(success=(False,) * 5))


def test_index_from_a_store(tmp_path):
    url = make_store(tmp_path / "s.zarr", [("red", True), ("blue", False)], n=7)
    idx = EpisodeIndex.from_stores([url], ["front"], [16, 16], progress=False)
    assert idx.frames["front"].shape == (14, 16, 16, 3)
    assert idx.lengths.tolist() == [7, 7] and idx.success.tolist() == [True, False]
    assert idx.camera_sizes == {"front": (24, 32)}
    with pytest.raises(CriticError, match=r"no camera\(s\) \['wrist'\]"):
        EpisodeIndex.from_stores([url], ["front", "wrist"], [16, 16], progress=False)
