"""``dojo calibrate`` through the ROS 2 graph against the twin, end to end, checked on its truth.

The command starts the driver as ``dojo run`` does (the twin's scene with the board in it),
moves the arm only by ``command/chunk`` through the driver's safety layer, and takes frames
and joint states from their topics (``dojo.ros.calibration_rig``). The results are compared
with the twin's own camera model and pose, within the issue's targets. Fewer views than the
defaults, so the test fits its time: the coverage and view-count checks are configured down
to what those views give, and refuse otherwise.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from calibration import camera_file
from calibration.camera_file import CameraCalibration
from calibration.geometry import pose_error, transform
from dojo.ros.env import node_env
from robot.sim.config import TaskConfig, TwinConfig
from robot.sim.twin import Twin
from tests.sim_helpers import robot_spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FEWER_VIEWS = [
    "calibrate.intrinsics_views=9",
    "calibrate.intrinsics.min_views=8",
    "calibrate.handeye_views=4",
    "calibrate.speed=0.8",
]


def _dojo(domain_id: int, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = node_env(domain_id)
    env["MUJOCO_GL"] = "egl"
    return subprocess.run(
        [sys.executable, "-m", "dojo.cli", *args, f"ros.domain_id={domain_id}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def truth():
    twin = Twin(robot_spec("so101"), TwinConfig(), TaskConfig())
    try:
        pos, rot = twin.camera_pose("front")
        yield twin.camera_info("front"), transform(rot, pos)
    finally:
        twin.close()


def test_front_camera_through_the_graph_matches_the_twin(tmp_path, domain_id, truth):
    intrinsics, base_from_camera = truth
    t0 = time.monotonic()
    out = _dojo(domain_id, "calibrate", "intrinsics", "camera=front", "yes=true",
                f"dir={tmp_path}", *FEWER_VIEWS)  # fmt: skip
    t_intrinsics = time.monotonic() - t0
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "starting robot_driver" in out.stdout  # through the graph, not in process
    assert "end effector inside the workspace box, 0 safety" in out.stdout, out.stdout[-2000:]
    cal = camera_file.read(tmp_path / "front.yaml", "front", (320, 240))
    K = cal.K
    assert abs(K[0, 0] / intrinsics.fx - 1) < 0.005 and abs(K[1, 1] / intrinsics.fy - 1) < 0.005
    assert abs(K[0, 2] - intrinsics.cx) < 2.0 and abs(K[1, 2] - intrinsics.cy) < 2.0
    assert cal.reprojection_rms_px < 0.3

    t0 = time.monotonic()
    out = _dojo(domain_id, "calibrate", "handeye", "camera=front", "yes=true",
                f"dir={tmp_path}", *FEWER_VIEWS)  # fmt: skip
    t_handeye = time.monotonic() - t0
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "end effector inside the workspace box, 0 safety" in out.stdout, out.stdout[-2000:]
    hand_eye = camera_file.read(tmp_path / "front.yaml", "front", (320, 240)).hand_eye
    assert hand_eye is not None and hand_eye.mode == "eye_to_hand"
    mm, deg = pose_error(hand_eye.parent_from_camera, base_from_camera)
    assert 1000 * mm < 2.0, f"{1000 * mm:.2f} mm"
    assert deg < 0.2, f"{deg:.3f} deg"
    print(
        f"through the graph: intrinsics {t_intrinsics:.0f} s (f {K[0, 0]:.2f} vs "
        f"{intrinsics.fx:.2f}), hand-eye {t_handeye:.0f} s ({1000 * mm:.2f} mm, {deg:.3f} deg)"
    )


def test_latency_through_the_graph_tracks_an_injected_camera_delay(tmp_path, domain_id, truth):
    """The swing goes out as command/chunk; its command signal is what the driver says it
    sent, the frames and joint states are the topics' with their stamps."""
    intrinsics, _ = truth
    camera_file.write(
        tmp_path / "front.yaml",
        CameraCalibration("front", 320, 240, intrinsics.K, np.zeros(5)),  # as calibrated
    )
    out = _dojo(domain_id, "calibrate", "latency", "camera=front", "yes=true",
                f"dir={tmp_path}", "+sim.camera_delay.front=0.06",
                "calibrate.latency.duration=4")  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "end effector inside the workspace box, 0 safety" in out.stdout, out.stdout[-2000:]
    latency = camera_file.read(tmp_path / "front.yaml", "front", (320, 240)).latency
    assert abs(latency["image_after_joint_states"] - 0.06) < 0.005, latency
    assert latency["command_to_image"] > latency["image_after_joint_states"]


def test_joining_no_graph_gives_up_within_its_timeout(tmp_path, domain_id):
    """No driver on the domain: the rig's first wait is bounded, and says what it waited for."""
    t0 = time.monotonic()
    out = _dojo(domain_id, "calibrate", "intrinsics", "camera=front", "yes=true",
                f"dir={tmp_path}", "calibrate.graph.join=true",
                "calibrate.graph.start_timeout=3", timeout=60)  # fmt: skip
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "no joint_states from the driver within 3 s" in out.stderr.strip().splitlines()[-1]
    assert time.monotonic() - t0 < 45
    assert not np.any([p.name.endswith(".yaml") for p in tmp_path.iterdir()])
