"""The one place a critic backend is chosen: :func:`load_critic`.

``compact``: the critic trained here (:class:`critic.models.compact.CompactCritic`, a ``dojo
train critic`` directory). ``vlm``: an image-text-to-text model prompted in VLAC's pairwise
format (:class:`critic.vlm.VLMCritic`, a model directory). :data:`CRITICS` is a
:class:`robot.registry.Registry` of their loaders; each imports its backend on first use, so
choosing or listing a backend imports neither torch nor transformers. The loaders take the
same keywords (``device``, and ``cameras``/``max_new_tokens`` a VLM uses, ``text_encoder`` a
compact critic uses) and ignore what their backend has no use for.

A backend is named either by the ``critic.backend`` key (the node) or, where only a path is
given (``dojo eval critic critic=...``, relabelling), by a ``<backend>:`` prefix on the path:
``vlm:/models/vlac``. A path without a known prefix is a compact critic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from critic.base import CriticError, ProgressCritic
from robot.registry import Registry, UnknownNameError


def _load_compact(
    path: str | Path, *, device: str = "cpu", text_encoder: Any = None, **_: Any
) -> ProgressCritic:
    from critic.models.compact import CompactCritic

    return CompactCritic.load(path, text_encoder=text_encoder, device=device)


def _load_vlm(path: str | Path, *, device: str = "cpu", **kwargs: Any) -> ProgressCritic:
    from critic.vlm import VLMCritic

    kwargs.pop("text_encoder", None)  # the VLM reads the instruction itself
    return VLMCritic.from_pretrained(str(path), device=device, **kwargs)


CRITICS: Registry[ProgressCritic] = Registry("critic backend")
CRITICS.register("compact", _load_compact, doc="a `dojo train critic` directory")
CRITICS.register("vlm", _load_vlm, doc="a VLAC-style image-text model directory")


def split_backend(path: str | Path) -> tuple[str, str]:
    """``("vlm", "/m")`` for ``"vlm:/m"``; ``("compact", path)`` for a path with no prefix."""
    text = str(path)
    prefix, sep, rest = text.partition(":")
    if sep and prefix in CRITICS and prefix != "compact":
        return prefix, rest
    return "compact", text


def load_critic(path: str | Path, backend: str = "", **kwargs: Any) -> ProgressCritic:
    """The critic at ``path``, loaded by ``backend`` (default: from the path's prefix);
    ``kwargs`` go to the backend's loader."""
    if not backend:
        backend, path = split_backend(path)
    try:
        loader = CRITICS.entry(backend).load()
    except UnknownNameError as err:
        raise CriticError(str(err)) from None
    return loader(path, **kwargs)
