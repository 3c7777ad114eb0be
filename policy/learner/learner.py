"""The learner: follows the store, labels rewards, fills the buffers, trains, writes checkpoints.

One object for both ways of running it: the ``learner`` node (``dojo practice`` through the
ROS 2 graph: it polls the store and announces each checkpoint on ``policy/checkpoint``) and
the in-process loop of ``bench/practice.py`` (:mod:`policy.learner.loop`), which call the same
:meth:`Learner.ingest`, :meth:`Learner.train` and :meth:`Learner.save`, so both build the same
transitions from the same episodes.

**Checkpoints are immutable directories**, ``<out>/checkpoints/<updates:08d>/``
(``practice.json`` + ``learner.safetensors``), each written under a temporary name and renamed
into place, then ``<out>/latest.json`` is replaced atomically to point at it. A learner killed
mid-write leaves a temporary directory that nothing names, never a partial checkpoint;
restarted, it resumes from ``latest.json`` (weights and update count; the optimiser moments
start afresh) and re-reads the store (the follower starts empty, so every committed episode is
replayed into the buffers again).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from policy.learner.agent import ChunkLearner
from policy.learner.config import LearnerConfig, LearnerError, RewardSource
from policy.learner.features import FrozenBase
from policy.learner.replay import (
    EpisodeReport,
    ReplayBuffers,
    StoreFollower,
    episode_transitions,
)
from policy.learner.rewards import RewardStats
from robot.files import write_atomic

FORMAT = "vla-dojo-practice/1"
META = "practice.json"
WEIGHTS = "learner.safetensors"
LATEST = "latest.json"


@dataclass
class LearnerStatus:
    """What ``learner/status`` reports."""

    updates: int = 0
    episodes: int = 0
    prior: int = 0
    online: int = 0
    reward_source: str = ""
    rewards: RewardStats = field(default_factory=RewardStats)
    critic_failures: int = 0
    checkpoint: str = ""
    updates_per_s: float = 0.0
    relabel_frames_per_s: float = 0.0
    critic_audit: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = asdict(self)
        out["rewards"] = asdict(self.rewards)
        return out


class Learner:
    """Off-policy practice on a frozen base policy (see :mod:`policy.learner`).

    ``base``: the frozen policy's view (:func:`policy.learner.features.frozen_base`);
    ``base_source``: ``(backend, checkpoint, kind)`` it was loaded from, recorded in every
    checkpoint so the policy node can load one; ``critic``: a :class:`critic.base.ProgressCritic`
    (``reward=critic``); ``fps``: the store's rate. ``continuous``: the learner node trains
    it without pause once ready (the distillation learner trains on credit instead)."""

    continuous = True

    def __init__(
        self,
        base: FrozenBase,
        config: LearnerConfig,
        *,
        fps: float,
        base_source: tuple[str, str, str] = ("compact", "", ""),
        critic=None,
        out: str | Path | None = None,
        action_scale: np.ndarray | None = None,
    ) -> None:
        config.check_policy(base.horizon)
        if config.reward == RewardSource.critic and critic is None:
            raise LearnerError("learner.reward=critic needs a critic (critic.checkpoint=)")
        self.base, self.config, self.fps, self.critic = base, config, fps, critic
        self.base_source = base_source
        self.out = Path(out) if out else None
        self.buffers = ReplayBuffers(config, fps)
        self.rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        self.status = LearnerStatus(reward_source=str(config.reward))
        self.reports: list[EpisodeReport] = []
        self._action_scale = action_scale
        self.net: ChunkLearner | None = None
        self._pending_state: dict | None = None
        self._relabel_s = self._relabel_frames = 0.0
        self._update_s = 0.0
        self._since_checkpoint = 0
        self._credit = 0.0
        if self.out is not None:
            self._resume()

    # -- data --------------------------------------------------------------------------------

    AUDIT_MIN_EPISODES = 10  # the policy's own episodes before the critic is judged
    AUDIT_MAX_FAILED_PROGRESS = 0.5  # mean final progress the critic may give failures
    AUDIT_MIN_DONE_PRECISION = 0.5  # share of the critic's done calls that were successes

    def _audit(self, episode, potential: np.ndarray, done: np.ndarray) -> None:
        """Keep the critic honest on the policy's own episodes (those with policy steps): the
        progress it gives failures and the precision of its done. When it diverges from the
        outcomes, say so in the status and fall back to the sparse reward for what follows."""
        from robot.schema import ControlSource

        if not (np.asarray(episode.control_source) == int(ControlSource.POLICY)).any():
            return  # demonstrations say nothing about how the critic rates the policy
        a = self.status.critic_audit
        rows = a.setdefault("episodes", [])
        final = float(potential[-1]) if np.isfinite(potential[-1]) else float("nan")
        called = bool(np.nanmax(done) >= self.config.done_threshold) if len(done) else False
        rows.append([bool(episode.success), final, called])
        failed = [r[1] for r in rows if not r[0] and np.isfinite(r[1])]
        calls = [r[0] for r in rows if r[2]]
        a["failed_final_progress"] = float(np.mean(failed)) if failed else None
        a["done_precision"] = float(np.mean(calls)) if calls else None
        a["judged_on"] = len(rows)
        if len(rows) < self.AUDIT_MIN_EPISODES or a.get("fell_back"):
            return
        reasons = []
        if failed and a["failed_final_progress"] > self.AUDIT_MAX_FAILED_PROGRESS:
            reasons.append(f"failed episodes end at {a['failed_final_progress']:.2f} progress")
        if calls and a["done_precision"] < self.AUDIT_MIN_DONE_PRECISION:
            reasons.append(f"done precision {a['done_precision']:.2f}")
        if reasons:
            a["fell_back"] = f"after {len(rows)} episodes: " + "; ".join(reasons)
            self.config.reward = RewardSource.sparse
            self.status.reward_source = f"sparse (critic diverged: {a['fell_back']})"
            self._log(f"the critic diverges from the outcomes ({a['fell_back']}): sparse reward")

    def _potential(self, episode) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.config.reward != RewardSource.critic:
            return None, None
        t0 = time.perf_counter()
        frames = {c: np.asarray(episode.images[c][:]) for c in self.critic.cameras}
        values, _ = self.critic.progress(frames, episode.instruction, mode="anchor")
        done = np.asarray(self.critic.done_frames(frames, episode.instruction), dtype=np.float64)
        self._relabel_s += time.perf_counter() - t0
        self._relabel_frames += episode.n_steps
        return np.asarray(values, dtype=np.float64), done

    def ingest(self, episodes) -> list[EpisodeReport]:
        """Label and add committed episodes (``episodes.store.Episode``) to the buffers."""
        reports = []
        for ep in episodes:
            try:
                potential, done = self._potential(ep)
            except Exception as err:  # a critic failure excludes the episode, never crashes
                self.status.critic_failures += 1
                report = EpisodeReport.of(ep)
                report.rewards.excluded = ep.n_steps // self.config.chunk_steps
                self.status.rewards.add(report.rewards)
                reports.append(report)
                self._log(f"episode {ep.id}: critic failed ({err}); its chunks are excluded")
                continue
            if potential is not None:
                self._audit(ep, potential, done)
            batch, report = episode_transitions(
                ep, self.base, self.config, potential=potential, done_prob=done
            )
            self._ensure_net(batch)
            self.buffers.add(batch)
            self.status.rewards.add(report.rewards)
            self.status.episodes += 1
            self._credit += report.online * self.config.utd
            reports.append(report)
        self.status.prior, self.status.online = len(self.buffers.prior), len(self.buffers.online)
        if self._relabel_s > 0:
            self.status.relabel_frames_per_s = self._relabel_frames / self._relabel_s
        self.reports += reports
        return reports

    def follow(self, follower: StoreFollower, limit: int = 0) -> list[EpisodeReport]:
        return self.ingest(follower.poll(limit))

    def _ensure_net(self, batch) -> None:
        if self.net is not None or not len(batch):
            return
        if self._action_scale is None:  # per-joint spread of executed motion over a chunk
            rel = batch.actions - batch.q[:, None]
            self._action_scale = np.maximum(rel.reshape(-1, rel.shape[-1]).std(0), 1e-2)
        self.net = ChunkLearner(
            self.config,
            self.base.feature_dim,
            self.base.horizon,
            len(self.base.joint_names),
            self._action_scale,
            self._pending_state,
        )
        self._pending_state = None

    # -- training ----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.net is not None and len(self.buffers) >= self.config.warmup_transitions

    def train(self, updates: int | None = None) -> dict[str, float]:
        """Run ``updates`` critic updates (default: ``utd`` per new online transition since the
        last call; a learner with no online data yet trains on prior data at the same rate),
        with an actor update every ``actor_every``."""
        if not self.ready:
            return {}
        if updates is None:
            updates = int(self._credit)
            self._credit -= updates
        out: dict[str, float] = {}
        t0 = time.perf_counter()
        net = self.net
        for _ in range(updates):
            batch, is_prior = self.buffers.sample(self.config.batch_size, self.rng)
            b = net.tensors(batch)
            out["critic_loss"] = net.critic_update(b)
            if int(net.updates) % self.config.actor_every == 0:
                out.update(net.actor_update(b, torch.as_tensor(is_prior, dtype=torch.float32)))
        self._update_s += time.perf_counter() - t0
        self.status.updates = int(net.updates)
        if self._update_s > 0:
            self.status.updates_per_s = self.status.updates / self._update_s
        self._since_checkpoint += updates
        return out

    def checkpoint_due(self) -> bool:
        return self.net is not None and self._since_checkpoint >= self.config.checkpoint_every

    # -- checkpoints -------------------------------------------------------------------------

    def meta(self) -> dict:
        backend, checkpoint, kind = self.base_source
        return {
            "format": FORMAT,
            "base": {"backend": backend, "checkpoint": checkpoint, "kind": kind},
            "learner": {
                k: (str(v) if hasattr(v, "value") else v) for k, v in asdict(self.config).items()
            },
            "feature_dim": self.base.feature_dim,
            "horizon": self.base.horizon,
            "chunk_dt": self.base.chunk_dt,
            "joint_names": list(self.base.joint_names),
            "cameras": list(self.base.cameras),
            "action_scale": [float(v) for v in self._action_scale],
            "updates": int(self.net.updates) if self.net is not None else 0,
            "critic_id": getattr(self.critic, "critic_id", ""),
            "saved_at": time.time(),
        }

    def save(self) -> Path:
        """Write a checkpoint (atomically, see the module docstring); returns its directory."""
        from safetensors.torch import save_file

        if self.out is None or self.net is None:
            raise LearnerError("the learner has no output directory or nothing trained yet")
        root = self.out / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        final = root / f"{int(self.net.updates):08d}"
        if final.exists():
            return final

        def fill(tmp: Path) -> None:
            tmp.mkdir()
            state = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS))
            (tmp / META).write_text(json.dumps(self.meta(), indent=2))

        return self._publish(final, fill)

    def _publish(self, final: Path, fill) -> Path:
        """Write ``final`` through ``fill(tmp)`` under a temporary name, fsync its files,
        rename it into place, then point ``latest.json`` at it (see the module docstring)."""
        if not final.exists():
            tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            fill(tmp)
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        write_atomic(self.out / LATEST, json.dumps({"checkpoint": str(final.resolve())}))
        self.status.checkpoint = str(final.resolve())
        self._since_checkpoint = 0
        return final

    def _resume(self) -> None:
        latest = self.out / LATEST
        if not latest.exists():
            return
        path = Path(json.loads(latest.read_text())["checkpoint"])
        meta, state = read_checkpoint(path)
        if meta["joint_names"] != list(self.base.joint_names):
            raise LearnerError(f"{path}: made for joints {meta['joint_names']}")
        self._action_scale = np.asarray(meta["action_scale"], dtype=np.float64)
        self._pending_state = state
        self.status.checkpoint = str(path)
        self._log(f"resuming from {path} ({meta['updates']} updates)")

    @staticmethod
    def _log(message: str) -> None:
        import logging

        logging.getLogger("policy.learner").info(message)


def make_learner(policy, config: LearnerConfig, **kwargs) -> Learner:
    """The learner for ``config.actor``: :class:`policy.learner.distil.DistilLearner`, which
    fine-tunes ``policy`` itself, for ``distil``; else a :class:`Learner` on its frozen view.
    ``kwargs``: :class:`Learner`'s (``fps``, ``base_source``, ``critic``, ``out``)."""
    from policy.learner.config import ActorKind
    from policy.learner.features import frozen_base

    if config.actor == ActorKind.distil:
        from policy.learner.distil import DistilLearner

        return DistilLearner(policy, config, **kwargs)
    return Learner(frozen_base(policy), config, **kwargs)


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """``(meta, state_dict)`` of a practice checkpoint; a :class:`LearnerError` says what is
    wrong with it."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LearnerError(f"practice checkpoint {path}: unreadable {META} ({err})") from None
    if meta.get("format") != FORMAT:
        raise LearnerError(
            f"practice checkpoint {path}: format {meta.get('format')!r}, not {FORMAT}"
        )
    try:
        state = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError) as err:
        raise LearnerError(f"practice checkpoint {path}: {WEIGHTS} unreadable ({err})") from None
    return meta, state


def is_practice_checkpoint(path: str | Path) -> bool:
    return (Path(path) / META).is_file()
