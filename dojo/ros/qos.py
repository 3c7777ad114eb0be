"""The QoS profiles the streams use (ARCHITECTURE.md section 2); which topic gets which is
in ``dojo.ros.topics``.

Sensor streams are best effort and shallow: a late image is worth less than the next one.
Commands are reliable and carry a deadline: a missed deadline is logged and counted; the
executor's own watchdog is what holds the arm. The driver's plan is reliable and one deep:
only the newest matters, but a lost one would leave the policy continuing a plan that no longer
runs; subscribers of it ask for no deadline, so a default-QoS publisher matches. The
instruction and checkpoints are transient local, so a node that starts late still receives the
last one.
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


def command(deadline_s: float) -> QoSProfile:
    """Reliable, shallow, with a deadline: commands are few and must not be lost."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=10,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.VOLATILE,
        deadline=Duration(seconds=deadline_s),
    )
