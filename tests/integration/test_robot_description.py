"""rviz's view of the robot: the driver publishes the URDF generated from the MJCF on
``robot_description``, latched, so a default-QoS subscriber that was there and a
transient-local one that joins late (rviz) both get it; and robot_state_publisher, where ROS
has one (here a stand-in rclpy node on a fake ament prefix), gets the same URDF as its
parameter through rcl's own parameters-file parser, and dies with its parent."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from dojo import conf
from dojo.ros import topics
from dojo.ros.env import node_env
from robot.urdf import robot_urdf
from tests.integration.conftest import dump_logs_on_failure, wait_until

STAND_IN = '''#!{python}
"""A stand-in for ROS's robot_state_publisher: declares its parameters as it does, and
reports what it got (rcl parsed them) on a latched topic."""
import json, sys, rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile
from std_msgs.msg import String
rclpy.init(args=sys.argv)
node = rclpy.create_node("robot_state_publisher")
report = {{
    "robot_description": node.declare_parameter("robot_description", "").value,
    "frame_prefix": node.declare_parameter("frame_prefix", "").value,
    "use_sim_time": node.get_parameter("use_sim_time").value,
    "description_topic": node.resolve_topic_name("robot_description"),
    "name": node.get_fully_qualified_name(),
}}
latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
node.create_publisher(String, "stand_in/report", latched).publish(String(data=json.dumps(report)))
try:
    rclpy.spin(node)
except (KeyboardInterrupt, Exception):  # SIGINT or SIGTERM: a clean stop, as the real one
    pass
'''


def stand_in_prefix(root: Path) -> Path:
    marker = root / "share/ament_index/resource_index/packages/robot_state_publisher"
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    program = root / "lib/robot_state_publisher/robot_state_publisher"
    program.parent.mkdir(parents=True)
    program.write_text(STAND_IN.format(python=sys.executable))
    program.chmod(0o755)
    return root


class Keeper:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[str] = []

    def __call__(self, msg: String) -> None:
        with self.lock:
            self.messages.append(msg.data)

    def got(self) -> list[str]:
        with self.lock:
            return list(self.messages)


def test_robot_description_reaches_default_and_late_transient_local_subscribers(start_node, probe):
    early = Keeper()  # a user's node: depth only (reliable, volatile), there before the driver
    probe.node.create_subscription(String, topics.ROBOT_DESCRIPTION.name, early, 10)
    driver = start_node(
        "dojo.nodes.robot_driver", ["sim.clock=realtime"], "robot_driver", autostart=True
    )
    want = robot_urdf(conf.robot_spec(conf.load([])))
    late = Keeper()
    try:
        probe.record(topics.JOINT_STATES)
        wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 3, 60, "the driver running")
        wait_until(lambda: early.got(), 20, "robot_description on a default-QoS subscriber")
        # rviz's RobotModel: reliable, transient local, joining after it was published
        rviz = QoSProfile(
            depth=1,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL,
        )
        probe.node.create_subscription(String, topics.ROBOT_DESCRIPTION.name, late, rviz)
        wait_until(lambda: late.got(), 20, "robot_description on a late transient-local one")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure([driver])}") from None
    assert early.got() == [want]  # published once, and the URDF of the MJCF
    assert late.got() == [want]
    publishers = probe.node.get_publishers_info_by_topic("/robot_description")
    assert [p.node_name for p in publishers] == ["robot_driver"]


def test_robot_state_publisher_gets_the_urdf_and_dies_with_its_parent(
    tmp_path, domain_id, probe, monkeypatch
):
    from dojo import graph

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(stand_in_prefix(tmp_path / "ros")))
    cfg = conf.load([f"out={tmp_path}", "ros.namespace=arm1"])
    config_file = tmp_path / "config.yaml"
    config_file.write_text(conf.to_yaml(cfg))
    node = next(n for n in graph.build(cfg, config_file) if n.name == "robot_state_publisher")
    log = (tmp_path / "rsp.log").open("w")
    # a parent of its own that is not this test, so that it can be killed with -9
    parent = subprocess.Popen(
        ["sh", "-c", '"$@"; exit 0', "sh", *node.command("arm1")],
        env=node_env(domain_id),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    reports = Keeper()
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    probe.node.create_subscription(String, "/arm1/stand_in/report", reports, latched)
    try:
        wait_until(lambda: reports.got(), 60, "the stand-in robot_state_publisher's report")
        report = json.loads(reports.got()[0])
        assert report["name"] == "/arm1/robot_state_publisher"
        assert report["robot_description"] == robot_urdf(conf.robot_spec(cfg))
        assert report["frame_prefix"] == "arm1/"
        assert report["use_sim_time"] is True
        # its own copy of the description is out of the way of the driver's
        assert report["description_topic"] == "/arm1/robot_state_publisher/robot_description"
        child = int(
            subprocess.run(
                ["pgrep", "-P", str(parent.pid)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
        )
        assert Path(f"/proc/{child}/exe").resolve() == Path(sys.executable).resolve()
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=5)
        end = time.monotonic() + 5
        while Path(f"/proc/{child}").exists() and _state(child) != "Z":
            if time.monotonic() > end:
                pytest.fail("robot_state_publisher outlived its killed parent by 5 s")
            time.sleep(0.05)
    except (AssertionError, subprocess.CalledProcessError) as err:
        log.flush()
        raise AssertionError(f"{err}\n{(tmp_path / 'rsp.log').read_text()[-4000:]}") from None
    finally:  # the group outlives its leader: whatever is left of it goes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)
        parent.wait(timeout=5)
        log.close()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "X"


def test_ros2_launch_starts_robot_state_publisher_when_ros_has_one(tmp_path, domain_id, probe):
    """The same node under ``ros2 launch``: started after the driver with the URDF, and
    stopped cleanly with the rest at the end of the episode."""
    from tests.integration.test_launch_shell import ROS2, _env, _installed

    if not Path(ROS2).exists():
        pytest.skip("ros2 launch is not installed (see tests/integration/test_launch_shell.py)")
    _installed()
    env = _env(tmp_path)
    ros = stand_in_prefix(tmp_path / "ros")
    env["AMENT_PREFIX_PATH"] = f"{env['AMENT_PREFIX_PATH']}{os.pathsep}{ros}"
    reports = Keeper()
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    probe.node.create_subscription(String, "stand_in/report", reports, latched)
    out = tmp_path / "run"
    args = [ROS2, "launch", "vla_dojo", "dojo.launch.py", f"domain_id:={domain_id}"]
    args += [f"out:={out}", "overrides:=episodes=1 sim.clock=lockstep"]
    try:
        proc = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as err:
        raise AssertionError(f"ros2 launch ran past 240 s:\n{err.stdout}{err.stderr}") from None
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "no tf" not in output
    started = re.findall(r"\[INFO\] \[([a-z_]+)-\d+\]: process started", output)
    assert started[:2] == ["robot_driver", "robot_state_publisher"], started
    finished = re.findall(r"\[INFO\] \[([a-z_]+)-\d+\]: process has finished cleanly", output)
    assert sorted(finished) == sorted(started), output[-6000:]
    wait_until(lambda: reports.got(), 20, "the stand-in's report")
    report = json.loads(reports.got()[0])
    assert report["robot_description"] == robot_urdf(conf.robot_spec(conf.load([])))
    assert (out / "robot_description.urdf").read_text() == report["robot_description"]
