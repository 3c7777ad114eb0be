"""``dojo calibrate``'s refusals (one line, exit 2, nothing moved) and the recorder's hook."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from calibration import camera_file
from calibration.camera_file import CameraCalibration
from episodes.align import AlignConfig, StepAligner
from robot.schema import ControlSource

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dojo(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL="egl")
    return subprocess.run(
        [sys.executable, "-m", "dojo.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=180,
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["calibrate", "intrinsics"], "say which camera: camera=NAME"),
        (["calibrate", "handeye", "camera=side"], "has no camera 'side'"),
        (["calibrate", "intrinsics", "camera=wrist"], "not confirmed; nothing moved"),
    ],
)
def test_refusals_are_one_line_with_exit_2(tmp_path, args, words):
    out = _dojo(*args, f"dir={tmp_path}")
    assert out.returncode == 2, out.stderr
    assert words in out.stderr.strip().splitlines()[-1]
    assert not list(tmp_path.iterdir())  # nothing written


def test_handeye_without_intrinsics_says_what_to_run(tmp_path):
    out = _dojo("calibrate", "handeye", "camera=front", "yes=true", f"dir={tmp_path}")
    assert out.returncode == 2
    assert "dojo calibrate intrinsics camera=front first" in out.stderr


def test_recorder_alignment_takes_the_calibrated_latency_off_the_frames(tmp_path):
    """A camera 60 ms late: with its latency the frame showing tick t is paired with tick t."""
    path = camera_file.write(
        tmp_path / "front.yaml",
        CameraCalibration(
            camera="front",
            width=4,
            height=2,
            K=np.array([[5.0, 0, 1.5], [0, 5.0, 0.5], [0, 0, 1.0]]),
            D=np.zeros(5),
            latency={"image_after_joint_states": 0.06},
        ),
    )
    latency = camera_file.image_latency(path)
    paired = {}
    for name, config in (
        ("raw", AlignConfig(fps=10.0)),
        ("calibrated", AlignConfig(fps=10.0, camera_latency={"front": latency})),
    ):
        aligner = StepAligner({"front": (2, 4, 50.0)}, 50.0, config)
        steps = []
        for k in range(60):
            t = k * 0.02
            q = np.array([t])
            aligner.add_joint_state(t, q, q * 0)
            steps += aligner.add_command(t, q, ControlSource.POLICY)
            # the frame stamped t shows the world at t - 0.06: its pixel says which tick
            shown = max(0, k - 3)
            steps += aligner.add_frame("front", t, np.full((2, 4, 3), shown, np.uint8))
        steps += aligner.flush()
        paired[name] = [(round(s.t / 0.02), int(s.images["front"][0, 0, 0])) for s in steps]
    assert all(tick == shown for tick, shown in paired["calibrated"][1:-1])
    assert any(tick != shown for tick, shown in paired["raw"][1:-1])
    with pytest.raises(ValueError, match="latency"):
        AlignConfig(camera_latency={"front": float("nan")})
