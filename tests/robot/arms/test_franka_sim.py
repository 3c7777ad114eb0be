"""Franka driver against franky-sim: franky's real libfranka client over the network protocol
to a MuJoCo FR3 behind a libfranka-compatible server (fake-hardware layer, protocol level)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("franky")
pytest.importorskip("franky_sim")

from robot.arm_interface import ArmError
from robot.arms.franka import FrankaArm, FrankaConfig
from tests.robot.arms.test_franka import spec

SERVER = (
    "import sys; sys.argv = ['franky-sim', '-s', 'mujoco']; "
    "from franky_sim.run_server import main; main()"
)


@pytest.fixture(scope="module")
def franka_sim():
    """A franky-sim server process; yields the address it listens on."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-c", SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    host = None
    deadline = time.monotonic() + 60
    lines = []
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        lines.append(line)
        m = re.search(r"using '([\d.]+)' as the robot IP", line)
        if m:
            host = m.group(1)
            break
    if host is None:
        proc.kill()
        pytest.fail("franky-sim did not start:\n" + "".join(lines[-20:]))
    yield host
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def make(host, **kw):
    return FrankaArm(spec(), FrankaConfig(host=host, realtime=False, dynamics_factor=0.2, **kw))


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def test_joint_targets_streamed_at_the_policy_rate_move_the_simulated_arm(franka_sim):
    arm = make(franka_sim)
    arm.connect()
    try:
        start = arm.read().position
        assert start.shape == (8,) and np.all(np.isfinite(start))
        arm.enable()
        # 20 Hz targets ramping joint 1 by 0.15 rad, as a policy's chunk would
        for k in range(1, 11):
            q = start.copy()
            q[0] += 0.015 * k
            sent = arm.send(q)
            np.testing.assert_allclose(sent, q)
            time.sleep(0.05)  # the policy period: this is the rate under test
        wait_for(lambda: arm.read().position[0] - start[0] > 0.14, 10, "joint 1 to follow")
        assert arm.fault is None
        # a far target, then hold at once: the arm stops instead of going there
        far = start.copy()
        far[0] += 0.6
        arm.send(far)
        arm.hold()
        time.sleep(0.8)  # a bounded observation window: holding means not moving on
        assert arm.read().position[0] - start[0] < 0.3
    finally:
        arm.close()


def test_joint_impedance_tracks_references(franka_sim):
    arm = make(franka_sim, mode="joint_impedance")
    arm.connect()
    try:
        start = arm.read().position
        arm.enable()
        for k in range(1, 11):
            q = start.copy()
            q[0] -= 0.01 * k
            arm.send(q)
            time.sleep(0.05)
        wait_for(lambda: start[0] - arm.read().position[0] > 0.05, 10, "joint 1 to follow")
        assert arm.fault is None
    finally:
        arm.close()


def test_unreachable_address_is_refused_naming_it():
    arm = make("127.0.0.254")  # nothing listens there
    with pytest.raises(ArmError, match=r"Franka fr3 @ 127\.0\.0\.254"):
        arm.connect()
