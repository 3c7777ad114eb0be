"""The four calibrations, end to end, on any rig that can move the arm and take frames.

Each procedure plans its poses (:mod:`calibration.poses`), asks ``confirm`` once before the
first motion (a callback, so a command can ask a person and a test can answer; never
``input()`` here: a library has no stdin), visits the poses, fits, and writes the camera's file
atomically (:mod:`calibration.camera_file`). ``progress`` gets one line per step (the
intrinsics' coverage map among them).

A rig (:class:`Rig`) offers what a robot offers: the spec and kinematics, the joints, a move
through the safety layer, a frame, whether a camera is on the arm, and the nominal view
geometry a planner aims with. :class:`calibration.twin_rig.TwinRig` is the twin's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from calibration import camera_file
from calibration.board import Board, Detection
from calibration.camera_file import CameraCalibration, HandEye
from calibration.config import CalibrateConfig
from calibration.errors import CalibrationError
from calibration.handeye import EYE_IN_HAND, EYE_TO_HAND, HandEyeResult, fit_other, solve
from calibration.intrinsics import Coverage, IntrinsicsResult, calibrate
from calibration.latency import LagEstimate, estimate_lag, excitation, image_signal
from calibration.poses import ArmKinematics, Limits, Plan, ViewGeometry, judge_view, plan_views
from robot.schema import JointState, RobotSpec
from robot.sim.config import BoardConfig

Confirm = Callable[[str], bool]
Progress = Callable[[str], None]


class Rig(Protocol):
    spec: RobotSpec
    kin: ArmKinematics

    def read(self) -> JointState: ...
    def move(self, q: np.ndarray) -> JointState: ...
    def capture(self, camera: str) -> tuple[np.ndarray, JointState]: ...
    def image_size(self, camera: str) -> tuple[int, int]: ...
    def on_arm(self, camera: str) -> bool: ...
    def geometry(self, camera: str, board: BoardConfig) -> ViewGeometry: ...
    def excite(self, center: np.ndarray, joint: int, offsets: np.ndarray, cameras: list[str]): ...


def board_for(rig: Rig, camera: str, config: CalibrateConfig) -> BoardConfig:
    """The table board for a camera on the arm, the hand board for one fixed in the world."""
    return config.table_board if rig.on_arm(camera) else config.hand_board


def _nominal_K(rig: Rig, camera: str, directory: str) -> np.ndarray:
    """The camera matrix the planner projects with: the file's if there is one, else a
    guess (a 60 degree vertical field of view): planning needs only pixels roughly right."""
    path = camera_file.camera_path(directory, camera)
    size = rig.image_size(camera)
    if path.is_file():
        try:
            return camera_file.read(path, camera, size).K
        except CalibrationError:
            pass
    intrinsics = getattr(rig, "nominal_intrinsics", None)
    if intrinsics is not None:
        return intrinsics(camera)
    w, h = size
    f = (h / 2) / math.tan(math.radians(30))
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def _plan(
    rig: Rig, camera: str, config: CalibrateConfig, views: int, seed: int, K: np.ndarray
) -> tuple[Plan, Board]:
    board_cfg = board_for(rig, camera, config)
    board = Board(board_cfg)
    start = rig.read().position
    fixed = {}
    if rig.spec.gripper_joint:
        g = rig.spec.joint_names.index(rig.spec.gripper_joint)
        fixed[g] = float(start[g])
    plan = plan_views(
        rig.spec,
        rig.kin,
        rig.geometry(camera, board_cfg),
        K,
        rig.image_size(camera),
        board.corners,
        board_cfg.square_length,
        start,
        replace(config.plan, views=views, seed=config.plan.seed + seed),
        fixed=fixed,
        mask=_mask(rig, camera) if rig.on_arm(camera) else None,
    )
    return plan, board


def _mask(rig: Rig, camera: str) -> np.ndarray | None:
    """What the robot hides in ``camera``'s frame now, if the rig can say."""
    self_mask = getattr(rig, "self_mask", None)
    return None if self_mask is None else self_mask(camera)


