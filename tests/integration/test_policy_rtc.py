"""What comes back from the driver to the policy node: the committed plan (real-time chunking
through the graph) and refusals (the node re-plans at once)."""

from __future__ import annotations

import itertools
import json

import numpy as np
from std_srvs.srv import Trigger

from dojo.ros import convert, topics
from robot.executor import committed_prefix
from tests.integration.conftest import dump_logs_on_failure, wait_until
from tests.integration.test_policy_node import SPEC, tiny_checkpoint

CHUNKS = topics.command_chunk(0.5)  # the driver's default command_deadline


def _status(probe) -> dict:
    got = probe.got(topics.POLICY_STATUS)
    return json.loads(got[-1].data) if got else {}


def _start(start_node, probe, tmp_path, driver_overrides, policy_overrides):
    # outputs 50 mrad about home: two free predictions never agree to 1e-5 rad by chance
    ckpt = tiny_checkpoint(tmp_path / "ckpt", action_std=0.05)
    probe.record(CHUNKS)
    probe.record(topics.DRIVER_PLAN)
    probe.record(topics.POLICY_STATUS)
    driver = start_node("dojo.nodes.robot_driver", driver_overrides, "robot_driver", autostart=True)
    policy = start_node(
        "dojo.nodes.policy", [f"policy.checkpoint={ckpt}", *policy_overrides], "policy"
    )
    nodes = [driver, policy]
    try:
        probe.call(topics.SIM_RESET, Trigger.Request(), timeout=60)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure(nodes)}") from None
    return nodes


def _first_step_gaps(probe) -> list[float]:
    """For each chunk whose predecessor's plan (the one the driver published on taking it) is
    on record: how far its first step is from that plan's target at that time (rad, max over
    joints). Zero where the node passed the plan as the committed prefix."""
    chunks = [convert.chunk_from_msg(m) for m in probe.got(CHUNKS)]
    plans = [convert.plan_from_msg(m, SPEC.joint_names) for m in probe.got(topics.DRIVER_PLAN)]
    plans = {p.stamp: p for p in plans if p is not None}
    gaps = []
    for before, chunk in itertools.pairwise(chunks):
        plan = plans.get(before.stamp)
        expected = committed_prefix(plan, chunk.stamp, 0.1, 0.1)  # one step
        if expected is not None:
            gaps.append(float(np.abs(chunk.positions[0] - expected[0]).max()))
    return gaps


def test_with_rtc_each_chunk_begins_with_the_drivers_committed_plan(start_node, probe, tmp_path):
    rtc = ["executor.blend=rtc"]
    nodes = _start(start_node, probe, tmp_path, rtc, rtc)
    try:
        wait_until(lambda: _status(probe).get("prefixed", 0) >= 3, 90, "3 chunks with a prefix")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure(nodes)}") from None
    gaps = _first_step_gaps(probe)
    assert len(gaps) >= 2, "the plans the chunks continued are not on record"
    # the model returns the committed targets exactly (float32 inside)
    assert max(gaps) < 1e-5, gaps
    assert _status(probe)["prefix_steps"] >= 1


def test_without_rtc_no_plan_is_continued(start_node, probe, tmp_path):
    """The control for the test above: the same check fails where no prefix is passed."""
    nodes = _start(start_node, probe, tmp_path, [], [])
    try:
        wait_until(lambda: _status(probe).get("chunks", 0) >= 4, 90, "4 chunks")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure(nodes)}") from None
    gaps = _first_step_gaps(probe)
    assert len(gaps) >= 2 and min(gaps) > 1e-4, gaps
    assert _status(probe)["prefixed"] == 0


def test_a_refused_chunk_is_replanned_at_once(start_node, probe, tmp_path):
    # The driver refuses every chunk (1 s long > max_horizon 0.5 s). The policy node hears it
    # on driver/status and asks again at once; without that it would wait for the end of a
    # plan that never ran, 1.0 - replan_horizon 0.4 = 0.6 s of ROS time between chunks.
    nodes = _start(start_node, probe, tmp_path, ["executor.max_horizon=0.5"], [])
    try:
        wait_until(lambda: len(probe.got(CHUNKS)) >= 6, 90, "6 chunks")
        wait_until(lambda: _status(probe).get("chunks", 0) >= 6, 30, "policy/status")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure(nodes)}") from None
    stamps = [convert.from_time(m.header.stamp) for m in probe.got(CHUNKS)]
    gaps = np.diff(stamps)
    assert np.median(gaps) < 0.3, f"ROS s between chunks: {gaps}"
    assert _status(probe)["refused"] >= 5
    assert "chunk_refused" in _status(probe)["last_event"]
    assert "too long" in _status(probe)["last_event"]
