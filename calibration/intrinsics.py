"""Camera intrinsics from ChArUco views, with the guidance that decides when there are enough.

Why guided: a calibration fitted to views that all sit in the image centre, or that all face
the camera squarely, fits the data and is wrong everywhere else (the focal length and the
distortion trade off against each other unless the board is tilted, and the distortion is only
seen near the edges). So :class:`Coverage` keeps, over an image grid, where corners have been
seen and how far the board was tilted, draws that as text for the person or the log, and
:meth:`Coverage.missing` says what is still lacking; :func:`calibrate` refuses to fit until
nothing is.

The fit is OpenCV's ``calibrateCamera`` on the ChArUco corners (plumb_bob: k1, k2, p1, p2, k3;
k3 held at 0 by default, as ROS's camera_calibration does for ordinary lenses), then up to two
passes that drop corners whose residual exceeds three times the median one (and
``outlier_px``): a corner half hidden by the gripper's jaws, a misread marker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.board import Detection
from calibration.config import IntrinsicsConfig
from calibration.errors import CalibrationError


@dataclass(frozen=True, eq=False)
class IntrinsicsResult:
    K: np.ndarray
    D: np.ndarray
    rms_px: float
    views: int
    per_view_rms: np.ndarray
    camera_from_board: list[np.ndarray]
    residuals: list[np.ndarray]  # per view, per corner (px)
    corners: int  # corners in the fit


class Coverage:
    """Where in the image board corners have been seen, and how the board was tilted."""

    def __init__(
        self, size: tuple[int, int], config: IntrinsicsConfig, mask: np.ndarray | None = None
    ) -> None:
        """``mask``: pixels the robot itself hides (a wrist camera's jaws); a cell more than
        half hidden cannot hold a corner and does not count (drawn ``#``)."""
        self.size = size
        self.config = config
        cols, rows = config.grid
        self.counts = np.zeros((rows, cols), dtype=int)
        self.hidden = np.zeros((rows, cols), dtype=bool)
        if mask is not None:
            h, w = mask.shape
            for r in range(rows):
                for c in range(cols):
                    cell = mask[
                        r * h // rows : (r + 1) * h // rows, c * w // cols : (c + 1) * w // cols
                    ]
                    self.hidden[r, c] = cell.mean() > 0.5
        self.views = 0
        self.tilt_x = 0.0  # largest tilt of the board about the image x axis (deg)
        self.tilt_y = 0.0

    def add(self, detection: Detection, tilt_xy_deg: tuple[float, float] | None = None) -> None:
        """One view's corners; ``tilt_xy_deg``: the board's tilt about the image x and y axes
        (from a pose estimate; None: estimated from the corners' homography)."""
        if len(detection) < self.config.min_corners:
            return
        self.views += 1
        cols, rows = self.config.grid
        w, h = self.size
        uv = detection.image_points
        cx = np.clip((uv[:, 0] / w * cols).astype(int), 0, cols - 1)
        cy = np.clip((uv[:, 1] / h * rows).astype(int), 0, rows - 1)
        np.add.at(self.counts, (cy, cx), 1)
        if tilt_xy_deg is None:
            tilt_xy_deg = _tilt_from_homography(detection, self.size)
        self.tilt_x = max(self.tilt_x, abs(tilt_xy_deg[0]))
        self.tilt_y = max(self.tilt_y, abs(tilt_xy_deg[1]))

    @property
    def fraction(self) -> float:
        """Fraction of the cells the camera can see the board in that held a corner."""
        visible = ~self.hidden
        return float(np.count_nonzero(self.counts[visible])) / max(1, int(visible.sum()))

    def missing(self) -> list[str]:
        """What is still lacking, one phrase each (empty: enough)."""
        c = self.config
        out = []
        if self.views < c.min_views:
            out.append(f"{self.views} of {c.min_views} views with >= {c.min_corners} corners")
        if self.fraction < c.min_coverage:
            out.append(
                f"corners in {self.fraction:.0%} of the image cells, {c.min_coverage:.0%} "
                "needed (show the board in the empty cells: '.' below)"
            )
        if min(self.tilt_x, self.tilt_y) < c.min_tilt_deg:
            out.append(
                f"board tilted at most {self.tilt_x:.0f} deg about the image x axis and "
                f"{self.tilt_y:.0f} deg about y, {c.min_tilt_deg:.0f} needed about both"
            )
        return out

    def draw(self) -> str:
        """The grid as text: a digit per cell (corners seen, 9 for 9 or more), '.' for none,
        '#' for a cell the robot hides."""
        rows = [
            "".join(
                "#" if hid else "." if n == 0 else str(min(n, 9))
                for n, hid in zip(row, hidden, strict=True)
            )
            for row, hidden in zip(self.counts, self.hidden, strict=True)
        ]
        return "\n".join(f"  |{r}|" for r in rows)


def _tilt_from_homography(detection: Detection, size: tuple[int, int]) -> tuple[float, float]:
    """Rough tilt (deg) about the image axes from the board-to-image homography, with a
    guessed focal length (the image width): enough to tell a tilted view from a square one."""
    if len(detection) < 4:
        return (0.0, 0.0)
    w, h = size
    K = np.array([[w, 0, (w - 1) / 2], [0, w, (h - 1) / 2], [0, 0, 1.0]])
    H, _ = cv2.findHomography(detection.object_points[:, :2], detection.image_points)
    if H is None:
        return (0.0, 0.0)
    M = np.linalg.inv(K) @ H
    r1, r2 = M[:, 0], M[:, 1]
    scale = 1.0 / np.linalg.norm(r1)
    r1, r2 = r1 * scale, r2 * scale
    normal = np.cross(r1, r2)
    normal /= np.linalg.norm(normal)
    return (
        math.degrees(math.atan2(abs(normal[1]), abs(normal[2]))),
        math.degrees(math.atan2(abs(normal[0]), abs(normal[2]))),
    )


def calibrate(
    detections: list[Detection],
    size: tuple[int, int],
    config: IntrinsicsConfig | None = None,
    mask: np.ndarray | None = None,
) -> IntrinsicsResult:
    """Fit K and D to the views (see the module docstring). Refused, saying what is lacking,
    when the views do not cover the image (less what ``mask`` hides) or tilt enough, or the
    fit is poor."""
    config = config or IntrinsicsConfig()
    coverage = Coverage(size, config, mask)
    for d in detections:
        coverage.add(d)
    lacking = coverage.missing()
    if lacking:
        raise CalibrationError(
            "not enough board views for intrinsics: " + "; ".join(lacking) + "\n" + coverage.draw()
        )
    views = [d for d in detections if len(d) >= config.min_corners]
    flags = cv2.CALIB_FIX_K3 if config.fix_k3 else 0
    result = _fit(views, size, flags)
    for _ in range(2):  # drop corners far off the fit (a corner half hidden by the jaws)
        limit = max(config.outlier_px, 3.0 * float(np.median(np.concatenate(result.residuals))))
        kept = [_subset(v, r <= limit) for v, r in zip(views, result.residuals, strict=True)]
        kept = [v for v in kept if len(v) >= config.min_corners]
        if sum(map(len, kept)) == sum(map(len, views)) or len(kept) < config.min_views:
            break
        views = kept
        result = _fit(views, size, flags)
    if not (np.isfinite(result.rms_px) and result.rms_px <= config.max_rms_px):
        raise CalibrationError(
            f"intrinsics fit has reprojection RMS {result.rms_px:.3f} px > "
            f"{config.max_rms_px} px: a misread board or a moving camera; take the views again"
        )
    return result


def _fit(views: list[Detection], size: tuple[int, int], flags: int) -> IntrinsicsResult:
    obj = [v.object_points.astype(np.float32).reshape(-1, 1, 3) for v in views]
    img = [v.image_points.astype(np.float32).reshape(-1, 1, 2) for v in views]
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    rms, K, D, rvecs, tvecs = cv2.calibrateCamera(
        obj, img, tuple(size), None, None, flags=flags, criteria=criteria
    )
    per_view, residuals, poses = [], [], []
    for o, i, r, t in zip(obj, img, rvecs, tvecs, strict=True):
        proj, _ = cv2.projectPoints(o, r, t, K, D)
        err = np.linalg.norm((proj - i).reshape(-1, 2), axis=1)
        residuals.append(err)
        per_view.append(float(np.sqrt(np.mean(err**2))))
        rot, _ = cv2.Rodrigues(r)
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rot, t.reshape(3)
        poses.append(pose)
    return IntrinsicsResult(
        K=K,
        D=D.reshape(-1),
        rms_px=float(rms),
        views=len(views),
        per_view_rms=np.array(per_view),
        camera_from_board=poses,
        residuals=residuals,
        corners=sum(len(v) for v in views),
    )


def _subset(detection: Detection, keep: np.ndarray) -> Detection:
    return Detection(
        detection.ids[keep], detection.image_points[keep], detection.object_points[keep]
    )
