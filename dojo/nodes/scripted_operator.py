"""``scripted_operator``: the twin's stand-in for a person, publishing action chunks over ROS.

It knows what a person at the robot would: the instruction (``task/instruction``), where the
objects are (``sim/objects``, ground truth from the twin) and the arm's joint states. It
replans whenever the chunk it last sent has less than ``teleop.replan_margin`` seconds left,
using the latest joint state, so its chunks are as fresh as an asynchronous policy's.

Publishes ``command/chunk`` by default; remapped to ``command/teleop`` it plays the human.
"""

from __future__ import annotations

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

from dojo import conf
from dojo.nodes.base import node_config, spin_node
from dojo.ros import convert, topics
from teleop.scripted import ScriptedOperator


class ScriptedOperatorNode(Node):
    def __init__(self) -> None:
        super().__init__("scripted_operator")
        cfg = node_config(self)
        self._spec = conf.robot_spec(cfg)
        self._operator = ScriptedOperator(self._spec, conf.scripted_config(cfg))
        self._replan_margin = float(cfg.teleop.replan_margin)
        self._objects = None
        self._instruction = ""
        self._episode = 0
        self._next_plan_at = -1.0
        self._last_command = None
        group = MutuallyExclusiveCallbackGroup()  # the operator is stateful: one callback at a time
        # The publisher offers the driver's command deadline (its subscription requests none);
        # the operator replans far more often than that.
        self._pub = topics.command_chunk(float(cfg.driver.command_deadline)).publisher(self)
        topics.TASK_INSTRUCTION.subscription(self, self._on_instruction, callback_group=group)
        topics.SIM_OBJECTS.subscription(self, self._on_objects, callback_group=group)
        topics.JOINT_STATES.subscription(self, self._on_joint_state, callback_group=group)
        # what the driver actually sent: planning from it, not from the sagging measured pose,
        # keeps the first chunk of an episode within the acceleration limits
        topics.DRIVER_COMMAND.subscription(self, self._on_command, callback_group=group)

    def _on_instruction(self, msg: String) -> None:
        self._instruction = msg.data
        self._episode += 1
        self._objects = None  # wait for the new scene before acting
        self._last_command = None
        self._operator.reset(msg.data, seed=self._episode)
        self._next_plan_at = -1.0
        self.get_logger().info(f"episode {self._episode}: '{msg.data}'")

    def _on_objects(self, msg: MarkerArray) -> None:
        self._objects, _ = convert.objects_from_msg(msg)

    def _on_command(self, msg: JointState) -> None:
        self._last_command = convert.command_from_msg(msg, self._spec.joint_names)[1]

    def _on_joint_state(self, msg: JointState) -> None:
        if not self._instruction or self._objects is None:
            return
        state = convert.joint_state_from_msg(msg, self._spec.joint_names)
        if state.stamp < self._next_plan_at:
            return
        chunk = self._operator.act(
            state.stamp, state.position, self._objects, last_command=self._last_command
        )
        self._pub.publish(convert.chunk_to_msg(chunk))
        self._next_plan_at = chunk.end_time - self._replan_margin


def main() -> None:
    raise SystemExit(spin_node(ScriptedOperatorNode))


if __name__ == "__main__":
    main()
