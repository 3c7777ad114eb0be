"""The critic node: live progress from published frames; a failed or NaN inference publishes
nothing and says so on ``critic/status``."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from std_msgs.msg import String

from critic.models.compact import CompactConfig, CompactCritic, CompactCriticNet
from dojo.ros import convert, topics
from tests.critic.conftest import FakeText, H, W, instruction, square_frames
from tests.integration.conftest import dump_logs_on_failure, wait_until

TIMEOUT = 90.0  # wall s: the node imports torch and loads MiniLM before its first answer


def _checkpoint(path, nan: bool = False) -> str:
    cfg = CompactConfig(
        cameras=["front"], camera_sizes={"front": [H, W]}, image_size=[32, 32], widths=[8, 8],
        token_dim=8, embed_dim=16, hidden=16, key_dim=8, ref_frames=4,
    )  # fmt: skip
    net = CompactCriticNet(cfg)
    if nan:  # broken weights: every head answers NaN
        with torch.no_grad():
            net.frame[0].bias.fill_(math.nan)
    CompactCritic(net, text_encoder=FakeText()).save(path)
    return str(path)


def _feeder(probe, frames):
    pub_img = topics.camera_image("front").publisher(probe.node)
    pub_instr = topics.TASK_INSTRUCTION.publisher(probe.node)
    pub_instr.publish(String(data=instruction("red")))
    state = {"k": 0, "frames": frames}

    def tick():
        f = state["frames"]
        pub_img.publish(convert.image_to_msg(f[state["k"] % len(f)], 0.0, "front"))
        state["k"] += 1

    probe.node.create_timer(0.05, tick)
    return state


def _status(probe) -> dict:
    msgs = probe.got(topics.CRITIC_STATUS)
    return json.loads(msgs[-1].data) if msgs else {}


def _watch(probe):
    probe.record(topics.CRITIC_PROGRESS)
    probe.record(topics.CRITIC_DONE)
    probe.record(topics.CRITIC_STATUS)


def test_node_publishes_progress_and_reports_bad_frames(start_node, probe, tmp_path):
    ckpt = _checkpoint(tmp_path / "critic")
    _watch(probe)
    node = start_node(
        "dojo.nodes.critic",
        ["critic.enabled=true", f"critic.checkpoint={ckpt}", "critic.rate_hz=10"],
        "critic",
    )
    state = _feeder(probe, square_frames(20, "red", True))
    try:
        wait_until(lambda: len(probe.got(topics.CRITIC_PROGRESS)) >= 5, TIMEOUT, "critic/progress")
        wait_until(lambda: probe.got(topics.CRITIC_DONE), 10, "critic/done")
        values = [m.data for m in probe.got(topics.CRITIC_PROGRESS)]
        assert all(0.0 <= v <= 1.0 for v in values)
        # frames of another size: nothing more is published, and the status says why
        state["frames"] = np.zeros((1, 48, 64, 3), np.uint8)
        wait_until(lambda: _status(probe).get("failed", 0) > 0, 20, "a failed inference")
        assert "trained on 32x24" in _status(probe)["last_error"]
        probe.clear(topics.CRITIC_PROGRESS)
        published = _status(probe)["published"]
        wait_until(lambda: _status(probe).get("failed", 0) > 3, 20, "more failed inferences")
        assert _status(probe)["published"] == published
        assert not probe.got(topics.CRITIC_PROGRESS)
        # Ctrl-C stops it cleanly (within NodeProcess.stop's bound, or it would be killed)
        assert node.stop() == 0, node.output()[-2000:]
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure([node])}") from None


def test_node_publishes_nothing_on_nan(start_node, probe, tmp_path):
    ckpt = _checkpoint(tmp_path / "critic", nan=True)
    _watch(probe)
    node = start_node(
        "dojo.nodes.critic",
        ["critic.enabled=true", f"critic.checkpoint={ckpt}", "critic.rate_hz=10"],
        "critic",
    )
    _feeder(probe, square_frames(5, "red", True))
    try:
        wait_until(lambda: _status(probe).get("nonfinite", 0) >= 3, TIMEOUT, "NaN inferences")
        status = _status(probe)
        assert status["published"] == 0 and "NaN" in status["last_error"]
        assert not probe.got(topics.CRITIC_PROGRESS) and not probe.got(topics.CRITIC_DONE)
        assert "NaN from the critic" in node.output()
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure([node])}") from None
