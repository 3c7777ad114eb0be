"""The twin as a calibration rig: the arm moved through the safety layer, frames, the truth.

Why a rig object: the procedures (:mod:`calibration.procedures`) only move the arm, read its
joints and take frames, so the same code calibrates any robot that offers those three things.
This one drives the MuJoCo twin in process: every command passes
:class:`robot.safety.SafetyLimits` (joint limits, velocity, acceleration, the workspace box)
exactly as the driver's control loop does, one control period of physics per command, and
every end-effector position the arm passes through is kept (``visited``), so a run can show
that it never left the box. It also knows what a real rig cannot: the cameras' true
intrinsics and poses, for the comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from calibration.description import (
    PRIOR_FOCAL_ERROR,
    camera_image_size,
    prior_error,
    view_geometry,
)
from calibration.errors import CalibrationError
from calibration.geometry import invert, transform
from calibration.motion import glide
from calibration.poses import ArmKinematics, ViewGeometry, arm_kinematics
from robot.safety import SafetyLimits
from robot.schema import CameraIntrinsics, JointState, RobotSpec
from robot.sim.config import BoardConfig, TaskConfig, TwinConfig
from robot.sim.scene import BOARD

# The planner's prior is the description's camera pose, off from the truth by
# calibration.description.prior_error() (a CAD mount is never exact): the plan must not
# depend on knowing the answer.


@dataclass
class Excitation:
    """What the arm and the cameras recorded while one joint followed a commanded signal."""

    joint: int
    t_command: np.ndarray
    command: np.ndarray
    t_state: np.ndarray
    position: np.ndarray
    frames: dict[str, list[tuple[float, np.ndarray]]] = field(default_factory=dict)


class TwinRig:
    """A :class:`robot.sim.twin.Twin` with ``board`` in its scene, ready to calibrate.

    ``camera_delay``: seconds per camera by which the twin's frames lag (the injected truth
    for latency). ``speed``: fraction of each joint's velocity limit the moves use.
    """

    def __init__(
        self,
        spec: RobotSpec,
        board: BoardConfig,
        twin_config: TwinConfig | None = None,
        camera_delay: dict[str, float] | None = None,
        speed: float = 0.5,
    ) -> None:
        from robot.sim.twin import Twin

        config = replace(
            twin_config or TwinConfig(),
            show_board=True,
            board=board,
            camera_delay=dict(camera_delay or {}),
            render=True,
        )
        self.spec = spec
        self.board = board
        # the task's scene objects are parked behind the robot until a reset places them
        self.twin = Twin(spec, config, TaskConfig())
        self.kin: ArmKinematics = arm_kinematics(spec)
        self.safety = SafetyLimits(spec, self.kin)
        self.speed = speed
        self.visited: list[np.ndarray] = []
        self.safety_events: list[str] = []
        self.arm = self.twin.arm
        self.arm.connect()
        self.arm.enable()
        self.safety.reset(self.arm.read().position)
        self.twin_delay = dict(config.camera_delay)  # the injected truth, per camera
        self._max_delay = max([0.0, *config.camera_delay.values()])
        # joints whose position is not aimed at (the gripper: its jaws may rest on something)
        self._fixed_joints = (
            [spec.joint_names.index(spec.gripper_joint)] if spec.gripper_joint else []
        )
        self.tolerance = 0.002  # rad (or m) a settled pose may miss its target by
        self._segmenter: dict = {}

    # -- the robot -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.twin.time

    def read(self) -> JointState:
        return self.arm.read()

    def _tick(self, target: np.ndarray) -> JointState:
        result = self.safety.filter(target, self.now)
        for event in result.reasons:
            self.safety_events.append(str(event))
        self.arm.send(result.command)
        self.twin.step(self.spec.control_period)
        state = self.arm.read()
        self.visited.append(self.kin(state.position))
        return state

    def move(self, q: np.ndarray, settle: float = 0.3, timeout: float = 8.0) -> JointState:
        """Go to ``q`` on a straight joint-space path at ``speed`` of the velocity limits,
        then hold until the arm is still (and every delayed camera shows it still)."""
        q = np.asarray(q, dtype=np.float64)
        self._glide(self.safety.last_command, q)
        target = q.copy()
        for _ in range(4):  # servos that sag under gravity: aim off by what they missed
            state = self._settle(target, settle, timeout)
            miss = q - state.position
            miss[self._fixed_joints] = 0.0
            if np.max(np.abs(miss)) < self.tolerance:
                break
            aim = np.clip(target + miss, self.spec.position_lower, self.spec.position_upper)
            ee = self.kin(aim)
            lo, hi = self.spec.workspace_lower, self.spec.workspace_upper
            if np.any(ee < lo) or np.any(ee > hi):  # the safety layer would hold: stay short
                break
            self._glide(target, aim)
            target = aim
        return state

    def _glide(self, start: np.ndarray, q: np.ndarray) -> None:
        """:func:`calibration.motion.glide` from ``start`` to ``q``, one tick per target."""
        for target in glide(start, q, self.spec, self.speed):
            self._tick(target)

    def _settle(self, target: np.ndarray, settle: float, timeout: float) -> JointState:
        still_since = self.now
        deadline = self.now + timeout
        while self.now < deadline:
            state = self._tick(target)
            if np.max(np.abs(state.velocity)) > 5e-3:
                still_since = self.now
            if self.now - still_since >= settle + self._max_delay:
                return state
        raise CalibrationError(
            f"robot '{self.spec.name}': the arm did not come to rest at "
            f"{target.round(3).tolist()} within {timeout} s"
        )

    def excite(
        self, center: np.ndarray, joint: int, offsets: np.ndarray, cameras: list[str]
    ) -> Excitation:
        """Command the arm's aim at ``center`` plus ``offsets[k]`` on ``joint`` at tick k,
        every camera rendered at its own rate and stamped with the sim time it was taken at.
        The aim is the target :meth:`move` settled on when it last went to ``center`` (what
        it added for sag included), so the swing starts without a step."""
        rec = Excitation(joint, *(np.empty(0),) * 4)
        t_cmd, cmd, t_state, pos = [], [], [], []
        rates = {c.name: c.fps for c in self.spec.cameras if c.name in cameras}
        next_frame = {c: self.now for c in rates}
        frames: dict[str, list[tuple[float, np.ndarray]]] = {c: [] for c in rates}
        aim = self.safety.last_command
        if np.max(np.abs(aim - np.asarray(center))) > 0.1:
            aim = np.asarray(center, dtype=np.float64)
        for offset in offsets:
            target = aim.copy()
            target[joint] += offset
            t_cmd.append(self.now)
            sent = self.safety.filter(target, self.now)
            self.arm.send(sent.command)
            for event in sent.reasons:
                self.safety_events.append(str(event))
            cmd.append(float(sent.command[joint]))
            self.twin.step(self.spec.control_period)
            state = self.arm.read()
            self.visited.append(self.kin(state.position))
            t_state.append(state.stamp)
            pos.append(float(state.position[joint]))
            for cam, fps in rates.items():
                if self.now + 1e-9 >= next_frame[cam]:
                    frames[cam].append((self.now, self.twin.render(cam)))
                    next_frame[cam] += 1.0 / fps
        rec.t_command, rec.command = np.array(t_cmd), np.array(cmd)
        rec.t_state, rec.position = np.array(t_state), np.array(pos)
        rec.frames = frames
        return rec

    # -- cameras ---------------------------------------------------------------------------

    def capture(self, camera: str) -> tuple[np.ndarray, JointState]:
        """A frame of ``camera`` at its configured size and the joint state at that moment."""
        return self.twin.render(camera), self.arm.read()

    def image_size(self, camera: str) -> tuple[int, int]:
        return camera_image_size(self.spec, camera)

    def on_arm(self, camera: str) -> bool:
        """Whether ``camera`` moves with the arm (eye-in-hand) or is fixed in the world."""
        self.image_size(camera)
        m = self.twin.model
        cam_id = m.camera(camera).id
        return bool(m.body_weldid[m.cam_bodyid[cam_id]] != 0)

    def geometry(self, camera: str, board: BoardConfig) -> ViewGeometry:
        """The planner's nominal view geometry: the description's camera pose, perturbed by
        :func:`calibration.description.prior_error`, and the board where ``board`` says."""
        on_arm = self.on_arm(camera)
        mount = self.true_ee_from_camera(camera) if on_arm else self.true_base_from_camera(camera)
        return view_geometry(self.kin, camera, on_arm, mount @ prior_error(), board)

    def self_mask(self, camera: str) -> np.ndarray | None:
        """``(H, W)`` bool: the pixels of ``camera``'s frame that show the robot itself (a
        wrist camera's jaws), from MuJoCo's segmentation render at the current pose; None for
        a camera that sees no part of the robot."""
        import mujoco

        m = self.twin.model
        w, h = self.image_size(camera)
        renderer = self._segmenter.get(camera)
        if renderer is None:
            renderer = mujoco.Renderer(m, height=h, width=w)
            renderer.enable_segmentation_rendering()
            self._segmenter[camera] = renderer
        renderer.update_scene(self.twin.data, camera=camera)
        seg = renderer.render()
        ids, types = seg[:, :, 0], seg[:, :, 1]
        root = m.body(self.kin.base_body).id
        robot_geoms = np.flatnonzero(m.body_rootid[m.geom_bodyid] == root)
        robot_geoms = robot_geoms[robot_geoms != m.geom(BOARD).id]  # a board in the hand
        mask = (types == int(mujoco.mjtObj.mjOBJ_GEOM)) & np.isin(ids, robot_geoms)
        return mask if mask.any() else None

    def nominal_intrinsics(self, camera: str) -> np.ndarray:
        """The planner's camera matrix before intrinsics exist: the model's focal length 2%
        off (a datasheet's field of view)."""
        K = self.true_intrinsics(camera).K.copy()
        K[0, 0] *= 1 + PRIOR_FOCAL_ERROR
        K[1, 1] *= 1 + PRIOR_FOCAL_ERROR
        return K

    # -- the truth (the twin only) ---------------------------------------------------------

    def true_intrinsics(self, camera: str) -> CameraIntrinsics:
        return self.twin.camera_info(camera)

    def true_base_from_camera(self, camera: str) -> np.ndarray:
        pos, rot = self.twin.camera_pose(camera)
        return transform(rot, pos)

    def true_ee_from_camera(self, camera: str) -> np.ndarray:
        base_from_ee = self.kin.pose(self.arm.read().position)
        return invert(base_from_ee) @ self.true_base_from_camera(camera)

    def workspace_violation(self) -> float:
        """The furthest (m) any visited end-effector position was outside the box (0: none)."""
        if not self.visited:
            return 0.0
        p = np.asarray(self.visited)
        lo = np.asarray(self.spec.workspace_lower) - p
        hi = p - np.asarray(self.spec.workspace_upper)
        return float(max(0.0, lo.max(), hi.max()))

    def close(self) -> None:
        for renderer in self._segmenter.values():
            renderer.close()
        self._segmenter.clear()
        self.arm.disable()
        self.twin.close()

    def __enter__(self) -> TwinRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
