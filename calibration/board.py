"""The ChArUco board: finding it in an image and where it is relative to the camera.

Why ChArUco and not a plain chessboard: every corner is identified by the ArUco markers
around it, so a view that shows only part of the board (the wrist camera's jaws cover a third
of its image) still gives corners with known board coordinates, and the views can reach the
image edges where distortion shows.

Frames. OpenCV's board frame, the one every result here speaks::

      origin = top-left corner of the squares (the printed image's top-left)
      +-----> x (along squares_x)
      |  [] [] [] []
      |  [] [] [] []
      v  y (along squares_y)            z = x cross y: into the board, away from the viewer

The twin's ``board`` body (``robot.sim.scene.add_board``) has its printed face on its +z, the
image's right along its +x and the image's down along its -y; so
``body_from_board = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]`` with the origin at
``(-width/2 + margin, height/2 - margin, 0)`` (:func:`body_from_board`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calibration.errors import CalibrationError
from calibration.geometry import transform
from robot.sim.config import BoardConfig
from robot.sim.scene import SceneError, charuco_board

SUBPIX_WINDOW = (2, 2)  # half-size: a 5 x 5 pixel window
SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
MASK_MARGIN_PX = 6


def near_mask(mask: np.ndarray, uv: np.ndarray, margin: int = MASK_MARGIN_PX) -> np.ndarray:
    """``(N,)`` bool: which points ``(N, 2)`` lie within ``margin`` px of a ``mask`` pixel
    (points outside the image count as near)."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    h, w = mask.shape
    u = np.round(uv[:, 0]).astype(int)
    v = np.round(uv[:, 1]).astype(int)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    out = np.ones(len(uv), dtype=bool)
    out[inside] = grown[v[inside], u[inside]] > 0
    return out


@dataclass(frozen=True, eq=False)
class Detection:
    """The board's corners found in one image: ``ids`` ``(N,)``, ``image_points`` ``(N, 2)``
    (px), ``object_points`` ``(N, 3)`` (m, board frame)."""

    ids: np.ndarray
    image_points: np.ndarray
    object_points: np.ndarray

    def __len__(self) -> int:
        return int(self.ids.size)


class Board:
    """A :class:`~robot.sim.config.BoardConfig` made into OpenCV's board and detector."""

    def __init__(self, config: BoardConfig) -> None:
        self.config = config
        try:
            self.cv = charuco_board(config)
        except SceneError as err:
            raise CalibrationError(str(err)) from None
        params = cv2.aruco.CharucoParameters()
        # a corner next to one found marker counts (the default wants both): at 320x240 a
        # marker of a tilted board is often too small to read while its neighbour is not
        params.minMarkers = 1
        params.tryRefineMarkers = True
        markers = cv2.aruco.DetectorParameters()
        markers.minMarkerPerimeterRate = 0.01
        markers.adaptiveThreshWinSizeMin = 3
        markers.adaptiveThreshWinSizeMax = 33
        markers.adaptiveThreshWinSizeStep = 4
        self._detector = cv2.aruco.CharucoDetector(self.cv, params, markers)
        self.corners = np.asarray(self.cv.getChessboardCorners(), dtype=np.float64)

    @property
    def n_corners(self) -> int:
        return len(self.corners)

    def detect(self, image: np.ndarray, mask: np.ndarray | None = None) -> Detection | None:
        """The board's corners in an RGB or grey image, refined to sub-pixel; None when fewer
        than 4 are found. ``mask``: ``(H, W)`` pixels that show something in front of the
        board (the robot's own jaws): a corner within :data:`MASK_MARGIN_PX` of one is
        dropped, since a half-hidden corner is found off its place."""
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        corners, ids, _, _ = self._detector.detectBoard(grey)
        if ids is None or len(ids) < 4:
            return None
        ids = ids.reshape(-1).astype(np.int64)
        found = corners.reshape(-1, 1, 2).astype(np.float32)
        # OpenCV's own refinement window reaches the markers' edges on a small board: in the
        # twin its corners sit 0.3 px off the truth with 0.2 px of scatter; a 5 x 5 window
        # gives 0.05 px without bias. A corner that moves further than a pixel is dropped.
        refined = cv2.cornerSubPix(grey, found.copy(), SUBPIX_WINDOW, (-1, -1), SUBPIX_CRITERIA)
        moved = np.linalg.norm((refined - found).reshape(-1, 2), axis=1)
        keep = moved < 1.0
        if mask is not None:
            keep &= ~near_mask(mask, refined.reshape(-1, 2))
        if np.count_nonzero(keep) < 4:
            return None
        uv = refined.reshape(-1, 2)[keep].astype(np.float64)
        return Detection(ids[keep], uv, self.corners[ids[keep]])

    def pose(self, detection: Detection, K: np.ndarray, D: np.ndarray) -> np.ndarray | None:
        """``camera_from_board`` ``(4, 4)`` from one detection (PnP, refined by
        Levenberg-Marquardt on the reprojection error); None if it cannot be solved."""
        if len(detection) < 6:
            return None
        obj = detection.object_points.reshape(-1, 1, 3)
        img = detection.image_points.reshape(-1, 1, 2)
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, D, flags=cv2.SOLVEPNP_IPPE)
        if not ok:
            ok, rvec, tvec = cv2.solvePnP(obj, img, K, D, flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok:
            return None
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, D, rvec, tvec)
        rot, _ = cv2.Rodrigues(rvec)
        return transform(rot, tvec.reshape(3))


def body_from_board(config: BoardConfig) -> np.ndarray:
    """The twin's ``board`` body frame from OpenCV's board frame (see the module docstring)."""
    width, height = config.size
    flip = np.diag([1.0, -1.0, -1.0])
    return transform(flip, [-width / 2 + config.margin, height / 2 - config.margin, 0.0])


def mount_from_board(config: BoardConfig) -> np.ndarray:
    """The mount's frame (base on the table, ``ee_site`` in the hand) from the board frame,
    as ``config`` places it: its nominal pose, the one a view planner aims with."""
    from robot.sim.scene import euler_matrix

    return transform(euler_matrix(config.euler), config.pos) @ body_from_board(config)
