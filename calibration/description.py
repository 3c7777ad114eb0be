"""What the robot's description says about its cameras: the prior a rig plans views with.

Why a module of its own: a rig over a real robot (``dojo.ros.calibration_rig``) knows only what
the robot's one description says (``RobotSpec``: the MJCF, the preset's camera mounts, the
datasheet field of view), never the truth a twin could tell. The description is composed
here exactly as the twin composes its scene (``robot.sim.scene``), and used only as a
kinematic and render model: it is never stepped, nothing here moves anything.

Frames (``calibration.geometry`` naming; the optical frame as ROS's REP 103 camera frame)::

      camera optical frame                 base frame (robot.mjcf)
      z: out of the lens (the view)        x forward, y left, z up
      x: image right, y: image down

A camera whose body is welded to the world is fixed (eye-to-hand: its ``base_from_camera``
is constant); any other rides on the arm (eye-in-hand: ``ee_from_camera`` is constant).
"""

from __future__ import annotations

import math

import numpy as np

from calibration.board import mount_from_board
from calibration.errors import CalibrationError
from calibration.geometry import from_rotvec, invert, transform
from calibration.poses import ArmKinematics, ViewGeometry, arm_kinematics, eye_in_hand, eye_to_hand
from robot.schema import RobotSpec
from robot.sim.config import BoardConfig, BoardMount

# A description is never exact (a CAD mount, a datasheet). In the twin the description *is*
# the truth, so a rig over the twin plans from it off by this much: the plan must not depend
# on knowing the answer.
PRIOR_ERROR_M = 0.004
PRIOR_ERROR_RAD = math.radians(2.0)
PRIOR_FOCAL_ERROR = 0.02


def camera_image_size(spec: RobotSpec, camera: str) -> tuple[int, int]:
    """``(width, height)`` of the robot's ``camera``; a name it lacks is refused, naming its
    cameras (every rig's ``image_size``)."""
    cam = next((c for c in spec.cameras if c.name == camera), None)
    if cam is None:
        raise CalibrationError(
            f"robot '{spec.name}' has no camera '{camera}' "
            f"(cameras: {[c.name for c in spec.cameras]})"
        )
    return (cam.width, cam.height)


def prior_error() -> np.ndarray:
    """The fixed ``(4, 4)`` error the twin's rigs put on the described camera pose."""
    return transform(
        from_rotvec(np.array([1.0, -1.0, 1.0]) / math.sqrt(3) * PRIOR_ERROR_RAD),
        np.array([1.0, 1.0, -1.0]) / math.sqrt(3) * PRIOR_ERROR_M,
    )


def view_geometry(
    kin: ArmKinematics,
    camera: str,
    on_arm: bool,
    mount_from_camera: np.ndarray,
    board: BoardConfig,
) -> ViewGeometry:
    """The planner's view geometry: ``mount_from_camera`` is ``ee_from_camera`` for a camera
    on the arm (the board then on the table), ``base_from_camera`` for a fixed one (the board
    in the hand); the board where ``board`` says."""
    board_pose = mount_from_board(board)
    if on_arm:
        if board.mount != BoardMount.table:
            raise CalibrationError(
                f"camera '{camera}' is on the arm: it needs the board on the table "
                "(calibrate.table_board)"
            )
        return eye_in_hand(kin, mount_from_camera, board_pose)
    if board.mount != BoardMount.hand:
        raise CalibrationError(
            f"camera '{camera}' is fixed in the world: it needs the board in the hand "
            "(calibrate.hand_board)"
        )
    return eye_to_hand(kin, mount_from_camera, board_pose)


