"""Two graphs on one ROS domain: the second driver refuses to start, naming the first and the
way out, before it opens a scene or a device; a twin never publishes ``/clock`` into a graph
that has a real arm (or another twin)."""

from __future__ import annotations

from rosgraph_msgs.msg import Clock

from dojo.ros import topics
from tests.integration.conftest import dump_logs_on_failure, wait_until

REALTIME = ["sim.clock=realtime"]


def _refused(node, timeout: float = 60) -> str:
    """The refused driver's output once it exited (it must exit by itself, non-zero)."""
    node.proc.wait(timeout=timeout)
    assert node.proc.returncode != 0, node.output()[-3000:]
    return node.output()


def test_a_second_twin_on_the_domain_is_refused(start_node, probe):
    probe.record(topics.JOINT_STATES)
    first = start_node("dojo.nodes.robot_driver", REALTIME, "robot_driver", autostart=True)
    try:
        wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 5, 60, "the first twin running")
    except AssertionError:
        raise AssertionError(dump_logs_on_failure([first])) from None
    # another namespace does not help a twin: its /clock is global
    second = start_node(
        "dojo.nodes.robot_driver",
        [*REALTIME, "ros.namespace=other"],
        "robot_driver_b",
        autostart=True,
    )
    out = _refused(second)
    assert "another robot_driver is on ROS domain" in out
    assert "/robot_driver" in out, "the other node is named"
    assert "ros.domain_id=" in out, "the way out is named"
    assert "configure refused" in out
    assert first.proc.poll() is None, "the first graph keeps running"


def test_a_real_arm_refuses_a_domain_with_a_clock(start_node, probe):
    """A twin's /clock on the domain: a real arm's driver refuses to start, before it opens
    the device (here a serial port that does not exist, which would fail differently)."""
    clock = probe.node.create_publisher(Clock, "/clock", 1)
    wait_until(lambda: probe.node.count_publishers("/clock") >= 1, 5, "the stand-in twin's /clock")
    driver = start_node(
        "dojo.nodes.robot_driver",
        ["robot=so101", "robot.device.port=/dev/does-not-exist"],
        "robot_driver",
        autostart=True,
    )
    out = _refused(driver)
    assert "/clock is published on ROS domain" in out, out[-3000:]
    assert "/probe" in out, "the node publishing /clock is named"
    assert "ros.domain_id=" in out
    assert "does-not-exist" not in out, "refused before the device was opened"
    probe.node.destroy_publisher(clock)
