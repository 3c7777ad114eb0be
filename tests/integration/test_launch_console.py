"""A person at the keyboard beside ``ros2 launch``: the launch starts the graph without the
person's side and prints the ``dojo console`` line; the person runs it in a terminal of their
own (here a pseudo-terminal, as an ssh session), their keys drive the twin, an episode is
recorded and judged, and when the console is done the launch ends with the driver deactivated
first and every process finished cleanly."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from dojo.ros import convert, topics
from episodes.store import EpisodeStore
from robot.schema import ControlSource
from tests.integration.conftest import wait_until
from tests.integration.test_console import JOINTS, START_S, Terminal
from tests.integration.test_launch_shell import HOW_TO, ROS2, _env, _installed

pytestmark = pytest.mark.integration


def test_dojo_console_joins_a_launched_graph_and_the_launch_obeys_its_keys(
    tmp_path, domain_id, probe
):
    if not Path(ROS2).exists():
        pytest.skip(HOW_TO)
    _installed()
    store, out = tmp_path / "demos.zarr", tmp_path / "run"
    probe.record(topics.RECORDER_STATUS)
    probe.record(topics.INTERVENTION_ACTIVE)
    probe.record(topics.DRIVER_COMMAND)
    log = (tmp_path / "launch.log").open("w")
    launch = subprocess.Popen(
        [
            ROS2,
            "launch",
            "vla_dojo",
            "record.launch.py",
            f"store:={store}",
            "intervention_enabled:=true",
            "intervention_device:=keyboard",
            f"domain_id:={domain_id}",
            f"out:={out}",
            "overrides:=episodes=1 sim.clock=realtime recorder.min_free_gb=0.01",
        ],
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    term = None

    def launched() -> str:
        if not log.closed:
            log.flush()
        return (tmp_path / "launch.log").read_text(errors="replace")

    def statuses() -> list[dict]:
        return [json.loads(m.data) for m in probe.got(topics.RECORDER_STATUS)]

    def human_ticks() -> int:
        sources = [convert.command_from_msg(m, JOINTS)[2] for m in probe.got(topics.DRIVER_COMMAND)]
        return sources.count(ControlSource.HUMAN)

    try:
        wait_until(lambda: "dojo console out=" in launched(), START_S, "the console line")
        line = re.search(r"(dojo console out=\S+.*)$", launched(), re.MULTILINE).group(1)
        assert line.split() == ["dojo", "console", f"out={out}"], line
        # the person's terminal: exactly the line the launch printed
        term = Terminal(line.split()[1:], tmp_path / "console.log")
        term.wait_for_text("intervention ready: person=keyboard", START_S)
        term.wait_for_text("press Esc to reset the scene and start episode 1/1", START_S)
        wait_until(lambda: "console has joined" in launched(), 20, "the launch to see it")
        term.type(b"\x1b")  # Esc: the twin resets, the recorder starts episode 1
        wait_until(lambda: any(s["recording"] for s in statuses()), 60, "recording")
        term.type(b" ")  # engage: the person takes control of the launched driver
        wait_until(lambda: any(m.data for m in probe.got(topics.INTERVENTION_ACTIVE)), 20, "engage")
        for key in b"wwwrr":
            term.type(bytes([key]), pause=0.15)
        wait_until(lambda: human_ticks() > 50, 30, "50 ticks under the person's control")
        wait_until(lambda: any(s["written"] >= 10 for s in statuses()), 30, "10 steps written")
        term.type(b"\n")  # Enter: success; the one episode: the console is done
        term.proc.wait(timeout=90)
        launch.wait(timeout=90)  # and the launch with it
    except (AssertionError, subprocess.TimeoutExpired) as err:
        console = term.output()[-5000:] if term else ""
        raise AssertionError(
            f"{err}\n--- ros2 launch\n{launched()[-6000:]}\n--- dojo console\n{console}"
        ) from None
    finally:
        if term is not None:
            term.close()
        if launch.poll() is None:
            launch.send_signal(signal.SIGINT)
            try:
                launch.wait(timeout=30)
            except subprocess.TimeoutExpired:
                launch.kill()
                launch.wait(timeout=5)
        log.close()

    output, console = launched(), term.output()
    assert term.proc.returncode == 0, console[-4000:]
    assert "dojo console: operator_console finished" in console
    assert launch.returncode == 0, output[-6000:]
    assert "console (dojo console) has left the graph" in output
    assert "robot_driver deactivated before shutdown: True" in output
    # the launch started the graph without the person's side, which ran in their terminal
    started = re.findall(r"\[INFO\] \[([a-z_]+)-\d+\]: process started", output)
    graph = ["recorder", "robot_driver", "scripted_operator"]  # the script drives till takeover
    assert sorted(started) == graph, started
    finished = re.findall(r"\[INFO\] \[([a-z_]+)-\d+\]: process has finished cleanly", output)
    assert sorted(finished) == graph, output[-4000:]
    s = EpisodeStore.open(str(store))
    (episode_id,) = s.episode_ids()
    episode = s.read(episode_id)
    assert episode.success
    human = np.asarray(episode.action)[np.asarray(episode.control_source) == ControlSource.HUMAN]
    assert len(human) and np.abs(human[-1] - human[0]).max() > 1e-3, "the keys moved nothing"
    report = json.loads((out / "episodes.json").read_text())
    assert [e["outcome"] for e in report["episodes"]] == ["success"]


def test_a_console_whose_graph_has_gone_stops(tmp_path, domain_id):
    """The launch stopped under the console (Ctrl-C there, or a crash): the console does not
    wait on to join the next graph on this domain; it says why and exits 1."""
    if not Path(ROS2).exists():
        pytest.skip(HOW_TO)
    _installed()
    out = tmp_path / "run"
    log = (tmp_path / "launch.log").open("w")
    launch = subprocess.Popen(
        [
            ROS2,
            "launch",
            "vla_dojo",
            "dojo.launch.py",
            "intervention_enabled:=true",
            "intervention_device:=keyboard",
            f"domain_id:={domain_id}",
            f"out:={out}",
            "overrides:=sim.clock=realtime",
        ],
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    term = None

    def launched() -> str:
        if not log.closed:
            log.flush()
        return (tmp_path / "launch.log").read_text(errors="replace")

    try:
        wait_until(lambda: "dojo console out=" in launched(), START_S, "the console line")
        term = Terminal(["console", f"out={out}"], tmp_path / "console.log")
        term.wait_for_text("press Esc to reset the scene and start episode 1/3", START_S)
        wait_until(lambda: "console has joined" in launched(), 20, "the launch to see it")
        launch.send_signal(signal.SIGINT)  # the lab engineer's Ctrl-C on the launch
        launch.wait(timeout=60)
        stopped = time.monotonic()
        term.proc.wait(timeout=30)
        took = time.monotonic() - stopped
    except (AssertionError, subprocess.TimeoutExpired) as err:
        console = term.output()[-5000:] if term else ""
        raise AssertionError(
            f"{err}\n--- ros2 launch\n{launched()[-6000:]}\n--- dojo console\n{console}"
        ) from None
    finally:
        if term is not None:
            term.close()
        if launch.poll() is None:
            launch.kill()
            launch.wait(timeout=5)
        log.close()
    console = term.output()
    assert term.proc.returncode == 1, console[-4000:]
    assert "the graph's robot_driver has gone" in console, console[-4000:]
    assert took < 15, f"the console took {took:.1f} s to notice"
