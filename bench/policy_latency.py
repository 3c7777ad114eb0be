"""Inference latency of the compact VLA against LeRobot's ACT, and what asynchronous inference
saves the control loop.

1. Latency: both policies predict a chunk from the same observations (frames rendered in the
   twin, both cameras, the same instruction), interleaved call by call so a noisy neighbour
   hits both alike; p50/p99 per policy and their ratio.
2. Held ticks: the compact VLA drives the same episodes (same seeds) twice through the real
   control path in sim time (policy.rollout): ``sync``, where the control loop waits for each
   inference and the arm holds meanwhile, and ``async``, where inference runs beside the loop
   and the chunk arrives its measured latency later. Held ticks are control ticks with no
   action to execute.

    .venv/bin/python bench/policy_latency.py [--calls 200] [--episodes 5]
        [--vla runs/bench/policy_learning/compact_regression_100/checkpoint]
        [--act runs/bench/policy_learning/act_100]

Without trained checkpoints it builds untrained ones of the same architecture (latency does not
depend on the weights; held ticks then come from episodes of an untrained policy, which is
fine: holds depend on latency and chunk timing, not on success). Results: a table and
``bench/results/policy_latency.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MUJOCO_GL", "egl")

from bench.common import percentiles, print_table, write_json

ROOT = Path(__file__).resolve().parent.parent
LEARNING = ROOT / "runs/bench/policy_learning"


def untrained_vla(spec, path: Path) -> Path:
    from policy.compact import save_checkpoint
    from policy.models.vla import CompactVLA, VLAConfig

    model = CompactVLA(
        VLAConfig(joint_names=list(spec.joint_names), cameras=[c.name for c in spec.cameras])
    )
    model.set_stats(spec.home * 0, spec.home * 0 + 1, spec.home, spec.home * 0 + 0.01)
    return save_checkpoint(model, path)


def untrained_act(cfg, spec, path: Path) -> Path:
    from dojo import conf
    from dojo.collect import collect, make_twin
    from policy.lerobot_adapters import train_act

    store = path.parent / "one_demo.zarr"
    twin = make_twin(spec, conf.task_config(cfg))
    try:
        collect(str(store), twin, conf.scripted_config(cfg), episodes=1, seed=0, progress=False)
    finally:
        twin.close()
    return train_act(
        str(store), path, steps=1, cameras=[c.name for c in spec.cameras], progress=False
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--episodes", type=int, default=5)
    ap.add_argument("--seed", type=int, default=100_000)
    ap.add_argument("--vla", default=str(LEARNING / "compact_regression_100" / "checkpoint"))
    ap.add_argument("--act", default=str(LEARNING / "act_100"))
    args = ap.parse_args()

    import numpy as np
    import torch

    from dojo import conf
    from dojo.collect import make_twin
    from policy.compact import CompactVLAPolicy
    from policy.lerobot_adapters import LeRobotPolicy
    from policy.rollout import RolloutConfig, TwinRollout
    from policy.train import default_threads

    torch.set_num_threads(default_threads())  # as the policy node runs it
    cfg = conf.load([])
    spec = conf.robot_spec(cfg)
    cameras = [c.name for c in spec.cameras]
    tmp = Path(tempfile.mkdtemp(prefix="policy_latency-"))
    vla_path = Path(args.vla) if Path(args.vla).exists() else untrained_vla(spec, tmp / "vla")
    act_path = Path(args.act) if Path(args.act).exists() else untrained_act(cfg, spec, tmp / "act")
    vla = CompactVLAPolicy.load(vla_path)
    act = LeRobotPolicy.load(str(act_path), joint_names=spec.joint_names, cameras=cameras)
    twin = make_twin(spec, conf.task_config(cfg))
    try:
        runner = TwinRollout(twin, RolloutConfig())
        twin.arm.connect()
        observations = []
        for k in range(10):
            twin.reset(seed=args.seed + k)
            observations.append((runner.observe(), twin.instruction))
        for obs, ins in observations[:3]:  # warm-up: first calls allocate
            vla.predict(obs, ins)
            act.predict(obs, ins)
        lat = {"compact": [], "act": []}
        for i in range(args.calls):
            obs, ins = observations[i % len(observations)]
            for name, policy in (
                (("compact", vla), ("act", act)) if i % 2 else (("act", act), ("compact", vla))
            ):
                t0 = time.perf_counter()
                policy.predict(obs, ins)
                lat[name].append(time.perf_counter() - t0)
        lat_stats = {k: {q: v * 1e3 for q, v in percentiles(x).items()} for k, x in lat.items()}
        held = {}
        for mode in ("sync", "async"):
            r = TwinRollout(
                twin, RolloutConfig(inference=mode, replan_horizon=float(cfg.policy.replan_horizon))
            )
            eps = [r.run(vla, seed=args.seed + k) for k in range(args.episodes)]
            held[mode] = {
                "held_ticks": int(sum(e.held_ticks for e in eps)),
                "ticks": int(sum(e.ticks for e in eps)),
                "chunks": int(sum(e.chunks for e in eps)),
                "latency_p50_ms": float(
                    np.median(np.concatenate([e.latencies for e in eps])) * 1e3
                ),
            }
    finally:
        twin.close()

    ratio = {q: lat_stats["compact"][q] / lat_stats["act"][q] for q in ("p50", "p99")}
    print_table(
        f"inference latency, same {len(observations)} observations, {args.calls} calls each "
        f"(torch threads {__import__('torch').get_num_threads()})",
        ["policy", "p50 ms", "p99 ms"],
        [
            [
                "compact VLA",
                round(lat_stats["compact"]["p50"], 2),
                round(lat_stats["compact"]["p99"], 2),
            ],
            ["LeRobot ACT", round(lat_stats["act"]["p50"], 2), round(lat_stats["act"]["p99"], 2)],
            ["ratio compact/ACT", round(ratio["p50"], 3), round(ratio["p99"], 3)],
        ],
    )
    print_table(
        f"control ticks held for lack of an action, compact VLA, {args.episodes} episodes "
        "(same seeds)",
        ["inference", "held ticks", "of ticks", "chunks", "latency p50 ms"],
        [
            [m, h["held_ticks"], h["ticks"], h["chunks"], round(h["latency_p50_ms"], 1)]
            for m, h in held.items()
        ],
    )
    write_json(
        "policy_latency",
        {
            "checkpoints": {"compact": str(vla_path), "act": str(act_path)},
            "latency_ms": lat_stats,
            "ratio_compact_over_act": ratio,
            "held": held,
        },
    )


if __name__ == "__main__":
    main()
