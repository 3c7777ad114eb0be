"""Scenes for the MuJoCo twin, composed with :class:`mujoco.MjSpec`.

Why MjSpec and not a template XML: the robot comes from an installed package (or any MJCF
path) and is attached as it is shipped; the table, cubes, bin, lights and cameras are added in
code, sized from the robot's reach, so one builder serves every robot. What it needs beyond the
MJCF (table layout, wrist camera mount, gripper mapping, replacement servos) is the preset's
``twin`` section (:class:`robot.description.TwinDescription`), read from the
:class:`~robot.schema.RobotSpec`; a robot without one gets the reference layout scaled to its
reach and a wrist camera on its ``ee_site``.

World and base frame: the robot's root body is attached at the world origin, so the world frame
*is* the robot's base frame. The table top is the plane z = 0::

                         z (up)
                         ^
                         |   y (left, as seen from the robot)
                         |  /
                 robot   | /
                 base  ==+==========> x (forward, away from the robot)
     ===================================================  table top, z = 0
       |                                             |
       |                                             |    floor, z = -layout.table_height

Names (stable; tests, tasks, the ROS side and the scripted operator rely on them):

=====================  ==================================================================
``table``              static body; its top face is z = 0
``floor``              ground plane geom
``cube_<color>``       one free body per colour (``cube_red``, ``cube_green``, ...), with a
                       free joint and a box geom of the same name
``bin``                mocap body (moved on reset) with geoms ``bin_floor``, ``bin_wall_*``;
                       only in scenes built ``with_bin``
``board``              a ChArUco calibration board (a thin box, its printed face textured),
                       only in scenes built with a ``board``: a static body on the table, or
                       on the body of the ``ee_site`` (``BoardConfig.mount``)
``front``              fixed camera in the world, in front of the robot, looking back at it
``wrist``              camera on the gripper, looking along the jaws
``key_light``          directional light from above; ``fill_light`` from the front
=====================  ==================================================================

Rendering is set up for a CPU (software GL): shadows off (``shadowsize = 0``, no light casts
shadows), no multisampling (``offsamples = 0``) and an offscreen buffer as large as the largest
camera. With shadows and multisampling on, a CPU renders about seven times slower.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import mujoco
import numpy as np

from robot.description import (
    REFERENCE_LAYOUT,
    REFERENCE_MODEL,
    REFERENCE_SITE,
    GripperMap,
    ModelEdits,
    SceneLayout,
    TwinDescription,
    WristMount,
)
from robot.mjcf import KinematicsError, load_robot_spec, root_body
from robot.registry import did_you_mean
from robot.schema import CameraSpec, RobotSpec
from robot.sim.config import COLORS, BoardConfig, BoardMount
from robot.sim.meshes import MeshCacheError, use_render_meshes

log = logging.getLogger(__name__)

BIN_RGBA = (0.45, 0.33, 0.22, 1.0)
TABLE_RGBA = (0.78, 0.70, 0.58, 1.0)

FRONT_CAMERA = "front"
WRIST_CAMERA = "wrist"


class SceneError(ValueError):
    """The scene cannot be built as asked. The message names the offending value."""


def yaw_of(quaternion: Sequence[float]) -> float:
    """Rotation about the base z axis (rad) of a w, x, y, z quaternion."""
    w, x, y, z = (float(c) for c in quaternion)
    return math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def chain_length(model: mujoco.MjModel, site: str) -> float:
    """Sum of link offsets from the root body to ``site``: an upper bound on the arm's reach."""
    sid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
    if sid < 0:
        raise SceneError(f"robot model has no site '{site}'")
    total = float(np.linalg.norm(model.site_pos[sid]))
    body = int(model.site_bodyid[sid])
    root = root_body(model, body)
    while body != root:
        total += float(np.linalg.norm(model.body_pos[body]))
        body = int(model.body_parentid[body])
    return total


