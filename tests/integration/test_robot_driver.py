"""The robot_driver node against the twin, over real DDS, from another process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from std_msgs.msg import Bool
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from dojo.ros import convert, topics
from robot.schema import ActionChunk, ControlSource
from tests.integration.conftest import dump_logs_on_failure, wait_until

CHUNKS = topics.command_chunk(0.5)  # the driver's default command_deadline
CHANGE_STATE = topics.Service("robot_driver/change_state", ChangeState)  # lifecycle

REALTIME = ["sim.clock=realtime"]
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
PERIOD = 1 / 50


def _listen(probe) -> None:
    probe.record(topics.JOINT_STATES)
    probe.record(topics.DRIVER_COMMAND)
    probe.record(topics.DRIVER_STATUS)


def _latest_state(probe):
    return convert.joint_state_from_msg(probe.got(topics.JOINT_STATES)[-1], JOINTS)


def _commands(probe):
    return [convert.command_from_msg(m, JOINTS) for m in probe.got(topics.DRIVER_COMMAND)]


def _chunk_from_now(probe, delta: np.ndarray, seconds: float, steps: int = 25) -> JointTrajectory:
    state = _latest_state(probe)
    times = np.linspace(seconds / steps, seconds, steps)
    positions = state.position + np.outer(times / seconds, delta)
    return convert.chunk_to_msg(ActionChunk(state.stamp, JOINTS, positions, times))


def _start_driver(start_node, probe):
    _listen(probe)
    node = start_node("dojo.nodes.robot_driver", REALTIME, "robot_driver", autostart=True)
    chunk_pub = CHUNKS.publisher(probe.node)
    try:
        wait_until(
            lambda: len(probe.got(topics.JOINT_STATES)) > 5, 60, "joint states from the driver"
        )
        wait_until(lambda: chunk_pub.get_subscription_count() > 0, 20, "driver subscribed")
    except AssertionError:
        raise AssertionError(dump_logs_on_failure([node])) from None
    return node, chunk_pub


@pytest.fixture(scope="module")
def shared_driver(module_start_node, module_probe):
    """One driver for the tests that leave no lasting state in it (a chunk that has run out,
    a refused chunk); a test that latches the e-stop gets its own (:func:`fresh_driver`)."""
    return _start_driver(module_start_node, module_probe)


@pytest.fixture
def driver(shared_driver, module_probe):
    """The shared driver, once the previous test's chunk has run out (the arm holding), with
    what the probe heard before cleared. Yields ``(node, chunk_pub)``; the tests' ``probe`` is
    the module's."""
    node, _ = shared_driver
    probe = module_probe
    try:

        def holding() -> bool:
            commands = probe.got(topics.DRIVER_COMMAND)[-1:]
            last = [convert.command_from_msg(m, JOINTS)[2] for m in commands]
            return last == [ControlSource.HOLD] and not _status(probe)["remaining_horizon"]

        wait_until(holding, 10, "the shared driver to be holding")
        for topic in (topics.JOINT_STATES, topics.DRIVER_COMMAND, topics.DRIVER_STATUS):
            probe.clear(topic)
        wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 5, 10, "joint states again")
        wait_until(lambda: probe.got(topics.DRIVER_COMMAND), 10, "driver commands again")
        wait_until(lambda: probe.got(topics.DRIVER_STATUS), 10, "driver status again")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure([node])}") from None
    return shared_driver


@pytest.fixture
def fresh_driver(start_node, probe):
    return _start_driver(start_node, probe)


def _status(probe) -> dict:
    got = probe.got(topics.DRIVER_STATUS)
    return json.loads(got[-1].data) if got else {"remaining_horizon": 1}


# Tests with a graph of their own come first: the module's shared graph runs from its
# first test to the module's end, and would load the machine under theirs.


def test_estop_latches_until_reset(fresh_driver, probe):
    _, chunk_pub = fresh_driver
    estop_pub = topics.ESTOP.publisher(probe.node)
    wait_until(lambda: estop_pub.get_subscription_count() > 0, 20, "driver subscribed to estop")
    delta = np.zeros(6)
    delta[0] = 0.5
    chunk_pub.publish(_chunk_from_now(probe, delta, 2.0))
    wait_until(lambda: _commands(probe)[-1][2] == ControlSource.POLICY, 5, "policy in control")
    estop_pub.publish(Bool(data=True))
    wait_until(lambda: _commands(probe)[-1][2] == ControlSource.HOLD, 5, "hold after e-stop")
    # a fresh chunk does not clear the latch
    probe.clear(topics.DRIVER_COMMAND)
    chunk_pub.publish(_chunk_from_now(probe, -delta, 1.0))
    wait_until(lambda: len(probe.got(topics.DRIVER_COMMAND)) > 25, 5, "commands while e-stopped")
    assert all(src == ControlSource.HOLD for _, _, src in _commands(probe))
    statuses = [json.loads(m.data) for m in probe.got(topics.DRIVER_STATUS)]
    assert statuses and statuses[-1]["estop"] is True
    response = probe.call(topics.ESTOP_RESET, Trigger.Request())
    assert response.success and "reset" in response.message
    chunk_pub.publish(_chunk_from_now(probe, -delta, 1.0))
    wait_until(lambda: _commands(probe)[-1][2] == ControlSource.POLICY, 5, "policy after reset")


