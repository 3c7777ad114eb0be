"""The MuJoCo twin: a scene, a task, a simulated arm, cameras and the sim clock in one object.

Why one object: every ROS-facing piece of the twin (``/clock``, joint states, camera images,
object poses, task success) must come from the same physics state at the same sim time; the
driver owns a :class:`Twin` and steps it between control ticks (``robot/runtime.py``).

Time: :attr:`Twin.time` starts at 0 and is advanced only by :meth:`Twin.step`, in whole physics
steps. A reset does not rewind it (``/clock`` never jumps back between episodes).

Joints: the arm is driven through :class:`SimArm`, which implements
:class:`robot.arm_interface.Arm` in the config's joint order and units. Each arm joint is
commanded through the position actuator that targets it. The Panda's ``gripper`` is normalised
(0 open, 1 closed) onto the Robotiq tendon actuator, and reads back the mean of the two driver
joints on the same scale.

Camera frames. MuJoCo renders a camera looking along its own -z, image up = +y; ROS and OpenCV
use the optical frame, looking along +z, image down = +y. :meth:`Twin.camera_pose` and
:meth:`Twin.camera_info` speak the optical convention::

        MuJoCo camera frame              optical frame (camera_info, camera_pose)

            y (image up)                      z (forward, into the scene)
            ^                                /
            |                               +----> x (image right)
            +----> x (image right)          |
           /                                v
          z (backwards, out of the lens)    y (image down)

    R_optical = R_mujoco @ diag(1, -1, -1)

Camera delay (``sim.camera_delay``, off by default): a delayed camera's frame at sim time t
shows the state at t - delay, to the nearest physics step, as a real camera's frame stamped on
arrival shows the past. The twin then steps physics one step at a time and keeps the states
it needs (``dojo calibrate latency`` measures the delay back).

Intrinsics follow from the model: square pixels, ``fy = (H / 2) / tan(fovy / 2)``, ``fx = fy``,
principal point at the image centre, ``cx = (W - 1) / 2``, ``cy = (H - 1) / 2`` (pixel centres
at integer coordinates).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np

from robot.arm_interface import Arm, ArmError
from robot.schema import CameraIntrinsics, CameraSpec, JointState, ObjectPose, RobotSpec
from robot.sim.config import BIN, COLORS, TaskConfig, TwinConfig, TwinError
from robot.sim.scene import BIN_RGBA, Scene, build_scene, cube_name
from robot.sim.tasks import TASKS, EpisodeSetup, make_task

log = logging.getLogger(__name__)

_OPTICAL_FROM_MUJOCO = np.diag([1.0, -1.0, -1.0])
# A frame asked smaller than the camera's size is rendered this many times larger and
# box-filtered down, see Twin.render.
SUPERSAMPLE = 2


@dataclass(frozen=True)
class _Channel:
    """One config joint: how to read it from qpos/qvel and how to command it through ctrl."""

    name: str
    qposadr: np.ndarray
    dofadr: np.ndarray
    actuator: int
    joint_offset: float  # model joint = joint_offset + joint_scale * value
    joint_scale: float
    ctrl_offset: float  # ctrl = ctrl_offset + ctrl_scale * value
    ctrl_scale: float
    lower: float  # device limits, config units
    upper: float

    def read(self, data: mujoco.MjData) -> tuple[float, float, float]:
        pos = float(np.mean(data.qpos[self.qposadr]))
        vel = float(np.mean(data.qvel[self.dofadr]))
        effort = float(data.actuator_force[self.actuator])
        return (
            (pos - self.joint_offset) / self.joint_scale,
            vel / self.joint_scale,
            effort,
        )

    def to_ctrl(self, value: float) -> float:
        return self.ctrl_offset + self.ctrl_scale * value

    def to_qpos(self, value: float) -> float:
        return self.joint_offset + self.joint_scale * value


def _channels(spec: RobotSpec, scene: Scene) -> list[_Channel]:
    m = scene.model
    gripper_map = scene.twin.gripper
    channels = []
    for name in spec.joint_names:
        if name == spec.gripper_joint and gripper_map is not None and gripper_map.normalized:
            act = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, gripper_map.actuator)
            if act < 0:
                raise TwinError(
                    f"robot model '{scene.robot.model}' has no actuator "
                    f"'{gripper_map.actuator}' for gripper '{name}'"
                )
            jids = [m.joint(j).id for j in gripper_map.joints]
            lo, hi = m.actuator_ctrlrange[act]
            if gripper_map.ctrl_open is not None:
                lo = gripper_map.ctrl_open
            if gripper_map.ctrl_closed is not None:
                hi = gripper_map.ctrl_closed
            span = gripper_map.joint_closed - gripper_map.joint_open
            channels.append(
                _Channel(
                    name=name,
                    qposadr=m.jnt_qposadr[jids].copy(),
                    dofadr=m.jnt_dofadr[jids].copy(),
                    actuator=act,
                    joint_offset=gripper_map.joint_open,
                    joint_scale=span,
                    ctrl_offset=float(lo),
                    ctrl_scale=float(hi - lo),
                    lower=0.0,
                    upper=1.0,
                )
            )
            continue
        jid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)
        if jid < 0:
            arm_joints = [
                m.joint(j).name
                for j in range(m.njnt)
                if m.jnt_type[j] != mujoco.mjtJoint.mjJNT_FREE
            ]
            raise TwinError(
                f"robot '{spec.name}': joint '{name}' is not in model '{scene.robot.model}' "
                f"(its joints: {arm_joints})"
            )
        acts = [
            a
            for a in range(m.nu)
            if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT and m.actuator_trnid[a, 0] == jid
        ]
        if len(acts) != 1:
            raise TwinError(
                f"robot '{spec.name}': joint '{name}' needs exactly one actuator in model "
                f"'{scene.robot.model}', found {len(acts)}"
            )
        act = acts[0]
        if m.actuator_biastype[act] != mujoco.mjtBias.mjBIAS_AFFINE:
            raise TwinError(
                f"robot '{spec.name}': actuator '{m.actuator(act).name}' of joint '{name}' is not "
                f"a position servo (MJCF <position> or affine-bias <general>)"
            )
        lower, upper = (-np.inf, np.inf)
        if m.jnt_limited[jid]:
            lower, upper = m.jnt_range[jid]
        if m.actuator_ctrllimited[act]:
            lower = max(lower, m.actuator_ctrlrange[act, 0])
            upper = min(upper, m.actuator_ctrlrange[act, 1])
        channels.append(
            _Channel(
                name=name,
                qposadr=np.array([m.jnt_qposadr[jid]]),
                dofadr=np.array([m.jnt_dofadr[jid]]),
                actuator=act,
                joint_offset=0.0,
                joint_scale=1.0,
                ctrl_offset=0.0,
                ctrl_scale=1.0,
                lower=float(lower),
                upper=float(upper),
            )
        )
    return channels


class SimArm(Arm):
    """The twin's arm behind the :class:`~robot.arm_interface.Arm` interface.

    ``send`` sets the position servos' targets (clamped to the model's joint and control
    ranges, and that clamped target is returned); physics moves the arm when the twin steps.
    ``hold`` and ``disable`` re-target the servos at the measured position, once per hold
    ("brakes on": the simulated arm does not collapse). ``read`` is stamped with the twin's
    sim time. ``commanded`` is the target in force.

    The preset's ``twin.actuators`` (:class:`robot.description.ActuatorDynamics`, what a replay
    fit writes) set a joint's servo gain and damping in the model, and delay its targets: a
    target sent (or held) at sim step ``s`` reaches the servo at step ``s + delay`` (whole
    physics steps, applied by :meth:`Twin.step` between them), as a real bus delivers it late.
    Without them the model is as shipped and every target takes effect at once.
    """

    def __init__(self, spec: RobotSpec, twin: Twin) -> None:
        super().__init__(spec)
        self._twin = twin
        self._channels = _channels(spec, twin.scene)
        self.lower = np.array([c.lower for c in self._channels])
        self.upper = np.array([c.upper for c in self._channels])
        self.connected = False
        self.enabled = False
        self._holding = False
        self._delay_steps = self._apply_dynamics()
        # (sim step at which it takes effect, actuator, ctrl): targets on their way to a servo
        self._in_flight: deque[tuple[int, int, float]] = deque()
        self._target = np.array(spec.home, dtype=np.float64)

    def _apply_dynamics(self) -> np.ndarray:
        """Write the preset's servo gains and damping into the model; each channel's command
        delay in physics steps."""
        overrides = spec_actuators(self.spec)
        known = {c.name for c in self._channels}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TwinError(
                f"robot '{self.spec.name}': twin.actuators names joint(s) {unknown} it does not "
                f"have (joints: {list(self.spec.joint_names)})"
            )
        m = self._twin.model
        dt = self._twin.config.physics_dt
        delays = np.zeros(len(self._channels), dtype=np.int64)
        for i, c in enumerate(self._channels):
            dyn = overrides.get(c.name)
            if dyn is None:
                continue
            where = f"robot '{self.spec.name}': twin.actuators.{c.name}"
            for key in ("kp", "damping"):
                value = getattr(dyn, key)
                if value is not None and not (math.isfinite(value) and value >= 0):
                    raise TwinError(f"{where}.{key}={value} must be a finite number >= 0")
            if not (math.isfinite(dyn.delay) and 0 <= dyn.delay <= 1.0):
                raise TwinError(f"{where}.delay={dyn.delay} must be in [0, 1] s")
            if dyn.kp is not None:
                m.actuator_gainprm[c.actuator, 0] = dyn.kp
                m.actuator_biasprm[c.actuator, 1] = -dyn.kp
            if dyn.damping is not None:
                m.dof_damping[c.dofadr] = dyn.damping
            delays[i] = round(dyn.delay / dt)
        return delays

    def _require(self, what: str, enabled: bool = False) -> None:
        if self._twin.closed:
            raise ArmError(f"{self.name}: {what} after the twin was closed")
        if not self.connected:
            raise ArmError(f"{self.name}: {what} before connect()")
        if enabled and not self.enabled:
            raise ArmError(f"{self.name}: {what} while disabled; call enable() first")

    def connect(self) -> None:
        if self._twin.closed:
            raise ArmError(f"{self.name}: connect() after the twin was closed")
        self.connected = True

    def enable(self) -> None:
        self._require("enable()")
        self.enabled = True

    def read(self) -> JointState:
        self._require("read()")
        return self._read_now()

    def _read_now(self) -> JointState:
        data = self._twin.data
        values = np.array([c.read(data) for c in self._channels])
        return JointState(
            stamp=self._twin.time,
            position=values[:, 0].copy(),
            velocity=values[:, 1].copy(),
            effort=values[:, 2].copy(),
        )

    def send(self, target: np.ndarray) -> np.ndarray:
        self._require("send()", enabled=True)
        q = np.asarray(target, dtype=np.float64).reshape(-1)
        if q.shape != (self.spec.dof,):
            raise ArmError(f"{self.name}: target has shape {q.shape}, expected ({self.spec.dof},)")
        if not np.all(np.isfinite(q)):
            raise ArmError(f"{self.name}: target is not finite: {q.tolist()}")
        sent = np.clip(q, self.lower, self.upper)
        self._command(sent)
        self._holding = False
        return sent

    def _command(self, q: np.ndarray) -> None:
        ctrl = self._twin.data.ctrl
        self._target = np.array(q, dtype=np.float64)
        now = self._twin._steps
        for c, value, delay in zip(self._channels, q, self._delay_steps, strict=True):
            if delay:
                self._in_flight.append((now + int(delay), c.actuator, c.to_ctrl(float(value))))
            else:
                ctrl[c.actuator] = c.to_ctrl(float(value))

    def _next_due(self) -> int | None:
        """The sim step at which the next delayed target reaches its servo (None: none)."""
        return min((at for at, _, _ in self._in_flight), default=None)

    def _deliver(self, step: int) -> None:
        """Hand every delayed target due by sim ``step`` to its servo, in the order sent."""
        ctrl = self._twin.data.ctrl
        kept: deque[tuple[int, int, float]] = deque()
        for item in self._in_flight:
            if item[0] <= step:
                ctrl[item[1]] = item[2]
            else:
                kept.append(item)
        self._in_flight = kept

    def hold(self) -> None:
        """Target the measured position, once: further holds keep that target (re-reading
        the position each time would let soft servos ratchet down under gravity)."""
        self._require("hold()")
        if not self._holding:
            self._command(np.clip(self._read_now().position, self.lower, self.upper))
            self._holding = True

    @property
    def commanded(self) -> np.ndarray:
        """The servo targets now in force, ``(D,)``, config units (what was last sent; with a
        command delay, the last sent even while it is still on its way)."""
        if self._delay_steps.any():
            return self._target.copy()
        ctrl = self._twin.data.ctrl
        return np.array([(ctrl[c.actuator] - c.ctrl_offset) / c.ctrl_scale for c in self._channels])

    def disable(self) -> None:
        if self.connected and not self._twin.closed:
            self.hold()
        self.enabled = False

    def close(self) -> None:
        self.enabled = False
        self.connected = False

    def _set_position(self, q: np.ndarray) -> None:
        """Teleport to ``q`` (reset only): joints and servo targets."""
        data = self._twin.data
        for c, value in zip(self._channels, q, strict=True):
            data.qpos[c.qposadr] = c.to_qpos(float(value))
            data.qvel[c.dofadr] = 0.0
        self._in_flight.clear()
        target = np.clip(q, self.lower, self.upper)
        self._target = np.array(target, dtype=np.float64)
        for c, value in zip(self._channels, target, strict=True):
            data.ctrl[c.actuator] = c.to_ctrl(float(value))
        self._holding = False

    def write_positions(self, data: mujoco.MjData, position: np.ndarray) -> None:
        """Write joint positions ``position`` (``(D,)``, config units) into ``data``, an
        ``MjData`` of the twin's model other than the twin's own: a kinematic copy in which a
        recorded state can be checked for contacts without touching the physics."""
        if data is self._twin.data:
            raise ArmError(f"{self.name}: write_positions() is for a copy, not the twin's data")
        for c, value in zip(self._channels, position, strict=True):
            data.qpos[c.qposadr] = c.to_qpos(float(value))

    def place(self, position: np.ndarray, velocity: np.ndarray | None = None) -> None:
        """Put the arm at ``position`` moving at ``velocity`` (``(D,)``, config units; None:
        at rest), servos targeting ``position``, nothing in flight; then recompute the
        derived state. For starting a replay from a recorded state; physics does the rest."""
        q = np.asarray(position, dtype=np.float64).reshape(-1)
        if q.shape != (self.spec.dof,) or not np.all(np.isfinite(q)):
            raise ArmError(f"{self.name}: place() needs a finite ({self.spec.dof},) position")
        self._set_position(q)
        if velocity is not None:
            v = np.asarray(velocity, dtype=np.float64).reshape(-1)
            if v.shape != (self.spec.dof,) or not np.all(np.isfinite(v)):
                raise ArmError(f"{self.name}: place() needs a finite ({self.spec.dof},) velocity")
            data = self._twin.data
            for c, value in zip(self._channels, v, strict=True):
                data.qvel[c.dofadr] = value * c.joint_scale
        mujoco.mj_forward(self._twin.model, self._twin.data)


def spec_actuators(spec: RobotSpec) -> dict:
    """The preset's ``twin.actuators`` (joint -> ActuatorDynamics); empty without a twin."""
    return dict(spec.twin.actuators) if spec.twin is not None else {}


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The twin's kinematic state at sim ``time`` (s): enough to render any camera.

    ``delayed``: for each camera with a ``sim.camera_delay``, the (earlier) state its frame
    of this moment shows."""

    time: float
    qpos: np.ndarray
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray
    delayed: Mapping[str, Snapshot] = field(default_factory=dict)

    def seen_by(self, camera: str) -> Snapshot:
        """The state ``camera``'s frame of this moment shows."""
        return self.delayed.get(camera, self)


