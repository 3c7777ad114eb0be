"""LeRobotDataset (v3.0 format, lerobot 0.6) export and import, with LeRobot's own classes.

Why through LeRobot's classes rather than writing parquet and mp4 ourselves: the format (file
chunking, episode metadata, stats, video encoding parameters) changes between LeRobot releases;
``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` / ``finalize`` and reading back with
``LeRobotDataset(repo_id, root=...)`` keep what we write loadable by the LeRobot version pinned
in pyproject, and what LeRobot users write importable.

Mapping (store -> LeRobot feature):

=============================  =======================================================
``obs/joint_pos``              ``observation.state`` (float32, names = joint names)
``obs/joint_vel``              ``observation.velocity`` (float32, a custom feature)
``action``                     ``action`` (float32)
``obs/images/<camera>``        ``observation.images.<camera>``: ``video`` (AV1 mp4, LeRobot's
                               encoder, lossy) or ``image`` (PNG in parquet, lossless)
``control_source``             ``control_source`` (uint8, shape (1,))
``t``                          ``ros_time`` (float64, shape (1,)); LeRobot's own ``timestamp``
                               is ``frame_index / fps`` and float32, so it cannot hold ROS time
instruction                    the frame's ``task`` string
task, success, outcome,        ``meta/vla_dojo_episodes.json`` beside LeRobot's metadata, one
started_at, robot, id, rewards entry per ``episode_index`` (LeRobot has no per-episode fields)
=============================  =======================================================

A round trip store -> LeRobot -> store keeps every field exactly except images, which keep
within video-codec loss (or exactly, with ``video=False``).

Importing a dataset LeRobot recorded (no sidecar): missing ``observation.velocity`` becomes
zeros, missing ``control_source`` becomes ``HUMAN`` (LeRobot datasets are teleoperated demos),
missing ``ros_time`` becomes LeRobot's ``timestamp``; ``task`` is ``"lerobot:<repo_id>"``,
``success`` False and ``outcome`` ``"imported"`` (LeRobot records neither). Each such default is
logged.

Nothing here touches the network: export writes under a local ``root`` and never pushes;
import refuses a ``root`` without ``meta/info.json`` before LeRobot could fall back to
downloading from the Hub. Set ``HF_HUB_OFFLINE=1`` as well to be sure.

``lerobot`` (with its ``dataset`` extra: ``datasets``, ``pandas``, ``av``, ``torchcodec``) is
imported lazily, so ``episodes.store`` works without it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from episodes.store import EpisodeStore, StoreError
from robot.schema import ControlSource

logger = logging.getLogger(__name__)

SIDECAR = "meta/vla_dojo_episodes.json"
SIDECAR_VERSION = 1
STATE = "observation.state"
VELOCITY = "observation.velocity"
ACTION = "action"
CONTROL_SOURCE = "control_source"
ROS_TIME = "ros_time"
IMAGE_PREFIX = "observation.images."


def _lerobot_dataset_class() -> Any:
    try:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as exc:
        raise StoreError(
            "LeRobot interop needs lerobot 0.6 with its dataset extra "
            f"(pip install 'lerobot[dataset]>=0.6,<0.7'): {exc}"
        ) from exc
    return LeRobotDataset


def video_unavailable_reason(rgb_encoder: Any = None) -> str:
    """Why LeRobot cannot encode video here ("" when it can): validates its RGB encoder."""
    try:
        from lerobot.configs.video import RGBEncoderConfig

        encoder = rgb_encoder if rgb_encoder is not None else RGBEncoderConfig()
        encoder.validate()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _lerobot_features(store: EpisodeStore, video: bool) -> dict[str, dict[str, Any]]:
    joints = list(store.joint_names)
    d = len(joints)
    feats: dict[str, dict[str, Any]] = {
        STATE: {"dtype": "float32", "shape": (d,), "names": joints},
        VELOCITY: {"dtype": "float32", "shape": (d,), "names": joints},
        ACTION: {"dtype": "float32", "shape": (d,), "names": joints},
        CONTROL_SOURCE: {"dtype": "uint8", "shape": (1,), "names": None},
        ROS_TIME: {"dtype": "float64", "shape": (1,), "names": None},
    }
    for cam in store.cameras:
        feats[IMAGE_PREFIX + cam.name] = {
            "dtype": "video" if video else "image",
            "shape": (cam.height, cam.width, 3),
            "names": ["height", "width", "channels"],
        }
    return feats


def export_lerobot(
    store: EpisodeStore,
    root: Path,
    repo_id: str,
    episode_ids: Sequence[str] | None = None,
    video: bool = True,
    *,
    rgb_encoder: Any = None,
    parallel_encoding: bool = False,
) -> Path:
    """Write committed episodes of ``store`` (all, or ``episode_ids`` in that order) as a new
    LeRobotDataset under ``root`` (which must not exist, or be an empty directory). Episodes are
    read with checksum verification; if anything fails, ``root`` is removed again.

    ``video``: encode cameras with LeRobot's video pipeline (``rgb_encoder``: a
    ``lerobot.configs.video.RGBEncoderConfig``, default AV1 via libsvtav1). If LeRobot cannot
    encode video on this machine, the reason is logged and images are stored instead.
    ``parallel_encoding``: LeRobot's process pool per camera (off: predictable on small
    machines). Returns ``root``.
    """
    LeRobotDataset = _lerobot_dataset_class()
    root = Path(root)
    if root.exists():
        if not root.is_dir() or any(root.iterdir()):
            raise StoreError(f"{root} already exists and is not empty; refusing to export there")
        root.rmdir()  # LeRobotDataset.create wants to make it itself
    fps = store.fps
    if abs(fps - round(fps)) > 1e-9:
        raise StoreError(f"{store.url} records at fps={fps}; LeRobotDataset needs an integer fps")
    ids = list(store.episode_ids() if episode_ids is None else episode_ids)
    if not ids:
        raise StoreError(f"{store.url}: no committed episodes to export")
    for episode_id in ids:
        store.info(episode_id)  # every id committed, before anything is written
    if video and store.cameras:
        why = video_unavailable_reason(rgb_encoder)
        if why:
            logger.warning(
                "LeRobot cannot encode video here (%s); exporting images (PNG) instead", why
            )
            video = False
    dataset = LeRobotDataset.create(
        repo_id=repo_id,
        fps=round(fps),
        features=_lerobot_features(store, video),
        root=root,
        robot_type=store.robot_name,
        use_videos=video,
        rgb_encoder=rgb_encoder,
    )
    sidecar: list[dict[str, Any]] = []
    done = False
    try:
        for index, episode_id in enumerate(ids):
            ep = store.read(episode_id, verify=True)
            for i in range(ep.n_steps):
                frame: dict[str, Any] = {
                    STATE: ep.joint_pos[i],
                    VELOCITY: ep.joint_vel[i],
                    ACTION: ep.action[i],
                    CONTROL_SOURCE: ep.control_source[i : i + 1],
                    ROS_TIME: ep.t[i : i + 1],
                    "task": ep.instruction,
                }
                for cam, arr in ep.images.items():
                    frame[IMAGE_PREFIX + cam] = np.asarray(arr[i])
                dataset.add_frame(frame)
            dataset.save_episode(parallel_encoding=parallel_encoding)
            sidecar.append(
                {
                    "episode_index": index,
                    "id": ep.id,
                    "instruction": ep.instruction,
                    "task": ep.task,
                    "success": ep.success,
                    "outcome": ep.outcome,
                    "started_at": ep.started_at,
                    "robot": ep.robot,
                    "n_steps": ep.n_steps,
                    "rewards": {
                        critic: {
                            "values": [float(v) for v in values],
                            "attrs": ep.reward_attrs.get(critic, {}),
                        }
                        for critic, values in ep.rewards.items()
                    },
                }
            )
            logger.info("exported %s as LeRobot episode %d (%d frames)", ep.id, index, ep.n_steps)
        done = True
    finally:
        dataset.finalize()
        if not done:  # leave no half-written dataset behind
            shutil.rmtree(root, ignore_errors=True)
    meta = {
        "format_version": SIDECAR_VERSION,
        "source": store.url,
        "robot": {"name": store.robot_name, "joint_names": list(store.joint_names)},
        "fps": store.fps,
        "video": video,
        "mapping": {
            STATE: "obs/joint_pos",
            VELOCITY: "obs/joint_vel",
            ACTION: "action",
            CONTROL_SOURCE: "control_source",
            ROS_TIME: "t",
            **{IMAGE_PREFIX + c.name: f"obs/images/{c.name}" for c in store.cameras},
            "task": "instruction",
        },
        "episodes": sidecar,
    }
    (root / SIDECAR).write_text(json.dumps(meta, indent=1) + "\n")
    return root


def _to_hwc_uint8(value: Any) -> np.ndarray:
    arr = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = np.transpose(arr, (1, 2, 0))
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def _check_vector_feature(root: Path, feats: dict, key: str, store: EpisodeStore) -> None:
    ft = feats.get(key)
    d = len(store.joint_names)
    if ft is None:
        raise StoreError(f"{root}: LeRobot dataset has no '{key}' feature")
    if tuple(ft["shape"]) != (d,):
        raise StoreError(
            f"{root}: '{key}' has shape {tuple(ft['shape'])}; store {store.url} records "
            f"{d} joints {list(store.joint_names)}"
        )
    names = ft.get("names")
    if isinstance(names, dict):  # older LeRobot: {"motors": [...]}
        names = next(iter(names.values()), None)
    if names and list(names) != list(store.joint_names):
        raise StoreError(
            f"{root}: '{key}' names joints {list(names)}; store {store.url} records "
            f"{list(store.joint_names)}"
        )


def import_lerobot(root: Path, repo_id: str, store: EpisodeStore) -> list[str]:
    """Record every episode of the LeRobotDataset at ``root`` into ``store`` (opened "a");
    returns the new episode ids, in LeRobot's episode order.

    The dataset's joints (``observation.state`` names) and cameras must match the store's.
    """
    LeRobotDataset = _lerobot_dataset_class()
    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise StoreError(f"{root} is not a LeRobot dataset: no meta/info.json")
    dataset = LeRobotDataset(repo_id, root=root, return_uint8=True)
    feats = dataset.meta.features
    for key in (STATE, ACTION):
        _check_vector_feature(root, feats, key, store)
    has_velocity = VELOCITY in feats
    if has_velocity:
        _check_vector_feature(root, feats, VELOCITY, store)
    cams = {}
    for cam in store.cameras:
        key = IMAGE_PREFIX + cam.name
        ft = feats.get(key)
        if ft is None:
            raise StoreError(
                f"{root}: LeRobot dataset has no '{key}'; store {store.url} records cameras "
                f"{[c.name for c in store.cameras]}, dataset has "
                f"{[k for k in feats if k.startswith(IMAGE_PREFIX)]}"
            )
        shape = tuple(ft["shape"])
        if sorted(shape) != sorted((cam.height, cam.width, 3)) or (
            shape != (cam.height, cam.width, 3) and shape != (3, cam.height, cam.width)
        ):
            raise StoreError(
                f"{root}: '{key}' has shape {shape}; store camera '{cam.name}' is "
                f"{cam.height}x{cam.width} RGB"
            )
        cams[cam.name] = key
    ignored = sorted(k for k in feats if k.startswith(IMAGE_PREFIX) and k not in cams.values())
    if ignored:
        logger.warning("%s: cameras %s are not in store %s; not imported", root, ignored, store.url)

    sidecar_path = root / SIDECAR
    side: dict[int, dict[str, Any]] = {}
    if sidecar_path.is_file():
        meta = json.loads(sidecar_path.read_text())
        side = {int(e["episode_index"]): e for e in meta.get("episodes", [])}
    else:
        logger.info("%s has no %s: using import defaults for per-episode fields", root, SIDECAR)
    defaults: set[str] = set()

    table = dataset.hf_dataset.with_format("numpy")
    columns = {
        c: np.asarray(table[c])
        for c in table.column_names
        if c in feats and feats[c]["dtype"] not in ("image", "video")
    }
    episode_col = columns["episode_index"].reshape(-1)
    ids: list[str] = []
    for ep_index in sorted(int(e) for e in np.unique(episode_col)):
        rows = np.flatnonzero(episode_col == ep_index)
        rows = rows[np.argsort(columns["frame_index"].reshape(-1)[rows], kind="stable")]
        info = side.get(ep_index, {})
        first = dataset[int(rows[0])]
        instruction = str(info.get("instruction", first["task"]))
        if ROS_TIME in columns:
            t = columns[ROS_TIME].reshape(-1)[rows].astype(np.float64)
        else:
            defaults.add("ros_time <- timestamp")
            t = columns["timestamp"].reshape(-1)[rows].astype(np.float64)
        if VELOCITY in columns:
            vel = columns[VELOCITY][rows]
        else:
            defaults.add("joint_vel <- zeros")
            vel = np.zeros((len(rows), len(store.joint_names)), np.float32)
        if CONTROL_SOURCE in columns:
            cs = columns[CONTROL_SOURCE].reshape(-1)[rows]
        else:
            defaults.add("control_source <- HUMAN")
            cs = np.full(len(rows), int(ControlSource.HUMAN))
        if not info:
            defaults.add("task/success/outcome <- lerobot:<repo_id>/False/'imported'")
        started_at = float(info.get("started_at", t[0] if len(t) else 0.0))
        if not math.isfinite(started_at):
            started_at = 0.0
        writer = store.begin(instruction, str(info.get("task", f"lerobot:{repo_id}")), started_at)
        with writer:
            for j, row in enumerate(rows):
                item = first if j == 0 else dataset[int(row)]
                writer.append(
                    float(t[j]),
                    columns[STATE][row],
                    vel[j],
                    columns[ACTION][row],
                    int(cs[j]),
                    {name: _to_hwc_uint8(item[key]) for name, key in cams.items()},
                )
            new_id = writer.commit(
                str(info.get("outcome", "imported")), bool(info.get("success", False))
            )
        for critic, reward in (info.get("rewards") or {}).items():
            store.write_rewards(
                new_id, critic, np.asarray(reward["values"], np.float32), reward.get("attrs", {})
            )
        ids.append(new_id)
        logger.info("imported LeRobot episode %d of %s as %s", ep_index, repo_id, new_id)
    if defaults:
        logger.warning("%s: filled fields LeRobot does not record: %s", root, sorted(defaults))
    return ids
