"""The one place a camera driver is chosen: ``make_camera(config)`` by its ``driver`` key.

Configs are plain mappings (a resolved ``camera.devices[i]`` section), so the library never
sees hydra. :data:`DRIVERS` is a :class:`robot.registry.Registry` whose entries name the
driver and its config dataclass as ``module:attribute`` text: listing or validating driver
names imports no camera SDK. ``load_calibration`` reads a camera's intrinsics from the ROS
``camera_calibration`` YAML format (what ``cameracalibrator`` writes), which is what the
camera node publishes as ``camera_info`` when the file exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from robot.cameras.base import Camera, CameraError
from robot.registry import Registry, UnknownNameError, did_you_mean

DRIVERS: Registry[Camera] = Registry("camera driver")
DRIVERS.register(
    "realsense",
    "robot.cameras.realsense:RealSenseCamera",
    config="robot.cameras.realsense:RealSenseConfig",
    doc="Intel RealSense through pyrealsense2 (or a recorded .bag)",
)
DRIVERS.register(
    "opencv",
    "robot.cameras.opencv:OpenCVCamera",
    config="robot.cameras.opencv:OpenCVConfig",
    doc="a UVC/V4L2 camera or a video file through OpenCV",
)


def _build(cls, cfg: Mapping[str, Any], where: str):
    names = sorted(f.name for f in fields(cls))
    unknown = sorted(set(cfg) - set(names))
    if unknown:
        raise CameraError(
            f"{where}: unknown key(s) {unknown}{did_you_mean(unknown[0], names)} (valid: {names})"
        )
    return cls(**cfg)


def make_camera(
    config: Mapping[str, Any],
    *,
    clock: Callable[[], float] | None = None,
    stale_periods: float = 2.0,
    reconnect_after: float = 1.0,
) -> Camera:
    """A camera from its config mapping: ``driver`` plus that driver's own keys.

    Keys every camera has that the drivers do not take (``calibration``) are ignored here.
    """
    cfg = {k: v for k, v in dict(config).items() if k not in ("driver", "calibration")}
    driver = str(config.get("driver", ""))
    where = f"camera '{cfg.get('name', '?')}'"
    try:
        entry = DRIVERS.entry(driver)
    except UnknownNameError as err:
        raise CameraError(f"{where}: {err}") from None
    camera_config = _build(entry.config_class(), cfg, where)
    return entry.load()(
        camera_config, clock=clock, stale_periods=stale_periods, reconnect_after=reconnect_after
    )


@dataclass(frozen=True, eq=False)
class Calibration:
    """A camera's calibrated intrinsics: ``K`` (3, 3), ``D`` distortion, model name."""

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    R: np.ndarray
    P: np.ndarray


def load_calibration(path: str | Path) -> Calibration:
    """Read a ROS ``camera_calibration`` YAML (``image_width``, ``camera_matrix``, ...)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CameraError(f"calibration file {path}: cannot be read: {exc}") from exc

    def matrix(key: str, shape: tuple[int, ...], default: np.ndarray | None = None) -> np.ndarray:
        section = data.get(key)
        if section is None:
            if default is not None:
                return default
            raise CameraError(f"calibration file {path}: '{key}' is missing")
        arr = np.asarray(section.get("data", section), dtype=np.float64)
        if shape and arr.size != int(np.prod(shape)):
            raise CameraError(f"calibration file {path}: '{key}' has {arr.size} values")
        return arr.reshape(shape) if shape else arr.reshape(-1)

    try:
        width, height = int(data["image_width"]), int(data["image_height"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CameraError(f"calibration file {path}: image_width/image_height missing") from exc
    K = matrix("camera_matrix", (3, 3))
    return Calibration(
        width=width,
        height=height,
        K=K,
        D=matrix("distortion_coefficients", (), np.zeros(5)),
        distortion_model=str(data.get("distortion_model", "plumb_bob")),
        R=matrix("rectification_matrix", (3, 3), np.eye(3)),
        P=matrix("projection_matrix", (3, 4), np.hstack([K, np.zeros((3, 1))])),
    )
