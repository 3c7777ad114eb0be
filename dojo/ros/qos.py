"""The QoS profiles the streams use (ARCHITECTURE.md section 2); which topic gets which is
in ``dojo.ros.topics``.

Sensor streams are best effort and shallow: a late image is worth less than the next one.
Commands are reliable. The driver's plan is reliable and one deep: only the newest matters, but
a lost one would leave the policy continuing a plan that no longer runs. The instruction and
checkpoints are transient local, so a node that starts late still receives the last one.

No subscription requests a deadline. DDS matches a subscription that requests a deadline only
with publishers that offer one at least as short, and silently drops every other publisher: a
plain ``ros2 topic pub``, rviz or a user's node (default QoS: no deadline) would command nothing
and hear nothing. Staleness is judged by the driver itself, on message stamps (the executor
refuses future-stamped chunks and drops steps whose time has passed; the driver counts command
gaps longer than ``driver.command_deadline``). A publisher may still *offer* a deadline
(:func:`command_offer`): an offered deadline matches a subscription that requests none.

Every profile here matches a default-QoS peer on the other side: a default publisher (reliable,
volatile) satisfies the reliable, best-effort and volatile subscriptions; a transient-local
subscription takes what a volatile publisher offers (it only misses the history).
"""

from __future__ import annotations

from rclpy.duration import Duration
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

SENSOR = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.BEST_EFFORT,
    durability=DurabilityPolicy.VOLATILE,
)

SENSOR_OFFER = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=5,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""What the small sensor streams' publishers offer (joint states, camera info): reliable, so a
default-QoS subscriber (robot_state_publisher, MoveIt, ``ros2 topic echo``) matches too, while
the graph's own best-effort subscriptions still get best-effort delivery. Images stay best
effort on both sides, as camera drivers publish them: a reliable image stream would let one
slow viewer hold the writer the policy depends on; rviz's image display offers Best Effort."""

STATUS = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

LATCHED = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)

PLAN = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)

CLOCK = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=1,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)


COMMAND = QoSProfile(
    history=HistoryPolicy.KEEP_LAST,
    depth=10,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.VOLATILE,
)
"""Commands: reliable and shallow (few, and none may be lost); what subscriptions ask for."""


def command_offer(deadline_s: float) -> QoSProfile:
    """What a command publisher offers: :data:`COMMAND` plus the deadline it promises to keep.

    A subscription that requests no deadline matches it, as it matches a default publisher;
    the offer only lets the publisher's own middleware report when it falls behind."""
    return QoSProfile(
        history=COMMAND.history,
        depth=COMMAND.depth,
        reliability=COMMAND.reliability,
        durability=COMMAND.durability,
        deadline=Duration(seconds=deadline_s),
    )