def twin_description(robot: RobotSpec) -> TwinDescription:
    """The robot's twin description with every part filled in (see
    :class:`robot.description.TwinDescription` for what an empty part becomes)."""
    if not robot.model:
        raise SceneError(f"robot '{robot.name}': no model (MJCF) named; the twin needs one")
    if not robot.ee_site:
        raise SceneError(f"robot model '{robot.model}': the twin needs an ee_site")
    given = robot.twin or TwinDescription()
    layout = given.layout
    if layout is None:
        if (robot.model, robot.ee_site) == (REFERENCE_MODEL, REFERENCE_SITE):
            factor = 1.0
        else:
            arm = load_robot_spec(robot.model, robot.model_edits).compile()
            ref = load_robot_spec(REFERENCE_MODEL).compile()
            factor = chain_length(arm, robot.ee_site) / chain_length(ref, REFERENCE_SITE)
        layout = REFERENCE_LAYOUT.scaled(factor)
    wrist = given.wrist or WristMount()
    if not wrist.site:
        wrist = replace(wrist, site=robot.ee_site)
    gripper = given.gripper
    if gripper is None and robot.gripper_joint:
        gripper = GripperMap(joints=[robot.gripper_joint])
    return replace(given, layout=layout, wrist=wrist, gripper=gripper)


@dataclass(eq=False)
class Scene:
    """A compiled scene and the names in it. ``robot``: the spec it was built from; ``twin``:
    its twin description with every part filled in (:func:`twin_description`)."""

    model: mujoco.MjModel
    spec: mujoco.MjSpec
    robot: RobotSpec
    twin: TwinDescription
    colors: tuple[str, ...]
    with_bin: bool
    cameras: tuple[CameraSpec, ...]

    @property
    def layout(self) -> SceneLayout:
        assert self.twin.layout is not None  # filled in by twin_description
        return self.twin.layout

    @property
    def cube_names(self) -> tuple[str, ...]:
        return tuple(cube_name(c) for c in self.colors)

    @property
    def ee_site(self) -> str:
        return self.robot.ee_site

    def to_xml(self) -> str:
        """The composed scene as MJCF text (for inspection; meshes are referenced by path)."""
        return self.spec.to_xml()


def cube_name(color: str) -> str:
    return f"cube_{color}"


def _quat_from_matrix(rot: np.ndarray) -> np.ndarray:
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.asarray(rot, dtype=np.float64).reshape(9))
    return quat