def _renderer_for(
    cache: dict[tuple[int, int, bool], mujoco.Renderer],
    model: mujoco.MjModel,
    cam: CameraSpec,
    size: tuple[int, int],
    far: bool = False,
) -> mujoco.Renderer:
    """One renderer per image size ``(h, w)`` and model (the twin's or its far-view one),
    shadows and reflections off (CPU rendering)."""
    key = (*size, far)
    renderer = cache.get(key)
    if renderer is None:
        try:
            renderer = mujoco.Renderer(model, height=size[0], width=size[1])
        except mujoco.FatalError as exc:
            raise TwinError(
                f"render('{cam.name}'): no OpenGL context ({exc}); without a display set "
                "MUJOCO_GL=egl (or osmesa) before anything imports mujoco"
            ) from exc
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        cache[key] = renderer
    return renderer


def has_camera_aspect(cam: CameraSpec, h: int, w: int) -> bool:
    """Whether a ``(h, w)`` render keeps ``cam``'s aspect (a pixel of rounding allowed): only
    then does the twin render at that size directly; another aspect would crop the view."""
    return abs(h * cam.width - w * cam.height) <= max(cam.width, cam.height)


def _frame_size(model: mujoco.MjModel, cam: CameraSpec, size: Any) -> tuple[int, int]:
    """``size`` checked: ``(h, w)`` of the camera's aspect (a pixel of rounding allowed), no
    larger than the offscreen buffer; None is the camera's configured size."""
    if size is None:
        return (cam.height, cam.width)
    try:
        h, w = (int(v) for v in size)
        ok = (h, w) == tuple(size) and h > 0 and w > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise TwinError(f"render('{cam.name}'): size={size!r} must be (height, width) in pixels")
    if not has_camera_aspect(cam, h, w):
        raise TwinError(
            f"render('{cam.name}'): size (h, w)=({h}, {w}) does not have the camera's aspect "
            f"{cam.width}x{cam.height} (the same fovy would crop, not scale, the view; resize "
            "a frame of the camera's aspect instead)"
        )
    buf_w, buf_h = model.vis.global_.offwidth, model.vis.global_.offheight
    if h > buf_h or w > buf_w:
        raise TwinError(
            f"render('{cam.name}'): size (h, w)=({h}, {w}) exceeds the offscreen buffer "
            f"{buf_w}x{buf_h}"
        )
    return (h, w)


