"""The progress critic on held-out episodes of the twin, against issue 5's targets.

Trains the compact critic on one store (or takes a checkpoint), then measures on a store of
other seeds: VOC on successful, reversed and failed episodes, sign accuracy of deltas for pairs
at least 10% apart, rejection of mismatched instructions, done precision/recall/F1; on a store
of a task variant left out of training (push), VOC with one reference demonstration against
the same critic without it; pairs per second on this CPU; and the time to relabel 100
episodes (on copies of the stores, so the inputs stay untouched).

    .venv/bin/python -m dojo.cli collect store=/tmp/critic_data/train.zarr episodes=60 \\
        seed=1000 teleop.scripted.failure_rate=0.3
    .venv/bin/python -m dojo.cli collect store=/tmp/critic_data/heldout.zarr episodes=30 \\
        seed=50000 teleop.scripted.failure_rate=0.3
    .venv/bin/python -m dojo.cli collect store=/tmp/critic_data/push.zarr episodes=24 \\
        seed=90000 teleop.scripted.failure_rate=0.3 task=push
    OMP_NUM_THREADS=1 .venv/bin/python bench/critic.py --train /tmp/critic_data/train.zarr \\
        --heldout /tmp/critic_data/heldout.zarr --variant /tmp/critic_data/push.zarr

A store that does not exist is recorded first with exactly those commands. Results: a table
on stdout, ``bench/results/critic.json`` and ``critic_curves.png``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("MUJOCO_GL", "egl")

from bench.common import RESULTS, print_table, write_json

TARGETS = {
    "voc_success": (">=", 0.95),
    "voc_reversed": ("<=", 0.0),
    "sign_accuracy": (">=", 0.95),
    "done_f1": (">=", 0.9),
    "reject_mismatch": (">=", 0.95),
}


COLLECT = {  # what each store holds when this benchmark has to record it (other seeds each)
    "train": ["episodes=60", "seed=1000", "teleop.scripted.failure_rate=0.3"],
    "heldout": ["episodes=30", "seed=50000", "teleop.scripted.failure_rate=0.3"],
    "variant": ["episodes=24", "seed=90000", "teleop.scripted.failure_rate=0.3", "task=push"],
}


def ensure_store(kind: str, url: str) -> None:
    """Record the store with ``dojo collect`` when it does not exist yet (minutes)."""
    import subprocess

    if not url or Path(url).exists():
        return
    cmd = [sys.executable, "-m", "dojo.cli", "collect", f"store={url}", *COLLECT[kind]]
    print(f"recording the {kind} store: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True)


def pairs_per_second(critic, store_url: str, batch: int = 64, repeats: int = 5) -> dict:
    """Independent pairs (both frames encoded, store-size frames resized inside) and the
    episode path (consecutive pairs, each frame encoded once)."""
    import numpy as np

    from critic.evaluate import episode_frames
    from episodes.store import EpisodeStore

    store = EpisodeStore.open(store_url)
    ep = store.read(store.episode_ids()[0], verify=False)
    frames = episode_frames(ep, critic, store_url)
    n = ep.n_steps
    rng = np.random.default_rng(0)
    ia, ib = rng.integers(0, n, batch), rng.integers(0, n, batch)
    a = {c: f[ia] for c, f in frames.items()}
    b = {c: f[ib] for c, f in frames.items()}
    critic.delta_frames(a, b, ep.instruction)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        critic.delta_frames(a, b, ep.instruction)
    independent = batch * repeats / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(repeats):
        critic.progress(frames, ep.instruction)
    chained = (n - 1) * repeats / (time.perf_counter() - t0)
    return {"independent_pairs_per_s": independent, "episode_pairs_per_s": chained, "batch": batch}


def relabel_time(critic, stores: list[str], episodes: int) -> dict:
    from critic.relabel import relabel
    from episodes.store import EpisodeStore

    done, seconds, steps = 0, 0.0, 0
    with tempfile.TemporaryDirectory(prefix="critic-relabel-") as tmp:
        for k, url in enumerate(stores):
            if done >= episodes:
                break
            copy = Path(tmp) / f"s{k}.zarr"
            shutil.copytree(url, copy)
            left = episodes - done
            store = EpisodeStore.open(str(copy))
            steps += sum(store.info(i)["n_steps"] for i in store.episode_ids()[:left])
            t0 = time.perf_counter()
            summary = relabel(str(copy), critic, progress=False, config=_relabel_config(left))
            seconds += time.perf_counter() - t0
            done += len(summary.written)
    return {"episodes": done, "steps": steps, "seconds": seconds}


def _relabel_config(limit: int):
    from critic.relabel import RelabelConfig

    return RelabelConfig(limit=limit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train", default="/tmp/critic_data/train.zarr")
    ap.add_argument("--heldout", default="/tmp/critic_data/heldout.zarr")
    ap.add_argument("--variant", default="/tmp/critic_data/push.zarr")
    ap.add_argument("--critic", default="", help="a trained checkpoint (skips training)")
    ap.add_argument("--out", default="/tmp/critic_data/bench_critic")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--ref-align", default="neutral", choices=["instruction", "neutral"])
    ap.add_argument("--mode", default="chain", choices=["chain", "anchor"])
    ap.add_argument("--relabel-episodes", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from critic.config import CriticTrainConfig
    from critic.evaluate import CriticEvalConfig, evaluate, plot_curves, reference_comparison
    from critic.registry import load_critic
    from critic.train import train

    for kind in ("heldout", "variant") + (() if args.critic else ("train",)):
        ensure_store(kind, getattr(args, kind))
    train_s = None
    if args.critic:
        critic = load_critic(args.critic)
    else:
        t0 = time.perf_counter()
        cfg = CriticTrainConfig(stores=[args.train], out=args.out, steps=args.steps, log_every=250,
                          ref_align=args.ref_align)  # fmt: skip
        critic = train(cfg)
        train_s = time.perf_counter() - t0
    config = CriticEvalConfig(mode=args.mode)
    metrics, results = evaluate(critic, [args.heldout], config)
    curves = plot_curves(results, RESULTS / "critic_curves.png", f"held-out: {critic.critic_id}")
    ref = reference_comparison(critic, args.variant, config) if args.variant else None
    # chain accumulation drifts upwards wherever the critic's small deltas lean positive, so
    # on a task it does not know, reversed episodes score high too; anchor mode cannot drift
    anchor_cfg = CriticEvalConfig(mode="anchor")
    ref_anchor = reference_comparison(critic, args.variant, anchor_cfg) if args.variant else None
    speed = pairs_per_second(critic, args.heldout)
    stores = [s for s in (args.heldout, args.variant, args.train) if s]
    relab = relabel_time(critic, stores, args.relabel_episodes)

    rows = []
    for key, (op, target) in TARGETS.items():
        value = metrics[key]
        ok = value >= target if op == ">=" else value <= target
        rows.append([key, value, f"{op} {target:g}", "yes" if ok else "NO"])
    rows += [
        ["voc_failed", metrics["voc_failed"], "(report)", ""],
        ["false_reject_matched", metrics["false_reject_matched"], "(report)", ""],
        ["done_precision", metrics["done_precision"], "(report)", ""],
        ["done_recall", metrics["done_recall"], "(report)", ""],
    ]
    if ref:
        rows += [
            ["variant VOC, 1 reference demo", ref["voc_with_reference"], "> without",
             "yes" if ref["voc_with_reference"] > ref["voc_without_reference"] else "NO"],
            ["variant VOC, no reference", ref["voc_without_reference"], "(report)", ""],
            ["variant reversed VOC, 1 reference", ref["voc_reversed_with_reference"], "(report)",
             ""],
            ["variant reversed VOC, no reference", ref["voc_reversed_without_reference"],
             "(report)", ""],
            ["variant VOC, 1 reference (anchor)", ref_anchor["voc_with_reference"], "(report)",
             ""],
            ["variant VOC, no reference (anchor)", ref_anchor["voc_without_reference"],
             "(report)", ""],
            ["variant reversed VOC, 1 ref (anchor)", ref_anchor["voc_reversed_with_reference"],
             "(report)", ""],
        ]  # fmt: skip
    rows += [
        ["pairs/s (independent pairs)", speed["independent_pairs_per_s"], "(report)", ""],
        ["pairs/s (episode, shared frames)", speed["episode_pairs_per_s"], "(report)", ""],
        [f"relabel {relab['episodes']} episodes, s", relab["seconds"], "(report)", ""],
    ]
    print_table(
        f"critic {critic.critic_id} on {metrics['episodes']} held-out episodes "
        f"({metrics['successful']} successful, {metrics['failed']} failed), mode={args.mode}, "
        f"torch threads={args.threads}",
        ["metric", "value", "target", "met"],
        rows,
    )
    print(f"progress curves: {curves}")
    write_json(
        "critic",
        {
            "params": vars(args),
            "critic_id": critic.critic_id,
            "train_seconds": train_s,
            "metrics": metrics,
            "reference": ref,
            "reference_anchor": ref_anchor,
            "speed": speed,
            "relabel": relab,
            "targets": {k: {"op": op, "target": t, "value": metrics[k]}
                        for k, (op, t) in TARGETS.items()},
        },
    )  # fmt: skip


if __name__ == "__main__":
    main()
