"""Control-tick period error at 50 Hz in real-time mode, alone and beside a CPU-heavy neighbour.

Runs the driver's own loop (``robot.runtime.DriverLoop``: twin physics, both cameras rendering
at their rate, safety, executor) with a publisher that does nothing, so what is measured is the
loop and not the transport. The neighbour is one busy process per core, started and stopped in
this run. Period error = measured tick interval - 20 ms.

    .venv/bin/python bench/control_loop.py [--seconds 10] [--robot sim_so101]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import threading
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MUJOCO_GL", "egl")

from bench.common import percentiles, print_table, write_json


def _burn(stop) -> None:
    x = 0
    while not stop.is_set():
        for i in range(10000):
            x += i * i


def measure(overrides: list[str], seconds: float) -> dict:
    from dojo import conf
    from robot.control import ControlLoop
    from robot.executor import ChunkExecutor
    from robot.mjcf import ForwardKinematics
    from robot.runtime import DriverLoop, LoopConfig, NullObserver
    from robot.safety import SafetyLimits
    from robot.sim.config import TwinConfig
    from robot.sim.twin import Twin

    cfg = conf.load(overrides)
    spec = conf.robot_spec(cfg)
    twin = Twin(
        spec,
        TwinConfig(physics_dt=cfg.sim.physics_dt),
        conf.task_config(cfg),
    )
    twin.reset(seed=0)
    twin.arm.connect()
    twin.arm.enable()
    fk = ForwardKinematics.for_robot(spec, cfg.robot.model)
    control = ControlLoop(
        twin.arm, SafetyLimits(spec, fk), ChunkExecutor(spec, conf.executor_config(cfg))
    )
    control.start()
    loop = DriverLoop(control, spec, NullObserver(), LoopConfig(clock="realtime"), twin=twin)
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        loop.run(stop)
    finally:
        timer.cancel()
        twin.close()
    err_ms = loop.period_errors() * 1000.0
    abs_err = np.abs(err_ms)
    return {
        "ticks": int(loop.tick_count),
        "expected_ticks": int(seconds * spec.control_hz),
        **{f"abs_error_ms_{k}": v for k, v in percentiles(abs_err).items()},
        "late_ticks_over_half_period": int(np.sum(err_ms > 0.5 * spec.control_period * 1000)),
        "frames_dropped": int(loop.frames_dropped),
        "control_hz": spec.control_hz,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--robot", default="sim_so101")
    args = ap.parse_args()
    overrides = [f"robot={args.robot}", "sim.clock=realtime"]

    results = {"alone": measure(overrides, args.seconds)}
    stop = mp.Event()
    burners = [
        mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 1)
    ]
    for p in burners:
        p.start()
    try:
        results["cpu_neighbour"] = measure(overrides, args.seconds)
    finally:
        stop.set()
        for p in burners:
            p.join(timeout=5)
    alone, busy = results["alone"], results["cpu_neighbour"]
    ratios = {
        "p50_ratio": busy["abs_error_ms_p50"] / max(alone["abs_error_ms_p50"], 1e-6),
        "p99_ratio": busy["abs_error_ms_p99"] / max(alone["abs_error_ms_p99"], 1e-6),
    }
    print_table(
        f"{args.robot}: |tick period error| in real time, {args.seconds:g} s each, "
        "both cameras rendering",
        ["condition", "ticks", "expected", "p50 ms", "p99 ms", "late > T/2"],
        [
            [
                name,
                r["ticks"],
                r["expected_ticks"],
                r["abs_error_ms_p50"],
                r["abs_error_ms_p99"],
                r["late_ticks_over_half_period"],
            ]
            for name, r in results.items()
        ],
    )
    print(f"  neighbour / alone: p50 x{ratios['p50_ratio']:.2f}, p99 x{ratios['p99_ratio']:.2f}")
    write_json("control_loop", {"params": vars(args), "results": results, "ratios": ratios})


if __name__ == "__main__":
    main()