def _render_frame(
    cache: dict[tuple[int, int, bool], mujoco.Renderer],
    model: mujoco.MjModel,
    data: mujoco.MjData,
    cam: CameraSpec,
    cam_id: int,
    size: Any,
    far_model: Callable[[], mujoco.MjModel | None] | None = None,
) -> np.ndarray:
    """One RGB frame of ``cam`` at ``size`` (see :meth:`Twin.render`); ``far_model`` gives
    the far-view model, built on first use (None: there is none)."""
    h, w = _frame_size(model, cam, size)
    shape = (h, w)
    draw = model
    if h < cam.height:
        # supersampled, but never to more pixels than the camera's own frame
        k = min(SUPERSAMPLE, cam.height // h, cam.width // w)
        shape = (k * h, k * w) if k >= 2 else (cam.height, cam.width)
        fixed_in_world = model.body_weldid[model.cam_bodyid[cam_id]] == 0
        if far_model is not None and fixed_in_world:
            draw = far_model() or model
    renderer = _renderer_for(cache, draw, cam, shape, far=draw is not model)
    renderer.update_scene(data, camera=cam_id)
    frame = renderer.render()
    if shape == (h, w):
        return frame
    import cv2  # lazily: only a small frame needs it

    # INTER_AREA: at a whole factor the mean over each k x k block (a box filter), otherwise
    # the area-weighted mean, antialiased either way
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)


