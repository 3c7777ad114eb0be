"""episodes.view: control-source segments, summaries, array descriptions, and the files
``dojo episodes view`` writes (MP4 per camera, PNG plot, rerun recording), read back.

The helpers at the top build the small stores that tests/dojo/test_episodes_cmd.py uses too.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import imageio.v2 as iio
import imageio.v3 as iio3
import numpy as np
import pytest

from episodes import view
from episodes.store import ChecksumError, EpisodeStore, StoreConfig
from episodes.synthetic import storage_spec
from robot.schema import ControlSource, RobotSpec

FPS = 10.0
JOINTS = ("shoulder", "elbow", "gripper")
CAM_W, CAM_H = 32, 24
P, H, S, HOLD = (int(s) for s in ControlSource)

# Episode A: policy 1.5 s, then a person takes over for 1 s, then the arm holds for 0.5 s.
SOURCES_A = [P] * 15 + [H] * 10 + [HOLD] * 5
SOURCES_B = [S] * 20  # scripted only, in simulated time
SOURCES_C = [P] * 20  # left uncommitted; 16 steps (two whole low-dim chunks) are on disk
STARTED_A = 1.7e9
SEGMENTS_A = "0.0-1.5 s policy, 1.5-2.5 s human, 2.5-3.0 s hold"


def make_spec(cameras: tuple[tuple[str, int, int], ...] = (("top", CAM_W, CAM_H),)) -> RobotSpec:
    return storage_spec("tiny_arm", JOINTS, cameras, FPS)


def frame(i: int, h: int = CAM_H, w: int = CAM_W) -> np.ndarray:
    """A flat colour that changes with the step, so a video frame can be told from another."""
    img = np.empty((h, w, 3), np.uint8)
    img[...] = (min(8 * i, 255), 100, max(200 - 5 * i, 0))
    return img


def joint_pos(i: int) -> np.ndarray:
    return np.sin(np.array([i / 5, i / 7, i / 9]))


def record(store: EpisodeStore, instruction: str, sources: list[int], started_at: float) -> Any:
    """Begin an episode and append one step per entry of ``sources``; returns the writer."""
    writer = store.begin(instruction, "pick_place", started_at)
    for i, src in enumerate(sources):
        writer.append(
            started_at + i / FPS,
            joint_pos(i),
            np.zeros(len(JOINTS)),
            joint_pos(i) + 0.2,
            src,
            {c.name: frame(i, c.height, c.width) for c in store.cameras},
        )
    return writer


def build_store(path: Path) -> tuple[EpisodeStore, dict[str, str], Any]:
    """Store with committed episodes ``"a"`` and ``"b"`` and an uncommitted ``"c"`` whose writer
    (returned, still open, in this process) never commits."""
    config = StoreConfig(min_free_bytes=0, lowdim_chunk_steps=8, growth_steps=16, durable=False)
    store = EpisodeStore.create(str(path), make_spec(), FPS, config)
    ids = {
        "a": record(store, "pick up the red cube", SOURCES_A, STARTED_A).commit("placed", True),
        "b": record(store, "push the block left", SOURCES_B, 1000.0).commit("timeout", False),
    }
    writer_c = record(store, "stack the cups", SOURCES_C, STARTED_A + 60)
    ids["c"] = writer_c.id
    return store, ids, writer_c


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> content hash of every file under ``root`` (to prove nothing was modified)."""
    return {
        str(p.relative_to(root)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def corrupt_chunk(store_path: Path, episode_id: str, array: str) -> Path:
    """Change one stored chunk of ``array`` (bytes differ, so its checksum no longer holds)."""
    chunk = sorted((store_path / "episodes" / episode_id / array / "c").rglob("*"))[0]
    if chunk.is_dir():
        chunk = next(p for p in sorted(chunk.rglob("*")) if p.is_file())
    chunk.write_bytes(chunk.read_bytes() + b"\0")
    return chunk


def colour_pixels(png: Path, colour: str) -> int:
    rgb = np.asarray(iio3.imread(png))[..., :3]
    return int(np.all(rgb == np.array(view.hex_to_rgb(colour), np.uint8), axis=-1).sum())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("view") / "store.zarr"
    _, ids, _writer = build_store(path)
    return path, ids


# --------------------------------------------------------------------------------------------
# segments and shares


def test_segments_follow_control_source_and_time() -> None:
    t = 50.0 + np.arange(len(SOURCES_A)) / FPS
    segs = view.control_segments(t, np.array(SOURCES_A, np.uint8), FPS)
    assert [(s.name, s.start_step, s.end_step) for s in segs] == [
        ("policy", 0, 15),
        ("human", 15, 25),
        ("hold", 25, 30),
    ]
    assert view.format_segments(segs) == SEGMENTS_A
    assert view.episode_duration(t, FPS) == pytest.approx(3.0)


def test_segments_use_recorded_time_not_step_count() -> None:
    t = np.array([0.0, 0.1, 0.2, 1.0, 1.1])  # a stall of 0.8 s before step 3
    segs = view.control_segments(t, np.array([P, P, P, H, H]), FPS)
    assert [(s.start_s, s.end_s) for s in segs] == [
        (0.0, pytest.approx(1.0)),
        (pytest.approx(1.0), pytest.approx(1.2)),
    ]


def test_unknown_control_source_is_named_not_dropped() -> None:
    segs = view.control_segments(np.arange(3) / FPS, np.array([P, 9, 9]), FPS)
    assert [s.name for s in segs] == ["policy", "unknown(9)"]
    shares = view.source_shares(np.array([P, 9, 9, H]))
    assert shares == {"policy": 0.25, "human": 0.25, "script": 0.0, "hold": 0.0, "unknown(9)": 0.5}
    assert view.control_segments(np.zeros(0), np.zeros(0, np.uint8), FPS) == []


# --------------------------------------------------------------------------------------------
# summaries and array descriptions


def test_summarize_reads_attributes_and_shares(built) -> None:
    path, ids = built
    store = EpisodeStore.open(str(path))
    s = view.summarize(store, ids["a"])
    assert (s.n_steps, s.outcome, s.success, s.started_at) == (30, "placed", True, STARTED_A)
    assert s.duration_s == pytest.approx(3.0)
    assert s.shares["policy"] == pytest.approx(0.5) and s.shares["human"] == pytest.approx(1 / 3)
    assert s.shares["hold"] == pytest.approx(1 / 6) and s.shares["script"] == 0.0
    on_disk = sum(
        p.stat().st_size for p in (path / "episodes" / ids["a"]).rglob("*") if p.is_file()
    )
    assert s.nbytes == on_disk > 0


def test_describe_arrays_names_codecs_and_checksums(built) -> None:
    path, ids = built
    store = EpisodeStore.open(str(path))
    infos = {a.name: a for a in view.describe_arrays(store, ids["a"])}
    assert set(infos) == {
        "t",
        "obs/joint_pos",
        "obs/joint_vel",
        "action",
        "control_source",
        "obs/images/top",
    }
    top = infos["obs/images/top"]
    assert (top.shape, top.dtype, top.chunks) == (
        (30, CAM_H, CAM_W, 3),
        "uint8",
        (1, CAM_H, CAM_W, 3),
    )
    assert top.codecs == "jpeg(q90)"
    assert infos["action"].codecs == "zstd(3)" and infos["action"].shape == (30, 3)
    recorded = store.info(ids["a"])["checksum"]
    assert {k: a.checksum for k, a in infos.items()} == recorded
    assert all(a.nbytes_stored and a.nbytes_stored > 0 for a in infos.values())


# --------------------------------------------------------------------------------------------
# the files view writes


def test_render_writes_video_plot_and_recording(built, tmp_path: Path) -> None:
    path, ids = built
    before = tree_digest(path)
    store = EpisodeStore.open(str(path))
    result = view.render_episode(store, ids["a"], tmp_path / "out")

    mp4 = result.videos["top"]
    assert mp4 == tmp_path / "out" / f"{ids['a']}.top.mp4"
    reader = iio.get_reader(mp4, "ffmpeg")
    meta = reader.get_meta_data()
    frames = list(reader.iter_data())  # len(reader) is inf for ffmpeg
    reader.close()
    assert len(frames) == len(SOURCES_A)
    assert frames[0].shape == (CAM_H, CAM_W, 3)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == pytest.approx(FPS)
    for i in (0, 14, 29):  # the right frame in the right place (within H.264 loss)
        got = frames[i].reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(got, frame(i)[0, 0].astype(float), atol=8)

    assert result.plot is not None and result.plot.stat().st_size > 20_000
    human = colour_pixels(result.plot, view.SOURCE_COLOURS[ControlSource.HUMAN])
    policy = colour_pixels(result.plot, view.SOURCE_COLOURS[ControlSource.POLICY])
    hold = colour_pixels(result.plot, view.SOURCE_COLOURS[ControlSource.HOLD])
    script = colour_pixels(result.plot, view.SOURCE_COLOURS[ControlSource.SCRIPT])
    assert human > 5_000 and script == 0
    # the band is proportional to time: policy 1.5 s, human 1.0 s, hold 0.5 s
    assert policy / human == pytest.approx(1.5, rel=0.1)
    assert hold / human == pytest.approx(0.5, rel=0.1)

    if result.rrd is not None:
        assert result.rrd.stat().st_size > 1_000
    assert tree_digest(path) == before, "viewing must not modify the store"


def test_plot_of_scripted_episode_has_no_human_colour(built, tmp_path: Path) -> None:
    path, ids = built
    store = EpisodeStore.open(str(path))
    result = view.render_episode(store, ids["b"], tmp_path, rerun=False)
    assert result.rrd is None and result.plot is not None
    assert colour_pixels(result.plot, view.SOURCE_COLOURS[ControlSource.HUMAN]) == 0
    assert colour_pixels(result.plot, view.SOURCE_COLOURS[ControlSource.SCRIPT]) > 10_000


def test_rerun_recording_holds_the_episode(built, tmp_path: Path) -> None:
    pytest.importorskip("rerun")
    path, ids = built
    store = EpisodeStore.open(str(path))
    ep = store.read(ids["a"])
    rrd = view.write_rerun(store, ep, tmp_path / "a.rrd")
    assert rrd is not None and rrd.read_bytes()[:3] == b"RRF"
    cli = Path(sys.executable).with_name("rerun")
    if not cli.exists():
        pytest.skip("rerun CLI not next to the interpreter; file written, contents not checked")
    dump = subprocess.run(
        [str(cli), "rrd", "print", str(rrd)], capture_output=True, text=True, timeout=60
    )
    assert dump.returncode == 0, dump.stderr
    for entity in (
        "/camera/top",
        "/joints/shoulder/position",
        "/joints/gripper/action",
        "/control_source",
        "/episode",
    ):
        assert entity in dump.stdout, entity


def test_missing_rerun_is_a_note_not_a_failure(built, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun -> ImportError
    path, ids = built
    store = EpisodeStore.open(str(path))
    result = view.render_episode(store, ids["b"], tmp_path)
    assert result.rrd is None
    assert any("rerun-sdk is not installed" in n for n in result.notes)
    assert not list(tmp_path.glob("*.rrd"))
    assert result.plot is not None and result.videos["top"].exists()


def test_odd_sized_frames_are_padded_to_even(tmp_path: Path) -> None:
    frames = np.stack([frame(i, 25, 33) for i in range(7)])
    mp4 = view.write_video(frames, 7, 15.0, tmp_path / "odd.mp4")
    reader = iio.get_reader(mp4, "ffmpeg")
    got = list(reader.iter_data())
    reader.close()
    assert len(got) == 7 and got[0].shape == (26, 34, 3)


def test_render_refuses_a_corrupted_episode(built, tmp_path: Path) -> None:
    path, ids = built
    copy = tmp_path / "copy.zarr"
    shutil.copytree(path, copy)
    corrupt_chunk(copy, ids["a"], "obs/images/top")  # a trailing byte: still a decodable JPEG
    store = EpisodeStore.open(str(copy))
    with pytest.raises(ChecksumError, match=rf"{ids['a']}.*'obs/images/top'"):
        view.render_episode(store, ids["a"], tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.mp4"))
    result = view.render_episode(store, ids["a"], tmp_path / "out", verify=False, rerun=False)
    assert result.plot is not None and result.videos["top"].exists()
