"""``launch/dojo.launch.py`` through ``launch_testing``, against the twin: the graph comes up
with the driver configured and activated by lifecycle events, joint states and images flow, the
scripted operator's chunks are executed, every process has the command line ``dojo graph``
prints for the same configuration, and shutdown is clean with every exit code checked.

Needs ROS 2's launch packages: a ROS 2 install, or the wheels that ``make test`` installs from
``../shared/ros2-launch/wheels``. Without them the module skips, saying so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import pytest

HOW_TO = (
    "the launch tests need ROS 2's launch packages (launch, launch_ros, launch_testing): "
    "source a ROS 2 install (Jazzy or Kilted), or run `make test`, which installs the wheels "
    "from ../shared/ros2-launch/wheels into .venv"
)
launch_testing = pytest.importorskip("launch_testing", reason=HOW_TO)
pytest.importorskip("launch_ros", reason=HOW_TO)
ReadyToTest = pytest.importorskip("launch_testing.actions").ReadyToTest
assert_exit_codes = pytest.importorskip("launch_testing.asserts").assertExitCodes

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription, RegisterEventHandler  # noqa: E402
from launch.event_handlers import OnProcessStart  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from dojo.ros import convert, topics  # noqa: E402
from robot.schema import ControlSource  # noqa: E402
from tests.integration.conftest import Probe, wait_until  # noqa: E402

pytestmark = pytest.mark.integration

LAUNCH_FILE = Path(__file__).resolve().parents[2] / "launch" / "dojo.launch.py"
DOMAIN = 20 + (os.getpid() * 7 + 113) % 200  # this module's own ROS domain
OUT = tempfile.mkdtemp(prefix="vla_dojo_launch_test_")
OVERRIDES = ["episodes=50", "sim.clock=realtime"]
NODES = ("robot_driver", "scripted_operator", "episode_runner")
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
STARTED: dict[str, list[str]] = {}  # process name -> its command line, as launch ran it


def _keep_cmd(event, _context):
    STARTED[event.process_name.rsplit("-", 1)[0]] = [str(part) for part in event.cmd]


@pytest.mark.launch_test
def generate_test_description():
    os.environ["ROS_LOG_DIR"] = os.path.join(OUT, "ros_log")
    graph = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
        launch_arguments={
            "domain_id": str(DOMAIN),
            "out": OUT,
            "overrides": " ".join(OVERRIDES),
        }.items(),
    )
    return LaunchDescription(
        [
            RegisterEventHandler(OnProcessStart(on_start=_keep_cmd)),
            graph,
            ReadyToTest(),
        ]
    )


class TestTheGraphUnderLaunch(unittest.TestCase):
    def test_joint_states_images_and_an_executed_chunk(self):
        probe = Probe(DOMAIN)
        try:
            probe.record(topics.JOINT_STATES)
            probe.record(topics.camera_image("front"))
            probe.record(topics.DRIVER_COMMAND)
            wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 20, 90, "joint states")
            wait_until(lambda: len(probe.got(topics.camera_image("front"))) >= 3, 30, "images")

            def chunk_executed() -> bool:
                sources = {
                    convert.command_from_msg(m, JOINTS)[2] for m in probe.got(topics.DRIVER_COMMAND)
                }
                return bool(sources & {ControlSource.SCRIPT, ControlSource.POLICY})

            wait_until(chunk_executed, 60, "the scripted operator's chunk to be executed")
        finally:
            probe.close()

    def test_the_same_command_lines_as_dojo_graph(self):
        wait_until(lambda: set(NODES) <= set(STARTED), 60, f"every node to start ({STARTED})")
        graph = [sys.executable, "-m", "dojo.cli", "graph", f"out={OUT}", f"ros.domain_id={DOMAIN}"]
        printed = subprocess.run(
            [*graph, *OVERRIDES],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        lines = dict(line.split(": ", 1) for line in printed.splitlines() if ": " in line)
        self.assertEqual(set(lines), set(STARTED), "the same nodes")
        for name, line in lines.items():
            expected = line.split(" ")
            if name == "robot_driver":  # the launch file drives its lifecycle itself
                expected[expected.index("autostart:=true")] = "autostart:=false"
            self.assertEqual(STARTED[name], expected, f"{name}'s command line")


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_every_process_exited_cleanly(self, proc_info):
        names = sorted(name.rsplit("-", 1)[0] for name in proc_info.process_names())
        self.assertEqual(names, sorted(NODES))
        assert_exit_codes(proc_info)  # every one exited 0
        report = Path(OUT) / "episodes.json"  # stopped mid-run, the runner still reports
        self.assertTrue(report.exists(), f"{report} was not written")
