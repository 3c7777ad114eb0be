"""The recording process the crash trials kill, and the test data it records.

Run as a script it opens (or creates) a store and records episodes, forever or ``--episodes N``
of them, printing ``READY`` once the store is open and ``COMMITTED <id> <seed> <digest>`` only
after each ``commit`` has returned::

    python tests/episodes/crash_writer.py STORE_URL [--episodes N] [--seed-base S]

Everything an episode holds is a pure function of its seed, which goes into its instruction
(``"seed=<n>"``), so a test can regenerate what any committed episode must hold, including one
committed just before the kill whose line never got printed. Imported, it gives the tests the
same robot, configuration and data.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

if __name__ == "__main__":  # run as a script from anywhere: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from episodes.codec import decode_jpeg, encode_jpeg
from episodes.store import EpisodeStore, ImageCodec, StoreConfig
from tests.specs import append_steps, storage_spec, synthetic_episode

JOINTS = ("shoulder", "elbow", "gripper")
CAMERAS = (("top", 32, 24), ("wrist", 32, 24))
JPEG_QUALITY = 85
FPS = 30.0


def make_spec(name: str = "crash_arm", joints: tuple[str, ...] = JOINTS, cameras=CAMERAS):
    return storage_spec(name, joints, cameras, FPS)


def make_config(**overrides: Any) -> StoreConfig:
    """Small chunks and growth blocks so that short episodes cross both boundaries."""
    kwargs: dict[str, Any] = {
        "min_free_bytes": 0,
        "image_codecs": {
            "top": ImageCodec("jpeg", quality=JPEG_QUALITY),
            "wrist": ImageCodec("zstd"),
        },
        "lowdim_chunk_steps": 4,
        "growth_steps": 8,
    }
    kwargs.update(overrides)
    return StoreConfig(**kwargs)


def steps_for(seed: int) -> int:
    return 3 + seed % 17  # 3..19 steps: partial and whole chunks, one or more growths


def episode_data(seed: int, n: int | None = None, cameras=CAMERAS) -> dict[str, Any]:
    """Deterministic content of episode ``seed`` (see :func:`tests.specs.synthetic_episode`)."""
    return synthetic_episode(seed, steps_for(seed) if n is None else n, JOINTS, cameras, FPS)


def data_digest(data: dict[str, Any]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for key in ("t", "joint_pos", "joint_vel", "action", "control_source"):
        h.update(np.ascontiguousarray(data[key]).tobytes())
    for name in sorted(data["images"]):
        h.update(name.encode())
        h.update(np.ascontiguousarray(data["images"][name]).tobytes())
    return h.hexdigest()


def outcome_for(seed: int) -> tuple[str, bool]:
    return ("success", True) if seed % 3 else ("dropped the cube", False)


def seed_of(instruction: str) -> int:
    if not instruction.startswith("seed="):
        raise ValueError(f"instruction {instruction!r} does not carry a seed")
    return int(instruction[len("seed=") :])


def record(store: EpisodeStore, seed: int, n: int | None = None) -> str:
    """Record and commit episode ``seed``; returns its id."""
    data = episode_data(seed, n)
    outcome, success = outcome_for(seed)
    with store.begin(f"seed={seed}", "crash-trial", float(seed)) as writer:
        append_steps(writer, data)
        return writer.commit(outcome, success)


def expected_images(store: EpisodeStore, data: dict[str, Any]) -> dict[str, np.ndarray]:
    """What each camera must read back: exact for zstd, the libjpeg round trip for JPEG."""
    out = {}
    for name, frames in data["images"].items():
        codec = store.image_codecs[name]
        if codec.kind == "jpeg":
            out[name] = np.stack([decode_jpeg(encode_jpeg(f, codec.quality)) for f in frames])
        else:
            out[name] = frames
    return out


def check_episode(store: EpisodeStore, episode_id: str, prefix: int | None = None) -> int:
    """Read ``episode_id`` (verifying checksums) and compare every field with what its seed
    generates; ``prefix``: a salvaged episode holds only the first steps. Returns the seed."""
    ep = store.read(episode_id, verify=True)
    seed = seed_of(ep.instruction)
    full = episode_data(seed)
    n = ep.n_steps if prefix is None else prefix
    if prefix is None:
        assert n == len(full["t"]), f"{episode_id}: {n} steps, seed {seed} has {len(full['t'])}"
        outcome, success = outcome_for(seed)
        assert (ep.outcome, ep.success) == (outcome, success), episode_id
    else:
        assert ep.n_steps == prefix, episode_id
    assert ep.task == "crash-trial" and ep.started_at == float(seed), episode_id
    np.testing.assert_array_equal(ep.t, full["t"][:n], err_msg=episode_id)
    for key in ("joint_pos", "joint_vel", "action", "control_source"):
        np.testing.assert_array_equal(getattr(ep, key), full[key][:n], err_msg=episode_id)
    want = expected_images(store, {"images": {k: v[:n] for k, v in full["images"].items()}})
    for name, frames in want.items():
        np.testing.assert_array_equal(ep.images[name][:], frames, err_msg=f"{episode_id} {name}")
    return seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--episodes", type=int, default=0, help="stop after N (0: never)")
    parser.add_argument("--seed-base", type=int, default=None)
    args = parser.parse_args(argv)
    store = EpisodeStore.open_or_create(args.url, make_spec(), FPS, make_config())
    base = args.seed_base if args.seed_base is not None else (os.getpid() % 10_000) * 1000
    print("READY", flush=True)
    k = 0
    while args.episodes <= 0 or k < args.episodes:
        seed = base + k
        episode_id = record(store, seed)
        print(f"COMMITTED {episode_id} {seed} {data_digest(episode_data(seed))}", flush=True)
        k += 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
