"""Live progress of the episode being run: what the critic node computes, without ROS.

The node hands the latest frame of each camera to :meth:`LiveProgress.update` at a fixed rate.
Progress accumulates as VLAC's does (``chain``: each update against the previous one) or is
measured against the episode's first frame (``anchor``). A new instruction starts a new
episode. An update that fails or gives a non-finite number raises and changes nothing, so
the caller publishes nothing for it and the next update carries on from the last good state.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from critic.base import CriticError, ProgressCritic, check_instruction
from critic.value import step


class NonFiniteError(CriticError):
    """The critic answered NaN or infinity (a malformed VLM answer, broken weights)."""


class LiveProgress:
    def __init__(self, critic: ProgressCritic, mode: str = "chain") -> None:
        if mode not in ("chain", "anchor"):
            raise CriticError(f"live progress: mode {mode!r} is not 'chain' or 'anchor'")
        self.critic = critic
        self.mode = mode
        self.instruction: str | None = None
        self.value = 0.0
        self._first: dict | None = None
        self._prev: dict | None = None
        self.updates = 0

    def reset(self, instruction: str) -> None:
        """A new episode (the instruction was published again)."""
        self.instruction = check_instruction(instruction)
        self.value = 0.0
        self._first = self._prev = None

    def update(self, images: Mapping[str, np.ndarray]) -> tuple[float, float]:
        """Progress in [0, 1] and done probability after the frames ``images`` (camera ->
        ``(H, W, 3)`` uint8)."""
        if self.instruction is None:
            raise CriticError("no task/instruction received yet")
        frames = {}
        for cam in self.critic.cameras:
            if cam not in images:
                raise CriticError(f"no frame from camera '{cam}' yet (have {sorted(images)})")
            frames[cam] = np.asarray(images[cam])[None]
        done = float(self.critic.done_frames(frames, self.instruction)[0])
        if self._prev is None:
            value = 0.0
        else:
            base = self._prev if self.mode == "chain" else self._first
            c = float(self.critic.delta_frames(base, frames, self.instruction)[0])
            if not np.isfinite(c):
                raise NonFiniteError(f"critic {self.critic.critic_id} gave delta {c}")
            value = float(step(self.value if self.mode == "chain" else 0.0, c))
        if not np.isfinite(done):
            raise NonFiniteError(f"critic {self.critic.critic_id} gave done {done}")
        if self._first is None:
            self._first = frames
        self._prev = frames
        self.value = value
        self.updates += 1
        return value, done
