"""The one place a policy backend is chosen: ``load_policy(backend, checkpoint, ...)``.

``compact``: the compact VLA (:mod:`policy.compact`). ``lerobot``: LeRobot's pretrained VLAs
(:mod:`policy.lerobot_adapters`), imported only when asked for, since LeRobot is heavy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policy.base import ChunkPolicy, PolicyError

BACKENDS = ("compact", "lerobot")


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
    """Load ``checkpoint`` with ``backend``; raise :class:`PolicyError` naming what is wrong."""
    if not checkpoint:
        raise PolicyError("no policy checkpoint given (policy.checkpoint is empty)")
    if backend == "compact":
        from policy.compact import CompactVLAPolicy

        return CompactVLAPolicy.load(checkpoint, text=text, device=device)
    if backend == "lerobot":
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
    raise PolicyError(f"unknown policy backend {backend!r} (available: {list(BACKENDS)})")