def look_at(
    pos: Sequence[float], target: Sequence[float], up: Sequence[float] = (0.0, 0.0, 1.0)
) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at ``pos`` looking at ``target``, ``up`` up.

    A MuJoCo camera looks along its -z axis with +y up in the image::

              y_cam (image up)
              ^
              |
              +----> x_cam (image right)
             /
            v  z_cam (points back, out of the lens; the view is along -z_cam)
    """
    p = np.asarray(pos, dtype=np.float64)
    return _quat_from_matrix(_look_at_matrix(p, np.asarray(target, dtype=np.float64), up))


def _look_at_matrix(pos: np.ndarray, target: np.ndarray, up: Sequence[float]) -> np.ndarray:
    back = pos - target
    back = back / np.linalg.norm(back)
    right = np.cross(np.asarray(up, dtype=np.float64), back)
    if np.linalg.norm(right) < 1e-9:
        raise SceneError(f"camera at {pos.tolist()} looks along its up vector {list(up)}")
    right /= np.linalg.norm(right)
    return np.column_stack([right, np.cross(back, right), back])


def _quat_to_matrix(quat: Sequence[float]) -> np.ndarray:
    mat = np.zeros(9)
    q = np.asarray(quat, dtype=np.float64)
    mujoco.mju_quat2Mat(mat, q / np.linalg.norm(q))
    return mat.reshape(3, 3)


def _prepare_robot(
    model: str,
    edits: ModelEdits | None,
    twin: TwinDescription,
    render_mesh_tolerance: float = 0.0,
    mesh_cache: Path | None = None,
) -> mujoco.MjSpec:
    """The robot-only spec with the twin description's changes (servos, gravity compensation,
    pads) and, when ``render_mesh_tolerance`` > 0, its render-only geoms on decimated meshes
    (last, so the pads the description enables count as collision geoms)."""
    robot = load_robot_spec(model, edits)
    if twin.position_servos:
        by_joint = {a.target: a for a in robot.actuators}
        for joint, servo in twin.position_servos.items():
            kp, kv, force = servo.kp, servo.kv, servo.force
            old = by_joint.get(joint)
            if old is None:
                raise SceneError(f"robot model '{model}' has no actuator on '{joint}'")
            name = old.name
            robot.delete(old)
            jnt = robot.joint(joint)
            act = robot.add_actuator(name=name, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            act.set_to_position(kp=kp, kv=kv)
            act.ctrlrange = list(jnt.range)
            act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
            act.forcerange = [-force, force]
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    if twin.gravity_compensation:
        for body in robot.bodies:
            body.gravcomp = 1.0
    for geom_name in twin.enable_contacts:
        geom = robot.geom(geom_name)
        if geom is None:
            raise SceneError(f"robot model '{model}' has no geom '{geom_name}'")
        geom.contype = 1
        geom.conaffinity = 1
    if render_mesh_tolerance:
        try:
            report = use_render_meshes(robot, render_mesh_tolerance, mesh_cache)
        except (MeshCacheError, ValueError) as exc:
            raise SceneError(f"robot model '{model}': render meshes: {exc}") from exc
        log.debug(
            "robot model '%s': %d render-only geoms on meshes within %g m (%d decimated now)",
            model,
            report.geoms,
            render_mesh_tolerance,
            report.decimated_now,
        )
    return robot


def build_scene(
    robot: RobotSpec,
    *,
    cameras: Sequence[CameraSpec] = (),
    colors: Sequence[str] = ("red", "green", "blue"),
    with_bin: bool = True,
    physics_dt: float = 0.002,
    render_mesh_tolerance: float = 0.0,
    mesh_cache: Path | None = None,
    board: BoardConfig | None = None,
) -> Scene:
    """Compose table, floor, lights, cubes (one per colour), optionally a bin, the robot and
    its ``front``/``wrist`` cameras; compile it.

    ``robot``: the robot's spec; its ``model`` (the MJCF), ``ee_site`` and ``twin`` description
    are what is read here. The first body of the MJCF's worldbody is the robot; it is attached
    at the world origin, and anything else in that worldbody (a floor, lights) is left out.
    ``cameras``: the robot's cameras; ``front`` and ``wrist`` are built here, any other name
    must be a camera of the robot's MJCF. ``render_mesh_tolerance`` (m): above 0, every render-only
    mesh geom of the robot draws a copy of its mesh decimated within that distance of the
    shipped surface, cached in ``mesh_cache`` (default :func:`robot.sim.meshes.cache_dir`);
    collision geoms, masses and so physics stay exactly as shipped (:mod:`robot.sim.meshes`).
    0: the shipped meshes. ``board``: add a ChArUco board (:func:`add_board`); None: none.
    """
    if not physics_dt > 0:
        raise SceneError(f"physics_dt={physics_dt} must be > 0")
    if not (math.isfinite(render_mesh_tolerance) and render_mesh_tolerance >= 0):
        raise SceneError(
            f"render_mesh_tolerance={render_mesh_tolerance!r} must be >= 0 m "
            "(0: the shipped meshes)"
        )
    unknown = [c for c in colors if c not in COLORS]
    if unknown:
        raise SceneError(f"unknown cube colour(s) {unknown}; known: {sorted(COLORS)}")
    if len(set(colors)) != len(colors) or not colors:
        raise SceneError(f"colors must be distinct and non-empty, got {list(colors)}")
    try:
        twin = twin_description(robot)
        arm = _prepare_robot(
            robot.model, robot.model_edits, twin, render_mesh_tolerance, mesh_cache
        )
    except KinematicsError as exc:
        raise SceneError(str(exc)) from exc
    if arm.site(robot.ee_site) is None:
        sites = [s.name for s in arm.sites]
        raise SceneError(
            f"robot model '{robot.model}' has no site '{robot.ee_site}' (the ee_site)"
            f"{did_you_mean(robot.ee_site, sites)}"
        )
    layout = twin.layout
    assert layout is not None
    spec = mujoco.MjSpec()
    spec.modelname = f"vla_dojo_{robot.name}"
    spec.compiler.degree = False
    spec.option.timestep = physics_dt
    spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    spec.option.impratio = 10.0
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST

    width = max([c.width for c in cameras] + [640])
    height = max([c.height for c in cameras] + [480])
    spec.visual.global_.offwidth = width
    spec.visual.global_.offheight = height
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]

    _add_world(spec, layout)
    frame = spec.worldbody.add_frame(pos=[0.0, 0.0, 0.0])
    root = frame.attach_body(arm.worldbody.first_body(), "", "")
    # keep the table from pushing against the links that sit on it
    for body in [root, *root.bodies]:
        spec.add_exclude(bodyname1="table", bodyname2=body.name)
    _add_cubes(spec, layout, colors)
    if with_bin:
        _add_bin(spec, layout)
    _add_cameras(spec, robot.model, twin, cameras)
    if board is not None:
        add_board(spec, board, robot.ee_site)

    try:
        compiled = spec.compile()
    except Exception as exc:
        raise SceneError(f"scene for robot model '{robot.model}' does not compile: {exc}") from exc
    return Scene(
        model=compiled,
        spec=spec,
        robot=robot,
        twin=twin,
        colors=tuple(colors),
        with_bin=with_bin,
        cameras=tuple(cameras),
    )


def _add_world(spec: mujoco.MjSpec, layout: SceneLayout) -> None:
    spec.add_texture(
        name="floor_tex",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        width=256,
        height=256,
        rgb1=[0.32, 0.34, 0.36],
        rgb2=[0.26, 0.28, 0.30],
    )
    floor_mat = spec.add_material(name="floor_mat", texrepeat=[6.0, 6.0], reflectance=0.0)
    floor_mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "floor_tex"
    spec.add_material(name="table_mat", rgba=list(TABLE_RGBA), specular=0.1, reflectance=0.0)

    # a plane's third size is the spacing of the quads it is drawn with, fixed when the GL
    # context is made: at 0.05 m the floor alone was ~14k quads, a quarter of every frame's
    # cost on a CPU; lit by directional lights only, 0.5 m quads give the same pixels
    spec.worldbody.add_geom(
        name="floor",
        type=mujoco.mjtGeom.mjGEOM_PLANE,
        size=[3.0, 3.0, 0.5],
        pos=[0.0, 0.0, -layout.table_height],
        material="floor_mat",
    )
    table = spec.worldbody.add_body(name="table")
    (x0, x1), (y0, y1) = layout.table_x, layout.table_y
    top = 0.025
    table.add_geom(
        name="table",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[(x1 - x0) / 2, (y1 - y0) / 2, top],
        pos=[(x0 + x1) / 2, (y0 + y1) / 2, -top],
        material="table_mat",
        friction=[0.5, 0.005, 0.0001],
    )
    leg = 0.025
    leg_half = (layout.table_height - 2 * top) / 2
    for i, (lx, ly) in enumerate(
        [(x0 + leg, y0 + leg), (x0 + leg, y1 - leg), (x1 - leg, y0 + leg), (x1 - leg, y1 - leg)]
    ):
        table.add_geom(
            name=f"table_leg_{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[leg, leg, leg_half],
            pos=[lx, ly, -2 * top - leg_half],
            material="table_mat",
            contype=0,
            conaffinity=0,
        )
    reach = layout.reach_max
    spec.worldbody.add_light(
        name="key_light",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        pos=[0.3 * reach, 0.0, 3.0],
        dir=[-0.2, 0.1, -1.0],
        diffuse=[0.55, 0.55, 0.55],
        specular=[0.1, 0.1, 0.1],
        castshadow=False,
    )
    spec.worldbody.add_light(
        name="fill_light",
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        pos=[3.0 * reach, -reach, 2.0 * reach],
        dir=[-1.0, 0.3, -0.6],
        diffuse=[0.25, 0.25, 0.25],
        specular=[0.0, 0.0, 0.0],
        castshadow=False,
    )


def _add_cubes(spec: mujoco.MjSpec, layout: SceneLayout, colors: Sequence[str]) -> None:
    half = layout.cube_size / 2
    for i, color in enumerate(colors):
        name = cube_name(color)
        # parked in a row behind the robot until a task places them
        body = spec.worldbody.add_body(name=name, pos=[-0.5 - 0.1 * i, 0.0, half])
        body.add_freejoint(name=name)
        body.add_geom(
            name=name,
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[half, half, half],
            rgba=list(COLORS[color]),
            mass=layout.cube_mass,
            friction=[0.6, 0.01, 0.0002],
            condim=4,
            solref=[0.005, 1.0],
        )


def _add_bin(spec: mujoco.MjSpec, layout: SceneLayout) -> None:
    inner, wall, height = layout.bin_inner, layout.bin_wall, layout.bin_height
    body = spec.worldbody.add_body(name="bin", pos=[-0.5, 0.6, 0.0], mocap=True)
    spec.add_material(name="bin_mat", rgba=list(BIN_RGBA), specular=0.1)
    outer = inner / 2 + wall
    body.add_geom(
        name="bin_floor",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[outer, outer, wall / 2],
        pos=[0.0, 0.0, wall / 2],
        material="bin_mat",
    )
    walls = {
        "bin_wall_front": ([inner / 2 + wall / 2, 0.0], [wall / 2, outer]),
        "bin_wall_back": ([-(inner / 2 + wall / 2), 0.0], [wall / 2, outer]),
        "bin_wall_left": ([0.0, inner / 2 + wall / 2], [outer, wall / 2]),
        "bin_wall_right": ([0.0, -(inner / 2 + wall / 2)], [outer, wall / 2]),
    }
    for name, ((px, py), (sx, sy)) in walls.items():
        body.add_geom(
            name=name,
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[sx, sy, height / 2],
            pos=[px, py, height / 2],
            material="bin_mat",
        )


def _add_cameras(
    spec: mujoco.MjSpec, model: str, twin: TwinDescription, cameras: Sequence[CameraSpec]
) -> None:
    layout = twin.layout
    assert layout is not None
    existing = {c.name for c in spec.cameras}
    for cam in cameras:
        if cam.name == FRONT_CAMERA:
            spec.worldbody.add_camera(
                name=FRONT_CAMERA,
                pos=list(layout.front_camera_pos),
                quat=list(look_at(layout.front_camera_pos, layout.front_camera_target)),
                fovy=layout.front_camera_fovy,
            )
        elif cam.name == WRIST_CAMERA and WRIST_CAMERA not in existing:
            mount = twin.wrist
            assert mount is not None  # filled in by twin_description
            site = spec.site(mount.site)
            if site is None:
                raise SceneError(f"robot model '{model}' has no site '{mount.site}'")
            site_rot = _quat_to_matrix(site.quat)
            site_pos = np.asarray(site.pos, dtype=np.float64)
            cam_pos = np.asarray(mount.pos, dtype=np.float64)
            cam_rot = _look_at_matrix(cam_pos, np.asarray(mount.target, dtype=np.float64), mount.up)
            pos = site_pos + site_rot @ cam_pos
            rot = site_rot @ cam_rot
            site.parent.add_camera(
                name=WRIST_CAMERA, pos=list(pos), quat=list(_quat_from_matrix(rot)), fovy=mount.fovy
            )
        elif cam.name not in existing:
            raise SceneError(
                f"camera '{cam.name}' is neither '{FRONT_CAMERA}', '{WRIST_CAMERA}' nor a camera "
                f"of robot model '{model}' (its cameras: {sorted(existing)})"
            )


BOARD = "board"
BOARD_PIXELS_PER_SQUARE = 96
BOARD_THICKNESS = 0.003


def charuco_board(board: BoardConfig):
    """OpenCV's ``cv2.aruco.CharucoBoard`` of ``board`` (cv2 imported here, lazily)."""
    import cv2

    name = board.dictionary
    if not name.startswith("DICT_") or not hasattr(cv2.aruco, name):
        known = [n for n in dir(cv2.aruco) if n.startswith("DICT_")]
        raise SceneError(
            f"board.dictionary={name!r} is not an OpenCV ArUco dictionary"
            f"{did_you_mean(name, known)}"
        )
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, name))
    n_markers = (board.squares_x * board.squares_y) // 2
    if n_markers > dictionary.bytesList.shape[0]:
        raise SceneError(
            f"board: {board.squares_x}x{board.squares_y} squares need {n_markers} markers; "
            f"{name} has {dictionary.bytesList.shape[0]}"
        )
    return cv2.aruco.CharucoBoard(
        (int(board.squares_x), int(board.squares_y)),
        float(board.square_length),
        float(board.marker_length),
        dictionary,
    )


