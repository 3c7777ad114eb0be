"""The recorder's alignment of joint states, commands and camera frames into steps."""

from __future__ import annotations

import numpy as np
import pytest

from episodes.align import AlignConfig, StepAligner
from robot.schema import ControlSource

CAMS = {"front": (4, 6, 15.0), "wrist": (4, 6, 15.0)}
HZ = 50.0


def frame(value: int) -> np.ndarray:
    return np.full((4, 6, 3), value, np.uint8)


def drive(
    aligner,
    seconds,
    *,
    cams=("front", "wrist"),
    cam_offset=0.0,
    cam_latency=0.0,
    source_at=lambda t: ControlSource.POLICY,
):
    """Simulate the driver at 50 Hz and cameras at 15 Hz; return every emitted step."""
    steps = []
    next_frame = 0.0
    pending_frames = []
    for k in range(int(seconds * HZ)):
        t = k / HZ
        q = np.array([t, -t])
        aligner.add_joint_state(t, q, np.ones(2))
        steps += aligner.add_command(t, q + 0.01, source_at(t))
        if t + 1e-9 >= next_frame:
            pending_frames.append((t + cam_latency, t + cam_offset, int(t * 100) % 256))
            next_frame += 1 / 15
        for _arrival, stamp, value in [f for f in pending_frames if f[0] <= t]:
            for cam in cams:
                steps += aligner.add_frame(cam, stamp, frame(value))
        pending_frames = [f for f in pending_frames if f[0] > t]
    return steps + aligner.flush()


def test_steps_on_the_record_grid_with_nearest_frames():
    aligner = StepAligner(CAMS, HZ, AlignConfig(fps=10.0, image_tolerance=0.04))
    steps = drive(aligner, 2.0)
    ts = np.array([s.t for s in steps])
    np.testing.assert_allclose(np.diff(ts), 0.1, atol=1e-9)
    assert len(steps) == 20
    for s in steps:
        np.testing.assert_allclose(s.joint_pos, [s.t, -s.t])
        np.testing.assert_allclose(s.action, [s.t + 0.01, -s.t + 0.01])
        # the nearest 15 Hz frame is at most half a frame period away
        frame_t = round(s.t * 15) / 15
        assert abs(frame_t - s.t) <= 0.5 / 15 + 1e-9
    assert aligner.stats.misaligned == {"front": 0, "wrist": 0}
    assert aligner.stats.missing == {"front": 0, "wrist": 0}
    assert aligner.stats.skew_flags == []


def test_late_frames_are_waited_for_within_the_latency_bound():
    aligner = StepAligner(CAMS, HZ, AlignConfig(fps=10.0, max_latency=0.3))
    steps = drive(aligner, 2.0, cam_latency=0.1)  # frames arrive 100 ms after their stamp
    assert len(steps) == 20
    assert aligner.stats.misaligned == {"front": 0, "wrist": 0}


def test_a_silent_camera_is_counted_missing_and_steps_still_come():
    aligner = StepAligner(CAMS, HZ, AlignConfig(fps=10.0, max_latency=0.2))
    steps = drive(aligner, 1.0, cams=("front",))
    assert len(steps) == 10
    assert aligner.stats.missing["wrist"] == 10 and aligner.stats.missing["front"] == 0
    assert all(s.images["wrist"].shape == (4, 6, 3) for s in steps)


def test_clock_skew_is_flagged_for_the_skewed_stream():
    aligner = StepAligner(CAMS, HZ, AlignConfig(fps=10.0, max_latency=0.2))
    drive(aligner, 2.0, cam_offset=-0.5)  # camera stamps half a second behind its content
    flags = " ".join(aligner.stats.skew_flags)
    assert "camera/front" in flags and "camera/wrist" in flags
    assert aligner.stats.misaligned["front"] > 0


def test_control_source_of_each_step_is_the_one_sent_at_that_tick():
    def source_at(t):
        return ControlSource.HUMAN if 0.5 <= t < 1.0 else ControlSource.POLICY

    aligner = StepAligner(CAMS, HZ, AlignConfig(fps=10.0))
    steps = drive(aligner, 1.5, source_at=source_at)
    for s in steps:
        assert s.control_source == source_at(s.t)


@pytest.mark.parametrize("key", ["fps", "image_tolerance", "max_latency"])
def test_bad_config_names_the_key(key):
    with pytest.raises(ValueError, match=f"recorder.{key}"):
        AlignConfig(**{key: 0.0})


@pytest.mark.parametrize("phase", [0.0, -0.01, -0.018, -0.022, -0.028, 0.01])
def test_every_frame_is_kept_when_record_and_camera_rates_match(phase):
    """30 Hz recording on a 50 Hz control loop with 30 Hz cameras whose capture instants are
    offset from the record grid by ``phase``: a tick trails its grid point by up to 20 ms, so
    frames must be matched to the grid point; matched to the tick, every third frame is lost
    for phases of about -18 to -28 ms."""
    cams = {"front": (4, 6, 30.0)}
    aligner = StepAligner(cams, HZ, AlignConfig(fps=30.0, max_latency=0.3))
    steps, sent = [], 0
    for k in range(int(2.0 * HZ)):
        t = k / HZ
        aligner.add_joint_state(t, np.zeros(2), np.zeros(2))
        steps += aligner.add_command(t, np.zeros(2), ControlSource.POLICY)
        while sent / 30.0 + phase <= t + 1e-9:  # frame i is captured at i/30 + phase
            steps += aligner.add_frame("front", sent / 30.0 + phase, frame(sent % 256))
            sent += 1
    # (the flushed tail is left out: its last frame has not arrived when recording stops)
    stored = [int(s.images["front"][0, 0, 0]) for s in steps]
    assert len(set(stored)) == len(stored), f"frames repeated: {stored}"
    assert len(stored) >= 55 and stored == list(range(stored[0], stored[0] + len(stored)))
