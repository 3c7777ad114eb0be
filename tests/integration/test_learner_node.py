"""The learner in the graph: episodes committed to the store become a checkpoint the running
policy swaps in, with the driver never holding the arm for it."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from std_srvs.srv import Trigger

from dojo.ros import topics
from episodes.store import EpisodeStore, StoreConfig
from robot.schema import ControlSource
from tests.integration.conftest import dump_logs_on_failure, wait_until
from tests.integration.test_policy_node import CHUNKS, SPEC, tiny_checkpoint

pytestmark = pytest.mark.integration

LEARNER = [
    "learner.reward=sparse",
    "learner.warmup_transitions=8",
    "learner.batch_size=16",
    "learner.hidden=32",
    "learner.checkpoint_every=25",
    "practice.announce_s=0.5",
]


def write_episode(store, k: int) -> None:
    """A short episode near the home pose, half the policy's and half a person's."""
    rng = np.random.default_rng(k)
    w = store.begin("put the red cube in the bin", "pick_place", started_at=float(k))
    home = np.asarray(SPEC.home, dtype=np.float32)
    for i in range(30):
        q = home + 0.01 * rng.normal(size=home.shape).astype(np.float32)
        source = ControlSource.POLICY if i < 15 else ControlSource.HUMAN
        images = {
            c.name: rng.integers(0, 255, (c.height, c.width, 3), dtype=np.uint8)
            for c in SPEC.cameras
        }
        w.append(k * 10.0 + i / 10, q, np.zeros_like(q), q, int(source), images)
    w.commit("success", k % 2 == 0)


def _json(probe, topic) -> dict:
    got = probe.got(topic)
    return json.loads(got[-1].data) if got else {}


# the residual actor on frozen features, and the distillation that fine-tunes the VLA itself
# (its checkpoints are plain compact ones, which the policy node loads the same way)
ACTORS = {
    "residual": [],
    "distil": [
        "learner.actor=distil",
        "learner.distil_steps_per_episode=5",  # one short round: the swap is measured, not the
        "learner.distil_round=10",  # CPU a long fine-tune takes from the policy on two cores
        "learner.distil_threads=1",
    ],
}


@pytest.mark.parametrize("actor", sorted(ACTORS))
def test_committed_episodes_become_a_checkpoint_the_policy_swaps_in_with_no_held_ticks(
    start_node, probe, tmp_path, actor
):
    ckpt = tiny_checkpoint(tmp_path / "sft")
    store_url = str(tmp_path / "practice.zarr")
    store = EpisodeStore.create(store_url, SPEC, 10.0, StoreConfig(min_free_bytes=0, durable=False))
    for t in (
        CHUNKS,
        topics.POLICY_STATUS,
        topics.POLICY_CHECKPOINT,
        topics.LEARNER_STATUS,
        topics.DRIVER_STATUS,
    ):
        probe.record(t)
    driver = start_node("dojo.nodes.robot_driver", [], "robot_driver", autostart=True)
    policy = start_node("dojo.nodes.policy", [f"policy.checkpoint={ckpt}"], "policy")
    learner = start_node(
        "dojo.nodes.learner",
        [f"policy.checkpoint={ckpt}", f"store={store_url}", *LEARNER, *ACTORS[actor]],
        "learner",
    )
    nodes = [driver, policy, learner]
    try:
        probe.call(topics.SIM_RESET, Trigger.Request(), timeout=60)
        wait_until(lambda: len(probe.got(CHUNKS)) >= 3, 90, "chunks from the policy")
        wait_until(lambda: _json(probe, topics.LEARNER_STATUS), 90, "the learner's status")
        assert _json(probe, topics.LEARNER_STATUS)["updates"] == 0  # nothing committed yet
        baseline = _held_per_s(probe, 5.0)  # this machine's own rate, before any swap
        for k in range(2):  # K = 2 committed episodes
            write_episode(store, k)
        wait_until(lambda: probe.got(topics.POLICY_CHECKPOINT), 90, "an announced checkpoint")
        announced = probe.got(topics.POLICY_CHECKPOINT)[-1].data
        assert "/learner/checkpoints/" in announced
        status = _json(probe, topics.LEARNER_STATUS)
        wait_until(
            lambda: _json(probe, topics.LEARNER_STATUS)["episodes"] == 2,
            30,
            "both episodes in the learner",
        )
        status = _json(probe, topics.LEARNER_STATUS)
        assert status["prior"] > 0 and status["online"] > 0 and status["reward_source"] == "sparse"
        wait_until(lambda: "/learner/checkpoints/" in _status_checkpoint(probe), 60, "the swap")
        n = len(probe.got(CHUNKS))
        wait_until(lambda: len(probe.got(CHUNKS)) > n + 3, 60, "chunks from the practised policy")
        swapping = _held_per_s(
            probe, 5.0
        )  # while the learner keeps announcing, the policy swapping
        swaps = _json(probe, topics.POLICY_STATUS).get("swaps", 0)
        assert swaps >= 1
        # a swap happens between two inferences: it must not make the driver hold more often.
        # The distil learner fine-tunes the VLA itself on the same two cores as the policy node
        # here (measured +5 held/s over a 125/s baseline while it trains); on the workstation it
        # trains on the GPU, so only the residual learner's swap is held to the bound on a CPU.
        tolerance = 2.0 if actor == "residual" else 10.0
        assert swapping <= baseline + tolerance, (baseline, swapping, swaps)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{dump_logs_on_failure(nodes)}") from None


def _held_per_s(probe, seconds: float) -> float:
    """Held driver ticks per wall second over the next ``seconds``."""
    wait_until(lambda: _json(probe, topics.DRIVER_STATUS), 30, "the driver's status")
    h0, t0 = _json(probe, topics.DRIVER_STATUS)["held_ticks"], time.monotonic()
    time.sleep(seconds)  # a measurement window, not a wait for a condition
    return (_json(probe, topics.DRIVER_STATUS)["held_ticks"] - h0) / (time.monotonic() - t0)


def _status_checkpoint(probe) -> str:
    return _json(probe, topics.POLICY_STATUS).get("checkpoint", "")
