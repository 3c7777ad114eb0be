"""One camera's calibration file: ROS's camera_info YAML, with the hand-eye and latency added.

Why this format: the camera node (``dojo/nodes/camera.py``, through
``robot.cameras.registry.load_calibration``) and every ROS tool already read
camera_calibration_parsers' layout, so intrinsics written here are published as
``camera_info`` unchanged. The keys it defines come first, as it writes them::

    image_width: 320
    image_height: 240
    camera_name: wrist
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', 0, 0, fy', cy', 0, 0, 0, 1, 0]}

and then what a ROS parser ignores: ``reprojection_rms_px`` and ``views`` of the intrinsics,
``hand_eye`` (``parent_frame`` -> ``child_frame``, the camera's optical frame, as translation
(m) and ``rotation_xyzw``, with its residuals) and ``latency`` (seconds; see
:mod:`calibration.latency`). A file is replaced atomically: written to a temporary file in
the same folder, flushed to disk, renamed over the old one; a crash leaves the old file or the
new one, never half of either.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from calibration.errors import CalibrationError
from calibration.geometry import matrix_from_xyzw, quaternion_xyzw, transform
from robot.files import write_atomic


@dataclass(frozen=True, eq=False)
class HandEye:
    """``parent_from_camera`` (the optical frame): ``mode`` ``eye_in_hand`` (parent: the
    ``ee_site``) or ``eye_to_hand`` (parent: the robot's base); residuals of the solve."""

    mode: str
    parent_frame: str
    child_frame: str
    parent_from_camera: np.ndarray
    residual_mm: float = math.nan
    residual_deg: float = math.nan
    reprojection_rms_px: float = math.nan
    views: int = 0


@dataclass(frozen=True, eq=False)
class CameraCalibration:
    """Everything known about one camera. ``K`` ``(3, 3)``, ``D`` (plumb_bob: 5 values);
    ``latency``: seconds by name (``image_after_joint_states`` is what the recorder uses)."""

    camera: str
    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str = "plumb_bob"
    reprojection_rms_px: float = math.nan
    views: int = 0
    hand_eye: HandEye | None = None
    latency: dict[str, float] = field(default_factory=dict)

    def with_hand_eye(self, hand_eye: HandEye) -> CameraCalibration:
        return replace(self, hand_eye=hand_eye)

    def with_latency(self, latency: dict[str, float]) -> CameraCalibration:
        return replace(self, latency=dict(latency))

    def check(self, where: str) -> None:
        """Refuse a calibration with a NaN or an impossible value, naming it."""
        if self.width <= 0 or self.height <= 0:
            raise CalibrationError(f"{where}: image size {self.width}x{self.height} is not valid")
        numbers = {"camera_matrix": self.K, "distortion_coefficients": self.D}
        if self.hand_eye is not None:
            numbers["hand_eye"] = self.hand_eye.parent_from_camera
        numbers.update({f"latency.{k}": np.array([v]) for k, v in self.latency.items()})
        for key, value in numbers.items():
            if not np.all(np.isfinite(np.asarray(value, dtype=np.float64))):
                raise CalibrationError(
                    f"{where}: '{key}' has a NaN or infinite value; recalibrate "
                    "(dojo calibrate intrinsics|handeye|latency) to replace the file"
                )
        K = self.K
        if not (K[0, 0] > 0 and K[1, 1] > 0 and K[2, 2] == 1.0):
            raise CalibrationError(f"{where}: camera_matrix {K.tolist()} is not a camera matrix")


def _matrix(data: np.ndarray, rows: int, cols: int) -> dict[str, Any]:
    return {"rows": rows, "cols": cols, "data": [float(v) for v in np.asarray(data).reshape(-1)]}


def to_yaml(cal: CameraCalibration) -> str:
    """The file's text (see the module docstring)."""
    cal.check(f"calibration of camera '{cal.camera}'")
    K = np.asarray(cal.K, dtype=np.float64)
    P = np.hstack([K, np.zeros((3, 1))])
    data: dict[str, Any] = {
        "image_width": int(cal.width),
        "image_height": int(cal.height),
        "camera_name": cal.camera,
        "camera_matrix": _matrix(K, 3, 3),
        "distortion_model": cal.distortion_model,
        "distortion_coefficients": _matrix(cal.D, 1, len(np.asarray(cal.D).reshape(-1))),
        "rectification_matrix": _matrix(np.eye(3), 3, 3),
        "projection_matrix": _matrix(P, 3, 4),
        "reprojection_rms_px": float(cal.reprojection_rms_px),
        "views": int(cal.views),
    }
    if cal.hand_eye is not None:
        he = cal.hand_eye
        t = he.parent_from_camera
        data["hand_eye"] = {
            "mode": he.mode,
            "parent_frame": he.parent_frame,
            "child_frame": he.child_frame,
            "translation": [float(v) for v in t[:3, 3]],
            "rotation_xyzw": quaternion_xyzw(t[:3, :3]),
            "residual_mm": float(he.residual_mm),
            "residual_deg": float(he.residual_deg),
            "reprojection_rms_px": float(he.reprojection_rms_px),
            "views": int(he.views),
        }
    if cal.latency:
        data["latency"] = {k: float(v) for k, v in cal.latency.items()}
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def write(path: str | os.PathLike[str], cal: CameraCalibration) -> Path:
    """Replace ``path`` atomically with ``cal`` (see the module docstring)."""
    path = Path(path)
    text = to_yaml(cal)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text, sync_dir=True)
    return path


