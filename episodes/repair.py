"""After a crash: find the episodes that were never committed and remove or salvage them.

A crash loses at most the episode being recorded: earlier episodes are complete objects that
nothing touches again. :func:`repair` (``EpisodeStore.repair``, ``dojo episodes repair``) finds
the uncommitted one and removes it, or with ``salvage=True`` commits its complete prefix (every
array present up to the same step: whole low-dim chunks and consecutive frames) with outcome
:data:`SALVAGED`. It leaves alone an uncommitted episode whose writer process is still alive on
this host, or was recorded on another host, unless ``force=True``.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from episodes import backend
from episodes.backend import BEGIN_PREFIX, EPISODES, IMAGE_PREFIX, LOWDIM
from episodes.errors import StoreError
from episodes.writer import host_tag, process_started

if TYPE_CHECKING:
    from episodes.store import EpisodeStore

logger = logging.getLogger(__name__)

SALVAGED = "salvaged"
"""The outcome ``repair(salvage=True)`` gives the episodes it commits."""


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


def writer_state(writer: Mapping[str, Any] | None) -> str:
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
    now_started = process_started(pid)
    if started is not None and now_started is not None and abs(now_started - started) > 1.0:
        return "dead"  # the pid was reused by another process
    return "alive"


def repair_store(
    store: EpisodeStore, salvage: bool = False, *, force: bool = False
) -> RepairReport:
    """Deal with every uncommitted episode: remove it, or with ``salvage`` commit its
    complete prefix (outcome ``"salvaged"``, ``success=False``, fresh checksums).

    Committed episodes are never touched. An uncommitted episode whose writer is alive on
    this host, or was recorded on another host, is skipped unless ``force``.
    """
    store._require_writable("repair it")
    report = RepairReport(store._url)
    for eid in store.uncommitted_ids():
        attrs = store._episode_meta(eid)
        if attrs is not None and attrs.get("committed") is True:
            continue  # committed meanwhile
        state = "dead" if force or attrs is None else writer_state(attrs.get("writer"))
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
                n = _salvage(store, eid, attrs)
            except Exception as exc:
                logger.warning("%s: salvaging %s failed (%s); removing it", store._url, eid, exc)
                n = 0
                reason = f"salvage failed ({exc}); removed"
            else:
                reason = "complete prefix committed" if n else "nothing complete; removed"
            if n:
                report.actions.append(RepairAction(eid, "salvaged", n, reason))
                continue
            store._remove(eid)
            report.actions.append(RepairAction(eid, "removed", 0, reason))
            continue
        store._remove(eid)
        why = "no metadata (creation interrupted)" if attrs is None else "uncommitted"
        report.actions.append(RepairAction(eid, "removed", 0, why))
    for a in report.actions:
        logger.info("repair %s: %s %s (%s)", store._url, a.action, a.episode_id, a.reason)
    _remove_stale_begins(store, force)
    return report


def _remove_stale_begins(store: EpisodeStore, force: bool) -> None:
    """Delete ``episodes/.begin-<id>.<pid>.<host tag>`` directories a crash left inside
    ``begin`` (local stores only; readers never list them) whose writer is dead: from their
    metadata if it got written, else from the pid and host in their name; one of unknown
    origin only once it is a minute old. With ``force``, all of them."""
    if store._local is None:
        return
    try:
        entries = list((store._local / EPISODES).iterdir())
    except OSError:
        return
    for path in entries:
        if not path.name.startswith(BEGIN_PREFIX):
            continue
        meta = backend.get_json(store._ro, f"{EPISODES}/{path.name}/zarr.json")
        writer = (meta.get("attributes") or {}).get("writer") if meta else None
        parts = path.name.split(".")
        if writer is None and len(parts) == 4 and parts[3] == host_tag():
            writer = {"host": socket.gethostname(), "pid": parts[2]}
        state = writer_state(writer)
        if state == "unknown":
            try:
                state = "dead" if time.time() - path.stat().st_mtime > 60 else "alive"
            except OSError:
                continue
        stale = state == "dead"
        if stale or force:
            shutil.rmtree(path, ignore_errors=True)
            logger.info("repair %s: removed %s left by an interrupted begin", store._url, path)


def _salvage(store: EpisodeStore, episode_id: str, attrs: dict[str, Any]) -> int:
    rw = store._require_writable("salvage")
    root = f"{EPISODES}/{episode_id}"
    names = (*LOWDIM, *(IMAGE_PREFIX + c.name for c in store._cameras))
    arrays: dict[str, Any] = {}
    for name in names:
        try:
            arrays[name] = zarr.open_array(
                rw, path=f"{root}/{name}", mode="r+", config={"write_empty_chunks": True}
            )
        except Exception:
            return 0
    n = min(_complete_prefix(store, a) for a in arrays.values())
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
        s, missing = store._readback_checksum(store._open_array(arr.path), name)
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
        "committed_at": backend.now_iso(),
        "committed": True,
    }
    store._durable_before_commit()
    group.update_attributes(final)
    store._durable_after_commit(episode_id)
    store._note_committed(episode_id, final)
    return n


def _complete_prefix(store: EpisodeStore, arr: Any) -> int:
    """Steps ``[0, k)`` of ``arr`` whose chunks are all present and decode."""
    steps_per_chunk = int(arr.chunks[0])
    present = set(backend.list_keys(store._ro, f"{arr.path}/c/"))
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
