"""The critic library's training config, in a module that imports no torch.

Why a module of its own: ``dojo/conf`` registers :class:`CriticTrainConfig` as the hydra schema
of the ``critic_train`` section and loads it on every config load; :mod:`critic.train` imports
torch. The other critic configs (:class:`critic.evaluate.CriticEvalConfig`,
:class:`critic.relabel.RelabelConfig`, :class:`critic.audit.AuditConfig`) live beside their
code, which is numpy only.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from critic.base import CriticError
from critic.pairs import PairConfig


class ProgressMode(enum.StrEnum):
    """How progress is read from deltas: ``chain`` (VLAC: accumulate consecutive deltas) or
    ``anchor`` (each frame against the first of the episode)."""

    chain = "chain"
    anchor = "anchor"


class RefAlign(enum.StrEnum):
    """What a reference demonstration is aligned with (``CompactConfig.ref_align``)."""

    instruction = "instruction"
    neutral = "neutral"


@dataclass
class CriticTrainConfig:
    """``stores``: episode stores to train on; ``out``: checkpoint directory.
    ``steps``/``seconds``: the budget, whichever ends first (``seconds`` 0: none); the
    learning rate's cosine runs over it (:mod:`policy.schedule`).
    ``threads``: torch CPU threads (0: leave torch's default).

    Filled by ``dojo train critic``, not set as keys: ``stores`` (from ``store=``), ``out``
    (from ``out=``)."""

    stores: list[str] = field(default_factory=list)
    out: str = "runs/critic"
    name: str = "compact"
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    image_size: list[int] = field(default_factory=lambda: [72, 96])
    widths: list[int] = field(default_factory=lambda: [32, 64])
    embed_dim: int = 128
    ref_frames: int = 8
    ref_align: RefAlign = RefAlign.neutral
    steps: int = 1500
    seconds: float = 0.0
    batch_size: int = 32
    ref_batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    seed: int = 0
    threads: int = 0
    limit: int = 0
    log_every: int = 50
    pairs: PairConfig = field(default_factory=PairConfig)

    def validate(self) -> None:
        if not self.stores:
            raise CriticError("train critic: no stores given (store=demos.zarr)")
        for key in ("steps", "batch_size"):
            if getattr(self, key) < 1:
                raise CriticError(f"train critic: {key}={getattr(self, key)} must be >= 1")
        if not self.lr > 0:
            raise CriticError(f"train critic: lr={self.lr} must be > 0")
        if self.seconds < 0:
            raise CriticError(f"train critic: seconds={self.seconds} must be >= 0 (0: no limit)")
