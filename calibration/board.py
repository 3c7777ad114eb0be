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
from robot.sim.scene import SceneError, board_image, charuco_board

MASK_MARGIN_PX = 6
# Corner refinement (see Board.detect): the patch of the printed board around each corner,
# drawn this many times finer and averaged down, blurred like a camera's optics (a pixel's
# sigma), aligned to the frame by ECC. The patch reaches 0.85 of a square each way: the
# borders of both markers beside the corner inside it (more edges, less noise: in the twin
# half a square left the front camera's f up to 0.45% short, 0.85 at most 0.19%), yet inside
# the squares (the outermost corners are one square from the pattern's edge, beyond which
# lies whatever the board is held against) with room for the blur and the search
PATCH_HALF_SQUARE = 0.85
PATCH_SUPERSAMPLE = 4
PATCH_BLUR_PX = 1.0
REFINE_PASSES = 3
REFINE_CRITERIA = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 1e-5)
MAX_REFINE_MOVE_PX = 1.5


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
        # the printed face (OpenCV's pattern for this board: what the twin draws and a person
        # prints, robot.sim.scene.board_image) and the map from its pixels' centres to the
        # board frame (m): what the corner refinement aligns to the frame
        self._texture = board_image(config).astype(np.float32)
        th, tw = self._texture.shape
        width, height = config.size
        sx, sy = width / tw, height / th
        self._texture_to_board = np.array(
            [[sx, 0, sx / 2 - config.margin], [0, sy, sy / 2 - config.margin], [0, 0, 1.0]]
        )

    @property
    def n_corners(self) -> int:
        return len(self.corners)

    def detect(
        self, image: np.ndarray, mask: np.ndarray | None = None, refine: bool = True
    ) -> Detection | None:
        """The board's corners in an RGB or grey image, refined to sub-pixel; None when fewer
        than 4 are found. ``mask``: ``(H, W)`` pixels that show something in front of the
        board (the robot's own jaws): a corner within :data:`MASK_MARGIN_PX` of one is
        dropped, since a half-hidden corner is found off its place. ``refine=False``: OpenCV's
        own corners (a few tenths of a pixel off, ten times faster: enough to follow the
        board's motion, as :mod:`calibration.latency` does).

        Why not ``cv2.cornerSubPix``: it assumes the corner's neighbourhood is an ideal
        X-junction, and on a ChArUco board the markers' black borders and bits sit a tenth
        of a square from the corner. At 25-50 px a square (the front camera's views of the
        hand board) they enter its window, more on the board's far side when it is tilted:
        in the twin its corners sat 0.17-0.21 px RMS off the truth with some 1-1.6 px off,
        against 0.09 px for the wrist camera's views, and what is off correlates with the
        perspective, which is all that tells a focal length from a distance: the front
        camera's f came out 0.3% short on both plan seeds, its principal point 0.8-1.3 px
        off, and the hand-eye rotation inherits that whole (dc / f rad: 0.34 deg). So each
        corner is refined against what the board *looks like* there: the printed pattern,
        markers and all, drawn through the local homography of its neighbours
        (:meth:`_refine`), then shifted until it matches the frame best (ECC, which does not
        care about contrast or brightness). In the twin: 0.025-0.036 px RMS, the worst
        0.1-0.4 px (bench/README.md, calibration.py)."""
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        corners, ids, _, _ = self._detector.detectBoard(grey)
        if ids is None or len(ids) < 4:
            return None
        ids = ids.reshape(-1).astype(np.int64)
        found = corners.reshape(-1, 2).astype(np.float64)
        if refine:
            refined, ok = self._refine(grey, ids, found)
        else:
            refined, ok = found, np.ones(len(ids), dtype=bool)
        keep = ok & (np.linalg.norm(refined - found, axis=1) < MAX_REFINE_MOVE_PX)
        if mask is not None:
            keep &= ~near_mask(mask, refined)
        if np.count_nonzero(keep) < 4:
            return None
        return Detection(ids[keep], refined[keep], self.corners[ids[keep]])

    def _refine(
        self, grey: np.ndarray, ids: np.ndarray, uv: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each corner aligned to a drawing of the board around it; ``(N, 2)`` pixels and
        ``(N,)`` whether the alignment converged. The drawing's homography comes from the
        corners within one square of it (a lens's distortion bends the board across the
        image, not across a square), or from all of them where fewer than 4 are found."""
        frame = grey.astype(np.float32)
        h, w = frame.shape
        xy = self.corners[ids, :2]
        grid = np.round(xy / self.config.square_length).astype(int)
        half = PATCH_HALF_SQUARE * self.config.square_length
        quad = np.array([[-half, -half], [half, -half], [half, half], [-half, half]])
        s = PATCH_SUPERSAMPLE
        fine = np.array([[s, 0, (s - 1) / 2], [0, s, (s - 1) / 2], [0, 0, 1.0]])
        ok = np.zeros(len(ids), dtype=bool)
        for _ in range(REFINE_PASSES):
            whole, _ = cv2.findHomography(xy, uv)
            out = uv.copy()
            for k in range(len(ids)):
                near = np.all(np.abs(grid - grid[k]) <= 1, axis=1)
                H = whole
                if np.count_nonzero(near) >= 4 and all(
                    len(np.unique(grid[near, a])) >= 2 for a in (0, 1)
                ):
                    H, _ = cv2.findHomography(xy[near], uv[near])
                if H is None:
                    ok[k] = False
                    continue
                corner = cv2.perspectiveTransform(xy[k].reshape(1, 1, 2), H).reshape(2)
                box = cv2.perspectiveTransform((quad + xy[k]).reshape(-1, 1, 2), H).reshape(-1, 2)
                x0, y0 = np.maximum(np.floor(box.min(axis=0)).astype(int), 0)
                x1, y1 = np.minimum(np.ceil(box.max(axis=0)).astype(int), [w - 1, h - 1])
                if x1 - x0 < 4 or y1 - y0 < 4:
                    ok[k] = False
                    continue
                size = (int(x1 - x0 + 1), int(y1 - y0 + 1))
                shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]])
                drawn = cv2.warpPerspective(
                    self._texture,
                    fine @ shift @ H @ self._texture_to_board,
                    (size[0] * s, size[1] * s),
                    flags=cv2.INTER_LINEAR,
                )
                drawn = cv2.resize(drawn, size, interpolation=cv2.INTER_AREA)
                drawn = cv2.GaussianBlur(drawn, (0, 0), PATCH_BLUR_PX)
                inside = np.zeros((size[1], size[0]), np.uint8)
                cv2.fillConvexPoly(inside, np.round(box - [x0, y0]).astype(np.int32), 1)
                warp = np.eye(2, 3, dtype=np.float32)
                try:
                    _, warp = cv2.findTransformECC(
                        drawn,
                        frame[y0 : y1 + 1, x0 : x1 + 1],
                        warp,
                        cv2.MOTION_TRANSLATION,
                        REFINE_CRITERIA,
                        inside,
                        1,
                    )
                except cv2.error:  # no convergence: a corner half out of the frame, or hidden
                    ok[k] = False
                    continue
                out[k] = corner + warp[:, 2]
                ok[k] = True
            uv = out
        return uv, ok

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
