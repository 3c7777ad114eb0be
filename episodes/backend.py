"""What the episode store stands on: a zarr store on a local path or an fsspec URL, the key
names of the layout, and the few operations the store, the writer and repair need on it.

Everything here is synchronous (zarr's own event loop runs the async calls) and knows nothing
of episodes beyond the names of their keys. :class:`DigestStore` is how a writer knows the
checksum of every chunk it stored without reading it back.
"""

from __future__ import annotations

import asyncio
import ctypes
import datetime as _dt
import errno
import json
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from zarr.abc.store import Store
from zarr.core.buffer import Buffer, default_buffer_prototype
from zarr.core.sync import sync as _sync
from zarr.storage import FsspecStore, LocalStore, WrapperStore

from episodes import checksum as _ck
from episodes.errors import StoreError
from robot.schema import SchemaError

EPISODES = "episodes"
BEGIN_PREFIX = ".begin-"  # local stores: an episode group is made here, then renamed in place
ID_RE = re.compile(r"^ep_(\d{6,})_([0-9a-f]{8})$")
LOWDIM = ("obs/joint_pos", "obs/joint_vel", "action", "control_source", "t")
IMAGE_PREFIX = "obs/images/"
READ_BATCH = 64  # chunks fetched concurrently when verifying


class DigestStore(WrapperStore[Store]):
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


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> Path:
    return Path(url[len("file://") :] if url.startswith("file://") else url).expanduser()


def open_base(url: str, *, read_only: bool) -> tuple[Store, Path | None]:
    if is_local(url):
        path = local_path(url)
        return LocalStore(path, read_only=read_only), path
    try:
        return FsspecStore.from_url(url, read_only=read_only), None
    except (ImportError, ValueError, TypeError) as exc:
        raise StoreError(f"{url}: cannot open as an fsspec store: {exc}") from exc


def get_bytes(store: Store, key: str) -> bytes | None:
    buf = _sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()


def get_json(store: Store, key: str) -> dict[str, Any] | None:
    raw = get_bytes(store, key)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def _alist_dir(store: Store, prefix: str) -> list[str]:
    return [name async for name in store.list_dir(prefix)]


def list_dir(store: Store, prefix: str) -> list[str]:
    try:
        return _sync(_alist_dir(store, prefix))
    except (FileNotFoundError, NotADirectoryError):
        return []


async def gather(coros: Iterable[Any]) -> list[Any]:
    """Run concurrently and wait for *all* before raising the first error, so that no write is
    still in flight when the caller cleans up after a failure."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return list(results)


async def get_many(store: Store, keys: list[str]) -> list[bytes | None]:
    proto = default_buffer_prototype()
    bufs = await asyncio.gather(*(store.get(k, prototype=proto) for k in keys))
    return [None if b is None else b.to_bytes() for b in bufs]


def chunk_keys(arr: Any) -> list[str]:
    """Keys of every chunk of ``arr``'s grid, relative to the array, in C order."""
    meta = arr.metadata
    return [meta.encode_chunk_key(c) for c in np.ndindex(*arr.cdata_shape)]


def out_of_space(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def syncfs(path: Path) -> None:
    """Flush the filesystem holding ``path`` (Linux ``syncfs``; ``os.sync`` elsewhere)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = getattr(libc, "syncfs", None)
        if fn is None or fn(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def seq_of(episode_id: str) -> int:
    m = ID_RE.match(episode_id)
    return int(m.group(1)) if m else -1


def sort_ids(ids: Iterable[str]) -> list[str]:
    return sorted(ids, key=lambda e: (seq_of(e), e))


def json_safe(name: str, value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise SchemaError(f"{name} must be JSON-serialisable: {exc}") from exc


def list_keys(store: Store, prefix: str) -> list[str]:
    async def collect() -> list[str]:
        return [k async for k in store.list_prefix(prefix)]

    try:
        return _sync(collect())
    except (FileNotFoundError, NotADirectoryError):
        return []
