"""The compact critic: a two-frame progress model small enough to train on a CPU in minutes.

Each frame (every camera) goes through the policy's kind of vision encoder (a small CNN,
FiLM-conditioned on the frozen MiniLM embedding of the instruction, so the network looks at the
cube the sentence names) and becomes one embedding ``e``. Heads:

- **delta** ``tanh(MLP[e_a, e_b, e_b - e_a, ref])``: VLAC's pairwise progress, in [-1, 1];
- **reject** ``sigmoid(MLP[...])``: the instruction is not what these frames are doing;
- **done** ``sigmoid(MLP[e])``: the goal holds;
- **value** ``sigmoid(MLP[e])``: absolute progress, an auxiliary training target only.

**Reference demonstration** (optional): ``K`` frames of a demonstration of the same instruction
are embedded too; each frame attends over them (a learned query/key product) and the expected
position along the demonstration, with the attention weights, goes into the pair head. Trained
with and without a reference (the reference path on a sub-batch each step), so the same weights
serve both, and a task seen in no training episode can still be scored by where its frames sit
along its one demonstration. ``ref_align="neutral"`` (default) aligns embeddings made without
the instruction's FiLM conditioning: an unseen sentence would otherwise modulate the encoder
out of its training range exactly where the reference is meant to help (measured on the push
variant left out of training: see ``bench/critic.py``).

Checkpoints are a directory: ``model.safetensors`` (weights) and ``critic.json`` (config,
cameras and the frame size each was trained on, instruction vocabulary, id and version, training
summary), each written to a temporary name and renamed. No pickle. The critic id is
``<name>-<8 hex of sha256(weights + config)>``: the same weights always write the same reward
arrays, and a retrained critic never overwrites another's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from critic.base import (
    CriticError,
    Frames,
    ProgressCritic,
    Reference,
    check_frames,
    check_reference,
    instructions_for,
)
from critic.value import accumulate, relative_delta, step
from policy.models.encoders import TEXT_DIM, ImageEncoder, InstructionError, images_to_tensor

WEIGHTS = "model.safetensors"
META = "critic.json"
FORMAT = "vla-dojo.compact-critic/1"


@dataclass
class CompactConfig:
    """Architecture, and the inputs the critic accepts.

    ``camera_sizes``: camera -> ``[height, width]`` of the frames it was trained on (the
    store's); ``image_size``: what the encoder sees after resizing. ``ref_frames``: ``K``.
    """

    name: str = "compact"
    cameras: list[str] = field(default_factory=lambda: ["front", "wrist"])
    camera_sizes: dict[str, list[int]] = field(default_factory=dict)
    image_size: list[int] = field(default_factory=lambda: [72, 96])
    widths: list[int] = field(default_factory=lambda: [32, 64])
    token_dim: int = 32
    embed_dim: int = 128
    hidden: int = 256
    ref_frames: int = 8
    key_dim: int = 64
    ref_align: str = "neutral"

    def __post_init__(self) -> None:
        if not self.cameras:
            raise CriticError("compact critic: 'cameras' is empty")
        if len(self.image_size) != 2 or min(self.image_size) < 16:
            raise CriticError(f"compact critic: image_size={self.image_size} must be [h, w] >= 16")
        if any(w % 8 for w in self.widths):
            raise CriticError(f"compact critic: widths={self.widths} must be multiples of 8")
        if self.ref_frames < 2:
            raise CriticError(f"compact critic: ref_frames={self.ref_frames} must be >= 2")
        if self.ref_align not in ("instruction", "neutral"):
            raise CriticError(
                f"compact critic: ref_align={self.ref_align!r} is not 'instruction' or 'neutral'"
            )


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
        nn.Linear(hidden, n_out),
    )  # fmt: skip


class CompactCriticNet(nn.Module):
    """The network. Inputs are tensors; :class:`CompactCritic` does the checking."""

    def __init__(self, cfg: CompactConfig) -> None:
        super().__init__()
        self.cfg = cfg
        size = (int(cfg.image_size[0]), int(cfg.image_size[1]))
        self.encoders = nn.ModuleDict(
            {
                cam: ImageEncoder(
                    dim=cfg.token_dim, size=size, cond_dim=TEXT_DIM, widths=tuple(cfg.widths)
                )
                for cam in cfg.cameras
            }
        )
        n_tok = next(iter(self.encoders.values())).n_tokens
        self.text_proj = nn.Linear(TEXT_DIM, 64)
        flat = len(cfg.cameras) * n_tok * cfg.token_dim + 64
        self.frame = nn.Sequential(
            nn.Linear(flat, cfg.embed_dim * 2), nn.GELU(),
            nn.Linear(cfg.embed_dim * 2, cfg.embed_dim), nn.LayerNorm(cfg.embed_dim),
        )  # fmt: skip
        self.query = nn.Linear(cfg.embed_dim, cfg.key_dim)
        self.key = nn.Linear(cfg.embed_dim, cfg.key_dim)
        k = cfg.ref_frames
        self.n_ref_feats = 3 + 2 * k + 1
        self.pair = _mlp(3 * cfg.embed_dim + self.n_ref_feats, cfg.hidden, 2)
        self.done_head = _mlp(cfg.embed_dim, cfg.hidden // 2, 1)
        self.value_head = _mlp(cfg.embed_dim, cfg.hidden // 2, 1)
        self.register_buffer("ref_pos", torch.linspace(0.0, 1.0, k))
        # MiniLM embeddings of "put the red/blue cube ..." differ by little; centring them on
        # the training vocabulary and scaling to unit size makes the difference the signal
        self.register_buffer("text_center", torch.zeros(TEXT_DIM))
        self.register_buffer("text_scale", torch.ones(()))

    def set_text_stats(self, vocab_embeddings: torch.Tensor) -> None:
        """Centre and scale of instruction embeddings, from the training vocabulary."""
        center = vocab_embeddings.mean(0)
        norm = (vocab_embeddings - center).norm(dim=1).mean()
        self.text_center.copy_(center)
        self.text_scale.fill_(1.0 / float(norm) if float(norm) > 1e-4 else 1.0)

    def embed(self, images: Mapping[str, torch.Tensor], text: torch.Tensor) -> torch.Tensor:
        """``images``: camera -> ``(B, 3, h, w)`` in [0, 1]; ``text``: ``(B, 384)``."""
        cond = (text - self.text_center) * self.text_scale
        parts = [self.encoders[c](images[c], cond).flatten(1) for c in self.cfg.cameras]
        parts.append(self.text_proj(cond))
        return self.frame(torch.cat(parts, dim=1))

    def align(self, e: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention of frames ``e (B, D)`` over reference frames ``ref (B or 1, K, D)``:
        weights ``(B, K)`` and the expected position along the reference ``(B,)``."""
        q = self.query(e)[:, None, :]
        k = self.key(ref)
        w = torch.softmax((q * k).sum(-1) / self.cfg.key_dim**0.5, dim=-1)
        return w, (w * self.ref_pos).sum(-1)

    def neutral_text(self, n: int) -> torch.Tensor:
        """The text input whose conditioning is zero: frames embedded for what they show, not
        for an instruction (``ref_align="neutral"``: alignment to a reference of a task whose
        sentence the critic never saw)."""
        return self.text_center.expand(n, -1)

    def pair_out(
        self,
        e_a: torch.Tensor,
        e_b: torch.Tensor,
        ref: torch.Tensor | None = None,
        align: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Delta in [-1, 1], reject logit, and (with a reference) positions ``(B, 2)``.
        ``align``: the embeddings aligned to the reference, when not ``e_a``/``e_b``."""
        b = e_a.shape[0]
        pos = None
        if ref is None:
            feats = e_a.new_zeros(b, self.n_ref_feats)
        else:
            x_a, x_b = align if align is not None else (e_a, e_b)
            w_a, p_a = self.align(x_a, ref)
            w_b, p_b = self.align(x_b, ref)
            one = e_a.new_ones(b, 1)
            feats = torch.cat([p_a[:, None], p_b[:, None], (p_b - p_a)[:, None], w_a, w_b, one], 1)
            pos = torch.stack([p_a, p_b], 1)
        out = self.pair(torch.cat([e_a, e_b, e_b - e_a, feats], dim=1))
        return torch.tanh(out[:, 0]), out[:, 1], pos

    def done_logit(self, e: torch.Tensor) -> torch.Tensor:
        return self.done_head(e)[:, 0]

    def value(self, e: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.value_head(e)[:, 0])


_TEXT_ENCODER = None


def shared_text_encoder():
    """One frozen MiniLM per process (loading it takes seconds; it never changes)."""
    global _TEXT_ENCODER
    if _TEXT_ENCODER is None:
        from policy.models.encoders import TextEncoder

        _TEXT_ENCODER = TextEncoder()
    return _TEXT_ENCODER


class CompactCritic(ProgressCritic):
    """:class:`ProgressCritic` over a :class:`CompactCriticNet` (see the module docstring)."""

    def __init__(
        self,
        net: CompactCriticNet,
        *,
        meta: Mapping[str, Any] | None = None,
        text_encoder: Any = None,
        device: str = "cpu",
    ) -> None:
        self.net = net.to(device).eval()
        self.cfg = net.cfg
        self.device = torch.device(device)
        self.meta = dict(meta or {})
        self.critic_id = str(self.meta.get("critic_id", f"{self.cfg.name}-untrained"))
        self.version = str(self.meta.get("version", "0"))
        self.instructions = list(self.meta.get("instructions", []))
        self.image_sizes = {
            c: tuple(int(v) for v in self.cfg.camera_sizes.get(c, self.cfg.image_size))
            for c in self.cfg.cameras
        }
        self.text = text_encoder if text_encoder is not None else shared_text_encoder()
        self._ref_cache: tuple[Reference, torch.Tensor] | None = None
        self._neutral = self.cfg.ref_align == "neutral"

    # -- tensors -----------------------------------------------------------------------------

    def _text(self, texts: Sequence[str]) -> torch.Tensor:
        try:
            return self.text.encode(list(texts)).to(self.device)
        except InstructionError as err:
            raise CriticError(str(err)) from err

    def _images(self, frames: Frames, idx: np.ndarray | slice = slice(None)) -> dict:
        size = tuple(int(v) for v in self.cfg.image_size)
        return {
            c: images_to_tensor(np.asarray(frames[c][idx]), size).to(self.device)
            for c in self.cfg.cameras
        }

    @torch.no_grad()
    def embed_frames(
        self, frames: Frames, texts: Sequence[str], batch_size: int = 128, neutral: bool = False
    ):
        """Embeddings ``(B, D)`` of already-checked frames (``neutral``: without the
        instruction's conditioning)."""
        n = len(texts)
        out = []
        for s in range(0, n, batch_size):
            sl = slice(s, min(n, s + batch_size))
            m = sl.stop - sl.start
            text = self.net.neutral_text(m) if neutral else self._text(texts[sl])
            out.append(self.net.embed(self._images(frames, sl), text))
        return torch.cat(out) if out else torch.zeros(0, self.cfg.embed_dim)

    @torch.no_grad()
    def _reference(self, reference: Reference | None) -> torch.Tensor | None:
        if reference is None:
            return None
        if self._ref_cache is not None and self._ref_cache[0] is reference:
            return self._ref_cache[1]
        k = self.cfg.ref_frames
        n = next(iter(reference.frames.values())).shape[0]
        idx = np.linspace(0, n - 1, k).round().astype(int)  # K frames whatever it was given
        frames = {c: np.asarray(reference.frames[c])[idx] for c in self.cfg.cameras}
        ref = self.embed_frames(frames, [reference.instruction] * k, neutral=self._neutral)[None]
        self._ref_cache = (reference, ref)  # holds the object: its id cannot be reused
        return ref

    # -- ProgressCritic ----------------------------------------------------------------------

    @torch.no_grad()
    def delta_frames(self, frames_a, frames_b, instructions, reference=None) -> np.ndarray:
        n = check_frames(frames_a, self.image_sizes, "first frames")
        if check_frames(frames_b, self.image_sizes, "second frames") != n:
            raise CriticError("delta: the two sides have different batch sizes")
        texts = instructions_for(instructions, n)
        check_reference(reference, texts, self.image_sizes)
        ref = self._reference(reference)
        e_a = self.embed_frames(frames_a, texts)
        e_b = self.embed_frames(frames_b, texts)
        align = None
        if ref is not None and self._neutral:
            align = (self.embed_frames(frames_a, texts, neutral=True),
                     self.embed_frames(frames_b, texts, neutral=True))  # fmt: skip
        return self._deltas(e_a, e_b, ref, align)

    def _deltas(self, e_a, e_b, ref, align=None) -> np.ndarray:
        d, _, _ = self.net.pair_out(e_a, e_b, ref, align)
        return d.double().cpu().numpy()

    @torch.no_grad()
    def done_frames(self, frames, instructions) -> np.ndarray:
        n = check_frames(frames, self.image_sizes, "frames")
        texts = instructions_for(instructions, n)
        e = self.embed_frames(frames, texts)
        return torch.sigmoid(self.net.done_logit(e)).double().cpu().numpy()

    @torch.no_grad()
    def reject_frames(self, frames_a, frames_b, instructions) -> np.ndarray:
        n = check_frames(frames_a, self.image_sizes, "first frames")
        check_frames(frames_b, self.image_sizes, "second frames")
        texts = instructions_for(instructions, n)
        e_a = self.embed_frames(frames_a, texts)
        e_b = self.embed_frames(frames_b, texts)
        _, logit, _ = self.net.pair_out(e_a, e_b, None)
        return torch.sigmoid(logit).double().cpu().numpy()

    @torch.no_grad()
    def episode(
        self,
        frames: Frames,
        instruction: str,
        reference: Reference | None = None,
        mode: str = "chain",
    ) -> dict[str, np.ndarray]:
        """Everything about one episode's frames ``(T, ...)`` from one pass of the encoder:
        progress values, deltas (as :meth:`progress`), done probabilities per frame."""
        n, e, ref, x = self._embed_episode(frames, instruction, reference)
        done = torch.sigmoid(self.net.done_logit(e)).double().cpu().numpy()
        if n == 1:
            return {"values": np.zeros(1), "deltas": np.zeros(0), "done": done}
        if mode == "chain":
            deltas = self._deltas(e[:-1], e[1:], ref, (x[:-1], x[1:]))
            values = accumulate(deltas)
        elif mode == "anchor":
            first = (e[:1].expand(n - 1, -1), x[:1].expand(n - 1, -1))
            c0 = self._deltas(first[0], e[1:], ref, (first[1], x[1:]))
            values = np.concatenate([[0.0], step(0.0, c0)])
            deltas = relative_delta(values[:-1], values[1:])
        else:
            raise CriticError(f"progress mode {mode!r} is not 'chain' or 'anchor'")
        return {"values": values, "deltas": deltas, "done": done}

    def _embed_episode(self, frames, instruction, reference):
        """One encoder pass over an episode's frames: ``(n, e, ref, x)``, where ``x`` is what
        is matched to the reference (the frames without text conditioning when the critic
        aligns them neutrally, else ``e``)."""
        n = check_frames(frames, self.image_sizes, "episode frames")
        texts = instructions_for(instruction, n)
        check_reference(reference, texts[:1], self.image_sizes)
        e = self.embed_frames(frames, texts)
        ref = self._reference(reference)
        x = (
            self.embed_frames(frames, texts, neutral=True)
            if ref is not None and self._neutral
            else e
        )
        return n, e, ref, x

    @torch.no_grad()
    def pairs_within(
        self, frames, instruction, ia, ib, reference=None, with_reject=False, batch_size=64
    ) -> dict[str, np.ndarray]:
        _, e, ref, x = self._embed_episode(frames, instruction, reference)
        ia, ib = np.asarray(ia), np.asarray(ib)
        d, logit, _ = self.net.pair_out(e[ia], e[ib], ref, (x[ia], x[ib]))
        out = {"delta": d.double().cpu().numpy()}
        if with_reject:
            _, logit, _ = self.net.pair_out(e[ia], e[ib], None)
            out["reject"] = torch.sigmoid(logit).double().cpu().numpy()
        return out

    def progress(self, frames, instruction, reference=None, mode="chain", batch_size=64):
        out = self.episode(frames, instruction, reference, mode)
        return out["values"], out["deltas"]

    # -- checkpoints -------------------------------------------------------------------------

    def save(self, directory: str | Path, extra: Mapping[str, Any] | None = None) -> str:
        """Write the checkpoint; returns the critic id (derived from the weights)."""
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        tmp = out / f".{WEIGHTS}.tmp"
        save_file(tensors, str(tmp), metadata={"format": FORMAT})
        cfg = asdict(self.cfg)
        digest = hashlib.sha256(tmp.read_bytes())
        digest.update(json.dumps(cfg, sort_keys=True).encode())
        short = digest.hexdigest()[:8]
        meta = {
            **self.meta,
            **dict(extra or {}),
            "format": FORMAT,
            "config": cfg,
            "critic_id": f"{self.cfg.name}-{short}",
            "version": short,
            "instructions": self.instructions,
        }
        os.replace(tmp, out / WEIGHTS)
        tmp_meta = out / f".{META}.tmp"
        tmp_meta.write_text(json.dumps(meta, indent=2, default=float) + "\n")
        os.replace(tmp_meta, out / META)
        self.meta, self.critic_id, self.version = meta, meta["critic_id"], short
        return self.critic_id

    @classmethod
    def load(
        cls, path: str | Path, *, text_encoder: Any = None, device: str = "cpu"
    ) -> CompactCritic:
        """Load a checkpoint directory (or its ``critic.json``)."""
        from safetensors.torch import load_file

        p = Path(path)
        directory = p.parent if p.name == META else p
        meta_file, weights = directory / META, directory / WEIGHTS
        if not meta_file.exists() or not weights.exists():
            raise CriticError(
                f"critic checkpoint {path}: expected {META} and {WEIGHTS} in {directory}"
            )
        try:
            meta = json.loads(meta_file.read_text())
        except json.JSONDecodeError as err:
            raise CriticError(f"critic checkpoint {meta_file}: not JSON ({err})") from err
        if meta.get("format") != FORMAT:
            raise CriticError(
                f"critic checkpoint {meta_file}: format {meta.get('format')!r}, expected {FORMAT!r}"
            )
        # checkpoints from before ref_align existed aligned instruction-conditioned embeddings
        cfg = CompactConfig(**{"ref_align": "instruction", **meta["config"]})
        net = CompactCriticNet(cfg)
        state = load_file(str(weights))
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise CriticError(
                f"critic checkpoint {weights}: weights do not fit the config "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
        return cls(net, meta=meta, text_encoder=text_encoder, device=device)
