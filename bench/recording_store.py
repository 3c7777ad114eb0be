"""Episode-store write and read cost at the recorder's size: 640x480 RGB cameras.

Records one episode of ``--steps`` control steps with ``--cameras`` 640x480 cameras into a
fresh local store, once with JPEG (q90) and once with zstd frames, and reports per-``append``
latency, frame throughput, ``commit`` time (flush, checksums, durable commit), read + verify
time, decode time of one camera, and bytes on disk. Frames are a smooth gradient plus sensor-
like noise, so JPEG sizes are realistic (pure noise would be the worst case).

    .venv/bin/python bench/recording_store.py [--steps 300] [--cameras 2] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentiles, print_table, write_json
from episodes.store import EpisodeStore, ImageCodec, StoreConfig
from episodes.synthetic import storage_spec
from robot.schema import RobotSpec

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]


def spec(n_cameras: int) -> RobotSpec:
    cameras = [(f"cam{i}", 640, 480) for i in range(n_cameras)]
    return storage_spec("bench_arm", JOINTS, cameras, 30.0)


def frames(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640]
    base = np.stack([x * 255 / 640, y * 255 / 480, (x + y) * 255 / 1120], -1)
    return [
        np.clip(base + rng.uniform(0, 40) + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
        for _ in range(count)
    ]


def run(kind: str, steps: int, n_cameras: int, where: Path) -> dict:
    url = where / f"bench_{kind}.zarr"
    shutil.rmtree(url, ignore_errors=True)
    cams = [f"cam{i}" for i in range(n_cameras)]
    config = StoreConfig(image_codecs={c: ImageCodec(kind, quality=90) for c in cams})
    store = EpisodeStore.create(str(url), spec(n_cameras), 30.0, config)
    pool = frames(16)
    d = len(JOINTS)
    latencies = []
    writer = store.begin("bench", "bench", 0.0)
    start = time.perf_counter()
    for i in range(steps):
        images = {c: pool[(i + k * 5) % len(pool)] for k, c in enumerate(cams)}
        t0 = time.perf_counter()
        writer.append(i / 30.0, np.zeros(d), np.zeros(d), np.zeros(d), 0, images)
        latencies.append(time.perf_counter() - t0)
    record_s = time.perf_counter() - start
    t0 = time.perf_counter()
    episode_id = writer.commit("done", True)
    commit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ep = EpisodeStore.open(str(url)).read(episode_id, verify=True)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ep.images[cams[0]][:]
    decode_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in url.rglob("*") if p.is_file())
    shutil.rmtree(url, ignore_errors=True)
    lat = percentiles([x * 1e3 for x in latencies], (50, 99))
    return {
        "codec": kind,
        "steps": steps,
        "cameras": n_cameras,
        "frames_per_s": steps * n_cameras / record_s,
        "append_ms_p50": lat["p50"],
        "append_ms_p99": lat["p99"],
        "commit_ms": commit_s * 1e3,
        "read_verify_ms": read_s * 1e3,
        "decode_ms_per_frame": decode_s * 1e3 / steps,
        "kib_per_frame": size / 1024 / (steps * n_cameras),
        "readbacks": store.readbacks,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = [run(kind, args.steps, args.cameras, Path(tmp)) for kind in ("jpeg", "zstd")]
    header = [
        "codec",
        "frames/s",
        "append p50 ms",
        "append p99 ms",
        "commit ms",
        "read+verify ms",
        "decode ms/frame",
        "KiB/frame",
    ]
    rows = [
        [
            r["codec"],
            r["frames_per_s"],
            r["append_ms_p50"],
            r["append_ms_p99"],
            r["commit_ms"],
            r["read_verify_ms"],
            r["decode_ms_per_frame"],
            r["kib_per_frame"],
        ]
        for r in results
    ]
    print_table(
        f"episode store, {args.steps} steps x {args.cameras} cameras 640x480, local disk",
        header,
        rows,
    )
    write_json("recording_store", {"results": results})


if __name__ == "__main__":
    main()
