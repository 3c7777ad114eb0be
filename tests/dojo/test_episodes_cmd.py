"""``dojo episodes``: what each subcommand prints and returns, on small stores built here.

Bad input must give exit status 2 and one line on stderr naming the thing (never a
traceback), and nothing but ``repair`` (and ``import``) may change the store. The LeRobot
wrappers are tested against fakes bound to the real signatures; episodes/lerobot.py has its
own round-trip tests with LeRobot itself.
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from pathlib import Path

import imageio.v2 as iio
import pytest

from dojo import episodes_cmd
from episodes import lerobot as lr
from episodes import view
from episodes.repair import SALVAGED
from episodes.store import EpisodeStore, StoreError
from tests.episodes.test_view import (
    CAM_H,
    CAM_W,
    SEGMENTS_A,
    SOURCES_A,
    STARTED_A,
    build_store,
    corrupt_chunk,
    tree_digest,
)


@pytest.fixture
def fresh(tmp_path: Path):
    """A store of one's own (for tests that repair it); the uncommitted writer is kept alive."""
    path = tmp_path / "store.zarr"
    _, ids, writer = build_store(path)
    yield path, ids
    del writer


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """A store the read-only tests share; its digest is checked after each of them."""
    path = tmp_path_factory.mktemp("cmd") / "store.zarr"
    _, ids, writer = build_store(path)
    yield path, ids, tree_digest(path)
    del writer


@pytest.fixture
def ro(shared):
    path, ids, digest = shared
    yield path, ids
    assert tree_digest(path) == digest, "a read-only command modified the store"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = episodes_cmd.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def row_of(out: str, episode_id: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(episode_id))


# --------------------------------------------------------------------------------------------
# ls


def test_ls_lists_committed_episodes_and_counts_uncommitted(ro, capsys) -> None:
    path, ids = ro
    code, out, err = run(capsys, "ls", path)
    assert code == 0 and err == ""
    assert "robot 'tiny_arm'" in out and "top 32x24" in out
    assert ids["a"] in out and ids["b"] in out
    assert not any(line.startswith(ids["c"]) for line in out.splitlines())
    a = row_of(out, ids["a"]).split()
    local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(STARTED_A))
    assert " ".join(a[1:3]) == local
    assert a[3:6] == ["30", "3.0", "s"]
    assert a[6:8] == ["ok", "placed"]
    assert a[8:12] == ["50%", "33%", "-", "17%"]  # policy, human, script, hold
    assert row_of(out, ids["a"]).endswith("pick up the red cube")
    b = row_of(out, ids["b"])
    assert "sim t=1000.0 s" in b and "FAIL timeout" in b and "100%" in b
    assert "2 committed episodes, 50 steps, 5.0 s, 1/2 succeeded" in out
    assert "control: policy 30%, human 20%, script 40%, hold 10%" in out
    assert f"1 uncommitted episode ({ids['c']})" in out and f"repair {path}" in out


def test_ls_of_an_empty_store(tmp_path: Path, capsys) -> None:
    from tests.episodes.test_view import FPS, make_spec

    EpisodeStore.create(str(tmp_path / "e.zarr"), make_spec(), FPS)
    code, out, _ = run(capsys, "ls", tmp_path / "e.zarr")
    assert code == 0
    assert "0 committed episodes, 0 steps" in out and "0 uncommitted episodes" in out


# --------------------------------------------------------------------------------------------
# show


def test_show_prints_attributes_arrays_verification_and_segments(ro, capsys) -> None:
    path, ids = ro
    code, out, err = run(capsys, "show", path, ids["a"])
    assert code == 0 and err == ""
    assert f"episode {ids['a']}" in out
    for key, value in (
        ("instruction", "pick up the red cube"),
        ("task", "pick_place"),
        ("outcome", "placed"),
        ("success", "True"),
        ("n_steps", "30"),
        ("robot", "tiny_arm"),
    ):
        assert any(line.split(None, 1) == [key, value] for line in out.splitlines()), key
    assert "writer" in out and "committed_at" in out
    top = next(line for line in out.splitlines() if line.strip().startswith("obs/images/top"))
    assert f"(30, {CAM_H}, {CAM_W}, 3)" in top and "uint8" in top and "jpeg(q90)" in top
    assert "blake2b128:" in top
    act = next(line for line in out.splitlines() if line.strip().startswith("action "))
    assert "(30, 3)" in act and "float32" in act and "zstd(3)" in act
    assert "checksums: OK (6 arrays verified" in out
    assert SEGMENTS_A in out
    assert "steps 15-24" in out and "10 steps" in out


@pytest.mark.parametrize("how", ["prefix", "sequence"])
def test_show_accepts_a_prefix_or_sequence_number(ro, capsys, how) -> None:
    path, ids = ro
    arg = ids["b"][:9] if how == "prefix" else "1"  # ep_000001, or 1
    code, out, _ = run(capsys, "show", path, arg)
    assert code == 0 and f"episode {ids['b']}" in out
    assert "0.0-2.0 s script" in out


