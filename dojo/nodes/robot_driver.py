"""``robot_driver``: the arm (twin or real), SafetyLimits, ChunkExecutor and the control loop.

A lifecycle node (``lifecycle_py``'s pattern)::

    configure   build the arm from the robot preset and open it (twin: compose the scene)
    activate    enable motion, start the control thread
    deactivate  stop the control thread; the arm holds
    cleanup     close the arm

With ``autostart:=true`` (what ``dojo run`` passes) it configures and activates itself;
otherwise a lifecycle manager drives it through ``robot_driver/change_state``.

Topics (relative, so a namespace per robot works; ARCHITECTURE.md section 2)::

    publishes   joint_states, robot_description (the URDF from the MJCF, latched),
                driver/command (what was actually sent, frame_id = source),
                driver/plan (trajectory_msgs/JointTrajectory: the policy targets the executor
                will run, one per tick, if no new chunk arrives), driver/status (JSON),
                camera/<name>/image_raw + camera_info (twin),
                /clock, task/instruction, task/success, sim/objects (twin)
    subscribes  command/chunk, command/teleop, intervention/active, estop
    services    estop/reset, sim/reset (twin)

Command topics request no QoS deadline (``dojo.ros.qos``), so any default-QoS publisher (``ros2
topic pub``, a user's node) commands the driver; staleness is judged here, on stamps: the
executor refuses future-stamped chunks, drops past steps and holds when a chunk runs out, and
``command_gaps`` in ``driver/status`` counts silences longer than ``driver.command_deadline``.
When every publisher of ``command/chunk`` has gone (a crashed graph), the queued policy chunks
are dropped and the arm holds at once instead of finishing a dead policy's plan.

One graph per arm: configure first looks for another ``robot_driver`` in its namespace and a
``/clock`` publisher on its domain (a twin), and a twin also for any ``robot_driver`` on its
domain (``/clock`` is global: it would reach a real arm's graph in another namespace). It
refuses to start naming the other node and the way out (``ros.domain_id=``,
``ros.namespace=``), before any device or scene is opened.

``driver/plan`` is published whenever the plan changes (a policy chunk accepted, an
intervention, a reset), reliable and one deep, stamped with the observation stamp of the newest
policy chunk in it, its first point due when it was published: the policy node continues it as
the real-time-chunking prefix (``executor.blend=rtc``). ``driver/status`` goes out at
``driver.status_hz`` and at once when a policy chunk is refused, with the refused chunk's stamp
(``last_refusal_stamp``), so the policy node re-plans at once instead of waiting for the plan
it thinks is running to run out.

The node converts messages and calls library objects; the loop itself is
``robot.runtime.DriverLoop`` on a dedicated thread, never on an executor callback.
"""

from __future__ import annotations

import json
import threading
import time
import traceback

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rosgraph_msgs.msg import Clock
from std_msgs.msg import Bool, String
from trajectory_msgs.msg import JointTrajectory

from dojo import conf
from dojo.nodes.base import node_config, spin_node
from dojo.ros import convert, qos, topics
from robot.control import ControlLoop, TickResult
from robot.executor import ChunkExecutor
from robot.mjcf import ForwardKinematics
from robot.runtime import DriverLoop, LoopConfig
from robot.safety import SafetyLimits
from robot.schema import ControlSource, SchemaError


