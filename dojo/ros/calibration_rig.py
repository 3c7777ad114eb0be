"""A calibration rig over the ROS 2 graph: what ``dojo calibrate`` moves a robot through.

Why over the graph: a real arm can only be calibrated through its driver, and the twin is
calibrated the same way so that what the benchmark measures is what a robot gets. The
procedures (``calibration.procedures``) only read joints, move the arm and take frames; this
object does those three things on topics (``dojo.ros.topics``), nothing else::

    joint_states                 read(): the newest state; when the arm is still (settle)
    camera/<name>/image_raw      capture(): the first frame stamped frame_margin after the arm
                                 came to rest, and the joint state of that moment
    command/chunk                move() / excite(): a schedule of joint targets on ROS time,
                                 streamed as JointTrajectory chunks of ``window`` s, each
                                 stamped with the newest joint state, source SCRIPT; the
                                 driver's SafetyLimits, executor and watchdog judge each one
                                 as they judge a policy's
    driver/command               what the driver actually sent (the latency's command signal)
    driver/status                an e-stop or a refused chunk ends the wait, saying so

Every wait is bounded in wall time (``calibrate.graph.timeout`` beyond the motion's own
length) and also ends when ``alive()`` reports a node of the graph gone. One clock: the
stamps of the messages (ROS time; sim time next to the twin, whatever its pace); the wall clock
only bounds the waits. A schedule is a function of ROS time, so overlapping chunks agree
wherever they overlap, whatever blend rule the executor runs (latest, ensemble, rtc); and a
lockstep twin, which waits for the next chunk whenever fewer than its minimum horizon is
queued, runs exactly as fast as this rig streams.

The geometry prior (``geometry``, ``on_arm``, ``self_mask``, ``nominal_intrinsics``) is the
robot's description (``calibration.description``), never the twin's state: over the twin it
is perturbed as the in-process rig's is, since there the description is the truth.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor

from calibration.config import CalibrateConfig
from calibration.description import Description, camera_image_size
from calibration.errors import CalibrationError
from calibration.motion import glide
from calibration.poses import ViewGeometry
from calibration.twin_rig import Excitation
from dojo.ros import convert, topics
from robot.schema import ActionChunk, ControlSource, JointState, RobotSpec
from robot.sim.config import BoardConfig

Alive = Callable[[], str | None]


class _Schedule:
    """Joint targets on ROS time: ``rows[k]`` due at ``t0 + k dt``, ``rows[0]`` before, the
    last row held after."""

    def __init__(self, t0: float, rows: np.ndarray, dt: float) -> None:
        self.t0 = t0
        self.rows = np.asarray(rows, dtype=np.float64)
        self.dt = dt

    @property
    def end(self) -> float:
        return self.t0 + (len(self.rows) - 1) * self.dt

    def at(self, due: np.ndarray) -> np.ndarray:
        k = np.clip(np.rint((due - self.t0) / self.dt).astype(int), 0, len(self.rows) - 1)
        return self.rows[k]


class GraphRig:
    """A :class:`calibration.procedures.Rig` over the graph of ``spec``'s driver.

    ``description``: the robot's described cameras (``calibration.description``);
    ``domain_id`` / ``namespace``: the graph's (None: the environment's); ``command_deadline``:
    the driver's (``driver.command_deadline``), what the chunk publisher offers; ``alive``:
    None while the graph runs, else why it is gone (a supervisor's poll); ``twin_delay``: the
    camera delays the twin was started with (its truth), None on a real robot.
    """

    def __init__(
        self,
        spec: RobotSpec,
        config: CalibrateConfig,
        description: Description,
        *,
        domain_id: int | None = None,
        namespace: str = "",
        command_deadline: float = 0.5,
        alive: Alive | None = None,
        twin_delay: dict[str, float] | None = None,
    ) -> None:
        self.spec = spec
        self.config = config
        self.graph = config.graph
        self.speed = config.speed
        self.description = description
        self.kin = description.kin
        self.twin_delay = twin_delay
        self._alive = alive or (lambda: None)
        self._dt = spec.control_period
        self._fixed_joints = (
            [spec.joint_names.index(spec.gripper_joint)] if spec.gripper_joint else []
        )
        # buffers sized from rates: the longest motion recorded whole is the latency swing
        keep_s = config.latency.duration + 1.0 + 10.0
        self._lock = threading.Lock()
        self._states: deque[JointState] = deque(maxlen=math.ceil(2 * keep_s * spec.control_hz))
        self._commands: deque[tuple[float, np.ndarray, ControlSource]] = deque(
            maxlen=math.ceil(2 * keep_s * spec.control_hz)
        )
        self._frames: dict[str, deque] = {}
        self._frame_keep = {c.name: math.ceil(1.5 * keep_s * c.fps) for c in spec.cameras}
        self._still_since = -math.inf
        self._status: dict = {}
        self._refusals: list[str] = []
        self._visited: list[np.ndarray] = []  # joint positions heard while this rig moved
        self._moving = False
        self._schedule: _Schedule | None = None
        self._sent_until = -math.inf

        self.context = rclpy.Context()
        kwargs = {} if domain_id is None or domain_id < 0 else {"domain_id": int(domain_id)}
        rclpy.init(context=self.context, **kwargs)
        self.node = rclpy.create_node(
            "calibration", namespace=namespace.strip("/") or None, context=self.context
        )
        topics.JOINT_STATES.subscription(self.node, self._on_state)
        topics.DRIVER_COMMAND.subscription(self.node, self._on_command)
        topics.DRIVER_STATUS.subscription(self.node, self._on_status)
        self._chunks = topics.command_chunk(command_deadline).publisher(self.node)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name="calibration-ros", daemon=True)
        self._thread.start()

    # -- the transport ----------------------------------------------------------------------

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self._executor.spin_once(timeout_sec=0.05)
            except Exception:
                if not self.context.ok():
                    return
                raise

    def _on_state(self, msg) -> None:
        state = convert.joint_state_from_msg(msg, self.spec.joint_names)
        with self._lock:
            if self._states and state.stamp <= self._states[-1].stamp:
                return  # a reordered or repeated sample
            self._states.append(state)
            moving = np.max(np.abs(state.velocity)) > self.graph.still_velocity
            if moving or not math.isfinite(self._still_since):
                self._still_since = state.stamp
            if self._moving:
                self._visited.append(state.position)

    def _on_command(self, msg) -> None:
        stamp, position, source = convert.command_from_msg(msg, self.spec.joint_names)
        with self._lock:
            self._commands.append((stamp, position, source))

    def _on_status(self, msg) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            seen, before = bool(self._status), self._status.get("refused", 0)
            self._status = status
            if seen and status.get("refused", 0) > before and status.get("last_refusal"):
                self._refusals.append(str(status["last_refusal"]))

    def _on_frame(self, camera: str, msg) -> None:
        with self._lock:
            self._frames[camera].append(msg)

    def _watch(self, camera: str) -> None:
        """Subscribe to ``camera``'s frames (once)."""
        self.image_size(camera)
        if camera in self._frames:
            return
        with self._lock:
            self._frames[camera] = deque(maxlen=self._frame_keep[camera])
        topics.camera_image(camera).subscription(
            self.node, lambda msg, c=camera: self._on_frame(c, msg)
        )

    def _latest(self) -> JointState | None:
        with self._lock:
            return self._states[-1] if self._states else None

    def _check(self) -> None:
        gone = self._alive()
        if gone:
            raise CalibrationError(f"the graph stopped: {gone}")
        if not self.context.ok():
            raise CalibrationError("the ROS context was shut down (Ctrl-C?)")
        with self._lock:
            status = dict(self._status)
        if status.get("estop"):
            raise CalibrationError(
                f"the driver latched an e-stop ({status.get('estop_reason')}): the arm holds; "
                "reset it (estop/reset) once the workspace is safe, then run this again"
            )

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Pump the schedule until ``done()``; CalibrationError after ``timeout`` wall s."""
        end = time.monotonic() + timeout
        while not done():
            self._check()
            self._pump()
            if time.monotonic() > end:
                with self._lock:
                    refused = self._refusals[-1] if self._refusals else ""
                    status = dict(self._status)
                hint = f"; the driver refused a chunk: {refused}" if refused else ""
                if status.get("arm_fault"):
                    hint += f"; arm fault: {status['arm_fault']}"
                raise CalibrationError(
                    f"robot '{self.spec.name}': no {what} within {timeout:.0f} s{hint}"
                )
            time.sleep(0.005)

    # -- the schedule -----------------------------------------------------------------------

    def _start(self, rows: np.ndarray) -> _Schedule:
        """Run ``rows`` (one per control period) from ``lead`` after the newest state on."""
        now = self._latest().stamp
        lead = self._dt * math.ceil(self.graph.lead / self._dt - 1e-9)
        self._schedule = _Schedule(now + lead, rows, self._dt)
        self._sent_until = -math.inf
        self._moving = True
        self._pump()
        return self._schedule

    def _pump(self) -> None:
        """Send the schedule's next ``window`` once less than half of it is left queued."""
        schedule, state = self._schedule, self._latest()
        if schedule is None or state is None:
            return
        if self._sent_until - state.stamp > self.graph.window / 2:
            return
        steps = max(2, math.floor(self.graph.window / self._dt + 1e-9))
        due = state.stamp + self._dt * np.arange(1, steps + 1)
        chunk = ActionChunk(
            stamp=state.stamp,
            joint_names=self.spec.joint_names,
            positions=schedule.at(due),
            times=due - state.stamp,
            source=ControlSource.SCRIPT,
        )
        self._chunks.publish(convert.chunk_to_msg(chunk))
        self._sent_until = float(due[-1])

    def _last_command(self) -> np.ndarray:
        """What the driver last sent (where its aim is), else where the arm is."""
        with self._lock:
            if self._commands:
                return self._commands[-1][1].copy()
        return self._latest().position.copy()

    # -- the Rig protocol -------------------------------------------------------------------

    def connect(self, cameras: list[str]) -> None:
        """Wait (bounded) for the driver's joint states, its chunk subscription and a frame
        of each of ``cameras``."""
        timeout = self.graph.start_timeout
        self._wait(lambda: self._latest() is not None, timeout, "joint_states from the driver")
        self._wait(lambda: self._chunks.get_subscription_count() > 0, timeout, "driver listening")
        for camera in cameras:
            self._watch(camera)
            self._wait(lambda c=camera: bool(self._frames[c]), timeout, f"frame of '{camera}'")

    def read(self) -> JointState:
        state = self._latest()
        if state is None:
            self._wait(lambda: self._latest() is not None, self.graph.timeout, "joint state")
            state = self._latest()
        return state

    def move(self, q: np.ndarray) -> JointState:
        """Go to ``q`` on a straight joint-space path at ``speed`` of the velocity limits,
        then hold until the arm is still; re-aimed (up to 3 times) by what a servo sagging
        under gravity missed, as the in-process rig does."""
        q = np.asarray(q, dtype=np.float64)
        target = q.copy()
        state = self._go(self._last_command(), target)
        for _ in range(3):
            miss = q - state.position
            miss[self._fixed_joints] = 0.0
            if np.max(np.abs(miss)) < self.graph.tolerance:
                break
            aim = np.clip(target + miss, self.spec.position_lower, self.spec.position_upper)
            ee = self.kin(aim)
            lo, hi = self.spec.workspace_lower, self.spec.workspace_upper
            if np.any(ee < lo) or np.any(ee > hi):  # the safety layer would hold: stay short
                break
            state = self._go(target, aim)
            target = aim
        return state

    def _go(self, start: np.ndarray, goal: np.ndarray, timeout_s: float = 8.0) -> JointState:
        rows = np.vstack([start, glide(start, goal, self.spec, self.speed)])
        schedule = self._start(rows)
        end, settle = schedule.end, self.graph.settle

        def settled() -> bool:
            state = self._latest()
            with self._lock:
                still = self._still_since
            return state.stamp >= end and state.stamp - max(still, end) >= settle

        def gave_up() -> bool:
            return self._latest().stamp > end + timeout_s

        wall = self.graph.timeout + 2 * (end - self._latest().stamp) + timeout_s
        self._wait(lambda: settled() or gave_up(), wall, "rest at the planned pose")
        state = self._latest()
        if not settled():
            raise CalibrationError(
                f"robot '{self.spec.name}': the arm did not come to rest at "
                f"{goal.round(3).tolist()} within {timeout_s} s"
            )
        return state

    def capture(self, camera: str) -> tuple[np.ndarray, JointState]:
        """The first frame of ``camera`` stamped ``frame_margin`` after the newest joint state
        (the arm at rest), and the joint state nearest its stamp."""
        self._watch(camera)
        after = self._latest().stamp + self.graph.frame_margin
        frames = self._frames[camera]

        def found():
            with self._lock:
                return next((m for m in frames if convert.from_time(m.header.stamp) >= after), None)

        wall = self.graph.timeout + 2 * self.graph.frame_margin
        self._wait(lambda: found() is not None, wall, f"frame of '{camera}' at rest")
        image, stamp = convert.image_from_msg(found())
        return image, self._state_at(stamp)

    def _state_at(self, stamp: float) -> JointState:
        with self._lock:
            states = list(self._states)
        return min(states, key=lambda s: abs(s.stamp - stamp))

    def excite(
        self, center: np.ndarray, joint: int, offsets: np.ndarray, cameras: list[str]
    ) -> Excitation:
        """Command the aim at ``center`` plus ``offsets[k]`` on ``joint``, one per control
        period, through the driver; the commands it sent (``driver/command``), the joint
        states and each camera's frames over the swing, stamped as they were published."""
        for camera in cameras:
            self._watch(camera)
        aim = self._last_command()
        if np.max(np.abs(aim - np.asarray(center))) > 0.1:
            aim = np.asarray(center, dtype=np.float64)
        rows = np.repeat(aim[None, :], len(offsets), axis=0)
        rows[:, joint] += offsets
        schedule = self._start(rows)
        t0, t1 = schedule.t0, schedule.end

        def recorded() -> bool:
            if self._latest().stamp < t1:
                return False
            with self._lock:
                return all(
                    self._frames[c] and convert.from_time(self._frames[c][-1].header.stamp) >= t1
                    for c in cameras
                )

        wall = self.graph.timeout + 2 * (t1 - self._latest().stamp)
        self._wait(recorded, wall, "recording of the swing")
        with self._lock:
            commands = [(t, p[joint]) for t, p, _ in self._commands if t0 <= t <= t1]
            states = [(s.stamp, s.position[joint]) for s in self._states if t0 <= s.stamp <= t1]
            msgs = {c: list(self._frames[c]) for c in cameras}
        if not commands or not states:
            raise CalibrationError(
                f"robot '{self.spec.name}': the swing's driver/command or joint_states were not "
                "heard (is the driver's status/command topic published?)"
            )
        rec = Excitation(
            joint,
            np.array([t for t, _ in commands]),
            np.array([v for _, v in commands]),
            np.array([t for t, _ in states]),
            np.array([v for _, v in states]),
        )
        for camera, frames in msgs.items():
            rec.frames[camera] = []
            for msg in frames:
                image, stamp = convert.image_from_msg(msg)
                if t0 <= stamp <= t1:
                    rec.frames[camera].append((stamp, image))
        return rec

    def image_size(self, camera: str) -> tuple[int, int]:
        return camera_image_size(self.spec, camera)

    def on_arm(self, camera: str) -> bool:
        return self.description.on_arm(camera)

    def geometry(self, camera: str, board: BoardConfig) -> ViewGeometry:
        return self.description.geometry(camera, board, self.read().position)

    def self_mask(self, camera: str) -> np.ndarray | None:
        return self.description.self_mask(camera, self.read().position, self.image_size(camera))

    def nominal_intrinsics(self, camera: str) -> np.ndarray:
        return self.description.intrinsics(camera)

    # -- what a run reports -----------------------------------------------------------------

    @property
    def visited(self) -> list[np.ndarray]:
        """End-effector positions (base frame) of every joint state heard while moving."""
        with self._lock:
            qs = list(self._visited)
        return [self.kin(q) for q in qs]

    def workspace_violation(self) -> float:
        """The furthest (m) any heard end-effector position was outside the box (0: none)."""
        p = np.asarray(self.visited)
        if not len(p):
            return 0.0
        lo = np.asarray(self.spec.workspace_lower) - p
        hi = p - np.asarray(self.spec.workspace_upper)
        return float(max(0.0, lo.max(), hi.max()))

    @property
    def safety_events(self) -> list[str]:
        """The driver's refusals of this rig's chunks (its e-stops end the run instead)."""
        with self._lock:
            return list(self._refusals)

    # -- the twin's truth, where the graph runs the twin ------------------------------------

    def true_intrinsics(self, camera: str):
        """The twin's camera model (its description is its truth); None on a real robot."""
        if self.twin_delay is None:
            return None
        return self.description._model_twin.camera_info(camera)

    def true_base_from_camera(self, camera: str) -> np.ndarray | None:
        if self.twin_delay is None:
            return None
        return self.description.base_from_camera(camera, self.read().position)

    def true_ee_from_camera(self, camera: str) -> np.ndarray | None:
        if self.twin_delay is None:
            return None
        return self.description.ee_from_camera(camera, self.read().position)

    def close(self) -> None:
        """Stop streaming (the driver holds once the last chunk runs out) and leave the graph."""
        self._schedule = None
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)
        self._executor.shutdown(timeout_sec=5)
        self.node.destroy_node()

    def __enter__(self) -> GraphRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
