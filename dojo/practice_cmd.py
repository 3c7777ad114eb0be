"""``dojo practice``: the practice loop through the ROS 2 graph, in the twin or on a robot.

    dojo practice policy.checkpoint=SFT critic.checkpoint=CRITIC store=practice.zarr \\
        episodes=N [hil=graded] [learner.reward=critic|sparse] out=DIR

is ``dojo record`` with the ``learner`` node in the graph (``practice.enabled``): every episode
the recorder commits is picked up by the learner, which trains and announces checkpoints on
``policy/checkpoint``; the policy node swaps them in between two inferences. ``hil=graded``
(short for ``practice.hil.mode=graded``) brings the person in: in the twin the scripted person
of the intervention node takes over when the arm stalls or the task regresses (stage 3 of
:mod:`policy.learner.loop`); on a robot, ``teleop=<device>``. Stage 2 (return and explore)
needs the scene reset to a state along a demonstration, which the graph's episode runner does
not do yet: it runs in process (``bench/practice.py``).

At the end ``DIR/practice.json`` lists every episode (instruction, success, steps, human steps)
with the learner's summary (``DIR/learner/status.json``), and ``DIR/practice.png`` plots success
against episodes with its 95% band and the person's steps per episode.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from dojo.commands import GRAPH_READS, Command, given


def _summary(store_url: str, before: set[str], out: Path) -> dict:
    from episodes.store import EpisodeStore
    from policy.evaluate import wilson_interval
    from robot.schema import ControlSource

    store = EpisodeStore.open(store_url)
    entries = []
    for eid in store.episode_ids():
        if eid in before:
            continue
        ep = store.read(eid, verify=False)
        entries.append({
            "episode_id": eid, "instruction": ep.instruction, "success": bool(ep.success),
            "steps": ep.n_steps,
            "human_steps": int((ep.control_source == int(ControlSource.HUMAN)).sum()),
        })  # fmt: skip
    status_file = out / "learner" / "status.json"
    learner = json.loads(status_file.read_text()) if status_file.exists() else {}
    k = sum(e["success"] for e in entries)
    lo, hi = wilson_interval(k, len(entries))
    return {"episodes": entries, "succeeded": k, "total": len(entries), "ci95": [lo, hi],
            "learner": learner}  # fmt: skip


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policy.evaluate import wilson_interval

    s = np.array([e["success"] for e in summary["episodes"]], dtype=float)
    x = np.arange(1, len(s) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if len(s):
        mean = np.cumsum(s) / x
        band = np.array([wilson_interval(round(m * n), n) for m, n in zip(mean, x, strict=True)])
        axes[0].plot(x, mean)
        axes[0].fill_between(x, band[:, 0], band[:, 1], alpha=0.2)
        axes[1].bar(x, [e["human_steps"] for e in summary["episodes"]])
    axes[0].set(xlabel="episode", ylabel="success so far (95% band)", ylim=(0, 1))
    axes[1].set(xlabel="episode", ylabel="human steps")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def practice(overrides: list[str]) -> int:
    from dojo.cli import cmd_run

    if not given(overrides, "store"):
        print("dojo practice: say where to record, e.g. store=practice.zarr", file=sys.stderr)
        return 2
    cfg = PRACTICE.load(overrides)
    if not cfg.policy.checkpoint:
        print("dojo practice: give the policy to practise: policy.checkpoint=DIR", file=sys.stderr)
        return 2
    extra = ["practice.enabled=true"]
    if cfg.practice.hil.mode == "graded" and cfg.teleop.name == "scripted":
        extra += ["intervention.enabled=true", "intervention.device=scripted"]
    before: set[str] = set()
    if Path(str(cfg.store)).exists():
        from episodes.store import EpisodeStore

        before = set(EpisodeStore.open(str(cfg.store)).episode_ids())
    code = cmd_run([*PRACTICE.expand(overrides), *extra])
    out = Path(str(cfg.out))
    try:
        summary = _summary(str(cfg.store), before, out)
    except Exception as err:  # the run's own outcome is what matters; this is a summary
        print(f"dojo practice: could not summarise {cfg.store} ({err})", file=sys.stderr)
        return code
    (out / "practice.json").write_text(json.dumps(summary, indent=2) + "\n")
    _plot(summary, out / "practice.png")
    s = summary
    print(f"practice: {s['succeeded']}/{s['total']} episodes succeeded "
          f"(95% CI {s['ci95'][0]:.2f}-{s['ci95'][1]:.2f}); learner: "
          f"{s['learner'].get('updates', 0)} updates, checkpoint "
          f"{s['learner'].get('checkpoint') or 'none yet'}")  # fmt: skip
    print(f"report: {out / 'practice.json'}, {out / 'practice.png'}")
    return code


PRACTICE = Command(
    "practice",
    practice,
    GRAPH_READS,
    "The graph with the learner: every committed episode trains the policy, which swaps in "
    "the learner's checkpoints (hil=graded: the person takes over when the arm stalls).",
    aliases={"hil": "practice.hil.mode"},
)
COMMANDS = [PRACTICE]
