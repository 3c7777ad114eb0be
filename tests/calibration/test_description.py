"""The planner's prior from the robot's description, and the moves every rig makes."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

from calibration.config import CalibrateConfig
from calibration.description import Description, prior_error
from calibration.errors import CalibrationError
from calibration.geometry import pose_error, transform
from calibration.motion import glide
from robot.sim.config import TaskConfig, TwinConfig
from robot.sim.twin import Twin
from tests.sim_helpers import robot_spec


@pytest.fixture(scope="module")
def spec():
    return robot_spec("so101")


@pytest.fixture(scope="module")
def twin(spec):
    t = Twin(spec, TwinConfig(), TaskConfig())
    t.arm.connect()
    yield t
    t.close()


def test_the_description_places_the_cameras_where_the_twin_has_them(spec, twin):
    exact = Description(spec)
    perturbed = Description(spec, perturbed=True)
    q = twin.arm.read().position
    try:
        assert not exact.on_arm("front") and exact.on_arm("wrist")
        for camera in ("front", "wrist"):
            pos, rot = twin.camera_pose(camera)
            mm, deg = pose_error(exact.base_from_camera(camera, q), transform(rot, pos))
            assert mm < 1e-9 and deg < 1e-4  # acos near 1: 1e-6 deg is rounding
            np.testing.assert_allclose(exact.intrinsics(camera), twin.camera_info(camera).K)
            f = perturbed.intrinsics(camera)[0, 0] / twin.camera_info(camera).fx
            assert f == pytest.approx(1.02)
        # the twin's rig plans from the description off by the prior's error, never exactly
        board = CalibrateConfig().hand_board
        nominal = perturbed.geometry("front", board, q).base_from_camera(q)
        mm, deg = pose_error(nominal, exact.base_from_camera("front", q))
        mm0, deg0 = pose_error(prior_error(), np.eye(4))
        assert mm == pytest.approx(mm0) and deg == pytest.approx(deg0) and mm > 0.003
        with pytest.raises(CalibrationError, match="needs the board in the hand"):
            exact.geometry("front", CalibrateConfig().table_board, q)
        with pytest.raises(CalibrationError, match="has no camera 'side'"):
            exact.on_arm("side")
        mask = exact.self_mask("wrist", q, (320, 240))
        assert mask is not None and 0 < mask.mean() < 0.8  # the jaws, not the whole frame
    finally:
        exact.close()
        perturbed.close()


def test_a_glide_ends_at_its_goal_within_the_limits(spec):
    start = np.array(spec.home, dtype=np.float64)
    goal = start + np.array([0.4, -0.3, 0.2, 0.1, -0.5, 0.0])
    rows = glide(start, goal, spec, speed=0.5)
    np.testing.assert_allclose(rows[-1], goal)
    path = np.vstack([start, rows])
    v = np.diff(path, axis=0) / spec.control_period
    a = np.diff(v, axis=0) / spec.control_period
    assert np.all(np.abs(v) <= 0.5 * np.asarray(spec.velocity_limit) * 1.01)
    assert np.all(np.abs(a) <= 0.5 * np.asarray(spec.acceleration_limit) * 1.05)
