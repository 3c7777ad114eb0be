"""The learner's settings (``learner`` section of the config; plain types, no hydra here).

Every size the learner allocates is derived from these and checked at construction, so an
impossible combination (a batch larger than the buffer, a ratio outside [0, 1], a chunk longer
than the policy's horizon) is refused with the key named before anything trains.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field


class LearnerError(ValueError):
    """The learner cannot run as configured or on this data. The message names the key."""


class RewardSource(enum.StrEnum):
    critic = "critic"  # potential-based shaping from the critic's anchored progress + its done
    sparse = "sparse"  # the episode's success at its last transition


class ActorKind(enum.StrEnum):
    residual = "residual"  # a bounded residual on the frozen base policy's chunk (ConRFT-like)
    rerank = "rerank"  # sample proposals around the base chunk, execute the best by Q (PA-RL)
    awac = "awac"  # the residual, regressed on executed chunks weighted by exp(advantage) (AWAC)
    distil = "distil"  # the compact VLA itself fine-tuned on filtered practice (distil.py)


@dataclass
class LearnerConfig:
    """How the off-policy learner trains (see :mod:`policy.learner`).

    Transitions: ``chunk_steps`` recorded steps per transition (the part of a chunk the driver
    executes before it replans); ``gamma`` per recorded step, so a chunk discounts by
    ``gamma ** k``. Replay: ``prior_ratio`` of every batch from demonstrations and
    interventions (RLPD: 0.5), the rest from the policy's own rollouts; each buffer holds at most
    ``buffer_seconds`` of robot time at the store's rate (memory is bounded by that, see
    :meth:`buffer_capacity`). Updates: ``utd`` critic updates per new transition, the actor
    every ``actor_every`` critic updates, ``batch_size`` transitions each, ``ensemble`` Q
    networks with LayerNorm of width ``hidden``. Actor: ``actor`` kind, ``residual_scale``
    (rad) bounds the residual per joint and step, ``bc_weight`` the imitation term on prior
    chunks (ConRFT weighs 0.1 decaying to 0.05 against its Q term; here the Q term is
    normalised by the batch's mean |Q|; with 0.1 and a 0.15 rad residual the sparse learner's
    own episodes fell from the start's 10% to 0/24, and the defaults became 1.0 decaying to
    ``bc_weight_final`` and 0.05 rad, which have not made it better either: bench/README.md),
    ``intervention_weight`` multiplies it on human chunks, ``init_temperature`` the entropy
    temperature (HIL-SERL: 1e-2); ``proposals`` for ``rerank``; ``awac_beta`` the temperature
    of ``awac``'s advantage weights (advantages in units of the batch's spread) and
    ``awac_max_weight`` their cap, ``awac_demos`` whether demonstrations enter its regression
    (off: the base was trained on them, and refitting its residual on them moved the practised
    policy off what generalises; bench/README.md); ``explore_std`` caps the actor's spread
    (before tanh) when it drives practice episodes, so the robot's random motion stays a
    fraction of ``residual_scale`` whatever the actor has learned of its own uncertainty. Reward:
    ``reward`` source, ``shaping_scale`` on the critic's potential, ``done_threshold`` on its
    done probability. ``checkpoint_every`` learner
    updates between published checkpoints. ``distil_*``: the ``distil`` actor's constant
    learning rate, optimiser steps credited per practice episode, the fewest steps run as one
    round, the critic's progress over a chunk that makes a failed episode's step worth
    imitating, the seconds before a takeover never imitated, and its torch threads (0: measured)
    (:mod:`policy.learner.distil`).
    """

    reward: RewardSource = RewardSource.critic
    actor: ActorKind = ActorKind.residual
    chunk_steps: int = 5
    gamma: float = 0.98
    prior_ratio: float = 0.5
    buffer_seconds: float = 7200.0
    batch_size: int = 256
    utd: float = 2.0
    actor_every: int = 2
    ensemble: int = 2
    hidden: int = 256
    lr: float = 3e-4
    tau: float = 0.005
    residual_scale: float = 0.05
    bc_weight: float = 1.0
    bc_weight_final: float = 0.5
    bc_decay_updates: int = 5000
    intervention_weight: float = 2.0
    init_temperature: float = 1e-2
    proposals: int = 16
    awac_beta: float = 1.0
    awac_max_weight: float = 20.0
    awac_demos: bool = False
    explore_std: float = 0.3
    shaping_scale: float = 1.0
    done_threshold: float = 0.5
    warmup_transitions: int = 64
    checkpoint_every: int = 50
    distil_lr: float = 1e-4
    distil_steps_per_episode: int = 20
    distil_round: int = 200
    distil_min_progress: float = 0.05
    distil_pre_takeover_s: float = 1.0
    distil_threads: int = 0
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        try:
            self.reward = RewardSource(self.reward)
        except ValueError:
            raise LearnerError(
                f"learner.reward={self.reward!r}: one of {[str(r) for r in RewardSource]}"
            ) from None
        try:
            self.actor = ActorKind(self.actor)
        except ValueError:
            raise LearnerError(
                f"learner.actor={self.actor!r}: one of {[str(a) for a in ActorKind]}"
            ) from None
        checks = {
            "chunk_steps": self.chunk_steps >= 1,
            "gamma": 0.0 < self.gamma <= 1.0,
            "prior_ratio": 0.0 <= self.prior_ratio <= 1.0,
            "buffer_seconds": math.isfinite(self.buffer_seconds) and self.buffer_seconds > 0,
            "batch_size": self.batch_size >= 2,
            "utd": math.isfinite(self.utd) and self.utd > 0,
            "actor_every": self.actor_every >= 1,
            "ensemble": self.ensemble >= 2,
            "hidden": self.hidden >= 8,
            "lr": math.isfinite(self.lr) and self.lr > 0,
            "tau": 0.0 < self.tau <= 1.0,
            "residual_scale": math.isfinite(self.residual_scale) and self.residual_scale >= 0,
            "bc_weight": self.bc_weight >= 0,
            "bc_weight_final": self.bc_weight_final >= 0,
            "intervention_weight": self.intervention_weight >= 0,
            "init_temperature": self.init_temperature > 0,
            "proposals": self.proposals >= 2,
            "awac_beta": math.isfinite(self.awac_beta) and self.awac_beta > 0,
            "awac_max_weight": math.isfinite(self.awac_max_weight) and self.awac_max_weight >= 1,
            "explore_std": math.isfinite(self.explore_std) and self.explore_std > 0,
            "done_threshold": 0.0 < self.done_threshold < 1.0,
            "checkpoint_every": self.checkpoint_every >= 1,
            "distil_lr": math.isfinite(self.distil_lr) and self.distil_lr > 0,
            "distil_steps_per_episode": self.distil_steps_per_episode >= 1,
            "distil_round": self.distil_round >= 1,
            "distil_min_progress": math.isfinite(self.distil_min_progress),
            "distil_pre_takeover_s": self.distil_pre_takeover_s >= 0,
            "distil_threads": self.distil_threads >= 0,
        }
        rules = {
            "chunk_steps": ">= 1",
            "gamma": "in (0, 1]",
            "prior_ratio": "in [0, 1]",
            "ensemble": ">= 2 (the target takes the minimum of two)",
            "proposals": ">= 2",
            "awac_max_weight": ">= 1",
            "done_threshold": "in (0, 1)",
            "distil_steps_per_episode": ">= 1",
            "distil_round": ">= 1",
            "distil_min_progress": "finite",
            "distil_pre_takeover_s": ">= 0",
            "distil_threads": ">= 0 (0: measured)",
        }
        for key, ok in checks.items():
            if not ok:
                raise LearnerError(
                    f"learner.{key}={getattr(self, key)!r} must be {rules.get(key, '> 0')}"
                )

    def buffer_capacity(self, fps: float) -> int:
        """Transitions one buffer holds: ``buffer_seconds`` of robot time at ``fps`` recorded
        steps per second, ``chunk_steps`` steps per transition (diffusion_policy sizes its
        buffers the same way: rate x time x margin)."""
        capacity = int(self.buffer_seconds * fps / self.chunk_steps)
        if capacity < self.batch_size:
            raise LearnerError(
                f"learner.buffer_seconds={self.buffer_seconds} holds {capacity} transitions at "
                f"{fps} fps, fewer than learner.batch_size={self.batch_size}"
            )
        return capacity

    def check_policy(self, horizon: int) -> None:
        """Refuse a chunk longer than the policy's horizon (the actor refines those steps)."""
        if self.chunk_steps > horizon:
            raise LearnerError(
                f"learner.chunk_steps={self.chunk_steps} is longer than the policy's horizon "
                f"({horizon} steps)"
            )


@dataclass
class HilConfig:
    """``hil``: ``none`` or ``graded`` (the three stages above, with this schedule)."""

    mode: str = "none"
    return_until: int = 60
    return_phases: list[str] = field(default_factory=lambda: ["descend", "close", "lift"])
    guided_from: int = 0
    guide_phases: int = 1
    max_takeovers: int = 2
    stall_s: float = 1.5
    stall_rad: float = 0.01
    regress_m: float = 0.05
    grace_s: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("none", "graded"):
            raise LearnerError(f"hil.mode={self.mode!r}: one of ['none', 'graded']")
        names = {"approach", "descend", "close", "lift", "carry", "release", "retreat", "home"}
        bad = [p for p in self.return_phases if p not in names]
        if bad:
            raise LearnerError(f"hil.return_phases: {bad} not among {sorted(names)}")
