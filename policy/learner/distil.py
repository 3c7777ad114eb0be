"""``learner.actor=distil``: practice folded into the VLA's own weights (filtered distillation).

Why a fourth actor: every actor on the frozen features (``residual``, ``awac``, ``rerank``)
left the autonomous policy at or below its start (bench/README.md, ``practice.py``): a small
head over pooled features cannot move where the grasp goes wrong, and its Q over a chunk is
flat on a few thousand transitions. What made the base policy good was imitation data of the
right kind (demonstrations with a wobble, so it sees off-path states and the way back). This
actor adds more of that data where the policy itself goes, and fine-tunes the whole VLA on it:
the person's corrections in the states the policy reaches (HG-DAgger; HIL-SERL puts every
intervention in the prior data), the policy's own chunks that led somewhere (success-filtered
self-imitation, the binary form of RECAP's advantage-conditioned distillation and of AWR), and
the demonstrations it started from (stage 1 of the graded protocol, RLPD's prior data).

**What is imitated**, per recorded step (a weight on how often it is drawn; 0: never):

- ``SCRIPT`` (demonstrations): 1;
- ``HUMAN`` (the person): ``intervention_weight``, in every episode, success or not;
- ``POLICY``: with ``reward=sparse``, the steps of successful episodes (1); with
  ``reward=critic``, also the steps of failed episodes up to the frame of highest anchored
  progress whose next chunk gains at least ``distil_min_progress`` (the critic's advantage,
  thresholded: the part of a failure before it went wrong). The ``distil_pre_takeover_s``
  before a takeover are never imitated (the steps the critic should learn to score low); nor are
  ``HOLD`` steps. A critic that fails or returns NaN leaves the failed episode's policy steps
  out and is counted; the critic audit of :class:`policy.learner.learner.Learner` falls back to
  sparse when the critic's progress diverges from outcomes.

**Updates**: ``distil_steps_per_episode`` optimiser steps of :class:`policy.train.Trainer` (its
loss, augmentation and batch) are credited per committed episode with policy steps, and run in
rounds of at least ``distil_round`` steps, at a constant ``distil_lr`` continuing from the
checkpoint's weights and normalisation (a restarted cosine at the SFT's peak rate undid the
start in an earlier measurement). Practice episodes are kept in memory at the model's input
size, at most ``buffer_seconds`` of robot time (the oldest practice episode goes first;
demonstrations stay).

**Checkpoints** are plain compact VLA checkpoints (``policy.compact`` format), under
``<out>/checkpoints/<steps:08d>/`` written under a temporary name and renamed, then
``latest.json`` replaced: what the policy node hot-swaps like any other compact checkpoint, and
what ``dojo eval policy`` evaluates. Restarted, it resumes the trainer's state (weights,
optimiser, step) from ``<out>/trainer`` and re-reads the store.

Compact VLA only: a LeRobot base practises with the actors on frozen features; refused here
with the key named.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from policy.data import DemoDataset, DemoEpisode, resize_frames
from policy.learner.config import LearnerConfig, LearnerError, RewardSource
from policy.learner.features import frozen_base
from policy.learner.learner import LATEST, Learner
from policy.learner.replay import EpisodeReport, episode_joint_names
from robot.schema import ControlSource

POLICY, HUMAN, SCRIPT, HOLD = (
    int(ControlSource.POLICY),
    int(ControlSource.HUMAN),
    int(ControlSource.SCRIPT),
    int(ControlSource.HOLD),
)


def imitation_weights(
    control_source: np.ndarray,
    success: bool,
    config: LearnerConfig,
    fps: float,
    potential: np.ndarray | None = None,
) -> np.ndarray:
    """``(T,)`` how often each recorded step is imitated (see the module docstring)."""
    src = np.asarray(control_source).astype(np.int64)
    n = len(src)
    w = np.zeros(n, dtype=np.float64)
    w[src == SCRIPT] = 1.0
    w[src == HUMAN] = config.intervention_weight
    own = src == POLICY
    if success:
        w[own] = 1.0
    elif potential is not None and config.reward == RewardSource.critic and n > 1:
        phi = np.asarray(potential, dtype=np.float64)
        if np.isfinite(phi).all():
            peak = int(np.argmax(phi))
            ahead = phi[np.minimum(np.arange(n) + config.chunk_steps, n - 1)]
            gains = (ahead - phi) >= config.distil_min_progress
            w[own & gains & (np.arange(n) < peak)] = 1.0
    # the policy's steps just before each takeover: what went wrong, never imitated
    pre = max(round(config.distil_pre_takeover_s * fps), 0)
    takeovers = np.flatnonzero((src[1:] == HUMAN) & (src[:-1] == POLICY)) + 1
    for t in takeovers:
        lo = max(0, t - pre)
        w[lo:t][own[lo:t]] = 0.0
    w[src == HOLD] = 0.0
    return w


class DistilLearner(Learner):
    """The learner of ``learner.actor=distil`` (same calls as :class:`Learner`: ``ingest``,
    ``follow``, ``train``, ``save``). ``policy``: the compact VLA being practised; it is trained
    in place, so in process the policy that drives is always the latest."""

    continuous = False  # trains on credit per episode, never on a fixed set round after round

    def __init__(self, policy, config: LearnerConfig, **kwargs) -> None:
        from policy.compact import CompactVLAPolicy

        if not isinstance(policy, CompactVLAPolicy):
            raise LearnerError(
                f"learner.actor=distil fine-tunes the compact VLA's weights; {policy.describe()} "
                "practises with learner.actor=residual|awac|rerank"
            )
        self.policy = policy
        self.trainer = None
        self.data: DemoDataset | None = None
        self._practice_steps: list[int] = []  # imitated steps of each practice episode kept
        self._practice_at: list[int] = []  # and where it is in the data set
        self._counts: list[tuple[int, int]] = []  # per data set episode: (prior, own) steps
        self._distil_s = 0.0
        super().__init__(frozen_base(policy), config, **kwargs)

    # -- data --------------------------------------------------------------------------------

    def ingest(self, episodes) -> list[EpisodeReport]:
        reports = []
        for ep in episodes:
            report = EpisodeReport.of(ep)
            src = np.asarray(ep.control_source).astype(np.int64)
            potential = None
            if (src == POLICY).any() and not ep.success:
                try:
                    potential, done = self._potential(ep)
                except Exception as err:  # a critic failure leaves out the failure's own steps
                    self.status.critic_failures += 1
                    self._log(f"episode {ep.id}: critic failed ({err}); its own steps left out")
                if potential is not None:
                    if not np.isfinite(potential).all():
                        report.rewards.excluded = int((~np.isfinite(potential)).sum())
                    self._audit(ep, potential, done)
            elif (src == POLICY).any() and self.config.reward == RewardSource.critic:
                try:  # successes are judged too, so the audit sees both outcomes
                    potential, done = self._potential(ep)
                    self._audit(ep, potential, done)
                except Exception as err:
                    self.status.critic_failures += 1
                    self._log(f"episode {ep.id}: critic failed ({err})")
                potential = None
            weight = imitation_weights(src, bool(ep.success), self.config, self.fps, potential)
            usable = weight > 0
            report.transitions = int(usable.sum())
            report.prior = int((usable & np.isin(src, (SCRIPT, HUMAN))).sum())
            report.online = int((usable & (src == POLICY)).sum())
            report.rewards.labelled = len(src)
            self.status.rewards.add(report.rewards)
            if usable[:-1].any():
                counts = (report.prior, report.online)
                self._add(ep, usable, weight, (src == POLICY).any(), counts)
            if (src == POLICY).any():
                self._credit += self.config.distil_steps_per_episode
            self.status.episodes += 1
            reports.append(report)
        kept = self._kept_counts()
        self.status.prior, self.status.online = int(kept[0]), int(kept[1])
        if self._relabel_s > 0:
            self.status.relabel_frames_per_s = self._relabel_frames / self._relabel_s
        self.reports += reports
        return reports

    def _kept_counts(self) -> np.ndarray:
        """Imitated steps kept, ``(demonstrator and person, policy)``."""
        return sum((np.asarray(c) for c in self._counts), np.zeros(2, dtype=np.int64))

    def _add(self, ep, usable, weight, practice: bool, counts: tuple[int, int]) -> None:
        if episode_joint_names(ep, self.base) != tuple(self.policy.joint_names):
            raise LearnerError(f"episode {ep.id}: joints do not match the policy's")
        size = tuple(self.policy.input_size)
        images = {c: resize_frames(np.asarray(ep.images[c][:]), size) for c in self.policy.cameras}
        demo = DemoEpisode(
            ep.instruction,
            np.asarray(ep.joint_pos, np.float32),
            np.asarray(ep.action, np.float32),
            images,
            usable,
            weight,
        )
        if self.data is None:
            self._start(demo)
        else:
            self.data.add(demo)
        self._counts.append(counts)
        if practice:
            self._practice_steps.append(int(usable.sum()))
            self._practice_at.append(len(self.data.episodes) - 1)
            self._bound()
        if self.trainer is not None:
            self.trainer.refresh_sampler()

    def _bound(self) -> None:
        """Drop the oldest practice episodes beyond ``buffer_seconds`` of robot time."""
        limit = int(self.config.buffer_seconds * self.fps)
        while sum(self._practice_steps) > limit and len(self._practice_steps) > 1:
            i = self._practice_at.pop(0)
            del self.data.episodes[i]
            del self._counts[i]
            self._practice_steps.pop(0)
            self._practice_at = [j - 1 if j > i else j for j in self._practice_at]
        self.data._reindex()

    def _start(self, first: DemoEpisode) -> None:
        """The data set and the trainer, on the first usable episode (a trainer needs data)."""
        from policy.config import PolicyTrainConfig
        from policy.train import Trainer

        data = DemoDataset.of(
            [first], cameras=self.policy.cameras, horizon=self.policy.horizon, fps=self.fps
        )
        self.data = data
        c = self.config
        out = (self.out / "trainer") if self.out is not None else Path(_scratch())
        tcfg = PolicyTrainConfig(
            model=self.policy.config,
            stores=[],
            out=str(out),
            steps=0,
            seconds=0.0,
            lr=c.distil_lr,
            lr_floor=1.0,
            warmup=0,
            checkpoint_every=0,
            log_every=max(c.distil_round // 4, 1),
            seed=c.seed,
            threads=c.distil_threads,
            progress=False,
        )
        self.trainer = Trainer(
            tcfg,
            joint_names=list(self.policy.joint_names),
            cameras=list(self.policy.cameras),
            text=self.policy.text,
            dataset=data,
        )
        model = self.trainer._unwrapped()
        if self.trainer.step == 0:  # a fresh start: the base's weights and normalisation
            model.load_state_dict(self.policy.model.state_dict())
        self.policy.model = model.eval()  # one module: the driving policy is the trained one

    # -- training ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.trainer is not None

    def train(self, updates: int | None = None) -> dict[str, float]:
        """Run ``updates`` optimiser steps (default: the credit of the episodes since the last
        round, once it reaches ``distil_round``)."""
        if not self.ready:
            return {}
        if updates is None:
            if self._credit < self.config.distil_round:
                return {}
            updates = int(self._credit)
            self._credit -= updates
        if updates <= 0:
            return {}
        t0 = time.perf_counter()
        tr = self.trainer
        tr.cfg.steps = tr.step + updates
        summary = tr.run()
        self.policy.model.eval()
        self._distil_s += time.perf_counter() - t0
        self._update_s = self._distil_s
        self.status.updates = int(tr.step)
        self.status.updates_per_s = tr.step / max(self._distil_s, 1e-9)
        self._since_checkpoint += updates
        return {"loss": float(summary.get("final_loss") or float("nan"))}

    def checkpoint_due(self) -> bool:
        return self.trainer is not None and self._since_checkpoint > 0

    # -- checkpoints -------------------------------------------------------------------------

    def save(self) -> Path:
        """Publish the trainer's latest weights as a compact checkpoint (atomically)."""
        if self.out is None or self.trainer is None:
            raise LearnerError("the learner has no output directory or nothing trained yet")
        if not (self.out / "trainer" / "checkpoint").exists():  # each round's run() saves it
            self.trainer.save()
        root = self.out / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"{int(self.trainer.step):08d}"
        return self._publish(
            final, lambda tmp: shutil.copytree(self.out / "trainer" / "checkpoint", tmp)
        )

    def _resume(self) -> None:
        latest = self.out / LATEST
        if not latest.exists():
            return
        path = Path(json.loads(latest.read_text())["checkpoint"])
        self.status.checkpoint = str(path)
        self._log(f"resuming from {path} (the trainer's state in {self.out / 'trainer'})")

    def meta(self) -> dict:
        return {"base": self.base_source, "updates": self.status.updates}


def _scratch() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="vla-dojo-distil-")
