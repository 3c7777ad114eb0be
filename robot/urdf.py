"""A URDF of the robot, generated from its MJCF, so rviz, robot_state_publisher and MoveIt see
the arm the twin, the IK and the safety layer see.

Why generated and never checked in: the MJCF (``RobotSpec.model`` with its ``model_edits``) is
the robot's one description (``robot.mjcf``). A URDF written once by hand or by a converter
drifts the first time the MJCF or a preset's edits change; one generated from the compiled
model on every start cannot. ``dojo hw urdf out=FILE`` writes it for tools that want a file;
the driver publishes it on ``robot_description`` (``dojo.nodes.robot_driver``).

How the MJCF maps onto URDF::

    MuJoCo body  B (frame at body_pos/body_quat in its parent)   ->  URDF link "B", same frame
    joints j1..jk of B (hinge/slide, anchors a_i, axes in B)     ->  a chain parent -> j1 -> ...
                                                                     -> jk -> B; a link
                                                                     "B__ji" between two joints
                                                                     of one body, and a fixed
                                                                     joint "B__anchor" back to
                                                                     B's frame when a_k != 0
    joint ref (qpos0)                                            ->  folded into the origin, so
                                                                     a joint_states value is the
                                                                     MuJoCo qpos, unchanged
    inertial (ipos/iquat, mass, principal inertia)               ->  <inertial> in B's frame
    non-colliding geoms (contype = conaffinity = 0)              ->  <visual> (a body with none
                                                                     shows its colliding geoms)
    colliding geoms                                              ->  <collision>
    mesh geoms                                                   ->  the mesh file by absolute
                                                                     path (file://), placed as
                                                                     the file's vertices, not
                                                                     MuJoCo's re-centred copy
    listed sites (the end-effector site)                         ->  fixed links, e.g. the TCP
    a joint the driver reports in its own unit (the SO-101's     ->  joint "J" in that unit on
    gripper J in LeRobot's percent, 0 closed .. 100 open)            a frameless link, and the
                                                                     MJCF's joint as "J__mjcf"
                                                                     with <mimic joint="J">:
                                                                     the preset's range onto
                                                                     the MJCF's, linearly
    a normalised gripper (0 open .. 1 closed) driving finger     ->  joint "gripper" over 0..1
    joints (the Panda's, the FR3's: ``twin.gripper``)                 on a frameless link of
                                                                     base_link, each finger
                                                                     joint (and the linkage's,
                                                                     ``twin.gripper.linkage``)
                                                                     with <mimic> of it

Every body keeps its MuJoCo frame, so a link's pose from ``base_link`` at joint positions q is
MuJoCo's body pose relative to the robot's root body at qpos = q (the test checks it to 1e-6).
``base_link`` (REP 105's name for the robot's base frame, massless so KDL takes it as the
root) is the frame of the root body of the kinematic tree, which is ``robot.mjcf``'s base
frame: x forward, y left, z up::

            z
            ^  y
            | /
    base_link --> x      (fixed, identity) -> <root body> -> joints ...

Limits: ``lower``/``upper`` are the MJCF joint ranges (the preset's safety limits sit inside
them and are enforced by the driver, not here); ``effort`` is the MJCF's actuator force limit
on the joint, 0 where the MJCF states none; ``velocity`` is what the caller passes (the
preset's velocity limits), 0 where unknown. A hinge without a range is ``continuous``.

What URDF cannot say, and is left out: equality constraints (the Robotiq 2F-85's four-bar
linkage is a tree of independent joints here), capsules (drawn as cylinders of the same
length), ellipsoids, planes and height fields.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import mujoco
import numpy as np

from robot.description import ModelEdits
from robot.mjcf import KinematicsError, load_robot_spec, robot_mjcf_path
from robot.schema import RobotSpec

ROOT_LINK = "base_link"
"""The URDF's root: the robot's base frame (REP 105)."""

MJCF_SUFFIX = "__mjcf"
"""The MJCF joint of a joint reported in another unit (``robot_urdf``'s ``commanded``)."""


class UrdfError(KinematicsError):
    """The robot's model cannot be written as a URDF. The message names the model and why."""


def robot_urdf(spec: RobotSpec) -> str:
    """The URDF of a robot preset: its MJCF (``spec.model`` with ``spec.model_edits``), its
    end-effector site as a link, the preset's velocity limits on its joints."""
    units = spec.joint_units or ("rad",) * spec.dof
    velocity = {
        name: float(v)
        for name, v, unit in zip(spec.joint_names, spec.velocity_limit, units, strict=True)
        if unit in ("rad", "m")  # not a normalised or percent gripper
    }
    # a joint the driver reports in another unit than the MJCF's (the SO-101's gripper in
    # LeRobot's percent): its preset range maps linearly onto the MJCF joint's range
    commanded = {
        name: (lo, hi, float(v))
        for name, lo, hi, v, unit in zip(
            spec.joint_names,
            spec.position_lower,
            spec.position_upper,
            spec.velocity_limit,
            units,
            strict=True,
        )
        if unit not in ("rad", "m")
    }
    # a normalised gripper drives finger joints of other names (and a linkage) linearly
    mimics: dict[str, tuple[str, float, float]] = {}
    grip = spec.twin.gripper if spec.twin is not None else None
    if grip is not None and grip.normalized and spec.gripper_joint in commanded:
        span = grip.joint_closed - grip.joint_open
        for joint in grip.joints:
            mimics[joint] = (spec.gripper_joint, span, grip.joint_open)
        for joint, k in grip.linkage.items():
            mimics[joint] = (spec.gripper_joint, k * span, k * grip.joint_open)
    sites = [spec.ee_site] if spec.ee_site else []
    added = spec.model_edits.sites if spec.model_edits else []
    sites += [s.name for s in added if s.name not in sites]
    return urdf_from_mjcf(
        spec.model,
        spec.model_edits,
        name=spec.name,
        sites=sites,
        velocity=velocity,
        commanded=commanded,
        mimics=mimics,
    )


def urdf_from_mjcf(
    model: str | os.PathLike[str],
    edits: ModelEdits | None = None,
    *,
    name: str = "",
    sites: Sequence[str] = (),
    velocity: Mapping[str, float] | None = None,
    commanded: Mapping[str, tuple[float, float, float]] | None = None,
    mimics: Mapping[str, tuple[str, float, float]] | None = None,
) -> str:
    """The URDF (an XML string) of a robot MJCF: ``model`` as ``robot.mjcf`` takes it,
    ``edits`` applied. ``sites``: MJCF sites to add as fixed links; ``velocity``: joint
    velocity limits by joint name (rad/s or m/s). ``commanded``: joints that ``joint_states``
    reports in another unit, ``{name: (lower, upper, velocity)}`` in that unit; each becomes a
    joint of that name in that range that the MJCF's joint (renamed ``<name>__mjcf``) follows
    through a ``<mimic>``, lower onto the MJCF's lower limit and upper onto its upper.
    ``mimics``: MJCF joints that follow a commanded joint of another name, ``{mjcf_joint:
    (commanded, multiplier, offset)}`` (position = multiplier * commanded + offset); such a
    commanded joint, with no MJCF joint of its name, hangs frameless from ``base_link``."""
    text = os.fspath(model)
    if text.startswith("dh:"):
        raise UrdfError(
            f"robot model '{text}' is a DH table, not an MJCF: no meshes or inertials to "
            "write a URDF from (use the vendor's URDF)"
        )
    spec = load_robot_spec(model, edits)
    try:
        m = spec.compile()
    except Exception as exc:
        raise UrdfError(f"robot model '{text}' does not compile: {exc}") from exc
    files = _mesh_files(spec, robot_mjcf_path(model))
    mimics = dict(mimics or {})
    for joint, (leader, _, _) in mimics.items():
        if mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, joint) < 0:
            raise UrdfError(f"robot model '{text}' has no joint '{joint}' to follow '{leader}'")
        if leader not in (commanded or {}):
            raise UrdfError(f"joint '{joint}' follows '{leader}', which is not a commanded joint")
    writer = _Writer(m, files, velocity or {}, commanded or {}, mimics)
    return writer.write(name or Path(text).stem, sites)


