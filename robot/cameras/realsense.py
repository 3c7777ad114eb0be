"""Intel RealSense (D4xx/L5xx) through ``pyrealsense2``, live or from a recording.

Colour (RGB8) and optionally depth (Z16, aligned to colour on request with ``rs.align``), at a
resolution/fps preset, with auto or fixed exposure, one ``rs.pipeline`` per camera selected by
serial number (so several cameras run at once, each on its own capture thread). Frames carry
the sensor's hardware timestamp (ms, ``timestamp_domain.hardware_clock``) which
:class:`~robot.cameras.clock.ClockSync` maps to host/ROS time, reporting the drift in ppm.
Staleness and reconnects come from :class:`~robot.cameras.base.Camera`.

``playback`` plays a recording as the camera: a ROS1 ``.bag`` or the rosbag2 ``.db3`` that
librealsense 2.59's recorder writes. It plays in real time (``real_time``, the default): the
pipeline keeps only the newest frameset, exactly as live, so a consumer that falls behind
drops frames as it would on the robot. (Non-real-time playback runs ahead of the reader
through that one-slot queue and loses frames: it is for offline conversion, not this driver.)
:meth:`RealSenseCamera.pause`/``resume`` freeze it, which is how a frozen camera is tested.

Test depth: fake hardware. A recording is written in the test by ``rs.software_device`` +
``rs.recorder`` (librealsense's own writer) and played back through this driver: frame count,
timestamps, depth alignment, staleness on pause. The live USB path (serial selection, exposure
options) runs only with a camera attached (``pytest -m hardware --camera-serial ...``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from robot.cameras.base import Camera, CameraError, RawFrame
from robot.schema import CameraIntrinsics

log = logging.getLogger(__name__)

# (width, height, fps) presets the D4xx colour and depth sensors both support.
PRESETS: dict[str, tuple[int, int, int]] = {
    "vga30": (640, 480, 30),
    "vga60": (640, 480, 60),
    "vga15": (640, 480, 15),
    "wvga60": (848, 480, 60),
    "hd30": (1280, 720, 30),
    "hd15": (1280, 720, 15),
    "qvga30": (424, 240, 30),
}


@dataclass
class RealSenseConfig:
    """``serial``: the camera to open ("" = the only one attached). ``playback``: a recording
    to play instead. ``exposure_us``: fixed exposure in microseconds, 0 = auto.
    ``align_depth``: depth resampled into the colour camera's pixels. ``real_time`` (playback):
    at the recording's rate; ``repeat`` (playback): loop it."""

    name: str = "rs"
    serial: str = ""
    playback: str = ""
    preset: str = ""
    width: int = 640
    height: int = 480
    fps: float = 30.0
    depth: bool = False
    align_depth: bool = True
    exposure_us: float = 0.0
    real_time: bool = True
    repeat: bool = False

    def resolved(self) -> tuple[int, int, int]:
        if self.preset:
            if self.preset not in PRESETS:
                raise CameraError(
                    f"camera '{self.name}': unknown RealSense preset {self.preset!r} "
                    f"(valid: {sorted(PRESETS)})"
                )
            return PRESETS[self.preset]
        return int(self.width), int(self.height), int(self.fps)


def _rs():
    try:
        import pyrealsense2 as rs
    except ImportError as exc:  # pragma: no cover - the hardware extra is missing
        raise CameraError(
            "pyrealsense2 is not installed: pip install 'vla-dojo[hardware]'"
        ) from exc
    return rs


def find_cameras() -> list[dict[str, Any]]:
    """Attached RealSense devices: serial, name, firmware, USB type and supported modes."""
    rs = _rs()
    found = []
    for dev in rs.context().query_devices():

        def info(key, dev=dev) -> str:
            return dev.get_info(key) if dev.supports(key) else ""

        modes = set()
        for sensor in dev.query_sensors():
            for prof in sensor.get_stream_profiles():
                if prof.is_video_stream_profile():
                    v = prof.as_video_stream_profile()
                    modes.add(
                        f"{prof.stream_name()} {v.width()}x{v.height()}@{prof.fps()} "
                        f"{prof.format()}"
                    )
        found.append(
            {
                "kind": "realsense",
                "serial": info(rs.camera_info.serial_number),
                "model": info(rs.camera_info.name),
                "firmware": info(rs.camera_info.firmware_version),
                "usb": info(rs.camera_info.usb_type_descriptor),
                "modes": sorted(modes),
            }
        )
    return found


