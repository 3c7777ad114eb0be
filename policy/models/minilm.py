"""A sentence-transformers BERT model (all-MiniLM-L6-v2) run in plain torch.

Why not ``sentence_transformers.SentenceTransformer``: importing it pulls in transformers'
generation stack, scikit-learn and scipy, 7-9 s on a 2-core machine before a single weight is
read. Every process that loads a compact policy or critic (the policy and critic nodes, each
child of ``dojo policy``/``dojo critic``) paid that at start. The model itself is a plain BERT
encoder followed by mean pooling and L2 normalisation; this module runs exactly that from the
same files (``config.json``, ``model.safetensors``, ``tokenizer.json``), with the Rust
``tokenizers`` library that transformers itself wraps. ``tests/policy/test_minilm.py`` checks the
token ids and embeddings against ``SentenceTransformer`` on the shipped model.

:func:`load` returns ``None`` for a model directory that is not that shape (another pooling, no
normalisation, not a BERT): the caller then falls back to ``SentenceTransformer``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.attn_out = nn.Linear(dim, dim)
        self.attn_norm = nn.LayerNorm(dim, eps=eps)
        self.ffn_in = nn.Linear(dim, ffn)
        self.ffn_out = nn.Linear(ffn, dim)
        self.ffn_norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, h, d // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h) + mask
        ctx = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
        x = self.attn_norm(x + self.attn_out(ctx))
        return self.ffn_norm(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class MiniLM(nn.Module):
    """BERT encoder -> mean over the real tokens -> L2 normalised, as the sentence-transformers
    pipeline ``Transformer, Pooling(mean), Normalize`` computes it (eval mode: no dropout)."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        dim, eps = int(cfg["hidden_size"]), float(cfg["layer_norm_eps"])
        self.word = nn.Embedding(int(cfg["vocab_size"]), dim)
        self.position = nn.Embedding(int(cfg["max_position_embeddings"]), dim)
        self.token_type = nn.Embedding(int(cfg["type_vocab_size"]), dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(dim, int(cfg["num_attention_heads"]), int(cfg["intermediate_size"]), eps)
            for _ in range(int(cfg["num_hidden_layers"]))
        )

    def forward(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        """``ids``, ``attention``: ``(B, N)`` token ids and 1/0 for real/padding tokens."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(positions)[None] + self.token_type.weight[0]
        x = self.norm(x)
        keep = attention[:, None, None, :].to(x.dtype)
        mask = (1.0 - keep) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, mask)
        w = attention[..., None].to(x.dtype)
        pooled = (x * w).sum(1) / w.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)


def _weights(state: dict[str, torch.Tensor], n_layers: int) -> dict[str, torch.Tensor]:
    """The BERT checkpoint's names -> this module's."""
    e = "embeddings."
    out = {
        "word.weight": state[e + "word_embeddings.weight"],
        "position.weight": state[e + "position_embeddings.weight"],
        "token_type.weight": state[e + "token_type_embeddings.weight"],
        "norm.weight": state[e + "LayerNorm.weight"],
        "norm.bias": state[e + "LayerNorm.bias"],
    }
    names = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attn_out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm",
        "ffn_in": "intermediate.dense",
        "ffn_out": "output.dense",
        "ffn_norm": "output.LayerNorm",
    }
    for i in range(n_layers):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                out[f"layers.{i}.{ours}.{p}"] = state[f"encoder.layer.{i}.{theirs}.{p}"]
    return out


def _is_mean_normalised_bert(model_dir: Path) -> bool:
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
        types = [m["type"].rsplit(".", 1)[-1] for m in modules]
        if types != ["Transformer", "Pooling", "Normalize"] or modules[0]["path"] != "":
            return False
        pooling = json.loads((model_dir / modules[1]["path"] / "config.json").read_text())
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
        cfg = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return False
    return (
        modes == {"pooling_mode_mean_tokens"}
        and cfg.get("model_type") == "bert"
        and cfg.get("position_embedding_type", "absolute") == "absolute"
        and cfg.get("hidden_act") == "gelu"
        and (model_dir / "model.safetensors").exists()
        and (model_dir / "tokenizer.json").exists()
    )


class SentenceEncoder:
    """``tokenize(text) -> ids`` (with [CLS]/[SEP], untruncated) and ``encode(texts) -> (B, D)``
    float32, L2-normalised; ``max_seq_length`` from ``sentence_bert_config.json``."""

    def __init__(self, model_dir: Path, device: str = "cpu") -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        cfg = json.loads((model_dir / "config.json").read_text())
        st = json.loads((model_dir / "sentence_bert_config.json").read_text())
        self.max_seq_length = int(st["max_seq_length"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # as transformers' fast tokenizer: the file's own truncation and padding are not used
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.model = MiniLM(cfg)
        state = load_file(str(model_dir / "model.safetensors"))
        self.model.load_state_dict(_weights(state, int(cfg["num_hidden_layers"])))
        self.model.eval().to(device)
        self.device = device

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        rows = [self.tokenize(t) for t in texts]
        for t, r in zip(texts, rows, strict=True):
            if len(r) > self.max_seq_length:  # the caller checks first (TextEncoder.check)
                raise ValueError(f"{len(r)} tokens, over {self.max_seq_length}: {t[:60]!r}")
        n = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), n, dtype=torch.long)
        attention = torch.zeros(len(rows), n, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            attention[i, : len(r)] = 1
        return self.model(ids.to(self.device), attention.to(self.device))


def load(model_dir: Path, device: str = "cpu") -> SentenceEncoder | None:
    """The plain-torch encoder for ``model_dir``, or ``None`` when it is not a mean-pooled,
    normalised BERT sentence-transformers model."""
    if not _is_mean_normalised_bert(model_dir):
        return None
    return SentenceEncoder(model_dir, device)
