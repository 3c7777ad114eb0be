"""How good a critic is, measured on held-out episodes (``dojo eval critic``, ``bench/critic.py``).

Metrics (VLAC's, plus what a reward needs):

- **VOC** (value-order correlation): Spearman correlation of the progress curve with time, on
  successful episodes (should be near 1), the same episodes played backwards (should be <= 0:
  a critic that only learned "later frames score higher" fails here), and failed episodes;
- **sign accuracy** of deltas for pairs of a successful episode at least ``min_gap`` apart in
  true (time-normalised) progress, in both orders;
- **rejection** of a mismatched instruction (another instruction of the critic's vocabulary on
  the same frames), and how often a matched one is wrongly rejected;
- **done** precision, recall and F1 of the last frame's done probability against the recorded
  outcome of each episode;
- with a reference store: VOC with one reference demonstration of the same instruction against
  the same critic without it (a task variant left out of training).

Plots: progress curves of successful and failed episodes side by side (PNG).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from critic.base import CriticError, ProgressCritic, Reference, normalize_instruction
from critic.config import ProgressMode
from critic.pairs import progress_label
from critic.value import voc
from policy.schedule import progress_bar


@dataclass
class CriticEvalConfig:
    """``dojo eval critic`` and ``dojo critic curves`` (the metrics are in the module docstring):
    pairs at least ``min_gap`` apart in progress, ``pairs_per_episode`` of them; a done or a
    reject probability above its threshold counts as yes; ``limit`` episodes per store (0: all)."""

    mode: ProgressMode = ProgressMode.chain
    min_gap: float = 0.1
    pairs_per_episode: int = 32
    done_threshold: float = 0.5
    reject_threshold: float = 0.5
    limit: int = 0
    seed: int = 0


@dataclass
class CriticEpisodeResult:
    id: str
    instruction: str
    success: bool
    values: np.ndarray
    done_last: float
    voc: float
    voc_reversed: float = float("nan")
    sign_correct: int = 0
    sign_total: int = 0
    reject_mismatch: list[float] = field(default_factory=list)
    reject_matched: list[float] = field(default_factory=list)


def episode_frames(episode: Any, critic: ProgressCritic, store_url: str = "") -> dict:
    """The critic's cameras of a stored episode, ``(T, H, W, 3)`` each."""
    missing = [c for c in critic.cameras if c not in episode.images]
    if missing:
        raise CriticError(
            f"store {store_url or '?'} episode {episode.id} has no camera(s) {missing} (it has "
            f"{sorted(episode.images)}); critic {critic.critic_id} was trained on "
            f"{list(critic.cameras)}"
        )
    return {c: np.asarray(episode.images[c][:]) for c in critic.cameras}


def check_store_cameras(store: Any, critic: ProgressCritic) -> None:
    have = {c.name: (c.height, c.width) for c in store.cameras}
    missing = [c for c in critic.cameras if c not in have]
    if missing:
        raise CriticError(
            f"store {store.url} has no camera(s) {missing} (it records {sorted(have)}); critic "
            f"{critic.critic_id} was trained on cameras {list(critic.cameras)}"
        )
    for c, size in critic.image_sizes.items():
        if tuple(have[c]) != tuple(size):
            raise CriticError(
                f"store {store.url}: camera '{c}' records {have[c][1]}x{have[c][0]} frames; "
                f"critic {critic.critic_id} was trained on {size[1]}x{size[0]}"
            )


def _gap_pairs(n: int, k: int, min_gap: float, rng: np.random.Generator) -> np.ndarray:
    """Up to ``k`` pairs ``(i, j)``, ``i < j``, at least ``min_gap`` apart in progress."""
    if n < 2:
        return np.zeros((0, 2), dtype=int)
    gap = max(1, int(np.ceil(min_gap * (n - 1))))
    cand = [(i, j) for i in range(n) for j in range(i + gap, n)]
    if not cand:
        return np.zeros((0, 2), dtype=int)
    pick = rng.choice(len(cand), size=min(k, len(cand)), replace=False)
    return np.asarray([cand[p] for p in pick], dtype=int)


