"""The calibration file: camera_info layout, round trip, refusals, atomic replacement."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from calibration import camera_file
from calibration.camera_file import CameraCalibration, HandEye
from calibration.errors import CalibrationError
from calibration.geometry import from_rotvec, transform
from robot.cameras.registry import load_calibration


def _cal(**overrides) -> CameraCalibration:
    args = dict(
        camera="wrist",
        width=320,
        height=240,
        K=np.array([[156.4, 0.0, 159.5], [0.0, 156.2, 119.4], [0.0, 0.0, 1.0]]),
        D=np.array([0.01, -0.02, 0.001, 0.0, 0.0]),
        reprojection_rms_px=0.07,
        views=18,
        hand_eye=HandEye(
            mode="eye_in_hand",
            parent_frame="gripperframe",
            child_frame="wrist_optical",
            parent_from_camera=transform(from_rotvec([0.1, -0.2, 0.3]), [0.01, -0.05, 0.02]),
            residual_mm=0.4,
            residual_deg=0.1,
        ),
        latency={"image_after_joint_states": 0.05, "command_to_joint_states": 0.06},
    )
    args.update(overrides)
    return CameraCalibration(**args)


def test_round_trip_through_the_file_and_the_camera_node_reader(tmp_path):
    path = camera_file.write(tmp_path / "wrist.yaml", _cal())
    back = camera_file.read(path, camera="wrist", size=(320, 240))
    np.testing.assert_allclose(back.K, _cal().K)
    np.testing.assert_allclose(back.D, _cal().D)
    np.testing.assert_allclose(
        back.hand_eye.parent_from_camera, _cal().hand_eye.parent_from_camera, atol=1e-12
    )
    assert back.latency == _cal().latency
    # what the camera node publishes as camera_info reads the same file
    ros = load_calibration(path)
    assert (ros.width, ros.height, ros.distortion_model) == (320, 240, "plumb_bob")
    np.testing.assert_allclose(ros.K, _cal().K)
    np.testing.assert_allclose(ros.P[:, :3], _cal().K)
    assert camera_file.image_latency(path) == pytest.approx(0.05)


def test_the_file_becomes_a_camera_info_message(tmp_path):
    pytest.importorskip("rclpy")
    from dojo.nodes.camera import calibration_to_msg

    path = camera_file.write(tmp_path / "wrist.yaml", _cal())
    msg = calibration_to_msg(load_calibration(path), 12.5, "wrist_optical")
    assert (msg.width, msg.height) == (320, 240)
    np.testing.assert_allclose(np.array(msg.k).reshape(3, 3), _cal().K)
    np.testing.assert_allclose(msg.d, _cal().D)


@pytest.mark.parametrize(
    ("camera", "size", "words"),
    [("front", (320, 240), "is for camera 'wrist'"), ("wrist", (640, 480), "320x240 images")],
)
def test_a_file_for_another_camera_or_resolution_is_refused(tmp_path, camera, size, words):
    path = camera_file.write(tmp_path / "wrist.yaml", _cal())
    with pytest.raises(CalibrationError, match=words):
        camera_file.read(path, camera=camera, size=size)


def test_a_file_with_nan_is_refused_and_never_written(tmp_path):
    path = camera_file.write(tmp_path / "wrist.yaml", _cal())
    text = path.read_text().replace("156.4", ".nan", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(CalibrationError, match=r"camera_matrix.*NaN"):
        camera_file.read(bad, camera="wrist")
    with pytest.raises(CalibrationError, match=r"latency\.image_after_joint_states.*NaN"):
        camera_file.write(path, _cal(latency={"image_after_joint_states": math.nan}))
    assert camera_file.read(path).latency == _cal().latency  # the old file is untouched


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = camera_file.write(tmp_path / "wrist.yaml", _cal())
    before = path.read_text()

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        camera_file.write(path, _cal(views=3))
    assert path.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrist.yaml"]


def test_a_missing_file_says_what_to_run(tmp_path):
    with pytest.raises(CalibrationError, match="dojo calibrate intrinsics camera=front"):
        camera_file.read(tmp_path / "front.yaml", camera="front")
