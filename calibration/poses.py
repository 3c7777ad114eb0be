"""Arm poses for calibration: well conditioned, seen by the camera, inside every limit.

Why planned and not random: hand-eye calibration is only as good as the spread of the
rotations between views (Tsai and Lenz: the error falls with the angle between the motions'
rotation axes; rotations about one axis leave the translation along it unobservable), and
intrinsics need the board in every part of the image and tilted both ways. So candidates are
drawn over the joint ranges, kept when most of the board would be seen (projected with a
*nominal* camera and board pose: the robot description's, not the calibrated truth) and the
arm stays within ``SafetyLimits``' box and joint limits with a margin, and chosen greedily:
each next view the one farthest in orientation from those chosen, weighted by the image cells
it adds. The path between consecutive views (straight in joint space) is checked for the
workspace box too, sample by sample; a view that cannot be reached that way from the last one
is dropped.

Frames: ``base`` is the robot's base (its MJCF root body), ``ee`` its ``ee_site``, ``camera``
the camera's optical frame, ``board`` OpenCV's board frame (:mod:`calibration.board`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from calibration.board import near_mask
from calibration.config import PlanConfig
from calibration.errors import CalibrationError
from calibration.geometry import invert, rotation_angle, transform
from robot.mjcf import ForwardKinematics
from robot.schema import RobotSpec


class ArmKinematics(ForwardKinematics):
    """:class:`robot.mjcf.ForwardKinematics` with the site's orientation: ``base_from_ee``."""

    def pose(self, q: np.ndarray) -> np.ndarray:
        """``(4, 4)`` pose of the ``ee_site`` in the base frame at joint positions ``q``."""
        pos = self(q)  # runs mj_kinematics at q
        d = self._data
        base_rot = d.xmat[self._base_id].reshape(3, 3)
        rot = base_rot.T @ d.site_xmat[self._site_id].reshape(3, 3)
        return transform(rot, pos)


def arm_kinematics(spec: RobotSpec) -> ArmKinematics:
    base = ForwardKinematics.for_robot(spec)
    ignore = (spec.gripper_joint,) if spec.gripper_joint else ()
    return ArmKinematics(base.model, spec.joint_names, spec.ee_site, ignore=ignore)


@dataclass(frozen=True)
class ViewGeometry:
    """How a pose ``q`` places camera and board, both in the base frame (nominal)."""

    base_from_camera: Callable[[np.ndarray], np.ndarray]
    base_from_board: Callable[[np.ndarray], np.ndarray]


def eye_in_hand(kin: ArmKinematics, ee_from_camera: np.ndarray, base_from_board: np.ndarray):
    return ViewGeometry(
        base_from_camera=lambda q: kin.pose(q) @ ee_from_camera,
        base_from_board=lambda q: base_from_board,
    )


def eye_to_hand(kin: ArmKinematics, base_from_camera: np.ndarray, ee_from_board: np.ndarray):
    return ViewGeometry(
        base_from_camera=lambda q: base_from_camera,
        base_from_board=lambda q: kin.pose(q) @ ee_from_board,
    )


@dataclass(frozen=True, eq=False)
class View:
    """One planned pose: joint positions, the corners' nominal pixels, the board's tilt."""

    q: np.ndarray
    pixels: np.ndarray
    tilt_deg: float
    base_from_camera: np.ndarray


@dataclass(frozen=True, eq=False)
class Plan:
    """The views in the order the arm visits them, each reachable from the previous one (the
    first from ``start``) on a straight joint-space path inside the limits."""

    start: np.ndarray
    views: list[View]
    cells: int
    cells_total: int

    @property
    def coverage(self) -> float:
        return self.cells / self.cells_total