def test_lifecycle_configure_then_activate(start_node, probe):
    _listen(probe)
    node = start_node("dojo.nodes.robot_driver", REALTIME, "robot_driver", autostart=False)
    request = ChangeState.Request()
    request.transition.id = Transition.TRANSITION_CONFIGURE
    try:
        assert probe.call(CHANGE_STATE, request, 60).success
    except AssertionError:
        raise AssertionError(dump_logs_on_failure([node])) from None
    assert not probe.got(topics.JOINT_STATES), "inactive: no control loop, no joint states"
    request.transition.id = Transition.TRANSITION_ACTIVATE
    assert probe.call(CHANGE_STATE, request).success
    wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 5, 10, "joint states once active")
    request.transition.id = Transition.TRANSITION_DEACTIVATE
    assert probe.call(CHANGE_STATE, request).success
    probe.clear(topics.JOINT_STATES)
    probe.clear(topics.DRIVER_COMMAND)
    request.transition.id = Transition.TRANSITION_ACTIVATE
    assert probe.call(CHANGE_STATE, request).success
    wait_until(
        lambda: len(probe.got(topics.JOINT_STATES)) > 5, 10, "joint states after re-activation"
    )


def test_joint_states_at_the_control_rate(driver, module_probe):
    probe = module_probe
    probe.clear(topics.JOINT_STATES)
    wait_until(lambda: len(probe.got(topics.JOINT_STATES)) >= 60, 10, "60 joint states")
    stamps = np.array([convert.from_time(m.header.stamp) for m in probe.got(topics.JOINT_STATES)])
    steps = np.diff(stamps)
    assert np.median(steps) == pytest.approx(PERIOD, abs=1e-6)
    assert np.all(steps > 0), "joint state stamps must increase"
    # best effort may lose a message under load, never most of them
    assert np.mean(np.isclose(steps, PERIOD, atol=1e-6)) > 0.8
    assert list(probe.got(topics.JOINT_STATES)[-1].name) == list(JOINTS)


def test_images_at_the_camera_rate_with_intrinsics(driver, module_probe):
    probe = module_probe
    probe.record(topics.camera_image("front"))
    probe.record(topics.camera_info("front"))
    probe.record(topics.camera_image("wrist"))
    wait_until(lambda: len(probe.got(topics.camera_image("front"))) >= 12, 20, "12 front frames")
    wait_until(lambda: len(probe.got(topics.camera_image("wrist"))) >= 3, 10, "wrist frames")
    frames = probe.got(topics.camera_image("front"))
    stamps = np.array([convert.from_time(m.header.stamp) for m in frames])
    assert np.median(np.diff(stamps)) == pytest.approx(1 / 15, abs=PERIOD)
    image, _ = convert.image_from_msg(frames[-1])
    assert image.shape == (240, 320, 3)
    assert image.std() > 5, "a rendered frame is not blank"
    wait_until(lambda: probe.got(topics.camera_info("front")), 5, "camera_info")
    w, h, k = convert.camera_info_from_msg(probe.got(topics.camera_info("front"))[-1])
    assert (w, h) == (320, 240)
    assert k[0, 2] == pytest.approx(160, abs=1) and k[1, 2] == pytest.approx(120, abs=1)


def test_a_published_chunk_moves_the_arm(driver, module_probe):
    probe = module_probe
    _, chunk_pub = driver
    start = _latest_state(probe).position.copy()
    delta = np.zeros(6)
    delta[0] = 0.3
    chunk_pub.publish(_chunk_from_now(probe, delta, 1.0))
    wait_until(
        lambda: _latest_state(probe).position[0] - start[0] > 0.2, 10, "shoulder_pan to move"
    )
    sources = {s for _, _, s in _commands(probe)}
    assert ControlSource.POLICY in sources


def test_a_nan_chunk_holds_the_arm_and_names_the_joint(driver, module_probe):
    probe = module_probe
    _, chunk_pub = driver
    msg = _chunk_from_now(probe, np.full(6, 0.2), 1.0)
    bad = list(msg.points[3].positions)
    bad[2] = float("nan")
    msg.points[3].positions = bad
    probe.clear(topics.DRIVER_COMMAND)
    chunk_pub.publish(msg)

    def refusal_reported():
        statuses = [json.loads(m.data) for m in probe.got(topics.DRIVER_STATUS)]
        return any(s["refused"] >= 1 and "elbow_flex" in s["last_refusal"] for s in statuses)

    wait_until(refusal_reported, 10, "driver/status to report the refused chunk")
    wait_until(
        lambda: len(probe.got(topics.DRIVER_COMMAND)) > 20, 5, "commands after the NaN chunk"
    )
    commands = _commands(probe)
    assert all(src == ControlSource.HOLD for _, _, src in commands)
    held = np.array([c for _, c, _ in commands])
    assert np.all(np.isfinite(held))
    assert np.ptp(held, axis=0).max() < 1e-9, "the arm must not move on a NaN chunk"


def test_silent_policy_holds_within_one_period_after_its_chunk(driver, module_probe):
    probe = module_probe
    _, chunk_pub = driver
    msg = _chunk_from_now(probe, np.full(6, 0.05), 0.5)
    chunk = convert.chunk_from_msg(msg)
    chunk_pub.publish(msg)
    wait_until(
        lambda: _commands(probe) and _commands(probe)[-1][0] > chunk.end_time + 0.2,
        10,
        "ticks past the end of the chunk",
    )
    after = [(t, src) for t, _, src in _commands(probe) if t > chunk.stamp]
    policy_ticks = [t for t, src in after if src == ControlSource.POLICY]
    assert policy_ticks, "the chunk was executed"
    assert max(policy_ticks) <= chunk.end_time + 1e-9, "no policy action after the chunk ends"
    first_hold = min(t for t, src in after if src == ControlSource.HOLD and t > max(policy_ticks))
    assert first_hold - chunk.end_time <= PERIOD + 1e-9