def test_show_reports_a_checksum_mismatch_with_exit_2(ro, tmp_path: Path, capsys) -> None:
    path, ids = ro
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    corrupt_chunk(copy, ids["a"], "obs/images/top")
    before = tree_digest(copy)
    code, out, err = run(capsys, "show", copy, ids["a"])
    assert code == 2
    assert "checksums: FAILED" in out
    assert "checksum mismatch" in err and ids["a"] in err and "'obs/images/top'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert SEGMENTS_A in out, "segments are still shown from the readable arrays"
    code, _, err = run(capsys, "view", copy, ids["a"], "--out", tmp_path / "v")
    assert code == 2 and "checksum mismatch" in err
    assert tree_digest(copy) == before


# --------------------------------------------------------------------------------------------
# repair


def test_repair_skips_a_live_writer_then_force_removes_it(fresh, capsys) -> None:
    path, ids = fresh
    code, out, _ = run(capsys, "repair", path)
    assert code == 0
    assert f"{ids['c']}: skipped" in out and "--force" in out
    assert EpisodeStore.open(str(path)).uncommitted_ids() == [ids["c"]]

    code, out, _ = run(capsys, "repair", path, "--force")
    assert code == 0 and f"{ids['c']}: removed" in out
    store = EpisodeStore.open(str(path))
    assert store.uncommitted_ids() == [] and store.episode_ids() == [ids["a"], ids["b"]]
    assert not (path / "episodes" / ids["c"]).exists()

    code, out, _ = run(capsys, "repair", path)
    assert code == 0 and "nothing to repair" in out
    _, out, _ = run(capsys, "ls", path)
    assert "0 uncommitted episodes" in out


def test_repair_salvage_commits_the_complete_prefix(fresh, capsys) -> None:
    path, ids = fresh
    before = {
        k: v for k, v in tree_digest(path).items() if not k.startswith(f"episodes/{ids['c']}")
    }
    code, out, _ = run(capsys, "repair", path, "--salvage", "--force")
    assert code == 0 and f"{ids['c']}: salvaged (16 steps)" in out
    after = tree_digest(path)
    assert {k: after[k] for k in before} == before, "committed episodes were touched"
    store = EpisodeStore.open(str(path))
    assert store.episode_ids() == [ids["a"], ids["b"], ids["c"]]
    assert store.info(ids["c"])["outcome"] == SALVAGED
    _, out, _ = run(capsys, "ls", path)
    c = row_of(out, ids["c"]).split()
    assert c[3] == "16" and f"FAIL {SALVAGED}" in row_of(out, ids["c"])
    assert "3 committed episodes, 66 steps" in out


# --------------------------------------------------------------------------------------------
# view


def test_view_writes_and_prints_the_files(ro, tmp_path: Path, capsys) -> None:
    path, ids = ro
    out_dir = tmp_path / "view"
    code, out, err = run(capsys, "view", path, ids["a"], "--out", out_dir)
    assert code == 0, err
    mp4 = out_dir / f"{ids['a']}.top.mp4"
    png = out_dir / f"{ids['a']}.png"
    assert str(mp4) in out and str(png) in out and "checksums verified" in out
    reader = iio.get_reader(mp4, "ffmpeg")
    frames = list(reader.iter_data())
    reader.close()
    assert len(frames) == len(SOURCES_A) and frames[0].shape == (CAM_H, CAM_W, 3)
    assert png.stat().st_size > 20_000
    rrd = out_dir / f"{ids['a']}.rrd"
    try:
        import rerun  # noqa: F401
    except ImportError:
        assert "rerun-sdk is not installed" in out and not rrd.exists()
    else:
        assert str(rrd) in out and rrd.stat().st_size > 1_000


def test_view_without_rerun_says_so(ro, tmp_path: Path, capsys, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "rerun", None)
    path, ids = ro
    code, out, _ = run(capsys, "view", path, ids["b"], "--out", tmp_path)
    assert code == 0 and "note: rerun-sdk is not installed" in out
    assert not list(tmp_path.glob("*.rrd"))


# --------------------------------------------------------------------------------------------
# bad input


def _bad(capsys, *argv) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    assert "Traceback" not in err and err.startswith("dojo episodes: error: ")
    return err


