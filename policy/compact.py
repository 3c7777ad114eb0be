"""The compact VLA as a :class:`policy.base.ChunkPolicy`, and its checkpoint format.

A checkpoint is a directory::

    <dir>/model.safetensors   weights and the normalisation statistics (buffers)
    <dir>/config.json         {"format": "vla-dojo/compact-vla", "version": 1,
                               "model": VLAConfig, "trained": {...}}

Safetensors and JSON only (no pickle: a checkpoint is data, never code). Written to a
temporary directory beside the target and renamed into place, so a reader (the policy node
hot-swapping weights) sees the old checkpoint or the new one, never half of one.

``load`` checks everything before returning: format and version, that every tensor the model
needs is present with the right shape (a truncated or corrupt file is named as such), and the
config's own validity. ``check(spec)`` (from the base class) then refuses a robot with other
joints or without a camera the model needs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from policy.base import ChunkPolicy, PolicyError
from policy.models.encoders import InstructionError, TextEncoder, images_to_tensor
from policy.models.vla import CompactVLA, VLAConfig
from robot.schema import ActionChunk, ControlSource, Observation

FORMAT = "vla-dojo/compact-vla"
VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_checkpoint(
    model: CompactVLA, path: str | Path, trained: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to the directory ``path`` atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "model": model.config.to_json(),
            "trained": trained or {},
        }
        (tmp / CONFIG).write_text(json.dumps(meta, indent=2))
        for f in (tmp / WEIGHTS, tmp / CONFIG):
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    cfg_file = path / CONFIG
    if not cfg_file.exists():
        raise PolicyError(f"checkpoint {path}: no {CONFIG} (not a compact-VLA checkpoint)")
    try:
        meta = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as err:
        raise PolicyError(f"checkpoint {cfg_file}: not valid JSON ({err})") from err
    if meta.get("format") != FORMAT:
        raise PolicyError(f"checkpoint {path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise PolicyError(
            f"checkpoint {path}: version {meta.get('version')} but this code reads {VERSION}"
        )
    return meta


def load_model(path: str | Path, device: str = "cpu") -> tuple[CompactVLA, dict[str, Any]]:
    """The model and its metadata; raises :class:`PolicyError` naming what is wrong."""
    path = Path(path)
    meta = read_meta(path)
    try:
        config = VLAConfig.from_json(meta["model"])
        model = CompactVLA(config)
    except (KeyError, TypeError, ValueError) as err:
        raise PolicyError(f"checkpoint {path}: bad model config: {err}") from err
    weights = path / WEIGHTS
    if not weights.exists():
        raise PolicyError(f"checkpoint {path}: {WEIGHTS} is missing")
    try:
        state = load_file(str(weights), device=device)
    except (SafetensorError, OSError, ValueError) as err:
        raise PolicyError(
            f"checkpoint {weights}: corrupt or truncated safetensors ({err})"
        ) from err
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise PolicyError(
            f"checkpoint {weights}: tensors do not match the config "
            f"(missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {unexpected[:4]}{'...' if len(unexpected) > 4 else ''})"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise PolicyError(
                f"checkpoint {weights}: tensor {key!r} has shape {tuple(value.shape)}, the config "
                f"needs {tuple(expected[key].shape)}"
            )
    model.load_state_dict(state)
    model.to(device).eval()
    return model, meta


class CompactVLAPolicy(ChunkPolicy):
    """Raw units in, raw units out: resizes images, encodes the instruction, (un)normalises."""

    def __init__(
        self,
        model: CompactVLA,
        text: TextEncoder | None = None,
        meta: dict[str, Any] | None = None,
        source: str = "",
        device: str = "cpu",
    ) -> None:
        self.model = model.eval()
        self.config = model.config
        self.text = text or TextEncoder(device=device)
        self.meta = meta or {}
        self.source = source
        self.device = device
        self.joint_names = tuple(self.config.joint_names)
        self.cameras = tuple(self.config.cameras)
        self.horizon = self.config.horizon
        self.chunk_dt = self.config.chunk_dt
        self.input_size = tuple(self.config.image_size)

    @classmethod
    def load(
        cls, path: str | Path, text: TextEncoder | None = None, device: str = "cpu"
    ) -> CompactVLAPolicy:
        model, meta = load_model(path, device)
        return cls(model, text, meta, str(path), device)

    def describe(self) -> str:
        return f"compact VLA {self.source or ''}".strip()

    def reset(self) -> None:
        """Stateless between calls: nothing to clear."""

    def check_instruction(self, instruction: str) -> None:
        try:
            self.text.check(instruction)
        except InstructionError as err:
            raise PolicyError(f"{self.describe()}: {err}") from err

    @torch.no_grad()
    def predict(
        self, obs: Observation, instruction: str, committed: np.ndarray | None = None
    ) -> ActionChunk:
        return self.predict_batch([obs], [instruction], [committed])[0]

    @torch.no_grad()
    def predict_batch(
        self,
        observations: list[Observation],
        instructions: list[str],
        committed: list[np.ndarray | None] | None = None,
    ) -> list[ActionChunk]:
        m, cfg = self.model, self.config
        for obs in observations:
            self.check_observation(obs)
        try:
            text = self.text.encode(instructions).to(self.device)
        except InstructionError as err:
            raise PolicyError(f"{self.describe()}: {err}") from err
        images = {
            cam: images_to_tensor([o.images[cam] for o in observations], cfg.image_size).to(
                self.device
            )
            for cam in cfg.cameras
        }
        raw_state = torch.from_numpy(np.stack([o.joint_pos for o in observations])).float()
        raw_state = raw_state.to(self.device)
        state = m.normalise_state(raw_state)
        prefix = prefix_len = None
        committed = committed or [None] * len(observations)
        if any(c is not None and len(c) for c in committed):
            prefix = torch.zeros(len(observations), cfg.horizon, cfg.action_dim)
            prefix_len = torch.zeros(len(observations), dtype=torch.long)
            for b, c in enumerate(committed):
                if c is None or not len(c):
                    continue
                c = np.asarray(c, dtype=np.float32)[: cfg.max_prefix]
                if c.ndim != 2 or c.shape[1] != cfg.action_dim:
                    raise PolicyError(
                        f"{self.describe()}: committed prefix has shape {c.shape}, expected "
                        f"(k, {cfg.action_dim})"
                    )
                prefix[b, : len(c)] = m.normalise_action(torch.from_numpy(c), raw_state[b])
                prefix_len[b] = len(c)
        out = m.sample(images, text, state, prefix, prefix_len)
        out = m.unnormalise_action(out, raw_state).cpu().numpy()
        times = self.chunk_times()
        return [
            ActionChunk(
                stamp=obs.stamp,
                joint_names=self.joint_names,
                positions=out[b].astype(np.float64),
                times=times,
                source=ControlSource.POLICY,
            )
            for b, obs in enumerate(observations)
        ]