def board_image(board: BoardConfig, pixels_per_square: int = BOARD_PIXELS_PER_SQUARE):
    """The printed face, ``(H, W)`` uint8 grey: the squares and markers with the white
    margin; top-left in the image is the board frame's origin corner (OpenCV's layout)."""
    import cv2

    cv_board = charuco_board(board)
    margin = round(board.margin / board.square_length * pixels_per_square)
    size = (
        board.squares_x * pixels_per_square + 2 * margin,
        board.squares_y * pixels_per_square + 2 * margin,
    )
    image = cv_board.generateImage(size, marginSize=margin, borderBits=1)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def euler_matrix(euler: Sequence[float]) -> np.ndarray:
    """Extrinsic x-y-z rotation (rad): R = Rz @ Ry @ Rx (what ``BoardConfig.euler`` means)."""
    ax, ay, az = (float(v) for v in euler)
    cx, sx, cy, sy, cz, sz = (
        math.cos(ax),
        math.sin(ax),
        math.cos(ay),
        math.sin(ay),
        math.cos(az),
        math.sin(az),
    )
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def add_board(spec: mujoco.MjSpec, board: BoardConfig, ee_site: str) -> None:
    """A body ``board`` with a thin box geom whose +z face shows the ChArUco pattern.

    The box's +z face carries the texture with image right along the body's +x and image down
    along its -y (so OpenCV's board frame is the body frame turned half a turn about x, its
    origin at the squares' top-left corner). No contacts, a few grams: it changes no physics
    of the arm or the task objects; in the hand it is welded to the ``ee_site``'s body.
    """
    image = board_image(board)
    rgb = np.repeat(image[:, :, None], 3, axis=2)
    h, w = image.shape
    tex = spec.add_texture(
        name="board_tex",
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        width=w,
        height=h,
        nchannel=3,
    )
    # MuJoCo samples a 2D texture bottom row first (OpenGL's convention)
    tex.data = np.ascontiguousarray(np.flipud(rgb)).tobytes()
    mat = spec.add_material(name="board_mat", specular=0.0, shininess=0.0, reflectance=0.0)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "board_tex"
    rot = euler_matrix(board.euler)
    pos = np.asarray(board.pos, dtype=np.float64)
    if board.mount == BoardMount.hand:
        site = spec.site(ee_site)
        if site is None:
            raise SceneError(f"board.mount=hand: the robot has no site '{ee_site}'")
        site_rot = _quat_to_matrix(site.quat)
        pos = np.asarray(site.pos, dtype=np.float64) + site_rot @ pos
        rot = site_rot @ rot
        parent = site.parent
    else:
        parent = spec.worldbody
    body = parent.add_body(name=BOARD, pos=list(pos), quat=list(_quat_from_matrix(rot)))
    bw, bh = board.size
    x, y, t = bw / 2, bh / 2, BOARD_THICKNESS
    # a slab whose top face (z = 0) carries the texture corner to corner: the four top
    # vertices' texture coordinates pin the image exactly (a primitive box would map it per
    # face in MuJoCo's own way)
    verts = [(-x, -y, 0), (x, -y, 0), (x, y, 0), (-x, y, 0)]
    verts += [(-x, -y, -t), (x, -y, -t), (x, y, -t), (-x, y, -t)]
    faces = [(0, 1, 2), (0, 2, 3), (4, 6, 5), (4, 7, 6)]
    faces += [
        (0, 4, 5),
        (0, 5, 1),
        (1, 5, 6),
        (1, 6, 2),
        (2, 6, 7),
        (2, 7, 3),
        (3, 7, 4),
        (3, 4, 0),
    ]
    uv = [(0, 0), (1, 0), (1, 1), (0, 1)] * 2
    mesh = spec.add_mesh(name="board_mesh")
    mesh.uservert = [c for v in verts for c in v]
    mesh.userface = [i for f in faces for i in f]
    mesh.usertexcoord = [c for v in uv for c in v]
    mesh.userfacetexcoord = [i for f in faces for i in f]
    body.add_geom(
        name=BOARD,
        type=mujoco.mjtGeom.mjGEOM_MESH,
        meshname="board_mesh",
        material="board_mat",
        contype=0,
        conaffinity=0,
        mass=0.005,
    )
