"""``intervention``: the human's side of human-in-the-loop.

While the person engages, this node publishes their commands on ``command/teleop`` and
``intervention/active: true``; the driver switches to them on its next control tick and
flushes the policy's queued steps. On release it publishes ``false`` and the policy resumes
from the current state with its next chunk.

Two kinds of person:

- a device (``intervention.device``: keyboard, gamepad, spacemouse, leader_arm), read at
  ``intervention.rate_hz``; end-effector deltas become joint targets through
  ``teleop.ee_control`` (mink IK with the robot's limits), a leader arm gives joint targets.
  Button presses (success / failure / reset) are published on ``intervention/button``.
  The device sees the follower's joints before each read (a leader arm takes control only
  once it matches them, and the arm holds meanwhile: ``teleop.leader_arm``).
- ``scripted``: the twin's scripted operator plays the person. It watches the policy from the
  first tick ``driver/command`` shows a policy or script driving in this episode (an arm held
  before the first chunk is not a stalled policy; one held after it is) and takes over when the
  arm stalls (moves less than ``stall_rad`` over ``stall_s``) or the task regresses (the named
  cube ends up ``regress_m`` further from where it must go than it has been), then finishes
  the task; so takeover is testable without a person.
"""

from __future__ import annotations

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, String
from visualization_msgs.msg import MarkerArray

from dojo import conf
from dojo.nodes.base import node_config, ros_time, spin_node
from dojo.ros import convert, topics
from robot.schema import ActionChunk, ControlSource
from robot.sim.tasks import parse_instruction
from teleop.arbitration import StallMonitor, bin_distance


class InterventionNode(Node):
    def __init__(self) -> None:
        super().__init__("intervention")
        cfg = node_config(self)
        self._cfg = cfg
        self._spec = conf.robot_spec(cfg)
        icfg = cfg.intervention
        self._period = 1.0 / float(icfg.rate_hz)
        self._active = False
        self._q: np.ndarray | None = None
        self._stamp = 0.0
        self._objects = None
        self._instruction = ""
        group = MutuallyExclusiveCallbackGroup()
        self._teleop_pub = topics.command_teleop(float(cfg.driver.command_deadline)).publisher(self)
        self._active_pub = topics.INTERVENTION_ACTIVE.publisher(self)
        self._button_pub = topics.INTERVENTION_BUTTON.publisher(self)
        self._active_pub.publish(Bool(data=False))
        topics.JOINT_STATES.subscription(self, self._on_joint_state, callback_group=group)
        topics.TASK_INSTRUCTION.subscription(self, self._on_instruction, callback_group=group)
        topics.SIM_OBJECTS.subscription(self, self._on_objects, callback_group=group)
        topics.DRIVER_COMMAND.subscription(self, self._on_driver_command, callback_group=group)
        self._device = None
        self._operator = None
        if icfg.device == "scripted":
            from teleop.scripted import ScriptedOperator

            self._operator = ScriptedOperator(self._spec, conf.scripted_config(cfg))
            self._monitor = StallMonitor(
                float(icfg.stall_s),
                float(icfg.stall_rad),
                float(icfg.regress_m),
                float(icfg.grace_s),
            )
            self._next_plan = -1.0
        else:
            from teleop.ee_control import EndEffectorController
            from teleop.registry import make_device

            self._device = make_device(str(icfg.device), **dict(icfg.device_config))
            self._device.connect()
            self._ee = EndEffectorController(self._spec)
            self.create_timer(self._period, self._poll_device, callback_group=group)
        self.get_logger().info(f"intervention ready: person={icfg.device}")

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
        if self._active and self.context.ok():
            # on Ctrl-C the context is already gone; the driver's watchdog then holds the arm
            self._active_pub.publish(Bool(data=False))

    # -- inputs -------------------------------------------------------------------------------

    def _on_instruction(self, msg: String) -> None:
        self._instruction = msg.data
        self._set_active(False, "new episode")
        if self._operator is not None:
            self._operator.reset(msg.data)
            self._monitor.reset(self._stamp)
            self._objects = None

    def _on_objects(self, msg: MarkerArray) -> None:
        self._objects, _ = convert.objects_from_msg(msg)

    def _on_driver_command(self, msg: JointState) -> None:
        if self._operator is not None:
            source = convert.parse_source(msg.header.frame_id, ControlSource.HOLD)
            self._monitor.source(convert.from_time(msg.header.stamp), source)

    def _on_joint_state(self, msg: JointState) -> None:
        state = convert.joint_state_from_msg(msg, self._spec.joint_names)
        self._q, self._stamp = state.position, state.stamp
        if self._operator is not None:
            self._scripted_person(state.stamp, state.position)

    def _set_active(self, active: bool, why: str) -> None:
        if active != self._active:
            self._active = active
            self._active_pub.publish(Bool(data=active))
            self.get_logger().info(
                f"{'TAKEOVER' if active else 'release'} at t={self._stamp:.3f}: {why}"
            )

    # -- the scripted person ------------------------------------------------------------------

    def _goal_distance(self) -> float | None:
        if not self._instruction or not self._objects:
            return None
        try:
            goal = parse_instruction(self._instruction)
        except ValueError:
            return None
        if self._cfg.task.name != "pick_place":
            return None
        return bin_distance(goal.target, self._objects)

    def _scripted_person(self, t: float, q: np.ndarray) -> None:
        if not self._instruction or self._objects is None:
            return
        if not self._active:
            reason = self._monitor.update(t, q, self._goal_distance())
            if reason is None:
                return
            self._set_active(True, reason)
            self._next_plan = -1.0
        if t < self._next_plan:
            return
        chunk = self._operator.act(t, q, self._objects)
        human = ActionChunk(
            chunk.stamp, chunk.joint_names, chunk.positions, chunk.times, ControlSource.HUMAN
        )
        self._teleop_pub.publish(convert.chunk_to_msg(human))
        self._next_plan = chunk.end_time - float(self._cfg.teleop.replan_margin)

    # -- a device -----------------------------------------------------------------------------

    def _poll_device(self) -> None:
        now = ros_time(self)
        if self._q is not None:  # a leader arm matches it before it takes control
            self._device.observe_follower(self._q, self._stamp)
        command = self._device.read(now)
        for button in command.buttons:
            self._button_pub.publish(String(data=button.value))
        self._set_active(command.engaged, f"{self._device.name} engage")
        prompt = self._device.prompt()
        if prompt:
            self.get_logger().info(prompt, throttle_duration_sec=2.0)
        if not command.engaged or self._q is None:
            return
        if command.joint_targets is not None:
            target = np.asarray(command.joint_targets, dtype=np.float64)
        elif command.ee_delta is not None:
            target = self._ee.targets(self._q, command.ee_delta, command.gripper)
        else:  # in control but commanding nothing yet (a leader arm being matched): hold
            return
        chunk = ActionChunk(
            self._stamp,
            self._spec.joint_names,
            target[None, :],
            np.array([self._period]),
            ControlSource.HUMAN,
        )
        self._teleop_pub.publish(convert.chunk_to_msg(chunk))


def main() -> None:
    raise SystemExit(spin_node(InterventionNode))


if __name__ == "__main__":
    main()
