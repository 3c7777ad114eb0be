"""Every topic and service of the graph: its name, its message type and its QoS, in one table.

Nodes, ``dojo.graph``, the tests and the benchmarks read names from here instead of writing
``"task/instruction"`` again, so a topic is renamed (or its QoS changed) in one place and a
publisher can never disagree with its subscribers. Names are relative, so a namespace per robot
works (ARCHITECTURE.md section 2); only ``/clock`` is absolute, as ROS requires.

Topics that exist once per camera are functions of the camera's name. The command topics are
functions of the deadline (``driver.command_deadline``) their publishers offer; subscriptions
request none, so a default-QoS publisher (``ros2 topic pub``, a user's node) commands the driver
too (``dojo.ros.qos`` says why), and the driver judges staleness on stamps itself.

The profiles themselves (sensor, status, latched, plan, clock, command) are in
``dojo.ros.qos``, which says why each stream gets the one it gets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float32, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from dojo.ros import qos


@dataclass(frozen=True)
class Topic:
    """One stream: ``name`` (relative), message ``type``, ``qos`` for publishers and
    subscribers alike; ``offer``, if set, is what publishers offer instead (a command
    publisher's deadline, which a subscription requesting none still matches)."""

    name: str
    type: type
    qos: QoSProfile
    offer: QoSProfile | None = None

    def publisher(self, node: Node, **kwargs: Any):
        return node.create_publisher(self.type, self.name, self.offer or self.qos, **kwargs)

    def subscription(self, node: Node, callback: Callable[[Any], None], **kwargs: Any):
        return node.create_subscription(self.type, self.name, callback, self.qos, **kwargs)


@dataclass(frozen=True)
class Service:
    """One service (std_srvs only, so any ROS install can call it)."""

    name: str
    type: type

    def server(self, node: Node, callback: Callable[[Any, Any], Any], **kwargs: Any):
        return node.create_service(self.type, self.name, callback, **kwargs)

    def client(self, node: Node, **kwargs: Any):
        return node.create_client(self.type, self.name, **kwargs)


# -- the robot driver -------------------------------------------------------------------------

JOINT_STATES = Topic("joint_states", JointState, qos.SENSOR, qos.SENSOR_OFFER)
DRIVER_COMMAND = Topic("driver/command", JointState, qos.STATUS)
"""What the driver actually sent at each tick; ``header.frame_id`` is the control source."""
DRIVER_PLAN = Topic("driver/plan", JointTrajectory, qos.PLAN)
DRIVER_STATUS = Topic("driver/status", String, qos.STATUS)
ESTOP = Topic("estop", Bool, qos.STATUS)
CLOCK = Topic("/clock", Clock, qos.CLOCK)
ESTOP_RESET = Service("estop/reset", Trigger)
ROBOT_DESCRIPTION = Topic("robot_description", String, qos.LATCHED)
"""The URDF (``robot.urdf``), latched so rviz and robot_state_publisher get it late; any
default-QoS subscriber (volatile) matches a transient-local publisher too."""

# -- the task and the twin --------------------------------------------------------------------

TASK_INSTRUCTION = Topic("task/instruction", String, qos.LATCHED)
TASK_SUCCESS = Topic("task/success", Bool, qos.LATCHED)
SIM_OBJECTS = Topic("sim/objects", MarkerArray, qos.SENSOR)
SIM_RESET = Service("sim/reset", Trigger)

# -- commands: reliable; publishers offer the deadline, subscriptions request none ------------


def command_chunk(deadline_s: float) -> Topic:
    """The policy's (or the scripted operator's) action chunks."""
    return Topic("command/chunk", JointTrajectory, qos.COMMAND, qos.command_offer(deadline_s))


def command_teleop(deadline_s: float) -> Topic:
    """The person's commands while ``intervention/active`` is true."""
    return Topic("command/teleop", JointTrajectory, qos.COMMAND, qos.command_offer(deadline_s))


# -- cameras: one set per camera --------------------------------------------------------------


def camera_image(camera: str) -> Topic:
    return Topic(f"camera/{camera}/image_raw", Image, qos.SENSOR)


def camera_info(camera: str) -> Topic:
    return Topic(f"camera/{camera}/camera_info", CameraInfo, qos.SENSOR, qos.SENSOR_OFFER)


def camera_depth(camera: str) -> Topic:
    return Topic(f"camera/{camera}/depth", Image, qos.SENSOR)


def camera_status(camera: str) -> Topic:
    return Topic(f"camera/{camera}/status", String, qos.STATUS)


# -- the person -------------------------------------------------------------------------------

INTERVENTION_ACTIVE = Topic("intervention/active", Bool, qos.LATCHED)
INTERVENTION_BUTTON = Topic("intervention/button", String, qos.STATUS)

# -- the policy -------------------------------------------------------------------------------

POLICY_LATENCY = Topic("policy/latency", Float32, qos.STATUS)
POLICY_STATUS = Topic("policy/status", String, qos.STATUS)
POLICY_CHECKPOINT = Topic("policy/checkpoint", String, qos.LATCHED)
LEARNER_STATUS = Topic("learner/status", String, qos.STATUS)

# -- the critic -------------------------------------------------------------------------------

CRITIC_PROGRESS = Topic("critic/progress", Float32, qos.SENSOR)
CRITIC_DONE = Topic("critic/done", Bool, qos.SENSOR)
CRITIC_STATUS = Topic("critic/status", String, qos.STATUS)

# -- the recorder -----------------------------------------------------------------------------

RECORDER_STATUS = Topic("recorder/status", String, qos.STATUS)
EPISODE_START = Service("episode/start", Trigger)
EPISODE_STOP = Service("episode/stop", SetBool)
EPISODE_ABORT = Service("episode/abort", Trigger)
