"""The scripted operator: the person at the robot, played by a script, in simulation.

Why it exists: demonstrations and interventions in the twin need an operator that solves the
tasks the way a person would, with variety (noise) and with mistakes (deliberate failures), so
the critic sees both outcomes. It is told only what a person would be told or could see:

- the instruction text (parsed with :func:`robot.sim.tasks.parse_instruction`),
- the object poses the twin publishes (``cube_<color>``, ``bin``),
- the measured joint positions of the arm.

It plans with differential inverse kinematics (``mink``) on the robot's own MJCF and emits an
:class:`~robot.schema.ActionChunk` of joint targets (source ``SCRIPT``), stamped with the
observation stamp, ``horizon`` steps ``chunk_dt`` apart. Every target respects the robot's
position, velocity, acceleration and max-step limits (with a 10 % margin) and brakes before
joint limits the way :class:`robot.safety.SafetyLimits` requires, so the safety layer never has
to clamp it; noise that would take the end effector out of the workspace box is dropped. A
new chunk continues from the command the previous chunk had reached at the new stamp, so
replanning never jumps; if the arm is far from that command (a person took over) it restarts
from the last command sent to the arm when the caller knows it (``act(..., last_command)``),
else from the measured position.

Soft servos (the SO-101's) sag under gravity and lag against a pushed cube. The operator closes
the loop like a person watching the arm: while the plan stands still it steers the IK target by
the integrated difference between planned and measured tool position (small errors only: a
large one is a collision, not sag), and it ends a push from where the hand really is.

Base frame (positions of objects and targets; the twin's world frame)::

            z (up)
            ^
            |   y (left: "push ... to the left" moves +y)
            |  /
            | /
     base --+---------> x (forward, away from the robot)

Tool frame (TCP): the point between the fingertips where a cube is held, with the approach
axis pointing down during grasps and the jaw axis across the cube::

                  |  wrist
                 _|_
                |   |
          jaw   |   |   jaw        jaw axis: from one finger to the other (horizontal)
           |    |   |    |         approach axis: out of the hand between the fingers (down)
           |         TCP |
           |      o      |
                  |
                  v approach

    The tool frame is the robot's ``ee_site``; which of its axes is the approach and which the
    jaw axis, and where the TCP sits, is the preset's ``hand`` section
    (:class:`robot.description.HandDescription`): on the SO-101 ``gripperframe`` (x = approach,
    z = jaw axis) with the TCP at the middle of the fingertip pads at the grasp opening, on
    the Panda ``pinch`` (z = approach, y = jaw axis) with TCP = pinch.

pick_place: approach above the named cube, descend, close, lift (retry if the cube stayed),
carry over the bin, release, retreat, go home. push: approach behind the cube (on the side
away from the named side), descend to mid-height with the gripper closed, push until the cube
has moved far enough, retreat, go home.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import mink
import mujoco
import numpy as np

from robot.description import HandDescription
from robot.mjcf import ForwardKinematics, load_robot_spec
from robot.schema import ActionChunk, ControlSource, ObjectPose, RobotSpec
from robot.sim.config import BIN, SIDES
from robot.sim.scene import yaw_of
from robot.sim.tasks import Goal, parse_instruction
from teleop.ik_model import IKModelError, arm_ik_model
from teleop.scripted_config import OperatorError, ScriptedConfig

log = logging.getLogger(__name__)


class OperatorPhase(enum.Enum):
    APPROACH = "approach"  # above the cube (pick) or behind it (push), gripper set
    DESCEND = "descend"  # down to grasp or push height
    CLOSE = "close"
    LIFT = "lift"
    CARRY = "carry"  # over the bin
    RELEASE = "release"
    PUSH = "push"
    RETREAT = "retreat"  # straight up
    HOME = "home"  # back to the home pose
    DONE = "done"


PICK_FAILURES = ("release_early", "wrong_cube")
PUSH_FAILURES = ("wrong_side", "short_push")
_DIVERGED = 0.3  # rad: measured arm this far from the plan -> replan from the measurement
_MAX_RETRIES = 3
_SAG_LOW = np.array([-0.02, -0.02, -0.003])  # m, bounds of the sag correction
_SAG_HIGH = np.array([0.02, 0.02, 0.02])
_SETTLE_TIMEOUT = 0.6  # s a moving phase waits for the measured TCP once the plan arrived
_LIMIT_MARGIN = 0.9  # fraction of each velocity/acceleration/max-step limit used


def _stopping_speed(distance: np.ndarray, accel: np.ndarray, dt: float) -> np.ndarray:
    """Largest speed from which braking at ``accel`` (one tick at a time) stops within
    ``distance`` (the same bound as :class:`robot.safety.SafetyLimits`)."""
    d = np.maximum(distance, 0.0)
    a_dt = accel * dt
    return np.maximum(-a_dt + np.sqrt(a_dt * a_dt + 2.0 * accel * d), 0.0)


@dataclass
class _State:
    """The plan at one instant: everything needed to continue it."""

    t: float
    q_cmd: np.ndarray  # (D,) commanded, config joint order
    v_cmd: np.ndarray  # (D,) commanded velocity
    q_nom: np.ndarray  # (A,) arm joints from IK, before noise
    p: np.ndarray  # (3,) planned TCP position
    rot: np.ndarray  # (3, 3) planned TCP orientation
    speed: float  # planned TCP speed along its path
    gripper: float  # nominal gripper command
    noise: np.ndarray  # (A,) OU noise state

    def copy(self) -> _State:
        return replace(
            self,
            q_cmd=self.q_cmd.copy(),
            v_cmd=self.v_cmd.copy(),
            q_nom=self.q_nom.copy(),
            p=self.p.copy(),
            rot=self.rot.copy(),
            noise=self.noise.copy(),
        )


@dataclass
class _Target:
    p: np.ndarray
    rot: np.ndarray
    gripper: float
    speed: float
    joint_goal: np.ndarray | None = None  # joint-space move (HOME) instead of Cartesian
    precise: bool = True  # orientation matters (near a cube); else position first


class ScriptedOperator:
    """Solves ``pick_place`` and ``push`` from ground truth; see the module docstring.

    ``spec``: the robot; its ``model`` (MJCF) is the IK model, its ``hand`` says how to grasp.
    Stateful and single-threaded: call :meth:`reset` at each episode, then :meth:`act` with
    observations in time order.
    """

    def __init__(self, spec: RobotSpec, config: ScriptedConfig | None = None) -> None:
        self.config = config or ScriptedConfig()
        self.spec = spec
        hand = spec.hand
        if hand is None or spec.gripper_open is None or spec.gripper_closed is None:
            raise OperatorError(
                f"robot '{spec.name}' has no 'hand' section (and gripper_open/gripper_closed) "
                "in its preset; the scripted operator needs one to grasp"
            )
        self._gripper_open, self._gripper_closed = spec.gripper_open, spec.gripper_closed
        self.dt = self.config.chunk_dt or spec.control_period
        if spec.gripper_joint is None:
            raise OperatorError(f"robot '{spec.name}' has no gripper_joint; it cannot grasp")
        self._g = spec.joint_names.index(spec.gripper_joint)
        self._arm = np.array([i for i in range(spec.dof) if i != self._g], dtype=np.intp)
        self._arm_names = [spec.joint_names[i] for i in self._arm]
        self._lower = spec.position_lower.copy()
        self._upper = spec.position_upper.copy()
        self._vmax = spec.velocity_limit * _LIMIT_MARGIN
        self._amax = spec.acceleration_limit * _LIMIT_MARGIN
        self._step_max = np.minimum(self._vmax * self.dt, spec.max_step * _LIMIT_MARGIN)
        self.ik_model, offset, fingers = self._build_ik_model(spec.model, hand)
        self.hand = replace(hand, tcp_offset=tuple(offset), closed_fingers=tuple(fingers))
        self._ik = mink.Configuration(self.ik_model)
        self._frame = mink.FrameTask(
            "tcp",
            "site",
            position_cost=1.0,
            orientation_cost=hand.orientation_cost,
            lm_damping=1e-3,
        )
        self._posture = mink.PostureTask(self.ik_model, cost=1e-2)
        self._posture.set_target(spec.home[self._arm])
        self._limits = [mink.ConfigurationLimit(self.ik_model)]
        self._tcp_site = self.ik_model.site("tcp").id
        self._ee_fk = ForwardKinematics.for_robot(spec)
        if hand.roll_joint not in self._arm_names:
            raise OperatorError(f"robot '{spec.name}' has no joint '{hand.roll_joint}'")
        self._roll = self._arm_names.index(hand.roll_joint)
        self.goal: Goal | None = None
        self.instruction = ""
        self.failure_mode: str | None = None
        self.phase = OperatorPhase.DONE
        self._rng = np.random.default_rng(self.config.seed)
        self._episodes = 0
        self._history: list[_State] = []
        self._since: dict[str, float] = {}
        self._reset_episode_state()

    # -- model ------------------------------------------------------------------------------

    def _build_ik_model(
        self, model: str, hand: HandDescription
    ) -> tuple[mujoco.MjModel, np.ndarray, np.ndarray]:
        """The robot's IK model (:func:`teleop.ik_model.arm_ik_model`) with a ``tcp`` site."""
        offset = np.asarray(hand.tcp_offset, dtype=np.float64)
        fingers = np.asarray(hand.closed_fingers, dtype=np.float64)
        if hand.pads:
            full = load_robot_spec(model, self.spec.model_edits).compile()
            offset, fingers = self._pad_geometry(full, hand)
        try:
            compiled = arm_ik_model(self.spec, model, tcp_offset=offset)
        except IKModelError as err:
            raise OperatorError(str(err)) from None
        return compiled, offset, fingers

    def _pad_geometry(
        self, m: mujoco.MjModel, hand: HandDescription
    ) -> tuple[np.ndarray, np.ndarray]:
        """TCP offset (site frame): mid-point of the pads at ``pad_opening``; and where the
        closed fingers are (TCP frame): mid-point of the pads with the gripper closed."""
        d = mujoco.MjData(m)
        site = m.site(self.spec.ee_site).id
        gripper = m.joint(self.spec.gripper_joint).qposadr[0]

        def midpoint(opening: float) -> np.ndarray:
            d.qpos[gripper] = opening
            mujoco.mj_kinematics(m, d)
            mid = np.mean([d.geom_xpos[m.geom(g).id] for g in hand.pads], axis=0)
            return d.site_xmat[site].reshape(3, 3).T @ (mid - d.site_xpos[site])

        offset = midpoint(hand.pad_opening)
        return offset, midpoint(self._gripper_closed) - offset

    def tcp_pose(self, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position and orientation (base frame) at arm joint positions ``q_arm``."""
        self._ik.update(np.asarray(q_arm, dtype=np.float64))
        d = self._ik.data
        return d.site_xpos[self._tcp_site].copy(), d.site_xmat[self._tcp_site].reshape(3, 3).copy()

    def _ik_solve(self, p: np.ndarray, rot: np.ndarray, seed: np.ndarray) -> np.ndarray:
        self._ik.update(seed)
        self._frame.set_target(mink.SE3.from_rotation_and_translation(mink.SO3.from_matrix(rot), p))
        tasks = [self._frame, self._posture]
        for _ in range(4):
            v = mink.solve_ik(self._ik, tasks, 1.0, "daqp", damping=1e-4, limits=self._limits)
            self._ik.integrate_inplace(v, 1.0)
            err = self._frame.compute_error(self._ik)
            if np.linalg.norm(err[:3]) < 3e-4 and np.linalg.norm(err[3:]) < 3e-3:
                break
        return self._ik.q.copy()

    def _grasp_rotation(self, jaw_yaw: float) -> np.ndarray:
        """TCP orientation with the approach axis down and the jaw axis at ``jaw_yaw``."""
        a, j = self.hand.approach_axis, self.hand.jaw_axis
        t = 3 - a - j
        cols = [np.zeros(3)] * 3
        cols[a] = np.array([0.0, 0.0, -1.0])
        cols[j] = np.array([math.cos(jaw_yaw), math.sin(jaw_yaw), 0.0])
        cyclic = (a, j, t) in ((0, 1, 2), (1, 2, 0), (2, 0, 1))
        cols[t] = np.cross(cols[a], cols[j]) if cyclic else np.cross(cols[j], cols[a])
        return np.column_stack(cols)

    @staticmethod
    def _azimuth(xy: np.ndarray) -> float:
        return math.atan2(float(xy[1]), float(xy[0]))

    def _choose_yaw(self, state: _State, candidates: list[float], xy: np.ndarray) -> float:
        """The jaw direction (rad, base frame) among ``candidates`` (equivalent for the task)
        for the TCP going to ``xy`` that keeps the wrist's roll joint nearest its home angle.

        With the hand pointing down, the jaw yaw is the arm's azimuth plus the roll joint (up
        to sign and offset). Turning the shortest way from the plan's yaw while the arm swings
        to the new azimuth moves the roll joint by the difference; a candidate that would
        take the roll joint out of its range is skipped.
        """
        i = self._roll
        roll_now = float(state.q_nom[i])
        bumped = state.q_nom.copy()
        bumped[i] += 1e-3
        jaw = self.tcp_pose(state.q_nom)[1][:, self.hand.jaw_axis]
        jaw2 = self.tcp_pose(bumped)[1][:, self.hand.jaw_axis]
        yaw_now = math.atan2(jaw[1], jaw[0])
        turned = math.remainder(math.atan2(jaw2[1], jaw2[0]) - yaw_now, 2 * math.pi)
        sign = 1.0 if turned > 0 else -1.0
        swing = math.remainder(self._azimuth(xy) - self._azimuth(state.p[:2]), 2 * math.pi)
        lo = self._lower[self._arm][i] + 0.05
        hi = self._upper[self._arm][i] - 0.05
        home = float(self.spec.home[self._arm][i])
        best, best_cost = None, math.inf
        for y in candidates:
            turn = math.remainder(y - yaw_now, 2 * math.pi)
            roll = roll_now + sign * (turn - swing)
            cost = abs(roll - home)
            if lo <= roll <= hi and cost < best_cost:
                best, best_cost = y, cost
        if best is None:  # nothing in range: the least turn
            best = min(candidates, key=lambda y: abs(math.remainder(y - yaw_now, 2 * math.pi)))
        return best

    # -- episode ----------------------------------------------------------------------------

    def _reset_episode_state(self) -> None:
        self.phase = OperatorPhase.DONE if self.goal is None else OperatorPhase.APPROACH
        self._phase_start = 0.0
        self._retries = 0
        self._history = []
        self._sag = np.zeros(3)
        self._hold_offset: np.ndarray | None = None  # TCP minus cube while carrying
        self._carry_yaw: float | None = None
        self._retreat_from: np.ndarray | None = None
        self._push_start: np.ndarray | None = None
        self._target_name = self.goal.target if self.goal else ""
        self._drop_from: np.ndarray | None = None  # release_early: where the carry began
        self._since: dict[str, float] = {}

    def reset(self, instruction: str, seed: int | None = None) -> None:
        """Start an episode: parse ``instruction``, draw noise and a failure mode from
        ``seed`` (default: ``config.seed + episode index``)."""
        goal = parse_instruction(instruction)
        if seed is None:
            seed = self.config.seed + self._episodes
        self._episodes += 1
        self._rng = np.random.default_rng(seed)
        self.goal = goal
        self.instruction = instruction
        self.failure_mode = None
        if self._rng.random() < self.config.failure_rate:
            modes = PICK_FAILURES if goal.task == "pick_place" else PUSH_FAILURES
            self.failure_mode = str(self._rng.choice(modes))
        self._reset_episode_state()
        log.info("scripted operator: %r (failure mode: %s)", instruction, self.failure_mode)

    @property
    def done(self) -> bool:
        return self.phase is OperatorPhase.DONE

    # -- acting -----------------------------------------------------------------------------

    def act(
        self,
        stamp: float,
        joint_pos: np.ndarray,
        objects: Mapping[str, ObjectPose],
        last_command: np.ndarray | None = None,
    ) -> ActionChunk:
        """The next ``horizon`` joint targets, from the observation at ``stamp``.

        ``last_command`` (optional, ``(D,)``): the target the arm was last sent, when known (on
        ROS, ``driver/command``). A plan that starts afresh (first chunk of an episode, or the
        arm far from the plan) starts there rather than at the measured position, which soft
        servos hold below their target: the first step then needs no acceleration the
        safety layer would clamp.
        """
        q_meas = np.asarray(joint_pos, dtype=np.float64).reshape(-1)
        if q_meas.shape != (self.spec.dof,):
            raise OperatorError(f"joint_pos has shape {q_meas.shape}, expected ({self.spec.dof},)")
        if last_command is not None and np.shape(last_command) != (self.spec.dof,):
            raise OperatorError(
                f"last_command has shape {np.shape(last_command)}, expected ({self.spec.dof},)"
            )
        state = self._state_at(stamp, q_meas, last_command)
        if self.goal is not None and self.phase is not OperatorPhase.DONE:
            self._update_phase(state, q_meas, objects)
        positions = np.empty((self.config.horizon, self.spec.dof))
        history = [state.copy()]
        for k in range(self.config.horizon):
            target = self._target(state, objects)
            state = self._advance(state, target)
            positions[k] = state.q_cmd
            history.append(state.copy())
        self._history = history
        times = self.dt * np.arange(1, self.config.horizon + 1)
        return ActionChunk(
            stamp=float(stamp),
            joint_names=self.spec.joint_names,
            positions=positions,
            times=times,
            source=ControlSource.SCRIPT,
        )

    def _state_at(
        self, stamp: float, q_meas: np.ndarray, last_command: np.ndarray | None
    ) -> _State:
        """Where the previous plan was at ``stamp``, or a fresh plan from the last command."""
        state = None
        if self._history:
            due = [s for s in self._history if s.t <= stamp + 1e-9]
            if due:
                state = due[-1].copy()
                if stamp - state.t > 0.5 * self.dt:  # the plan ran out: the arm was held
                    state.v_cmd[:] = 0.0
                    state.speed = 0.0
                state.t = stamp
        if state is not None and np.max(np.abs(state.q_cmd - q_meas)[self._arm]) > _DIVERGED:
            log.info("scripted operator: arm is off the plan; replanning from the measurement")
            state = None
        if state is None:
            start = q_meas if last_command is None else np.asarray(last_command, dtype=float)
            q_start = np.clip(start, self._lower, self._upper)
            q_arm = q_start[self._arm]
            p, rot = self.tcp_pose(q_arm)
            state = _State(
                t=stamp,
                q_cmd=q_start,
                v_cmd=np.zeros(self.spec.dof),
                q_nom=q_arm,
                p=p,
                rot=rot,
                speed=0.0,
                gripper=float(q_meas[self._g]),
                noise=np.zeros(len(self._arm)),
            )
            self._sag = np.zeros(3)
        if self.hand.correct_sag and self.phase is not OperatorPhase.HOME and state.speed < 0.02:
            # soft servos sag under gravity: while the plan is (nearly) still, steer the IK
            # target by the integrated error between planned and measured TCP
            # (an error over 1 cm is a collision or a move not yet finished, not sag; a hand
            # held up is resting on something, so the correction never pushes down much)
            p_meas, _ = self.tcp_pose(q_meas[self._arm])
            error = state.p - p_meas
            if np.linalg.norm(error) < 0.01:
                self._sag = np.clip(self._sag + 0.5 * error, _SAG_LOW, _SAG_HIGH)
        return state

    # -- phases -----------------------------------------------------------------------------

    def _enter(self, phase: OperatorPhase, t: float) -> None:
        log.debug("scripted operator: %s -> %s at t=%.3f", self.phase.value, phase.value, t)
        self.phase = phase
        self._phase_start = t
        self._since.clear()

    def _cube(self, objects: Mapping[str, ObjectPose], name: str | None = None) -> ObjectPose:
        name = name or self._target_name
        if name not in objects:
            raise OperatorError(f"objects has no '{name}' (has: {sorted(objects)})")
        return objects[name]

    def _pick_target_name(self, objects: Mapping[str, ObjectPose]) -> str:
        assert self.goal is not None
        if self.failure_mode == "wrong_cube":
            target = objects[self.goal.target].position
            others = [n for n in objects if n.startswith("cube_") and n != self.goal.target]
            if others:
                return min(others, key=lambda n: np.linalg.norm(objects[n].position - target))
            self.failure_mode = "release_early"
        return self.goal.target

    def _settled(self, key: str, condition: bool, t: float, after: float) -> bool:
        """True once ``condition`` has held at every observation for ``after`` seconds."""
        if not condition:
            self._since.pop(key, None)
            return False
        start = self._since.setdefault(key, t)
        return t - start >= after - 1e-9

    def _update_phase(
        self, state: _State, q_meas: np.ndarray, objects: Mapping[str, ObjectPose]
    ) -> None:
        """OperatorPhase transitions, decided at each observation (never inside a chunk).

        A moving phase ends when the plan has arrived and the measured TCP is there too, or
        the plan has been there for ``_SETTLE_TIMEOUT`` (a soft arm may never quite arrive).
        """
        goal = self.goal
        assert goal is not None
        t = state.t
        if self.phase is OperatorPhase.APPROACH and not self._history and goal.task == "pick_place":
            self._target_name = self._pick_target_name(objects)
        p_meas, _ = self.tcp_pose(q_meas[self._arm])
        target = self._target(state, objects)
        plan_there = np.linalg.norm(target.p - state.p) < 1e-3 and state.speed < 1e-3
        meas_err = float(np.linalg.norm(target.p - p_meas))
        g_there = abs(state.q_cmd[self._g] - target.gripper) < 1e-3
        cube = self._cube(objects)
        half = float(cube.size[2]) / 2
        timeout = self._settled("plan", plan_there, t, _SETTLE_TIMEOUT)

        def arrived(tol: float) -> bool:
            return plan_there and (meas_err < tol or timeout)

        phase = self.phase
        if phase is OperatorPhase.APPROACH:
            if arrived(0.01) and g_there:
                self._enter(OperatorPhase.DESCEND, t)
                if goal.task == "push":
                    self._push_start = cube.position.copy()
        elif phase is OperatorPhase.DESCEND:
            if arrived(0.005):
                grasp = goal.task == "pick_place"
                self._enter(OperatorPhase.CLOSE if grasp else OperatorPhase.PUSH, t)
        elif phase is OperatorPhase.CLOSE:
            if self._settled("gripper", g_there, t, self.hand.close_time):
                self._enter(OperatorPhase.LIFT, t)
        elif phase is OperatorPhase.LIFT:
            if arrived(0.01):
                near = np.linalg.norm(p_meas[:2] - cube.position[:2]) < 2 * half
                if cube.position[2] > half + 0.01 and near:
                    self._hold_offset = p_meas - cube.position
                    self._carry_yaw = None
                    self._enter(OperatorPhase.CARRY, t)
                    if self.failure_mode == "release_early":
                        self._drop_from = p_meas.copy()
                else:
                    self._retry(t)
        elif phase is OperatorPhase.CARRY:
            dropped = np.linalg.norm(p_meas - cube.position) > 4 * half
            over_bin = np.linalg.norm(cube.position[:2] - objects[BIN].position[:2]) < 0.012
            early = self._drop_from is not None
            if dropped and not early:
                self._retry(t)
            elif plan_there and (timeout or over_bin or early or meas_err < 0.004):
                self._enter(OperatorPhase.RELEASE, t)
        elif phase is OperatorPhase.RELEASE:
            if self._settled("gripper", g_there, t, self.hand.open_time):
                self._enter(OperatorPhase.RETREAT, t)
        elif phase is OperatorPhase.PUSH:
            assert self._push_start is not None
            moved = (cube.position[1] - self._push_start[1]) * self._push_sign()
            if plan_there or moved >= self._push_goal(cube):
                # let go of the push from where the hand really is: the soft servos lag the
                # plan against the cube, and retreating from the plan would flick the cube on
                self._retreat_from = p_meas.copy()
                state.p = p_meas.copy()
                state.q_nom = q_meas[self._arm].copy()
                state.speed = 0.0
                self._enter(OperatorPhase.RETREAT, t)
        elif phase is OperatorPhase.RETREAT:
            if plan_there:
                self._enter(OperatorPhase.HOME, t)
        elif phase is OperatorPhase.HOME and np.max(np.abs(state.q_cmd - self.spec.home)) < 1e-3:
            self._enter(OperatorPhase.DONE, t)

    def _retry(self, t: float) -> None:
        if self._retries < _MAX_RETRIES:
            self._retries += 1
            log.info("scripted operator: the cube is not in the hand; retry %d", self._retries)
            self._enter(OperatorPhase.APPROACH, t)
        else:
            log.info("scripted operator: giving up after %d retries", self._retries)
            self._enter(OperatorPhase.RETREAT, t)

    def _push_sign(self) -> float:
        assert self.goal is not None
        sign = SIDES[self.goal.side]
        return -sign if self.failure_mode == "wrong_side" else sign

    def _push_goal(self, cube: ObjectPose) -> float:
        """How far (m) to push: "to the left" means about two cube widths to a person (the
        twin asks for exactly that), plus a margin; 40 % of it when stopping short."""
        needed = 2.0 * float(cube.size[1]) + self.hand.push_margin
        return 0.4 * needed if self.failure_mode == "short_push" else needed

    # -- targets ----------------------------------------------------------------------------

    def _target(self, state: _State, objects: Mapping[str, ObjectPose]) -> _Target:
        hand, goal = self.hand, self.goal
        if goal is None:  # no instruction yet: keep still
            return _Target(state.p, state.rot, state.gripper, 0.0, joint_goal=state.q_cmd.copy())
        if self.phase is OperatorPhase.DONE:
            return _Target(state.p, state.rot, state.gripper, 0.0, joint_goal=self.spec.home)
        if self.phase is OperatorPhase.HOME:
            return _Target(state.p, state.rot, self.spec.home[self._g], 0.0, self.spec.home)
        cube = self._cube(objects)
        c = cube.position
        half = float(cube.size[2]) / 2
        opened, closed = self._gripper_open, self._gripper_closed
        if goal.task == "push":
            sign = self._push_sign()
            # jaws along y, so a finger's flat outer face pushes; the closed fingers (not the
            # TCP, which is between open fingers) go behind the cube
            yaw = self._choose_yaw(state, [math.pi / 2, -math.pi / 2], c[:2])
            rot = self._grasp_rotation(yaw)
            fingers = rot @ np.asarray(hand.closed_fingers)
            start = self._push_start if self._push_start is not None else c
            gap = half + hand.finger_half_width + 0.012
            behind = np.array([start[0], start[1] - sign * gap, c[2] + hand.push_dz]) - fingers
            if self.phase is OperatorPhase.APPROACH:
                p = np.array([c[0], c[1] - sign * gap, c[2] + hand.hover]) - fingers
                return _Target(p, rot, closed, hand.speed)
            if self.phase is OperatorPhase.DESCEND:
                return _Target(behind, rot, closed, hand.slow_speed)
            if self.phase is OperatorPhase.PUSH:
                # far enough to push the cube by twice the goal; the push ends (closed loop)
                # once the cube has moved by the goal. The fingers follow the cube across the
                # push, so a cube that drifts sideways is not lost off the fingertips.
                reach = 2.0 * self._push_goal(cube) + gap
                p = behind + np.array([c[0] - start[0], sign * reach, 0.0])
                return _Target(p, rot, closed, hand.slow_speed)
            if self.phase is OperatorPhase.RETREAT:
                # up and a little back, off the cube's face
                if self._retreat_from is None:
                    self._retreat_from = state.p.copy()
                p = self._retreat_from.copy() + np.array([0.0, -sign * 0.01, 0.0])
                p[2] = c[2] + hand.hover
                return _Target(p, state.rot, closed, hand.slow_speed, precise=False)
            raise AssertionError(f"push has no phase {self.phase}")
        # pick_place
        cube_yaw = yaw_of(cube.quaternion)
        yaw = self._choose_yaw(state, [cube_yaw + k * math.pi / 2 for k in range(4)], c[:2])
        rot = self._grasp_rotation(yaw)
        if self.phase is OperatorPhase.APPROACH:
            p = c + np.array([0.0, 0.0, hand.hover])
            return _Target(p, rot, opened, hand.speed, precise=False)
        if self.phase is OperatorPhase.DESCEND:
            return _Target(c + np.array([0.0, 0.0, hand.grasp_dz]), rot, opened, hand.slow_speed)
        if self.phase is OperatorPhase.CLOSE:
            return _Target(state.p, state.rot, closed, 0.0)
        bin_pose = objects.get(BIN)
        if bin_pose is None:
            raise OperatorError("pick_place needs the 'bin' in objects")
        carry_z = float(bin_pose.size[2]) + hand.carry_clearance + half + hand.grasp_dz
        if self.phase is OperatorPhase.LIFT:
            p = state.p.copy()
            p[2] = max(carry_z, half + hand.grasp_dz + 0.04)
            return _Target(p, state.rot, closed, hand.slow_speed)
        if self.phase is OperatorPhase.CARRY:
            offset = self._hold_offset if self._hold_offset is not None else np.zeros(3)
            p = np.array([*(bin_pose.position[:2] + offset[:2]), max(carry_z, state.p[2])])
            if self._drop_from is not None:  # release_early: let go a third of the way
                p[:2] = self._drop_from[:2] + 0.35 * (p[:2] - self._drop_from[:2])
            if self._carry_yaw is None:
                # the held cube turns with the hand, so any of its four sides may face the
                # bin: pick the turn that suits the wrist, once (the hand's own yaw moves)
                jaw = state.rot[:, hand.jaw_axis]
                now = math.atan2(jaw[1], jaw[0])
                candidates = [now + k * math.pi / 2 for k in range(4)]
                self._carry_yaw = self._choose_yaw(state, candidates, p[:2])
            rot = self._grasp_rotation(self._carry_yaw)
            return _Target(p, rot, closed, hand.speed, precise=False)
        if self.phase is OperatorPhase.RELEASE:
            return _Target(state.p, state.rot, opened, 0.0)
        if self.phase is OperatorPhase.RETREAT:
            p = state.p.copy()
            p[2] = carry_z + 0.04
            return _Target(p, state.rot, opened, hand.slow_speed, precise=False)
        raise AssertionError(f"pick_place has no phase {self.phase}")

    # -- one step of the plan ---------------------------------------------------------------

    def _advance(self, state: _State, target: _Target) -> _State:
        dt = self.dt
        s = state.copy()
        s.t = state.t + dt
        arm = self._arm
        if target.joint_goal is not None:
            desired = target.joint_goal.copy()
            s.q_nom = desired[arm].copy()
            s.speed = 0.0
        else:
            # Cartesian: trapezoidal speed along the straight line to the target
            delta = target.p - s.p
            dist = float(np.linalg.norm(delta))
            speed = min(
                target.speed,
                s.speed + self.hand.accel * dt,
                math.sqrt(2.0 * self.hand.accel * dist),
            )
            step = min(speed * dt, dist)
            if dist > 1e-9:
                s.p = s.p + delta * (step / dist)
            s.speed = speed if step < dist else 0.0
            # orientation: turn towards the target at a bounded rate
            rel = mink.SO3.from_matrix(s.rot.T @ target.rot).log()
            angle = float(np.linalg.norm(rel))
            if angle > 1e-9:
                rel *= min(1.0, self.hand.turn_rate * dt / angle)
                s.rot = s.rot @ mink.SO3.exp(rel).as_matrix()
            p_cmd = s.p + (self._sag if self.hand.correct_sag else 0.0)
            cost = self.hand.orientation_cost * (1.0 if target.precise else 0.25)
            self._frame.set_orientation_cost(cost)
            s.q_nom = self._ik_solve(p_cmd, s.rot, s.q_nom)
            desired = np.empty(self.spec.dof)
            desired[arm] = s.q_nom
        # gripper: nominal command moves towards its target; the limiter sets the pace
        s.gripper = float(target.gripper)
        desired[self._g] = s.gripper
        if self.config.noise_std > 0 and target.joint_goal is None:
            tau = 0.3
            s.noise += -s.noise * dt / tau + self.config.noise_std * math.sqrt(
                2.0 * dt / tau
            ) * self._rng.standard_normal(len(arm))
            noisy = desired.copy()
            noisy[arm] += s.noise
            s.q_cmd, s.v_cmd = self._limit(state.q_cmd, state.v_cmd, noisy)
            if self._in_workspace(s.q_cmd, state.q_cmd):
                return s
            s.noise[:] = 0.0  # the wobble would leave the workspace box: steady the hand
        s.q_cmd, s.v_cmd = self._limit(state.q_cmd, state.v_cmd, desired)
        return s

    def _in_workspace(self, q: np.ndarray, q_before: np.ndarray) -> bool:
        """Whether the end effector at ``q`` is inside the workspace box with room to spare:
        3 mm plus what it would cover in the next few steps at its current speed."""
        ee = self._ee_fk(q)
        margin = 0.003 + 4.0 * np.abs(ee - self._ee_fk(q_before))
        return bool(
            np.all(ee >= self.spec.workspace_lower + margin)
            and np.all(ee <= self.spec.workspace_upper - margin)
        )

    def _limit(
        self, q: np.ndarray, v: np.ndarray, desired: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One command step towards ``desired`` within every joint limit, braking in time."""
        dt = self.dt
        desired = np.clip(desired, self._lower, self._upper)
        err = desired - q
        # the fastest speed towards the goal that can still stop there (and before a limit)
        brake = _stopping_speed(np.abs(err), self._amax, dt)
        v_want = np.sign(err) * np.minimum(np.abs(err) / dt, np.minimum(brake, self._vmax))
        v_new = np.clip(v_want, v - self._amax * dt, v + self._amax * dt)
        up = _stopping_speed(self._upper - q, self._amax, dt)
        down = _stopping_speed(q - self._lower, self._amax, dt)
        v_new = np.clip(v_new, -np.minimum(down, self._vmax), np.minimum(up, self._vmax))
        step = np.clip(v_new * dt, -self._step_max, self._step_max)
        q_new = np.clip(q + step, self._lower, self._upper)
        return q_new, (q_new - q) / dt
