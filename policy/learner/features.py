"""The frozen base policy as the learner sees it: features and a base chunk per observation.

The learner never trains the VLA's encoders. Each observation goes through the frozen model once,
when its episode enters the replay buffer, and what is kept is a feature vector and the chunk the
base policy proposes there; every update afterwards costs small MLPs over those, not images
(HIL-SERL freezes its pretrained vision encoder for the same reason; ConRFT puts its heads on
frozen VLA features).

Two implementations of :class:`FrozenBase`:

- :class:`CompactBase`, the compact VLA: one trunk pass gives both the features (the mean of the
  trunk's outputs at the action queries, :meth:`policy.models.vla.CompactVLA.features`, with the
  normalised joint state) and, through the regression head, the base chunk;
- :class:`GenericBase`, any :class:`~policy.base.ChunkPolicy` (the LeRobot backends: ACT,
  SmolVLA, pi0): the base chunk from ``predict``, and features the learner can build without
  the model's internals: the normalised joint state, each camera pooled to a coarse grey grid,
  and the instruction's sentence embedding. Coarser than a VLA's own features, but practice
  stays possible on any backend.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from policy.base import ChunkPolicy
from robot.schema import Observation

POOLED_GRID = (6, 8)  # (h, w) of a camera's grey summary in GenericBase


class FrozenBase(abc.ABC):
    """A frozen policy: ``encode`` observations to ``(features (B, F), base chunks (B, H, D))``.

    Images are ``camera -> (B, h, w, 3) uint8`` (any size: resized to the model's input);
    joint positions ``(B, D)``; one instruction per row. Chunks are raw joint targets.
    """

    policy: ChunkPolicy
    feature_dim: int

    @property
    def horizon(self) -> int:
        return self.policy.horizon

    @property
    def chunk_dt(self) -> float:
        return self.policy.chunk_dt

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(self.policy.joint_names)

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.policy.cameras)

    @abc.abstractmethod
    def encode(
        self, images: dict[str, np.ndarray], joint_pos: np.ndarray, instructions: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def encode_observation(
        self, obs: Observation, instruction: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(F,)`` and base chunk ``(H, D)`` of one observation."""
        feats, chunks = self.encode(
            {c: obs.images[c][None] for c in self.cameras}, obs.joint_pos[None], [instruction]
        )
        return feats[0], chunks[0]

    def describe(self) -> str:
        return f"{type(self).__name__}({self.policy.describe()})"


class CompactBase(FrozenBase):
    """The compact VLA's trunk features and regression-head chunk, from one pass."""

    def __init__(self, policy) -> None:
        from policy.compact import CompactVLAPolicy

        if not isinstance(policy, CompactVLAPolicy):
            raise TypeError(f"CompactBase needs the compact VLA, got {type(policy).__name__}")
        self.policy = policy
        self.model = policy.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        cfg = self.model.config
        self.feature_dim = cfg.dim + len(cfg.joint_names)

    @torch.no_grad()
    def encode(self, images, joint_pos, instructions):
        from policy.models.encoders import images_to_tensor

        m, cfg, dev = self.model, self.model.config, self.policy.device
        text = self.policy.text.encode(list(instructions)).to(dev)
        imgs = {c: images_to_tensor(images[c], cfg.image_size).to(dev) for c in cfg.cameras}
        raw = torch.as_tensor(np.asarray(joint_pos), dtype=torch.float32, device=dev)
        state = m.normalise_state(raw)
        trunk = m.encode(imgs, text, state)
        if cfg.head == "regression":
            chunk = m.head(trunk)
        else:
            chunk = m.sample(imgs, text, state)
        chunk = m.unnormalise_action(chunk, raw)
        feats = torch.cat([trunk.mean(dim=1), state], dim=-1)
        return feats.cpu().numpy().astype(np.float32), chunk.cpu().numpy().astype(np.float64)


class GenericBase(FrozenBase):
    """Any chunk policy: the base chunk from ``predict``; features built outside the model."""

    def __init__(self, policy: ChunkPolicy, joint_scale: np.ndarray | None = None, text=None):
        self.policy = policy
        self.joint_scale = (
            np.ones(len(policy.joint_names)) if joint_scale is None else np.asarray(joint_scale)
        )
        if text is None:
            from policy.models.encoders import TextEncoder

            text = TextEncoder()
        self.text = text
        self._text_cache: dict[str, np.ndarray] = {}
        grid = POOLED_GRID[0] * POOLED_GRID[1]
        self.feature_dim = len(policy.joint_names) + grid * len(policy.cameras) + 384

    def _text(self, instruction: str) -> np.ndarray:
        if instruction not in self._text_cache:
            self._text_cache[instruction] = self.text.encode([instruction])[0].cpu().numpy()
        return self._text_cache[instruction]

    @torch.no_grad()
    def encode(self, images, joint_pos, instructions):
        joint_pos = np.asarray(joint_pos, dtype=np.float64)
        parts = [joint_pos / self.joint_scale]
        for cam in self.cameras:
            x = torch.from_numpy(np.ascontiguousarray(images[cam])).permute(0, 3, 1, 2).float()
            grey = x.mean(dim=1, keepdim=True) / 255.0
            parts.append(F.adaptive_avg_pool2d(grey, POOLED_GRID).flatten(1).numpy())
        parts.append(np.stack([self._text(i) for i in instructions]))
        chunks = []
        for b, instruction in enumerate(instructions):
            obs = Observation(
                stamp=0.0,
                joint_pos=joint_pos[b],
                joint_vel=np.zeros_like(joint_pos[b]),
                images={c: images[c][b] for c in self.cameras},
                image_stamps={c: 0.0 for c in self.cameras},
            )
            self.policy.reset()
            chunks.append(self.policy.predict(obs, instruction).positions)
        feats = np.concatenate(parts, axis=1).astype(np.float32)
        return feats, np.stack(chunks).astype(np.float64)


def frozen_base(policy: ChunkPolicy) -> FrozenBase:
    """The learner's view of ``policy``: its own trunk where it is the compact VLA."""
    from policy.compact import CompactVLAPolicy

    if isinstance(policy, CompactVLAPolicy):
        return CompactBase(policy)
    return GenericBase(policy)
