"""Chunk-boundary jumps with and without the real-time-chunking prefix.

With ``executor.blend=rtc`` the executor keeps running the old plan for ``rtc_prefix`` seconds
after a new chunk arrives, then crossfades into it over ``rtc_blend``. A policy given the
committed prefix (``predict(obs, instruction, committed)``, what the policy node now passes
from ``driver/plan``) can make its chunk continue that plan; one not given it predicts from the
observation alone and the crossfade has to absorb the disagreement. This measures the
difference on the twin, in sim time, through the real control path (``policy.rollout``, whose
prefix rule, :func:`robot.executor.committed_prefix`, is the node's):

- a compact VLA trained for ``--train-steps`` on ``--demos`` scripted episodes (or ``--vla``),
- the same seeds twice per executor config: with the prefix, and with the same policy called
  with two arguments (the baseline, what the node did before),
- async inference with a fixed latency (``--latency``), so both arms see the same timing.

Jump at a boundary: the largest per-tick step (max over joints, rad) of the executor's target
from the chunk's arrival to the end of its crossfade or, if later, the chunk's first step after
the committed prefix (where the policy's own steps join the plan it continued), minus the
median per-tick step away from boundaries (the typical in-chunk step), averaged over
boundaries. The target is the blend
itself, replayed exactly from the chunks and their arrival ticks through a ChunkExecutor of the
same config. The command actually sent (after SafetyLimits, whose velocity and acceleration
limits cap a step at 40 mrad per tick on the SO-101) is reported as its largest step near a
boundary and its typical step, not as their difference: where the limits bind all the time, the
difference says nothing.
Three configs: the default crossfade (``rtc_blend`` 0.2 s) with the default
``policy.replan_horizon`` (0.4 s) and with 0.6 s, and a hard switch (``rtc_blend`` 0), where
the jump is the raw disagreement at the takeover. Why two horizons: a chunk requested 0.4 s
before the plan ends arrives ``latency`` later and takes over ``rtc_prefix`` after that, so
with 0.15 s of latency its 0.2 s crossfade would end 0.05 s after the old plan has; the
executor then switches to the new chunk outright (it never extrapolates the old one), and that
step is in both arms. With 0.6 s the crossfade fits.

    .venv/bin/python bench/rtc_prefix.py [--demos 6] [--train-steps 3000] [--seeds 8]
        [--latency 0.15] [--duration 8] [--replan-horizon 0.4] [--vla CHECKPOINT_DIR]

Results: a table, ``bench/results/rtc_prefix.json`` and ``bench/results/rtc_prefix.png``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from bench.common import RESULTS, print_table, write_json

MODEL = {  # small enough to train in a minute on one CPU core, with a 5-step prefix
    "image_size": (48, 64),
    "dim": 64,
    "depth": 2,
    "heads": 4,
    "vision_widths": (16, 32),
    "horizon": 10,
    "max_prefix": 5,
    "dropout": 0.0,
}


class Recorded:
    """Wraps a policy: records every chunk it returns; ``prefix=False`` drops ``committed``
    (the two-argument call)."""

    def __init__(self, policy, prefix: bool) -> None:
        self.policy = policy
        self.prefix = prefix
        self.chunk_dt = policy.chunk_dt
        self.input_size = getattr(policy, "input_size", None)  # the rollout renders at it
        self.chunks: list = []
        self.prefix_steps: list[int] = []

    def reset(self) -> None:
        self.policy.reset()
        self.chunks.clear()
        self.prefix_steps.clear()

    def predict(self, obs, instruction, committed=None):
        if self.prefix:
            chunk = self.policy.predict(obs, instruction, committed)
            self.prefix_steps.append(0 if committed is None else len(committed))
        else:
            chunk = self.policy.predict(obs, instruction)
            self.prefix_steps.append(0)
        self.chunks.append(chunk)
        return chunk


def train_vla(cfg, spec, out: Path, demos: int, steps: int) -> Path:
    from dojo import conf
    from dojo.collect import collect, make_twin
    from policy.config import PolicyTrainConfig, VLAConfig
    from policy.train import Trainer

    store = out / "demos.zarr"
    twin = make_twin(spec, conf.task_config(cfg))
    try:
        t0 = time.monotonic()
        summary = collect(str(store), twin, conf.scripted_config(cfg), episodes=demos, seed=0)
        print(
            f"collected {demos} demos ({summary.succeeded} succeeded) in "
            f"{time.monotonic() - t0:.0f} s",
            file=sys.stderr,
        )
    finally:
        twin.close()
    tcfg = PolicyTrainConfig(
        stores=[str(store)],
        out=str(out / "train"),
        steps=steps,  # a step budget, not seconds: the same model on every machine
        batch_size=16,
        lr=1e-3,
        warmup=20,
        checkpoint_every=0,
        log_every=10**9,
        progress=False,
        model=VLAConfig(**MODEL),
    )
    trainer = Trainer(
        tcfg, joint_names=list(spec.joint_names), cameras=[c.name for c in spec.cameras]
    )
    t0 = time.monotonic()
    summary = trainer.run()
    print(
        f"trained {trainer.step} steps in {time.monotonic() - t0:.0f} s: {summary}", file=sys.stderr
    )
    return out / "train" / "checkpoint"


def boundary_steps(t, cmd, spans, period):
    """Per boundary span ``(start, end)``: the max per-tick step in it; and the median step
    outside every span once the first chunk runs. ``t`` (N,), ``cmd`` (N, D)."""
    step = np.r_[0.0, np.abs(np.diff(cmd, axis=0)).max(axis=1)]
    near = np.zeros(len(t), bool)
    windows = []
    for start, end in spans[1:]:  # the first chunk is no boundary
        w = (t >= start - 1e-9) & (t <= end + 1e-9)
        windows.append(w)
        near |= w
    running = t >= spans[0][0] + period if spans else np.zeros(len(t), bool)
    typical = float(np.median(step[running & ~near])) if (running & ~near).any() else 0.0
    return [float(step[w].max()) for w in windows if w.any()], typical


def takeover_span(stamp, arrival, ecfg, k, chunk_dt, period):
    """From a chunk's arrival to the later of the end of its crossfade and its first step past
    a ``k``-step prefix (where a policy's own steps join the continued plan), plus one tick."""
    end = max(arrival + ecfg.rtc_prefix + ecfg.rtc_blend, stamp + (k + 1) * chunk_dt)
    return arrival, end + period


def replay_targets(spec, ecfg, chunks, arrivals, ticks):
    """The executor's target at each tick, from the chunks and their arrival ticks: the same
    pure function of its inputs that ran inside the rollout."""
    from robot.executor import ChunkExecutor

    ex = ChunkExecutor(spec, ecfg)
    out = np.full((len(ticks), spec.dof), np.nan)
    k = 0
    for i, now in enumerate(ticks):
        while k < len(chunks) and arrivals[k] <= now + 1e-9:
            ex.submit(chunks[k], now)
            k += 1
        ex.observe(now)
        target = ex.next_action(now).target
        if target is not None:
            out[i] = target
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demos", type=int, default=6)
    ap.add_argument("--train-steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--seed", type=int, default=100_000)
    ap.add_argument("--latency", type=float, default=0.15)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--replan-horizon", type=float, default=0.0, help="0: policy.replan_horizon")
    ap.add_argument("--vla", default="")
    args = ap.parse_args()

    import torch

    from dojo import conf
    from dojo.collect import make_twin
    from policy.compact import CompactVLAPolicy
    from policy.rollout import RolloutConfig, TwinRollout
    from robot.executor import ExecutorConfig

    torch.set_num_threads(1)
    cfg = conf.load([])
    spec = conf.robot_spec(cfg)
    period = spec.control_period
    tmp = Path(tempfile.mkdtemp(prefix="rtc_prefix-"))
    vla_path = (
        Path(args.vla) if args.vla else train_vla(cfg, spec, tmp, args.demos, args.train_steps)
    )
    vla = CompactVLAPolicy.load(vla_path)
    replan = args.replan_horizon or float(cfg.policy.replan_horizon)
    crossfade = ExecutorConfig(blend="rtc", rtc_prefix=0.1, rtc_blend=0.2)
    configs = {
        f"crossfade 0.2 s, replan {replan:g}": (crossfade, replan),
        "crossfade 0.2 s, replan 0.6": (crossfade, 0.6),
        f"hard switch, replan {replan:g}": (
            ExecutorConfig(blend="rtc", rtc_prefix=0.1, rtc_blend=0.0),
            replan,
        ),
    }
    lag = math.ceil(args.latency / period - 1e-9) * period  # when the rollout submits
    results: dict = {}
    traces: dict = {}
    twin = make_twin(spec, conf.task_config(cfg))
    try:
        for cname, (ecfg, horizon) in configs.items():
            rollout = TwinRollout(
                twin,
                RolloutConfig(
                    executor=ecfg,
                    replan_horizon=horizon,
                    inference="async",
                    fixed_latency=args.latency,
                    max_duration=args.duration,
                ),
            )
            # the prefix the rollout passes: ceil((latency + rtc_prefix) / chunk_dt) steps
            k = math.ceil((args.latency + ecfg.rtc_prefix) / vla.chunk_dt - 1e-9)
            for arm in ("prefix", "no prefix"):
                agent = Recorded(vla, prefix=arm == "prefix")
                acc = {"target": [], "sent": [], "typical_target": [], "typical_sent": []}
                steps, joins, own = [], [], []
                for s in range(args.seeds):
                    ticks, sent = [], []

                    def on_tick(ticks=ticks, sent=sent):
                        ticks.append(twin.time - period)
                        sent.append(np.array(twin.arm.commanded, dtype=np.float64))

                    rollout.run(agent, seed=args.seed + s, observe_cameras=None, on_tick=on_tick)
                    t, sent_arr = np.asarray(ticks), np.asarray(sent)
                    arrivals = [c.stamp + lag for c in agent.chunks]
                    target = replay_targets(spec, ecfg, agent.chunks, arrivals, t)
                    ok = ~np.isnan(target).any(axis=1)
                    spans = [
                        takeover_span(c.stamp, a, ecfg, k, vla.chunk_dt, period)
                        for c, a in zip(agent.chunks, arrivals, strict=True)
                    ]
                    j, typ = boundary_steps(t[ok], target[ok], spans, period)
                    acc["target"] += [x - typ for x in j]
                    acc["typical_target"].append(typ)
                    j, typ = boundary_steps(t, sent_arr, spans, period)
                    acc["sent"] += j
                    acc["typical_sent"].append(typ)
                    steps += agent.prefix_steps
                    for c, n in zip(agent.chunks, agent.prefix_steps, strict=True):
                        d = np.abs(np.diff(c.positions, axis=0)).max(axis=1)
                        if n:  # the step from the last committed row to the policy's first own
                            joins.append(float(d[n - 1]))
                            own += d[n:].tolist()
                    if s == 0:
                        traces[(cname, arm)] = (t, target, sent_arr, arrivals)
                results.setdefault(cname, {})[arm] = {
                    "boundaries": len(acc["target"]),
                    "jump_target_mean_rad": float(np.mean(acc["target"])),
                    "jump_target_p90_rad": float(np.percentile(acc["target"], 90)),
                    "max_step_sent_mean_rad": float(np.mean(acc["sent"])),
                    "max_step_sent_p90_rad": float(np.percentile(acc["sent"], 90)),
                    "typical_step_target_rad": float(np.mean(acc["typical_target"])),
                    "typical_step_sent_rad": float(np.mean(acc["typical_sent"])),
                    "prefix_steps_mean": float(np.mean(steps)) if steps else 0.0,
                }
                if joins:  # how well the policy continues the prefix it was given
                    results[cname][arm]["prefix_join_step_mean_rad"] = float(np.mean(joins))
                    results[cname][arm]["own_row_step_median_rad"] = float(np.median(own))
            r = results[cname]
            for key in ("jump_target_mean_rad", "max_step_sent_mean_rad"):
                r[f"ratio_{key}"] = r["prefix"][key] / max(r["no prefix"][key], 1e-12)
    finally:
        twin.close()

    rows = []
    for cname, r in results.items():
        for arm in ("prefix", "no prefix"):
            m = r[arm]
            rows.append(
                [
                    cname,
                    arm,
                    m["boundaries"],
                    round(m["prefix_steps_mean"], 2),
                    round(m["jump_target_mean_rad"] * 1e3, 2),
                    round(m["jump_target_p90_rad"] * 1e3, 2),
                    round(m["max_step_sent_mean_rad"] * 1e3, 2),
                    round(m["typical_step_sent_rad"] * 1e3, 2),
                ]
            )
        rows.append(
            [
                cname,
                "ratio prefix/none",
                "",
                "",
                round(r["ratio_jump_target_mean_rad"], 3),
                "",
                round(r["ratio_max_step_sent_mean_rad"], 3),
                "",
            ]
        )
    print_table(
        "chunk boundaries, mrad: target = executor target's max step near a takeover minus its "
        "typical step; sent = the sent command's max step near a takeover, and its typical step; "
        f"{args.seeds} seeds x {args.duration:g} s, latency {args.latency:g} s, {vla_path}",
        [
            "executor",
            "policy call",
            "boundaries",
            "prefix steps",
            "target mean",
            "target p90",
            "sent max step",
            "typical sent step",
        ],
        rows,
    )
    for cname, r in results.items():
        m = r["prefix"]
        print(
            f"  {cname}: chunk rows, last committed -> first own step "
            f"{m['prefix_join_step_mean_rad'] * 1e3:.1f} mrad (mean) vs "
            f"{m['own_row_step_median_rad'] * 1e3:.1f} between own rows (median)"
        )
    write_json(
        "rtc_prefix",
        {
            "checkpoint": str(vla_path),
            "demos": args.demos if not args.vla else None,
            "train_steps": args.train_steps if not args.vla else None,
            "seeds": args.seeds,
            "latency_s": args.latency,
            "duration_s": args.duration,
            "results": results,
        },
    )
    plot(traces, spec, RESULTS / "rtc_prefix.png", results)


def plot(traces, spec, path: Path, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    j = spec.joint_names.index("shoulder_lift") if "shoulder_lift" in spec.joint_names else 0
    fig, axes = plt.subplots(len(results) + 1, 1, figsize=(10, 3.2 * (len(results) + 1)))
    for ax, cname in zip(axes, results, strict=False):
        for arm, colour in (("no prefix", "tab:red"), ("prefix", "tab:blue")):
            t, target, _, arrivals = traces[(cname, arm)]
            t0 = t[0]  # the twin's clock runs on across episodes
            ax.plot(t - t0, target[:, j], colour, lw=1, label=f"executor target, {arm}")
            for a in arrivals[1:]:
                ax.axvline(a - t0, color=colour, lw=0.4, alpha=0.4)
        ax.set_title(f"{cname}: {spec.joint_names[j]} (seed 0; lines: chunk arrivals)")
        ax.set_xlabel("s since the episode began")
        ax.set_ylabel("rad")
        ax.legend(loc="best", fontsize=8)
    ax = axes[-1]
    names = list(results)
    x = np.arange(len(names))
    for off, arm, colour in ((-0.2, "no prefix", "tab:red"), (0.2, "prefix", "tab:blue")):
        ax.bar(
            x + off,
            [results[n][arm]["jump_target_mean_rad"] * 1e3 for n in names],
            0.35,
            color=colour,
            label=f"{arm}: executor target",
        )
        ax.bar(
            x + off,
            [results[n][arm]["max_step_sent_mean_rad"] * 1e3 for n in names],
            0.15,
            color="k",
            alpha=0.6,
            label="sent command: max step near a takeover" if arm == "prefix" else None,
        )
    ax.set_xticks(x, names)
    ax.set_ylabel("mrad, mean over boundaries")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