def _mesh_files(spec: mujoco.MjSpec, mjcf: Path) -> dict[str, Path]:
    """Each mesh's file, by mesh name, resolved as MuJoCo resolves it: against ``meshdir``,
    itself relative to the MJCF's folder (an absolute ``meshdir`` or file stands alone)."""
    base = Path(spec.modelfiledir or mjcf.parent) / (spec.meshdir or "")
    out = {}
    for mesh in spec.meshes:
        if mesh.file:
            out[mesh.name] = (base / mesh.file).resolve()
    return out


# -- frames: 4x4 homogeneous transforms ---------------------------------------------------------


def _pose(pos, quat=(1.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    t = np.eye(4)
    r = np.zeros(9)
    mujoco.mju_quat2Mat(r, np.asarray(quat, dtype=np.float64))
    t[:3, :3] = r.reshape(3, 3)
    t[:3, 3] = pos
    return t


def _axis_angle(axis, angle: float) -> np.ndarray:
    q = np.zeros(4)
    mujoco.mju_axisAngle2Quat(q, np.asarray(axis, dtype=np.float64), float(angle))
    return _pose((0.0, 0.0, 0.0), q)


def _rpy(rot: np.ndarray) -> tuple[float, float, float]:
    """URDF's fixed-axis roll, pitch, yaw (R = Rz(yaw) Ry(pitch) Rx(roll))."""
    pitch = float(np.arctan2(-rot[2, 0], np.hypot(rot[0, 0], rot[1, 0])))
    if np.hypot(rot[0, 0], rot[1, 0]) < 1e-12:  # gimbal lock: put it all in yaw
        return 0.0, pitch, float(np.arctan2(-rot[0, 1], rot[1, 1]))
    return float(np.arctan2(rot[2, 1], rot[2, 2])), pitch, float(np.arctan2(rot[1, 0], rot[0, 0]))


def _num(x: float) -> str:
    """A number as URDF takes it; round-off below 1e-12 (a rotation's -5e-17) as 0."""
    return repr(float(x)) if abs(x) > 1e-12 else "0"


def _mimic(joint: ET.Element, leader: str, multiplier: float, offset: float) -> None:
    """``joint`` follows ``leader``: position = multiplier * leader + offset."""
    ET.SubElement(joint, "mimic", joint=leader, multiplier=_num(multiplier), offset=_num(offset))


def _origin(parent: ET.Element, t: np.ndarray) -> None:
    if np.allclose(t, np.eye(4), atol=0.0, rtol=0.0):
        return
    ET.SubElement(
        parent,
        "origin",
        xyz=" ".join(_num(v) for v in t[:3, 3]),
        rpy=" ".join(_num(v) for v in _rpy(t[:3, :3])),
    )


class _Writer:
    def __init__(
        self,
        m: mujoco.MjModel,
        files: dict[str, Path],
        velocity: Mapping[str, float],
        commanded: Mapping[str, tuple[float, float, float]],
        mimics: Mapping[str, tuple[str, float, float]],
    ):
        self.m = m
        self.files = files
        self.velocity = velocity
        self.commanded = commanded
        self.mimics = mimics
        self.written: set[str] = set()  # commanded joints written so far
        self.materials: dict[str, tuple[float, ...]] = {}

    def name(self, obj: mujoco.mjtObj, i: int, prefix: str) -> str:
        return mujoco.mj_id2name(self.m, obj, i) or f"{prefix}{i}"

    def write(self, robot_name: str, sites: Sequence[str]) -> str:
        m = self.m
        roots = [b for b in range(1, m.nbody) if m.body_parentid[b] == 0]
        if not roots:
            raise UrdfError("the model has no body below the world")
        self.robot = ET.Element("robot", name=robot_name)
        ET.SubElement(self.robot, "link", name=ROOT_LINK)
        names = {self.name(mujoco.mjtObj.mjOBJ_BODY, b, "body") for b in range(1, m.nbody)}
        if ROOT_LINK in names:
            raise UrdfError(f"the model has a body named '{ROOT_LINK}', the URDF's root link")
        # one tree: base_link is its root body's frame; several: the MJCF world's frame
        for b in range(1, m.nbody):
            parent = int(m.body_parentid[b])
            if parent == 0:
                parent_link = ROOT_LINK
                placed = np.eye(4) if len(roots) == 1 else _pose(m.body_pos[b], m.body_quat[b])
            else:
                parent_link = self.name(mujoco.mjtObj.mjOBJ_BODY, parent, "body")
                placed = _pose(m.body_pos[b], m.body_quat[b])
            self.body(b, parent_link, placed)
        for name in self.commanded:  # reported joints the MJCF has under other names only
            if name not in self.written:
                self.commanded_joint(name, ROOT_LINK)
        for site in sites:
            self.site(site)
        ET.indent(self.robot)
        return '<?xml version="1.0"?>\n' + ET.tostring(self.robot, encoding="unicode") + "\n"

    # -- links and joints -------------------------------------------------------------------------

    def body(self, b: int, parent_link: str, placed: np.ndarray) -> None:
        """Link ``b`` and the joints that carry it from ``parent_link``; ``placed``: ``b``'s
        frame in the parent's at qpos0."""
        m = self.m
        link = self.name(mujoco.mjtObj.mjOBJ_BODY, b, "body")
        joints = list(range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b]))
        if not joints:
            self.joint(f"{parent_link}_to_{link}", "fixed", parent_link, link, placed)
        previous_anchor = np.zeros(3)
        frame_link = parent_link
        for k, j in enumerate(joints):
            jname = self.name(mujoco.mjtObj.mjOBJ_JOINT, j, "joint")
            kind = m.jnt_type[j]
            if kind not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                what = {mujoco.mjtJoint.mjJNT_FREE: "free", mujoco.mjtJoint.mjJNT_BALL: "ball"}
                raise UrdfError(
                    f"joint '{jname}' of body '{link}' is a {what.get(kind, kind)} joint; a "
                    "URDF has hinge (revolute) and slide (prismatic) joints only"
                )
            anchor = np.asarray(m.jnt_pos[j], dtype=np.float64)
            axis = np.asarray(m.jnt_axis[j], dtype=np.float64)
            ref = float(m.qpos0[m.jnt_qposadr[j]])
            # MuJoCo: body = placed * prod_i T(a_i) R_i(q_i - ref_i) T(-a_i)
            origin = (placed if k == 0 else np.eye(4)) @ _pose(anchor - previous_anchor)
            if kind == mujoco.mjtJoint.mjJNT_HINGE:
                origin = origin @ _axis_angle(axis, -ref)
            else:
                origin = origin @ _pose(-ref * axis)
            last = k == len(joints) - 1
            child = link if last and not anchor.any() else f"{link}__{jname}"
            if child != link:
                ET.SubElement(self.robot, "link", name=child)
            if jname in self.commanded:
                self.commanded_joint(jname, frame_link)
                mjcf_joint = self.joint(
                    f"{jname}{MJCF_SUFFIX}",
                    self.kind(j),
                    frame_link,
                    child,
                    origin,
                    axis=axis,
                    limits=j,
                )
                self.mimic(mjcf_joint, jname, j)
            else:
                element = self.joint(
                    jname, self.kind(j), frame_link, child, origin, axis=axis, limits=j
                )
                if jname in self.mimics:
                    leader, multiplier, offset = self.mimics[jname]
                    _mimic(element, leader, multiplier, offset)
            frame_link, previous_anchor = child, anchor
        if joints and frame_link != link:
            self.joint(f"{link}__anchor", "fixed", frame_link, link, _pose(-previous_anchor))
        element = ET.SubElement(self.robot, "link", name=link)
        self.inertial(element, b)
        self.geoms(element, b)

    def commanded_joint(self, name: str, parent: str) -> None:
        """The joint ``joint_states`` names, in the driver's unit, on a frameless link: what
        robot_state_publisher reads to place the MJCF joints that mimic it."""
        lower, upper, velocity = self.commanded[name]
        self.written.add(name)
        child = f"{name}__command"
        ET.SubElement(self.robot, "link", name=child)
        element = self.joint(name, "revolute", parent, child, np.eye(4), axis=np.array([0, 0, 1]))
        ET.SubElement(
            element,
            "limit",
            effort="0",
            velocity=_num(velocity),
            lower=_num(lower),
            upper=_num(upper),
        )

    def mimic(self, element: ET.Element, name: str, j: int) -> None:
        """``element`` (the MJCF joint ``j``) follows ``name``: its range onto the MJCF's."""
        lower, upper, _ = self.commanded[name]
        if not upper > lower or not self.m.jnt_limited[j]:
            raise UrdfError(
                f"joint '{name}': reported in its own unit over [{lower}, {upper}], which maps "
                "onto the MJCF joint's range only when both ranges are set and non-empty"
            )
        jlo, jhi = (float(v) for v in self.m.jnt_range[j])
        multiplier = (jhi - jlo) / (upper - lower)
        _mimic(element, name, multiplier, jlo - lower * multiplier)

    def kind(self, j: int) -> str:
        if self.m.jnt_type[j] == mujoco.mjtJoint.mjJNT_SLIDE:
            return "prismatic"
        return "revolute" if self.m.jnt_limited[j] else "continuous"

    def joint(self, name, kind, parent, child, origin, *, axis=None, limits: int | None = None):
        element = ET.SubElement(self.robot, "joint", name=name, type=kind)
        _origin(element, origin)
        ET.SubElement(element, "parent", link=parent)
        ET.SubElement(element, "child", link=child)
        if axis is not None:
            ET.SubElement(element, "axis", xyz=" ".join(_num(v) for v in axis))
        if limits is not None and kind != "fixed":
            j = limits
            attrs = {"effort": _num(self.effort(j)), "velocity": _num(self.velocity.get(name, 0))}
            if kind != "continuous":
                lower, upper = self.m.jnt_range[j] if self.m.jnt_limited[j] else (-1e3, 1e3)
                attrs |= {"lower": _num(lower), "upper": _num(upper)}
            ET.SubElement(element, "limit", **attrs)
        return element

    def effort(self, j: int) -> float:
        """The force limit the MJCF puts on joint ``j``: its actuator force range, else that of
        an actuator driving it directly (times the gear); 0 when it states none."""
        m = self.m
        if m.jnt_actfrclimited[j]:
            return float(np.abs(m.jnt_actfrcrange[j]).max())
        limits = [
            float(np.abs(m.actuator_forcerange[a]).max() * abs(m.actuator_gear[a][0]))
            for a in range(m.nu)
            if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
            and m.actuator_trnid[a][0] == j
            and m.actuator_forcelimited[a]
        ]
        return max(limits, default=0.0)

    def site(self, site: str) -> None:
        m = self.m
        s = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, site)
        if s < 0:
            raise UrdfError(f"the model has no site '{site}'")
        body = self.name(mujoco.mjtObj.mjOBJ_BODY, int(m.site_bodyid[s]), "body")
        placed = _pose(m.site_pos[s], m.site_quat[s])
        if int(m.site_bodyid[s]) == 0:
            body = ROOT_LINK
        ET.SubElement(self.robot, "link", name=site)
        self.joint(f"{body}_to_{site}", "fixed", body, site, placed)

    # -- what a link carries ----------------------------------------------------------------------

    def inertial(self, link: ET.Element, b: int) -> None:
        m = self.m
        if m.body_mass[b] <= 0:
            return
        element = ET.SubElement(link, "inertial")
        _origin(element, _pose(m.body_ipos[b], m.body_iquat[b]))
        ET.SubElement(element, "mass", value=_num(m.body_mass[b]))
        ixx, iyy, izz = (float(v) for v in m.body_inertia[b])
        ET.SubElement(
            element,
            "inertia",
            ixx=_num(ixx),
            ixy="0",
            ixz="0",
            iyy=_num(iyy),
            iyz="0",
            izz=_num(izz),
        )

    def geoms(self, link: ET.Element, b: int) -> None:
        m = self.m
        mine = [g for g in range(m.ngeom) if m.geom_bodyid[g] == b]
        colliding = [g for g in mine if m.geom_contype[g] or m.geom_conaffinity[g]]
        decorative = [g for g in mine if g not in colliding]
        for g in decorative or colliding:
            self.geom(link, "visual", g)
        for g in colliding:
            self.geom(link, "collision", g)

    def geom(self, link: ET.Element, tag: str, g: int) -> None:
        m = self.m
        rgba = self.rgba(g)
        if tag == "visual" and rgba[3] == 0:
            return
        placed = _pose(m.geom_pos[g], m.geom_quat[g])
        size = m.geom_size[g]
        kind = m.geom_type[g]
        T = mujoco.mjtGeom
        if kind == T.mjGEOM_MESH:
            mesh = int(m.geom_dataid[g])
            mesh_name = self.name(mujoco.mjtObj.mjOBJ_MESH, mesh, "mesh")
            path = self.files.get(mesh_name)
            if path is None:  # vertices written inline in the MJCF: no file to point at
                return
            # MuJoCo stores the vertices re-centred: v_model = R^T (scale * v_file - pos)
            r = np.zeros(9)
            mujoco.mju_quat2Mat(r, m.mesh_quat[mesh])
            r = r.reshape(3, 3)
            to_file = np.eye(4)
            to_file[:3, :3] = r.T
            to_file[:3, 3] = -r.T @ m.mesh_pos[mesh]
            placed = placed @ to_file
            shape = ("mesh", {"filename": path.as_uri()})
            scale = m.mesh_scale[mesh]
            if not np.allclose(scale, 1.0):
                shape[1]["scale"] = " ".join(_num(v) for v in scale)
        elif kind == T.mjGEOM_BOX:
            shape = ("box", {"size": " ".join(_num(2 * v) for v in size)})
        elif kind == T.mjGEOM_SPHERE:
            shape = ("sphere", {"radius": _num(size[0])})
        elif kind in (T.mjGEOM_CYLINDER, T.mjGEOM_CAPSULE):
            shape = ("cylinder", {"radius": _num(size[0]), "length": _num(2 * size[1])})
        else:  # ellipsoid, plane, height field, SDF: URDF has no such shape
            return
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g)
        element = ET.SubElement(link, tag, **({"name": name} if name else {}))
        _origin(element, placed)
        geometry = ET.SubElement(element, "geometry")
        ET.SubElement(geometry, shape[0], **shape[1])
        if tag == "visual":
            ET.SubElement(
                ET.SubElement(element, "material", name=self.material(g, rgba)),
                "color",
                rgba=" ".join(_num(round(float(v), 6)) for v in rgba),
            )

    def rgba(self, g: int) -> tuple[float, ...]:
        m = self.m
        mat = int(m.geom_matid[g])
        return tuple(float(v) for v in (m.mat_rgba[mat] if mat >= 0 else m.geom_rgba[g]))

    def material(self, g: int, rgba: tuple[float, ...]) -> str:
        """A material name per colour (URDF materials are global: one name, one colour)."""
        mat = int(self.m.geom_matid[g])
        name = mujoco.mj_id2name(self.m, mujoco.mjtObj.mjOBJ_MATERIAL, mat) if mat >= 0 else ""
        name = name or "rgba_" + "_".join(f"{round(v * 255):d}" for v in rgba)
        if self.materials.setdefault(name, rgba) != rgba:
            name = f"{name}_{len(self.materials)}"
            self.materials[name] = rgba
        return name
