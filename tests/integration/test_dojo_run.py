"""``dojo run`` end to end: processes, the twin, the scripted operator, the report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import psutil

from dojo.ros import topics
from tests.integration.conftest import wait_until

DOJO = [sys.executable, "-m", "dojo.cli"]


def test_scripted_episodes_through_the_graph(tmp_path, domain_id):
    out = tmp_path / "run"
    try:
        proc = subprocess.run(
            [*DOJO, "run", "episodes=2", f"out={out}", f"ros.domain_id={domain_id}"],
            capture_output=True,
            text=True,
            timeout=240,
        )
    except subprocess.TimeoutExpired as err:
        partial = (err.stdout or b"").decode() + (err.stderr or b"").decode()
        raise AssertionError(f"dojo run did not finish in 240 s:\n{partial[-6000:]}") from None
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    report = json.loads((out / "episodes.json").read_text())
    assert report["total"] == 2
    assert [e["episode"] for e in report["episodes"]] == [1, 2]
    assert all(e["instruction"].startswith("put the ") for e in report["episodes"])
    assert report["succeeded"] >= 1, log[-6000:]
    sheet = (out / "contact_sheet.png").read_bytes()
    assert sheet[:8] == b"\x89PNG\r\n\x1a\n" and len(sheet) > 10_000
    assert "episode 1/2" in log and "episode 2/2" in log


def test_unknown_preset_fails_before_any_node_starts(tmp_path):
    out = tmp_path / "never"
    proc = subprocess.run(
        [*DOJO, "run", "robot=sim_pand", f"out={out}"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "did you mean 'robot=sim_panda'" in proc.stderr
    assert not out.exists()


def test_a_dead_node_is_reported_and_the_run_stops(tmp_path, domain_id):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*DOJO, "run", "episodes=50", f"out={out}", f"ros.domain_id={domain_id}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        parent = psutil.Process(proc.pid)

        def operator_pid():
            for child in parent.children(recursive=True):
                try:
                    if "dojo.nodes.scripted_operator" in " ".join(child.cmdline()):
                        return child.pid
                except psutil.NoSuchProcess:
                    continue
            return None

        wait_until(lambda: operator_pid() is not None, 60, "the scripted operator process")
        nodes = parent.children(recursive=True)
        psutil.Process(operator_pid()).kill()
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "node 'scripted_operator' died" in output
    alive = [n.pid for n in nodes if n.is_running() and n.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"node processes {alive} outlived dojo run"


def test_ctrl_c_stops_every_node_cleanly(tmp_path, domain_id, probe):
    probe.record(topics.JOINT_STATES)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [*DOJO, "run", "episodes=50", f"out={out}", f"ros.domain_id={domain_id}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        parent = psutil.Process(proc.pid)
        wait_until(lambda: len(parent.children()) >= 3, 60, "the three node processes")
        nodes = parent.children(recursive=True)
        wait_until(lambda: len(probe.got(topics.JOINT_STATES)) > 20, 90, "the graph to be running")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, output[-4000:]
    assert "dojo run: interrupted" in output
    assert "died" not in output, "a clean stop reports no dead node"
    alive = [n.pid for n in nodes if n.is_running() and n.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"node processes {alive} outlived dojo run"