def _confirm(confirm: Confirm, rig: Rig, camera: str, what: str, plan: Plan) -> None:
    text = (
        f"{what} of camera '{camera}': robot '{rig.spec.name}' will move itself through "
        f"{len(plan.views)} poses, every one and every path between them inside its joint "
        "limits and workspace box, the gripper held where it is. Keep the workspace clear."
    )
    if not confirm(text):
        raise CalibrationError(f"{what} of camera '{camera}': not confirmed; nothing moved")


@dataclass
class Shot:
    detection: Detection
    state: JointState


def _visit(
    rig: Rig, camera: str, plan: Plan, board: Board, progress: Progress, min_corners: int
) -> list[Shot]:
    shots = []
    on_arm = rig.on_arm(camera)
    for k, view in enumerate(plan.views):
        try:
            rig.move(view.q)
        except CalibrationError as err:  # a pose the arm cannot hold still at: skipped
            progress(f"  pose {k + 1}/{len(plan.views)}: skipped ({err})")
            continue
        image, state = rig.capture(camera)
        mask = _mask(rig, camera) if on_arm else None
        found = board.detect(image, mask)
        n = 0 if found is None else len(found)
        progress(f"  pose {k + 1}/{len(plan.views)}: {n} corners")
        if found is not None and n >= min_corners:
            shots.append(Shot(found, state))
    return shots


def _existing(path: Path, camera: str, size: tuple[int, int]) -> CameraCalibration:
    return camera_file.read(path, camera, size)


def run_intrinsics(
    rig: Rig,
    camera: str,
    config: CalibrateConfig,
    confirm: Confirm,
    progress: Progress = lambda line: None,
) -> tuple[Path, IntrinsicsResult, Coverage]:
    """Intrinsics of ``camera``; writes ``<dir>/<camera>.yaml`` (an earlier file's latency
    is kept; its hand-eye is dropped: it was solved with the old intrinsics)."""
    size = rig.image_size(camera)
    K0 = _nominal_K(rig, camera, config.dir)
    plan, board = _plan(rig, camera, config, config.intrinsics_views, 0, K0)
    _confirm(confirm, rig, camera, "intrinsics", plan)
    shots = _visit(rig, camera, plan, board, progress, config.intrinsics.min_corners)
    mask = _mask(rig, camera) if rig.on_arm(camera) else None
    coverage = Coverage(size, config.intrinsics, mask)
    for shot in shots:
        coverage.add(shot.detection)
    progress(f"coverage of the image ({coverage.fraction:.0%} of the cells):\n{coverage.draw()}")
    result = calibrate([s.detection for s in shots], size, config.intrinsics, mask)
    path = camera_file.camera_path(config.dir, camera)
    latency: dict[str, float] = {}
    if path.is_file():
        try:
            latency = _existing(path, camera, size).latency
        except CalibrationError:
            latency = {}
    cal = CameraCalibration(
        camera=camera,
        width=size[0],
        height=size[1],
        K=result.K,
        D=result.D,
        reprojection_rms_px=result.rms_px,
        views=result.views,
        latency=latency,
    )
    return camera_file.write(path, cal), result, coverage


def _handeye_inputs(
    rig: Rig, shots: list[Shot], board: Board, cal: CameraCalibration
) -> tuple[list[np.ndarray], list[np.ndarray], list[Detection]]:
    base_from_ee, camera_from_board, detections = [], [], []
    for shot in shots:
        pose = board.pose(shot.detection, cal.K, cal.D)
        if pose is None:
            continue
        base_from_ee.append(rig.kin.pose(shot.state.position))
        camera_from_board.append(pose)
        detections.append(shot.detection)
    return base_from_ee, camera_from_board, detections


