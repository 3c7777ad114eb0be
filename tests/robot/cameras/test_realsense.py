"""RealSense driver on recordings written by librealsense's own recorder (fake-hardware layer).

Each recording is made in the test from an ``rs.software_device`` with known pixels and
hardware timestamps, then played back through :class:`RealSenseCamera`.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("pyrealsense2")

from robot.cameras.base import CameraError
from robot.cameras.realsense import RealSenseCamera, RealSenseConfig
from robot.cameras.rs_recording import write_recording

W, H, FPS = 64, 48, 30


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    path = tmp_path_factory.mktemp("rs") / "scene.db3"
    return write_recording(path, frames=45, width=W, height=H, fps=FPS, serial="111222333")


def collect(cam, timeout=0.5):
    frames, seq = [], 0
    while (f := cam.wait_frame(seq, timeout=timeout)) is not None:
        frames.append(f)
        seq = f.seq
    return frames


def cam_for(path, **kw):
    cfg = RealSenseConfig(name="front", playback=str(path), width=W, height=H, fps=FPS, **kw)
    return RealSenseCamera(cfg, reconnect_after=30.0)


def test_playback_delivers_every_frame_with_its_timestamp_and_pixels(recording):
    cam = cam_for(recording, depth=True)
    with cam:
        frames = collect(cam)
    numbers = [f.frame_number for f in frames]
    # real-time playback, like a live camera, drops a frame when the reader falls behind (a
    # loaded machine); never a repeat, never out of order, never many
    assert numbers == sorted(set(numbers)) and len(numbers) >= 40 and numbers[-1] == 44
    for f in frames:
        assert f.device_stamp == pytest.approx(f.frame_number / FPS, abs=1e-6)
        assert f.color.shape == (H, W, 3) and f.color.dtype == np.uint8
        assert f.color[0, 0, 0] == f.frame_number % 256
        assert f.camera == "front"
    assert cam.recorded_serial == "111222333"
    assert cam.intrinsics().width == W and cam.intrinsics().fx == pytest.approx(W)


def test_depth_aligned_to_colour_matches_the_recorded_depth(recording):
    """Depth recorded with the colour intrinsics and an identity extrinsic: alignment keeps it."""
    cam = cam_for(recording, depth=True, align_depth=True)
    with cam:
        frames = collect(cam)
    assert len(frames) >= 40
    for f in frames[5:10]:
        expected = 500 + np.arange(W) + f.frame_number
        assert f.depth.shape == (H, W) and f.depth.dtype == np.uint16
        # interior pixels (alignment reprojects; borders may lose a pixel)
        np.testing.assert_array_equal(f.depth[H // 2, 2:-2], expected[2:-2])
    assert cam.depth_scale == pytest.approx(0.001)


def test_real_time_playback_runs_at_the_camera_rate_and_tracks_the_clock(recording):
    cam = cam_for(recording, real_time=True)
    with cam:
        frames = collect(cam)
    assert len(frames) >= 40
    span = frames[-1].received - frames[0].received
    expected = (frames[-1].frame_number - frames[0].frame_number) / FPS
    assert span == pytest.approx(expected, rel=0.15)
    # stamps follow the hardware clock: consecutive stamps one period apart
    gaps = np.diff([f.stamp for f in frames])
    assert np.median(gaps) == pytest.approx(1 / FPS, abs=0.003)
    assert abs(cam.sync.drift_ppm) < 500


def test_paused_playback_goes_stale_after_two_periods_then_recovers(recording):
    cam = cam_for(recording, real_time=True, repeat=True)
    with cam:
        first = cam.wait_frame(0, timeout=2.0)
        assert first is not None and not cam.is_stale()
        cam.pause()
        paused_at = time.time()
        deadline = paused_at + 1.0
        while not cam.is_stale() and time.time() < deadline:
            time.sleep(0.005)
        age = cam.age()
        assert cam.is_stale(), "never went stale while paused"
        # stale exactly when 2 frame periods have passed since the last frame
        assert 2 / FPS < age < 2 / FPS + 0.03
        assert time.time() - paused_at < 4 / FPS + 0.05
        assert cam.stats.reconnects == 0
        seq = cam.latest().seq
        cam.resume()
        assert cam.wait_frame(seq, timeout=1.0) is not None
        assert not cam.is_stale()


def test_two_recordings_play_at_once(tmp_path, recording):
    other = write_recording(tmp_path / "b.db3", frames=20, width=W, height=H, fps=FPS, serial="9")
    a, b = cam_for(recording), cam_for(other)
    fa, fb = [], []
    a.subscribe(fa.append)
    b.subscribe(fb.append)
    with a, b:
        collect(a)
    assert len(fa) >= 40 and len(fb) >= 17
    assert {f.camera for f in fa} == {"front"}


def test_a_recording_of_another_serial_is_refused(recording):
    cam = cam_for(recording, serial="999")
    with pytest.raises(CameraError, match=r"111222333.*999"):
        cam.start()


def test_a_missing_recording_names_the_file(tmp_path):
    cam = cam_for(tmp_path / "nope.db3")
    with pytest.raises(CameraError, match=r"nope\.db3"):
        cam.start()


def test_a_serial_that_is_not_attached_is_refused():
    cam = RealSenseCamera(RealSenseConfig(name="wrist", serial="000000000042"))
    with pytest.raises(CameraError, match=r"wrist.*000000000042.*not attached"):
        cam.start()


def test_an_unknown_preset_names_the_valid_ones():
    with pytest.raises(CameraError, match="vga30"):
        RealSenseCamera(RealSenseConfig(name="front", preset="vga31"))


def test_end_of_recording_goes_stale_and_reconnect_replays_it(tmp_path):
    short = write_recording(tmp_path / "short.db3", frames=10, width=W, height=H, fps=FPS)
    cam = RealSenseCamera(
        RealSenseConfig(name="front", playback=str(short), width=W, height=H, fps=FPS),
        reconnect_after=0.2,
    )
    frames = []
    cam.subscribe(frames.append)
    with cam:
        deadline = time.monotonic() + 5.0
        while cam.stats.reconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cam.stats.stale_events >= 1 and cam.stats.reconnects >= 1

        def restarts() -> list[int]:
            numbers = [f.frame_number for f in list(frames)]
            return [k for k in range(1, len(numbers)) if numbers[k] < numbers[k - 1]]

        while not restarts() and time.monotonic() < deadline:
            time.sleep(0.01)
    assert restarts(), "the recording never started over after the reconnect"
    first_pass = frames[: restarts()[0]]
    assert len(first_pass) >= 8 and first_pass[-1].frame_number == 9
