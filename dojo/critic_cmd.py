"""``dojo train critic``, ``dojo eval critic`` and ``dojo critic relabel|audit|curves``.

    dojo train critic store=demos.zarr[,more.zarr] out=runs/critic [steps=1500 batch_size=32
                      cameras=front,wrist image_size=72,96 pairs.mismatch=0.15 ...]
    dojo eval critic critic=runs/critic store=heldout.zarr [out=runs/critic/eval
                     reference_store=variant.zarr mode=chain limit=0]
    dojo critic relabel store=S critic=runs/critic [reward=delta|shaping gamma=0.99 overwrite=false]
    dojo critic audit store=S (critic=runs/critic | critic_id=ID) [json=audit.json]
    dojo critic curves store=S critic=runs/critic out=curves.png [limit=20]

These are offline tools: they take ``key=value`` arguments checked against the dataclasses of
``critic`` (a misspelt key names the nearest valid one), not the node graph's hydra config.
The live critic node is configured by the graph's ``critic`` group (``dojo/conf/critic/``:
``compact``, ``vlm``). ``critic=vlm:<model dir>`` here loads the VLM backend.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import sys
import typing
from pathlib import Path
from typing import Any

USAGE = __doc__


class ArgError(ValueError):
    """A bad ``key=value`` argument; the message names the key."""


def _convert(key: str, text: str, kind: Any) -> Any:
    origin = typing.get_origin(kind)
    try:
        if kind is bool:
            low = text.lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return low in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if origin is list:
            (inner,) = typing.get_args(kind) or (str,)
            return [_convert(key, part, inner) for part in text.split(",") if part]
        return text
    except ValueError:
        raise ArgError(f"'{key}={text}': not a valid {getattr(kind, '__name__', kind)}") from None


def parse_into(obj: Any, overrides: list[str], aliases: dict[str, str] | None = None) -> Any:
    """Apply ``key=value`` (``a.b=value`` for a nested dataclass) to the dataclass ``obj``."""
    aliases = aliases or {}
    for item in overrides:
        if "=" not in item:
            raise ArgError(f"argument {item!r} is not key=value")
        key, text = item.split("=", 1)
        key = aliases.get(key, key)
        target, parts = obj, key.split(".")
        for part in parts[:-1]:
            target = _field(target, part, key)
        name = parts[-1]
        _field(target, name, key)
        hints = typing.get_type_hints(type(target))
        setattr(target, name, _convert(key, text, hints[name]))
    return obj


def _field(target: Any, name: str, key: str) -> Any:
    names = [f.name for f in dataclasses.fields(target)]
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ArgError(f"unknown argument '{key}'{hint} (valid: {names})")
    return getattr(target, name)


def _threads() -> None:
    """torch threads as every dojo command sets them (``policy.train.default_threads``: torch's
    default busy-waits beside other work), unless OMP_NUM_THREADS says otherwise."""
    import torch

    from policy.train import default_threads

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 0) or default_threads())


def _fail(what: str, err: Exception) -> int:
    print(f"dojo {what}: {err}", file=sys.stderr)
    return 2


@dataclasses.dataclass
class EvalArgs:
    critic: str = ""
    store: list[str] = dataclasses.field(default_factory=list)
    out: str = ""
    reference_store: str = ""
    mode: str = "chain"
    limit: int = 0
    min_gap: float = 0.1
    done_threshold: float = 0.5
    seed: int = 0


def train(overrides: list[str]) -> int:
    """``dojo train critic``."""
    from critic.base import CriticError
    from critic.train import TrainConfig
    from critic.train import train as train_critic

    try:
        cfg = parse_into(TrainConfig(), overrides, {"store": "stores"})
        cfg.validate()
        _threads()
        critic = train_critic(cfg)
    except (ArgError, CriticError) as err:
        return _fail("train critic", err)
    print(f"critic {critic.critic_id} written to {cfg.out}")
    return 0


def evaluate(overrides: list[str]) -> int:
    """``dojo eval critic``: metrics as JSON, progress curves as PNG."""
    from critic.base import CriticError
    from critic.evaluate import EvalConfig, plot_curves, reference_comparison
    from critic.evaluate import evaluate as run_eval
    from critic.registry import load_critic

    try:
        args = parse_into(EvalArgs(), overrides)
        if not args.critic or not args.store:
            raise ArgError("give critic=<checkpoint> and store=<held-out store>")
        _threads()
        critic = load_critic(args.critic)
        config = EvalConfig(
            mode=args.mode,
            min_gap=args.min_gap,
            done_threshold=args.done_threshold,
            limit=args.limit,
            seed=args.seed,
        )
        metrics, results = run_eval(critic, args.store, config)
        if args.reference_store:
            metrics["reference"] = reference_comparison(critic, args.reference_store, config)
    except (ArgError, CriticError) as err:
        return _fail("eval critic", err)
    out = Path(args.out or Path(args.critic) / "eval")
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


@dataclasses.dataclass
class RelabelArgs:
    store: str = ""
    critic: str = ""
    reward: str = "delta"
    gamma: float = 0.99
    mode: str = "chain"
    overwrite: bool = False
    limit: int = 0


@dataclasses.dataclass
class AuditArgs:
    store: str = ""
    critic: str = ""
    critic_id: str = ""
    json: str = ""
    done_threshold: float = 0.5
    progress_threshold: float = 0.8
    limit: int = 0


@dataclasses.dataclass
class CurvesArgs:
    store: str = ""
    critic: str = ""
    out: str = "progress_curves.png"
    mode: str = "chain"
    limit: int = 0


def relabel(overrides: list[str]) -> int:
    from critic.base import CriticError
    from critic.registry import load_critic
    from critic.relabel import RelabelConfig
    from critic.relabel import relabel as run_relabel
    from episodes.store import StoreError

    try:
        args = parse_into(RelabelArgs(), overrides)
        if not args.store or not args.critic:
            raise ArgError("give store=<episode store> and critic=<checkpoint>")
        config = RelabelConfig(args.reward, args.gamma, args.mode, args.overwrite, args.limit)
        config.validate()
        _threads()
        summary = run_relabel(args.store, load_critic(args.critic), config)
    except (ArgError, CriticError, StoreError) as err:
        return _fail("critic relabel", err)
    print(summary)
    return 0


def audit(overrides: list[str]) -> int:
    from critic.audit import AuditConfig
    from critic.audit import audit as run_audit
    from critic.base import CriticError
    from critic.registry import load_critic
    from episodes.store import StoreError

    try:
        args = parse_into(AuditArgs(), overrides)
        if not args.store or not (args.critic or args.critic_id):
            raise ArgError("give store=<episode store> and critic=<checkpoint> or critic_id=<id>")
        _threads()
        critic = load_critic(args.critic) if args.critic else None
        config = AuditConfig(
            done_threshold=args.done_threshold,
            progress_threshold=args.progress_threshold,
            limit=args.limit,
        )
        report = run_audit(args.store, critic, args.critic_id or None, config)
    except (ArgError, CriticError, StoreError) as err:
        return _fail("critic audit", err)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0


def curves(overrides: list[str]) -> int:
    """Progress curves of a store's episodes (successful | failed) as one PNG."""
    from critic.base import CriticError
    from critic.evaluate import EvalConfig, plot_curves
    from critic.evaluate import evaluate as run_eval
    from critic.registry import load_critic
    from episodes.store import StoreError

    try:
        args = parse_into(CurvesArgs(), overrides)
        if not args.store or not args.critic:
            raise ArgError("give store=<episode store> and critic=<checkpoint>")
        _threads()
        critic = load_critic(args.critic)
        metrics, results = run_eval(
            critic, [args.store], EvalConfig(mode=args.mode, limit=args.limit)
        )
    except (ArgError, CriticError, StoreError) as err:
        return _fail("critic curves", err)
    path = plot_curves(results, args.out, f"{args.store}: critic {critic.critic_id}")
    print(format_metrics(metrics))
    print(f"progress curves: {path}")
    return 0


SUBCOMMANDS = {"relabel": relabel, "audit": audit, "curves": curves}


def main(argv: list[str]) -> int:
    """``dojo critic <relabel|audit|curves> key=value ...``."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            near = difflib.get_close_matches(argv[0], list(SUBCOMMANDS), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            print(f"dojo critic: unknown command '{argv[0]}'{hint}", file=sys.stderr)
            print(USAGE, file=sys.stderr)
            return 2
        print(USAGE)
        return 0
    return SUBCOMMANDS[argv[0]](argv[1:])


def dispatch(argv: list[str]) -> int:
    """From ``dojo.cli``: ``train critic ...``, ``eval critic ...`` or ``critic ...``."""
    if argv[:2] == ["train", "critic"]:
        return train(argv[2:])
    if argv[:2] == ["eval", "critic"]:
        return evaluate(argv[2:])
    return main(argv[1:])
