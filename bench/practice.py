"""Practice, the headline benchmark: from one SFT checkpoint to a reliable policy, in the twin.

    .venv/bin/python bench/practice.py [--episodes 200] [--arms control,sparse,critic,hil]
        [--actor residual|rerank|awac|distil] [--policy DIR] [--critic DIR] [--demos STORE]
        [--learner KEY=VALUE ...]

pick_place with three colours. Every arm starts from the same SFT checkpoint (``--policy``;
by default made once in ``--work`` by :func:`prepare`: ``--demos-n`` 40 successful
demonstrations of the configured scripted operator and ``--sft-steps`` 2,500 of ``dojo train
policy``, a start near the protocol's 20-30%), sees the same scene seeds in the same order, and
gets a fresh learner:

1. ``control``  the SFT policy alone, no learning;
2. ``sparse``   the learner with sparse success reward;
3. ``critic``   the learner with the critic's anchored potential and its done;
4. ``hil``      critic reward and the graded human-in-the-loop protocol (the scripted person);
5. ``demos``    (``--actor distil`` only) the separating control: the sparse arm's learner, the
   same optimiser steps credited per episode at the same rounds, but the practice episodes'
   data withheld, so it fine-tunes on the demonstrations alone. What a distil arm gains over
   this one is practice; what this one gains over ``control`` is only more optimisation.

Every learning arm has the SFT's demonstrations in its prior data (stage 1 of the protocol;
RLPD's prior data). Reported per arm: success against episodes (rolling window of 20 with its
95% Wilson band), the episodes to reach 80% and 90% in that window, final success on ``--eval``
held-out scenes with Wilson intervals, the person's share of steps, the wall time of rollouts,
learner updates per second and the critic's relabelling throughput (frames/s). ``--actor``
picks the learner's actor (:mod:`policy.learner.agent`; ``distil``:
:mod:`policy.learner.distil`, the VLA itself fine-tuned); running the arms once per actor is
the comparison the default was chosen by.

The loop runs in process on the same library objects ``dojo practice`` uses through the graph
(:mod:`policy.learner.loop`), in sim time. Results: ``bench/results/practice.json`` (merged
per arm and actor, so parts can be run separately) and ``bench/results/practice.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS, print_table, write_json

ARMS = ("control", "sparse", "critic", "hil", "demos")
TRAIN_SEED0 = 10_000  # practice scenes; demos use 0.., held-out evaluation EVAL_SEED0..
EVAL_SEED0 = 20_000
WINDOW = 20


def prepare(args) -> None:
    """The demonstrations, SFT checkpoint and critic every arm starts from, made once and
    reused: ``--demos-n`` successful episodes of the configured scripted operator (with its
    wobble), ``--sft-steps`` of ``dojo train policy`` on them (40 demos and 2,500 steps give a
    start near the protocol's 20-30%: 12/50 measured), the critic 600 steps on the same."""
    from dojo import conf, critic_cmd, policy_cmd

    cfg = conf.load([])
    noise = conf.scripted_config(cfg).noise_std
    work = Path(args.work)
    args.demos = args.demos or str(work / f"demos_noise{noise:g}.zarr")
    if not args.policy:
        args.policy = str(work / f"sft_{args.demos_n}demos_{args.sft_steps}steps" / "checkpoint")
    args.critic = args.critic or str(work / f"critic_{Path(args.demos).stem}")
    from dojo.collect import collect_successful, make_twin, recorded

    if recorded(args.demos)[0] < args.demos_n:
        twin = make_twin(conf.robot_spec(cfg), conf.task_config(cfg), conf.twin_config(cfg))
        try:
            collect_successful(args.demos, twin, conf.scripted_config(cfg), successful=args.demos_n)
        finally:
            twin.close()
    if not Path(args.policy).exists():
        policy_cmd.train(
            [
                f"store={args.demos}",
                f"out={Path(args.policy).parent}",
                f"train.steps={args.sft_steps}",
                "train.seconds=0",
                f"train.max_episodes={args.demos_n}",
            ]
        )
    needs_critic = any(a in ("critic", "hil") for a in args.arms.split(","))
    if needs_critic and not (Path(args.critic) / "critic.json").exists():
        critic_cmd.train([f"store={args.demos}", f"out={args.critic}", "critic_train.steps=600"])


def demonstrations(url: str, n: int) -> list:
    """The first ``n`` successful episodes of the store: the SFT's own demonstrations."""
    from episodes.store import EpisodeStore

    store = EpisodeStore.open(url)
    out = []
    for eid in store.episode_ids():
        if len(out) >= n:
            break
        if store.info(eid).get("success"):
            out.append(store.read(eid, verify=False))
    return out


def rolling(success: list[bool], window: int = WINDOW) -> np.ndarray:
    s = np.asarray(success, dtype=np.float64)
    out = np.full(len(s), np.nan)
    for i in range(len(s)):
        lo = max(0, i - window + 1)
        out[i] = s[lo : i + 1].mean()
    return out


def episodes_to(success: list[bool], level: float, window: int = WINDOW) -> int | None:
    """First episode count at which the last ``window`` episodes reach ``level`` success."""
    s = np.asarray(success, dtype=np.float64)
    for i in range(window - 1, len(s)):
        if s[i - window + 1 : i + 1].mean() >= level - 1e-9:
            return i + 1
    return None


def run_arm(arm: str, args, spec, cfg, text, seeds, eval_seeds) -> dict:
    import torch

    from dojo import conf
    from dojo.collect import make_twin
    from episodes.store import EpisodeStore
    from policy.compact import CompactVLAPolicy
    from policy.evaluate import wilson_interval
    from policy.learner.config import LearnerConfig
    from policy.learner.learner import make_learner
    from policy.learner.loop import HilConfig, PracticeLoop, evaluate
    from policy.learner.policy import PracticedPolicy

    torch.manual_seed(args.seed)
    twin = make_twin(spec, conf.task_config(cfg), conf.twin_config(cfg))
    base_policy = CompactVLAPolicy.load(args.policy, text)
    t_arm = time.monotonic()
    entries: list[dict] = []
    learner = None
    try:
        if arm == "control":
            from policy.rollout import RolloutConfig, TwinRollout

            rollout = TwinRollout(twin, RolloutConfig())
            t0 = time.monotonic()
            for i, seed in enumerate(seeds):
                r = rollout.run(base_policy, seed=int(seed))
                entries.append(
                    {
                        "index": i,
                        "seed": int(seed),
                        "instruction": r.instruction,
                        "success": bool(r.success),
                        "steps": r.ticks,
                        "human_steps": 0,
                        "stage": "autonomous",
                        "checkpoint": 0,
                    }
                )
                _progress(arm, entries)
            rollout_s = time.monotonic() - t0
            final_policy = base_policy
        else:
            from critic.registry import load_critic

            reward = "sparse" if arm in ("sparse", "demos") else "critic"
            lcfg = LearnerConfig(
                reward=reward, actor=args.actor, seed=args.seed, utd=args.utd, **args.learner
            )
            critic = load_critic(args.critic) if reward == "critic" else None
            work = Path(args.work) / f"{arm}_{args.actor}"
            if work.exists():
                import shutil

                shutil.rmtree(work)
            make = _demos_only_learner if arm == "demos" else make_learner
            learner = make(
                base_policy,
                lcfg,
                fps=EpisodeStore.open(args.demos).fps,
                base_source=("compact", str(Path(args.policy).resolve()), ""),
                critic=critic,
                out=work / "learner",
            )
            t0 = time.monotonic()
            learner.ingest(demonstrations(args.demos, args.demos_n))  # stage 1: the prior
            prior_s = time.monotonic() - t0
            distil = args.actor == "distil"
            if not distil:  # the distilled VLA was trained on the demos already
                learner.train(args.pretrain_updates)  # offline replay before the first episode
            policy = base_policy if distil else PracticedPolicy(learner.base, learner.net, True)
            hil = HilConfig(mode="graded" if arm == "hil" else "none")
            loop = PracticeLoop(
                twin,
                learner,
                policy,
                str(work / "practice.zarr"),
                scripted_config=conf.scripted_config(cfg),
                hil=hil,
            )
            t0 = time.monotonic()
            for i, seed in enumerate(seeds):
                e = loop.episode(i, int(seed))
                entries.append({**e.__dict__})
                _progress(arm, entries, learner)
            rollout_s = time.monotonic() - t0
            final_policy = base_policy if distil else PracticedPolicy(learner.base, learner.net)
            learner.save()
        print(f"[{arm}] evaluating on {len(eval_seeds)} held-out scenes", file=sys.stderr)
        t0 = time.monotonic()
        final = evaluate(twin, final_policy, eval_seeds)
        eval_s = time.monotonic() - t0
    finally:
        twin.close()
    success = [e["success"] for e in entries]
    k = int(sum(final))
    lo, hi = wilson_interval(k, len(final))
    steps = sum(e["steps"] for e in entries) or 1
    out = {
        "arm": arm,
        "actor": args.actor if arm != "control" else None,
        "episodes": entries,
        "practice_success": float(np.mean(success)) if success else None,
        "episodes_to_80": episodes_to(success, 0.8),
        "episodes_to_90": episodes_to(success, 0.9),
        "final": {
            "successes": k,
            "episodes": len(final),
            "rate": k / max(len(final), 1),
            "ci95": [lo, hi],
        },
        "human_share": sum(e["human_steps"] for e in entries) / steps,
        "wall_s": {
            "arm": time.monotonic() - t_arm,
            "rollouts_and_learning": rollout_s,
            "evaluation": eval_s,
        },
    }
    if learner is not None:
        out["learner"] = learner.status.to_json()
        out["wall_s"]["demo_ingest"] = prior_s
    return out


def _demos_only_learner(policy, config, **kwargs):
    """The ``demos`` arm's learner: a distil learner that credits each practice episode's
    optimiser steps as usual but never adds the episode's data (only the demonstrations)."""
    from policy.learner.distil import DistilLearner

    class DemosOnly(DistilLearner):
        def _add(self, ep, usable, weight, practice, counts):
            if not practice:
                super()._add(ep, usable, weight, practice, counts)

    return DemosOnly(policy, config, **kwargs)


def _progress(arm: str, entries: list[dict], learner=None) -> None:
    e = entries[-1]
    recent = np.mean([x["success"] for x in entries[-WINDOW:]])
    extra = ""
    if learner is not None:
        s = learner.status
        extra = f" updates {s.updates} prior {s.prior} online {s.online}"
    print(
        f"[{arm}] episode {len(entries):4d} {'ok  ' if e['success'] else 'fail'} "
        f"last{WINDOW} {recent:.2f} human {e['human_steps']:3d}{extra}",
        file=sys.stderr,
        flush=True,
    )


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from policy.evaluate import wilson_interval

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for key, r in sorted(results.items()):
        s = [e["success"] for e in r["episodes"]]
        if not s:
            continue
        x = np.arange(1, len(s) + 1)
        mean = rolling(s)
        n = np.minimum(x, WINDOW)
        band = np.array([wilson_interval(round(m * k), k) for m, k in zip(mean, n, strict=True)])
        (line,) = axes[0].plot(x, mean, label=key)
        axes[0].fill_between(x, band[:, 0], band[:, 1], color=line.get_color(), alpha=0.15)
        axes[1].plot(x, [e["human_steps"] for e in r["episodes"]], label=key)
    axes[0].axhline(0.9, color="grey", ls=":", lw=1)
    axes[0].set(
        xlabel="practice episode",
        ylabel=f"success (last {WINDOW}, 95% band)",
        ylim=(0, 1),
        title="success against episodes",
    )
    axes[1].set(xlabel="practice episode", ylabel="human steps", title="the person's steps")
    finals = [(k, r["final"]) for k, r in sorted(results.items())]
    axes[2].bar(
        [k for k, _ in finals],
        [f["rate"] for _, f in finals],
        yerr=np.array([[f["rate"] - f["ci95"][0], f["ci95"][1] - f["rate"]] for _, f in finals]).T,
        capsize=4,
    )
    axes[2].set(ylim=(0, 1), ylabel="success on held-out scenes", title="final, 95% Wilson")
    axes[2].tick_params(axis="x", rotation=30)
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def _learner_settings(ap, pairs: list[str]) -> dict:
    import dataclasses

    from policy.learner.config import LearnerConfig

    types = {f.name: f.type for f in dataclasses.fields(LearnerConfig)}
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        if key not in types or not value:
            ap.error(f"--learner {pair!r}: KEY=VALUE with KEY among {sorted(types)}")
        kind = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true")}
        out[key] = kind.get(str(types[key]), str)(value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--eval", type=int, default=50, help="held-out scenes for the final rate")
    ap.add_argument("--arms", default="", help=f"among {ARMS}; default: all (demos: distil only)")
    ap.add_argument("--actor", default="residual", choices=("residual", "rerank", "awac", "distil"))
    ap.add_argument("--utd", type=float, default=2.0)
    ap.add_argument("--pretrain-updates", type=int, default=500)
    ap.add_argument("--work", default="runs/bench/practice")
    ap.add_argument("--demos", default="", help="default: WORK/demos_noise<std>.zarr")
    ap.add_argument("--demos-n", type=int, default=40, help="successful demos the SFT uses")
    ap.add_argument("--policy", default="", help="the SFT start (default: made in WORK)")
    ap.add_argument("--sft-steps", type=int, default=2500)
    ap.add_argument("--critic", default="", help="default: made in WORK from the demos")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--learner",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="learner settings (LearnerConfig fields), e.g. distil_round=100",
    )
    ap.add_argument(
        "--results", default="practice", help="bench/results/NAME.json and .png (merged per arm)"
    )
    args = ap.parse_args()
    args.learner = _learner_settings(ap, args.learner)
    arms = [a for a in args.arms.split(",") if a] or [
        a for a in ARMS if a != "demos" or args.actor == "distil"
    ]
    args.arms = ",".join(arms)
    bad = [a for a in arms if a not in ARMS]
    if bad:
        ap.error(f"--arms: {bad} not among {list(ARMS)}")
    if "demos" in arms and args.actor != "distil":
        ap.error("--arms demos: the separating control of --actor distil only")
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    from dojo import conf
    from policy.models.encoders import TextEncoder

    torch.set_num_threads(1)
    prepare(args)
    cfg = conf.load([])
    spec = conf.robot_spec(cfg)
    text = TextEncoder()
    seeds = np.arange(TRAIN_SEED0, TRAIN_SEED0 + args.episodes)
    eval_seeds = np.arange(EVAL_SEED0, EVAL_SEED0 + args.eval)
    path = RESULTS / f"{args.results}.json"
    results = json.loads(path.read_text()).get("arms", {}) if path.exists() else {}
    t0 = time.monotonic()
    for arm in arms:
        key = arm if arm == "control" else f"{arm}/{args.actor}"
        results[key] = run_arm(arm, args, spec, cfg, text, seeds, eval_seeds)
        results[key]["episodes_requested"] = args.episodes
        path.parent.mkdir(parents=True, exist_ok=True)  # each arm kept as soon as it is done
        path.write_text(json.dumps({"arms": results}, default=float))
    rows = []
    for key, r in sorted(results.items()):
        f = r["final"]
        rows.append(
            [
                key,
                len(r["episodes"]),
                r["practice_success"],
                r["episodes_to_80"],
                r["episodes_to_90"],
                f"{f['successes']}/{f['episodes']}",
                f"{f['ci95'][0]:.2f}-{f['ci95'][1]:.2f}",
                round(r["human_share"], 3),
                round(r["wall_s"]["arm"] / 60, 1),
                round(r.get("learner", {}).get("updates_per_s", 0.0), 1),
                round(r.get("learner", {}).get("relabel_frames_per_s", 0.0), 1),
            ]
        )
    print_table(
        "practice: pick_place, three colours, one SFT start",
        [
            "arm",
            "episodes",
            "practice success",
            "to 80%",
            "to 90%",
            "final",
            "95% CI",
            "human share",
            "wall min",
            "updates/s",
            "relabel fps",
        ],
        rows,
    )
    write_json(
        args.results,
        {
            "arms": results,
            "wall_s": time.monotonic() - t0,
            "policy": args.policy,
            "critic": args.critic,
            "demos": args.demos,
        },
    )
    plot(results, RESULTS / f"{args.results}.png")


if __name__ == "__main__":
    main()
