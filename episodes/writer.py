"""Recording one episode: :class:`EpisodeWriter`, made by :meth:`EpisodeStore.begin`.

Images are written one frame (one chunk) per ``append``; the low-dimensional arrays are
buffered and written a whole chunk at a time, so no chunk is ever read back and rewritten
while recording. Arrays grow by ``StoreConfig.growth_steps`` and are cut to length on commit.
The episode records who writes it (host, pid, process start time), so ``repair`` can tell a
crashed writer from one still running.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import socket
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BytesCodec, ZstdCodec
from zarr.core.sync import sync as _sync

from episodes import backend
from episodes import checksum as _ck
from episodes.backend import BEGIN_PREFIX, EPISODES, IMAGE_PREFIX, LOWDIM
from episodes.codec import JpegCodec
from episodes.errors import StoreError
from robot.schema import ControlSource, SchemaError

if TYPE_CHECKING:
    from episodes.store import EpisodeStore

logger = logging.getLogger(__name__)


def process_started(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def host_tag() -> str:
    """8 hex digits naming this host in a file name (host names may hold any character)."""
    return hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def writer_identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "started": process_started(pid)}


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
        self._root = f"{EPISODES}/{episode_id}"
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
            "writer": writer_identity(),
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
                self._arrays[IMAGE_PREFIX + cam.name] = self._group.create_array(
                    IMAGE_PREFIX + cam.name,
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

    def _create_group(
        self, store: EpisodeStore, rw: backend.DigestStore, attrs: dict[str, Any]
    ) -> Any:
        """The episode's group, appearing whole: on a local store its directory is made under a
        hidden name with its zarr.json inside, then renamed into place (so no reader or repair
        ever sees an episode directory without metadata); an object store has no directories,
        and the zarr.json object is the first thing under the episode's prefix."""
        if store._local is None:
            return zarr.create_group(rw, path=self._root, attributes=attrs, zarr_format=3)
        hidden = f"{EPISODES}/{BEGIN_PREFIX}{self._id}.{os.getpid()}.{host_tag()}"
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
                    backend.gather(
                        self._arrays[IMAGE_PREFIX + name].async_array.setitem(step, frame)
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
                for name in LOWDIM:
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
                for name in LOWDIM:
                    self._arrays[name][start:n] = self._buf[name][:tail]
            sums = {name: self._checksum(arr, name) for name, arr in self._arrays.items()}
            final = {
                **self._attrs,
                "success": bool(success),
                "outcome": outcome,
                "n_steps": n,
                "checksum": sums,
                "committed_at": backend.now_iso(),
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
        for key in backend.chunk_keys(arr):
            full = f"{arr.path}/{key}"
            digest = self._digests.get(full)
            if digest is None:
                blob = backend.get_bytes(self._store._ro, full)
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
        if backend.out_of_space(exc):
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
