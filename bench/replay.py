"""Sim-to-real replay targets (issue 12), measured in one run on the SO-101 twin.

Stand-in real data: episodes recorded by the scripted operator in a twin with other servo gains
and damping and a 30 ms or 60 ms command delay (``replay.synthetic``), some with an injected
table collision, joint-limit violation or over-speed move; replayed in the nominal twin.

    MUJOCO_GL=egl .venv/bin/python bench/replay.py

Prints a table, writes bench/results/replay.json and bench/results/replay.png. For each
injected episode it also says whether the "real" arm's recording shows the injected event at
all, so that an injection that never happened (the table one once caught the bin's wall
on its way down) cannot pass for a detector's miss. Throughput is
the ratio of replayed sim seconds to wall seconds (episodes without images), real time being
1x by definition, measured in the same run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from episodes.store import EpisodeStore  # noqa: E402
from replay import dynamics  # noqa: E402
from replay.actions import ActionReplayer  # noqa: E402
from replay.config import FitConfig, ReplayConfig, SceneMode  # noqa: E402
from replay.report import Analysis  # noqa: E402
from replay.synthetic import SO101_INJECTIONS, perturbed, record  # noqa: E402
from robot.sim.config import TaskConfig, TwinConfig  # noqa: E402
from robot.sim.twin import Twin  # noqa: E402
from tests.sim_helpers import robot_spec  # noqa: E402

KP, DAMPING = 17.8, 0.6
DELAYS = (0.03, 0.06)
DURATION = 6.0


def in_recording(kind: str, report: dict, spec) -> bool:
    """Whether the recorded states themselves show the injected event, at any size: the hand
    on the table (event or touch), a joint past the preset's limit, a joint over its limit."""
    if kind == "table":
        return any(
            e["source"] == "recorded" and e.get("what") == "table"
            for e in report["events"] + report["touches"]
        )
    if kind == "limit":
        return any(
            min(m["recorded_lower_margin"], m["recorded_upper_margin"]) < 0
            for m in report["limits"].values()
        )
    return any(v["recorded_peak"] > v["limit"] for v in report["velocity"].values())