def evaluate_episode(
    critic: ProgressCritic,
    episode: Any,
    frames: dict,
    config: CriticEvalConfig,
    rng: np.random.Generator,
    vocab: Sequence[str] = (),
) -> CriticEpisodeResult:
    n = episode.n_steps
    values, _ = critic.progress(frames, episode.instruction, mode=config.mode)
    done = critic.done_frames({c: f[-1:] for c, f in frames.items()}, episode.instruction)
    res = CriticEpisodeResult(
        id=episode.id,
        instruction=episode.instruction,
        success=bool(episode.success),
        values=values,
        done_last=float(done[0]),
        voc=voc(values),
    )
    if not episode.success or n < 3:
        return res
    rev = {c: f[::-1].copy() for c, f in frames.items()}
    rev_values, _ = critic.progress(rev, episode.instruction, mode=config.mode)
    res.voc_reversed = voc(rev_values)
    pairs = _gap_pairs(n, config.pairs_per_episode, config.min_gap, rng)
    if len(pairs):
        flip = rng.random(len(pairs)) < 0.5
        ia = np.where(flip, pairs[:, 1], pairs[:, 0])
        ib = np.where(flip, pairs[:, 0], pairs[:, 1])
        want = np.sign(progress_label(ib, n) - progress_label(ia, n))
        with_reject = _has_reject(critic)
        out = critic.pairs_within(frames, episode.instruction, ia, ib, with_reject=with_reject)
        res.sign_correct = int(np.sum(np.sign(out["delta"]) == want))
        res.sign_total = len(pairs)
        others = [
            v
            for v in vocab
            if normalize_instruction(v) != normalize_instruction(episode.instruction)
        ]
        if with_reject and others:
            res.reject_matched = out["reject"].tolist()
            other = str(rng.choice(others))
            mis = critic.pairs_within(frames, other, pairs[:, 0], pairs[:, 1], with_reject=True)
            res.reject_mismatch = mis["reject"].tolist()
    return res


def _has_reject(critic: ProgressCritic) -> bool:
    return type(critic).reject_frames is not ProgressCritic.reject_frames


def summarize(results: Sequence[CriticEpisodeResult], config: CriticEvalConfig) -> dict[str, Any]:
    succ = [r for r in results if r.success]
    fail = [r for r in results if not r.success]

    def mean(xs) -> float:
        xs = [x for x in xs if np.isfinite(x)]
        return float(np.mean(xs)) if xs else float("nan")

    pred = np.array([r.done_last >= config.done_threshold for r in results])
    true = np.array([r.success for r in results])
    tp = int(np.sum(pred & true))
    fp = int(np.sum(pred & ~true))
    fn = int(np.sum(~pred & true))
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = (
        2 * precision * recall / (precision + recall)
        if np.isfinite(precision) and np.isfinite(recall) and precision + recall > 0
        else float("nan")
    )
    sign_total = sum(r.sign_total for r in succ)
    mism = [x for r in succ for x in r.reject_mismatch]
    matched = [x for r in succ for x in r.reject_matched]
    return {
        "episodes": len(results),
        "successful": len(succ),
        "failed": len(fail),
        "voc_success": mean(r.voc for r in succ),
        "voc_success_min": float(min((r.voc for r in succ), default=float("nan"))),
        "voc_reversed": mean(r.voc_reversed for r in succ),
        "voc_failed": mean(r.voc for r in fail),
        "final_progress_success": mean(r.values[-1] for r in succ),
        "final_progress_failed": mean(r.values[-1] for r in fail),
        "sign_accuracy": sum(r.sign_correct for r in succ) / sign_total
        if sign_total
        else float("nan"),
        "sign_pairs": sign_total,
        "reject_mismatch": float(np.mean(np.array(mism) >= config.reject_threshold))
        if mism
        else float("nan"),
        "false_reject_matched": float(np.mean(np.array(matched) >= config.reject_threshold))
        if matched
        else float("nan"),
        "reject_pairs": len(mism),
        "done_precision": precision,
        "done_recall": recall,
        "done_f1": f1,
        "done_confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": int(np.sum(~pred & ~true))},
    }


