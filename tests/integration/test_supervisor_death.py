"""``dojo run`` killed with ``kill -9`` of its whole process group, as a crash or an OOM kill
would: every node of the graph ends by itself within seconds (PR_SET_PDEATHSIG and the parent
watch in ``dojo.nodes.base``), none is left re-parented to init still on the ROS graph."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil

from dojo.ros import topics
from tests.integration.conftest import wait_until

NODE_MODULES = ("dojo.nodes.robot_driver", "dojo.nodes.scripted_operator")


def _alive(procs: list[psutil.Process]) -> list[int]:
    alive = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_kill_9_of_the_supervisor_leaves_no_node(tmp_path, domain_id, probe):
    probe.record(topics.JOINT_STATES)
    log = (tmp_path / "run.log").open("w")
    run = [sys.executable, "-m", "dojo.cli", "run", "episodes=50", f"out={tmp_path / 'run'}"]
    proc = subprocess.Popen(
        [*run, f"ros.domain_id={domain_id}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, killed whole below
    )
    try:
        parent = psutil.Process(proc.pid)

        def nodes() -> list[psutil.Process]:
            found = []
            for child in parent.children(recursive=True):
                try:
                    if any(m in " ".join(child.cmdline()) for m in NODE_MODULES):
                        found.append(child)
                except psutil.NoSuchProcess:
                    continue
            return found

        wait_until(lambda: len(nodes()) >= len(NODE_MODULES), 60, "the node processes")
        wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 20, 90, "the graph running")
        graph = parent.children(recursive=True)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
        t0 = time.monotonic()
        end = t0 + 5.0
        while _alive(graph) and time.monotonic() < end:
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        left = _alive(graph)
    finally:
        log.close()
        if proc.poll() is None:
            proc.kill()
    output = (tmp_path / "run.log").read_text()
    assert not left, f"node processes {left} outlived dojo run by 5 s:\n{output[-3000:]}"
    print(f"every node gone {elapsed:.2f} s after kill -9 of the supervisor")
    probe.clear(topics.JOINT_STATES)
    time.sleep(0.5)  # bounded: joint states that were in flight have arrived by now
    assert not probe.got(topics.JOINT_STATES), "no driver is left publishing on the graph"