class RealSenseCamera(Camera):
    """One RealSense camera (or recording). See the module docstring."""

    def __init__(self, config: RealSenseConfig, **kwargs: Any) -> None:
        self.config = config
        self.width, self.height, fps = config.resolved()
        super().__init__(config.name, fps, **kwargs)
        self._pipeline = None
        self._align = None
        self._playback = None
        self._intrinsics: CameraIntrinsics | None = None
        self._depth_scale = 0.001
        self._serial_seen = ""
        self._paused = threading.Event()

    @property
    def device(self) -> str:
        if self.config.playback:
            return f"recording {self.config.playback}"
        return f"RealSense serial {self.config.serial or '<any>'}"

    def intrinsics(self) -> CameraIntrinsics | None:
        return self._intrinsics

    @property
    def depth_scale(self) -> float:
        return self._depth_scale

    def _open(self) -> None:
        rs = _rs()
        cfg = rs.config()
        where = f"camera '{self.name}'"
        if self.config.playback:
            path = self.config.playback
            if not os.path.isfile(path):
                raise CameraError(f"{where}: recording {path!r} does not exist")
            cfg.enable_device_from_file(path, repeat_playback=self.config.repeat)
        else:
            attached = {
                d.get_info(rs.camera_info.serial_number): d.get_info(rs.camera_info.name)
                for d in rs.context().query_devices()
            }
            serial = self.config.serial
            if serial and serial not in attached:
                raise CameraError(
                    f"{where}: RealSense serial {serial!r} is not attached "
                    f"(attached: {attached or 'none'})"
                )
            if not serial and len(attached) != 1:
                raise CameraError(
                    f"{where}: no serial given and {len(attached)} RealSense cameras attached "
                    f"({attached or 'none'}); set the camera's serial"
                )
            serial = serial or next(iter(attached))
            cfg.enable_device(serial)
            cfg.enable_stream(
                rs.stream.color, self.width, self.height, rs.format.rgb8, int(self.fps)
            )
            if self.config.depth:
                cfg.enable_stream(
                    rs.stream.depth, self.width, self.height, rs.format.z16, int(self.fps)
                )
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(cfg)
        except RuntimeError as exc:
            raise CameraError(
                f"{where}: {self.device} failed to start {self.width}x{self.height}@{self.fps:g}"
                f"{' with depth' if self.config.depth else ''}: {exc}"
            ) from exc
        try:
            self._configure(rs, profile)
        except Exception:
            pipeline.stop()
            raise
        self._pipeline = pipeline

    def _configure(self, rs, profile) -> None:
        where = f"camera '{self.name}' ({self.device})"
        dev = profile.get_device()
        self._serial_seen = (
            dev.get_info(rs.camera_info.serial_number)
            if dev.supports(rs.camera_info.serial_number)
            else ""
        )
        if self.config.playback:
            if self.config.serial and self._serial_seen != self.config.serial:
                raise CameraError(
                    f"{where}: recorded serial {self._serial_seen!r} is not the configured "
                    f"serial {self.config.serial!r}"
                )
            self._playback = dev.as_playback()
            self._playback.set_real_time(self.config.real_time)
        streams = {s.stream_type(): s for s in profile.get_streams()}
        color = streams.get(rs.stream.color)
        if color is None:
            raise CameraError(f"{where}: has no colour stream")
        v = color.as_video_stream_profile()
        if self.config.playback and (v.width(), v.height()) != (self.width, self.height):
            raise CameraError(
                f"{where}: colour is {v.width()}x{v.height()}, configured "
                f"{self.width}x{self.height}"
            )
        if self.config.playback and abs(color.fps() - self.fps) > 1e-6:
            raise CameraError(f"{where}: recorded at {color.fps()} fps, configured {self.fps:g}")
        i = v.get_intrinsics()
        self._intrinsics = CameraIntrinsics(
            i.width, i.height, i.fx, i.fy, i.ppx, i.ppy, frame_id=f"{self.name}_optical"
        )
        want_depth = self.config.depth
        if want_depth and rs.stream.depth not in streams:
            raise CameraError(f"{where}: depth requested but the device/recording has none")
        self._align = rs.align(rs.stream.color) if want_depth and self.config.align_depth else None
        for sensor in dev.query_sensors():
            if sensor.is_depth_sensor():
                self._depth_scale = float(sensor.as_depth_sensor().get_depth_scale())
            if not self.config.playback and sensor.supports(rs.option.exposure):
                is_color = sensor.get_info(rs.camera_info.name).lower().startswith("rgb")
                if is_color and self.config.exposure_us > 0:
                    sensor.set_option(rs.option.enable_auto_exposure, 0)
                    sensor.set_option(rs.option.exposure, float(self.config.exposure_us))
                elif is_color and sensor.supports(rs.option.enable_auto_exposure):
                    sensor.set_option(rs.option.enable_auto_exposure, 1)

    def _grab(self, timeout: float) -> RawFrame | None:
        pipeline = self._pipeline
        if pipeline is None:
            raise CameraError(f"camera '{self.name}': not open")
        if self._paused.is_set():
            self._stop.wait(timeout)
            return None
        ok, frames = pipeline.try_wait_for_frames(max(1, int(timeout * 1000)))
        if not ok:
            return None
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        rgb = np.array(np.asanyarray(color.get_data()), copy=True)
        depth = None
        if self.config.depth:
            d = frames.get_depth_frame()
            if d:
                depth = np.array(np.asanyarray(d.get_data()), copy=True)
        device_stamp = color.get_timestamp() / 1000.0
        return RawFrame(
            color=rgb,
            device_stamp=device_stamp,
            frame_number=int(color.get_frame_number()),
            depth=depth,
            depth_scale=self._depth_scale,
        )

    def _close(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        self._playback = None
        if pipeline is not None:
            with contextlib.suppress(RuntimeError):  # already stopped
                pipeline.stop()

    # ------------------------------------------------------------------ playback control

    def pause(self) -> None:
        """Freeze a recording (tests staleness); live cameras refuse."""
        if not self.config.playback:
            raise CameraError(f"camera '{self.name}': pause() needs a playback recording")
        self._paused.set()
        if self._playback is not None:
            self._playback.pause()

    def resume(self) -> None:
        if not self.config.playback:
            raise CameraError(f"camera '{self.name}': resume() needs a playback recording")
        if self._playback is not None:
            self._playback.resume()
        self._paused.clear()

    @property
    def recorded_serial(self) -> str:
        return self._serial_seen
