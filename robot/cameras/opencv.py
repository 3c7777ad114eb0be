"""UVC/V4L2 cameras (and video files) through OpenCV.

``source`` is a device index (``"0"``), a device path (``/dev/video2``, or a stable
``/dev/v4l/by-id/...`` link: use those, indices move between boots) or a video file. Frames are
converted BGR -> RGB and resized to the configured size if the device delivers another one
(logged once). Device timestamps: V4L2 reports each buffer's capture time through
``CAP_PROP_POS_MSEC``; with ``timestamps="device"`` that is mapped to host time by
:class:`~robot.cameras.clock.ClockSync`, otherwise (and always for files) frames are stamped
on arrival. A file plays at its own frame rate (``real_time``) so staleness and rates behave
as live; at its end the driver sees no frames, goes stale and reconnects, which replays it.

Test depth: fake hardware. A video file written in the test with ``cv2.VideoWriter`` is the
source: frame count, rate, staleness on pause and reconnect at end of file. A real UVC device
runs only with ``pytest -m hardware --uvc /dev/videoN``.
"""

from __future__ import annotations

import enum
import glob
import math
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot.cameras.base import Camera, CameraError, RawFrame

V4L2_EXPOSURE_UNIT_US = 100.0
"""V4L2's ``exposure_time_absolute`` (what OpenCV's ``CAP_PROP_EXPOSURE`` sets) in microseconds."""


class Timestamps(enum.StrEnum):
    """``device``: V4L2's buffer time mapped to host time; ``host``: stamped on arrival."""

    host = "host"
    device = "device"


@dataclass
class OpenCVConfig:
    """``source``: device index, path or video file. ``fourcc``: e.g. ``MJPG`` for high
    resolutions over USB 2. ``exposure_us``: fixed exposure in microseconds, 0 = auto (the same
    unit as :class:`~robot.cameras.realsense.RealSenseConfig`; V4L2 counts 100 us units, the
    driver converts). ``real_time``: a video file plays at its own frame rate."""

    name: str = "uvc"
    source: str = "0"
    width: int = 640
    height: int = 480
    fps: float = 30.0
    fourcc: str = ""
    exposure_us: float = 0.0
    timestamps: Timestamps = Timestamps.host
    real_time: bool = True


def _cv2():
    import cv2

    return cv2


def _is_file(source: str) -> bool:
    return os.path.isfile(source) and not source.startswith("/dev/")


def find_cameras() -> list[dict[str, Any]]:
    """V4L2 capture devices: path, stable by-id link and name (no device is opened)."""
    found = []
    links = {os.path.realpath(p): p for p in glob.glob("/dev/v4l/by-id/*")}
    for path in sorted(glob.glob("/dev/video*")):
        name_file = f"/sys/class/video4linux/{os.path.basename(path)}/name"
        try:
            with open(name_file) as fh:
                name = fh.read().strip()
        except OSError:
            name = ""
        found.append({"kind": "uvc", "device": path, "by_id": links.get(path, ""), "model": name})
    return found


class OpenCVCamera(Camera):
    """One V4L2 device or video file. See the module docstring."""

    def __init__(self, config: OpenCVConfig, **kwargs: Any) -> None:
        self.config = config
        if config.timestamps not in tuple(Timestamps):
            raise CameraError(
                f"camera '{config.name}': timestamps={config.timestamps!r} is not 'host' or "
                "'device'"
            )
        super().__init__(config.name, config.fps, **kwargs)
        self._cap = None
        self._file = _is_file(config.source)
        self._paused = threading.Event()
        self._next_due = 0.0
        self._warned_size = False

    @property
    def device(self) -> str:
        return f"{'file' if self._file else 'V4L2'} {self.config.source}"

    def _open(self) -> None:
        cv2 = _cv2()
        src = self.config.source
        where = f"camera '{self.name}'"
        if self._file:
            cap = cv2.VideoCapture(src)
        else:
            if src.startswith("/dev/") and not os.path.exists(src):
                raise CameraError(f"{where}: device {src} does not exist")
            target: int | str = int(src) if src.isdigit() else src
            cap = cv2.VideoCapture(target, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{where}: could not open {self.device}")
        if not self._file:
            if self.config.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.config.fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.config.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.config.height)
            cap.set(cv2.CAP_PROP_FPS, self.config.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self.config.exposure_us > 0:
                cap.set(cv2.CAP_PROP_AUTO_EXPOSURE, 1)  # V4L2 manual mode
                # V4L2's exposure_time_absolute counts 100 us units
                cap.set(cv2.CAP_PROP_EXPOSURE, self.config.exposure_us / V4L2_EXPOSURE_UNIT_US)
            got = cap.get(cv2.CAP_PROP_FPS)
            if got and abs(got - self.config.fps) > 0.5:
                cap.release()
                raise CameraError(
                    f"{where}: {self.device} refused fps={self.config.fps:g} (actual {got:g})"
                )
        self._cap = cap
        self._next_due = time.monotonic()

    def _grab(self, timeout: float) -> RawFrame | None:
        cap = self._cap
        if cap is None:
            raise CameraError(f"camera '{self.name}': not open")
        if self._paused.is_set():
            self._stop.wait(timeout)
            return None
        if self._file and self.config.real_time:
            wait = self._next_due - time.monotonic()
            if wait > timeout:
                self._stop.wait(timeout)
                return None
            if wait > 0:
                self._stop.wait(wait)
            self._next_due = max(self._next_due + self.period, time.monotonic() - self.period)
        ok, bgr = cap.read()
        if not ok or bgr is None:
            if self._file:
                self._stop.wait(timeout)  # end of file: nothing new, the camera goes stale
            return None
        cv2 = _cv2()
        h, w = bgr.shape[:2]
        if (w, h) != (self.config.width, self.config.height):
            if not self._warned_size:
                self._warned_size = True
                self._note_error(
                    f"{self.device} delivers {w}x{h}, resizing to "
                    f"{self.config.width}x{self.config.height}"
                )
            bgr = cv2.resize(bgr, (self.config.width, self.config.height))
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        index = int(cap.get(cv2.CAP_PROP_POS_FRAMES)) - 1 if self._file else -1
        stamp = math.nan
        if self.config.timestamps == "device" and not self._file:
            ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            stamp = ms / 1000.0 if ms > 0 else math.nan
        return RawFrame(color=rgb, device_stamp=stamp, frame_number=index)

    def _close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def pause(self) -> None:
        """Stop delivering frames (a frozen camera); for tests and the benchmark."""
        self._paused.set()

    def resume(self) -> None:
        self._next_due = time.monotonic()
        self._paused.clear()
