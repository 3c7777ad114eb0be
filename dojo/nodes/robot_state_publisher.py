"""``robot_state_publisher``: ROS's own, fed the URDF generated from the robot's MJCF, for tf.

Why ROS's and not one of ours: tf is ``tf2_msgs/TFMessage``, which no wheel here carries
(``ros-tf2-msgs`` is not on the package registry), and robot_state_publisher is what rviz,
MoveIt and every ROS user expect to make tf from ``joint_states``. So it runs where ROS is
installed: ``dojo.graph`` adds this node only when the ament index has the executable.

This module is a launcher, not a node. From the ROS arguments ``dojo.graph`` gives every node
it takes the config file, writes the URDF (``robot.urdf``) next to it as
``robot_description.urdf`` with a parameters file, asks the kernel for SIGTERM when its parent
dies (kept across ``exec``: the graph's rule that every node dies with its supervisor holds for
a C++ node too), and ``exec``s robot_state_publisher with the same ROS arguments plus::

    --params-file <out>/robot_state_publisher.yaml       robot_description: the URDF
    -r robot_description:=robot_state_publisher/robot_description

The remapping keeps one publisher on ``robot_description``: the driver, which publishes the
same URDF whether or not ROS is installed. Frames get the namespace as ``frame_prefix``
(``arm1/base_link``), so two arms' tf trees never collide.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
from pathlib import Path

PARAMS_FILE = "robot_state_publisher.yaml"
URDF_FILE = "robot_description.urdf"
_PR_SET_PDEATHSIG = 1


class LaunchError(RuntimeError):
    pass


def config_file(argv: list[str]) -> Path:
    """The ``config_file`` parameter among the ROS arguments (``-p config_file:=PATH``)."""
    for i, word in enumerate(argv[:-1]):
        if word in ("-p", "--param") and argv[i + 1].startswith("config_file:="):
            return Path(argv[i + 1].partition(":=")[2])
    raise LaunchError("robot_state_publisher: no '-p config_file:=...' among its ROS arguments")


def write_files(config: Path) -> Path:
    """The URDF of the config's robot and the parameters file that hands it to
    robot_state_publisher, next to the config; returns the parameters file."""
    from dojo import conf
    from robot.files import write_atomic
    from robot.urdf import robot_urdf

    urdf = robot_urdf(conf.robot_spec(conf.from_yaml_file(config)))
    write_atomic(config.parent / URDF_FILE, urdf)
    # JSON is YAML: the URDF as one double-quoted scalar, every character escaped as needed
    params = {"/**": {"ros__parameters": {"robot_description": urdf}}}
    return write_atomic(config.parent / PARAMS_FILE, json.dumps(params))


def command(program: Path, argv: list[str], params: Path) -> list[str]:
    """robot_state_publisher's command line: its ROS arguments, then the URDF and the remap."""
    extra = ["--params-file", str(params), "-r", "robot_description:=" + REMAPPED_DESCRIPTION]
    return [str(program), *argv, "--ros-args", *extra]


REMAPPED_DESCRIPTION = "robot_state_publisher/robot_description"


def main(argv: list[str] | None = None) -> int:
    from dojo.graph import ROBOT_STATE_PUBLISHER, find_ros_executable

    argv = sys.argv[1:] if argv is None else argv
    program = find_ros_executable(ROBOT_STATE_PUBLISHER, ROBOT_STATE_PUBLISHER)
    if program is None:
        print("robot_state_publisher: not found on AMENT_PREFIX_PATH", file=sys.stderr)
        return 2
    try:
        params = write_files(config_file(argv))
    except Exception as err:  # a config or model error: one line, this node only
        print(f"robot_state_publisher: no URDF: {err}", file=sys.stderr)
        return 2
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if parent <= 1 or os.getppid() != parent:  # orphaned before the request took effect
        return 1
    sys.stdout.flush()
    os.execv(program, command(program, argv, params))
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
