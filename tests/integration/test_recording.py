"""Recording through the ROS graph: scripted demonstrations, and a human takeover mid-episode."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from std_msgs.msg import Float32
from std_srvs.srv import SetBool, Trigger

from dojo.ros import convert, topics
from episodes.store import EpisodeStore
from robot.schema import ActionChunk, ControlSource
from tests.integration.conftest import dump_logs_on_failure, wait_until

CHUNKS = topics.command_chunk(0.5)  # the driver's default command_deadline

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


def test_dojo_record_two_scripted_episodes(tmp_path, domain_id):
    """Two episodes (five before): the second shows the reset between episodes and a store
    that grows; three more recorded the same thing again."""
    store = tmp_path / "demos.zarr"
    args = [
        *(sys.executable, "-m", "dojo.cli", "record", "episodes=2", f"store={store}"),
        *(f"out={tmp_path / 'run'}", f"ros.domain_id={domain_id}", "recorder.min_free_gb=0.01"),
    ]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=400)
    except subprocess.TimeoutExpired as err:
        partial = (err.stdout or b"").decode() + (err.stderr or b"").decode()
        raise AssertionError(f"dojo record did not finish in 400 s:\n{partial[-6000:]}") from None
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    s = EpisodeStore.open(str(store))
    ids = s.episode_ids()
    assert len(ids) == 2, log[-4000:]
    assert not s.uncommitted_ids()
    report = json.loads((tmp_path / "run" / "episodes.json").read_text())
    for episode_id, summary in zip(ids, report["episodes"], strict=True):
        ep = s.read(episode_id)  # verifies every checksum
        assert ep.instruction == summary["instruction"]
        assert ep.success == summary["success"]
        n = ep.n_steps
        assert n >= 10
        assert np.all(np.diff(np.asarray(ep.t)) > 0)
        sources = set(np.asarray(ep.control_source).tolist())
        assert sources <= {int(ControlSource.SCRIPT), int(ControlSource.HOLD)}
        assert int(ControlSource.SCRIPT) in sources
        assert np.asarray(ep.images["front"]).shape == (n, 240, 320, 3)
        assert np.all(np.isfinite(np.asarray(ep.action)))
    assert "2 committed episodes" in proc.stdout


def test_takeover_mid_episode_is_recorded_with_its_control_source(start_node, probe, tmp_path):
    store = tmp_path / "hil.zarr"
    common = [
        "sim.clock=realtime",
        f"store={store}",
        "recorder.min_free_gb=0.01",
        "intervention.enabled=true",
        "intervention.grace_s=1.0",
        "intervention.stall_s=1.0",
    ]
    probe.record(topics.JOINT_STATES)
    probe.record(topics.DRIVER_COMMAND)
    probe.record(topics.INTERVENTION_ACTIVE)
    probe.record(topics.RECORDER_STATUS)
    nodes = [
        start_node("dojo.nodes.robot_driver", common, "robot_driver", autostart=True),
        start_node("dojo.nodes.recorder", common, "recorder", use_sim_time=True),
        start_node("dojo.nodes.intervention", common, "intervention", use_sim_time=True),
    ]
    policy = CHUNKS.publisher(probe.node)
    critic = topics.CRITIC_PROGRESS.publisher(probe.node)
    progress = [0.0]
    try:
        wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 5, 90, "the driver")
        wait_until(lambda: policy.get_subscription_count() > 0, 30, "the driver's chunk topic")
        wait_until(
            lambda: any(
                json.loads(m.data)["instruction"] for m in probe.got(topics.RECORDER_STATUS)
            ),
            30,
            "the recorder to hear the twin's instruction",
        )
        started = probe.call(topics.EPISODE_START, Trigger.Request(), timeout=60)
        assert started.success, started.message

        # a frozen policy: chunks that hold the current pose, so the person sees a stall
        def frozen_chunk():
            s = convert.joint_state_from_msg(probe.got(topics.JOINT_STATES)[-1], JOINTS)
            times = np.arange(1, 21) * 0.02
            return convert.chunk_to_msg(
                ActionChunk(s.stamp, JOINTS, np.tile(s.position, (20, 1)), times)
            )

        def policy_keeps_publishing_until(predicate, timeout, what):
            def step():
                policy.publish(frozen_chunk())
                progress[0] = min(1.0, progress[0] + 0.001)  # a stand-in critic, monotone
                critic.publish(Float32(data=progress[0]))
                return predicate()

            wait_until(step, timeout, what)

        def sources():
            return [
                convert.command_from_msg(m, JOINTS)[2] for m in probe.got(topics.DRIVER_COMMAND)
            ]

        policy_keeps_publishing_until(
            lambda: ControlSource.POLICY in sources(), 20, "the policy in control"
        )
        policy_keeps_publishing_until(
            lambda: ControlSource.HUMAN in sources(), 30, "the scripted person to take over"
        )
        # the frozen policy keeps publishing during the takeover; none of it may run
        policy_keeps_publishing_until(
            lambda: sources().count(ControlSource.HUMAN) > 100, 30, "100 human ticks"
        )
        stopped = probe.call(topics.EPISODE_STOP, SetBool.Request(data=True), timeout=60)
        assert stopped.success, stopped.message
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure(nodes)}") from None

    live = sources()
    takeover = live.index(ControlSource.HUMAN)
    assert ControlSource.POLICY in live[:takeover]
    assert ControlSource.POLICY not in live[takeover:], "a policy step ran after the takeover"
    assert any(m.data for m in probe.got(topics.INTERVENTION_ACTIVE))

    s = EpisodeStore.open(str(store))
    (episode_id,) = s.episode_ids()
    recorded = np.asarray(s.read(episode_id).control_source).tolist()
    first_human = recorded.index(int(ControlSource.HUMAN))
    assert int(ControlSource.POLICY) in recorded[:first_human]
    assert int(ControlSource.POLICY) not in recorded[first_human:]
    live = np.asarray(s.read(episode_id).rewards["live.critic_progress"])
    assert live.shape == (len(recorded),)
    assert np.all(np.diff(live) >= 0) and live[-1] > live[0]
    result = json.loads(stopped.message)
    assert result["outcome"] == "success" and result["steps"] == len(recorded)
    status = (
        [json.loads(m.data) for m in probe.got(topics.RECORDER_STATUS)]
        if probe.got(topics.RECORDER_STATUS)
        else []
    )
    assert all(not st.get("error") for st in status)


def test_stop_without_start_is_refused_and_names_it(start_node, probe, tmp_path):
    store = tmp_path / "s.zarr"
    probe.record(topics.RECORDER_STATUS)
    node = start_node(
        "dojo.nodes.recorder", [f"store={store}", "recorder.min_free_gb=0.01"], "recorder"
    )
    try:
        response = probe.call(topics.EPISODE_STOP, SetBool.Request(data=True), timeout=60)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure([node])}") from None
    assert not response.success
    assert "without episode/start" in response.message
    start = probe.call(topics.EPISODE_START, Trigger.Request())
    assert not start.success and "instruction" in start.message
    assert EpisodeStore.open(str(store)).episode_ids() == []
