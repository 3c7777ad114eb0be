"""End-effector teleop commands to joint targets: one step of differential IK with ``mink``.

Why differential IK and not a full IK solve per command: a teleop command is a small
displacement (a key press, one control tick of a stick), so one quadratic program that moves
the joints by at most one tick's velocity budget is exact enough, never jumps to another IK
branch, and respects the joint limits and velocity limits as constraints instead of by
clamping afterwards. The same MJCF as the twin and :mod:`robot.mjcf` is used, so the
frame the person commands is the frame the safety layer checks.

Frames. The base frame is the frame of the root body of the kinematic tree holding the
end-effector site (as in :mod:`robot.mjcf`); ``ee_delta`` is expressed in it::

            z (up)
            ^
            |   y (left)
            |  /
            | /
     base --+---------> x (forward, away from the robot)

    ee_delta = [dx, dy, dz, droll, dpitch, dyaw]   (m, rad; base frame)
    p_target = p_site + [dx, dy, dz]
    R_target = exp([droll, dpitch, dyaw]^) @ R_site     (turn about base axes, in place:
                                                         the site's position does not move)

The end-effector frame is an MJCF site (the robot's ``ee_site``); its axes only matter as the
point the rotation turns about, and as the orientation held while translating::

    SO-101  gripperframe                    Panda  pinch
            (tip of the fixed jaw)                 (between the fingertips)

               wrist                                 wrist
                 |                                     |
              ___|___                               ___|___
             |       |  x: out of the hand         |       |   z: out of the hand
             |       |  z: across the jaws         |       |   y: across the jaws
                 o--> x                                 o
                 |                                      |
                 v (jaw axis z into the page)           v z

Under-actuated arms (the 5-joint SO-101 cannot hold an arbitrary orientation while it
translates) weigh orientation low by default (``orientation_cost``), so a +x command moves
the tip along +x and lets the hand pitch as it must.

The IK model is the robot's one IK model (:func:`teleop.ik_model.arm_ik_model`, which the
scripted operator uses too): joints that are not arm joints of the spec (the gripper, the
Robotiq's linkage) are welded; the gripper command is mapped separately onto the spec's
gripper joint. Every returned target is within the spec's position
limits and within one control period's velocity (and ``max_step``) of ``q_now``, scaled by
``limit_margin``, for every joint including the gripper.
"""

from __future__ import annotations

import os

import mink
import mujoco
import numpy as np

from robot.mjcf import KinematicsError, root_body
from robot.registry import did_you_mean
from robot.schema import RobotSpec
from teleop.ik_model import IKModelError, arm_ik_model, arm_joint_names


class EndEffectorError(ValueError):
    """A model, site, joint or command cannot be used. The message names it."""


