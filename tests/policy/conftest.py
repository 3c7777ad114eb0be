"""Tiny stores and tiny compact-VLA configs: every policy test runs in seconds on a CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from episodes.store import EpisodeStore, StoreConfig
from episodes.synthetic import storage_spec
from robot.schema import ControlSource

JOINTS = ["j0", "j1", "j2"]
CAMERAS = [("front", 40, 32), ("wrist", 40, 32)]
FPS = 10.0
INSTRUCTIONS = ["move the arm left", "move the arm right"]


def tiny_spec():
    return storage_spec("tiny", JOINTS, CAMERAS, control_hz=50.0)


def tiny_model_overrides(**extra):
    return {
        "image_size": (32, 40),
        "dim": 32,
        "depth": 1,
        "heads": 2,
        "vision_widths": (16, 32),
        "horizon": 4,
        "max_prefix": 2,
        "dropout": 0.0,
        **extra,
    }


def learnable_episode(k: int, n: int = 20):
    """An episode whose actions depend only on the instruction and the image, never on the
    joint state (all zero): 'left' sends joint 0 to +a, 'right' to -a, with ``a`` given by the
    cameras' brightness. A model that ignores either input cannot fit it."""
    instruction = INSTRUCTIONS[k % 2]
    sign = 1.0 if k % 2 == 0 else -1.0
    amplitude = 0.5 + 0.5 * ((k // 2) % 3)
    q = np.zeros((n, len(JOINTS)), np.float32)
    images = {}
    for name, w, h in CAMERAS:
        level = int(60 + 60 * ((k // 2) % 3))
        images[name] = np.full((n, h, w, 3), level, np.uint8)
    action = np.zeros((n, len(JOINTS)), np.float32)
    action[:, 0] = sign * amplitude
    return instruction, q, action, images


def write_learnable_store(url, episodes: int = 6):
    store = EpisodeStore.create(
        str(url), tiny_spec(), FPS, StoreConfig(min_free_bytes=0, durable=False)
    )
    for k in range(episodes):
        instruction, q, action, images = learnable_episode(k)
        w = store.begin(instruction, "tiny", started_at=float(k))
        for i in range(len(q)):
            w.append(
                100.0 * k + i / FPS,
                q[i],
                np.zeros_like(q[i]),
                action[i],
                int(ControlSource.SCRIPT),
                {c: images[c][i] for c in images},
            )
        w.commit("success", True)
    return store


@pytest.fixture(scope="session")
def text_encoder():
    from policy.models.encoders import TextEncoder

    return TextEncoder()


@pytest.fixture
def learnable_store(tmp_path):
    return write_learnable_store(tmp_path / "demos.zarr")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
