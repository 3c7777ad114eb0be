"""Auditing a critic against the outcomes people recorded (``dojo critic audit``).

A critic that calls a failed episode done, or gives it high final progress, is the false
positive a policy learns to exploit (reward hacking): those are listed first. Missed successes
are listed too. Independently of outcomes, episodes whose progress stagnates (barely changes for
a long stretch) or regresses (falls well below its best) are flagged for a look.

Values come from relabelled arrays (``rewards/<critic_id>.progress`` / ``.done``) when the store
has them, else the critic is run on the episode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from critic.base import CriticError, ProgressCritic
from critic.config import ProgressMode
from critic.evaluate import check_store_cameras, episode_frames
from policy.schedule import progress_bar


@dataclass
class AuditConfig:
    """``dojo critic audit``: a critic says done when the last frame's done probability reaches
    ``done_threshold`` or its final progress ``progress_threshold``; a stretch of
    ``stagnation_s`` changing less than ``stagnation_eps``, or a fall of ``regress_drop`` below
    the best, is flagged. ``critic_id``: audit the arrays this critic relabelled instead of
    running a critic."""

    critic_id: str = ""
    done_threshold: float = 0.5
    progress_threshold: float = 0.8
    stagnation_s: float = 3.0
    stagnation_eps: float = 0.02
    regress_drop: float = 0.2
    mode: ProgressMode = ProgressMode.chain
    limit: int = 0


@dataclass
class AuditRow:
    episode: str
    instruction: str
    outcome: str
    success: bool
    done: float
    final_progress: float
    verdict: str  # "agree", "false_positive", "false_negative"
    flags: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    store: str
    critic_id: str
    rows: list[AuditRow]

    @property
    def disagreements(self) -> list[AuditRow]:
        return [r for r in self.rows if r.verdict != "agree"]

    @property
    def flagged(self) -> list[AuditRow]:
        return [r for r in self.rows if r.flags]

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "critic_id": self.critic_id,
            "episodes": len(self.rows),
            "false_positives": sum(r.verdict == "false_positive" for r in self.rows),
            "false_negatives": sum(r.verdict == "false_negative" for r in self.rows),
            "flagged": len(self.flagged),
            "rows": [asdict(r) for r in self.rows],
        }

    def __str__(self) -> str:
        fp = [r for r in self.rows if r.verdict == "false_positive"]
        fn = [r for r in self.rows if r.verdict == "false_negative"]
        lines = [
            f"{self.store}: {len(self.rows)} episodes audited with critic {self.critic_id}: "
            f"{len(fp)} false positive(s), {len(fn)} false negative(s), "
            f"{len(self.flagged)} flagged"
        ]
        for title, rows in (
            ("false positives (recorded failure, critic says done: a reward to hack)", fp),
            ("false negatives (recorded success, critic says not done)", fn),
            ("progress stagnates or regresses", self.flagged),
        ):
            if rows:
                lines.append(f"  {title}:")
                for r in rows:
                    flags = f"  [{', '.join(r.flags)}]" if r.flags else ""
                    lines.append(
                        f"    {r.episode}  outcome={r.outcome:<8} done={r.done:.2f} "
                        f"progress={r.final_progress:.2f}  {r.instruction!r}{flags}"
                    )
        return "\n".join(lines)


def flags_for(values: np.ndarray, fps: float, config: AuditConfig) -> list[str]:
    """Stagnation: the progress moves less than ``stagnation_eps`` over a window of
    ``stagnation_s`` before reaching its best; regression: it falls ``regress_drop`` below
    its running best."""
    v = np.asarray(values, dtype=np.float64)
    flags = []
    if v.size == 0:
        return flags
    best = np.maximum.accumulate(v)
    drop = float(np.max(best - v))
    if drop >= config.regress_drop:
        flags.append(f"regresses by {drop:.2f} at step {int(np.argmax(best - v))}")
    win = max(2, round(config.stagnation_s * fps))
    peak = int(np.argmax(v >= v.max() - config.stagnation_eps))
    for s in range(0, max(0, peak - win + 1)):
        seg = v[s : s + win]
        if seg.max() - seg.min() < config.stagnation_eps:
            flags.append(f"stagnates for {config.stagnation_s:g} s from step {s}")
            break
    return flags


def audit(
    store_url: str,
    critic: ProgressCritic | None = None,
    critic_id: str | None = None,
    config: AuditConfig | None = None,
    *,
    progress: bool = True,
) -> AuditReport:
    """Compare the critic's done and final progress with every episode's recorded outcome.
    ``critic_id`` (else ``config.critic_id``): read that critic's relabelled arrays."""
    from episodes.store import EpisodeStore

    config = config or AuditConfig()
    store = EpisodeStore.open(store_url)
    cid = critic_id or config.critic_id or (critic.critic_id if critic is not None else None)
    if cid is None:
        raise CriticError("audit: give a critic checkpoint or the critic_id of relabelled rewards")
    if critic is not None:
        check_store_cameras(store, critic)
    ids = store.episode_ids()
    ids = ids[: config.limit] if config.limit else ids
    rows = []
    fps = store.fps or 10.0
    bar = progress_bar(len(ids), f"audit {store_url}", "episode") if progress else None
    for eid in ids:
        ep = store.read(eid, verify=False)
        values = ep.rewards.get(f"{cid}.progress")
        done = ep.rewards.get(f"{cid}.done")
        if values is None or done is None:
            if critic is None:
                raise CriticError(
                    f"{store_url}: episode {eid} has no rewards/{cid}.progress; relabel it first "
                    "or give the critic checkpoint"
                )
            frames = episode_frames(ep, critic, store_url)
            values, _ = critic.progress(frames, ep.instruction, mode=config.mode)
            done = critic.done_frames({c: f[-1:] for c, f in frames.items()}, ep.instruction)
        said_done = float(done[-1]) >= config.done_threshold or (
            float(values[-1]) >= config.progress_threshold
        )
        if said_done and not ep.success:
            verdict = "false_positive"
        elif ep.success and not said_done:
            verdict = "false_negative"
        else:
            verdict = "agree"
        rows.append(
            AuditRow(
                episode=eid,
                instruction=ep.instruction,
                outcome=ep.outcome,
                success=ep.success,
                done=float(done[-1]),
                final_progress=float(values[-1]),
                verdict=verdict,
                flags=flags_for(values, fps, config),
            )
        )
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return AuditReport(store=store_url, critic_id=cid, rows=rows)