class Description:
    """The robot's cameras as its description places them (see the module docstring).

    ``perturbed``: plan from the description off by :func:`prior_error` and the focal length
    by :data:`PRIOR_FOCAL_ERROR` (the twin, whose description is its truth)."""

    def __init__(self, spec: RobotSpec, perturbed: bool = False) -> None:
        import mujoco

        from robot.sim.config import TaskConfig, TwinConfig
        from robot.sim.twin import Twin

        self.spec = spec
        self.perturbed = perturbed
        self._model_twin = Twin(spec, TwinConfig(render=True), TaskConfig())
        self.model = self._model_twin.model
        self._data = mujoco.MjData(self.model)
        self.kin: ArmKinematics = arm_kinematics(spec)
        self._segmenter: dict = {}
        self._error = prior_error() if perturbed else np.eye(4)

    def _camera_id(self, camera: str) -> int:
        names = [c.name for c in self.spec.cameras]
        if camera not in names:
            raise CalibrationError(
                f"robot '{self.spec.name}' has no camera '{camera}' (cameras: {names})"
            )
        return self.model.camera(camera).id

    def _pose_at(self, q: np.ndarray) -> None:
        import mujoco

        self._model_twin.arm.write_positions(self._data, np.asarray(q, dtype=np.float64))
        mujoco.mj_kinematics(self.model, self._data)
        mujoco.mj_camlight(self.model, self._data)

    def on_arm(self, camera: str) -> bool:
        m = self.model
        return bool(m.body_weldid[m.cam_bodyid[self._camera_id(camera)]] != 0)

    def base_from_camera(self, camera: str, q: np.ndarray) -> np.ndarray:
        """The optical frame in the base frame at joint positions ``q``, as described."""
        cam_id = self._camera_id(camera)
        self._pose_at(q)
        rot = self._data.cam_xmat[cam_id].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
        return transform(rot, self._data.cam_xpos[cam_id].copy())

    def ee_from_camera(self, camera: str, q: np.ndarray) -> np.ndarray:
        return invert(self.kin.pose(q)) @ self.base_from_camera(camera, q)

    def geometry(self, camera: str, board: BoardConfig, q: np.ndarray) -> ViewGeometry:
        """The planner's prior for ``camera`` (perturbed when :attr:`perturbed`)."""
        on_arm = self.on_arm(camera)
        mount = self.ee_from_camera(camera, q) if on_arm else self.base_from_camera(camera, q)
        return view_geometry(self.kin, camera, on_arm, mount @ self._error, board)

    def intrinsics(self, camera: str) -> np.ndarray:
        """The camera matrix the description's field of view gives (perturbed when
        :attr:`perturbed`): the planner's, before the camera has a calibration file."""
        self._camera_id(camera)
        K = self._model_twin.camera_info(camera).K.copy()
        if self.perturbed:
            K[0, 0] *= 1 + PRIOR_FOCAL_ERROR
            K[1, 1] *= 1 + PRIOR_FOCAL_ERROR
        return K

    def self_mask(self, camera: str, q: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
        """``(H, W)`` bool: the pixels of ``camera``'s frame the robot itself covers at ``q``
        (a wrist camera's jaws), from a segmentation render of the description; None when it
        covers none."""
        import mujoco

        from robot.sim.scene import BOARD

        m = self.model
        w, h = size
        renderer = self._segmenter.get(camera)
        if renderer is None:
            renderer = mujoco.Renderer(m, height=h, width=w)
            renderer.enable_segmentation_rendering()
            self._segmenter[camera] = renderer
        self._pose_at(q)
        mujoco.mj_forward(m, self._data)
        renderer.update_scene(self._data, camera=camera)
        seg = renderer.render()
        ids, types = seg[:, :, 0], seg[:, :, 1]
        root = m.body(self.kin.base_body).id
        robot_geoms = np.flatnonzero(m.body_rootid[m.geom_bodyid] == root)
        if BOARD in [m.geom(i).name for i in range(m.ngeom)]:
            robot_geoms = robot_geoms[robot_geoms != m.geom(BOARD).id]
        mask = (types == int(mujoco.mjtObj.mjOBJ_GEOM)) & np.isin(ids, robot_geoms)
        return mask if mask.any() else None

    def close(self) -> None:
        for renderer in self._segmenter.values():
            renderer.close()
        self._segmenter.clear()
        self._model_twin.close()
