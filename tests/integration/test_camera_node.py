"""The camera node: a RealSense recording played through a real node process, seen on ROS."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dojo.nodes.camera import depth_from_msg, depth_to_msg
from dojo.ros import convert, topics
from tests.integration.conftest import dump_logs_on_failure, wait_until

pytest.importorskip("pyrealsense2")

from robot.cameras.rs_recording import write_recording

W, H, FPS = 64, 48, 30


@pytest.fixture
def recording(tmp_path):
    return write_recording(tmp_path / "scene.db3", frames=60, width=W, height=H, fps=FPS)


def test_depth_message_round_trip():
    depth = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    back, stamp = depth_from_msg(depth_to_msg(depth, 12.5, "f"))
    np.testing.assert_array_equal(back, depth)
    assert stamp == 12.5


def test_playback_publishes_image_depth_and_calibrated_camera_info(
    probe, start_node, recording, tmp_path
):
    cal = tmp_path / "scene.yaml"
    cal.write_text(
        f"image_width: {W}\nimage_height: {H}\n"
        "camera_matrix: {rows: 3, cols: 3, data: [70, 0, 31.5, 0, 71, 23.5, 0, 0, 1]}\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients: {rows: 1, cols: 5, data: [0.01, 0, 0, 0, 0]}\n"
    )
    for topic in (
        topics.camera_image("scene"),
        topics.camera_depth("scene"),
        topics.camera_info("scene"),
        topics.camera_status("scene"),
    ):
        probe.record(topic)
    node = start_node(
        "dojo.nodes.camera",
        [
            "camera=playback",
            f"camera.devices.0.realsense.playback={recording}",
            f"camera.devices.0.realsense.width={W}",
            f"camera.devices.0.realsense.height={H}",
            f"camera.devices.0.calibration={cal}",
        ],
        "camera_scene",
        camera="scene",
    )
    try:
        wait_until(lambda: len(probe.got(topics.camera_image("scene"))) >= 20, 60, "20 images")
        wait_until(lambda: probe.got(topics.camera_status("scene")), 10, "a status message")
    except AssertionError:
        raise AssertionError(dump_logs_on_failure([node])) from None
    images = probe.got(topics.camera_image("scene"))
    decoded = [convert.image_from_msg(m) for m in images]
    assert decoded[-1][0].shape == (H, W, 3) and images[-1].header.frame_id == "scene_optical"
    # pixel (0, 0) carries the recorded frame index: stamps advance one period per frame
    index = np.array([int(img[0, 0, 0]) for img, _ in decoded])
    stamps = np.array([stamp for _, stamp in decoded])
    per_frame = np.diff(stamps) / np.maximum(np.diff(index), 1)
    assert np.all(np.diff(index) >= 1), "frames out of order or repeated"
    assert np.median(per_frame) == pytest.approx(1 / FPS, abs=0.004)
    depth, _ = depth_from_msg(probe.got(topics.camera_depth("scene"))[-1])
    assert depth.shape == (H, W) and depth[H // 2, W // 2] >= 500
    info = probe.got(topics.camera_info("scene"))[-1]
    assert list(info.k)[4] == 71 and info.d[0] == pytest.approx(0.01)
    status = json.loads(probe.got(topics.camera_status("scene"))[-1].data)
    assert status["camera"] == "scene" and status["frames"] >= 20
    assert status["depth_scale"] == pytest.approx(0.001)


def test_unknown_camera_name_fails_at_start_naming_it(start_node, recording):
    node = start_node(
        "dojo.nodes.camera",
        ["camera=playback", f"camera.devices.0.realsense.playback={recording}"],
        "camera_x",
        camera="nope",
    )
    node.proc.wait(timeout=60)
    assert node.proc.returncode != 0
    assert "nope" in node.output()
