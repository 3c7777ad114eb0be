"""The episode store: a zarr v3 hierarchy, one group per episode, committed last.

Layout (ARCHITECTURE.md section 4)::

    <store>.zarr/
      zarr.json                      format_version, robot, features, fps, cameras, image_codecs
      episodes/<episode_id>/
        zarr.json                    attrs: instruction, task, started_at, robot, writer,
                                     committed; on commit also success, outcome, n_steps,
                                     checksum {array: "blake2b128:..."}, committed_at
        obs/images/<camera>          (T, H, W, 3) uint8, one frame per chunk, JPEG or zstd
        obs/joint_pos, obs/joint_vel (T, D) float32, chunks of ``lowdim_chunk_steps`` steps, zstd
        action                       (T, D) float32   the action actually sent
        control_source               (T,) uint8       robot.schema.ControlSource
        t                            (T,) float64     ROS time of each step
        rewards/<critic_id>          (T,) float32     attrs: complete, checksum, attrs

Why it is built this way:

- **Committed last, in one write.** An episode's attributes live in its group's ``zarr.json``.
  ``begin`` writes it with ``committed: false``; ``commit`` flushes every array, then writes it
  once more with the checksums, ``n_steps`` and ``committed: true`` together. That single object
  write is atomic: zarr's ``LocalStore`` writes a temporary file and renames it over the old one,
  and object stores (S3, GCS, ``memory://``) replace an object whole. So a reader sees either an
  uncommitted episode, which it ignores, or a complete one. With ``StoreConfig.durable`` (default)
  a local store is also flushed to disk (``syncfs``) before that write and the metadata file and
  its directory are fsync'ed after, so a power cut cannot leave a commit pointing at lost data.
- **Nothing recorded is rewritten.** After commit an episode's arrays and ``zarr.json`` are never
  written again; rewards go to their own arrays under ``rewards/``, each marked complete last.
  Readers open the store read-only, so they cannot modify anything either.
- **Growth in blocks.** Arrays are created with a capacity of ``growth_steps`` steps and resized
  by that much when full (one metadata write per array every ``growth_steps`` steps); ``commit``
  shrinks them to the exact length. Images are written one frame (one chunk) per ``append``.
  Low-dimensional arrays are buffered in memory and written a whole chunk at a time, so no chunk
  is ever read back and rewritten while recording.
- **An episode appears whole.** On a local store ``begin`` makes the group under a hidden name
  (``episodes/.begin-<id>``, which readers never list) and renames it into place, so there is
  never an episode directory without metadata; in an object store the group's ``zarr.json`` is
  the first object under the episode's prefix.
- **Crash loses at most the episode being recorded.** Earlier episodes are complete objects that
  nothing touches again. ``repair`` finds the uncommitted one and removes it, or with
  ``salvage=True`` commits its complete prefix (every array present up to the same step: whole
  low-dim chunks and consecutive frames) with outcome ``"salvaged"``.
- **Checksums over stored chunk bytes** (see ``episodes.checksum``). The writer hashes each
  chunk as it is stored, through a thin wrapper around the zarr store, so committing needs no
  read-back; anything it did not see it reads back.
- **``abort`` removes the partial episode.** If even that fails (the disk is gone), it stays
  uncommitted and ``repair`` removes it later. ``repair`` leaves alone an uncommitted episode
  whose writer process is still alive on this host, or was recorded on another host, unless
  ``force=True``.

Images are encoded by a zarr codec registered here, ``vla_dojo.jpeg`` (OpenCV's libjpeg):
another zarr reader needs this module imported to decode them; zstd cameras need nothing.
"""

from __future__ import annotations

import asyncio
import copy
import ctypes
import datetime as _dt
import difflib
import errno
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import zarr
from zarr.abc.codec import ArrayBytesCodec
from zarr.abc.store import Store
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.buffer import Buffer, NDBuffer, default_buffer_prototype
from zarr.core.common import parse_named_configuration
from zarr.core.sync import sync as _sync
from zarr.registry import register_codec
from zarr.storage import FsspecStore, LocalStore, WrapperStore

