"""The compact VLA's chunk head: direct regression against flow matching, by measurement.

Both heads train on the same demos for the same wall-clock budget, one after the other; then,
on held-out demos (episodes not trained on), each predicts the chunk from every step's
observation and the error against what the demonstrator did next is measured in joint units
(radians; the gripper jaw angle too). Inference latency is timed on the same observations. A
head that is both more accurate and cheaper is the default (``VLAConfig.head``).

    .venv/bin/python bench/policy_head.py [--demos 25] [--held-out 10] [--budget 180]

Uses the demos of ``bench/policy_learning.py`` (``--data``). Results: a table and
``bench/results/policy_head.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MUJOCO_GL", "egl")

from bench.common import percentiles, print_table, write_json
from bench.policy_learning import default_demos_store

ROOT = Path(__file__).resolve().parent.parent


def held_out_error(policy, store_url: str, episode_ids: list[str], cameras: list[str]) -> dict:
    """Mean absolute error (rad) of each predicted step against the demo's next actions."""
    import numpy as np

    from episodes.store import EpisodeStore
    from robot.schema import Observation

    store = EpisodeStore.open(store_url)
    errors, first_step, latencies = [], [], []
    H = policy.horizon
    for eid in episode_ids:
        ep = store.read(eid, verify=False)
        frames = {c: np.asarray(ep.images[c][:]) for c in cameras}
        for t in range(0, ep.n_steps - H - 1, 3):
            obs = Observation(
                float(ep.t[t]), ep.joint_pos[t], ep.joint_vel[t], {c: frames[c][t] for c in cameras}
            )
            t0 = time.perf_counter()
            chunk = policy.predict(obs, ep.instruction)
            latencies.append(time.perf_counter() - t0)
            target = ep.action[t + 1 : t + 1 + H]
            err = np.abs(chunk.positions - target)
            errors.append(err.mean())
            first_step.append(err[0].mean())
    return {
        "mae_rad": float(np.mean(errors)),
        "first_step_mae_rad": float(np.mean(first_step)),
        "samples": len(errors),
        "latency_ms": {k: v * 1e3 for k, v in percentiles(latencies).items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demos", type=int, default=25)
    ap.add_argument("--held-out", type=int, default=10)
    ap.add_argument("--budget", type=float, default=180.0)
    ap.add_argument("--data", default="", help="demos (default: policy_learning.py's store)")
    ap.add_argument("--out", default=str(ROOT / "runs/bench/policy_head"))
    args = ap.parse_args()

    import shutil

    import torch

    from dojo import conf
    from episodes.store import EpisodeStore
    from policy.compact import CompactVLAPolicy
    from policy.config import PolicyTrainConfig, VLAConfig
    from policy.models.encoders import TextEncoder
    from policy.train import Trainer, default_threads

    torch.set_num_threads(default_threads())
    cfg = conf.load([])
    args.data = args.data or default_demos_store(cfg)
    spec = conf.robot_spec(cfg)
    cameras = [c.name for c in spec.cameras]
    ids = EpisodeStore.open(args.data).episode_ids()
    if len(ids) < args.demos + args.held_out:
        raise SystemExit(f"{args.data}: {len(ids)} episodes, need {args.demos + args.held_out}")
    held = ids[-args.held_out :]
    text = TextEncoder()
    rows, results = [], {}
    for head in ("regression", "flow"):
        out = Path(args.out) / head
        shutil.rmtree(out, ignore_errors=True)
        trainer = Trainer(
            PolicyTrainConfig(
                stores=[args.data],
                out=str(out),
                steps=1_000_000,
                seconds=args.budget,
                max_episodes=args.demos,
                checkpoint_every=0,
                model=VLAConfig(head=head),
            ),
            joint_names=list(spec.joint_names),
            cameras=cameras,
            text=text,
        )
        summary = trainer.run()
        policy = CompactVLAPolicy.load(out / "checkpoint", text)
        torch.manual_seed(0)
        ev = held_out_error(policy, args.data, held, cameras)
        results[head] = {"train": summary, "held_out": ev}
        rows.append(
            [
                head,
                summary["steps"],
                round(ev["mae_rad"], 4),
                round(ev["first_step_mae_rad"], 4),
                round(ev["latency_ms"]["p50"], 2),
                round(ev["latency_ms"]["p99"], 2),
            ]
        )
    reg, flow = results["regression"]["held_out"], results["flow"]["held_out"]
    ratios = {
        "mae_flow_over_regression": flow["mae_rad"] / reg["mae_rad"],
        "latency_p50_flow_over_regression": flow["latency_ms"]["p50"] / reg["latency_ms"]["p50"],
    }
    print_table(
        f"chunk head: {args.demos} demos, {args.budget:.0f} s of training each, "
        f"{args.held_out} held-out demos",
        ["head", "train steps", "held-out MAE rad", "first-step MAE", "infer p50 ms", "p99 ms"],
        rows,
    )
    print(
        f"\nflow/regression: MAE x{ratios['mae_flow_over_regression']:.2f}, "
        f"latency p50 x{ratios['latency_p50_flow_over_regression']:.2f}"
    )
    write_json(
        "policy_head", {"budget_s": args.budget, "demos": args.demos, **results, "ratios": ratios}
    )


if __name__ == "__main__":
    main()
