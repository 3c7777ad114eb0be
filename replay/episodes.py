"""Where replayed episodes come from, and what makes one unreplayable.

Why a check of its own before anything moves: a replay of an episode from another arm, or one
whose clock ran backwards, would produce a report that looks plausible and means nothing. The
checks name the episode and what is wrong. Nothing here writes to the store it reads: a
project store is opened read-only, and a LeRobotDataset is imported through the project's own
import (``episodes.lerobot``) into an in-memory store that vanishes with the process.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import numpy as np

from episodes.store import Episode, EpisodeStore, StoreConfig
from replay.config import ReplayError
from robot.schema import RobotSpec


def open_episodes(url: str, spec: RobotSpec, lerobot_repo_id: str = "") -> EpisodeStore:
    """The store at ``url`` read-only, or, with ``lerobot_repo_id``, the LeRobotDataset at
    ``url`` imported into a fresh in-memory store of ``spec``'s joints and cameras. Refuses a
    store of another robot's joints and one with no committed episode."""
    if lerobot_repo_id:
        from episodes.lerobot import import_lerobot

        memory = f"memory://replay-{secrets.token_hex(6)}.zarr"
        fps = spec.control_hz
        info = Path(url) / "meta" / "info.json"
        if info.is_file():
            import json

            fps = float(json.loads(info.read_text()).get("fps", fps))
        store = EpisodeStore.create(memory, spec, fps, StoreConfig(durable=False))
        import_lerobot(Path(url), lerobot_repo_id, store)
        store = EpisodeStore.open(memory)
    else:
        store = EpisodeStore.open(url)
    check_store(store, spec)
    return store


def check_store(store: EpisodeStore, spec: RobotSpec) -> None:
    """A store of ``spec``'s joints (names and order) with at least one committed episode."""
    if tuple(store.joint_names) != tuple(spec.joint_names):
        raise ReplayError(
            f"{store.url}: recorded by robot '{store.robot_name}' with joints "
            f"{list(store.joint_names)}; robot '{spec.name}' has {list(spec.joint_names)} "
            "(replay with the preset of the robot that recorded it: robot=...)"
        )
    if not store.episode_ids():
        pending = len(store.uncommitted_ids())
        extra = f" ({pending} uncommitted: `dojo episodes repair {store.url}`)" if pending else ""
        raise ReplayError(f"{store.url}: no committed episodes to replay{extra}")


def check_episode(episode: Episode, spec: RobotSpec, where: str) -> None:
    """An episode that can be replayed on ``spec``: its joint count, at least two steps,
    finite values and strictly increasing timestamps. ``where`` names it in the message."""
    d = spec.dof
    for name in ("joint_pos", "joint_vel", "action"):
        arr = getattr(episode, name)
        if arr.ndim != 2 or arr.shape[1] != d:
            raise ReplayError(
                f"{where}: {name} has shape {arr.shape}; robot '{spec.name}' has {d} joints "
                f"{list(spec.joint_names)}"
            )
    if episode.n_steps < 2:
        raise ReplayError(f"{where}: {episode.n_steps} step(s); a replay needs at least 2")
    t = np.asarray(episode.t, dtype=np.float64)
    if not np.all(np.isfinite(t)):
        raise ReplayError(
            f"{where}: timestamp at step {int(np.argmin(np.isfinite(t)))} is not finite"
        )
    back = np.flatnonzero(np.diff(t) <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise ReplayError(
            f"{where}: timestamps go backwards at step {i} (t={t[i]:.6f} after "
            f"t={t[i - 1]:.6f}); replay needs the time each step was recorded"
        )
    for name in ("joint_pos", "action"):
        arr = getattr(episode, name)
        bad = ~np.isfinite(arr)
        if bad.any():
            step, joint = (int(v) for v in np.argwhere(bad)[0])
            raise ReplayError(
                f"{where}: {name} of joint '{spec.joint_names[joint]}' is not finite at step {step}"
            )
