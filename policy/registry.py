"""The one place a policy backend is chosen: ``load_policy(backend, checkpoint, ...)``.

``compact``: the compact VLA (:mod:`policy.compact`). ``lerobot``: LeRobot's pretrained VLAs
(:mod:`policy.lerobot_adapters`). :data:`BACKENDS` is a :class:`robot.registry.Registry`;
a practice checkpoint (``practice.json``, written by :mod:`policy.learner`) loads whatever
backend it names as its frozen base, with the learner's actor on top. Each entry's loader
imports its backend on first use, so listing the names (config validation,
``--help``) imports neither torch nor LeRobot. Every loader takes the same keywords and uses
those its backend needs; adding a backend is one loader and one ``register`` line here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

from policy.base import ChunkPolicy, PolicyError
from robot.registry import Registry, UnknownNameError


@functools.cache
def _text_encoder(device: str):
    """One text encoder per device for the process: every compact checkpoint loaded (a hot
    swap included) shares it rather than loading MiniLM again."""
    from policy.models.encoders import TextEncoder

    return TextEncoder(device=device)


def _load_compact(checkpoint: str, *, text=None, device: str = "cpu", **_: object) -> ChunkPolicy:
    from policy.compact import CompactVLAPolicy

    return CompactVLAPolicy.load(checkpoint, text=text or _text_encoder(device), device=device)


def _load_lerobot(
    checkpoint: str,
    *,
    joint_names: Sequence[str],
    cameras: Sequence[str],
    device: str = "cpu",
    camera_map: Mapping[str, str] | None = None,
    fps: float = 0.0,
    tokenizer: str = "",
    **_: object,
) -> ChunkPolicy:
    from policy.lerobot_adapters import LeRobotPolicy

    return LeRobotPolicy.load(
        checkpoint,
        joint_names=list(joint_names),
        cameras=list(cameras),
        camera_map=dict(camera_map or {}) or None,
        device=device,
        fps=fps or None,
        tokenizer=tokenizer or None,
    )


BACKENDS: Registry[ChunkPolicy] = Registry("policy backend")
BACKENDS.register("compact", _load_compact, doc="the compact VLA trained by `dojo train policy`")
BACKENDS.register("lerobot", _load_lerobot, doc="a LeRobot pretrained policy (act, smolvla, pi0)")


def load_policy(
    backend: str,
    checkpoint: str,
    *,
    joint_names: Sequence[str],
    cameras: Sequence[str],
    kind: str = "",
    device: str = "cpu",
    camera_map: Mapping[str, str] | None = None,
    text=None,
    fps: float = 0.0,
    tokenizer: str = "",
) -> ChunkPolicy:
    """Load ``checkpoint`` with ``backend``; raise :class:`PolicyError` naming what is wrong.

    ``text``: the compact VLA's text encoder; default one shared by the whole process."""
    if not checkpoint:
        raise PolicyError("no policy checkpoint given (policy.checkpoint is empty)")
    from pathlib import Path

    if (Path(checkpoint) / "practice.json").is_file():  # a learner checkpoint on its base
        from policy.learner.policy import PracticedPolicy

        def load_base(base_backend: str, base_checkpoint: str, base_kind: str) -> ChunkPolicy:
            return load_policy(
                base_backend, base_checkpoint, joint_names=joint_names, cameras=cameras,
                kind=base_kind, device=device, camera_map=camera_map, text=text, fps=fps,
                tokenizer=tokenizer,
            )  # fmt: skip

        return PracticedPolicy.load(checkpoint, load_base=load_base)
    try:
        loader = BACKENDS.entry(backend).load()
    except UnknownNameError as err:
        raise PolicyError(str(err)) from None
    return loader(
        checkpoint,
        joint_names=joint_names,
        cameras=cameras,
        kind=kind,
        device=device,
        camera_map=camera_map,
        text=text,
        fps=fps,
        tokenizer=tokenizer,
    )
