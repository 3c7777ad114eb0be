"""The solvers on synthetic data with a known answer: degenerate inputs refused, latency found."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.board import Detection
from calibration.config import IntrinsicsConfig
from calibration.errors import CalibrationError
from calibration.geometry import from_rotvec, invert, pose_error, transform
from calibration.handeye import EYE_IN_HAND, EYE_TO_HAND, solve
from calibration.intrinsics import Coverage, calibrate
from calibration.latency import estimate_lag, excitation
from calibration.poses import check_spread

K = np.array([[200.0, 0.0, 160.0], [0.0, 200.0, 120.0], [0.0, 0.0, 1.0]])
GRID = np.array([[x * 0.03, y * 0.03, 0.0] for y in range(3) for x in range(5)])


def _detection(camera_from_board: np.ndarray) -> Detection:
    p = camera_from_board[:3, :3] @ GRID.T + camera_from_board[:3, 3:4]
    uv = ((K @ p)[:2] / p[2]).T
    return Detection(np.arange(len(GRID)), uv, GRID.copy())


def _poses(rng, n, axes=None):
    out = []
    for _ in range(n):
        axis = rng.normal(size=3) if axes is None else np.asarray(axes, dtype=float)
        axis /= np.linalg.norm(axis)
        rot = from_rotvec(axis * rng.uniform(0.2, 0.6))
        out.append(transform(rot, np.array([0.2, 0.0, 0.2]) + rng.normal(scale=0.03, size=3)))
    return out


@pytest.mark.parametrize("mode", [EYE_IN_HAND, EYE_TO_HAND])
def test_hand_eye_recovers_the_transform(mode):
    rng = np.random.default_rng(0)
    base_from_ee = _poses(rng, 10)
    if mode == EYE_IN_HAND:
        truth = transform(from_rotvec([0.1, 0.2, -0.1]), [0.02, -0.04, 0.03])
        base_from_board = transform(from_rotvec([math.pi, 0, 0]), [0.15, -0.03, 0.0])
        views = [invert(b @ truth) @ base_from_board for b in base_from_ee]
    else:
        truth = transform(from_rotvec([0.0, 2.5, 0.0]), [0.6, 0.0, 0.3])
        ee_from_board = transform(from_rotvec([0.0, math.pi / 2, 0.0]), [0.01, -0.04, -0.03])
        views = [invert(truth) @ b @ ee_from_board for b in base_from_ee]
    detections = [_detection(v) for v in views]
    result = solve(mode, base_from_ee, views, detections, K, np.zeros(5))
    mm, deg = pose_error(result.solution, truth)
    assert mm < 1e-5 and deg < 1e-4
    assert result.reprojection_rms_px < 1e-3


def test_poses_rotated_about_one_axis_are_refused():
    rng = np.random.default_rng(1)
    one_axis = _poses(rng, 8, axes=[0.0, 0.0, 1.0])
    with pytest.raises(CalibrationError, match=r"all\s+about one axis"):
        check_spread(one_axis)
    check_spread(_poses(rng, 8))  # spread rotations pass


def test_intrinsics_refuse_too_few_or_untilted_views_and_name_what_lacks():
    square = [_detection(transform(np.eye(3), [-0.06, -0.03, 0.4 + 0.01 * i])) for i in range(3)]
    with pytest.raises(CalibrationError) as info:
        calibrate(square, (320, 240), IntrinsicsConfig(min_views=5, min_corners=8))
    text = str(info.value)
    assert "3 of 5 views" in text and "tilted at most" in text and "|" in text
    coverage = Coverage((320, 240), IntrinsicsConfig())
    for d in square:
        coverage.add(d)
    assert coverage.fraction < 0.2 and coverage.missing()


def test_intrinsics_recover_the_camera_matrix_from_tilted_views():
    rng = np.random.default_rng(3)
    views = []
    for _ in range(14):
        rot = from_rotvec(rng.uniform(-0.6, 0.6, size=3))
        t = np.array([rng.uniform(-0.12, 0.05), rng.uniform(-0.08, 0.04), rng.uniform(0.3, 0.45)])
        d = _detection(transform(rot, t))
        inside = (d.image_points[:, 0] > 0) & (d.image_points[:, 0] < 319)
        inside &= (d.image_points[:, 1] > 0) & (d.image_points[:, 1] < 239)
        if inside.all():
            views.append(d)
    config = IntrinsicsConfig(min_views=8, min_coverage=0.3, min_tilt_deg=10.0, grid=[4, 3])
    result = calibrate(views, (320, 240), config)
    np.testing.assert_allclose(result.K, K, atol=0.05)
    assert result.rms_px < 1e-3


@pytest.mark.parametrize("delay", [0.0, 0.033, 0.1, 0.15])
def test_latency_estimate_tracks_the_delay_of_a_slow_camera(delay):
    t_ref = np.arange(0.0, 9.0, 0.02)  # joint states at 50 Hz
    ref = 0.08 * excitation(t_ref - 0.5, 8.0)
    t_cam = np.arange(0.0, 9.0, 1 / 15)  # a 15 fps camera, seeing the arm `delay` late
    cam = -300.0 * 0.08 * excitation(t_cam - delay - 0.5, 8.0) + 7.0
    est = estimate_lag(t_ref, ref, t_cam, cam)
    assert abs(est.lag - delay) < 0.002 and est.correlation > 0.99


def test_latency_without_motion_is_refused():
    t = np.arange(0.0, 5.0, 0.02)
    with pytest.raises(CalibrationError, match="no motion"):
        estimate_lag(t, np.zeros_like(t), t, np.zeros_like(t))
