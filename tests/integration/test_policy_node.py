"""The policy node against the twin's driver: async chunks, latency, hot swap, bad checkpoints."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from std_msgs.msg import String
from std_srvs.srv import Trigger

from dojo.ros import topics
from policy.compact import save_checkpoint
from policy.models.vla import CompactVLA, VLAConfig
from tests.integration.conftest import dump_logs_on_failure, wait_until
from tests.sim_helpers import robot_spec

CHUNKS = topics.command_chunk(0.5)  # the driver's default command_deadline

SPEC = robot_spec("so101")


def tiny_checkpoint(
    path, joint_names=SPEC.joint_names, cameras=("front", "wrist"), action_std: float = 1e-3
):
    """An untrained compact VLA whose outputs sit at the home pose (std ``action_std`` rad,
    1 mrad by default): safe to run."""
    cfg = VLAConfig(
        joint_names=list(joint_names),
        cameras=list(cameras),
        image_size=(24, 32),
        dim=32,
        depth=1,
        heads=2,
        vision_widths=(16, 32),
        horizon=10,
        chunk_dt=0.1,
        dropout=0.0,
    )
    model = CompactVLA(cfg)
    d = len(joint_names)
    home = SPEC.home if d == SPEC.dof else np.zeros(d)
    model.set_stats(np.zeros(d), np.ones(d), home, np.full(d, action_std))
    return save_checkpoint(model, path)


def _listen(probe):
    probe.record(CHUNKS)
    probe.record(topics.POLICY_LATENCY)
    probe.record(topics.POLICY_STATUS)


def _status(probe) -> dict:
    got = probe.got(topics.POLICY_STATUS)
    return json.loads(got[-1].data) if got else {}


@pytest.fixture(scope="module")
def graph(module_start_node, module_probe, tmp_path_factory):
    """One driver and policy for the tests that only watch it or swap its weights (the node
    goes on running either way)."""
    start_node, probe = module_start_node, module_probe
    ckpt = tiny_checkpoint(tmp_path_factory.mktemp("policy") / "ckpt1")
    _listen(probe)
    driver = start_node("dojo.nodes.robot_driver", [], "robot_driver", autostart=True)
    policy = start_node("dojo.nodes.policy", [f"policy.checkpoint={ckpt}"], "policy")
    nodes = [driver, policy]
    try:
        probe.call(topics.SIM_RESET, Trigger.Request(), timeout=60)
        wait_until(lambda: len(probe.got(CHUNKS)) >= 3, 90, "chunks from the policy")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure(nodes)}") from None
    return nodes, ckpt


# Tests with a graph of their own come first: the module's shared graph runs from its
# first test to the module's end, and would load the machine under theirs.


def test_a_checkpoint_for_another_robot_stops_the_node_before_any_chunk(
    start_node, probe, tmp_path
):
    probe.record(CHUNKS)
    ckpt = tiny_checkpoint(tmp_path / "other", joint_names=["a", "b", "c", "d"])
    node = start_node("dojo.nodes.policy", [f"policy.checkpoint={ckpt}"], "policy")
    wait_until(lambda: node.proc.poll() is not None, 60, "the policy node to exit")
    assert node.proc.returncode != 0
    out = node.output()
    assert "trained for joints ['a', 'b', 'c', 'd']" in out and "so101" in out
    assert probe.got(CHUNKS) == []


def test_the_policy_streams_stamped_chunks_and_their_latency(graph, module_probe):
    probe = module_probe
    chunks = probe.got(CHUNKS)
    assert list(chunks[0].joint_names) == list(SPEC.joint_names)
    assert len(chunks[0].points) == 10
    stamps = [c.header.stamp.sec + c.header.stamp.nanosec * 1e-9 for c in chunks]
    assert all(b > a for a, b in itertools.pairwise(stamps))  # fresh observations
    wait_until(lambda: len(probe.got(topics.POLICY_LATENCY)) >= 3, 30, "latency messages")
    assert all(0 < m.data < 5.0 for m in probe.got(topics.POLICY_LATENCY))


def test_hot_swap_keeps_running_and_a_bad_checkpoint_keeps_the_old_weights(
    graph, module_probe, tmp_path
):
    probe = module_probe
    nodes, ckpt = graph
    pub = topics.POLICY_CHECKPOINT.publisher(probe.node)
    bad = tmp_path / "bad"
    tiny_checkpoint(bad)
    weights = bad / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    try:
        pub.publish(String(data=str(bad)))
        wait_until(
            lambda: "swap_failed" in _status(probe).get("last_event", ""), 60, "the failed swap"
        )
        assert "corrupt or truncated" in _status(probe)["last_event"]
        assert _status(probe)["checkpoint"] == str(ckpt)
        n = len(probe.got(CHUNKS))
        wait_until(lambda: len(probe.got(CHUNKS)) > n + 2, 60, "chunks after the failure")
        good = tiny_checkpoint(tmp_path / "ckpt2")
        pub.publish(String(data=str(good)))
        wait_until(lambda: _status(probe).get("checkpoint") == str(good), 60, "the swap")
        assert _status(probe)["swaps"] == 1
        n = len(probe.got(CHUNKS))
        wait_until(lambda: len(probe.got(CHUNKS)) > n + 2, 60, "chunks after the swap")
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure(nodes)}") from None
