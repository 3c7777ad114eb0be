"""A node's own run (``dojo.nodes.base.run_to_the_end``) stopped from outside: ``ros2 launch``
and Ctrl-C stop a run mid-way on purpose, so the process exits 0 with its outputs written; a
run that fails on its own still exits 1."""

from __future__ import annotations

import json
import threading

import pytest
import rclpy
from rclpy.node import Node

from dojo.nodes.base import run_to_the_end, wait_until
from dojo.ros import topics
from tests.integration.conftest import wait_until as wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def node(domain_id):
    rclpy.init(domain_id=domain_id)
    node = Node("run_under_test")
    node.exit_code = 0
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


def test_a_wait_ended_by_shutdown_is_a_stop_not_a_failure(node):
    waiting, finished = threading.Event(), threading.Event()

    def run() -> None:
        waiting.set()
        wait_until(lambda: False, 60.0, lambda: "the condition never held")

    thread = run_to_the_end(node, run, finished.set, "test run")
    assert waiting.wait(10), "the run did not start"
    rclpy.shutdown()
    thread.join(timeout=10)
    assert not thread.is_alive(), "the run did not end when rclpy shut down"
    assert finished.is_set(), "the outputs were not written"
    assert node.exit_code == 0


def test_a_run_that_fails_by_itself_exits_1(node):
    finished = threading.Event()

    def run() -> None:
        raise RuntimeError("the twin is gone")

    thread = run_to_the_end(node, run, finished.set, "test run")
    thread.join(timeout=10)
    assert finished.is_set()
    assert node.exit_code == 1
    assert not rclpy.ok(), "a finished run shuts rclpy down, which ends the node"


def test_episode_runner_stopped_by_sigint_exits_0_with_its_report(start_node, tmp_path):
    """No driver in the graph: the runner waits for ``sim/reset``; SIGINT then stops it."""
    runner = start_node("dojo.nodes.episode_runner", ["episodes=3"], "episode_runner")
    reset = topics.SIM_RESET.name
    wait_for(  # the run thread is waiting (a SIGINT while the node is built ends it before)
        lambda: f"waiting for {reset}" in runner.output() or runner.proc.poll() is not None,
        60,
        f"the runner to wait for {reset}",
    )
    assert runner.proc.poll() is None, runner.output()
    assert runner.stop() == 0, runner.output()  # SIGINT
    assert "stopped by shutdown" in runner.output()
    report = json.loads((tmp_path / "episodes.json").read_text())
    assert report["total"] == 0, report
