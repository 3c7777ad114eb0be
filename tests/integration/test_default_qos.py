"""Any ROS 2 node can talk to the driver: a plain rclpy publisher and subscriptions with the
default QoS (reliable, volatile, depth 10, no deadline), as ``ros2 topic pub``, rviz or a
user's own node would use, command the twin and observe it. Then the publisher goes away and the
driver holds the arm at once.
"""

from __future__ import annotations

import json
import threading

import numpy as np
from sensor_msgs.msg import CameraInfo, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from dojo.ros import convert, topics
from robot.schema import ActionChunk, ControlSource
from tests.integration.conftest import dump_logs_on_failure, wait_until

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
DEFAULT_DEPTH = 10  # rclpy's default profile: reliable, volatile, keep last 10


class DefaultQosListener:
    """Subscriptions made the way a user's node makes them: a depth, nothing else."""

    def __init__(self, node) -> None:
        self.lock = threading.Lock()
        self.got: dict[str, list] = {"joint_states": [], "command": [], "status": [], "info": []}
        for key, type_, name in (
            ("joint_states", JointState, "joint_states"),
            ("command", JointState, topics.DRIVER_COMMAND.name),
            ("status", String, topics.DRIVER_STATUS.name),
            ("info", CameraInfo, topics.camera_info("front").name),
        ):
            node.create_subscription(type_, name, self._keeper(key), DEFAULT_DEPTH)

    def _keeper(self, key):
        def keep(msg) -> None:
            with self.lock:
                self.got[key].append(msg)

        return keep

    def __getitem__(self, key) -> list:
        with self.lock:
            return list(self.got[key])


def test_a_default_qos_node_commands_and_observes_the_driver(start_node, probe):
    node = start_node(
        "dojo.nodes.robot_driver", ["sim.clock=realtime"], "robot_driver", autostart=True
    )
    listener = DefaultQosListener(probe.node)
    publisher = probe.node.create_publisher(JointTrajectory, "command/chunk", DEFAULT_DEPTH)
    try:
        wait_until(lambda: len(listener["joint_states"]) > 5, 60, "joint states, default QoS")
        wait_until(
            lambda: publisher.get_subscription_count() > 0,
            20,
            "the driver's command/chunk subscription to match a default-QoS publisher",
        )
        wait_until(lambda: listener["info"], 10, "camera_info, default QoS")
    except AssertionError:
        raise AssertionError(dump_logs_on_failure([node])) from None

    state = convert.joint_state_from_msg(listener["joint_states"][-1], JOINTS)
    times = np.linspace(0.04, 1.0, 25)
    target = np.zeros(6)
    target[0] = 0.3
    positions = state.position + np.outer(times, target)
    publisher.publish(convert.chunk_to_msg(ActionChunk(state.stamp, JOINTS, positions, times)))

    def pan_moved() -> bool:
        latest = convert.joint_state_from_msg(listener["joint_states"][-1], JOINTS)
        return latest.position[0] - state.position[0] > 0.2

    try:
        wait_until(pan_moved, 10, "shoulder_pan to follow the default-QoS publisher's chunk")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure([node])}") from None
    sources = {convert.command_from_msg(m, JOINTS)[2] for m in listener["command"]}
    assert ControlSource.POLICY in sources

    # The command source vanishes mid-chunk: the driver drops its plan and holds at once.
    publisher.publish(
        convert.chunk_to_msg(
            ActionChunk(
                convert.joint_state_from_msg(listener["joint_states"][-1], JOINTS).stamp,
                JOINTS,
                convert.joint_state_from_msg(listener["joint_states"][-1], JOINTS).position
                - np.outer(np.linspace(0.1, 4.0, 40), target),
                np.linspace(0.1, 4.0, 40),
            )
        )
    )
    wait_until(
        lambda: (
            convert.command_from_msg(listener["command"][-1], JOINTS)[2] == ControlSource.POLICY
        ),
        5,
        "the long chunk to run",
    )
    probe.node.destroy_publisher(publisher)
    wait_until(
        lambda: convert.command_from_msg(listener["command"][-1], JOINTS)[2] == ControlSource.HOLD,
        3,
        "the driver to hold once its only command publisher has gone",
    )
    held_from = len(listener["command"])
    wait_until(lambda: len(listener["command"]) > held_from + 25, 5, "ticks while holding")
    held = [convert.command_from_msg(m, JOINTS) for m in listener["command"][held_from:]]
    assert all(src == ControlSource.HOLD for _, _, src in held)
    commands = np.array([c for _, c, _ in held])
    assert np.ptp(commands, axis=0).max() < 1e-9, "the arm must not move once it holds"
    status = json.loads(listener["status"][-1].data)
    assert status["remaining_horizon"] == 0