def run_handeye(
    rig: Rig,
    camera: str,
    config: CalibrateConfig,
    confirm: Confirm,
    progress: Progress = lambda line: None,
) -> tuple[Path, HandEyeResult]:
    """Hand-eye of ``camera`` (eye-in-hand on the arm, eye-to-hand in the world) with the
    intrinsics in its file; adds ``hand_eye`` to the file."""
    size = rig.image_size(camera)
    path = camera_file.camera_path(config.dir, camera)
    cal = _existing(path, camera, size)
    plan, board = _plan(rig, camera, config, config.handeye_views, 1, cal.K)
    _confirm(confirm, rig, camera, "hand-eye", plan)
    shots = _visit(rig, camera, plan, board, progress, config.intrinsics.min_corners)
    base_from_ee, camera_from_board, detections = _handeye_inputs(rig, shots, board, cal)
    mode = EYE_IN_HAND if rig.on_arm(camera) else EYE_TO_HAND
    result = solve(mode, base_from_ee, camera_from_board, detections, cal.K, cal.D)
    parent = rig.spec.ee_site if mode == EYE_IN_HAND else rig.kin.base_body
    hand_eye = HandEye(
        mode=mode,
        parent_frame=parent,
        child_frame=f"{camera}_optical",
        parent_from_camera=result.solution,
        residual_mm=result.residual_mm,
        residual_deg=result.residual_deg,
        reprojection_rms_px=result.reprojection_rms_px,
        views=result.views,
    )
    return camera_file.write(path, cal.with_hand_eye(hand_eye)), result


@dataclass(frozen=True)
class LatencyResult:
    command_to_joint_states: LagEstimate
    command_to_image: LagEstimate
    image_after_joint_states: LagEstimate
    frames: int

    def as_dict(self) -> dict[str, float]:
        return {
            "command_to_joint_states": self.command_to_joint_states.lag,
            "command_to_image": self.command_to_image.lag,
            "image_after_joint_states": self.image_after_joint_states.lag,
        }


def _excitation_center(
    rig: Rig, camera: str, config: CalibrateConfig, K: np.ndarray, joint: int
) -> tuple[np.ndarray, Board]:
    """A planned view from which the excitation keeps the board in view and the arm inside
    every limit over its whole swing."""
    plan, board = _plan(rig, camera, config, 8, 2, K)
    board_cfg = board_for(rig, camera, config)
    geometry = rig.geometry(camera, board_cfg)
    limits = Limits(rig.spec, rig.kin, config.plan)
    size = rig.image_size(camera)
    amp = config.latency.amplitude
    for view in plan.views:
        ok = True
        for offset in np.linspace(-amp, amp, 21):
            q = view.q.copy()
            q[joint] += offset
            seen = judge_view(
                geometry.base_from_camera(q),
                geometry.base_from_board(q),
                K,
                size,
                board.corners,
                board_cfg.square_length,
                config.plan,
            )
            if not limits.pose_ok(q) or seen is None:
                ok = False
                break
        if ok and limits.path_ok(rig.read().position, view.q):
            return view.q, board
    raise CalibrationError(
        f"latency of camera '{camera}': no planned view keeps the board in sight over a swing "
        f"of +-{amp} on joint '{rig.spec.joint_names[joint]}'; lower calibrate.latency.amplitude "
        "or name another calibrate.latency.joint"
    )


