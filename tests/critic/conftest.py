"""Tiny stores and tiny critics for the critic tests: nothing here needs the twin or a GPU.

Synthetic task: a coloured square moves from the left edge to the right edge of the frame
(success) or half-way and back (failure); the instruction names its colour. Progress is then
a known function of the square's position, which the stub critics below read from the pixels.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from critic.base import ProgressCritic, check_frames, instructions_for
from critic.value import relative_delta
from episodes.store import EpisodeStore, StoreConfig
from episodes.synthetic import append_steps, storage_spec, synthetic_episode

torch.set_num_threads(1)

W, H = 32, 24
CAMERAS = (("front", W, H),)
JOINTS = ("j0", "j1")
COLORS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def instruction(color: str) -> str:
    return f"put the {color} cube in the bin"


def square_frames(n: int, color: str, success: bool, seed: int = 0) -> np.ndarray:
    """``(n, H, W, 3)``: the square's x goes 0 -> 1 (success) or 0 -> 0.5 -> 0 (failure)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, n)
    x = t if success else 0.5 - np.abs(t - 0.5)
    frames = np.full((n, H, W, 3), 200, dtype=np.uint8)
    frames += rng.integers(0, 8, frames.shape, dtype=np.uint8)
    for k, xk in enumerate(x):
        c = round(xk * (W - 6))
        frames[k, 9:15, c : c + 6] = COLORS[color]
    return frames


def make_store(path, episodes: list[tuple[str, bool]], n: int = 12, fps: float = 10.0) -> str:
    """A store with one episode per ``(colour, success)``."""
    url = str(path)
    store = EpisodeStore.create(url, storage_spec("tiny", JOINTS, CAMERAS, 50.0), fps,
                                StoreConfig(min_free_bytes=0, durable=False))  # fmt: skip
    for k, (color, ok) in enumerate(episodes):
        data = synthetic_episode(k, n, JOINTS, CAMERAS, fps)
        data["images"]["front"] = square_frames(n, color, ok, seed=k)
        w = store.begin(instruction(color), "pick_place", started_at=float(k))
        append_steps(w, data)
        w.commit("success" if ok else "failure", ok)
    return url


def square_x(frames: np.ndarray) -> np.ndarray:
    """Where the coloured square is, 0..1, from the pixels (the stub critic's 'vision')."""
    sat = frames.astype(int).max(-1) - frames.astype(int).min(-1)
    cols = (sat > 100).any(1)
    out = np.zeros(frames.shape[0])
    for i, c in enumerate(cols):
        idx = np.flatnonzero(c)
        out[i] = idx[0] / (W - 6) if idx.size else 0.0
    return np.clip(out, 0.0, 1.0)


class OracleCritic(ProgressCritic):
    """Reads the square's position: a critic that is right, so metrics can be checked."""

    critic_id = "oracle-1"
    version = "1"

    def __init__(self, done_value: float | None = None) -> None:
        self.image_sizes = {"front": (H, W)}
        self.done_value = done_value
        self.instructions = [instruction(c) for c in COLORS]

    def delta_frames(self, frames_a, frames_b, instructions, reference=None):
        n = check_frames(frames_a, self.image_sizes)
        instructions_for(instructions, n)
        return relative_delta(square_x(frames_a["front"]), square_x(frames_b["front"]))

    def done_frames(self, frames, instructions):
        n = check_frames(frames, self.image_sizes)
        instructions_for(instructions, n)
        if self.done_value is not None:
            return np.full(n, self.done_value)
        return (square_x(frames["front"]) > 0.9).astype(float)

    def reject_frames(self, frames_a, frames_b, instructions):
        n = check_frames(frames_a, self.image_sizes)
        texts = instructions_for(instructions, n)
        out = []
        for i, t in enumerate(texts):
            rgb = frames_b["front"][i].reshape(-1, 3).astype(int)
            colour = "red" if (rgb[:, 0] - rgb[:, 2]).max() > 100 else "blue"
            out.append(0.0 if colour in t else 1.0)
        return np.asarray(out)


class FakeText:
    """A deterministic stand-in for MiniLM (hash -> unit vector), so unit tests load no model."""

    max_tokens = 256

    def check(self, text: str) -> None:
        from policy.models.encoders import InstructionError

        if not isinstance(text, str) or not text.strip():
            raise InstructionError(f"instruction {text!r} is empty")

    def encode(self, texts):
        out = []
        for t in texts:
            self.check(t)
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            v = torch.from_numpy(np.random.default_rng(seed).normal(size=384)).float()
            out.append(v / v.norm())
        return torch.stack(out)


@pytest.fixture
def tiny_store(tmp_path):
    eps = [("red", True), ("blue", True), ("red", True), ("blue", True), ("red", False),
           ("blue", False)]  # fmt: skip
    return make_store(tmp_path / "tiny.zarr", eps)


@pytest.fixture
def fake_text():
    return FakeText()