def evaluate(
    critic: ProgressCritic,
    stores: Sequence[str],
    config: CriticEvalConfig | None = None,
    *,
    progress: bool = True,
) -> tuple[dict[str, Any], list[CriticEpisodeResult]]:
    """Evaluate on every committed episode of ``stores`` (at most ``config.limit`` each)."""
    from episodes.store import EpisodeStore

    config = config or CriticEvalConfig()
    rng = np.random.default_rng(config.seed)
    results: list[CriticEpisodeResult] = []
    for url in stores:
        store = EpisodeStore.open(url)
        check_store_cameras(store, critic)
        ids = store.episode_ids()
        ids = ids[: config.limit] if config.limit else ids
        vocab = list(getattr(critic, "instructions", []) or [])
        if not vocab:
            vocab = sorted({store.info(i)["instruction"] for i in ids})
        bar = progress_bar(len(ids), f"evaluating {url}", "episode") if progress else None
        for eid in ids:
            ep = store.read(eid, verify=False)
            frames = episode_frames(ep, critic, url)
            results.append(evaluate_episode(critic, ep, frames, config, rng, vocab))
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    if not results:
        raise CriticError(f"no committed episodes to evaluate in {list(stores)}")
    return summarize(results, config), results


def reference_comparison(
    critic: ProgressCritic,
    store_url: str,
    config: CriticEvalConfig | None = None,
    *,
    k: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """VOC of each successful episode with one reference demonstration (another successful
    episode of the same instruction) and without it."""
    from episodes.store import EpisodeStore

    config = config or CriticEvalConfig()
    store = EpisodeStore.open(store_url)
    check_store_cameras(store, critic)
    succ = [i for i in store.episode_ids() if store.info(i).get("success")]
    by_instr: dict[str, list[str]] = {}
    for i in succ:
        by_instr.setdefault(normalize_instruction(store.info(i)["instruction"]), []).append(i)
    with_ref, without, rev_with, rev_without, used = [], [], [], [], []
    scored = sum(len(g) - 1 for g in by_instr.values() if len(g) >= 2)
    bar = progress_bar(scored, "reference comparison", "episode") if progress else None
    for group in by_instr.values():
        if len(group) < 2:
            continue
        ref_ep = store.read(group[0], verify=False)
        reference = Reference.from_episode(ref_ep, k=k, cameras=critic.cameras)
        for eid in group[1:]:
            ep = store.read(eid, verify=False)
            frames = episode_frames(ep, critic, store_url)
            rev = {c: f[::-1].copy() for c, f in frames.items()}
            v_ref, _ = critic.progress(frames, ep.instruction, reference, mode=config.mode)
            v_no, _ = critic.progress(frames, ep.instruction, mode=config.mode)
            r_ref, _ = critic.progress(rev, ep.instruction, reference, mode=config.mode)
            r_no, _ = critic.progress(rev, ep.instruction, mode=config.mode)
            with_ref.append(voc(v_ref))
            without.append(voc(v_no))
            rev_with.append(voc(r_ref))
            rev_without.append(voc(r_no))
            used.append(eid)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    if not used:
        raise CriticError(
            f"{store_url}: no instruction with two successful episodes (a reference and one to "
            "score)"
        )
    return {
        "episodes": len(used),
        "voc_with_reference": float(np.mean(with_ref)),
        "voc_without_reference": float(np.mean(without)),
        "voc_reversed_with_reference": float(np.mean(rev_with)),
        "voc_reversed_without_reference": float(np.mean(rev_without)),
    }


def plot_curves(results: Sequence[CriticEpisodeResult], path: str | Path, title: str = "") -> Path:
    """Progress curves, successful episodes left, failed right, against normalised time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, ok, name in ((axes[0], True, "successful"), (axes[1], False, "failed")):
        sel = [r for r in results if r.success == ok]
        for r in sel:
            t = np.linspace(0, 1, len(r.values))
            ax.plot(t, r.values, lw=1, alpha=0.7)
        vocs = [r.voc for r in sel]
        mean = f", mean VOC {np.mean(vocs):.2f}" if vocs else ""
        ax.set_title(f"{name} ({len(sel)}{mean})")
        ax.set_xlabel("time (fraction of episode)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("progress")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)
    return out