class RobotDriverNode(LifecycleNode):
    def __init__(self) -> None:
        super().__init__(DRIVER_NAME)
        self._listening_since = time.monotonic()  # discovery runs from here (GRAPH_CHECK_S)
        self.declare_parameter("config_file", "")
        self.declare_parameter("autostart", False)
        self._loop: DriverLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._twin = None
        self._arm = None
        self._pubs: dict[str, object] = {}
        self._subs: list[object] = []
        self._srvs: list[object] = []
        self._counts = {"refused": 0, "command_gaps": 0, "held_ticks": 0}
        self._last_command_t: float | None = None  # loop time of the newest command in
        self._in_gap = False
        self._had_chunk_publishers = False
        self._last_refusal = ""
        self._last_refusal_stamp: float | None = None  # header stamp of the refused chunk
        self._last_refusal_source = ""
        self._last_success: bool | None = None
        self._episode_seed = 0
        self.exit_code = 0
        if self.get_parameter("autostart").value:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                self.exit_code = 2
                raise RuntimeError("robot_driver: configure failed; see the log above")
            if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                self.exit_code = 2
                raise RuntimeError("robot_driver: activate failed; see the log above")

    # -- lifecycle ----------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (conf.ConfigError, SchemaError, ValueError) as err:
            self.get_logger().error(f"configure refused: {err}")
            return TransitionCallbackReturn.FAILURE
        except Exception as err:
            self.get_logger().error(f"configure failed: {err}\n{traceback.format_exc()}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        from omegaconf import OmegaConf

        from robot.arms.dh_kinematics import forward_kinematics
        from robot.arms.registry import make_arm

        cfg = node_config(self)
        self._cfg = cfg
        spec = conf.robot_spec(cfg)
        self._spec = spec
        sim = cfg.robot.driver == "sim"
        # before any scene or device is opened; reading the config counted as listening
        check_alone_on_graph(self, sim, since=self._listening_since)
        # Safety before anything can move: a spec without limits was refused by robot_spec().
        if sim:
            from robot.sim.twin import Twin

            self._twin = Twin(spec, conf.twin_config(cfg), conf.task_config(cfg))
            self._episode_seed = int(cfg.seed)
            self._twin.reset(seed=self._episode_seed)
        device = OmegaConf.to_container(cfg.robot.device, resolve=True)
        self._arm = make_arm(
            spec,
            cfg.robot.driver,
            device,
            twin=self._twin,
            clock=lambda: self.get_clock().now().nanoseconds * 1e-9,  # stamps in ROS time
        )
        self._arm.connect()  # a real arm checks its limits against the device here
        fk = (
            ForwardKinematics.for_robot(spec, cfg.robot.model)
            if sim
            else forward_kinematics(spec, cfg.robot.model)
        )
        self._safety = SafetyLimits(spec, fk)
        self._executor = ChunkExecutor(spec, conf.executor_config(cfg))
        self._control = ControlLoop(self._arm, self._safety, self._executor)
        self._lock = threading.RLock()
        self._loop = DriverLoop(
            self._control,
            spec,
            observer=self,
            config=self._loop_config(),
            twin=self._twin,
            clock=None if sim else (lambda: self.get_clock().now().nanoseconds * 1e-9),
            lock=self._lock,
        )
        deadline = float(cfg.driver.command_deadline)
        self._command_deadline = deadline
        p = self._pubs
        p["joint_states"] = topics.JOINT_STATES.publisher(self)
        p["command"] = topics.DRIVER_COMMAND.publisher(self)
        p["plan"] = topics.DRIVER_PLAN.publisher(self)
        p["status"] = topics.DRIVER_STATUS.publisher(self)
        p["clock"] = topics.CLOCK.publisher(self)
        p["instruction"] = topics.TASK_INSTRUCTION.publisher(self)
        p["success"] = topics.TASK_SUCCESS.publisher(self)
        p["objects"] = topics.SIM_OBJECTS.publisher(self)
        p["description"] = topics.ROBOT_DESCRIPTION.publisher(self)
        self._publish_description(spec)
        for cam in spec.cameras if sim else ():  # a real robot's cameras have their own nodes
            p[f"image/{cam.name}"] = topics.camera_image(cam.name).publisher(self)
            p[f"info/{cam.name}"] = topics.camera_info(cam.name).publisher(self)
        self._chunk_sub = topics.command_chunk(deadline).subscription(self, self._on_chunk)
        # intervention/active is latched (transient local) for late joiners, but the driver
        # asks only for volatile: a transient-local request refuses every volatile publisher
        # (``ros2 topic pub``'s default), and the driver starts before the intervention node
        intervention = topics.INTERVENTION_ACTIVE
        self._subs = [
            self._chunk_sub,
            topics.command_teleop(deadline).subscription(self, self._on_teleop),
            self.create_subscription(
                intervention.type, intervention.name, self._on_intervention, qos.COMMAND
            ),
            topics.ESTOP.subscription(self, self._on_estop),
        ]
        self._srvs = [
            topics.ESTOP_RESET.server(self, self._on_estop_reset),
            topics.SIM_RESET.server(self, self._on_sim_reset),
        ]
        self._status_timer = self.create_timer(1.0 / cfg.driver.status_hz, self._publish_status)
        self._publish_instruction()
        self.get_logger().info(
            f"configured {self._arm.name}: {spec.dof} joints at {spec.control_hz:g} Hz, "
            f"clock={cfg.sim.clock}, blend={self._executor.config.blend}"
        )

    def _loop_config(self) -> LoopConfig:
        """The control loop's pacing: the twin's clock (and its lockstep settings) in sim,
        the wall clock on a real arm."""
        if self._twin is None:
            return LoopConfig(clock="realtime")
        twin = self._twin.config
        return LoopConfig(
            clock=str(twin.clock),
            lockstep_min_horizon=twin.lockstep_min_horizon,
            lockstep_wait=twin.lockstep_wait,
        )

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._arm.enable()
        except Exception as err:  # the arm's own error names the device; the arm stays off
            self.get_logger().error(f"activate refused: enabling {self._arm.name} failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self._control.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_loop, name="control", daemon=True)
        self._thread.start()
        self.get_logger().info("active: control loop running")
        return super().on_activate(state)

    def _run_loop(self) -> None:
        try:
            self._loop.run(self._stop)
        except Exception as err:
            if not self.context.ok():
                # Ctrl-C: rclpy shut the context down under a publish; the loop held the arm.
                return
            self.get_logger().fatal(f"control loop stopped, arm held: {err}")
            self.exit_code = 1
            import rclpy

            rclpy.try_shutdown(context=self.context)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_loop()
        self.get_logger().info("inactive: arm holding")
        return super().on_deactivate(state)

    def _stop_loop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            with self._lock:
                self._loop.chunk_arrived.notify_all()
            self._thread.join(timeout=5.0)
            self._thread = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._close_arm()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.close()
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Hold first, then release the device; safe to call twice."""
        self._stop_loop()
        self._close_arm()

    def _close_arm(self) -> None:
        if self._arm is not None:
            try:
                self._arm.hold()
                self._arm.disable()
            finally:
                self._arm.close()
                self._arm = None
        if self._twin is not None:
            self._twin.close()
            self._twin = None

    # -- commands in --------------------------------------------------------------------------

    def _submit(self, msg: JointTrajectory, teleop: bool) -> None:
        default = ControlSource.HUMAN if teleop else ControlSource.POLICY
        source = "teleop" if teleop else "policy"
        with self._lock:
            now = self._loop.now
            try:
                chunk = convert.chunk_from_msg(msg, default)
            except SchemaError as err:
                self._refused(f"chunk refused: {err}", msg, source)
                accepted = False
            else:
                result = (
                    self._executor.submit_teleop(chunk, now)
                    if teleop
                    else self._executor.submit(chunk, now)
                )
                accepted = result.accepted
                if not accepted:
                    self._refused(f"chunk refused at t={now:.3f}: {result.reason}", msg, source)
                else:
                    self._loop.notify_chunk()
            self._last_command_t = now
            self._in_gap = False
        if teleop:
            return
        if accepted:
            self._publish_plan()
        else:  # the policy node re-plans on hearing it (last_refusal_stamp)
            self._publish_status()

    def _refused(self, text: str, msg: JointTrajectory, source: str) -> None:
        self._counts["refused"] += 1
        self._last_refusal = text
        self._last_refusal_stamp = convert.from_time(msg.header.stamp)
        self._last_refusal_source = source
        self.get_logger().warning(text, throttle_duration_sec=1.0)

    def _publish_plan(self) -> None:
        with self._lock:
            now = self._loop.now
            plan = self._executor.plan(now)
        self._pubs["plan"].publish(convert.plan_to_msg(plan, now, self._spec.joint_names))

    def _on_chunk(self, msg: JointTrajectory) -> None:
        self._submit(msg, teleop=False)

    def _on_teleop(self, msg: JointTrajectory) -> None:
        self._submit(msg, teleop=True)

    def _on_intervention(self, msg: Bool) -> None:
        with self._lock:
            self._executor.set_intervention(bool(msg.data), self._loop.now)
            self._loop.notify_chunk()
        self._publish_plan()
        self.get_logger().info(f"intervention {'active' if msg.data else 'released'}")

    def _watch_commands(self) -> None:
        """The driver's own command watchdog, at the status rate: counts silences longer than
        ``driver.command_deadline`` (by loop time, so sim time in the twin), and when the last
        publisher of ``command/chunk`` has gone, drops the queued policy chunks so the arm
        holds now rather than running out a dead source's plan."""
        now = self._loop.now
        last = self._last_command_t
        if last is not None and not self._in_gap and now - last > self._command_deadline:
            self._in_gap = True
            self._counts["command_gaps"] += 1
        publishers = self._chunk_sub.get_publisher_count()
        if publishers:
            self._had_chunk_publishers = True
        elif self._had_chunk_publishers:
            self._had_chunk_publishers = False
            with self._lock:
                self._executor.clear()
                self._loop.notify_chunk()
            self._publish_plan()
            self.get_logger().warning("every command/chunk publisher has gone: arm holding")

    def _on_estop(self, msg: Bool) -> None:
        if msg.data:
            with self._lock:
                self._control.estop("estop topic")
            self.get_logger().error("E-STOP latched (estop topic); reset with estop/reset")

    def _on_estop_reset(self, request, response):
        with self._lock:
            was = self._safety.estopped
            if getattr(self._arm, "fault", None):  # the operator's request recovers the device
                try:
                    self._arm.recover("estop/reset service")
                except Exception as err:
                    response.success = False
                    response.message = f"arm still faulted: {err}"
                    return response
            self._control.reset_estop(operator="estop/reset service")
        response.success = True
        response.message = "e-stop reset" if was else "e-stop was not latched"
        self.get_logger().warning(response.message)
        return response

    def _on_sim_reset(self, request, response):
        """Next episode: a new seeded scene, the arm at home, queued commands dropped."""
        if self._loop is None or self._twin is None:
            response.success, response.message = False, "driver is not configured"
            return response

        def reset() -> None:
            self._episode_seed += 1
            self._twin.reset(seed=self._episode_seed)
            with self._lock:
                self._executor.clear()
                self._control.start()
            self._loop.reset_camera_schedule()
            self._last_success = None

        if self._thread is None:  # inactive (a launch file activates it next): no loop to ask
            with self._lock:
                reset()
        elif not self._loop.request(reset).wait(timeout=10.0):
            response.success, response.message = False, "reset did not run within 10 s"
            return response
        self._publish_instruction()
        self._publish_plan()
        response.success = True
        response.message = self._twin.instruction
        return response

    # -- what each tick produced (called on the control thread) -------------------------------

    def on_clock(self, now: float) -> None:
        if self._twin is not None:  # the twin is the clock; a real robot runs on system time
            self._pubs["clock"].publish(Clock(clock=convert.to_time(now)))

    def on_tick(self, result: TickResult) -> None:
        fault = getattr(self._arm, "fault", None)
        if fault and not self._safety.estopped:  # a device stop latches an e-stop here too
            self._control.estop(f"arm fault: {fault}")
        joints = self._spec.joint_names
        self._pubs["joint_states"].publish(convert.joint_state_to_msg(result.state, joints))
        self._pubs["command"].publish(
            convert.command_to_msg(result.stamp, result.command, result.source, joints)
        )
        if result.held:
            self._counts["held_ticks"] += 1

    def on_frame(self, camera: str, image, stamp: float) -> None:
        frame = f"{camera}_optical"
        self._pubs[f"image/{camera}"].publish(convert.image_to_msg(image, stamp, frame))
        info = self._twin.camera_info(camera)
        self._pubs[f"info/{camera}"].publish(
            convert.camera_info_to_msg(info.width, info.height, info.K, stamp, frame)
        )

    def on_scene(self, now: float) -> None:
        self._pubs["objects"].publish(convert.objects_to_msg(self._twin.objects(), now, "world"))
        success = bool(self._twin.success())
        if success != self._last_success:
            self._last_success = success
            self._pubs["success"].publish(Bool(data=success))

    def _publish_description(self, spec) -> None:
        """The URDF generated from the robot's MJCF, once (latched); a robot without an MJCF
        (a DH table) has none, which is said once and is no error."""
        from robot.urdf import UrdfError, robot_urdf

        try:
            urdf = robot_urdf(spec)
        except UrdfError as err:
            self.get_logger().info(f"no robot_description: {err}")
            return
        self._pubs["description"].publish(String(data=urdf))

    def _publish_instruction(self) -> None:
        if self._twin is not None:  # on a real robot the task node publishes it
            self._pubs["instruction"].publish(String(data=self._twin.instruction))

    def _publish_status(self) -> None:
        if self._loop is None:
            return
        self._watch_commands()
        with self._lock:
            status = {
                "t": round(self._loop.now, 4),
                "ticks": self._loop.tick_count,
                "estop": self._safety.estopped,
                "estop_reason": self._safety.estop_reason,
                "remaining_horizon": round(self._executor.remaining_horizon(self._loop.now), 4),
                "lockstep_waits": self._loop.lockstep_waits,
                "lockstep_timeouts": self._loop.lockstep_timeouts,
                "frames_dropped": self._loop.frames_dropped,
                "instruction": self._twin.instruction if self._twin else "",
                "episode_seed": self._episode_seed,
                "last_refusal": self._last_refusal,
                "last_refusal_stamp": self._last_refusal_stamp,
                "last_refusal_source": self._last_refusal_source,
                "arm_fault": getattr(self._arm, "fault", None),
                **self._counts,
            }
        self._pubs["status"].publish(String(data=json.dumps(status)))


DRIVER_NAME = "robot_driver"
"""What ``dojo.graph`` names the driver."""

GRAPH_CHECK_S = 3.5
"""Wall seconds the driver listens for other drivers and clocks before it starts: longer than
Fast DDS's participant announcement period (3 s), because a participant that had finished its
initial announcements may only be heard at its next periodic one (1.5 s missed half the time
on a loaded machine). A peer that takes longer still is caught by the other side, which checks
the same way when it starts."""


class GraphConflictError(ValueError):
    """Another graph shares this driver's namespace or domain."""


def _owner(info) -> str | None:
    """The publishing node's full name, None while discovery has not named it yet."""
    if info.node_name.startswith("_NODE_NAME_UNKNOWN"):
        return None
    return (info.node_namespace.rstrip("/") or "") + "/" + info.node_name


def check_alone_on_graph(
    node, sim: bool, listen_s: float = GRAPH_CHECK_S, since: float | None = None
) -> None:
    """Refuse to start next to another graph on the same ROS domain (``GraphConflictError``).

    Refused: another driver in this namespace (it would take this graph's chunks and resets);
    any ``/clock`` publisher (a twin's sim time in this graph); and, for a twin, any driver on
    the domain at all, since its ``/clock`` would reach that graph too. A driver is found by
    its ``driver/status`` publisher: endpoints are discovered well before node names, and
    ``driver/status`` is published by a driver only. Call before this node publishes.

    ``since``: the ``time.monotonic()`` at which the node was created. Discovery fills the
    graph from then on, so the listening window ends ``listen_s`` after it (the node's own
    start-up, reading its config, counts); default: now.
    """
    domain = node.context.get_domain_id()
    own_status = node.resolve_topic_name(topics.DRIVER_STATUS.name)
    way_out = "give each graph its own ROS domain (ros.domain_id=N)"
    if not sim:
        way_out += " or namespace (ros.namespace=NAME)"
    end = (time.monotonic() if since is None else since) + listen_s
    while True:
        late = time.monotonic() > end
        found = []  # (message, owner or None)
        for name, _types in node.get_topic_names_and_types():
            is_status = name == own_status or (sim and name.endswith("/driver/status"))
            if name == "/clock":
                what = f"/clock is published on ROS domain {domain} by {{}} (a twin's sim time)"
                hint = "give each graph its own ROS domain (ros.domain_id=N)"
            elif is_status:
                what = f"another robot_driver is on ROS domain {domain}: {{}}"
                what += " (a twin's /clock would reach it)" if sim else ""
                hint = way_out
            else:
                continue
            for info in node.get_publishers_info_by_topic(name):
                found.append((f"{what}; {hint}", _owner(info), name))
        found.sort(key=lambda f: f[2] == "/clock")  # another driver says more than its clock
        named = [f for f in found if f[1] is not None]
        if named or (found and late):
            text, owner, topic = (named or found)[0]
            raise GraphConflictError(text.format(owner or f"the publisher of {topic}"))
        if late:
            return
        time.sleep(0.05)


def main() -> None:
    raise SystemExit(spin_node(RobotDriverNode))


if __name__ == "__main__":
    main()
