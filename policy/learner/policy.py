"""A practised policy: the frozen base with the learner's actor on top, as a ``ChunkPolicy``.

This is what a practice checkpoint loads to (``policy.registry.load_policy`` recognises one by
its ``practice.json``), so the policy node hot-swaps it like any other checkpoint. In process
(``bench/practice.py``) it shares the learner's networks, so a swap costs nothing there.
``explore``: sample from the actor (practice) instead of its mean (evaluation).
"""

from __future__ import annotations

import numpy as np
import torch

from policy.base import ChunkPolicy
from policy.learner.agent import ChunkLearner
from policy.learner.config import LearnerConfig
from policy.learner.features import FrozenBase, frozen_base
from robot.schema import ActionChunk, ControlSource, Observation


class PracticedPolicy(ChunkPolicy):
    def __init__(self, base: FrozenBase, net: ChunkLearner, explore: bool = False) -> None:
        self.base, self.net, self.explore = base, net, explore
        policy = base.policy
        self.joint_names = tuple(policy.joint_names)
        self.cameras = tuple(policy.cameras)
        self.horizon = policy.horizon
        self.chunk_dt = policy.chunk_dt
        self.input_size = getattr(policy, "input_size", None)
        self.source = ""

    @classmethod
    def load(cls, path, *, load_base, explore: bool = False) -> PracticedPolicy:
        """``load_base(backend, checkpoint, kind) -> ChunkPolicy`` loads the frozen base the
        checkpoint names (the registry's own loader, so the base loads as it always does)."""
        from policy.learner.learner import read_checkpoint

        meta, state = read_checkpoint(path)
        b = meta["base"]
        base = frozen_base(load_base(b["backend"], b["checkpoint"], b["kind"]))
        config = LearnerConfig(**meta["learner"])
        net = ChunkLearner(
            config,
            meta["feature_dim"],
            meta["horizon"],
            len(meta["joint_names"]),
            np.asarray(meta["action_scale"]),
            state,
        )
        out = cls(base, net.eval(), explore)
        out.source = str(path)
        return out

    def describe(self) -> str:
        return f"practised {self.base.policy.describe()} {self.source}".strip()

    def reset(self) -> None:
        self.base.policy.reset()

    def predict(
        self, obs: Observation, instruction: str, committed: np.ndarray | None = None
    ) -> ActionChunk:
        self.check_observation(obs)
        feat, base_chunk = self.base.encode_observation(obs, instruction)
        chunk = (
            self.net.select(
                torch.as_tensor(feat[None]),
                torch.as_tensor(obs.joint_pos[None], dtype=torch.float32),
                torch.as_tensor(base_chunk[None], dtype=torch.float32),
                explore=self.explore,
            )[0]
            .numpy()
            .astype(np.float64)
        )
        if committed is not None and len(committed):
            k = min(len(committed), self.horizon)
            chunk[:k] = np.asarray(committed, dtype=np.float64)[:k]
        return ActionChunk(
            stamp=obs.stamp,
            joint_names=self.joint_names,
            positions=chunk,
            times=self.chunk_times(),
            source=ControlSource.POLICY,
        )