def main() -> None:
    spec, task = robot_spec("so101"), TaskConfig()
    tmp = Path(tempfile.mkdtemp(prefix="bench_replay_"))
    out: dict = {"delays": {}}
    twin = Twin(spec, TwinConfig(), task)
    config = ReplayConfig()
    replayer = ActionReplayer(twin, config)
    analysis = Analysis(spec, replayer.fk, config)

    def replay(path, ids):
        store = EpisodeStore.open(str(path))
        reps = []
        for i in ids:
            ep = store.read(i)
            reps.append(analysis.report(ep, replayer.run(ep)))
        return reps

    nominal = tmp / "nominal.zarr"
    rec = record(str(nominal), spec, task, [3, 8], max_duration=DURATION)
    self_reps = replay(nominal, rec.ids)
    out["self_replay"] = {
        "max_error": max(max(t["max"] for t in r["tracking"].values()) for r in self_reps),
        "events": sum(len(r["events"]) for r in self_reps),
        "verdicts": [r["verdict"] for r in self_reps],
    }
    for k, delay in enumerate(DELAYS):
        real = perturbed(spec, KP, DAMPING, np.random.default_rng(k), delay=(delay, delay))
        path = tmp / f"real_{k}.zarr"
        clean = record(
            str(path), spec, task, [11, 12, 13, 14], actuators=real, max_duration=DURATION
        )
        injected = {}
        for kind, inj in SO101_INJECTIONS.items():
            r = record(
                str(path),
                spec,
                task,
                [20 + k],
                actuators=real,
                injection=inj,
                max_duration=inj.duration + 0.6,
            )
            injected[kind] = r.ids[0]
        clean_reps = replay(path, clean.ids)
        inj_reps = {kind: replay(path, [i])[0] for kind, i in injected.items()}
        want = {"table": "collision", "limit": "position_limit", "velocity": "velocity"}
        found = {
            kind: any(e["kind"] == want[kind] for e in rep["events"])
            for kind, rep in inj_reps.items()
        }
        # whether the "real" arm's own recording shows what was injected (a miss of an
        # injection that never happened is the injection's fault, not the detector's)
        happened = {kind: in_recording(kind, rep, spec) for kind, rep in inj_reps.items()}
        store = EpisodeStore.open(str(path))
        eps = [store.read(i) for i in clean.ids]
        fit_twin = Twin(spec, TwinConfig(), task)
        t0 = time.perf_counter()
        result = dynamics.fit(ActionReplayer(fit_twin, config), eps[:2], eps[2:], FitConfig())
        fit_s = time.perf_counter() - t0
        fit_twin.close()
        delays = [a.delay for a in result.actuators.values()]
        out["delays"][f"{delay * 1000:.0f}ms"] = {
            "clean_false_events": sum(len(r["events"]) for r in clean_reps),
            "injected_found": found,
            "injected_in_recording": happened,
            "clean_touches": sum(len(r["touches"]) for r in clean_reps),
            "clean_verdicts": [r["verdict"] for r in clean_reps],
            "held_out_rms_before": float(np.sqrt(np.mean(result.before**2))),
            "held_out_rms_after": float(np.sqrt(np.mean(result.after**2))),
            "ratio": result.ratio,
            "fitted_delays_ms": [round(d * 1000, 1) for d in delays],
            "delay_error_ms": round(abs(float(np.median(delays)) - delay) * 1000, 1),
            "fit_s": round(fit_s, 1),
            "fit_replays": result.evaluations,
        }
    # throughput: episodes without images (scene empty: no reconstruction, no frames)
    fast = ActionReplayer(twin, ReplayConfig(scene=SceneMode.empty))
    store = EpisodeStore.open(str(tmp / "real_0.zarr"))
    sim = wall = 0.0
    for i in store.episode_ids()[:4]:
        ep = store.read(i)
        ep = dataclasses.replace(ep, images={})
        t0 = time.perf_counter()
        fast.run(ep)
        wall += time.perf_counter() - t0
        sim += float(ep.t[-1] - ep.t[0])
    out["throughput"] = {"sim_s": sim, "wall_s": wall, "x_real_time": sim / wall}
    twin.close()

    rows = [
        ("self-replay max error (rad)", f"{out['self_replay']['max_error']:.2e}", "noise"),
        ("self-replay events", str(out["self_replay"]["events"]), "0"),
    ]
    for name, d in out["delays"].items():
        rows += [
            (f"{name}: false events on 4 clean", str(d["clean_false_events"]), "0"),
            (f"{name}: hand touches on 4 clean (no event)", str(d["clean_touches"]), "-"),
            (
                f"{name}: injected found",
                ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in d["injected_found"].items()),
                "all",
            ),
            (
                f"{name}: injection in the recording",
                ", ".join(
                    f"{k} {'yes' if v else 'NO'}" for k, v in d["injected_in_recording"].items()
                ),
                "all",
            ),
            (
                f"{name}: held-out RMS before/after",
                f"{d['held_out_rms_before']:.4f} / "
                f"{d['held_out_rms_after']:.4f} ({d['ratio']:.1f}x)",
                ">= 3x",
            ),
            (
                f"{name}: delay error (median of joints)",
                f"{d['delay_error_ms']} ms (fitted {d['fitted_delays_ms']})",
                "<= 10 ms",
            ),
        ]
    rows.append(
        ("throughput, no images", f"{out['throughput']['x_real_time']:.1f}x real time", ">= 10x")
    )
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  result  (target)")
    for a, b, c in rows:
        print(f"{a:<{w}}  {b}  ({c})")
    res = ROOT / "bench" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "replay.json").write_text(json.dumps(out, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(out["delays"])
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    x = np.arange(len(names))
    ax[0].bar(
        x - 0.2, [out["delays"][n]["held_out_rms_before"] for n in names], 0.4, label="nominal twin"
    )
    ax[0].bar(
        x + 0.2,
        [out["delays"][n]["held_out_rms_after"] for n in names],
        0.4,
        label="after replay fit",
    )
    ax[0].set_xticks(x, names)
    ax[0].set_ylabel("held-out tracking RMS (rad)")
    ax[0].legend()
    ax[1].bar(["replay", "real time"], [out["throughput"]["x_real_time"], 1.0])
    ax[1].set_ylabel("x real time (no images)")
    fig.tight_layout()
    fig.savefig(res / "replay.png", dpi=90)


if __name__ == "__main__":
    main()
