"""``dojo train critic``, ``dojo eval critic`` and ``dojo critic relabel|audit|curves``.

    dojo train critic store=demos.zarr[,more.zarr] out=runs/critic [critic_train.steps=1500
                      critic_train.cameras=[front,wrist] critic_train.pairs.mismatch=0.15 ...]
    dojo eval critic checkpoint=runs/critic store=heldout.zarr [out=runs/critic/eval
                     reference_store=variant.zarr critic_eval.mode=anchor critic_eval.limit=0]
    dojo critic relabel store=S checkpoint=runs/critic [relabel.reward=shaping relabel.gamma=0.99]
    dojo critic audit store=S (checkpoint=runs/critic | audit.critic_id=ID) [out=audit.json]
    dojo critic curves store=S checkpoint=runs/critic out=curves.png [critic_eval.limit=20]

Every key goes through the one config (``dojo/conf``), key for key the critic library's
dataclasses: ``critic_train.*`` is :class:`critic.config.CriticTrainConfig`, ``critic_eval.*``
:class:`critic.evaluate.CriticEvalConfig`, ``relabel.*`` :class:`critic.relabel.RelabelConfig`,
``audit.*`` :class:`critic.audit.AuditConfig`. The critic these tools load is the ``critic``
group's, as the live node's (``checkpoint=`` is short for ``critic.checkpoint=``;
``critic=vlm checkpoint=/models/VLAC`` loads the VLM backend).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from dojo import conf
from dojo.commands import Command, given


def _threads() -> None:
    """torch threads as every dojo command sets them (``policy.train.default_threads``: torch's
    default busy-waits beside other work), unless OMP_NUM_THREADS says otherwise."""
    import torch

    from policy.train import default_threads

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or default_threads())


def _stores(cfg) -> list[str]:
    return [s for s in str(cfg.store).split(",") if s]


def _need(cfg, what: str, *, checkpoint: bool = True, store: bool = True) -> None:
    missing = []
    if store and not cfg.store:
        missing.append("store=<episode store>")
    if checkpoint and not cfg.critic.checkpoint:
        missing.append("checkpoint=<critic checkpoint>")
    if missing:
        raise conf.ConfigError(f"give {' and '.join(missing)} ({what})")


def _critic(cfg):
    """The critic the ``critic`` group names, loaded as the live node loads it."""
    from critic.registry import load_critic

    _threads()
    cc = cfg.critic
    return load_critic(
        str(cc.checkpoint),
        str(cc.backend),
        device=str(cc.device),
        cameras=list(cc.cameras),
        max_new_tokens=int(cc.max_new_tokens),
    )


def train(overrides: list[str]) -> int:
    """``dojo train critic``."""
    from critic.train import train as train_critic

    cfg = TRAIN.load(overrides)
    config = conf.section(cfg, "critic_train")
    config = dataclasses.replace(
        config, stores=_stores(cfg), out=cfg.out if given(overrides, "out") else config.out
    )
    config.validate()
    _threads()
    critic = train_critic(config)
    print(f"critic {critic.critic_id} written to {config.out}")
    return 0


def evaluate(overrides: list[str]) -> int:
    """``dojo eval critic``: metrics as JSON, progress curves as PNG."""
    from critic.evaluate import evaluate as run_eval
    from critic.evaluate import plot_curves, reference_comparison

    cfg = EVAL.load(overrides)
    _need(cfg, "the critic to evaluate and a held-out store")
    critic = _critic(cfg)
    config = conf.section(cfg, "critic_eval")
    metrics, results = run_eval(critic, _stores(cfg), config)
    if cfg.reference_store:
        metrics["reference"] = reference_comparison(critic, cfg.reference_store, config)
    out = Path(cfg.out) if given(overrides, "out") else Path(cfg.critic.checkpoint) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_curves(results, out / "progress_curves.png", f"critic {critic.critic_id}")
    metrics["critic_id"] = critic.critic_id
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
    print(format_metrics(metrics))
    print(f"metrics: {out / 'metrics.json'}\nprogress curves: {plot}")
    return 0


def format_metrics(m: dict[str, Any]) -> str:
    rows = [
        ("VOC, successful episodes", m["voc_success"]),
        ("VOC, reversed", m["voc_reversed"]),
        ("VOC, failed episodes", m["voc_failed"]),
        (f"sign accuracy ({m['sign_pairs']} pairs >= 10% apart)", m["sign_accuracy"]),
        ("mismatched instruction rejected", m["reject_mismatch"]),
        ("matched instruction wrongly rejected", m["false_reject_matched"]),
        ("done precision", m["done_precision"]),
        ("done recall", m["done_recall"]),
        ("done F1", m["done_f1"]),
    ]
    ref = m.get("reference")
    if ref:
        rows += [
            ("VOC with one reference demo", ref["voc_with_reference"]),
            ("VOC without it", ref["voc_without_reference"]),
        ]
    width = max(len(r[0]) for r in rows)
    head = f"{m['episodes']} episodes ({m['successful']} successful, {m['failed']} failed)"
    return "\n".join([head] + [f"  {name:<{width}}  {value:.3f}" for name, value in rows])


def relabel(overrides: list[str]) -> int:
    from critic.relabel import relabel as run_relabel

    cfg = RELABEL.load(overrides)
    _need(cfg, "the store to relabel and the critic that scores it")
    config = conf.section(cfg, "relabel")
    summary = run_relabel(str(cfg.store), _critic(cfg), config)
    print(summary)
    return 0


def audit(overrides: list[str]) -> int:
    from critic.audit import audit as run_audit

    cfg = AUDIT.load(overrides)
    config = conf.section(cfg, "audit")
    _need(cfg, "the store, and the critic or audit.critic_id=", checkpoint=not config.critic_id)
    critic = _critic(cfg) if cfg.critic.checkpoint else None
    report = run_audit(str(cfg.store), critic, None, config)
    print(report)
    if given(overrides, "out"):
        Path(cfg.out).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0


def curves(overrides: list[str]) -> int:
    """Progress curves of a store's episodes (successful | failed) as one PNG."""
    from critic.evaluate import evaluate as run_eval
    from critic.evaluate import plot_curves

    cfg = CURVES.load(overrides)
    _need(cfg, "the store and the critic that scores it")
    critic = _critic(cfg)
    metrics, results = run_eval(critic, [str(cfg.store)], conf.section(cfg, "critic_eval"))
    out = cfg.out if given(overrides, "out") else "progress_curves.png"
    path = plot_curves(results, out, f"{cfg.store}: critic {critic.critic_id}")
    print(format_metrics(metrics))
    print(f"progress curves: {path}")
    return 0


