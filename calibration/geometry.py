"""Rigid transforms as ``(4, 4)`` matrices, and the few conversions calibration needs.

Naming: ``a_from_b`` maps coordinates in frame ``b`` to frame ``a`` (``p_a = a_from_b @ p_b``),
so transforms chain by matching names: ``base_from_camera = base_from_ee @ ee_from_camera``.
Quaternions are written ``x, y, z, w`` where they go into a ROS file or message (ROS's
order) and nowhere else.
"""

from __future__ import annotations

import math

import numpy as np


def transform(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """``(4, 4)`` from a ``(3, 3)`` rotation and a ``(3,)`` translation."""
    out = np.eye(4)
    out[:3, :3] = np.asarray(rotation, dtype=np.float64).reshape(3, 3)
    out[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
    return out


def invert(t: np.ndarray) -> np.ndarray:
    """The inverse of a rigid transform (no general matrix inverse: exact and cheap)."""
    rot = t[:3, :3]
    return transform(rot.T, -rot.T @ t[:3, 3])


def rotation_angle(rot: np.ndarray) -> float:
    """Angle (rad) of a rotation matrix, robust near 0 and pi."""
    cos = (np.trace(np.asarray(rot)[:3, :3]) - 1.0) / 2.0
    return float(math.acos(min(1.0, max(-1.0, cos))))


def rotvec(rot: np.ndarray) -> np.ndarray:
    """Axis times angle (rad) of a rotation matrix (OpenCV's Rodrigues vector)."""
    import cv2

    vec, _ = cv2.Rodrigues(np.asarray(rot, dtype=np.float64)[:3, :3])
    return vec.reshape(3)


def from_rotvec(vec: np.ndarray) -> np.ndarray:
    import cv2

    rot, _ = cv2.Rodrigues(np.asarray(vec, dtype=np.float64).reshape(3, 1))
    return rot


def pose_error(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Translation (m) and rotation (deg) between two transforms of the same thing."""
    delta = invert(truth) @ estimate
    return (
        float(np.linalg.norm(estimate[:3, 3] - truth[:3, 3])),
        math.degrees(rotation_angle(delta[:3, :3])),
    )


def quaternion_xyzw(rot: np.ndarray) -> list[float]:
    """ROS order ``x, y, z, w``, ``w >= 0``."""
    r = np.asarray(rot, dtype=np.float64)[:3, :3]
    w = math.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2.0
    x = math.copysign(
        math.sqrt(max(0.0, 1.0 + r[0, 0] - r[1, 1] - r[2, 2])) / 2.0, r[2, 1] - r[1, 2]
    )
    y = math.copysign(
        math.sqrt(max(0.0, 1.0 - r[0, 0] + r[1, 1] - r[2, 2])) / 2.0, r[0, 2] - r[2, 0]
    )
    z = math.copysign(
        math.sqrt(max(0.0, 1.0 - r[0, 0] - r[1, 1] + r[2, 2])) / 2.0, r[1, 0] - r[0, 1]
    )
    q = np.array([x, y, z, w])
    return (q / np.linalg.norm(q)).tolist()


def matrix_from_xyzw(q: list[float] | np.ndarray) -> np.ndarray:
    x, y, z, w = (float(v) for v in np.asarray(q, dtype=np.float64) / np.linalg.norm(q))
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
