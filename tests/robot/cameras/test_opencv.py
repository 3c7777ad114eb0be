"""OpenCV/UVC driver on a video file written in the test (fake-hardware layer)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from robot.cameras.base import CameraError
from robot.cameras.opencv import OpenCVCamera, OpenCVConfig
from robot.cameras.registry import load_calibration, make_camera

W, H, FPS, N = 64, 48, 30, 24


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("uvc") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    for i in range(N):
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[..., 2] = 200  # red in BGR
        bgr[:8, :8, 1] = i * 10
        writer.write(bgr)
    writer.release()
    return path


def test_file_plays_every_frame_at_its_rate_in_rgb(video):
    cam = OpenCVCamera(OpenCVConfig(name="side", source=str(video), width=W, height=H, fps=FPS))
    frames = []
    cam.subscribe(frames.append)
    with cam:
        deadline = time.monotonic() + 3.0
        while len(frames) < N and time.monotonic() < deadline:
            cam.wait_frame(frames[-1].seq if frames else 0, timeout=0.2)
    assert [f.frame_number for f in frames[:N]] == list(range(N))
    f = frames[3]
    assert f.color.shape == (H, W, 3) and f.color[20, 20, 0] > 150  # red is channel 0 in RGB
    assert abs(int(f.color[2, 2, 1]) - 30) < 12  # the frame's own marker survived MJPG
    span = frames[N - 1].received - frames[0].received
    assert span == pytest.approx((N - 1) / FPS, rel=0.2)


def test_end_of_file_goes_stale_then_reconnects_and_replays(video):
    cam = OpenCVCamera(
        OpenCVConfig(name="side", source=str(video), width=W, height=H, fps=FPS),
        reconnect_after=0.2,
    )
    frames = []
    cam.subscribe(frames.append)
    with cam:
        deadline = time.monotonic() + 4.0
        while cam.stats.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cam.stats.stale_events >= 1, "end of file never made the camera stale"
        assert cam.stats.reconnects >= 1, "never reconnected"
        while len(frames) <= N and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(frames) > N and frames[N].frame_number == 0  # replayed from the start


def test_pause_goes_stale_after_two_periods(video):
    cam = OpenCVCamera(
        OpenCVConfig(name="side", source=str(video), width=W, height=H, fps=FPS),
        reconnect_after=5.0,
    )
    with cam:
        assert cam.wait_frame(0, timeout=1.0) is not None
        cam.pause()
        deadline = time.monotonic() + 1.0
        while not cam.is_stale() and time.monotonic() < deadline:
            time.sleep(0.005)
        age = cam.age()
        assert cam.is_stale() and 2 / FPS < age < 2 / FPS + 0.03
        seq = cam.latest().seq
        cam.resume()
        assert cam.wait_frame(seq, timeout=1.0) is not None and not cam.is_stale()


def test_missing_device_is_named():
    cam = OpenCVCamera(OpenCVConfig(name="side", source="/dev/video99"))
    with pytest.raises(CameraError, match=r"side.*/dev/video99"):
        cam.start()


def test_registry_builds_by_driver_and_suggests_on_typos(video):
    cam = make_camera({"driver": "opencv", "name": "a", "source": str(video), "calibration": ""})
    assert isinstance(cam, OpenCVCamera)
    with pytest.raises(CameraError, match="did you mean 'opencv'"):
        make_camera({"driver": "opencvv", "name": "a"})
    with pytest.raises(CameraError, match="did you mean 'source'"):
        make_camera({"driver": "opencv", "name": "a", "sourse": "0"})


def test_calibration_file_round_trip(tmp_path):
    path = tmp_path / "cal.yaml"
    path.write_text(
        "image_width: 640\nimage_height: 480\ncamera_name: front\n"
        "camera_matrix: {rows: 3, cols: 3, data: [600, 0, 320, 0, 601, 240, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0.1, -0.2, 0, 0, 0]}\n"
    )
    cal = load_calibration(path)
    assert cal.K[1, 1] == 601 and cal.D[1] == pytest.approx(-0.2) and cal.P.shape == (3, 4)
    path.write_text("image_width: 640\nimage_height: 480\n")
    with pytest.raises(CameraError, match="camera_matrix"):
        load_calibration(path)