def _read_matrix(data: dict, key: str, rows: int, cols: int | None, where: str) -> np.ndarray:
    section = data.get(key)
    if not isinstance(section, dict) or "data" not in section:
        raise CalibrationError(f"{where}: '{key}' is missing or has no 'data'")
    try:
        arr = np.asarray(section["data"], dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as err:
        raise CalibrationError(f"{where}: '{key}' is not a list of numbers ({err})") from None
    if cols is not None and arr.size != rows * cols:
        raise CalibrationError(f"{where}: '{key}' has {arr.size} values, expected {rows * cols}")
    return arr.reshape(rows, cols) if cols is not None else arr


def read(
    path: str | os.PathLike[str],
    camera: str | None = None,
    size: tuple[int, int] | None = None,
) -> CameraCalibration:
    """The calibration in ``path``; refused when it names another ``camera``, is for another
    image ``size`` ``(width, height)``, or holds a NaN."""
    path = Path(path)
    where = f"calibration file {path}"
    if not path.is_file():
        raise CalibrationError(
            f"{where} does not exist; run dojo calibrate intrinsics camera={camera or '...'} first"
        )
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise CalibrationError(f"{where}: cannot be read ({err})") from None
    if not isinstance(data, dict):
        raise CalibrationError(f"{where}: not a camera_info YAML mapping")
    name = str(data.get("camera_name", ""))
    if camera is not None and name != camera:
        raise CalibrationError(
            f"{where} is for camera '{name}', not '{camera}'; name the right file or "
            f"recalibrate: dojo calibrate intrinsics camera={camera}"
        )
    try:
        width, height = int(data["image_width"]), int(data["image_height"])
    except (KeyError, TypeError, ValueError):
        raise CalibrationError(f"{where}: image_width/image_height missing") from None
    if size is not None and (width, height) != tuple(size):
        raise CalibrationError(
            f"{where} is for {width}x{height} images, the camera gives {size[0]}x{size[1]}; "
            f"recalibrate at this resolution: dojo calibrate intrinsics camera={name}"
        )
    K = _read_matrix(data, "camera_matrix", 3, 3, where)
    D = _read_matrix(data, "distortion_coefficients", 1, None, where)
    hand_eye = None
    he = data.get("hand_eye")
    if isinstance(he, dict):
        try:
            rot = matrix_from_xyzw(np.asarray(he["rotation_xyzw"], dtype=np.float64))
            t = transform(rot, np.asarray(he["translation"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as err:
            raise CalibrationError(f"{where}: 'hand_eye' is incomplete ({err})") from None
        hand_eye = HandEye(
            mode=str(he.get("mode", "")),
            parent_frame=str(he.get("parent_frame", "")),
            child_frame=str(he.get("child_frame", "")),
            parent_from_camera=t,
            residual_mm=float(he.get("residual_mm", math.nan)),
            residual_deg=float(he.get("residual_deg", math.nan)),
            reprojection_rms_px=float(he.get("reprojection_rms_px", math.nan)),
            views=int(he.get("views", 0)),
        )
    latency = {str(k): float(v) for k, v in (data.get("latency") or {}).items()}
    cal = CameraCalibration(
        camera=name,
        width=width,
        height=height,
        K=K,
        D=D,
        distortion_model=str(data.get("distortion_model", "plumb_bob")),
        reprojection_rms_px=float(data.get("reprojection_rms_px", math.nan)),
        views=int(data.get("views", 0)),
        hand_eye=hand_eye,
        latency=latency,
    )
    cal.check(where)
    return cal


def camera_path(directory: str | os.PathLike[str], camera: str) -> Path:
    """Where camera ``camera``'s file lives: ``<directory>/<camera>.yaml``."""
    return Path(directory) / f"{camera}.yaml"


def image_latency(path: str | os.PathLike[str]) -> float | None:
    """The latency of the camera's images behind the joint states (s) written in ``path``,
    or None when the file or the value is not there (what the recorder's alignment reads)."""
    path = Path(path)
    if not path.is_file():
        return None
    value = read(path).latency.get("image_after_joint_states")
    return None if value is None else float(value)
