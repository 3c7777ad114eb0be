"""Progress critics: rewards and done signals from pairs of observations and an instruction.

``ProgressCritic`` is the interface (``critic.base``); ``CompactCritic`` the model trained here
(``critic.models.compact``, ``critic.train``); ``VLMCritic`` the VLAC-format VLM backend
(``critic.vlm``); :func:`critic.registry.load_critic` picks one by name. Progress
accumulation and reward shaping: ``critic.value``. The torch-backed
names are imported on first use, so ``import critic`` stays light (the node graph's config
imports nothing from here). Functions live in their modules: ``critic.train.train``,
``critic.relabel.relabel``, ``critic.evaluate.evaluate``, ``critic.audit.audit``.
"""

from __future__ import annotations

from typing import Any

from critic.base import CriticError, ProgressCritic, Reference
from critic.value import accumulate, relative_delta, rewards_from_deltas, shaped_reward, voc

_LAZY = {
    "CompactCritic": "critic.models.compact",
    "CompactConfig": "critic.models.compact",
    "load_critic": "critic.registry",
    "VLMCritic": "critic.vlm",
    "CriticTrainConfig": "critic.config",
    "RelabelConfig": "critic.relabel",
    "CriticEvalConfig": "critic.evaluate",
    "LiveProgress": "critic.live",
}

__all__ = [
    "CriticError",
    "ProgressCritic",
    "Reference",
    "accumulate",
    "relative_delta",
    "rewards_from_deltas",
    "shaped_reward",
    "voc",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'critic' has no attribute {name!r}")
