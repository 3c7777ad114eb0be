"""Hand-eye calibration: where a camera is, on the hand or in the world, from arm poses and
board views.

Two set-ups, one unknown pair each (``base`` the robot's base, ``ee`` its ``ee_site``)::

    eye_in_hand  (camera on the arm, board on the table)
        base_from_ee[i] @ ee_from_camera @ camera_from_board[i] = base_from_board
        unknowns: ee_from_camera (the answer), base_from_board

    eye_to_hand  (camera fixed, board in the hand)
        base_from_camera @ camera_from_board[i] = base_from_ee[i] @ ee_from_board
        unknowns: base_from_camera (the answer), ee_from_board

``base_from_ee[i]`` comes from forward kinematics of the measured joints, ``camera_from_board[i]``
from PnP with the calibrated intrinsics. Why two stages: OpenCV's closed-form
``calibrateHandEye`` (Park and Martin's method) needs no first guess but weighs every pose's
PnP error equally, in metres and radians it cannot compare; so its answer starts a
Levenberg-Marquardt refinement of both unknowns on what was actually measured, every corner's
reprojection error in pixels (``scipy.optimize.least_squares``). The residuals reported are the
spread of the other unknown over the views (each view gives its own ``base_from_board`` or
``ee_from_board`` through the solved transform): millimetres and degrees that say how well
the poses agree with one rigid answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.board import Detection
from calibration.errors import CalibrationError
from calibration.geometry import from_rotvec, invert, rotation_angle, rotvec, transform
from calibration.poses import check_spread

EYE_IN_HAND = "eye_in_hand"
EYE_TO_HAND = "eye_to_hand"


@dataclass(frozen=True, eq=False)
class HandEyeResult:
    """``solution``: ``ee_from_camera`` (eye_in_hand) or ``base_from_camera`` (eye_to_hand);
    ``other``: ``base_from_board`` or ``ee_from_board``; residual spreads and the pixel RMS."""

    mode: str
    solution: np.ndarray
    other: np.ndarray
    closed_form: np.ndarray
    residual_mm: float
    residual_deg: float
    reprojection_rms_px: float
    views: int


def _params(t: np.ndarray) -> np.ndarray:
    return np.concatenate([rotvec(t[:3, :3]), t[:3, 3]])


def _unparams(p: np.ndarray) -> np.ndarray:
    return transform(from_rotvec(p[:3]), p[3:6])


def chain(mode: str, solution: np.ndarray, other: np.ndarray, base_from_ee: np.ndarray):
    """``camera_from_board`` that the two unknowns predict at one arm pose."""
    if mode == EYE_IN_HAND:
        return invert(base_from_ee @ solution) @ other
    return invert(solution) @ base_from_ee @ other


def others(mode: str, solution: np.ndarray, base_from_ee, camera_from_board) -> list[np.ndarray]:
    """What each view says the other unknown is, given ``solution``."""
    if mode == EYE_IN_HAND:
        return [b @ solution @ c for b, c in zip(base_from_ee, camera_from_board, strict=True)]
    return [invert(b) @ solution @ c for b, c in zip(base_from_ee, camera_from_board, strict=True)]


def spread(transforms: list[np.ndarray]) -> tuple[float, float, np.ndarray]:
    """RMS distance (mm) and angle (deg) of ``transforms`` from their mean, and the mean."""
    t = np.mean([x[:3, 3] for x in transforms], axis=0)
    u, _, vt = np.linalg.svd(np.sum([x[:3, :3] for x in transforms], axis=0))
    rot = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
    mean = transform(rot, t)
    mm = 1000 * math.sqrt(np.mean([np.sum((x[:3, 3] - t) ** 2) for x in transforms]))
    deg = math.degrees(
        math.sqrt(np.mean([rotation_angle(rot.T @ x[:3, :3]) ** 2 for x in transforms]))
    )
    return mm, deg, mean


def solve(
    mode: str,
    base_from_ee: list[np.ndarray],
    camera_from_board: list[np.ndarray],
    detections: list[Detection],
    K: np.ndarray,
    D: np.ndarray,
) -> HandEyeResult:
    """The hand-eye transform (see the module docstring). Refused for fewer than 3 poses or
    poses whose rotations are all about one axis."""
    if mode not in (EYE_IN_HAND, EYE_TO_HAND):
        raise CalibrationError(f"hand-eye mode {mode!r} is not {EYE_IN_HAND} or {EYE_TO_HAND}")
    n = len(base_from_ee)
    if not n == len(camera_from_board) == len(detections):
        raise CalibrationError("hand-eye: poses, board poses and detections differ in number")
    check_spread(base_from_ee)
    # OpenCV solves gripper->base with target->camera; eye_to_hand passes base->gripper
    arm = base_from_ee if mode == EYE_IN_HAND else [invert(b) for b in base_from_ee]
    rot, trans = cv2.calibrateHandEye(
        [a[:3, :3] for a in arm],
        [a[:3, 3] for a in arm],
        [c[:3, :3] for c in camera_from_board],
        [c[:3, 3] for c in camera_from_board],
        method=cv2.CALIB_HAND_EYE_PARK,
    )
    closed = transform(rot, trans.reshape(3))
    if not np.all(np.isfinite(closed)):
        raise CalibrationError("hand-eye: the closed-form solve failed (NaN); take new poses")
    _, _, other0 = spread(others(mode, closed, base_from_ee, camera_from_board))
    p0 = np.concatenate([_params(closed), _params(other0)])
    solution, other, rms = _refine(mode, p0, base_from_ee, detections, K, D, fixed=None)
    if not np.all(np.isfinite(solution)):
        raise CalibrationError("hand-eye: the refinement diverged (NaN); take new poses")
    mm, deg, _ = spread(others(mode, solution, base_from_ee, camera_from_board))
    return HandEyeResult(mode, solution, other, closed, mm, deg, rms, n)


def fit_other(
    mode: str,
    solution: np.ndarray,
    base_from_ee: list[np.ndarray],
    camera_from_board: list[np.ndarray],
    detections: list[Detection],
    K: np.ndarray,
    D: np.ndarray,
) -> tuple[np.ndarray, float]:
    """With ``solution`` held (a calibration file's), the other unknown that fits the views
    best and the reprojection RMS (px) it leaves: what ``dojo calibrate check`` judges."""
    _, _, other0 = spread(others(mode, solution, base_from_ee, camera_from_board))
    _, other, rms = _refine(mode, _params(other0), base_from_ee, detections, K, D, fixed=solution)
    return other, rms


def _refine(
    mode: str,
    p0: np.ndarray,
    base_from_ee: list[np.ndarray],
    detections: list[Detection],
    K: np.ndarray,
    D: np.ndarray,
    fixed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Levenberg-Marquardt on every corner's reprojection error; ``fixed``: the solution
    held (then ``p0`` is the other unknown only). One pass drops corners more than three
    times the median residual (and 1 px) off, then fits again."""
    from scipy.optimize import least_squares

    obj = [d.object_points for d in detections]
    img = [d.image_points for d in detections]

    def unpack(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if fixed is not None:
            return fixed, _unparams(p)
        return _unparams(p[:6]), _unparams(p[6:])

    def residual(p: np.ndarray) -> np.ndarray:
        sol, oth = unpack(p)
        out = []
        for b, o, i in zip(base_from_ee, obj, img, strict=True):
            c = chain(mode, sol, oth, b)
            r, _ = cv2.Rodrigues(c[:3, :3])
            proj, _ = cv2.projectPoints(o, r, c[:3, 3], K, D)
            out.append((proj.reshape(-1, 2) - i).reshape(-1))
        return np.concatenate(out)

    fit = least_squares(residual, p0, method="lm", x_scale="jac")
    err = np.linalg.norm(fit.fun.reshape(-1, 2), axis=1)
    limit = max(1.0, 3.0 * float(np.median(err)))
    if np.any(err > limit):
        keep, start = [], 0
        for o in obj:
            keep.append(err[start : start + len(o)] <= limit)
            start += len(o)
        obj = [o[k] for o, k in zip(obj, keep, strict=True)]
        img = [i[k] for i, k in zip(img, keep, strict=True)]
        fit = least_squares(residual, fit.x, method="lm", x_scale="jac")
        err = np.linalg.norm(fit.fun.reshape(-1, 2), axis=1)
    solution, other = unpack(fit.x)
    return solution, other, float(np.sqrt(np.mean(err**2)))
