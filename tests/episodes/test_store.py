"""The zarr episode store: round trips, commit-last, readers vs writers, repair, checksums,
fsspec, named errors, and running out of space part-way through an episode."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import queue
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.storage import LocalStore

from episodes.repair import SALVAGED
from episodes.store import (
    ChecksumError,
    EpisodeNotFoundError,
    EpisodeStore,
    ImageCodec,
    StoreConfig,
    StoreError,
)
from episodes.synthetic import append_steps
from robot.schema import ControlSource, SchemaError
from tests.episodes import crash_writer
from tests.episodes.crash_writer import CRASH_TRIAL

REPO = Path(crash_writer.__file__).resolve().parents[2]


@pytest.fixture(params=["local", "memory"])
def url(request, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store.zarr")
    return f"memory://vla-dojo-tests/{uuid.uuid4().hex}.zarr"


@pytest.fixture
def local_url(tmp_path: Path) -> str:
    return str(tmp_path / "store.zarr")


def new_store(url: str, **config) -> EpisodeStore:
    return EpisodeStore.create(
        url, CRASH_TRIAL.spec(), CRASH_TRIAL.fps, CRASH_TRIAL.config(**config)
    )


def tree_digest(root: Path) -> dict[str, str]:
    """Path -> content hash of every file under ``root`` (to prove nothing was modified)."""
    return {
        str(p.relative_to(root)): hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# round trips


def test_round_trip_every_field(url: str) -> None:
    store = new_store(url)
    seed = 7  # 10 steps: two whole low-dim chunks, a partial one, one growth
    data = CRASH_TRIAL.data(seed, n=21)
    with store.begin("pick up the red cube", "pick_cube", 123.25) as writer:
        append_steps(writer, data)
        assert writer.n_steps == 21
        episode_id = writer.commit("placed", True)
    assert store.episode_ids() == [episode_id]
    assert store.readbacks == 0, "commit should hash chunks as they are written"

    ep = EpisodeStore.open(url).read(episode_id)
    assert (ep.id, ep.instruction, ep.task) == (episode_id, "pick up the red cube", "pick_cube")
    assert (ep.success, ep.outcome, ep.started_at, ep.robot) == (
        True,
        "placed",
        123.25,
        "crash_arm",
    )
    assert ep.n_steps == 21
    assert ep.t.dtype == np.float64 and ep.joint_pos.dtype == np.float32
    assert ep.control_source.dtype == np.uint8
    np.testing.assert_array_equal(ep.t, data["t"])  # float64 ROS time, bit-exact
    for key in ("joint_pos", "joint_vel", "action", "control_source"):
        np.testing.assert_array_equal(getattr(ep, key), data[key])
    wrist = ep.images["wrist"][:]
    np.testing.assert_array_equal(wrist, data["images"]["wrist"])  # zstd: exact
    top = ep.images["top"][:]
    assert top.shape == data["images"]["top"].shape and top.dtype == np.uint8
    err = np.abs(top.astype(np.int16) - data["images"]["top"].astype(np.int16))
    assert err.mean() < 3.0 and err.max() < 40, (err.mean(), err.max())  # JPEG q85 loss
    np.testing.assert_array_equal(ep.images["top"][5], top[5])  # lazy frame access
    assert ep.rewards == {}


def test_store_metadata_round_trips(url: str) -> None:
    spec = CRASH_TRIAL.spec()
    EpisodeStore.create(url, spec, 30.0, CRASH_TRIAL.config())
    store = EpisodeStore.open(url)
    assert store.robot_name == spec.name and store.joint_names == spec.joint_names
    assert store.fps == 30.0 and store.format_version == 1 and store.mode == "r"
    assert [c.name for c in store.cameras] == ["top", "wrist"]
    assert store.image_codecs == {"top": ImageCodec("jpeg", 85), "wrist": ImageCodec("zstd")}
    from robot.schema import features_for

    assert store.features == features_for(spec)
    assert store.created_at


def test_episode_ids_in_begin_order_and_unique(local_url: str) -> None:
    store = new_store(local_url)
    ids = [CRASH_TRIAL.record(store, seed, n=3) for seed in range(5)]
    assert store.episode_ids() == ids
    assert len(set(ids)) == 5 and all(i.startswith("ep_00000") for i in ids)
    assert [int(i.split("_")[1]) for i in ids] == [0, 1, 2, 3, 4]


def test_commit_writes_committed_last_in_one_write(local_url: str, monkeypatch) -> None:
    store = new_store(local_url)
    writes: list[tuple[str, bytes]] = []
    real_set, real_set_sync = LocalStore.set, LocalStore.set_sync

    async def spy_set(self, key, value):
        writes.append((key, value.to_bytes()))
        await real_set(self, key, value)

    def spy_set_sync(self, key, value):
        writes.append((key, value.to_bytes()))
        real_set_sync(self, key, value)

    monkeypatch.setattr(LocalStore, "set", spy_set)
    monkeypatch.setattr(LocalStore, "set_sync", spy_set_sync)
    episode_id = CRASH_TRIAL.record(store, 11)
    mine = [(k, v) for k, v in writes if k.startswith(f"episodes/{episode_id}/")]
    group_key = f"episodes/{episode_id}/zarr.json"
    last_key, last_value = mine[-1]
    assert last_key == group_key, f"last write was {last_key}"
    attrs = json.loads(last_value)["attributes"]
    assert attrs["committed"] is True and attrs["n_steps"] == CRASH_TRIAL.steps(11)
    assert set(attrs["checksum"]) == set(store.features)
    hidden = f"episodes/.begin-{episode_id}."  # made there, then renamed into place

    def group_write(key: str) -> bool:
        return key == group_key or (key.startswith(hidden) and key.count("/") == 2)

    earlier = [json.loads(v)["attributes"] for k, v in writes if group_write(k)]
    assert len(earlier) >= 2 and all(a["committed"] is False for a in earlier[:-1])


def test_failed_commit_write_leaves_no_episode(local_url: str, monkeypatch) -> None:
    store = new_store(local_url)
    kept = CRASH_TRIAL.record(store, 1)
    real_set_sync, real_set = LocalStore.set_sync, LocalStore.set

    def committing(key, value) -> bool:
        return key.endswith("/zarr.json") and b'"committed": true' in value.to_bytes()

    def failing_sync(self, key, value):
        if committing(key, value):
            raise OSError(errno.EIO, "simulated I/O error")
        real_set_sync(self, key, value)

    async def failing(self, key, value):
        if committing(key, value):
            raise OSError(errno.EIO, "simulated I/O error")
        await real_set(self, key, value)

    monkeypatch.setattr(LocalStore, "set_sync", failing_sync)
    monkeypatch.setattr(LocalStore, "set", failing)
    with pytest.raises(StoreError, match=r"writing episode ep_000001_\w+ failed: .*simulated"):
        CRASH_TRIAL.record(store, 2)
    monkeypatch.undo()
    assert store.episode_ids() == [kept] and store.uncommitted_ids() == []
    assert EpisodeStore.open(local_url).episode_ids() == [kept]


def test_commit_that_lands_despite_an_error_is_never_aborted(local_url: str, monkeypatch) -> None:
    """A remote store can time out after storing the commit; the episode is committed then,
    and must not be removed. Likewise if flushing it to disk fails afterwards."""
    store = new_store(local_url)
    real_set_sync, real_set = LocalStore.set_sync, LocalStore.set

    def committing(key, value) -> bool:
        return key.endswith("/zarr.json") and b'"committed": true' in value.to_bytes()

    def late_error_sync(self, key, value):
        real_set_sync(self, key, value)
        if committing(key, value):
            raise TimeoutError("reply lost after the object was stored")

    async def late_error(self, key, value):
        await real_set(self, key, value)
        if committing(key, value):
            raise TimeoutError("reply lost after the object was stored")

    monkeypatch.setattr(LocalStore, "set_sync", late_error_sync)
    monkeypatch.setattr(LocalStore, "set", late_error)
    episode_id = CRASH_TRIAL.record(store, 5)
    monkeypatch.undo()

    from episodes import backend

    def broken_fsync(path):
        raise OSError(errno.EIO, "fsync failed")

    monkeypatch.setattr(backend, "fsync", broken_fsync)
    second = CRASH_TRIAL.record(store, 6)
    monkeypatch.undo()
    reader = EpisodeStore.open(local_url)
    assert reader.episode_ids() == [episode_id, second]
    CRASH_TRIAL.check(reader, episode_id)
    CRASH_TRIAL.check(reader, second)


# --------------------------------------------------------------------------------------------
# readers and writers


def test_readers_ignore_uncommitted(url: str) -> None:
    store = new_store(url)
    done = CRASH_TRIAL.record(store, 3)
    data = CRASH_TRIAL.data(4)
    writer = store.begin("seed=4", "crash-trial", 4.0)
    append_steps(writer, data, stop=5)
    reader = EpisodeStore.open(url)
    assert reader.episode_ids() == [done]
    assert reader.uncommitted_ids() == [writer.id]
    with pytest.raises(EpisodeNotFoundError, match=rf"'{writer.id}' is not committed"):
        reader.read(writer.id)
    append_steps(writer, data, start=5)
    writer.commit("success", True)
    assert reader.episode_ids() == [done, writer.id]
    CRASH_TRIAL.check(reader, writer.id)


def test_concurrent_read_while_writing_thread(url: str) -> None:
    """A thread records episodes while this one keeps opening the store and reading them."""
    store = new_store(url)
    seeds = list(range(100, 112))
    errors: queue.Queue = queue.Queue()

    def record_all() -> None:
        try:
            for seed in seeds:
                CRASH_TRIAL.record(store, seed)
        except BaseException as exc:  # surfaced below
            errors.put(exc)

    thread = threading.Thread(target=record_all, daemon=True)
    thread.start()
    seen: set[str] = set()
    reads = 0
    deadline = time.monotonic() + 120
    while thread.is_alive() or len(seen) < len(seeds):
        reader = EpisodeStore.open(url)  # a fresh handle, as a learner polling would
        for episode_id in reader.episode_ids():
            CRASH_TRIAL.check(reader, episode_id)  # complete, verified, exact
            seen.add(episode_id)
            reads += 1
        assert len(reader.uncommitted_ids()) <= 1
        assert time.monotonic() < deadline, f"only {len(seen)} of {len(seeds)} episodes seen"
        thread.join(timeout=0.01)
        if not errors.empty():
            raise errors.get()
    thread.join(timeout=60)
    assert not thread.is_alive() and errors.empty()
    assert len(seen) == len(seeds) and reads > len(seeds)


def test_concurrent_read_while_another_process_writes(local_url: str) -> None:
    """A separate process records while this one reads repeatedly: never a partial episode."""
    new_store(local_url)
    proc = subprocess.Popen(
        [
            sys.executable,
            crash_writer.__file__,
            local_url,
            "--episodes",
            "15",
            "--seed-base",
            "500",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: set[str] = set()
    polls = 0
    try:
        while True:
            running = proc.poll() is None
            reader = EpisodeStore.open(local_url)
            for episode_id in reader.episode_ids():
                if episode_id not in seen:
                    CRASH_TRIAL.check(reader, episode_id)
                    seen.add(episode_id)
            polls += 1
            if not running:
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    reported = {line.split()[1] for line in out.splitlines() if line.startswith("COMMITTED")}
    assert len(reported) == 15 and reported == seen
    assert polls > 2


def test_reading_modifies_nothing(local_url: str) -> None:
    store = new_store(local_url)
    episode_id = CRASH_TRIAL.record(store, 12)
    store.write_rewards(episode_id, "c", np.ones(CRASH_TRIAL.steps(12)), {})
    root = Path(local_url)
    before = tree_digest(root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    for mode in ("r", "a"):
        handle = EpisodeStore.open(local_url, mode)
        assert handle.episode_ids() == [episode_id] and handle.uncommitted_ids() == []
        handle.info(episode_id)["n_steps"] = -1  # a copy: the store's view is unchanged
        ep = handle.read(episode_id, verify=True)
        ep.images["top"][:]
        with pytest.raises(Exception, match=r"read-only|read only"):
            ep.images["top"][0] = np.zeros((24, 32, 3), np.uint8)
        CRASH_TRIAL.check(handle, episode_id)
    assert tree_digest(root) == before
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes


# --------------------------------------------------------------------------------------------
# abort, context manager, misuse


def test_exception_inside_with_aborts_and_removes(url: str) -> None:
    store = new_store(url)
    kept = CRASH_TRIAL.record(store, 5)
    data = CRASH_TRIAL.data(6)
    with (
        pytest.raises(RuntimeError, match="operator hit stop"),
        store.begin("seed=6", "crash-trial", 6.0) as writer,
    ):
        append_steps(writer, data, stop=6)
        raise RuntimeError("operator hit stop")
    assert writer.state == "aborted"
    assert store.episode_ids() == [kept] and store.uncommitted_ids() == []


def test_leaving_with_without_commit_aborts(url: str) -> None:
    store = new_store(url)
    with store.begin("x", "y", 0.0) as writer:
        append_steps(writer, CRASH_TRIAL.data(1), stop=2)
    assert writer.state == "aborted" and store.uncommitted_ids() == []


def test_writer_misuse_is_refused(url: str) -> None:
    store = new_store(url)
    writer = store.begin("x", "y", 0.0)
    with pytest.raises(StoreError, match="has no steps; abort it"):
        writer.commit("done", True)
    append_steps(writer, CRASH_TRIAL.data(2), stop=3)
    with pytest.raises(SchemaError, match="outcome must be a non-empty str"):
        writer.commit("", True)
    with pytest.raises(SchemaError, match="success must be a bool"):
        writer.commit("done", "yes")
    episode_id = writer.commit("done", True)
    with pytest.raises(
        StoreError, match=f"cannot append: episode {episode_id} is already committed"
    ):
        append_steps(writer, CRASH_TRIAL.data(2), stop=1)
    with pytest.raises(StoreError, match="already committed"):
        writer.abort("late")
    other = store.begin("x", "y", 0.0)
    other.abort("changed my mind")
    other.abort("twice is fine")
    with pytest.raises(StoreError, match="is already aborted"):
        other.commit("done", True)


def test_bad_step_is_refused_naming_the_field_and_episode_survives(url: str) -> None:
    store = new_store(url)
    data = CRASH_TRIAL.data(9, n=6)
    writer = store.begin("seed=9", "crash-trial", 9.0)
    append_steps(writer, data, stop=2)
    images = {name: frames[2] for name, frames in data["images"].items()}
    good = dict(
        t=data["t"][2],
        joint_pos=data["joint_pos"][2],
        joint_vel=data["joint_vel"][2],
        action=data["action"][2],
        control_source=int(data["control_source"][2]),
        images=images,
    )
    cases = [
        ({"joint_pos": np.zeros(4)}, r"joint_pos has shape \(4,\), expected \(3,\)"),
        ({"action": np.zeros((3, 1))}, r"action has shape \(3, 1\)"),
        ({"t": data["t"][1]}, r"t=.* does not increase"),
        ({"t": float("nan")}, r"t=nan is not finite"),
        ({"control_source": 9}, r"control_source=9 is not one of \['POLICY=0'"),
        ({"images": {"top": images["top"]}}, r"missing \['wrist'\]"),
        ({"images": {**images, "side": images["top"]}}, r"unknown \['side'\]"),
        ({"images": {**images, "top": images["top"][:, :16]}}, r"'top' has shape \(24, 16, 3\)"),
        (
            {"images": {**images, "wrist": images["wrist"].astype(np.float32)}},
            r"'wrist' must be a uint8 array, got float32",
        ),
    ]
    for change, message in cases:
        with pytest.raises(SchemaError, match=message):
            writer.append(**{**good, **change})
        assert writer.state == "open" and writer.n_steps == 2
    append_steps(writer, data, start=2)
    writer.commit("success", True)
    ep = store.read(writer.id)
    np.testing.assert_array_equal(ep.joint_pos, data["joint_pos"])
    assert ControlSource(int(ep.control_source[0])) in ControlSource


# --------------------------------------------------------------------------------------------
# repair


def abandon(store: EpisodeStore, seed: int, n: int) -> str:
    """Leave an episode uncommitted after ``n`` steps, as a crashed recorder would."""
    writer = store.begin(f"seed={seed}", "crash-trial", float(seed))
    append_steps(writer, CRASH_TRIAL.data(seed), stop=n)
    return writer.id


def test_repair_skips_live_writers_then_removes_when_forced(local_url: str) -> None:
    store = new_store(local_url)
    kept = CRASH_TRIAL.record(store, 1)
    before = tree_digest(Path(local_url) / "episodes" / kept)
    partial = abandon(store, 16, 9)
    report = store.repair()
    assert report.skipped == [partial]
    assert f"writer (pid {os.getpid()}) is still running" in str(report)
    report = store.repair(force=True)
    assert report.removed == [partial] and report.salvaged == []
    assert store.uncommitted_ids() == [] and store.episode_ids() == [kept]
    assert tree_digest(Path(local_url) / "episodes" / kept) == before  # untouched
    assert str(store.repair()) == f"{local_url}: no uncommitted episodes"


def test_repair_salvages_the_complete_prefix(url: str) -> None:
    store = new_store(url)
    kept = CRASH_TRIAL.record(store, 1)
    partial = abandon(store, 16, 13)  # chunks of 4: 12 low-dim steps flushed, 13 frames
    tiny = abandon(store, 15, 3)  # no whole low-dim chunk yet: nothing to salvage
    report = store.repair(salvage=True, force=True)
    assert report.salvaged == [partial] and report.removed == [tiny]
    assert report.actions[0].n_steps == 12
    ep = store.read(partial)
    assert (ep.outcome, ep.success, ep.n_steps) == (SALVAGED, False, 12)
    CRASH_TRIAL.check(store, partial, prefix=12)
    assert store.episode_ids() == [kept, partial] and store.uncommitted_ids() == []
    CRASH_TRIAL.check(EpisodeStore.open(url), kept)


def test_repair_removes_group_without_metadata_and_stale_begins(local_url: str) -> None:
    store = new_store(local_url)
    kept = CRASH_TRIAL.record(store, 1)
    episodes = Path(local_url) / "episodes"
    stub = episodes / "ep_000007_0123abcd"  # as an fsspec filesystem with directories can leave
    stub.mkdir()
    (stub / "zarr.4f2a.partial").write_bytes(b"{")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead_pid = int(dead.stdout)
    crashed = episodes / ".begin-ep_000008_00000000"  # a begin killed before its rename
    crashed.mkdir()
    meta = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {"writer": {"host": os.uname().nodename, "pid": dead_pid}},
    }
    (crashed / "zarr.json").write_text(json.dumps(meta))
    old_empty = episodes / ".begin-ep_000009_00000000"
    old_empty.mkdir()
    os.utime(old_empty, (0, 0))
    young_empty = episodes / ".begin-ep_000010_00000000"  # maybe being created right now
    young_empty.mkdir()
    from episodes.writer import host_tag

    killed_early = episodes / f".begin-ep_000011_00000000.{dead_pid}.{host_tag()}"
    killed_early.mkdir()  # its writer died before writing any metadata: the name tells
    live_early = episodes / f".begin-ep_000012_00000000.{os.getpid()}.{host_tag()}"
    live_early.mkdir()
    assert store.uncommitted_ids() == ["ep_000007_0123abcd"]  # hidden begins are not listed
    report = store.repair()
    assert report.removed == ["ep_000007_0123abcd"] and not stub.exists()
    assert not crashed.exists() and not old_empty.exists() and not killed_early.exists()
    assert young_empty.exists() and live_early.exists()
    store.repair(force=True)
    assert not young_empty.exists() and not live_early.exists()
    assert store.episode_ids() == [kept]


# --------------------------------------------------------------------------------------------
# checksums


def _chunk_file(local_url: str, episode_id: str, array: str, step: int) -> Path:
    arr = zarr.open_array(local_url, path=f"episodes/{episode_id}/{array}", mode="r")
    coords = (step // arr.chunks[0],) + (0,) * (arr.ndim - 1)
    return Path(local_url) / arr.path / arr.metadata.encode_chunk_key(coords)


@pytest.mark.parametrize("array", ["obs/images/top", "obs/images/wrist", "action", "t"])
def test_checksum_mismatch_is_detected_naming_episode_and_array(local_url: str, array) -> None:
    store = new_store(local_url)
    other = CRASH_TRIAL.record(store, 3)
    episode_id = CRASH_TRIAL.record(store, 7)
    path = _chunk_file(local_url, episode_id, array, step=5)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x40
    path.write_bytes(bytes(blob))
    reader = EpisodeStore.open(local_url)
    with pytest.raises(
        ChecksumError, match=rf"checksum mismatch in episode '{episode_id}' array '{array}'"
    ):
        reader.read(episode_id)
    CRASH_TRIAL.check(reader, other)  # the others are fine


def test_missing_chunk_is_detected(local_url: str) -> None:
    store = new_store(local_url)
    episode_id = CRASH_TRIAL.record(store, 7)
    _chunk_file(local_url, episode_id, "obs/images/wrist", step=2).unlink()
    with pytest.raises(ChecksumError, match=r"array 'obs/images/wrist' is missing chunk"):
        EpisodeStore.open(local_url).read(episode_id)


def test_verify_false_skips_checksums(local_url: str) -> None:
    store = new_store(local_url)
    episode_id = CRASH_TRIAL.record(store, 7)
    path = _chunk_file(local_url, episode_id, "obs/images/wrist", step=0)
    arr = zarr.open_array(local_url, path=f"episodes/{episode_id}/obs/images/wrist", mode="r")
    frame = arr[0].copy()
    frame[0, 0, 0] ^= 1  # a valid chunk with one pixel changed
    import numcodecs

    path.write_bytes(numcodecs.Zstd(level=3).encode(frame.tobytes()))
    reader = EpisodeStore.open(local_url)
    with pytest.raises(ChecksumError):
        reader.read(episode_id)
    assert reader.read(episode_id, verify=False).images["wrist"][0][0, 0, 0] == frame[0, 0, 0]


# --------------------------------------------------------------------------------------------
# rewards


def test_write_rewards_round_trip_and_overwrite(url: str) -> None:
    store = new_store(url)
    episode_id = CRASH_TRIAL.record(store, 4)
    n = CRASH_TRIAL.steps(4)
    values = np.linspace(-1, 1, n)
    store.write_rewards(episode_id, "vlac-0.3", values, {"checkpoint": "abc", "gamma": 0.99})
    ep = EpisodeStore.open(url).read(episode_id)
    np.testing.assert_array_equal(ep.rewards["vlac-0.3"], values.astype(np.float32))
    assert ep.rewards["vlac-0.3"].dtype == np.float32
    assert ep.reward_attrs["vlac-0.3"] == {"checkpoint": "abc", "gamma": 0.99}
    with pytest.raises(StoreError, match=r"already has rewards from critic 'vlac-0\.3'"):
        store.write_rewards(episode_id, "vlac-0.3", values, {})
    store.write_rewards(episode_id, "vlac-0.3", -values, {"v": 2}, overwrite=True)
    ep = store.read(episode_id)
    np.testing.assert_array_equal(ep.rewards["vlac-0.3"], -values.astype(np.float32))
    assert ep.reward_attrs["vlac-0.3"] == {"v": 2}
    CRASH_TRIAL.check(store, episode_id)  # the episode itself is untouched


def test_write_rewards_errors_are_named(local_url: str) -> None:
    store = new_store(local_url)
    episode_id = CRASH_TRIAL.record(store, 4)
    n = CRASH_TRIAL.steps(4)
    with pytest.raises(SchemaError, match=rf"shape \(3,\), expected \({n},\)"):
        store.write_rewards(episode_id, "c", np.zeros(3), {})
    with pytest.raises(SchemaError, match="not finite \\(first at step 1"):
        store.write_rewards(episode_id, "c", np.r_[0.0, np.nan, np.zeros(n - 2)], {})
    with pytest.raises(SchemaError, match="critic_id 'a/b'"):
        store.write_rewards(episode_id, "a/b", np.zeros(n), {})
    with pytest.raises(SchemaError, match="JSON-serialisable"):
        store.write_rewards(episode_id, "c", np.zeros(n), {"f": object()})
    with pytest.raises(EpisodeNotFoundError, match="no episode 'ep_000099_deadbeef'"):
        store.write_rewards("ep_000099_deadbeef", "c", np.zeros(n), {})
    with pytest.raises(StoreError, match=r"open read-only \(mode='r'\)"):
        EpisodeStore.open(local_url).write_rewards(episode_id, "c", np.zeros(n), {})


def test_incomplete_and_corrupt_rewards(local_url: str) -> None:
    store = new_store(local_url)
    episode_id = CRASH_TRIAL.record(store, 4)
    n = CRASH_TRIAL.steps(4)
    store.write_rewards(episode_id, "good", np.ones(n), {})
    # a relabelling job that died before marking its array complete
    zarr.create_array(
        local_url,
        name=f"episodes/{episode_id}/rewards/dead",
        shape=(n,),
        dtype="float32",
        attributes={"complete": False},
    )
    assert set(EpisodeStore.open(local_url).read(episode_id).rewards) == {"good"}
    store.write_rewards(episode_id, "dead", np.zeros(n), {})  # a leftover is simply replaced
    assert set(EpisodeStore.open(local_url).read(episode_id).rewards) == {"good", "dead"}
    chunk = Path(local_url) / f"episodes/{episode_id}/rewards/good/c/0"
    chunk.write_bytes(chunk.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ChecksumError, match="array 'rewards/good'"):
        EpisodeStore.open(local_url).read(episode_id)


# --------------------------------------------------------------------------------------------
# named errors when opening and creating


def test_open_errors_name_the_path_and_versions(tmp_path: Path) -> None:
    missing = tmp_path / "nope.zarr"
    with pytest.raises(StoreError, match=f"{missing} is not an episode store: no such path"):
        EpisodeStore.open(str(missing))
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match=f"{junk} is not an episode store: it has no readable"):
        EpisodeStore.open(str(junk))
    afile = tmp_path / "file.zarr"
    afile.write_text("x")
    with pytest.raises(StoreError, match="it is a file"):
        EpisodeStore.open(str(afile))
    plain = tmp_path / "plain.zarr"
    zarr.create_group(str(plain), attributes={"hello": 1})
    with pytest.raises(StoreError, match="has no 'format_version' attribute"):
        EpisodeStore.open(str(plain))
    old = tmp_path / "old.zarr"
    zarr.create_group(str(old), attributes={"format_version": 99})
    with pytest.raises(StoreError, match="format_version 99; this vla-dojo reads format_version 1"):
        EpisodeStore.open(str(old))
    with pytest.raises(StoreError, match="mode='w' must be 'r'"):
        EpisodeStore.open(str(old), mode="w")
    with pytest.raises(StoreError, match=r"memory://vla-dojo-tests/absent\.zarr is not an episode"):
        EpisodeStore.open("memory://vla-dojo-tests/absent.zarr")


def test_create_refuses_existing_non_empty_path(tmp_path: Path) -> None:
    target = tmp_path / "busy.zarr"
    target.mkdir()
    (target / "something").write_text("x")
    with pytest.raises(StoreError, match=f"{target} already exists and is not empty"):
        EpisodeStore.create(str(target), CRASH_TRIAL.spec(), 30.0)
    url = str(tmp_path / "s.zarr")
    new_store(url)
    with pytest.raises(StoreError, match="already exists and is not empty"):
        new_store(url)
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    EpisodeStore.create(str(empty), CRASH_TRIAL.spec(), 30.0)  # an empty directory is fine
    with pytest.raises(StoreError, match=r"fps=0.0 must be a positive number"):
        EpisodeStore.create(str(tmp_path / "f.zarr"), CRASH_TRIAL.spec(), 0)
    with pytest.raises(StoreError, match=r"names camera\(s\) \['side'\]"):
        EpisodeStore.create(
            str(tmp_path / "g.zarr"),
            CRASH_TRIAL.spec(),
            30.0,
            StoreConfig(image_codecs={"side": ImageCodec("zstd")}),
        )


def test_open_or_create_refuses_another_robot(tmp_path: Path) -> None:
    url = str(tmp_path / "s.zarr")
    first = EpisodeStore.open_or_create(url, CRASH_TRIAL.spec(), 30.0, CRASH_TRIAL.config())
    episode_id = CRASH_TRIAL.record(first, 1)
    again = EpisodeStore.open_or_create(url, CRASH_TRIAL.spec(), 30.0, CRASH_TRIAL.config())
    assert again.episode_ids() == [episode_id]
    twin = EpisodeStore.open_or_create(
        url, CRASH_TRIAL.spec(name="left_arm"), 30.0, CRASH_TRIAL.config()
    )
    assert (
        twin.read(CRASH_TRIAL.record(twin, 2)).robot == "left_arm"
    )  # same joints, other arm: fine
    other = CRASH_TRIAL.spec(joints=("shoulder", "elbow", "wrist"))
    with pytest.raises(StoreError, match=r"store lacks \['wrist'\]; robot lacks \['gripper'\]"):
        EpisodeStore.open_or_create(url, other, 30.0)
    fewer_cams = CRASH_TRIAL.spec(cameras=(("top", 32, 24),))
    with pytest.raises(
        StoreError, match=r"differ from robot 'crash_arm' in \['obs/images/wrist'\]"
    ):
        EpisodeStore.open_or_create(url, fewer_cams, 30.0)
    with pytest.raises(
        StoreError, match=r"records at fps=30\.0; robot 'crash_arm' asked for fps=15"
    ):
        EpisodeStore.open_or_create(url, CRASH_TRIAL.spec(), 15.0)


def test_read_unknown_episode_is_named(local_url: str) -> None:
    store = new_store(local_url)
    episode_id = CRASH_TRIAL.record(store, 1)
    typo = episode_id[:-1] + ("0" if episode_id[-1] != "0" else "1")
    with pytest.raises(EpisodeNotFoundError, match=rf"no episode '{typo}'; did you mean"):
        store.read(typo)
    with pytest.raises(EpisodeNotFoundError, match="no episode 'banana'"):
        store.read("banana")
    with pytest.raises(KeyError.__mro__[1]):  # LookupError, for callers that catch that
        store.info("banana")


def test_read_only_handle_cannot_write(local_url: str) -> None:
    new_store(local_url)
    reader = EpisodeStore.open(local_url)
    for call in (lambda: reader.begin("x", "y", 0.0), reader.repair):
        with pytest.raises(StoreError, match=rf"{local_url} is open read-only"):
            call()


def test_free_space_margin_is_checked_before_begin(local_url: str) -> None:
    store = new_store(local_url, min_free_bytes=1 << 62)
    with pytest.raises(StoreError, match=r"bytes \(.* MiB\) free, below the margin of 4611686"):
        store.begin("x", "y", 0.0)
    assert store.uncommitted_ids() == []


# --------------------------------------------------------------------------------------------
# out of space


@pytest.mark.parametrize("fail_after", [0, 3, 9, 17, 40])
def test_enospc_partway_aborts_that_episode_only(local_url: str, monkeypatch, fail_after) -> None:
    """Writes fail with ENOSPC after ``fail_after`` more objects: during begin, frames,
    low-dim flushes, growth or commit. The episode is aborted and earlier ones stay intact."""
    store = new_store(local_url)
    kept = [CRASH_TRIAL.record(store, 1), CRASH_TRIAL.record(store, 2)]
    before = tree_digest(Path(local_url) / "episodes")
    count = {"n": 0}
    real_set, real_set_sync = LocalStore.set, LocalStore.set_sync

    def check() -> None:
        count["n"] += 1
        if count["n"] > fail_after:
            raise OSError(errno.ENOSPC, "No space left on device")

    async def full_set(self, key, value):
        check()
        await real_set(self, key, value)

    def full_set_sync(self, key, value):
        check()
        real_set_sync(self, key, value)

    monkeypatch.setattr(LocalStore, "set", full_set)
    monkeypatch.setattr(LocalStore, "set_sync", full_set_sync)
    with pytest.raises(StoreError, match=r"out of space writing episode ep_000002_[0-9a-f]{8}: "):
        CRASH_TRIAL.record(store, 16, n=30)
    monkeypatch.undo()
    assert store.uncommitted_ids() == [], "the failed episode must be removed"
    reader = EpisodeStore.open(local_url)
    assert reader.episode_ids() == kept
    for episode_id in kept:
        CRASH_TRIAL.check(reader, episode_id)
    assert tree_digest(Path(local_url) / "episodes") == before
    CRASH_TRIAL.record(store, 3)  # and recording goes on once there is space again


def _can_mount_tmpfs() -> str:
    if shutil.which("unshare") is None:
        return "no unshare(1) on this machine"
    try:
        probe = subprocess.run(
            ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if probe.returncode != 0:
        return (
            "cannot mount a private tmpfs (needs unprivileged user namespaces or root): "
            + probe.stderr.strip()
        )
    return ""


SMALL_FS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from episodes.store import EpisodeStore, StoreError, ImageCodec
    from tests.episodes.crash_writer import CRASH_TRIAL

    url = sys.argv[1] + "/store.zarr"
    cams = (("top", 64, 64), ("wrist", 64, 64))
    cfg = CRASH_TRIAL.config(image_codecs={"top": ImageCodec("zstd"), "wrist": ImageCodec("zstd")})
    store = EpisodeStore.create(url, CRASH_TRIAL.spec(cameras=cams), CRASH_TRIAL.fps, cfg)
    rng = np.random.default_rng(0)

    def record(n):
        with store.begin("noise", "fill", 0.0) as w:
            for i in range(n):
                noise = {c: rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for c, _, _ in cams}
                w.append(float(i), np.zeros(3), np.zeros(3), np.zeros(3), 0, noise)
            return w.commit("ok", True)

    out = {"kept": record(8)}
    try:
        record(400)
        out["error"] = None
    except StoreError as exc:
        out["error"] = str(exc)
    out["episode_ids"] = store.episode_ids()
    out["uncommitted"] = store.uncommitted_ids()
    out["verified"] = store.read(out["kept"]).n_steps
    margin = EpisodeStore.open(url, "a", CRASH_TRIAL.config(min_free_bytes=16 << 20))
    try:
        margin.begin("x", "y", 0.0)
        out["margin_error"] = None
    except StoreError as exc:
        out["margin_error"] = str(exc)
    print(json.dumps(out))
    """
)


def test_enospc_on_a_real_small_filesystem(tmp_path: Path) -> None:
    """A 1 MiB tmpfs, mounted in a private mount namespace (no root needed where user
    namespaces are allowed): the episode that fills it is aborted, the earlier one is intact,
    and begin refuses once free space is below the margin."""
    why = _can_mount_tmpfs()
    if why:
        pytest.skip(why)
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(SMALL_FS_SCRIPT)
    cmd = f"mount -t tmpfs -o size=1m tmpfs {mnt} && exec {sys.executable} {script} {mnt}"
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", cmd],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["error"] and out["error"].startswith("out of space writing episode ep_000001_")
    assert out["episode_ids"] == [out["kept"]] and out["uncommitted"] == []
    assert out["verified"] == 8
    assert "below the margin of 16777216 bytes" in out["margin_error"]