def test_not_a_store(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.zarr"
    assert "nope.zarr is not an episode store: no such path" in _bad(capsys, "ls", missing)
    assert not missing.exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "file.txt is not an episode store" in _bad(capsys, "show", a_file, "ep_000000_x")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no readable zarr.json" in _bad(capsys, "view", empty, "0")
    assert "no readable zarr.json" in _bad(capsys, "repair", empty)
    assert list(empty.iterdir()) == []


def test_incompatible_format_version(ro, tmp_path: Path, capsys) -> None:
    path, _ = ro
    copy = tmp_path / "v99.zarr"
    shutil.copytree(path, copy)
    meta = json.loads((copy / "zarr.json").read_text())
    meta["attributes"]["format_version"] = 99
    (copy / "zarr.json").write_text(json.dumps(meta))
    before = tree_digest(copy)
    for argv in (("ls", copy), ("repair", copy, "--force")):
        err = _bad(capsys, *argv)
        assert "format_version 99" in err and "v99.zarr" in err
    assert tree_digest(copy) == before


def test_unknown_episode_suggests_the_nearest(ro, capsys) -> None:
    path, ids = ro
    wrong = ids["a"][:-1] + ("0" if ids["a"][-1] != "0" else "1")  # one character off
    err = _bad(capsys, "show", path, wrong)
    assert f"no episode '{wrong}'" in err and f"nearest: {ids['a']}" in err
    err = _bad(capsys, "view", path, "ep_000007_deadbeef")
    assert "no episode 'ep_000007_deadbeef'" in err and ids["b"] in err
    err = _bad(capsys, "show", path, "ep_0000")
    assert "matches 2 episodes" in err
    err = _bad(capsys, "show", path, ids["c"])
    assert f"'{ids['c']}' is not committed" in err and "repair" in err


def test_usage_errors_exit_2_and_help_exits_0(capsys) -> None:
    assert episodes_cmd.main(["bogus"]) == 2
    assert episodes_cmd.main(["show", "only-a-store"]) == 2
    assert episodes_cmd.main(["export", "s", "o"]) == 2  # --repo-id is required
    assert episodes_cmd.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "ls" in out and "repair" in out and "view" in out


def test_unexpected_failure_exits_1_without_traceback(ro, capsys, monkeypatch) -> None:
    path, ids = ro

    def broken(*args, **kwargs):
        raise RuntimeError("encoder exploded")

    monkeypatch.setattr(view, "render_episode", broken)
    code, _, err = run(capsys, "view", path, ids["a"])
    assert code == 1
    assert "view failed unexpectedly: RuntimeError: encoder exploded" in err
    assert "Traceback" not in err
    code, _, err = run(capsys, "-v", "view", path, ids["a"])
    assert code == 1 and "Traceback" in err


# --------------------------------------------------------------------------------------------
# export / import: thin wrappers over episodes.lerobot


def _fake(real, calls: list, result):
    sig = inspect.signature(real)

    def fake(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)  # fails if the wrapper drifts from the signature
        bound.apply_defaults()
        calls.append(dict(bound.arguments))
        if isinstance(result, Exception):
            raise result
        return result

    return fake


def test_export_passes_resolved_ids_and_video_flag(ro, tmp_path: Path, capsys, monkeypatch) -> None:
    path, ids = ro
    calls: list = []
    out_dir = tmp_path / "ds"
    monkeypatch.setattr(lr, "export_lerobot", _fake(lr.export_lerobot, calls, out_dir))
    code, out, err = run(
        capsys, "export", path, out_dir, "--repo-id", "me/cubes", "--episodes", "1", ids["a"][:9]
    )
    assert code == 0, err
    (call,) = calls
    assert isinstance(call["store"], EpisodeStore) and call["store"].mode == "r"
    assert call["root"] == out_dir and call["repo_id"] == "me/cubes"
    assert call["episode_ids"] == [ids["b"], ids["a"]] and call["video"] is True
    assert "exported 2 episodes" in out and str(out_dir) in out

    calls.clear()
    code, out, _ = run(capsys, "export", path, out_dir, "--repo-id", "me/cubes", "--no-video")
    assert code == 0 and calls[0]["episode_ids"] is None and calls[0]["video"] is False
    assert ids["a"] in out and ids["b"] in out and ids["c"] not in out

    err = _bad(capsys, "export", path, out_dir, "--repo-id", "x", "--episodes", "ep_000009_x")
    assert "no episode 'ep_000009_x'" in err

    monkeypatch.setattr(
        lr, "export_lerobot", _fake(lr.export_lerobot, [], StoreError(f"{out_dir} is not empty"))
    )
    assert f"{out_dir} is not empty" in _bad(capsys, "export", path, out_dir, "--repo-id", "x")


def test_import_opens_store_for_append_and_prints_ids(fresh, tmp_path: Path, capsys, monkeypatch):
    path, _ = fresh
    root = tmp_path / "lerobot_ds"
    root.mkdir()
    calls: list = []
    monkeypatch.setattr(
        lr, "import_lerobot", _fake(lr.import_lerobot, calls, ["ep_000003_aaaaaaaa"])
    )
    code, out, err = run(capsys, "import", root, path, "--repo-id", "me/demos")
    assert code == 0, err
    (call,) = calls
    assert call["root"] == root and call["repo_id"] == "me/demos"
    assert call["store"].mode == "a" and call["store"].url == str(path)
    assert "imported 1 episode" in out and "ep_000003_aaaaaaaa" in out

    assert "no such directory" in _bad(capsys, "import", tmp_path / "nope", path, "--repo-id", "x")
    assert "not an episode store" in _bad(
        capsys, "import", root, tmp_path / "nostore", "--repo-id", "x"
    )
    assert len(calls) == 1
    monkeypatch.setattr(
        lr,
        "import_lerobot",
        _fake(lr.import_lerobot, [], StoreError(f"{root}: 'action' has shape (6,)")),
    )
    assert "'action' has shape (6,)" in _bad(capsys, "import", root, path, "--repo-id", "x")
