"""RealSense recording playback through the camera node at 640x480 30 Hz.

Measures, in one run:

- **delivered rate** and **latency** (subscriber receive time minus the frame's stamp, both on
  this machine's clock; the stamp is the device timestamp mapped to host time) of the camera
  node process seen over ROS 2, against a baseline of the same recording played through the
  same driver in-process (no node, no DDS): the ratio is what the node and transport cost;
- **timestamp alignment error** with an injected 75 ppm device-clock drift and a 50 ms offset
  (on a separate 64x48 recording of ``--align-seconds``: drift needs time to show):
  frames' device stamps run fast and late against the host, and each frame's stamp is compared
  with its true capture instant (the fastest-delivery line through the arrivals, slope exactly
  one period per frame). Three stampers see the same arrivals: ClockSync (the driver's), an
  offset-only mapping fixed at the first frame (what a driver without drift estimation does),
  and the arrival time itself.

The recording is written by librealsense's own recorder from a software device (colour only
by default, ~0.9 MB a frame), so it takes as long to write as it lasts.

    .venv/bin/python bench/camera_pipeline.py [--frames 150] [--depth] [--align-seconds 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentiles, print_table, write_json

DRIFT_PPM = 75.0
OFFSET_S = 0.050
W, H, FPS = 640, 480, 30


def color(i: int, h: int, w: int) -> np.ndarray:
    img = np.full((h, w, 3), 90, np.uint8)
    img[0, 0, 0], img[0, 1, 0] = i % 256, i // 256  # the frame index, read back by receivers
    return img


def frame_index(img: np.ndarray) -> int:
    return int(img[0, 0, 0]) + 256 * int(img[0, 1, 0])


def device_times_ms(frames: int) -> list[float]:
    """Device clock: 75 ppm fast and 50 ms ahead of the true capture instants i / fps."""
    return [(OFFSET_S + i / FPS * (1 + DRIFT_PPM * 1e-6)) * 1000.0 for i in range(frames)]


def baseline(path: Path, frames: int, depth: bool, size: tuple[int, int] = (W, H)) -> dict:
    """The recording through RealSenseCamera in this process: rate, latency, arrivals."""
    from robot.cameras.realsense import RealSenseCamera, RealSenseConfig

    got: list = []
    cam = RealSenseCamera(
        RealSenseConfig(
            name="bench", playback=str(path), width=size[0], height=size[1], fps=FPS, depth=depth
        ),
        reconnect_after=30.0,
    )
    cam.subscribe(got.append)
    with cam:
        seq = 0
        while (f := cam.wait_frame(seq, timeout=1.0)) is not None:
            seq = f.seq
    idx = np.array([frame_index(f.color) for f in got])
    arrivals = np.array([f.received for f in got])
    stamps = np.array([f.stamp for f in got])
    return {"idx": idx, "arrivals": arrivals, "stamps": stamps, "drift_ppm": cam.sync.drift_ppm}


def node_run(path: Path, frames: int, depth: bool, tmp: Path) -> dict:
    """The recording through a camera node process, received here over ROS 2."""
    import rclpy

    from dojo import conf
    from dojo.ros import convert, topics
    from dojo.ros.env import node_env

    domain = 150 + os.getpid() % 50
    cfg = conf.load(
        [
            "camera=playback",
            f"camera.devices.0.realsense.playback={path}",
            f"camera.devices.0.realsense.depth={str(depth).lower()}",
            "camera.reconnect_after=30",  # no replay after the end of the recording
            f"out={tmp}",
        ]
    )
    cfg_file = tmp / "config.yaml"
    cfg_file.write_text(conf.to_yaml(cfg))
    env = node_env(domain)
    os.environ.update({k: env[k] for k in ("FASTDDS_DEFAULT_PROFILES_FILE", "RMW_IMPLEMENTATION")})
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node("camera_bench_sub", context=ctx)
    recv: list[tuple[float, float, int]] = []

    def on_image(msg):
        img, stamp = convert.image_from_msg(msg)
        recv.append((time.time(), stamp, frame_index(img)))

    topics.camera_image("scene").subscription(node, on_image)
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dojo.nodes.camera",
            "--ros-args",
            "-r",
            "__node:=camera_scene",
            "-p",
            f"config_file:={cfg_file}",
            "-p",
            "camera:=scene",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60 + frames / FPS
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            n = len(recv)
            ex.spin_once(timeout_sec=0.05)
            if len(recv) != n:
                last_new = time.monotonic()
            if recv and time.monotonic() - last_new > 1.5:  # playback over (bounded wait)
                break
            if recv and recv[-1][2] == frames - 1:  # the last frame arrived
                break
            if proc.poll() is not None:
                raise RuntimeError(f"camera node exited: {proc.stderr.read()[-2000:]}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    arr = np.array(recv)
    return {"recv": arr[:, 0], "stamps": arr[:, 1], "idx": arr[:, 2].astype(int)}


def rate(idx: np.ndarray, t: np.ndarray) -> float:
    unique = len(set(idx.tolist()))
    return (unique - 1) / (t.max() - t.min()) if unique > 1 else float("nan")


def delivered(idx: np.ndarray) -> float:
    """Frames received over frames played while subscribed (first to last received)."""
    return len(set(idx.tolist())) / (int(idx.max()) - int(idx.min()) + 1)


def alignment(idx: np.ndarray, arrivals: np.ndarray, warmup: int = 30) -> dict:
    """Error of each stamper against the true capture line, after ``warmup`` frames."""
    from robot.cameras.clock import ClockSync

    dev = np.asarray(device_times_ms(int(idx.max()) + 1))[idx] / 1000.0
    truth = np.min(arrivals - idx / FPS) + idx / FPS
    sync = ClockSync(window=FPS * 10)
    ours = np.array([sync.update(d, a) for d, a in zip(dev, arrivals, strict=True)])
    offset_only = dev - dev[0] + arrivals[0]
    out = {}
    for name, stamps in (("clocksync", ours), ("offset_only", offset_only), ("arrival", arrivals)):
        err_ms = np.abs(stamps - truth)[warmup:] * 1000
        out[name] = percentiles(err_ms, (50, 99, 100))
    out["estimated_drift_ppm"] = sync.drift_ppm
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--depth", action="store_true", help="record and stream depth too")
    ap.add_argument(
        "--align-seconds",
        type=float,
        default=20.0,
        help="length of the (64x48) recording for the drift/offset measurement",
    )
    args = ap.parse_args()
    from robot.cameras.rs_recording import write_recording

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        path = tmp / "scene.db3"
        t0 = time.monotonic()
        write_recording(
            path,
            frames=args.frames,
            width=W,
            height=H,
            fps=FPS,
            color=color,
            depth=args.depth,
            device_times_ms=device_times_ms(args.frames),
            capture_times_s=[i / FPS for i in range(args.frames)],
        )
        print(f"recorded {args.frames} frames at {W}x{H} in {time.monotonic() - t0:.1f} s")
        base = baseline(path, args.frames, args.depth)
        node = node_run(path, args.frames, args.depth, tmp)
        # drift needs time to show (75 ppm is 75 us a second): a longer, small recording
        n_align = int(args.align_seconds * FPS)
        small = tmp / "align.db3"
        write_recording(
            small,
            frames=n_align,
            width=64,
            height=48,
            fps=FPS,
            color=color,
            depth=False,
            device_times_ms=device_times_ms(n_align),
            capture_times_s=[i / FPS for i in range(n_align)],
        )
        align_run = baseline(small, n_align, False, size=(64, 48))
    base_lat = (base["arrivals"] - base["stamps"]) * 1000
    node_lat = (node["recv"] - node["stamps"]) * 1000
    b_rate, n_rate = rate(base["idx"], base["arrivals"]), rate(node["idx"], node["recv"])
    b_p = percentiles(base_lat)
    n_p = percentiles(node_lat)
    align = alignment(align_run["idx"], align_run["arrivals"])
    rows = [
        ["in-process driver (baseline)", delivered(base["idx"]), b_rate, b_p["p50"], b_p["p99"]],
        ["camera node over ROS 2", delivered(node["idx"]), n_rate, n_p["p50"], n_p["p99"]],
    ]
    print_table(
        f"RealSense playback {W}x{H} @ {FPS} Hz, {args.frames} frames"
        f"{' + depth' if args.depth else ''}",
        ["path", "delivered", "rate_hz", "latency_ms_p50", "latency_ms_p99"],
        rows,
    )
    print(
        f"  node/baseline: rate x{n_rate / b_rate:.3f}, p50 latency x{n_p['p50'] / b_p['p50']:.2f}"
        f" (+{n_p['p50'] - b_p['p50']:.2f} ms)"
    )
    print_table(
        f"timestamp alignment error, {DRIFT_PPM:g} ppm drift and {OFFSET_S * 1000:g} ms offset "
        f"injected, {args.align_seconds:g} s "
        f"(estimated drift {align['estimated_drift_ppm']:.1f} ppm)",
        ["stamper", "err_ms_p50", "err_ms_p99", "err_ms_max"],
        [[k, v["p50"], v["p99"], v["p100"]] for k, v in align.items() if isinstance(v, dict)],
    )
    write_json(
        "camera_pipeline",
        {
            "config": {
                "frames": args.frames,
                "width": W,
                "height": H,
                "fps": FPS,
                "align_seconds": args.align_seconds,
                "depth": args.depth,
                "drift_ppm": DRIFT_PPM,
                "offset_s": OFFSET_S,
            },
            "baseline_in_process": {
                "delivered": delivered(base["idx"]),
                "rate_hz": b_rate,
                **{f"latency_ms_{k}": v for k, v in b_p.items()},
            },
            "camera_node": {
                "delivered": delivered(node["idx"]),
                "rate_hz": n_rate,
                **{f"latency_ms_{k}": v for k, v in n_p.items()},
            },
            "ratios_node_over_baseline": {
                "rate": n_rate / b_rate,
                "latency_p50": n_p["p50"] / b_p["p50"],
            },
            "alignment": align,
        },
    )


if __name__ == "__main__":
    main()