class Limits:
    """The safety layer's joint limits and workspace box, shrunk by the margins."""

    def __init__(self, spec: RobotSpec, kin: ArmKinematics, config: PlanConfig) -> None:
        self.lower = np.asarray(spec.position_lower, dtype=np.float64)
        self.upper = np.asarray(spec.position_upper, dtype=np.float64)
        self.joint_margin = config.joint_margin
        self.box_lower = np.asarray(spec.workspace_lower, dtype=np.float64)
        self.box_upper = np.asarray(spec.workspace_upper, dtype=np.float64)
        self.margin = config.workspace_margin
        self.kin = kin
        self.step = config.path_step

    def clearance(self, q: np.ndarray) -> float:
        """How far (m) the end effector at ``q`` is inside the box (negative: outside), or
        -inf when ``q`` leaves the joint limits."""
        if np.any(q < self.lower) or np.any(q > self.upper):
            return -np.inf
        ee = self.kin(q)
        return float(min(np.min(ee - self.box_lower), np.min(self.box_upper - ee)))

    def pose_ok(self, q: np.ndarray) -> bool:
        """``q`` inside the joint limits by ``joint_margin`` and its end effector inside the
        box by ``workspace_margin``."""
        j = self.joint_margin
        if np.any(q < self.lower + j) or np.any(q > self.upper - j):
            return False
        return self.clearance(q) >= self.margin

    def path_ok(self, a: np.ndarray, b: np.ndarray) -> bool:
        """The straight joint-space path from ``a`` to ``b``, sampled every ``path_step``,
        inside the joint limits and never nearer the box's faces than ``workspace_margin``
        (or than ``a`` is, when the arm starts nearer: a pose reached a little off its plan):
        the servos' tracking error must not carry the arm out of the box."""
        n = max(2, math.ceil(np.max(np.abs(b - a)) / self.step) + 1)
        need = min(self.margin, self.clearance(a)) - 1e-9
        if not np.isfinite(need):
            return False
        return all(self.clearance(a + s * (b - a)) >= need for s in np.linspace(0.0, 1.0, n))