def run_latency(
    rig: Rig,
    camera: str,
    config: CalibrateConfig,
    confirm: Confirm,
    progress: Progress = lambda line: None,
) -> tuple[Path, LatencyResult]:
    """The latencies of ``camera`` and the joint states (see :mod:`calibration.latency`);
    adds ``latency`` to the camera's file."""
    size = rig.image_size(camera)
    path = camera_file.camera_path(config.dir, camera)
    cal = _existing(path, camera, size)
    lc = config.latency
    names = list(rig.spec.joint_names)
    joint_name = lc.joint or names[0]
    if joint_name not in names:
        raise CalibrationError(f"calibrate.latency.joint={joint_name!r} is not one of {names}")
    joint = names.index(joint_name)
    center, board = _excitation_center(rig, camera, config, cal.K, joint)
    text = (
        f"latency of camera '{camera}': robot '{rig.spec.name}' will move to one pose and swing "
        f"joint '{joint_name}' by up to {lc.amplitude} for {lc.duration:g} s, inside its limits."
    )
    if not confirm(text):
        raise CalibrationError(f"latency of camera '{camera}': not confirmed; nothing moved")
    rig.move(center)
    dt = rig.spec.control_period
    t = np.arange(0.0, lc.duration + 1.0, dt) - 0.5  # half a second still on either side
    offsets = lc.amplitude * excitation(t, lc.duration)
    progress(f"  swinging '{joint_name}' for {len(t) * dt:.1f} s")
    rec = rig.excite(center, joint, offsets, [camera])
    frames = rec.frames[camera]
    t_frames = np.array([f[0] for f in frames])
    mask, signal = image_signal([board.detect(image, refine=False) for _, image in frames])
    t_seen, seen = t_frames[mask], signal[mask]
    result = LatencyResult(
        command_to_joint_states=estimate_lag(
            rec.t_command, rec.command, rec.t_state, rec.position, lc.max_lag
        ),
        command_to_image=estimate_lag(rec.t_command, rec.command, t_seen, seen, lc.max_lag),
        image_after_joint_states=estimate_lag(rec.t_state, rec.position, t_seen, seen, lc.max_lag),
        frames=int(mask.sum()),
    )
    for name, est in (
        ("command -> joint_states", result.command_to_joint_states),
        ("command -> image", result.command_to_image),
        ("joint_states -> image", result.image_after_joint_states),
    ):
        if est.correlation < lc.min_correlation:
            raise CalibrationError(
                f"latency of camera '{camera}': {name} correlates only {est.correlation:.2f} "
                f"(< {lc.min_correlation}); the motion was not seen clearly: check the view"
            )
    return camera_file.write(path, cal.with_latency(result.as_dict())), result


@dataclass(frozen=True)
class CheckResult:
    camera: str
    views: int
    rms_px: float
    handeye_rms_px: float | None
    holds: bool
    reasons: list[str]


def run_check(
    rig: Rig,
    camera: str,
    config: CalibrateConfig,
    confirm: Confirm,
    progress: Progress = lambda line: None,
) -> CheckResult:
    """Re-measure the reprojection error with the file's intrinsics and the hand-eye fit with
    its transform held; say whether they still hold (nothing is written)."""
    size = rig.image_size(camera)
    path = camera_file.camera_path(config.dir, camera)
    cal = _existing(path, camera, size)
    plan, board = _plan(rig, camera, config, config.check.views, 3, cal.K)
    _confirm(confirm, rig, camera, "check", plan)
    shots = _visit(rig, camera, plan, board, progress, config.intrinsics.min_corners)
    base_from_ee, camera_from_board, detections = _handeye_inputs(rig, shots, board, cal)
    if len(detections) < 3:
        raise CalibrationError(
            f"check of camera '{camera}': the board was found in {len(detections)} of "
            f"{len(plan.views)} views (3 needed); is the board where calibrate.*_board says?"
        )
    import cv2

    errs = []
    for d, pose in zip(detections, camera_from_board, strict=True):
        r, _ = cv2.Rodrigues(pose[:3, :3])
        proj, _ = cv2.projectPoints(d.object_points, r, pose[:3, 3], cal.K, cal.D)
        errs.append(np.linalg.norm(proj.reshape(-1, 2) - d.image_points, axis=1))
    rms = float(np.sqrt(np.mean(np.concatenate(errs) ** 2)))
    reasons = []
    if rms > config.check.max_rms_px:
        reasons.append(
            f"reprojection RMS {rms:.2f} px > {config.check.max_rms_px} px with the file's "
            "intrinsics: recalibrate them (dojo calibrate intrinsics)"
        )
    he_rms = None
    if cal.hand_eye is not None:
        _, he_rms = fit_other(
            cal.hand_eye.mode,
            cal.hand_eye.parent_from_camera,
            base_from_ee,
            camera_from_board,
            detections,
            cal.K,
            cal.D,
        )
        if he_rms > config.check.max_handeye_rms_px:
            reasons.append(
                f"hand-eye reprojection RMS {he_rms:.2f} px > {config.check.max_handeye_rms_px}"
                " px with the file's transform: the camera moved; dojo calibrate handeye"
            )
    else:
        reasons.append("no hand_eye in the file (dojo calibrate handeye) - not checked")
    holds = rms <= config.check.max_rms_px and (
        he_rms is None or he_rms <= config.check.max_handeye_rms_px
    )
    return CheckResult(camera, len(detections), rms, he_rms, holds, reasons)
