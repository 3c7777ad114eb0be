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

Where the pieces are: this module holds the store (open, list, read, rewards);
``episodes.writer`` records one episode, ``episodes.repair`` deals with what a crash left,
``episodes.codec`` compresses frames (the zarr codec ``vla_dojo.jpeg``, registered on import:
another zarr reader needs it imported to decode JPEG cameras), ``episodes.backend`` is the
zarr/fsspec plumbing under all of them, and ``episodes.errors`` their errors.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import re
import secrets
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.abc.store import Store
from zarr.codecs import ZstdCodec
from zarr.core.sync import sync as _sync

from episodes import backend
from episodes import checksum as _ck
from episodes.backend import EPISODES, ID_RE, IMAGE_PREFIX, LOWDIM, READ_BATCH
from episodes.codec import ImageCodec
from episodes.errors import ChecksumError, EpisodeNotFoundError, StoreError
from episodes.repair import RepairReport, repair_store
from episodes.writer import EpisodeWriter
from robot.registry import did_you_mean
from robot.schema import (
    CameraSpec,
    FeatureSpec,
    RobotSpec,
    SchemaError,
    features_for,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the store layout. A store of another version is refused, naming both."""

_CRITIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


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
        self._rw: backend.DigestStore | None = backend.DigestStore(base) if writable else None
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
        base, path = backend.open_base(url, read_only=False)
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
            "created_at": backend.now_iso(),
        }
        try:
            zarr.create_group(base, attributes=attrs, zarr_format=3)
            zarr.create_group(base, path=EPISODES, zarr_format=3)
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
        if backend.is_local(url):
            path = backend.local_path(url)
            if not path.exists():
                raise StoreError(f"{url} is not an episode store: no such path")
            if not path.is_dir():
                raise StoreError(f"{url} is not an episode store: it is a file, not a directory")
        base, path = backend.open_base(url, read_only=(mode == "r"))
        meta = backend.get_json(base, "zarr.json")
        if meta is None:
            hint = ""
            if backend.get_bytes(base, ".zgroup") is not None:
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
        if backend.is_local(url):
            path = backend.local_path(url)
            return path.exists() and (not path.is_dir() or any(path.iterdir()))
        base, _ = backend.open_base(url, read_only=True)
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
        return [n for n in backend.list_dir(self._ro, EPISODES) if ID_RE.match(n)]

    def _episode_meta(self, episode_id: str) -> dict[str, Any] | None:
        meta = backend.get_json(self._ro, f"{EPISODES}/{episode_id}/zarr.json")
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
        for start in range(0, len(unknown), READ_BATCH):
            batch = unknown[start : start + READ_BATCH]
            keys = [f"{EPISODES}/{e}/zarr.json" for e in batch]
            for episode_id, raw in zip(batch, _sync(backend.get_many(self._ro, keys)), strict=True):
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
        return backend.sort_ids(committed), backend.sort_ids(uncommitted)

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
        attrs = self._committed_attrs(episode_id) if ID_RE.match(str(episode_id)) else None
        if attrs is not None:
            return attrs
        if ID_RE.match(str(episode_id)) and self._episode_meta(episode_id) is not None:
            raise EpisodeNotFoundError(
                f"{self._url}: episode '{episode_id}' is not committed (still being recorded, "
                "or left by a crash: run repair)"
            )
        known = self.episode_ids()
        hint = did_you_mean(episode_id, known) or f" ({len(known)} committed episodes)"
        raise EpisodeNotFoundError(f"{self._url}: no episode '{episode_id}'{hint}")

    # -- reading -----------------------------------------------------------------------------

    def _open_array(self, path: str) -> Any:
        return zarr.open_array(self._ro, path=path, mode="r", zarr_format=3)

    def _readback_checksum(self, arr: Any, name: str) -> tuple[str, list[str]]:
        """Checksum of array ``name`` (``arr``) from its stored chunks; also the chunk keys that
        are missing."""
        keys = backend.chunk_keys(arr)
        pairs: list[tuple[str, bytes]] = []
        missing: list[str] = []
        for start in range(0, len(keys), READ_BATCH):
            batch = keys[start : start + READ_BATCH]
            blobs = _sync(backend.get_many(self._ro, [f"{arr.path}/{k}" for k in batch]))
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
        root = f"{EPISODES}/{episode_id}"
        arrays: dict[str, Any] = {}
        for name in (*LOWDIM, *(IMAGE_PREFIX + c.name for c in self._cameras)):
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
            images={c.name: arrays[IMAGE_PREFIX + c.name] for c in self._cameras},
            rewards=rewards,
            reward_attrs=reward_attrs,
            robot=str(attrs.get("robot", self._robot_name)),
        )

    def _read_rewards(
        self, episode_id: str, n: int, verify: bool
    ) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
        rewards: dict[str, np.ndarray] = {}
        reward_attrs: dict[str, dict[str, Any]] = {}
        prefix = f"{EPISODES}/{episode_id}/rewards"
        for critic in sorted(backend.list_dir(self._ro, prefix)):
            meta = backend.get_json(self._ro, f"{prefix}/{critic}/zarr.json")
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

    def _require_writable(self, what: str) -> backend.DigestStore:
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
            seqs = [backend.seq_of(e) for e in self._episode_dirs()]
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
        prefix = f"{EPISODES}/{episode_id}"
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
                gone = not backend.list_keys(self._ro, prefix + "/")
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
        user = backend.json_safe(f"write_rewards: attrs for critic '{critic_id}'", dict(attrs))
        path = f"{EPISODES}/{episode_id}/rewards/{critic_id}"
        existing = backend.get_json(self._ro, f"{path}/zarr.json")
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
                    "written_at": backend.now_iso(),
                }
            )
        except Exception as exc:
            try:
                _sync(rw.delete_dir(path))
            except Exception:
                logger.exception("%s: could not remove failed rewards at %s", self._url, path)
            if backend.out_of_space(exc):
                raise StoreError(
                    f"out of space writing rewards '{critic_id}' of episode {episode_id}: {exc}"
                ) from exc
            raise StoreError(
                f"writing rewards '{critic_id}' of episode {episode_id} failed: {exc}"
            ) from exc

    # -- repair ------------------------------------------------------------------------------

    def repair(self, salvage: bool = False, *, force: bool = False) -> RepairReport:
        """Deal with every uncommitted episode: remove it, or with ``salvage`` commit its
        complete prefix (see :mod:`episodes.repair`). Committed episodes are never touched."""
        return repair_store(self, salvage, force=force)

    # -- durability --------------------------------------------------------------------------

    def _durable_before_commit(self) -> None:
        if self._local is not None and self._config.durable:
            backend.syncfs(self._local)

    def _durable_after_commit(self, episode_id: str) -> None:
        if self._local is not None and self._config.durable:
            group_dir = self._local / EPISODES / episode_id
            backend.fsync(group_dir / "zarr.json")
            backend.fsync(group_dir)