def exp_so3(rotvec: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis * angle, rad)."""
    return mink.SO3.exp(np.asarray(rotvec, dtype=np.float64)).as_matrix()


class EndEffectorController:
    """Turns ``ee_delta`` commands into joint targets for one robot.

    ``spec``: the robot's limits, joint order and model. ``site``: the end-effector site
    (default: ``spec.ee_site``). ``model``: the MJCF, default ``spec.model``.

    ``dt``: s per command (default: the control period); the velocity budget of one call.
    ``orientation_cost``: weight of holding/turning the orientation against the position
    (1.0); default 1.0 with 6 or more arm joints, else 0.1. ``limit_margin``: fraction of the
    velocity and ``max_step`` limits used. ``gripper_open``/``gripper_closed``: gripper joint
    values for the 0 .. 1 command (default: the spec's ``gripper_open``/``gripper_closed``, else
    the joint's upper/lower limit).

    Not thread-safe (one MuJoCo data buffer); one instance per control loop.
    """

    def __init__(
        self,
        spec: RobotSpec,
        site: str = "",
        *,
        model: str | os.PathLike[str] | None = None,
        dt: float | None = None,
        orientation_cost: float | None = None,
        limit_margin: float = 0.9,
        damping: float = 1e-4,
        gripper_open: float | None = None,
        gripper_closed: float | None = None,
        solver: str = "daqp",
    ) -> None:
        self.spec = spec
        self.site = site or spec.ee_site
        if not self.site:
            raise EndEffectorError(f"robot '{spec.name}': no site given and ee_site is empty")
        self.dt = float(dt) if dt is not None else spec.control_period
        if not self.dt > 0:
            raise EndEffectorError(f"dt={self.dt} must be > 0")
        if not 0 < limit_margin <= 1:
            raise EndEffectorError(f"limit_margin={limit_margin} must be in (0, 1]")
        try:
            self.model = arm_ik_model(spec, model)
        except (IKModelError, KinematicsError) as exc:
            raise EndEffectorError(str(exc)) from exc
        self.arm_joints = arm_joint_names(spec)
        m = self.model
        site_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, self.site)
        if site_id < 0:
            sites = [m.site(i).name for i in range(m.nsite)]
            raise EndEffectorError(
                f"robot '{spec.name}': model has no site '{self.site}' ({sites})"
                f"{did_you_mean(self.site, sites)}"
            )
        try:
            self._base = root_body(m, int(m.site_bodyid[site_id]))
        except KinematicsError as exc:
            raise EndEffectorError(f"site '{self.site}': {exc}") from exc
        self._site = site_id
        self._arm = spec.joint_index(self.arm_joints)
        jids = [m.joint(n).id for n in self.arm_joints]
        self._qadr = np.array([m.jnt_qposadr[j] for j in jids], dtype=np.intp)
        self._vadr = np.array([m.jnt_dofadr[j] for j in jids], dtype=np.intp)
        self._g = spec.joint_names.index(spec.gripper_joint) if spec.gripper_joint else None
        default_oc = None if spec.gripper_open is None else (spec.gripper_open, spec.gripper_closed)
        if self._g is not None:
            lo, hi = spec.position_lower[self._g], spec.position_upper[self._g]
            self.gripper_open = float(
                gripper_open if gripper_open is not None else (default_oc or (hi, lo))[0]
            )
            self.gripper_closed = float(
                gripper_closed if gripper_closed is not None else (default_oc or (hi, lo))[1]
            )
        # per-tick budget: velocity x dt and max_step, whichever binds, with the margin
        self.step_limit = limit_margin * np.minimum(spec.velocity_limit * self.dt, spec.max_step)
        self._lower = spec.position_lower
        self._upper = spec.position_upper

        self._config = mink.Configuration(m)
        self._q_full = m.qpos0.copy()
        if orientation_cost is None:
            orientation_cost = 1.0 if len(self.arm_joints) >= 6 else 0.1
        self._frame = mink.FrameTask(
            self.site, "site", position_cost=1.0, orientation_cost=orientation_cost, lm_damping=0.0
        )
        velocity = {
            n: float(self.step_limit[i] / self.dt)
            for n, i in zip(self.arm_joints, self._arm, strict=True)
        }
        self._limits = [
            mink.ConfigurationLimit(m, gain=0.95),
            mink.VelocityLimit(m, velocity),
        ]
        self._damping = damping
        self._solver = solver

    # -- kinematics -------------------------------------------------------------------------

    def _update(self, q: np.ndarray) -> None:
        qf = self._q_full.copy()
        qf[self._qadr] = q[self._arm]
        self._config.update(qf)

    def _base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        d = self._config.data
        return d.xpos[self._base].copy(), d.xmat[self._base].reshape(3, 3).copy()

    def ee_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position ``(3,)`` and orientation ``(3, 3)`` in the base frame at ``q`` ``(D,)``."""
        self._update(self._check_q(q))
        d = self._config.data
        pb, rb = self._base_pose()
        p = rb.T @ (d.site_xpos[self._site] - pb)
        r = rb.T @ d.site_xmat[self._site].reshape(3, 3)
        return p, r

    def _check_q(self, q_now: np.ndarray) -> np.ndarray:
        q = np.asarray(q_now, dtype=np.float64).reshape(-1)
        if q.shape != (self.spec.dof,):
            raise EndEffectorError(f"q_now has shape {q.shape}, expected ({self.spec.dof},)")
        if not np.all(np.isfinite(q)):
            raise EndEffectorError(f"q_now contains NaN/Inf: {q.tolist()}")
        return q

    # -- the command ------------------------------------------------------------------------

    def targets(
        self, q_now: np.ndarray, ee_delta: np.ndarray | None, gripper: float | None = None
    ) -> np.ndarray:
        """Joint targets ``(D,)`` one command after ``q_now`` ``(D,)``.

        ``ee_delta``: ``(6,)`` base-frame displacement (see the module docstring), or None for
        no motion. ``gripper``: 0 open .. 1 closed, or None to keep the gripper where it is.
        A ``q_now`` outside the position limits is first brought inside them. Pass the last
        command rather than the measured position when the arm lags its commands (soft
        servos), or the sag will be commanded again at every tick.
        """
        q = np.clip(self._check_q(q_now), self._lower, self._upper)
        out = q.copy()
        if ee_delta is not None:
            delta = np.asarray(ee_delta, dtype=np.float64).reshape(-1)
            if delta.shape != (6,) or not np.all(np.isfinite(delta)):
                raise EndEffectorError(f"ee_delta must be 6 finite values, got {delta.tolist()}")
            if np.any(delta != 0.0):
                out[self._arm] = q[self._arm] + self._solve(q, delta)
        if gripper is not None and self._g is not None:
            g = float(gripper)
            if not (np.isfinite(g) and 0.0 <= g <= 1.0):
                raise EndEffectorError(f"gripper={gripper} must be in [0, 1] (0 open)")
            want = self.gripper_open + g * (self.gripper_closed - self.gripper_open)
            lim = self.step_limit[self._g]
            out[self._g] = q[self._g] + np.clip(want - q[self._g], -lim, lim)
        return np.clip(out, self._lower, self._upper)

    def _solve(self, q: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """Arm joint step for ``delta`` from ``q``, within the velocity and position limits."""
        self._update(q)
        d = self._config.data
        _, rb = self._base_pose()
        p_site = d.site_xpos[self._site].copy()
        r_site = d.site_xmat[self._site].reshape(3, 3).copy()
        p_target = p_site + rb @ delta[:3]
        r_target = rb @ exp_so3(delta[3:]) @ rb.T @ r_site
        self._frame.set_target(
            mink.SE3.from_rotation_and_translation(mink.SO3.from_matrix(r_target), p_target)
        )
        try:
            v = mink.solve_ik(
                self._config,
                [self._frame],
                self.dt,
                self._solver,
                damping=self._damping,
                limits=self._limits,
            )
        except mink.NoSolutionFound as exc:
            raise EndEffectorError(f"robot '{self.spec.name}': IK found no step: {exc}") from exc
        dq = v[self._vadr] * self.dt
        lim = self.step_limit[self._arm]
        return np.clip(dq, -lim, lim)
