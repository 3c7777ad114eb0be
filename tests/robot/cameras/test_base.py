"""Camera base behaviour shared by every driver: frozen frames, failures, reconnects."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from robot.cameras.base import Camera, CameraError, RawFrame

FPS = 50.0


class ScriptedCamera(Camera):
    """A driver whose device behaviour the test scripts: fresh, frozen, failing, unopenable."""

    def __init__(self, **kw) -> None:
        super().__init__("scripted", FPS, **kw)
        self.mode = "fresh"
        self.opens = 0
        self.n = 0
        self.refuse_open = False

    @property
    def device(self) -> str:
        return "scripted device #7"

    def _open(self) -> None:
        if self.refuse_open:
            raise CameraError("camera 'scripted': scripted device #7 is gone")
        self.opens += 1

    def _grab(self, timeout: float) -> RawFrame | None:
        time.sleep(1 / FPS)
        if self.mode == "fail":
            raise OSError("USB transfer error")
        if self.mode == "fresh":
            self.n += 1
        # frozen: the same frame (same device stamp and number) again and again
        return RawFrame(
            np.zeros((2, 2, 3), np.uint8), device_stamp=self.n / FPS, frame_number=self.n
        )

    def _close(self) -> None:
        pass


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_frozen_device_goes_stale_though_frames_keep_arriving():
    cam = ScriptedCamera(reconnect_after=10.0)
    with cam:
        wait_for(lambda: cam.stats.frames > 3, 2, "frames")
        cam.mode = "frozen"
        wait_for(cam.is_stale, 1, "stale on a frozen device")
        frames = cam.stats.frames
        time.sleep(0.1)  # bounded window: repeats of the frozen frame are not new frames
        assert cam.stats.frames == frames and cam.stats.stale_events == 1
        cam.mode = "fresh"
        wait_for(lambda: not cam.is_stale(), 1, "fresh frames again")


def test_a_failing_device_is_closed_and_reopened():
    cam = ScriptedCamera(reconnect_after=0.05)
    with cam:
        wait_for(lambda: cam.stats.frames > 2, 2, "frames")
        cam.mode = "fail"
        wait_for(lambda: cam.stats.errors >= 1, 1, "the failure")
        cam.mode = "fresh"
        wait_for(lambda: cam.opens >= 2 and not cam.is_stale(), 2, "a reconnect")
    assert "USB transfer error" in cam.stats.last_error


def test_reconnect_attempts_continue_with_backoff_while_the_device_is_gone():
    cam = ScriptedCamera(reconnect_after=0.05, reconnect_backoff_max=0.1)
    with cam:
        wait_for(lambda: cam.stats.frames > 2, 2, "frames")
        cam.refuse_open = True
        cam.mode = "fail"
        wait_for(lambda: cam.stats.reconnects >= 3, 3, "repeated reconnect attempts")
        assert cam.is_stale() and "is gone" in cam.stats.last_error
        cam.refuse_open = False
        cam.mode = "fresh"
        wait_for(lambda: not cam.is_stale(), 2, "recovery once the device is back")


def test_stamps_come_from_the_device_clock_and_status_reports_drift():
    now = [1000.0]
    cam = ScriptedCamera(clock=lambda: now[0])
    raw = RawFrame(np.zeros((2, 2, 3), np.uint8), device_stamp=5.0, frame_number=1)
    cam._publish(raw, 1000.123)
    assert cam.latest().stamp == pytest.approx(1000.123)
    assert math.isinf(ScriptedCamera().age())  # no frame yet: stale, never "fresh"
    assert "drift_ppm" in cam.status()
