"""Synthetic robots and episodes for storage tests and benchmarks, where no arm moves.

The limits are wide but valid (RobotSpec refuses a robot without limits): nothing built from
these specs is ever sent to an arm. Episode content is a pure function of its seed, so a reader
can regenerate what a (possibly killed) writer wrote and compare byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robot.schema import RobotSpec


def storage_spec(
    name: str,
    joints: Sequence[str],
    cameras: Sequence[tuple[str, int, int]],
    control_hz: float,
) -> RobotSpec:
    """A ``len(joints)``-joint spec with ``cameras`` given as ``(name, width, height)``."""
    d = len(joints)
    return RobotSpec.from_mapping(
        {
            "name": name,
            "joint_names": list(joints),
            "limits": {
                "position_lower": [-3.0] * d,
                "position_upper": [3.0] * d,
                "velocity": [2.0] * d,
                "acceleration": [10.0] * d,
                "max_step": [0.1] * d,
            },
            "home": [0.0] * d,
            "workspace": {"lower": [-1, -1, -1], "upper": [1, 1, 1]},
            "control_hz": control_hz,
            "cameras": [{"name": n, "width": w, "height": h} for n, w, h in cameras],
        }
    )


def synthetic_episode(
    seed: int,
    n: int,
    joints: Sequence[str],
    cameras: Sequence[tuple[str, int, int]],
    fps: float,
) -> dict[str, Any]:
    """Deterministic content of episode ``seed``: smooth images (JPEG-friendly) plus noise,
    random joint vectors and control sources, strictly increasing times."""
    rng = np.random.default_rng(seed)
    d = len(joints)
    data: dict[str, Any] = {
        "t": 1000.0 + seed + np.arange(n) / fps + rng.uniform(0, 1e-3, n),
        "joint_pos": rng.normal(size=(n, d)).astype(np.float32),
        "joint_vel": rng.normal(size=(n, d)).astype(np.float32),
        "action": rng.normal(size=(n, d)).astype(np.float32),
        "control_source": rng.integers(0, 4, n).astype(np.uint8),
        "images": {},
    }
    for name, w, h in cameras:
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 60], -1)
        shift = rng.uniform(0, 40, (n, 1, 1, 3))
        noise = rng.integers(-3, 4, (n, h, w, 3))
        data["images"][name] = np.clip(base[None] + shift + noise, 0, 255).astype(np.uint8)
    return data


def append_steps(writer, data: dict[str, Any], start: int = 0, stop: int | None = None) -> None:
    """Append steps ``start:stop`` of a :func:`synthetic_episode` to an ``EpisodeWriter``."""
    stop = len(data["t"]) if stop is None else stop
    for i in range(start, stop):
        writer.append(
            data["t"][i],
            data["joint_pos"][i],
            data["joint_vel"][i],
            data["action"][i],
            int(data["control_source"][i]),
            {name: frames[i] for name, frames in data["images"].items()},
        )