_CRITIC = {"checkpoint": "critic.checkpoint"}
TRAIN = Command(
    "train critic",
    train,
    reads=("critic_train", "store", "out"),
    usage="Train the compact progress critic on the episodes in store= (comma-separated) into "
    "out= (default critic_train.out).",
)
EVAL = Command(
    "eval critic",
    evaluate,
    reads=("critic", "critic_eval", "store", "reference_store", "out"),
    usage="VOC, sign accuracy, rejection and done F1 of checkpoint= on the held-out store=; "
    "metrics.json and progress_curves.png in out= (default <checkpoint>/eval).",
    aliases=_CRITIC,
)
RELABEL = Command(
    "critic relabel",
    relabel,
    reads=("critic", "relabel", "store"),
    usage="Write rewards/<critic id> for every committed episode of store=.",
    aliases=_CRITIC,
)
AUDIT = Command(
    "critic audit",
    audit,
    reads=("critic", "audit", "store", "out"),
    usage="The critic's verdicts against the recorded outcomes of store=; out= writes JSON.",
    aliases=_CRITIC,
)
CURVES = Command(
    "critic curves",
    curves,
    reads=("critic", "critic_eval", "store", "out"),
    usage="Progress curves of store='s episodes as one PNG (out=, default progress_curves.png).",
    aliases=_CRITIC,
)
COMMANDS = (TRAIN, EVAL, RELABEL, AUDIT, CURVES)
