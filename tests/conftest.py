"""Options for the opt-in hardware tests (layer 4): skipped unless the hardware is named; and
no test ever reaches the Hugging Face Hub (set before anything imports huggingface_hub, which
reads it once at import).

pytest -m hardware --robot so101 --port /dev/ttyACM0 [--robot-id follower]
pytest -m hardware --robot ur5e --host 192.168.1.10
pytest -m hardware --camera-serial 123456789012     (a RealSense)
pytest -m hardware --uvc /dev/video0
"""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hardware", "opt-in tests on real hardware")
    group.addoption("--robot", default="", help="robot preset on the bench (so101, ur5e, ...)")
    group.addoption("--port", default="", help="serial port of the robot's motor bus")
    group.addoption("--robot-id", default="", help="LeRobot calibration id of the arm")
    group.addoption("--host", default="", help="address of a networked robot (UR, Franka, xArm)")
    group.addoption("--camera-serial", default="", help="serial number of a RealSense")
    group.addoption("--uvc", default="", help="a V4L2 device, e.g. /dev/video0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    named = any(config.getoption(o) for o in ("--robot", "--camera-serial", "--uvc"))
    if named:
        return
    skip = pytest.mark.skip(
        reason="hardware test: name the hardware (--robot/--camera-serial/--uvc)"
    )
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)
