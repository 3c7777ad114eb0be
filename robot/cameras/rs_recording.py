"""Write a RealSense recording from synthetic frames with librealsense's own recorder.

Why: a recording made by ``rs.recorder`` from an ``rs.software_device`` is byte-for-byte the
format a real camera's recording has (librealsense 2.59 writes rosbag2 ``.db3``), so playing it
back exercises the same decoder, syncer and aligner as a real ``.bag``/``.db3`` from the robot.
Tests and ``bench/camera_pipeline.py`` use it; it is also handy to make a fixture of a scene.

Depth is recorded with the same intrinsics as colour and an identity extrinsic, so an aligned
depth image must equal the raw one: that is what the alignment test checks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np


def default_color(i: int, height: int, width: int) -> np.ndarray:
    """Frame ``i``: a gradient with the frame index in pixel (0, 0), channel 0."""
    img = np.zeros((height, width, 3), np.uint8)
    img[..., 1] = (np.arange(width, dtype=np.uint32) * 255 // max(1, width - 1)).astype(np.uint8)
    img[..., 2] = 128
    img[0, 0, 0] = i % 256
    return img


def default_depth(i: int, height: int, width: int) -> np.ndarray:
    """Frame ``i``: a depth ramp in mm, 500 + column + i."""
    ramp = 500 + np.arange(width, dtype=np.uint16) + np.uint16(i % 1000)
    return np.broadcast_to(ramp, (height, width)).astype(np.uint16)


def write_recording(
    path: str | os.PathLike[str],
    *,
    frames: int,
    width: int = 64,
    height: int = 48,
    fps: int = 30,
    serial: str = "000000000001",
    model: str = "Intel RealSense D435 (software)",
    device_times_ms: Sequence[float] | None = None,
    depth: bool = True,
    color: Callable[[int, int, int], np.ndarray] = default_color,
    depth_image: Callable[[int, int, int], np.ndarray] = default_depth,
    depth_units: float = 0.001,
    fx: float | None = None,
    speed: float = 1.0,
    capture_times_s: Sequence[float] | None = None,
) -> Path:
    """Record ``frames`` synthetic frames to ``path`` (must end in ``.db3``); return the path.

    Takes as long as the recording lasts divided by ``speed``: playback timing comes from it.

    ``device_times_ms``: each frame's hardware timestamp (ms); by default ``i * 1000 / fps``.
    ``capture_times_s``: when (host clock, s from the first frame) each frame is handed to the
    recorder, which is when playback delivers it; by default the device times. Different from
    the device times, it injects a device-clock offset/drift against the host.
    """
    import pyrealsense2 as rs

    path = Path(path)
    if path.suffix != ".db3":
        raise ValueError(f"{path}: librealsense 2.59 records rosbag2, the name must end in .db3")
    if path.exists():
        path.unlink()
    times = (
        [i * 1000.0 / fps for i in range(frames)]
        if device_times_ms is None
        else list(device_times_ms)
    )
    if len(times) != frames:
        raise ValueError(f"device_times_ms has {len(times)} entries, not {frames}")
    capture = [t / 1000.0 for t in times] if capture_times_s is None else list(capture_times_s)
    if len(capture) != frames:
        raise ValueError(f"capture_times_s has {len(capture)} entries, not {frames}")
    dev = rs.software_device()
    dev.register_info(rs.camera_info.serial_number, serial)
    dev.register_info(rs.camera_info.name, model)
    intr = rs.intrinsics()
    intr.width, intr.height = width, height
    intr.fx = intr.fy = float(fx or width)
    intr.ppx, intr.ppy = width / 2.0, height / 2.0
    intr.model = rs.distortion.none
    intr.coeffs = [0.0] * 5

    def stream(kind, uid: int, bpp: int, fmt):
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid = kind, 0, uid
        vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = width, height, fps, bpp, fmt
        vs.intrinsics = intr
        return vs

    color_sensor = dev.add_sensor("RGB Camera")
    color_profile = color_sensor.add_video_stream(stream(rs.stream.color, 0, 3, rs.format.rgb8))
    sensors = [(color_sensor, color_profile)]
    if depth:
        depth_sensor = dev.add_sensor("Stereo Module")
        depth_profile = depth_sensor.add_video_stream(stream(rs.stream.depth, 1, 2, rs.format.z16))
        depth_sensor.add_read_only_option(rs.option.depth_units, depth_units)
        identity = rs.extrinsics()
        identity.rotation = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        identity.translation = [0.0, 0.0, 0.0]
        depth_profile.register_extrinsics_to(color_profile, identity)
        sensors.append((depth_sensor, depth_profile))
    recorder = rs.recorder(str(path), dev)
    queue = rs.frame_queue(max(16, frames * 2))
    for sensor, profile in sensors:
        sensor.open(profile)
        sensor.start(queue)

    def push(sensor, profile, pixels: np.ndarray, bpp: int, i: int) -> None:
        f = rs.software_video_frame()
        f.pixels = np.ascontiguousarray(pixels).tobytes()
        f.bpp, f.stride = bpp, width * bpp
        f.timestamp = times[i]
        f.domain = rs.timestamp_domain.hardware_clock
        f.frame_number = i
        if bpp == 2:
            f.depth_units = depth_units
        f.profile = profile.as_video_stream_profile()
        sensor.on_video_frame(f)

    start = time.monotonic()
    try:
        for i in range(frames):
            # librealsense's playback replays the times the recorder *received* frames, so
            # frames are handed over at their device-time spacing (real time, or ``speed`` x)
            due = start + (capture[i] - capture[0]) / speed
            time.sleep(max(0.0, due - time.monotonic()))
            push(color_sensor, color_profile, color(i, height, width), 3, i)
            if depth:
                push(depth_sensor, depth_profile, depth_image(i, height, width), 2, i)
            while queue.poll_for_frame():  # keep the queue drained: the recorder has them
                pass
    finally:
        for sensor, _ in sensors:
            sensor.stop()
            sensor.close()
        del recorder  # the recorder writes and closes the file when released
    return path