def _project(camera_from_board: np.ndarray, K: np.ndarray, corners: np.ndarray) -> np.ndarray:
    p = camera_from_board[:3, :3] @ corners.T + camera_from_board[:3, 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (K @ p)[:2] / p[2]
    uv[:, p[2] <= 0.02] = np.nan
    return uv.T


def judge_view(
    base_from_camera: np.ndarray,
    base_from_board: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    corners: np.ndarray,
    square: float,
    config: PlanConfig,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, float] | None:
    """The pixels of the board corners in view and the board's tilt (deg) if the camera would
    see enough of the board well (see :class:`PlanConfig`), else None. ``mask``: pixels the
    robot itself hides (:meth:`calibration.twin_rig.TwinRig.self_mask`)."""
    camera_from_board = invert(base_from_camera) @ base_from_board
    uv = _project(camera_from_board, K, corners)
    if not np.all(np.isfinite(uv)):
        return None
    dist = float(np.linalg.norm(camera_from_board[:3, 3]))
    square_px = K[0, 0] * square / dist
    # a corner is identified through the marker beside it: it must be half a square inside
    e = config.edge_px + 0.5 * square_px
    w, h = size
    inside = (uv[:, 0] >= e) & (uv[:, 0] <= w - 1 - e) & (uv[:, 1] >= e) & (uv[:, 1] <= h - 1 - e)
    if mask is not None:  # hidden behind the robot's own parts (a wrist camera's jaws)
        inside &= ~near_mask(mask, uv, int(e))
    if np.count_nonzero(inside) < config.min_visible * len(uv):
        return None
    uv = uv[inside]
    normal = camera_from_board[:3, 2]  # into the board
    to_board = camera_from_board[:3, 3] / np.linalg.norm(camera_from_board[:3, 3])
    tilt = math.degrees(math.acos(min(1.0, abs(float(normal @ to_board)))))
    if tilt > config.max_tilt_deg:
        return None
    if square_px * math.cos(math.radians(tilt)) < config.min_square_px:
        return None
    return uv, tilt


def _cells(uv: np.ndarray, size: tuple[int, int], grid: list[int]) -> set[int]:
    cols, rows = grid
    cx = np.clip((uv[:, 0] / size[0] * cols).astype(int), 0, cols - 1)
    cy = np.clip((uv[:, 1] / size[1] * rows).astype(int), 0, rows - 1)
    return set((cy * cols + cx).tolist())


def plan_views(
    spec: RobotSpec,
    kin: ArmKinematics,
    geometry: ViewGeometry,
    K: np.ndarray,
    size: tuple[int, int],
    corners: np.ndarray,
    square: float,
    start: np.ndarray,
    config: PlanConfig | None = None,
    fixed: dict[int, float] | None = None,
    mask: np.ndarray | None = None,
) -> Plan:
    """Views for one camera (see the module docstring). ``start``: where the arm is now;
    ``fixed``: joint index -> value held in every view (the gripper). ``mask``: what the
    robot hides in the image at ``start`` (for a camera on the arm, its jaws hide the same
    pixels from every pose)."""
    config = config or PlanConfig()
    limits = Limits(spec, kin, config)
    rng = np.random.default_rng(config.seed)
    start = np.asarray(start, dtype=np.float64)
    fixed = dict(fixed or {})
    candidates: list[View] = []
    lo, hi = limits.lower + config.joint_margin, limits.upper - config.joint_margin
    samples = rng.uniform(lo, hi, size=(config.candidates, spec.dof))
    for i, value in fixed.items():
        samples[:, i] = value
    for q in samples:
        if not limits.pose_ok(q):
            continue
        cam = geometry.base_from_camera(q)
        judged = judge_view(
            cam, geometry.base_from_board(q), K, size, corners, square, config, mask
        )
        if judged is not None:
            candidates.append(View(q, judged[0], judged[1], cam))
    if len(candidates) < 3:
        raise CalibrationError(
            f"robot '{spec.name}': only {len(candidates)} of {config.candidates} sampled poses "
            "show enough of the board inside the limits; move the board (calibrate.*_board.pos) "
            "where the camera can see it from the arm's workspace"
        )
    total = config.grid[0] * config.grid[1]
    rots = np.stack([v.base_from_camera[:3, :3] for v in candidates])
    masks = np.array(
        [sum(1 << c for c in _cells(v.pixels, size, config.grid)) for v in candidates],
        dtype=np.int64,
    )
    tilts = np.array([v.tilt_deg for v in candidates])
    spread = np.ones(len(candidates))  # least rotation (rad) from any chosen view
    alive = np.ones(len(candidates), dtype=bool)
    chosen: list[View] = []
    covered = 0
    last = start
    while len(chosen) < config.views and alive.any():
        gain = np.array([bin(int(m) & ~covered).count("1") for m in masks])
        score = spread * (1.0 + gain) * (0.5 + tilts / config.max_tilt_deg)
        score[~alive] = -1.0
        i = int(np.argmax(score))
        alive[i] = False
        view = candidates[i]
        if not limits.path_ok(last, view.q):
            continue
        chosen.append(view)
        covered |= int(masks[i])
        last = view.q
        # angle between each candidate's camera rotation and the chosen one's, vectorised
        cos = (np.einsum("nij,ij->n", rots, view.base_from_camera[:3, :3]) - 1.0) / 2.0
        spread = np.minimum(spread, np.arccos(np.clip(cos, -1.0, 1.0)))
    n_cells = bin(covered).count("1")
    if len(chosen) < min(config.views, 3):
        raise CalibrationError(
            f"robot '{spec.name}': only {len(chosen)} views are reachable one from the other "
            "inside the limits; move the board or widen calibrate.plan"
        )
    return Plan(start, chosen, n_cells, total)


def rotation_spread(base_from_ee: list[np.ndarray]) -> tuple[float, float]:
    """How well the rotations between poses pin a hand-eye solve: the largest relative
    rotation (deg), and the ratio of the second to the first singular value of the relative
    rotations' unit axes (those of more than 1 degree; 0: every rotation about one axis)."""
    axes = []
    largest = 0.0
    for i in range(len(base_from_ee)):
        for j in range(i + 1, len(base_from_ee)):
            rel = base_from_ee[i][:3, :3].T @ base_from_ee[j][:3, :3]
            angle = rotation_angle(rel)
            largest = max(largest, angle)
            if angle < math.radians(1.0):
                continue
            import cv2

            vec, _ = cv2.Rodrigues(rel)
            axis = vec.reshape(3) / np.linalg.norm(vec)
            axes.append(axis)
            axes.append(-axis)
    if len(axes) < 2:
        return math.degrees(largest), 0.0
    s = np.linalg.svd(np.asarray(axes), compute_uv=False)
    return math.degrees(largest), float(s[1] / s[0]) if s[0] > 0 else 0.0


def check_spread(base_from_ee: list[np.ndarray], min_ratio: float = 0.2) -> None:
    """Refuse a set of poses whose rotations cannot pin a hand-eye transform."""
    largest, ratio = rotation_spread(base_from_ee)
    if len(base_from_ee) < 3 or largest < 5.0 or ratio < min_ratio:
        raise CalibrationError(
            f"degenerate poses for hand-eye: {len(base_from_ee)} poses, largest relative rotation "
            f"{largest:.1f} deg, axis spread {ratio:.2f} (< {min_ratio}: the rotations are all "
            "about one axis); use at least 3 poses rotated about different axes "
            "(the planned poses, calibrate.plan.views >= 8)"
        )
