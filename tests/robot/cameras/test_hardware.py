"""Opt-in: a real RealSense (--camera-serial) or UVC camera (--uvc) streams at its rate."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.hardware


def stream(cam, seconds=2.0):
    frames = []
    cam.subscribe(frames.append)
    with cam:
        time.sleep(seconds)  # a measurement window, not a wait for a condition
    return frames


def test_realsense_streams_colour_and_aligned_depth_at_30_hz(request):
    serial = request.config.getoption("--camera-serial")
    if not serial:
        pytest.skip("no --camera-serial given")
    from robot.cameras.realsense import RealSenseCamera, RealSenseConfig

    cam = RealSenseCamera(RealSenseConfig(name="hw", serial=serial, preset="vga30", depth=True))
    frames = stream(cam)
    assert len(frames) >= 50
    assert frames[-1].depth is not None and frames[-1].depth.shape == (480, 640)
    assert abs(cam.sync.drift_ppm) < 200


def test_uvc_streams(request):
    dev = request.config.getoption("--uvc")
    if not dev:
        pytest.skip("no --uvc given")
    from robot.cameras.opencv import OpenCVCamera, OpenCVConfig

    frames = stream(OpenCVCamera(OpenCVConfig(name="hw", source=dev)))
    assert len(frames) >= 30
