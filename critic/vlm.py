"""The VLM backend: an image-text-to-text model from ``transformers`` prompted as VLAC is.

VLAC's released checkpoints answer a pairwise question about two images with a signed
percentage ("+35%": the second image is 35% closer to the goal; "-20%": further away). This
backend asks exactly that question, batched, and parses the answer; with a reference
demonstration it prefixes VLAC's trajectory prompt (the reference frames labelled 0% .. 100%,
then the episode's first frame as "the trajectory beginning"). The intended models are VLAC's
on a GPU workstation; anything ``AutoModelForImageTextToText`` loads works the same way, and
the tests run it on a tiny randomly initialised model (prompt assembly, batching, parsing,
malformed answers: not accuracy).

A malformed answer (no number, a number beyond 100%, no yes/no) is NaN, never a guess: callers
drop it (the node publishes nothing, relabelling refuses the episode and says which step).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from critic.base import (
    CriticError,
    Frames,
    ProgressCritic,
    Reference,
    check_frames,
    check_reference,
    instructions_for,
)

IMAGE = "<image>"
PAIR_PROMPT = (
    "Image-1: <image>\nImage-2: <image>\nCompare two images and evaluate whether the second "
    "image is closer to achieving task objectives compared to the first image. + score means "
    "the second image is closer, - score means the first image is closer\nResponse the relative "
    "progressing of target task follow <score>. The target task is: <task> {task} </task> <score>"
)
BEGINNING = "0% <image>\nThis image is the trajectory beginning of the following two images\n"
DONE_PROMPT = (
    "<image>\nHas the target task been completed in this image? Answer yes or no. "
    "The target task is: <task> {task} </task>"
)

_NUMBER = re.compile(r"([+-]?)\s*(\d+(?:\.\d+)?)\s*(%?)")


def trajectory_prompt(task: str, k: int) -> str:
    """VLAC's reference-trajectory prefix: ``k`` frames labelled 0% .. 100%."""
    parts = [f"<trajectory> <task> {task} </task>:"]
    for i in range(k):
        parts.append(f" {int(i / max(k - 1, 1) * 100)}% <image>\n")
    return "".join(parts) + "</trajectory>"


def pair_prompt(task: str, reference_frames: int = 0) -> str:
    """The pairwise prompt, with the reference prefix when ``reference_frames > 0``."""
    if reference_frames > 0:
        return trajectory_prompt(task, reference_frames) + BEGINNING + PAIR_PROMPT.format(task=task)
    return PAIR_PROMPT.format(task=task)


def parse_delta(text: str) -> float:
    """The signed percentage of an answer as a fraction in [-1, 1]; NaN when malformed."""
    if not isinstance(text, str):
        return math.nan
    body = text.split("<score>")[-1] if "<score>" in text else text
    m = _NUMBER.search(body)
    if m is None:
        return math.nan
    value = float(m.group(2))
    if m.group(3) != "%" and value <= 1.0 and "." in m.group(2):
        value *= 100.0  # "0.35" means 35%
    if value > 100.0:
        return math.nan
    return (-value if m.group(1) == "-" else value) / 100.0


def parse_done(text: str) -> float:
    """1 for yes, 0 for no, NaN otherwise."""
    if not isinstance(text, str):
        return math.nan
    words = re.findall(r"[a-z]+", text.lower())
    if not words:
        return math.nan
    if words[0] in ("yes", "done", "completed", "true"):
        return 1.0
    if words[0] in ("no", "not", "false"):
        return 0.0
    return math.nan


