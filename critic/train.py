"""Training the compact critic on recorded episodes (VLAC's pair recipe, ``critic.pairs``).

Each step draws a batch of labelled pairs (forward, reversed, mismatched instruction,
stagnation, failed) and, on a sub-batch, pairs scored against a reference demonstration of the
same instruction, so one set of weights works with and without a reference. Losses: squared
error of the delta, binary cross-entropy of reject and done, squared error of the auxiliary
absolute progress, and of the position along the reference. Frames get a small random shift
and brightness change (the held-out scenes are other seeds, never the same pixels).

Why a CPU budget: the demo trains the critic on its own recordings in about two minutes; the
benchmark trains longer on more episodes. Both call :func:`train`.

Several processes (``accelerate launch --multi_gpu --num_processes N -m dojo.cli train critic
...``; CPU processes over gloo, where the critic trains): every process starts from the main
process's weights, draws its pairs with its own random stream (pairs are drawn from a space
far larger than any batch, so independent streams repeat a pair no more often than one
process's larger batch would), averages its gradients with the others' every step (the loss
goes through several of the network's methods, so DDP's ``forward`` hook would not see it), and
stops when the main process says so (:mod:`policy.distributed`); a non-finite loss on any
process stops them all. Only the main process writes the checkpoint and prints.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from critic.base import CriticError
from critic.config import CriticTrainConfig
from critic.models.compact import META, CompactConfig, CompactCritic, CompactCriticNet
from critic.pairs import EpisodeIndex, PairBatch, PairSampler
from policy.data import random_shift
from policy.distributed import AgreedBudget, Processes, process_seed
from policy.schedule import Budget, BudgetBar, warmup_cosine


def augment(x: torch.Tensor, gen: torch.Generator, shift: int = 2) -> torch.Tensor:
    """Random shift (:func:`policy.data.random_shift`) and brightness/contrast jitter of
    ``(B, 3, h, w)``."""
    b = x.shape[0]
    out = random_shift(x, shift, generator=gen)
    gain = 1.0 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.2
    bias = (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.1
    return (out * gain + bias).clamp_(0.0, 1.0)


def _images(index: EpisodeIndex, rows: np.ndarray, cameras, gen=None) -> dict:
    out = {}
    for c in cameras:
        t = torch.from_numpy(index.frames[c][rows]).permute(0, 3, 1, 2).float().div_(255.0)
        out[c] = augment(t, gen) if gen is not None else t
    return out


def _masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    m = ~torch.isnan(target)
    return F.mse_loss(pred[m], target[m]) if m.any() else pred.sum() * 0.0


def _masked_bce(logit: torch.Tensor, target: torch.Tensor, pos_weight: float = 1.0):
    m = ~torch.isnan(target)
    if not m.any():
        return logit.sum() * 0.0
    pw = torch.tensor(pos_weight) if pos_weight != 1.0 else None
    return F.binary_cross_entropy_with_logits(logit[m], target[m], pos_weight=pw)


def batch_loss(
    critic: CompactCritic,
    index: EpisodeIndex,
    batch: PairBatch,
    gen: torch.Generator | None,
    ref_rows: np.ndarray | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch of pairs (optionally against a reference)."""
    net, cams = critic.net, critic.cfg.cameras
    text = critic._text(batch.texts)
    img_a, img_b = _images(index, batch.ia, cams, gen), _images(index, batch.ib, cams, gen)
    e_a, e_b = net.embed(img_a, text), net.embed(img_b, text)
    ref = align = None
    if ref_rows is not None:
        k = len(ref_rows)
        neutral = critic.cfg.ref_align == "neutral"
        ref_text = net.neutral_text(k) if neutral else critic._text([batch.texts[0]] * k)
        ref = net.embed(_images(index, ref_rows, cams, gen), ref_text)[None]
        if neutral:
            blank = net.neutral_text(len(batch))
            align = (net.embed(img_a, blank), net.embed(img_b, blank))
    delta, reject, pos = net.pair_out(e_a, e_b, ref, align)
    t = {k: torch.from_numpy(getattr(batch, k)) for k in ("delta", "reject", "done_a", "done_b")}
    p = torch.from_numpy(np.stack([batch.p_a, batch.p_b], 1))
    parts = {
        "delta": 4.0 * _masked_mse(delta, t["delta"]),
        "reject": 0.5 * _masked_bce(reject, t["reject"], pos_weight=3.0),
        "done": 0.5
        * (
            _masked_bce(net.done_logit(e_a), t["done_a"])
            + _masked_bce(net.done_logit(e_b), t["done_b"])
        ),
        "value": 0.5 * _masked_mse(torch.stack([net.value(e_a), net.value(e_b)], 1), p),
    }
    if pos is not None:
        parts["align"] = _masked_mse(pos, p)
    loss = sum(parts.values())
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def train(
    config: CriticTrainConfig,
    index: EpisodeIndex | None = None,
    *,
    text_encoder: Any = None,
    progress: bool = True,
) -> CompactCritic:
    """Train a compact critic and write its checkpoint to ``config.out`` (see the module
    docstring for several processes)."""
    config.validate()
    procs = Processes.current(cpu=True)
    progress = progress and procs.is_main
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    if index is None:
        index = EpisodeIndex.from_stores(
            config.stores,
            config.cameras,
            config.image_size,
            limit=config.limit or None,
            progress=progress,
        )
    missing = [c for c in config.cameras if c not in index.frames]
    if missing:
        raise CriticError(f"train critic: the episodes have no camera(s) {missing}")
    cfg = CompactConfig(
        name=config.name,
        cameras=list(config.cameras),
        camera_sizes={
            c: list(index.camera_sizes.get(c, config.image_size)) for c in config.cameras
        },
        image_size=list(config.image_size),
        widths=list(config.widths),
        embed_dim=config.embed_dim,
        ref_frames=config.ref_frames,
        ref_align=str(config.ref_align),
    )
    sampler = PairSampler(index, config.pairs, seed=process_seed(config.seed, procs))
    critic = CompactCritic(
        CompactCriticNet(cfg), meta={"instructions": sampler.vocab}, text_encoder=text_encoder
    )
    critic.instructions = list(sampler.vocab)
    critic.net.set_text_stats(critic._text(sampler.vocab))
    net = critic.net.train()
    procs.broadcast_parameters(net)  # one starting point for every process
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    budget = Budget(config.steps, config.seconds, config.warmup)
    agreed = AgreedBudget(budget, procs)
    gen = torch.Generator().manual_seed(process_seed(config.seed, procs))
    t0 = time.monotonic()
    pairs = 0
    running: dict[str, float] = {}
    history = []
    s = 0
    bar = BudgetBar(budget, "train critic") if progress else None
    while not (decision := agreed.check(s, time.monotonic() - t0)).stop:
        scale = warmup_cosine(
            s, budget.fraction(s, decision.elapsed), warmup=budget.warmup, floor=0.05
        )
        for group in opt.param_groups:
            group["lr"] = config.lr * scale
        batch = sampler.sample(config.batch_size)
        loss, parts = batch_loss(critic, index, batch, gen)
        pairs += len(batch)
        if config.ref_batch > 0:
            group = sampler.reference_group(config.ref_batch, config.ref_frames)
            if group is not None:
                ref_rows, ref_batch = group
                ref_loss, ref_parts = batch_loss(critic, index, ref_batch, gen, ref_rows)
                loss = loss + ref_loss
                parts.update({f"ref_{k}": v for k, v in ref_parts.items()})
                pairs += len(ref_batch)
        if procs.any(not torch.isfinite(loss)):
            raise CriticError(f"train critic: loss is {float(loss)} at step {s}; lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        procs.average_gradients(net.parameters())
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        if s == 0:
            history.append({"step": 1, **running})
        s += 1
        if s % config.log_every == 0 or s == config.steps:
            history.append({"step": s, "lr": config.lr * scale, **running})
        if bar is not None:
            rate = pairs / max(time.monotonic() - t0, 1e-9)
            bar.update(
                s, time.monotonic() - t0, loss=f"{running['loss']:.3f}", pairs_s=f"{rate:.0f}"
            )
    if bar is not None:
        bar.close()
    net.eval()
    seconds = time.monotonic() - t0
    summary = {
        "train": {
            "config": asdict(config),
            "episodes": index.n_episodes,
            "successful": int(index.success.sum()),
            "seconds": seconds,
            "pairs_per_s": pairs / max(seconds, 1e-9),
            "final": running,
            "history": history,
        }
    }
    if procs.is_main:
        critic_id = critic.save(Path(config.out), summary)
        if progress:
            print(f"critic {critic_id} written to {config.out} ({seconds:.0f} s)", file=sys.stderr)
    procs.barrier()
    if not procs.is_main:  # the same weights: take the id the main process wrote
        meta = json.loads((Path(config.out) / META).read_text())
        critic.meta, critic.critic_id, critic.version = meta, meta["critic_id"], meta["version"]
    return critic