from episodes import checksum as _ck
from robot.schema import (
    CameraSpec,
    ControlSource,
    FeatureSpec,
    RobotSpec,
    SchemaError,
    features_for,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the store layout. A store of another version is refused, naming both."""

JPEG_CODEC_NAME = "vla_dojo.jpeg"
SALVAGED = "salvaged"
"""The outcome ``repair(salvage=True)`` gives the episodes it commits."""

_EPISODES = "episodes"
_BEGIN_PREFIX = ".begin-"  # local stores: an episode group is made here, then renamed in place
_ID_RE = re.compile(r"^ep_(\d{6,})_([0-9a-f]{8})$")
_CRITIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_LOWDIM = ("obs/joint_pos", "obs/joint_vel", "action", "control_source", "t")
_IMAGE_PREFIX = "obs/images/"
_READ_BATCH = 64  # chunks fetched concurrently when verifying


class StoreError(RuntimeError):
    """The store refused or failed an operation. The message names the store, episode, array."""


class ChecksumError(StoreError):
    """A stored array does not match the checksum recorded when its episode was committed."""


class EpisodeNotFoundError(StoreError, LookupError):
    """No committed episode of that id in the store."""


# --------------------------------------------------------------------------------------------
# JPEG as a zarr v3 array-to-bytes codec


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """``(H, W, 3)`` uint8 RGB -> JPEG bytes (OpenCV/libjpeg, baseline, 4:2:0)."""
    import cv2  # lazily: only JPEG cameras need it

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding of a {rgb.shape} frame failed")
    return buf.tobytes()


def decode_jpeg(data: bytes | memoryview) -> np.ndarray:
    """JPEG bytes -> ``(H, W, 3)`` uint8 RGB. Deterministic for a given libjpeg build."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{len(data)} bytes are not a decodable JPEG image")
    return np.ascontiguousarray(bgr[..., ::-1])


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """zarr v3 codec ``vla_dojo.jpeg``: a chunk of one ``(1, H, W, 3)`` uint8 RGB frame <-> JPEG."""

    is_fixed_size = False

    quality: int = 90

    def __init__(self, *, quality: int = 90) -> None:
        q = int(quality)
        if not 1 <= q <= 100:
            raise ValueError(f"{JPEG_CODEC_NAME}: quality={quality} must be in [1, 100]")
        object.__setattr__(self, "quality", q)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _, configuration = parse_named_configuration(
            data, JPEG_CODEC_NAME, require_configuration=False
        )
        return cls(**(configuration or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": JPEG_CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        native = dtype.to_native_dtype()
        if native != np.uint8 or len(shape) not in (3, 4) or shape[-1] != 3:
            raise ValueError(
                f"{JPEG_CODEC_NAME} encodes (T, H, W, 3) uint8 RGB arrays, not {shape} {native}"
            )

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: Any) -> Buffer | None:
        arr = np.asarray(chunk_array.as_numpy_array())
        frame = arr.reshape(arr.shape[-3:])
        return chunk_spec.prototype.buffer.from_bytes(encode_jpeg(frame, self.quality))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: Any) -> NDBuffer:
        frame = decode_jpeg(chunk_bytes.to_bytes())
        shape = tuple(chunk_spec.shape)
        if frame.size != math.prod(shape):
            raise ValueError(
                f"{JPEG_CODEC_NAME}: chunk decodes to {frame.shape}, expected a chunk of {shape}"
            )
        return chunk_spec.prototype.nd_buffer.from_numpy_array(frame.reshape(shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: Any) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        raise NotImplementedError


register_codec(JPEG_CODEC_NAME, JpegCodec)


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class ImageCodec:
    """How one camera's frames are compressed: ``"jpeg"`` (lossy, ``quality`` 1-100) or
    ``"zstd"`` (lossless, ``level`` 1-22)."""

    kind: str = "jpeg"
    quality: int = 90
    level: int = 3

    def __post_init__(self) -> None:
        if self.kind not in ("jpeg", "zstd"):
            raise SchemaError(f"ImageCodec: kind={self.kind!r} must be 'jpeg' or 'zstd'")
        if not 1 <= int(self.quality) <= 100:
            raise SchemaError(f"ImageCodec: quality={self.quality} must be in [1, 100]")
        if not 1 <= int(self.level) <= 22:
            raise SchemaError(f"ImageCodec: level={self.level} must be in [1, 22]")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "quality": int(self.quality), "level": int(self.level)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageCodec:
        return cls(
            kind=str(data.get("kind", "jpeg")),
            quality=int(data.get("quality", 90)),
            level=int(data.get("level", 3)),
        )


@dataclass(frozen=True)
class StoreConfig:
    """Runtime settings of a store handle (not a property of the data already recorded).

    ``min_free_bytes``: ``begin`` refuses to start an episode when a local store's filesystem has
    less free space than this. ``image_codecs``: camera name -> codec for new episodes (default
    JPEG q90; a camera not named keeps the store's recorded choice, else JPEG).
    ``lowdim_chunk_steps``: steps per chunk of the joint/action/time arrays.
    ``growth_steps``: capacity added to every array when an episode outgrows it.
    ``durable``: on local stores, flush to disk around the commit write.
    """

    min_free_bytes: int = 1 << 30
    image_codecs: Mapping[str, ImageCodec] = field(default_factory=dict)
    lowdim_chunk_steps: int = 64
    growth_steps: int = 1024
    durable: bool = True

    def __post_init__(self) -> None:
        if self.min_free_bytes < 0:
            raise SchemaError(f"StoreConfig: min_free_bytes={self.min_free_bytes} must be >= 0")
        if self.lowdim_chunk_steps < 1:
            raise SchemaError(
                f"StoreConfig: lowdim_chunk_steps={self.lowdim_chunk_steps} must be >= 1"
            )
        if self.growth_steps < 1:
            raise SchemaError(f"StoreConfig: growth_steps={self.growth_steps} must be >= 1")
        for cam, codec in self.image_codecs.items():
            if not isinstance(codec, ImageCodec):
                raise SchemaError(
                    f"StoreConfig: image_codecs['{cam}'] must be an ImageCodec, got {codec!r}"
                )


# --------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, eq=False)
class Episode:
    """One committed episode as read back.

    ``t``: ``(T,)`` float64 ROS time; ``joint_pos``/``joint_vel``/``action``: ``(T, D)`` float32;
    ``control_source``: ``(T,)`` uint8 (``ControlSource``). ``images``: camera -> read-only zarr
    array ``(T, H, W, 3)`` uint8, decoded when indexed (``ep.images["top"][i]`` or ``[:]``).
    ``rewards``: critic id -> ``(T,)`` float32 (complete ones only); ``reward_attrs`` holds the
    attributes given to ``write_rewards``.
    """

    id: str
    instruction: str
    task: str
    success: bool
    outcome: str
    started_at: float
    t: np.ndarray
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    action: np.ndarray
    control_source: np.ndarray
    images: dict[str, Any]
    rewards: dict[str, np.ndarray]
    reward_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    robot: str = ""

    @property
    def n_steps(self) -> int:
        return int(self.t.shape[0])


@dataclass(frozen=True)
class RepairAction:
    """What ``repair`` did with one uncommitted episode: ``"removed"``, ``"salvaged"`` (then
    ``n_steps`` is the committed prefix) or ``"skipped"`` (``reason`` says why)."""

    episode_id: str
    action: str
    n_steps: int
    reason: str


@dataclass
class RepairReport:
    url: str
    actions: list[RepairAction] = field(default_factory=list)

    def ids(self, action: str) -> list[str]:
        return [a.episode_id for a in self.actions if a.action == action]

    @property
    def removed(self) -> list[str]:
        return self.ids("removed")

    @property
    def salvaged(self) -> list[str]:
        return self.ids("salvaged")

    @property
    def skipped(self) -> list[str]:
        return self.ids("skipped")

    def __str__(self) -> str:
        if not self.actions:
            return f"{self.url}: no uncommitted episodes"
        lines = [f"{self.url}: {len(self.actions)} uncommitted episode(s)"]
        for a in self.actions:
            steps = f" ({a.n_steps} steps)" if a.action == "salvaged" else ""
            lines.append(f"  {a.episode_id}: {a.action}{steps}: {a.reason}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Store plumbing


class _DigestStore(WrapperStore[Store]):
    """Forwards everything; records the digest of each object stored under a watched prefix.

    This is how a writer knows the checksum of what it stored without reading it back.
    """

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._lock = threading.Lock()
        self._watched: dict[str, dict[str, bytes]] = {}

    def watch(self, prefix: str) -> dict[str, bytes]:
        with self._lock:
            return self._watched.setdefault(prefix, {})

    def unwatch(self, prefix: str) -> None:
        with self._lock:
            self._watched.pop(prefix, None)

    def _record(self, key: str, value: Buffer | None) -> None:
        if not self._watched:
            return
        with self._lock:
            for prefix, seen in self._watched.items():
                if key.startswith(prefix):
                    if value is None:
                        seen.pop(key, None)
                    else:
                        seen[key] = _ck.chunk_digest(value.to_bytes())
                    return

    async def set(self, key: str, value: Buffer) -> None:
        await self._store.set(key, value)
        self._record(key, value)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await self._store.set_if_not_exists(key, value)
        self._record(key, value)

    async def _set_many(self, values: Iterable[tuple[str, Buffer]]) -> None:
        for key, value in values:
            await self.set(key, value)

    def set_sync(self, key: str, value: Buffer) -> None:
        super().set_sync(key, value)
        self._record(key, value)

    async def delete(self, key: str) -> None:
        await self._store.delete(key)
        self._record(key, None)

    def delete_sync(self, key: str) -> None:
        super().delete_sync(key)
        self._record(key, None)


def _is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _local_path(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url).expanduser()


def _open_base(url: str, *, read_only: bool) -> tuple[Store, Path | None]:
    if _is_local(url):
        path = _local_path(url)
        return LocalStore(path, read_only=read_only), path
    try:
        return FsspecStore.from_url(url, read_only=read_only), None
    except (ImportError, ValueError, TypeError) as exc:
        raise StoreError(f"{url}: cannot open as an fsspec store: {exc}") from exc


def _get_bytes(store: Store, key: str) -> bytes | None:
    buf = _sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()


def _get_json(store: Store, key: str) -> dict[str, Any] | None:
    raw = _get_bytes(store, key)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def _alist_dir(store: Store, prefix: str) -> list[str]:
    return [name async for name in store.list_dir(prefix)]


def _list_dir(store: Store, prefix: str) -> list[str]:
    try:
        return _sync(_alist_dir(store, prefix))
    except (FileNotFoundError, NotADirectoryError):
        return []


async def _gather(coros: Iterable[Any]) -> list[Any]:
    """Run concurrently and wait for *all* before raising the first error, so that no write is
    still in flight when the caller cleans up after a failure."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return list(results)


async def _aget_many(store: Store, keys: list[str]) -> list[bytes | None]:
    proto = default_buffer_prototype()
    bufs = await asyncio.gather(*(store.get(k, prototype=proto) for k in keys))
    return [None if b is None else b.to_bytes() for b in bufs]


def _chunk_keys(arr: Any) -> list[str]:
    """Keys of every chunk of ``arr``'s grid, relative to the array, in C order."""
    meta = arr.metadata
    return [meta.encode_chunk_key(c) for c in np.ndindex(*arr.cdata_shape)]


def _enospc(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (Linux ``syncfs``; ``os.sync`` elsewhere)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = getattr(libc, "syncfs", None)
        if fn is None or fn(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _process_started(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def _host_tag() -> str:
    """8 hex digits naming this host in a file name (host names may hold any character)."""
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def _writer_identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": _process_started(pid)}


def _writer_state(writer: Mapping[str, Any] | None) -> str:
    """``"alive"``, ``"dead"`` or ``"unknown"`` (another host, or nothing recorded)."""
    if not writer or writer.get("host") != socket.gethostname():
        return "unknown"
    try:
        pid = int(writer.get("pid", -1))
    except (TypeError, ValueError):
        return "unknown"
    if pid <= 0:
        return "unknown"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        import psutil

        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return "dead"  # killed, not yet reaped by its parent
    except Exception:
        pass
    started = writer.get("started")
    now_started = _process_started(pid)
    if started is not None and now_started is not None and abs(now_started - started) > 1.0:
        return "dead"  # the pid was reused by another process
    return "alive"


def _seq_of(episode_id: str) -> int:
    m = _ID_RE.match(episode_id)
    return int(m.group(1)) if m else -1


def _sort_ids(ids: Iterable[str]) -> list[str]:
    return sorted(ids, key=lambda e: (_seq_of(e), e))


def _json_safe(name: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} must be JSON-serialisable: {exc}") from exc


# --------------------------------------------------------------------------------------------
# The store


class EpisodeStore:
    """A zarr v3 episode store on a local path or an fsspec URL (``memory://``, ``s3://``...).

    Make one with :meth:`create`, :meth:`open` or :meth:`open_or_create`. ``mode="r"`` handles
    cannot write anything; ``"a"`` handles record (:meth:`begin`), :meth:`repair` and
    :meth:`write_rewards`. Safe to read from one process while another records.
    """

    def __init__(
        self,
        url: str,
        base: Store,
        local_path: Path | None,
        attrs: Mapping[str, Any],
        config: StoreConfig,
        *,
        writable: bool,
    ) -> None:
        self._url = url
        self._local = local_path
        self._attrs = dict(attrs)
        self._config = config
        self._writable = writable
        self._ro: Store = base if base.read_only else base.with_read_only(True)
        self._rw: _DigestStore | None = _DigestStore(base) if writable else None
        self._committed: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._last_seq = -1
        self._noted_no_space_check = False
        self.readbacks = 0  # chunks whose digest a commit had to read back (normally 0)

        robot = self._attrs.get("robot") or {}
        self._robot_name = str(robot.get("name", ""))
        self._joint_names = tuple(str(j) for j in robot.get("joint_names", ()))
        self._features = {
            k: FeatureSpec.from_json(k, v) for k, v in (self._attrs.get("features") or {}).items()
        }
        self._fps = float(self._attrs.get("fps", 0.0))
        self._recording_robot = self._robot_name
        self._cameras = tuple(
            CameraSpec(
                name=str(c["name"]),
                width=int(c["width"]),
                height=int(c["height"]),
                fps=float(c.get("fps", 30.0)),
            )
            for c in self._attrs.get("cameras") or ()
        )
        stored = {
            k: ImageCodec.from_json(v) for k, v in (self._attrs.get("image_codecs") or {}).items()
        }
        unknown = sorted(set(config.image_codecs) - {c.name for c in self._cameras})
        if unknown:
            raise StoreError(
                f"{url}: StoreConfig.image_codecs names camera(s) {unknown} that this store "
                f"does not record; its cameras are {[c.name for c in self._cameras]}"
            )
        self._codecs = {
            c.name: config.image_codecs.get(c.name, stored.get(c.name, ImageCodec()))
            for c in self._cameras
        }

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def create(
        cls, url: str, spec: RobotSpec, fps: float, config: StoreConfig | None = None
    ) -> EpisodeStore:
        """Create a new, empty store at ``url``. Refuses an existing non-empty path."""
        config = config or StoreConfig()
        url = str(url)
        fps = float(fps)
        if not (math.isfinite(fps) and fps > 0):
            raise StoreError(f"{url}: fps={fps} must be a positive number")
        cams = {c.name for c in spec.cameras}
        unknown = sorted(set(config.image_codecs) - cams)
        if unknown:
            raise StoreError(
                f"{url}: StoreConfig.image_codecs names camera(s) {unknown} that robot "
                f"'{spec.name}' does not have; its cameras are {sorted(cams)}"
            )
        base, path = _open_base(url, read_only=False)
        if path is not None:
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise StoreError(
                    f"{url} already exists and is not empty; refusing to create an episode store "
                    "there (use EpisodeStore.open or open_or_create)"
                )
            path.mkdir(parents=True, exist_ok=True)
        elif not _sync(base.is_empty("")):
            raise StoreError(
                f"{url} already exists and is not empty; refusing to create an episode store there"
            )
        codecs = {c.name: config.image_codecs.get(c.name, ImageCodec()) for c in spec.cameras}
        attrs = {
            "format_version": FORMAT_VERSION,
            "robot": {"name": spec.name, "joint_names": list(spec.joint_names)},
            "features": {k: f.to_json() for k, f in features_for(spec).items()},
            "fps": fps,
            "cameras": [
                {"name": c.name, "width": c.width, "height": c.height, "fps": c.fps}
                for c in spec.cameras
            ],
            "image_codecs": {k: v.to_json() for k, v in codecs.items()},
            "created_at": _now_iso(),
        }
        try:
            zarr.create_group(base, attributes=attrs, zarr_format=3)
            zarr.create_group(base, path=_EPISODES, zarr_format=3)
        except OSError as exc:
            raise StoreError(f"{url}: creating the store failed: {exc}") from exc
        logger.info("created episode store %s for robot '%s'", url, spec.name)
        return cls(url, base, path, attrs, config, writable=True)

    @classmethod
    def open(cls, url: str, mode: str = "r", config: StoreConfig | None = None) -> EpisodeStore:
        """Open an existing store, ``mode`` ``"r"`` (read-only) or ``"a"`` (record too)."""
        url = str(url)
        if mode not in ("r", "a"):
            raise StoreError(f"{url}: mode={mode!r} must be 'r' (read) or 'a' (append)")
        config = config or StoreConfig()
        if _is_local(url):
            path = _local_path(url)
            if not path.exists():
                raise StoreError(f"{url} is not an episode store: no such path")
            if not path.is_dir():
                raise StoreError(f"{url} is not an episode store: it is a file, not a directory")
        base, path = _open_base(url, read_only=(mode == "r"))
        meta = _get_json(base, "zarr.json")
        if meta is None:
            hint = ""
            if _get_bytes(base, ".zgroup") is not None:
                hint = " (it looks like a zarr v2 store)"
            raise StoreError(f"{url} is not an episode store: it has no readable zarr.json{hint}")
        if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
            raise StoreError(
                f"{url} is not an episode store: its zarr.json is a zarr "
                f"v{meta.get('zarr_format')} {meta.get('node_type')}, not a v3 group"
            )
        attrs = meta.get("attributes") or {}
        if "format_version" not in attrs:
            raise StoreError(
                f"{url} is not an episode store: its zarr.json has no 'format_version' attribute"
            )
        if attrs["format_version"] != FORMAT_VERSION:
            raise StoreError(
                f"{url} has episode-store format_version {attrs['format_version']!r}; this "
                f"vla-dojo reads format_version {FORMAT_VERSION} only"
            )
        return cls(url, base, path, attrs, config, writable=(mode == "a"))

    @classmethod
    def open_or_create(
        cls, url: str, spec: RobotSpec, fps: float, config: StoreConfig | None = None
    ) -> EpisodeStore:
        """Open ``url`` for recording ``spec``'s episodes, creating it if absent or empty.

        Refuses a store recorded for another robot: different joint names, cameras or features
        (named in the error), or another fps. A different robot *name* with the same joints and
        cameras is accepted (several arms of one kind may share a store); each episode records
        the name of the robot that recorded it.
        """
        url = str(url)
        if not cls._exists(url):
            try:
                return cls.create(url, spec, fps, config)
            except StoreError:
                if not cls._exists(url):
                    raise
                # another process created it meanwhile: open it below
        store = cls.open(url, "a", config)
        store._check_same_robot(spec, float(fps))
        store._recording_robot = spec.name
        return store

    @staticmethod
    def _exists(url: str) -> bool:
        if _is_local(url):
            path = _local_path(url)
            return path.exists() and (not path.is_dir() or any(path.iterdir()))
        base, _ = _open_base(url, read_only=True)
        return not _sync(base.is_empty(""))

    def _check_same_robot(self, spec: RobotSpec, fps: float) -> None:
        mine, theirs = list(self._joint_names), list(spec.joint_names)
        if mine != theirs:
            missing = [j for j in theirs if j not in mine]
            extra = [j for j in mine if j not in theirs]
            detail = []
            if missing:
                detail.append(f"store lacks {missing}")
            if extra:
                detail.append(f"robot lacks {extra}")
            if not detail:
                detail.append("same joints in another order")
            raise StoreError(
                f"{self._url} records robot '{self._robot_name}' with joints {mine}; robot "
                f"'{spec.name}' has joints {theirs} ({'; '.join(detail)})"
            )
        want = {k: f.to_json() for k, f in features_for(spec).items()}
        have = {k: f.to_json() for k, f in self._features.items()}
        if want != have:
            diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
            raise StoreError(
                f"{self._url} records features that differ from robot '{spec.name}' in {diff} "
                f"(store: {[have.get(k) for k in diff]}, robot: {[want.get(k) for k in diff]})"
            )
        if not math.isclose(fps, self._fps):
            raise StoreError(
                f"{self._url} records at fps={self._fps}; robot '{spec.name}' asked for fps={fps}"
            )
        if spec.name != self._robot_name:
            logger.info(
                "store %s was created by robot '%s'; recording robot '%s' (same joints)",
                self._url,
                self._robot_name,
                spec.name,
            )

    # -- metadata ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url

    @property
    def mode(self) -> str:
        return "a" if self._writable else "r"

    @property
    def robot_name(self) -> str:
        return self._robot_name

    @property
    def joint_names(self) -> tuple[str, ...]:
        return self._joint_names

    @property
    def features(self) -> dict[str, FeatureSpec]:
        return dict(self._features)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def cameras(self) -> tuple[CameraSpec, ...]:
        return self._cameras

    @property
    def image_codecs(self) -> dict[str, ImageCodec]:
        """The codec each camera's new episodes are written with."""
        return dict(self._codecs)

    @property
    def config(self) -> StoreConfig:
        return self._config

    @property
    def created_at(self) -> str:
        return str(self._attrs.get("created_at", ""))

    @property
    def format_version(self) -> int:
        return int(self._attrs["format_version"])

    def __repr__(self) -> str:
        return f"EpisodeStore({self._url!r}, mode={self.mode!r}, robot={self._robot_name!r})"

    # -- listing -----------------------------------------------------------------------------

    def _episode_dirs(self) -> list[str]:
        return [n for n in _list_dir(self._ro, _EPISODES) if _ID_RE.match(n)]

    def _episode_meta(self, episode_id: str) -> dict[str, Any] | None:
        meta = _get_json(self._ro, f"{_EPISODES}/{episode_id}/zarr.json")
        if meta is None or meta.get("node_type") != "group":
            return None
        return dict(meta.get("attributes") or {})

    def _committed_attrs(self, episode_id: str) -> dict[str, Any] | None:
        with self._lock:
            cached = self._committed.get(episode_id)
        if cached is not None:
            return cached
        attrs = self._episode_meta(episode_id)
        if attrs is None or attrs.get("committed") is not True:
            return None
        with self._lock:
            self._committed[episode_id] = attrs
        return attrs

    def _scan(self) -> tuple[list[str], list[str]]:
        """(committed, uncommitted) ids. Committed metadata is cached (it never changes); the
        rest is fetched concurrently, so listing a remote store is not one round trip each."""
        dirs = self._episode_dirs()
        with self._lock:
            unknown = [e for e in dirs if e not in self._committed]
        for start in range(0, len(unknown), _READ_BATCH):
            batch = unknown[start : start + _READ_BATCH]
            keys = [f"{_EPISODES}/{e}/zarr.json" for e in batch]
            for episode_id, raw in zip(batch, _sync(_aget_many(self._ro, keys)), strict=True):
                try:
                    meta = json.loads(raw) if raw is not None else None
                except ValueError:
                    meta = None
                attrs = (meta or {}).get("attributes") or {}
                if isinstance(meta, dict) and attrs.get("committed") is True:
                    with self._lock:
                        self._committed[episode_id] = dict(attrs)
        with self._lock:
            committed = [e for e in dirs if e in self._committed]
            uncommitted = [e for e in dirs if e not in self._committed]
        return _sort_ids(committed), _sort_ids(uncommitted)

    def episode_ids(self) -> list[str]:
        """Ids of the committed episodes, in the order they were begun."""
        return self._scan()[0]

    def uncommitted_ids(self) -> list[str]:
        """Ids of episodes begun but not committed: being recorded now, or left by a crash."""
        return self._scan()[1]

    def info(self, episode_id: str) -> dict[str, Any]:
        """The attributes of a committed episode, without reading its arrays."""
        return copy.deepcopy(self._require_committed(episode_id))

    def _require_committed(self, episode_id: str) -> dict[str, Any]:
        attrs = self._committed_attrs(episode_id) if _ID_RE.match(str(episode_id)) else None
        if attrs is not None:
            return attrs
        if _ID_RE.match(str(episode_id)) and self._episode_meta(episode_id) is not None:
            raise EpisodeNotFoundError(
                f"{self._url}: episode '{episode_id}' is not committed (still being recorded, "
                "or left by a crash: run repair)"
            )
        known = self.episode_ids()
        close = difflib.get_close_matches(str(episode_id), known, n=3)
        hint = f"; did you mean {close}?" if close else f" ({len(known)} committed episodes)"
        raise EpisodeNotFoundError(f"{self._url}: no episode '{episode_id}'{hint}")

    # -- reading -----------------------------------------------------------------------------

    def _open_array(self, path: str) -> Any:
        return zarr.open_array(self._ro, path=path, mode="r", zarr_format=3)

    def _readback_checksum(self, arr: Any, name: str) -> tuple[str, list[str]]:
        """Checksum of array ``name`` (``arr``) from its stored chunks; also the chunk keys that
        are missing."""
        keys = _chunk_keys(arr)
        pairs: list[tuple[str, bytes]] = []
        missing: list[str] = []
        for start in range(0, len(keys), _READ_BATCH):
            batch = keys[start : start + _READ_BATCH]
            blobs = _sync(_aget_many(self._ro, [f"{arr.path}/{k}" for k in batch]))
            for key, blob in zip(batch, blobs, strict=True):
                if blob is None:
                    missing.append(key)
                    pairs.append((f"{name}/{key}", b"\0" * 16))
                else:
                    pairs.append((f"{name}/{key}", _ck.chunk_digest(blob)))
        return _ck.combine(pairs), missing

    def _verify(self, episode_id: str, name: str, arr: Any, expected: str | None) -> None:
        if not expected:
            raise ChecksumError(f"{self._url}: episode '{episode_id}' has no checksum for '{name}'")
        algo = _ck.algorithm_of(expected)
        if algo != _ck.ALGORITHM:
            raise ChecksumError(
                f"{self._url}: episode '{episode_id}' array '{name}' has a checksum of unknown "
                f"algorithm {algo!r}"
            )
        got, missing = self._readback_checksum(arr, name)
        if missing:
            raise ChecksumError(
                f"{self._url}: episode '{episode_id}' array '{name}' is missing chunk(s) "
                f"{missing[:5]}{'...' if len(missing) > 5 else ''}"
            )
        if got != expected:
            raise ChecksumError(
                f"{self._url}: checksum mismatch in episode '{episode_id}' array '{name}': "
                f"recorded {expected}, stored data hashes to {got}"
            )

    def read(self, episode_id: str, verify: bool = True) -> Episode:
        """Read a committed episode. With ``verify``, every array's stored bytes are checked
        against the checksums recorded at commit (``ChecksumError`` names episode and array)."""
        attrs = self._require_committed(episode_id)
        n = int(attrs["n_steps"])
        sums: dict[str, str] = dict(attrs.get("checksum") or {})
        root = f"{_EPISODES}/{episode_id}"
        arrays: dict[str, Any] = {}
        for name in (*_LOWDIM, *(_IMAGE_PREFIX + c.name for c in self._cameras)):
            try:
                arr = self._open_array(f"{root}/{name}")
            except (FileNotFoundError, KeyError, zarr.errors.NodeNotFoundError) as exc:
                raise ChecksumError(
                    f"{self._url}: episode '{episode_id}' is committed but array '{name}' is "
                    f"missing: {exc}"
                ) from exc
            if arr.shape[0] != n:
                raise ChecksumError(
                    f"{self._url}: episode '{episode_id}' array '{name}' has {arr.shape[0]} "
                    f"steps, the episode records n_steps={n}"
                )
            if verify:
                self._verify(episode_id, name, arr, sums.get(name))
            arrays[name] = arr
        rewards, reward_attrs = self._read_rewards(episode_id, n, verify)
        return Episode(
            id=episode_id,
            instruction=str(attrs.get("instruction", "")),
            task=str(attrs.get("task", "")),
            success=bool(attrs.get("success", False)),
            outcome=str(attrs.get("outcome", "")),
            started_at=float(attrs.get("started_at", 0.0)),
            t=np.asarray(arrays["t"][:], dtype=np.float64),
            joint_pos=np.asarray(arrays["obs/joint_pos"][:], dtype=np.float32),
            joint_vel=np.asarray(arrays["obs/joint_vel"][:], dtype=np.float32),
            action=np.asarray(arrays["action"][:], dtype=np.float32),
            control_source=np.asarray(arrays["control_source"][:], dtype=np.uint8),
            images={c.name: arrays[_IMAGE_PREFIX + c.name] for c in self._cameras},
            rewards=rewards,
            reward_attrs=reward_attrs,
            robot=str(attrs.get("robot", self._robot_name)),
        )

    def _read_rewards(
        self, episode_id: str, n: int, verify: bool
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        rewards: dict[str, np.ndarray] = {}
        reward_attrs: dict[str, dict[str, Any]] = {}
        prefix = f"{_EPISODES}/{episode_id}/rewards"
        for critic in sorted(_list_dir(self._ro, prefix)):
            meta = _get_json(self._ro, f"{prefix}/{critic}/zarr.json")
            if meta is None or meta.get("node_type") != "array":
                continue
            attrs = meta.get("attributes") or {}
            if attrs.get("complete") is not True:
                continue  # being written, or a write that failed: not there yet
            arr = self._open_array(f"{prefix}/{critic}")
            if arr.shape != (n,):
                raise ChecksumError(
                    f"{self._url}: episode '{episode_id}' rewards/{critic} has shape {arr.shape}, "
                    f"expected ({n},)"
                )
            if verify:
                self._verify(episode_id, f"rewards/{critic}", arr, attrs.get("checksum"))
            rewards[critic] = np.asarray(arr[:], dtype=np.float32)
            reward_attrs[critic] = dict(attrs.get("attrs") or {})
        return rewards, reward_attrs

    # -- writing -----------------------------------------------------------------------------

    def _require_writable(self, what: str) -> _DigestStore:
        if self._rw is None:
            raise StoreError(
                f"{self._url} is open read-only (mode='r'); open it with mode='a' to {what}"
            )
        return self._rw

    def _preflight_space(self) -> None:
        if self._local is None:
            if not self._noted_no_space_check:
                logger.info(
                    "%s: free-space check skipped (not a local path; fsspec reports no free space)",
                    self._url,
                )
                self._noted_no_space_check = True
            return
        free = shutil.disk_usage(self._local).free
        need = self._config.min_free_bytes
        if free < need:
            raise StoreError(
                f"{self._url}: {free} bytes ({free / 2**20:.1f} MiB) free, below the margin of "
                f"{need} bytes ({need / 2**20:.1f} MiB, StoreConfig.min_free_bytes); refusing "
                "to begin an episode"
            )

    def _new_id(self) -> str:
        with self._lock:
            seqs = [_seq_of(e) for e in self._episode_dirs()]
            seq = max([*seqs, self._last_seq]) + 1
            self._last_seq = seq
        return f"ep_{seq:06d}_{secrets.token_hex(4)}"

    def begin(self, instruction: str, task: str, started_at: float) -> EpisodeWriter:
        """Start recording an episode. Checks free space first; returns its writer."""
        self._require_writable("begin an episode")
        if not isinstance(instruction, str):
            raise SchemaError(f"begin: instruction must be a str, got {type(instruction).__name__}")
        if not isinstance(task, str):
            raise SchemaError(f"begin: task must be a str, got {type(task).__name__}")
        started = float(started_at)
        if not math.isfinite(started):
            raise SchemaError(f"begin: started_at={started_at} is not finite")
        self._preflight_space()
        return EpisodeWriter._start(self, self._new_id(), instruction, task, started)

    def _note_committed(self, episode_id: str, attrs: dict[str, Any]) -> None:
        with self._lock:
            self._committed[episode_id] = attrs

    def _remove(self, episode_id: str) -> None:
        """Delete an (uncommitted) episode. A write zarr still had in flight when the episode
        failed can land just after the delete and recreate part of it, so check and repeat
        (bounded: about a second in all)."""
        rw = self._require_writable("remove an episode")
        prefix = f"{_EPISODES}/{episode_id}"
        error: Exception | None = None
        for attempt in range(8):
            if self._local is not None:
                # ignore_errors: a temporary file of an in-flight write may vanish meanwhile
                shutil.rmtree(self._local / prefix, ignore_errors=True)
                gone = not (self._local / prefix).exists()
            else:
                try:
                    _sync(rw.delete_dir(prefix))
                except Exception as exc:
                    error = exc
                gone = not _list_keys(self._ro, prefix + "/")
            if gone:
                if attempt == 0:
                    time.sleep(0.02)  # one more look: a late write may still be landing
                    continue
                return
            time.sleep(0.02 * (attempt + 1))
        raise StoreError(
            f"{self._url}: could not remove episode {episode_id}"
            + (f": {error}" if error else " (it keeps reappearing)")
        )

    def write_rewards(
        self,
        episode_id: str,
        critic_id: str,
        values: np.ndarray,
        attrs: Mapping[str, Any],
        *,
        overwrite: bool = False,
    ) -> None:
        """Store per-step rewards of one critic for a committed episode.

        ``values``: ``(n_steps,)`` finite floats, stored float32. ``attrs`` (JSON) is kept with
        them (the critic's version, relabelling parameters). The array is marked complete last;
        readers ignore it until then. A critic's complete rewards are replaced only with
        ``overwrite=True`` (readers miss them while that happens); an incomplete leftover of a
        failed write is simply replaced.
        """
        rw = self._require_writable("write rewards")
        ep = self._require_committed(episode_id)
        if not isinstance(critic_id, str) or not _CRITIC_RE.match(critic_id):
            raise SchemaError(
                f"write_rewards: critic_id {critic_id!r} must match {_CRITIC_RE.pattern} "
                "(letters, digits, '_', '.', '-'; no '/')"
            )
        n = int(ep["n_steps"])
        vals = np.asarray(values, dtype=np.float32)
        if vals.shape != (n,):
            raise SchemaError(
                f"write_rewards: values for episode '{episode_id}' critic '{critic_id}' have "
                f"shape {vals.shape}, expected ({n},)"
            )
        if not np.all(np.isfinite(vals)):
            bad = int(np.flatnonzero(~np.isfinite(vals))[0])
            raise SchemaError(
                f"write_rewards: values for episode '{episode_id}' critic '{critic_id}' are not "
                f"finite (first at step {bad}: {vals[bad]})"
            )
        user = _json_safe(f"write_rewards: attrs for critic '{critic_id}'", dict(attrs))
        path = f"{_EPISODES}/{episode_id}/rewards/{critic_id}"
        existing = _get_json(self._ro, f"{path}/zarr.json")
        complete = bool(existing and (existing.get("attributes") or {}).get("complete") is True)
        if complete and not overwrite:
            raise StoreError(
                f"{self._url}: episode '{episode_id}' already has rewards from critic "
                f"'{critic_id}' (pass overwrite=True to replace them)"
            )
        try:
            arr = zarr.create_array(
                rw,
                name=path,
                shape=(n,),
                chunks=(max(n, 1),),
                dtype="float32",
                compressors=[ZstdCodec(level=3)],
                fill_value=0.0,
                attributes={"complete": False, "critic_id": critic_id},
                config={"write_empty_chunks": True},
                overwrite=True,
            )
            arr[:] = vals
            ro = self._open_array(path)
            sum_, missing = self._readback_checksum(ro, f"rewards/{critic_id}")
            if missing:
                raise StoreError(f"chunk(s) {missing} did not land")
            arr.update_attributes(
                {
                    "complete": True,
                    "critic_id": critic_id,
                    "checksum": sum_,
                    "attrs": user,
                    "written_at": _now_iso(),
                }
            )
        except Exception as exc:
            try:
                _sync(rw.delete_dir(path))
            except Exception:
                logger.exception("%s: could not remove failed rewards at %s", self._url, path)
            if _enospc(exc):
                raise StoreError(
                    f"out of space writing rewards '{critic_id}' of episode {episode_id}: {exc}"
                ) from exc
            raise StoreError(
                f"writing rewards '{critic_id}' of episode {episode_id} failed: {exc}"
            ) from exc

    # -- repair ------------------------------------------------------------------------------

    def repair(self, salvage: bool = False, *, force: bool = False) -> RepairReport:
        """Deal with every uncommitted episode: remove it, or with ``salvage`` commit its
        complete prefix (outcome ``"salvaged"``, ``success=False``, fresh checksums).

        Committed episodes are never touched. An uncommitted episode whose writer is alive on
        this host, or was recorded on another host, is skipped unless ``force``.
        """
        self._require_writable("repair it")
        report = RepairReport(self._url)
        for eid in self.uncommitted_ids():
            attrs = self._episode_meta(eid)
            if attrs is not None and attrs.get("committed") is True:
                continue  # committed meanwhile
            state = "dead" if force or attrs is None else _writer_state(attrs.get("writer"))
            if state != "dead":
                w = (attrs or {}).get("writer") or {}
                why = (
                    f"its writer (pid {w.get('pid')}) is still running on this host"
                    if state == "alive"
                    else f"recorded on host '{w.get('host')}'; cannot tell whether its "
                    "writer still runs (force=True to repair anyway)"
                )
                report.actions.append(RepairAction(eid, "skipped", 0, why))
                continue
            if salvage and attrs is not None:
                try:
                    n = self._salvage(eid, attrs)
                except Exception as exc:
                    logger.warning("%s: salvaging %s failed (%s); removing it", self._url, eid, exc)
                    n = 0
                    reason = f"salvage failed ({exc}); removed"
                else:
                    reason = "complete prefix committed" if n else "nothing complete; removed"
                if n:
                    report.actions.append(RepairAction(eid, "salvaged", n, reason))
                    continue
                self._remove(eid)
                report.actions.append(RepairAction(eid, "removed", 0, reason))
                continue
            self._remove(eid)
            why = "no metadata (creation interrupted)" if attrs is None else "uncommitted"
            report.actions.append(RepairAction(eid, "removed", 0, why))
        for a in report.actions:
            logger.info("repair %s: %s %s (%s)", self._url, a.action, a.episode_id, a.reason)
        self._remove_stale_begins(force)
        return report

    def _remove_stale_begins(self, force: bool) -> None:
        """Delete ``episodes/.begin-<id>.<pid>.<host tag>`` directories a crash left inside
        ``begin`` (local stores only; readers never list them) whose writer is dead: from their
        metadata if it got written, else from the pid and host in their name; one of unknown
        origin only once it is a minute old. With ``force``, all of them."""
        if self._local is None:
            return
        try:
            entries = list((self._local / _EPISODES).iterdir())
        except OSError:
            return
        for path in entries:
            if not path.name.startswith(_BEGIN_PREFIX):
                continue
            meta = _get_json(self._ro, f"{_EPISODES}/{path.name}/zarr.json")
            writer = (meta.get("attributes") or {}).get("writer") if meta else None
            parts = path.name.split(".")
            if writer is None and len(parts) == 4 and parts[3] == _host_tag():
                writer = {"host": socket.gethostname(), "pid": parts[2]}
            state = _writer_state(writer)
            if state == "unknown":
                try:
                    state = "dead" if time.time() - path.stat().st_mtime > 60 else "alive"
                except OSError:
                    continue
            stale = state == "dead"
            if stale or force:
                shutil.rmtree(path, ignore_errors=True)
                logger.info("repair %s: removed %s left by an interrupted begin", self._url, path)

    def _salvage(self, episode_id: str, attrs: dict[str, Any]) -> int:
        rw = self._require_writable("salvage")
        root = f"{_EPISODES}/{episode_id}"
        names = (*_LOWDIM, *(_IMAGE_PREFIX + c.name for c in self._cameras))
        arrays: dict[str, Any] = {}
        for name in names:
            try:
                arrays[name] = zarr.open_array(
                    rw, path=f"{root}/{name}", mode="r+", config={"write_empty_chunks": True}
                )
            except Exception:
                return 0
        n = min(self._complete_prefix(a) for a in arrays.values())
        if n == 0:
            return 0
        for arr in arrays.values():
            arr.resize((n, *arr.shape[1:]))
        # time must still increase strictly (it did when written); cut at the first step not so
        t = np.asarray(arrays["t"][:], dtype=np.float64)
        ok = np.isfinite(t) & np.concatenate([[True], np.diff(t) > 0])
        if not ok.all():
            n = int(np.argmin(ok))
            if n == 0:
                return 0
            for arr in arrays.values():
                arr.resize((n, *arr.shape[1:]))
        sums: dict[str, str] = {}
        for name, arr in arrays.items():
            s, missing = self._readback_checksum(self._open_array(arr.path), name)
            if missing:
                raise StoreError(f"chunks {missing[:3]} of '{name}' vanished while salvaging")
            sums[name] = s
        group = zarr.open_group(rw, path=root, mode="r+")
        final = {
            **attrs,
            "success": False,
            "outcome": SALVAGED,
            "n_steps": n,
            "checksum": sums,
            "committed_at": _now_iso(),
            "committed": True,
        }
        self._durable_before_commit()
        group.update_attributes(final)
        self._durable_after_commit(episode_id)
        self._note_committed(episode_id, final)
        return n

    def _complete_prefix(self, arr: Any) -> int:
        """Steps ``[0, k)`` of ``arr`` whose chunks are all present and decode."""
        steps_per_chunk = int(arr.chunks[0])
        present = set(_list_keys(self._ro, f"{arr.path}/c/"))
        k = 0
        for coords in np.ndindex(*arr.cdata_shape):
            key = arr.metadata.encode_chunk_key(coords)
            if f"{arr.path}/{key}" not in present:
                break
            k += 1
        steps = min(k * steps_per_chunk, arr.shape[0])
        # every present chunk of the prefix must decode; stop at the first that does not
        # (read in blocks of many chunks; chunk by chunk only inside a block that fails)
        block = steps_per_chunk * max(1, 64 // steps_per_chunk)
        good = 0
        while good < steps:
            end = min(good + block, steps)
            try:
                arr[good:end]
                good = end
                continue
            except Exception:
                pass
            while good < end:
                stop = min(good + steps_per_chunk, end)
                try:
                    arr[good:stop]
                except Exception:
                    return good
                good = stop
        return good

    # -- durability --------------------------------------------------------------------------

    def _durable_before_commit(self) -> None:
        if self._local is not None and self._config.durable:
            _syncfs(self._local)

    def _durable_after_commit(self, episode_id: str) -> None:
        if self._local is not None and self._config.durable:
            group_dir = self._local / _EPISODES / episode_id
            _fsync(group_dir / "zarr.json")
            _fsync(group_dir)


def _list_keys(store: Store, prefix: str) -> list[str]:
    async def collect() -> list[str]:
        return [k async for k in store.list_prefix(prefix)]

    try:
        return _sync(collect())
    except (FileNotFoundError, NotADirectoryError):
        return []


# --------------------------------------------------------------------------------------------
# The writer


class EpisodeWriter:
    """Records one episode step by step; made by :meth:`EpisodeStore.begin`.

    ``append`` validates a whole step before writing any of it, so a bad input (``SchemaError``
    naming the field) leaves the episode as it was. A failed write (disk full, store gone)
    aborts the episode and raises ``StoreError`` ("out of space writing episode X: ..." when the
    disk is full). ``commit`` makes it visible to readers; ``abort`` removes it. Used as a
    context manager, an exception inside ``with`` aborts, and leaving without commit aborts too.
    """

    def __init__(self) -> None:  # use EpisodeStore.begin
        raise TypeError("EpisodeWriter is made by EpisodeStore.begin()")

    @classmethod
    def _start(
        cls, store: EpisodeStore, episode_id: str, instruction: str, task: str, started_at: float
    ) -> EpisodeWriter:
        self = object.__new__(cls)
        self._store = store
        self._id = episode_id
        self._root = f"{_EPISODES}/{episode_id}"
        self._state = "open"
        self._n = 0
        self._last_t = -math.inf
        cfg = store.config
        self._chunk = int(cfg.lowdim_chunk_steps)
        self._grow_by = int(cfg.growth_steps)
        self._capacity = self._grow_by
        d = len(store.joint_names)
        self._dof = d
        self._cams = {c.name: c for c in store.cameras}
        rw = store._require_writable("record")
        self._digests = rw.watch(self._root + "/")
        attrs = {
            "instruction": instruction,
            "task": task,
            "started_at": started_at,
            "robot": store._recording_robot,
            "writer": _writer_identity(),
            "committed": False,
        }
        self._attrs = attrs
        shapes: dict[str, tuple[tuple[int, ...], str]] = {
            "obs/joint_pos": ((d,), "float32"),
            "obs/joint_vel": ((d,), "float32"),
            "action": ((d,), "float32"),
            "control_source": ((), "uint8"),
            "t": ((), "float64"),
        }
        try:
            self._group = self._create_group(store, rw, attrs)
            self._arrays: dict[str, Any] = {}
            for name, (shape, dtype) in shapes.items():
                self._arrays[name] = self._group.create_array(
                    name,
                    shape=(self._capacity, *shape),
                    chunks=(self._chunk, *shape),
                    dtype=dtype,
                    compressors=[ZstdCodec(level=3)],
                    fill_value=0,
                    dimension_names=("step", "joint")[: 1 + len(shape)],
                    config={"write_empty_chunks": True},
                )
            for cam in store.cameras:
                codec = store.image_codecs[cam.name]
                if codec.kind == "jpeg":
                    serializer: Any = JpegCodec(quality=codec.quality)
                    compressors: Any = None
                else:
                    serializer = BytesCodec()
                    compressors = [ZstdCodec(level=codec.level)]
                self._arrays[_IMAGE_PREFIX + cam.name] = self._group.create_array(
                    _IMAGE_PREFIX + cam.name,
                    shape=(self._capacity, cam.height, cam.width, 3),
                    chunks=(1, cam.height, cam.width, 3),
                    dtype="uint8",
                    serializer=serializer,
                    compressors=compressors,
                    fill_value=0,
                    dimension_names=("step", "height", "width", "channel"),
                    config={"write_empty_chunks": True},
                )
        except Exception as exc:
            self._fail(exc)
        self._buf = {
            name: np.zeros((self._chunk, *shape), dtype=dtype)
            for name, (shape, dtype) in shapes.items()
        }
        logger.info("%s: began episode %s (%r)", store.url, episode_id, instruction)
        return self

    def _create_group(self, store: EpisodeStore, rw: _DigestStore, attrs: dict[str, Any]) -> Any:
        """The episode's group, appearing whole: on a local store its directory is made under a
        hidden name with its zarr.json inside, then renamed into place (so no reader or repair
        ever sees an episode directory without metadata); an object store has no directories,
        and the zarr.json object is the first thing under the episode's prefix."""
        if store._local is None:
            return zarr.create_group(rw, path=self._root, attributes=attrs, zarr_format=3)
        hidden = f"{_EPISODES}/{_BEGIN_PREFIX}{self._id}.{os.getpid()}.{_host_tag()}"
        zarr.create_group(rw, path=hidden, attributes=attrs, zarr_format=3)
        os.rename(store._local / hidden, store._local / self._root)
        return zarr.open_group(rw, path=self._root, mode="r+", zarr_format=3)

    # -- properties --------------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self._id

    @property
    def n_steps(self) -> int:
        return self._n

    @property
    def state(self) -> str:
        """``"open"``, ``"committed"`` or ``"aborted"``."""
        return self._state

    def __repr__(self) -> str:
        return f"EpisodeWriter({self._id!r}, {self._state}, {self._n} steps)"

    # -- recording ---------------------------------------------------------------------------

    def _require_open(self, what: str) -> None:
        if self._state != "open":
            raise StoreError(f"cannot {what}: episode {self._id} is already {self._state}")

    def _vector(self, name: str, value: Any) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != (self._dof,):
            raise SchemaError(
                f"episode {self._id} step {self._n}: {name} has shape {arr.shape}, expected "
                f"({self._dof},) for joints {list(self._store.joint_names)}"
            )
        return arr

    def append(
        self,
        t: float,
        joint_pos: Any,
        joint_vel: Any,
        action: Any,
        control_source: int,
        images: Mapping[str, np.ndarray],
    ) -> None:
        """Record one control step: the state, the action actually sent, who sent it, the
        frames. ``t`` (ROS time, s) must increase strictly within an episode."""
        self._require_open("append")
        step = self._n
        tf = float(t)
        if not math.isfinite(tf):
            raise SchemaError(f"episode {self._id} step {step}: t={t} is not finite")
        if not tf > self._last_t:
            raise SchemaError(
                f"episode {self._id} step {step}: t={tf} does not increase "
                f"(previous step at {self._last_t})"
            )
        jp = self._vector("joint_pos", joint_pos)
        jv = self._vector("joint_vel", joint_vel)
        act = self._vector("action", action)
        try:
            cs = ControlSource(int(control_source))
        except (ValueError, TypeError) as exc:
            raise SchemaError(
                f"episode {self._id} step {step}: control_source={control_source!r} is not one "
                f"of {[f'{s.name}={s.value}' for s in ControlSource]}"
            ) from exc
        missing = sorted(set(self._cams) - set(images))
        extra = sorted(set(images) - set(self._cams))
        if missing or extra:
            raise SchemaError(
                f"episode {self._id} step {step}: images must be exactly cameras "
                f"{sorted(self._cams)}; missing {missing}, unknown {extra}"
            )
        frames: dict[str, np.ndarray] = {}
        for name, cam in self._cams.items():
            img = images[name]
            if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
                raise SchemaError(
                    f"episode {self._id} step {step}: image '{name}' must be a uint8 array, got "
                    f"{getattr(img, 'dtype', type(img).__name__)}"
                )
            if img.shape != (cam.height, cam.width, 3):
                raise SchemaError(
                    f"episode {self._id} step {step}: image '{name}' has shape {img.shape}, "
                    f"expected ({cam.height}, {cam.width}, 3)"
                )
            frames[name] = img
        try:
            if step >= self._capacity:
                self._grow()
            if frames:
                _sync(
                    _gather(
                        self._arrays[_IMAGE_PREFIX + name].async_array.setitem(step, frame)
                        for name, frame in frames.items()
                    )
                )
            row = step % self._chunk
            self._buf["obs/joint_pos"][row] = jp
            self._buf["obs/joint_vel"][row] = jv
            self._buf["action"][row] = act
            self._buf["control_source"][row] = int(cs)
            self._buf["t"][row] = tf
            if row == self._chunk - 1:
                start = step + 1 - self._chunk
                for name in _LOWDIM:
                    self._arrays[name][start : step + 1] = self._buf[name]
        except Exception as exc:
            self._fail(exc)
        self._n = step + 1
        self._last_t = tf

    def _grow(self) -> None:
        self._capacity += self._grow_by
        for arr in self._arrays.values():
            arr.resize((self._capacity, *arr.shape[1:]))

    def commit(self, outcome: str, success: bool) -> str:
        """Flush, record checksums and ``n_steps``, then mark committed (in that one last
        write). Returns the episode id.

        A failure before that write aborts the episode (``StoreError``). If the write itself
        raises but is found to have landed (a remote store timing out after storing), or the
        flush after it fails, the episode stays committed and that is logged."""
        self._require_open("commit")
        if not isinstance(outcome, str) or not outcome:
            raise SchemaError(f"commit of episode {self._id}: outcome must be a non-empty str")
        if not isinstance(success, bool | np.bool_):
            raise SchemaError(
                f"commit of episode {self._id}: success must be a bool, got {success!r}"
            )
        n = self._n
        if n == 0:
            raise StoreError(f"episode {self._id} has no steps; abort it instead of committing")
        store = self._store
        try:
            for arr in self._arrays.values():
                _sync(arr.async_array.resize((n, *arr.shape[1:]), delete_outside_chunks=False))
            tail = n % self._chunk
            if tail:
                start = n - tail
                for name in _LOWDIM:
                    self._arrays[name][start:n] = self._buf[name][:tail]
            sums = {name: self._checksum(arr, name) for name, arr in self._arrays.items()}
            final = {
                **self._attrs,
                "success": bool(success),
                "outcome": outcome,
                "n_steps": n,
                "checksum": sums,
                "committed_at": _now_iso(),
                "committed": True,
            }
            store._durable_before_commit()
        except Exception as exc:
            self._fail(exc)
        try:
            self._group.update_attributes(final)  # the commit: one atomic object write
        except Exception as exc:
            if not self._commit_landed():
                self._fail(exc)
            logger.warning(
                "%s: commit write of %s raised (%s) but landed", store.url, self._id, exc
            )
        self._state = "committed"
        try:
            store._durable_after_commit(self._id)
        except OSError as exc:
            logger.error(
                "%s: episode %s is committed but flushing its metadata failed (%s); a power "
                "cut before the OS writes it back could lose the commit",
                store.url,
                self._id,
                exc,
            )
        store._rw.unwatch(self._root + "/")
        store._note_committed(self._id, final)
        logger.info(
            "%s: committed episode %s (%d steps, outcome %r, success=%s)",
            store.url,
            self._id,
            n,
            outcome,
            bool(success),
        )
        return self._id

    def _commit_landed(self) -> bool:
        """After the commit write raised: did it land anyway (a remote store can time out
        after storing)? A committed episode must never be aborted."""
        try:
            attrs = self._store._episode_meta(self._id)
        except Exception:
            return False
        return bool(attrs and attrs.get("committed") is True)

    def _checksum(self, arr: Any, name: str) -> str:
        pairs: list[tuple[str, bytes]] = []
        for key in _chunk_keys(arr):
            full = f"{arr.path}/{key}"
            digest = self._digests.get(full)
            if digest is None:
                blob = _get_bytes(self._store._ro, full)
                if blob is None:
                    raise StoreError(f"chunk '{full}' was written but is not in the store")
                self._store.readbacks += 1
                digest = _ck.chunk_digest(blob)
            pairs.append((f"{name}/{key}", digest))
        return _ck.combine(pairs)

    def abort(self, reason: str) -> None:
        """Give up this episode and remove what was written of it. If removing fails, the
        episode stays uncommitted (readers ignore it) until ``repair``. Idempotent."""
        if self._state == "committed":
            raise StoreError(f"cannot abort episode {self._id}: it is already committed")
        if self._state == "aborted":
            return
        self._state = "aborted"
        store = self._store
        logger.warning("%s: aborting episode %s: %s", store.url, self._id, reason)
        try:
            store._remove(self._id)
        except Exception as exc:
            logger.error(
                "%s: could not remove aborted episode %s (%s); it stays uncommitted until repair",
                store.url,
                self._id,
                exc,
            )
        finally:
            if store._rw is not None:
                store._rw.unwatch(self._root + "/")

    def _fail(self, exc: BaseException) -> None:
        self.abort(f"{type(exc).__name__}: {exc}")
        if _enospc(exc):
            raise StoreError(f"out of space writing episode {self._id}: {exc}") from exc
        raise StoreError(f"writing episode {self._id} failed: {exc}") from exc

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._state != "open":
            return
        if exc is not None:
            self.abort(f"exception while recording: {exc_type.__name__}: {exc}")
        else:
            self.abort("writer closed without commit")