def _pose_data(model: mujoco.MjModel, data: mujoco.MjData, snap: Snapshot) -> None:
    """Put ``snap``'s state into ``data`` and update what a render reads (poses, lights)."""
    data.qpos[:] = snap.qpos
    data.mocap_pos[:] = snap.mocap_pos
    data.mocap_quat[:] = snap.mocap_quat
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)


class SnapshotRenderer:
    """Renders :class:`Snapshot` s of a twin off the control thread.

    It has its own ``MjData`` and GL contexts, so physics can step while it renders. A GL
    context belongs to the thread that made it: create, use and close this object on one thread.
    """

    def __init__(self, twin: Twin) -> None:
        self._twin = twin
        self._data = mujoco.MjData(twin.model)
        self._renderers: dict[tuple[int, int, bool], mujoco.Renderer] = {}

    def render(
        self, camera: str, snap: Snapshot, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """``camera``'s frame of ``snap``; ``size`` as in :meth:`Twin.render`."""
        cam, cam_id = self._twin._camera(camera)
        m, d = self._twin.model, self._data
        _pose_data(m, d, snap.seen_by(camera))
        return _render_frame(self._renderers, m, d, cam, cam_id, size, self._twin._far_view_model)

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()


class Twin:
    """The twin of one robot doing one task family. See the module docstring.

    Public attributes: ``spec``, ``config``, ``task_config``, ``scene``, ``model`` and
    ``data`` (MuJoCo's; read them, never step them yourself), ``task``, ``arm``,
    ``instruction`` (of the current episode), ``setup`` (what the last reset decided).
    """

    def __init__(
        self, spec: RobotSpec, config: TwinConfig | None = None, task: TaskConfig | None = None
    ) -> None:
        self.spec = spec
        self.config = config or TwinConfig()
        self.task_config = task or TaskConfig()
        self.task_config.validate()
        period = spec.control_period
        steps = period / self.config.physics_dt
        if round(steps) < 1 or abs(steps - round(steps)) > 1e-6:
            raise TwinError(
                f"control period {period} s (control_hz={spec.control_hz}) is not a whole number "
                f"of physics steps of {self.config.physics_dt} s"
            )
        self.scene: Scene = self._build_scene(self.config.render_mesh_tolerance)
        self.model = self.scene.model
        self.data = mujoco.MjData(self.model)
        self.task = make_task(self.task_config, self.scene.layout)
        self.closed = False
        self.arm = SimArm(spec, self)
        self.instruction = ""
        self.setup: EpisodeSetup | None = None
        self._steps = 0
        self._episodes = 0
        self._renderers: dict[tuple[int, int, bool], mujoco.Renderer] = {}
        self._far_model: mujoco.MjModel | None = None
        self._far_model_built = False
        self._far_lock = threading.Lock()
        self._cameras: dict[str, CameraSpec] = {c.name: c for c in spec.cameras}
        unknown = sorted(set(self.config.camera_delay) - set(self._cameras))
        if unknown:
            raise TwinError(
                f"sim.camera_delay names camera(s) {unknown} the robot does not have "
                f"(cameras: {sorted(self._cameras)})"
            )
        self._delays = {k: float(v) for k, v in self.config.camera_delay.items() if v > 0}
        # past states, one per physics step, as far back as the longest camera delay
        self._history: deque[Snapshot] | None = None
        if self._delays:
            depth = math.ceil(max(self._delays.values()) / self.config.physics_dt) + 2
            self._history = deque(maxlen=depth)
        self._delay_data: mujoco.MjData | None = None
        m = self.model
        self._cube_qposadr = {
            name: int(m.jnt_qposadr[m.joint(name).id]) for name in self.scene.cube_names
        }
        self._bin_mocap = int(m.body_mocapid[m.body(BIN).id]) if self.scene.with_bin else -1
        self.arm._set_position(spec.home)
        mujoco.mj_forward(m, self.data)
        self._remember()

    # -- time ---------------------------------------------------------------------------------

    @property
    def physics_dt(self) -> float:
        return self.config.physics_dt

    @property
    def time(self) -> float:
        """Sim time (s): whole physics steps since construction."""
        return self._steps * self.config.physics_dt

    def step(self, dt: float) -> None:
        """Advance physics by exactly ``dt`` seconds, a whole number of physics steps."""
        self._require_open("step()")
        n = round(dt / self.config.physics_dt)
        if n < 1 or abs(n * self.config.physics_dt - dt) > 1e-9 * max(1.0, abs(dt)):
            raise TwinError(
                f"step(dt={dt}): dt must be a positive whole number of physics steps of "
                f"{self.config.physics_dt} s"
            )
        end = self._steps + n
        due = self.arm._next_due()
        while due is not None and due < end:  # delayed servo targets land between steps
            if due > self._steps:
                self._physics(due - self._steps)
                self._steps = due
            self.arm._deliver(self._steps)
            due = self.arm._next_due()
        if end > self._steps:
            self._physics(end - self._steps)
        self._steps = end

    def _physics(self, n: int) -> None:
        """``n`` physics steps from ``self._steps``; with a delayed camera, one at a time, the
        state after each remembered."""
        if self._history is None:
            mujoco.mj_step(self.model, self.data, nstep=n)
            return
        for i in range(1, n + 1):
            mujoco.mj_step(self.model, self.data)
            self._remember((self._steps + i) * self.config.physics_dt)

    # -- episodes -----------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> str:
        """A new randomised scene with the arm at home; returns the instruction.

        ``seed=None`` draws episode ``k`` (0, 1, ...) from ``task.seed + k``. Sim time keeps
        running. The arm keeps its connected/enabled state and targets its home pose.
        """
        self._require_open("reset()")
        if seed is None:
            seed = self.task_config.seed + self._episodes
        self._episodes += 1
        setup = self.task.sample(int(seed))
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        self.arm._set_position(self.spec.home)
        half = self.scene.layout.cube_size / 2
        # with the calibration board shown the workspace is cleared for it, as a person
        # clears a real one: the task's objects stay parked behind the robot
        placed = {} if self.config.show_board else setup.cubes
        for name, (x, y, yaw) in placed.items():
            adr = self._cube_qposadr[name]
            d.qpos[adr : adr + 3] = (x, y, half)
            d.qpos[adr + 3 : adr + 7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        if setup.bin is not None and not self.config.show_board:
            d.mocap_pos[self._bin_mocap] = (setup.bin[0], setup.bin[1], 0.0)
        mujoco.mj_forward(m, d)
        self._remember()  # a delayed camera still shows the old scene for its delay
        self.setup = setup
        self.instruction = setup.instruction
        log.info("twin reset (seed %d): %s", seed, self.instruction)
        return self.instruction

    def objects(self) -> dict[str, ObjectPose]:
        """Ground truth of every task object, base frame. Cubes: ``cube_<color>``; the bin
        (pick_place scenes): ``bin``, its pose the centre of its bounding box."""
        d = self.data
        edge = self.scene.layout.cube_size
        out: dict[str, ObjectPose] = {}
        for color in self.scene.colors:
            name = cube_name(color)
            adr = self._cube_qposadr[name]
            quat = d.qpos[adr + 3 : adr + 7]
            out[name] = ObjectPose(
                name=name,
                position=d.qpos[adr : adr + 3].copy(),
                quaternion=quat / np.linalg.norm(quat),
                size=np.full(3, edge),
                rgba=np.array(COLORS[color]),
            )
        if self._bin_mocap >= 0:
            lay = self.scene.layout
            outer = lay.bin_inner + 2 * lay.bin_wall
            out[BIN] = ObjectPose(
                name=BIN,
                position=d.mocap_pos[self._bin_mocap] + np.array([0.0, 0.0, lay.bin_height / 2]),
                quaternion=np.array([1.0, 0.0, 0.0, 0.0]),
                size=np.array([outer, outer, lay.bin_height]),
                rgba=np.array(BIN_RGBA),
            )
        return out

    def success(self) -> bool:
        """Whether the current episode's goal holds (ground truth); False before a reset."""
        if self.setup is None:
            return False
        return self.task.success(self.setup, self.objects())

    # -- cameras ------------------------------------------------------------------------------

    def _camera(self, camera: str) -> tuple[CameraSpec, int]:
        cam = self._cameras.get(camera)
        if cam is None:
            raise TwinError(
                f"robot '{self.spec.name}' has no camera '{camera}' "
                f"(cameras: {sorted(self._cameras)})"
            )
        return cam, int(self.model.camera(camera).id)

    def render(self, camera: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB from ``camera``, current state.

        ``size``: ``(h, w)`` for a frame of another size than the camera's (a policy's input
        size), the same view (same fovy and aspect; a pixel of rounding allowed). None: the
        camera's configured size, the one recorded and shown to a person. Consumers that
        shrink frames anyway should ask for their size here rather than resize a full frame:
        rendering fewer pixels is what costs less on a CPU. A frame asked smaller than the
        camera's size is rendered :data:`SUPERSAMPLE` times larger (at most at the camera's
        size) and box-filtered down: a frame rendered directly at the small size has no
        antialiasing (``offsamples=0``), so edges and thin parts alias and the pixels drift
        from an antialiased resize of the full frame (what the policy was trained on). At
        96x72 from 320x240, against ``policy.data.resize_frames`` of the full frame: mean abs
        error 2.9-4.0 rendered directly, 1.7-1.9 supersampled, for 1.3x the direct cost
        (3.6 against 2.8 ms on the SO-101's front camera; ``tests/robot/test_twin_render.py``).

        Such a small frame from a camera fixed in the world draws the robot's meshes decimated
        to ``far_view_mesh_tolerance`` (2 mm by default, against 0.2 mm): from the front
        camera a pixel of 96x72 spans about 5 mm of the arm, so the coarser copies move the
        frame's error against the resized full frame from 1.79 to 2.00 and save about a third
        of its cost; the SO-101 twin with both cameras at 96x72 runs at 11.1x real time,
        against 8.6x with the fine copies only (``bench/sim.py``). A camera on the arm keeps
        the fine copies: the jaws fill the wrist view, where 1 mm is already a pixel (error
        5.3 against 1.9). Full-size frames, recorded and shown to people, always draw the fine
        copies.
        """
        self._require_open("render()")
        if not self.config.render:
            raise TwinError("render(): rendering is off (TwinConfig.render=False)")
        cam, cam_id = self._camera(camera)
        data = self.data
        if camera in self._delays:
            if self._delay_data is None:
                self._delay_data = mujoco.MjData(self.model)
            data = self._delay_data
            _pose_data(self.model, data, self._delayed(camera))
        return _render_frame(
            self._renderers, self.model, data, cam, cam_id, size, self._far_view_model
        )

    def _remember(self, when: float | None = None) -> None:
        """Keep the current state, as of sim time ``when`` (default: now), for the delayed
        cameras (nothing without one)."""
        if self._history is not None:
            d = self.data
            t = self.time if when is None else when
            self._history.append(
                Snapshot(t, d.qpos.copy(), d.mocap_pos.copy(), d.mocap_quat.copy())
            )

    def _delayed(self, camera: str) -> Snapshot:
        """The remembered state nearest to ``time - delay`` of ``camera`` (the oldest one while
        the twin has not yet run for that long)."""
        assert self._history is not None
        when = self.time - self._delays[camera]
        return min(self._history, key=lambda snap: abs(snap.time - when))

    def _build_scene(self, render_mesh_tolerance: float) -> Scene:
        """This twin's scene (robot, task objects, cameras), its render meshes at
        ``render_mesh_tolerance``: the twin's own, and the far view's copy."""
        return build_scene(
            self.spec,
            cameras=self.spec.cameras,
            colors=self.task_config.colors,
            with_bin=TASKS[self.task_config.name].needs_bin,
            physics_dt=self.config.physics_dt,
            render_mesh_tolerance=render_mesh_tolerance,
            board=self.config.board if self.config.show_board else None,
        )

    def _far_view_model(self) -> mujoco.MjModel | None:
        """The same scene with the robot's render meshes at ``far_view_mesh_tolerance``,
        compiled once on first use (None when off or the same as the twin's). Only its meshes
        differ, so it draws the twin's ``MjData`` as it is; physics never sees it."""
        with self._far_lock:
            if self._far_model_built:
                return self._far_model
            self._far_model_built = True
            far = self.config.far_view_mesh_tolerance
            fine = self.config.render_mesh_tolerance
            if far and fine and far != fine:
                scene = self._build_scene(far)
                m, f = self.model, scene.model
                same = (m.nq, m.nbody, m.ngeom, m.ncam, m.nmocap) == (
                    f.nq,
                    f.nbody,
                    f.ngeom,
                    f.ncam,
                    f.nmocap,
                )
                if same:
                    self._far_model = f
                else:  # never expected: a scene build that is not deterministic
                    log.warning("far-view model differs from the twin's; drawing the twin's")
            return self._far_model

    def snapshot(self) -> Snapshot:
        """What a camera needs of the current state, copied (cheap): render it elsewhere with a
        :class:`SnapshotRenderer` while physics goes on."""
        d = self.data
        delayed = {camera: self._delayed(camera) for camera in self._delays}
        return Snapshot(self.time, d.qpos.copy(), d.mocap_pos.copy(), d.mocap_quat.copy(), delayed)

    def camera_info(self, camera: str, size: tuple[int, int] | None = None) -> CameraIntrinsics:
        """Pinhole intrinsics of ``camera`` from the model's fovy, at the configured size or at
        ``size`` ``(h, w)``, that of frames from ``render(camera, size=size)``."""
        cam, cam_id = self._camera(camera)
        height, width = _frame_size(self.model, cam, size)
        fovy = math.radians(float(self.model.cam_fovy[cam_id]))
        f = (height / 2.0) / math.tan(fovy / 2.0)
        return CameraIntrinsics(
            width=width,
            height=height,
            fx=f,
            fy=f,
            cx=(width - 1) / 2.0,
            cy=(height - 1) / 2.0,
            frame_id=f"{camera}_optical",
        )

    def camera_pose(self, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """Position ``(3,)`` and rotation ``(3, 3)`` of the optical frame in the base frame."""
        _, cam_id = self._camera(camera)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        rot = self.data.cam_xmat[cam_id].reshape(3, 3) @ _OPTICAL_FROM_MUJOCO
        return self.data.cam_xpos[cam_id].copy(), rot

    # -- lifecycle ----------------------------------------------------------------------------

    def _require_open(self, what: str) -> None:
        if self.closed:
            raise TwinError(f"{what} after close()")

    def close(self) -> None:
        """Release the renderers (GL contexts). Safe to call twice."""
        if self.closed:
            return
        self.arm.close()
        for renderer in self._renderers.values():
            try:
                renderer.close()
            except Exception:  # a failing GL teardown must not mask the caller's cleanup
                log.debug("renderer.close() failed", exc_info=True)
        self._renderers.clear()
        self.closed = True

    def __enter__(self) -> Twin:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