class VLMCritic(ProgressCritic):
    """A :class:`ProgressCritic` that prompts an image-text-to-text model.

    ``cameras``: which camera's frames are shown (VLAC takes one view). ``image_sizes``: the
    frame size accepted per camera (``None`` in a size: any). ``batch_size``: prompts per
    ``generate`` call. ``chat_template``: wrap prompts with the processor's chat template.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        cameras: Sequence[str] = ("front",),
        image_sizes: dict[str, tuple[int, int]] | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 12,
        chat_template: bool = False,
        critic_id: str = "vlm",
        version: str = "0",
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.image_sizes = dict(image_sizes or {c: (0, 0) for c in cameras})
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.chat_template = chat_template
        self.critic_id = critic_id
        self.version = version
        self.image_token = getattr(processor, "image_token", None) or IMAGE
        self.last_answers: list[str] = []

    @classmethod
    def from_pretrained(cls, path: str, device: str = "cpu", **kwargs: Any) -> VLMCritic:
        """Load a local model directory (VLAC or another image-text-to-text model)."""
        import hashlib

        from transformers import AutoModelForImageTextToText, AutoProcessor

        p = Path(path)
        if not p.exists():
            raise CriticError(f"VLM critic: no model at {path}")
        processor = AutoProcessor.from_pretrained(str(p))
        model = AutoModelForImageTextToText.from_pretrained(str(p)).to(device)
        tag = hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:8]
        kwargs.setdefault("critic_id", f"vlm-{p.name}-{tag}"[:100])
        kwargs.setdefault("chat_template", getattr(processor, "chat_template", None) is not None)
        return cls(model, processor, **kwargs)

    # -- sizes: a VLM takes any frame size, unless told otherwise ----------------------------

    def _check(self, frames: Frames, what: str) -> int:
        sizes = {
            c: (s if s[0] > 0 else frames[c].shape[1:3] if c in frames and frames[c].ndim == 4
                else s)
            for c, s in self.image_sizes.items()
        }  # fmt: skip
        return check_frames(frames, sizes, what)

    # -- prompting ---------------------------------------------------------------------------

    def render(self, prompt: str) -> str:
        """The prompt as the model reads it: image placeholders in the model's own token, and
        the chat template where the processor has one and it is asked for."""
        if self.chat_template and getattr(self.processor, "chat_template", None):
            pieces = prompt.split(IMAGE)
            content: list[dict[str, str]] = []
            for i, piece in enumerate(pieces):
                if piece:
                    content.append({"type": "text", "text": piece})
                if i < len(pieces) - 1:
                    content.append({"type": "image"})
            return self.processor.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
            )
        return prompt.replace(IMAGE, self.image_token)

    def generate(self, prompts: Sequence[str], images: Sequence[list[np.ndarray]]) -> list[str]:
        """Answers to ``prompts`` (each with its list of RGB frames), ``batch_size`` at a time."""
        import torch

        answers: list[str] = []
        tok = getattr(self.processor, "tokenizer", self.processor)
        if getattr(tok, "padding_side", "left") != "left":
            tok.padding_side = "left"
        for s in range(0, len(prompts), self.batch_size):
            texts = [self.render(p) for p in prompts[s : s + self.batch_size]]
            imgs = [list(x) for x in images[s : s + self.batch_size]]
            inputs = self.processor(text=texts, images=imgs, return_tensors="pt", padding=True)
            inputs.pop("token_type_ids", None)  # BERT-style tokenizers add it; VLMs refuse it
            inputs = inputs.to(self.model.device)
            with torch.no_grad():
                out = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
                )
            new = out[:, inputs["input_ids"].shape[1] :]
            answers += [str(a) for a in tok.batch_decode(new, skip_special_tokens=True)]
        self.last_answers = answers
        return answers

    def delta_frames(self, frames_a, frames_b, instructions, reference: Reference | None = None):
        n = self._check(frames_a, "first frames")
        if self._check(frames_b, "second frames") != n:
            raise CriticError("delta: the two sides have different batch sizes")
        texts = instructions_for(instructions, n)
        if reference is not None:
            check_reference(
                reference,
                texts,
                {c: tuple(reference.frames[c].shape[1:3]) if c in reference.frames else (0, 0)
                 for c in self.cameras},
            )  # fmt: skip
        cam = self.cameras[0]
        prompts, images = [], []
        for i in range(n):
            a, b = frames_a[cam][i], frames_b[cam][i]
            if reference is None:
                prompts.append(pair_prompt(texts[i]))
                images.append([a, b])
            else:
                ref = list(np.asarray(reference.frames[cam]))
                prompts.append(pair_prompt(texts[i], len(ref)))
                images.append([*ref, a, a, b])  # the pair's first frame stands for the beginning
        answers = self.generate(prompts, images)
        return np.asarray([parse_delta(a) for a in answers], dtype=np.float64)

    def done_frames(self, frames, instructions):
        n = self._check(frames, "frames")
        texts = instructions_for(instructions, n)
        cam = self.cameras[0]
        answers = self.generate(
            [DONE_PROMPT.format(task=t) for t in texts], [[frames[cam][i]] for i in range(n)]
        )
        return np.asarray([parse_done(a) for a in answers], dtype=np.float64)
