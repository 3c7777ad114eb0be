"""640x480 RGB images at 30 Hz between two processes: received fraction and latency.

Compares the project's Fast DDS profile (32 MB shared-memory segment, dojo/fastdds_profile.xml)
with Fast DDS defaults, in the same run, on the same best-effort sensor QoS the camera topics use.
Latency is receive time minus the header stamp, both from the system clock of this machine.

    .venv/bin/python bench/transport.py [--frames 300] [--hz 30]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentiles, print_table, write_json
from dojo.ros.env import node_env


def publisher(frames: int, hz: float, width: int, height: int, wait_s: float) -> None:
    import numpy as np
    import rclpy

    from dojo.ros import convert, topics

    rclpy.init()
    node = rclpy.create_node("transport_bench_pub")
    pub = topics.camera_image("bench").publisher(node)
    deadline = time.monotonic() + wait_s
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    if pub.get_subscription_count() == 0:
        sys.exit("publisher: no subscriber matched within the wait bound")
    time.sleep(0.5)  # discovery of the reverse direction; bounded, not a wait for a condition
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    period = 1.0 / hz
    next_t = time.monotonic()
    for i in range(frames):
        image[0, 0, 0] = i % 256
        msg = convert.image_to_msg(image, time.time(), "bench")
        msg.header.frame_id = str(i)
        pub.publish(msg)
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


def subscriber(out: str, frames: int, hz: float, wait_s: float) -> None:
    import rclpy

    from dojo.ros import convert, topics

    rclpy.init()
    node = rclpy.create_node("transport_bench_sub")
    latencies: list[float] = []
    seen: set[int] = set()

    def on_image(msg):
        latencies.append(time.time() - convert.from_time(msg.header.stamp))
        seen.add(int(msg.header.frame_id))

    topics.camera_image("bench").subscription(node, on_image)
    deadline = time.monotonic() + wait_s + frames / hz + 3.0
    while time.monotonic() < deadline and len(seen) < frames:
        rclpy.spin_once(node, timeout_sec=0.05)
        if seen and max(seen) >= frames - 1:
            # the last frame has arrived; give stragglers a short bounded chance
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            break
    Path(out).write_text(json.dumps({"received": len(seen), "latencies": latencies}))
    node.destroy_node()
    rclpy.shutdown()


def run_pair(profile: bool, domain: int, frames: int, hz: float, w: int, h: int) -> dict:
    env = node_env(domain, dds_profile=profile)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "sub.json")
        me = [sys.executable, __file__]
        sub = subprocess.Popen(
            [*me, "--role", "sub", "--out", out, *common_args(frames, hz)], env=env
        )
        pub = subprocess.Popen(
            [*me, "--role", "pub", "--width", str(w), "--height", str(h), *common_args(frames, hz)],
            env=env,
        )
        try:
            pub.wait(timeout=frames / hz + 60)
            sub.wait(timeout=30)
        finally:
            for p in (pub, sub):
                if p.poll() is None:
                    p.kill()
        if not os.path.exists(out):
            raise RuntimeError(f"subscriber wrote no result (profile={profile})")
        data = json.loads(Path(out).read_text())
    lat_ms = [x * 1000 for x in data["latencies"]]
    return {
        "received_fraction": data["received"] / frames,
        **{f"latency_ms_{k}": v for k, v in percentiles(lat_ms).items()},
    }


def common_args(frames: int, hz: float) -> list[str]:
    return ["--frames", str(frames), "--hz", str(hz)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--role", choices=["main", "pub", "sub"], default="main")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--hz", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--out", default="")
    ap.add_argument("--wait", type=float, default=20.0)
    args = ap.parse_args()
    if args.role == "pub":
        return publisher(args.frames, args.hz, args.width, args.height, args.wait)
    if args.role == "sub":
        return subscriber(args.out, args.frames, args.hz, args.wait)

    domain = 150 + os.getpid() % 50
    results = {}
    for name, profile in (("fastdds_default", False), ("vla_dojo_profile", True)):
        results[name] = run_pair(profile, domain, args.frames, args.hz, args.width, args.height)
    base, ours = results["fastdds_default"], results["vla_dojo_profile"]
    # A ratio against a baseline that received nothing is undefined, not "infinite": say so.
    got_base = base["received_fraction"] > 0
    ratio = {
        "received_fraction_ratio": (
            ours["received_fraction"] / base["received_fraction"] if got_base else None
        ),
        "latency_p50_ratio": ours["latency_ms_p50"] / base["latency_ms_p50"] if got_base else None,
    }
    rows = [
        [n, r["received_fraction"], r["latency_ms_p50"], r["latency_ms_p99"]]
        for n, r in results.items()
    ]
    print_table(
        f"{args.width}x{args.height} RGB at {args.hz:g} Hz, {args.frames} frames, best effort",
        ["transport", "received", "latency p50 ms", "latency p99 ms"],
        rows,
    )
    if not got_base:
        print("  profile / default: the default received no frame; ratios undefined")
    else:
        print(
            f"  profile / default: received x{ratio['received_fraction_ratio']:.2f}, "
            f"latency p50 x{ratio['latency_p50_ratio']:.2f}"
        )
    write_json("transport", {"params": vars(args), "results": results, "ratios": ratio})


if __name__ == "__main__":
    main()
