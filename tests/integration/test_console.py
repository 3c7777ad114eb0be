"""A person at the keyboard, through ``dojo record``: the test plays the person's terminal.

``dojo record`` runs with a pseudo-terminal as its controlling terminal and standard input,
exactly as in an ssh session; bytes written on the master side are keys the person types.
The keys travel the real path: the ``dojo record`` process relays them to the intervention
node's pseudo-terminal, the keyboard device turns them into engage, motion and buttons, and
the operator console turns the buttons into episodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import psutil

from dojo.ros import convert, topics
from episodes.store import EpisodeStore
from robot.schema import ControlSource
from tests.integration.conftest import wait_until

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
START_S = 150.0  # wall s for the graph to come up on a small machine
ROOT = Path(__file__).resolve().parents[2]
# the child becomes a session leader whose controlling terminal is the pseudo-terminal on its
# stdin (what a login or ssh session sets up), then runs dojo
IN_A_TERMINAL = (
    "import fcntl, os, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'dojo.cli', *sys.argv[1:]])"
)


class Terminal:
    """``dojo <args>`` in a pseudo-terminal of its own; output goes to a log file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.master, self.slave = pty.openpty()
        self.before = termios.tcgetattr(self.slave)
        self.log = log
        self._fh = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", IN_A_TERMINAL, *args],
            stdin=self.slave,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )

    def output(self) -> str:
        if not self._fh.closed:
            self._fh.flush()
        return self.log.read_text(errors="replace")

    def type(self, keys: bytes, pause: float = 0.3) -> None:
        """Type keys; the pause keeps a lone Esc from joining the next key (Alt+key)."""
        os.write(self.master, keys)
        time.sleep(pause)

    def wait_for_text(self, text: str, timeout: float) -> None:
        wait_until(
            lambda: text in self.output() or self.proc.poll() is not None, timeout, repr(text)
        )
        assert text in self.output(), f"dojo exited ({self.proc.returncode}) before {text!r}"

    def close(self) -> None:
        """Ctrl-C if still running, then make sure no node it started outlives the test."""
        nodes = []
        if self.proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                nodes = psutil.Process(self.proc.pid).children(recursive=True)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for node in nodes:
            with contextlib.suppress(psutil.Error):
                node.send_signal(signal.SIGINT)
        _, alive = psutil.wait_procs(nodes, timeout=10)
        for node in alive:
            with contextlib.suppress(psutil.Error):
                node.kill()
        self._fh.close()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def statuses(probe) -> list[dict]:
    return [json.loads(m.data) for m in probe.got(topics.RECORDER_STATUS)]


def test_a_person_records_episodes_with_the_keyboard(tmp_path, domain_id, probe):
    store, out = tmp_path / "demos.zarr", tmp_path / "run"
    probe.record(topics.RECORDER_STATUS)
    probe.record(topics.INTERVENTION_ACTIVE)
    probe.record(topics.DRIVER_COMMAND)
    term = Terminal(
        [
            "record",
            "sim.clock=realtime",
            "intervention.enabled=true",
            "intervention.device=keyboard",
            f"store={store}",
            "episodes=2",
            f"out={out}",
            f"ros.domain_id={domain_id}",
            "recorder.min_free_gb=0.01",
        ],
        tmp_path / "record.log",
    )

    def recording(episode_not: str = "") -> bool:
        return any(s["recording"] and s["episode"] != episode_not for s in statuses(probe))

    def human_ticks() -> int:
        sources = [convert.command_from_msg(m, JOINTS)[2] for m in probe.got(topics.DRIVER_COMMAND)]
        return sources.count(ControlSource.HUMAN)

    try:
        term.wait_for_text("intervention ready: person=keyboard", START_S)
        term.wait_for_text("press Esc to reset the scene and start episode 1/2", START_S)
        assert "Esc  reset" in term.output()  # the device's keys are shown

        term.type(b"\x1b")  # Esc: reset the scene, start episode 1
        wait_until(recording, 60, "episode 1 to start recording")
        first = next(s["episode"] for s in statuses(probe) if s["recording"])
        term.type(b" ")  # engage: the person takes control
        wait_until(lambda: any(m.data for m in probe.got(topics.INTERVENTION_ACTIVE)), 20, "engage")
        for key in b"wwwrr":
            term.type(bytes([key]), pause=0.15)
        wait_until(lambda: human_ticks() > 50, 30, "50 ticks under the person's control")
        wait_until(lambda: any(s["written"] >= 10 for s in statuses(probe)), 30, "10 steps written")
        term.type(b"\n")  # Enter: success
        wait_until(
            lambda: any(s.get("committed", 0) >= 1 for s in statuses(probe)), 60, "the commit"
        )
        term.wait_for_text("SUCCESS after", 20)

        term.type(b"\x1b")  # Esc: the scene is reset, next episode
        wait_until(lambda: recording(episode_not=first), 60, "episode 2 to start recording")
        term.type(b"\x7f")  # Backspace: failure; the second of two: the run ends
        term.proc.wait(timeout=90)
        after = termios.tcgetattr(term.slave)
    except (AssertionError, subprocess.TimeoutExpired) as err:
        raise AssertionError(f"{err}\n--- dojo record\n{term.output()[-8000:]}") from None
    finally:
        term.close()

    log = term.output()
    assert term.proc.returncode == 0, log[-6000:]
    assert "operator_console finished" in log
    assert "2 committed episodes" in log
    assert after == term.before, "the terminal was not restored"
    s = EpisodeStore.open(str(store))
    ids = s.episode_ids()
    assert len(ids) == 2 and not s.uncommitted_ids()
    one, two = (s.read(i) for i in ids)
    assert one.success and not two.success
    recorded = set(np.asarray(one.control_source).tolist())
    assert int(ControlSource.HUMAN) in recorded, recorded
    human = np.asarray(one.action)[np.asarray(one.control_source) == int(ControlSource.HUMAN)]
    assert np.abs(human[-1] - human[0]).max() > 1e-3, "the keys did not move the arm"
    assert one.n_steps >= 10
    report = json.loads((out / "episodes.json").read_text())
    assert report["total"] == 2 and report["succeeded"] == 1
    assert [e["outcome"] for e in report["episodes"]] == ["success", "failure"]
    assert report["episodes"][0]["instruction"] == one.instruction


def test_ctrl_c_reaches_only_dojo_which_stops_the_driver_first(tmp_path, domain_id, probe):
    probe.record(topics.INTERVENTION_ACTIVE)
    term = Terminal(
        [
            "run",
            "sim.clock=realtime",
            "intervention.enabled=true",
            "intervention.device=keyboard",
            f"out={tmp_path / 'run'}",
            f"ros.domain_id={domain_id}",
        ],
        tmp_path / "run.log",
    )
    exited: dict[str, float] = {}
    try:
        term.wait_for_text("intervention ready: person=keyboard", START_S)
        term.wait_for_text("press Esc to reset the scene and start episode 1/3", START_S)
        nodes = {}
        for child in psutil.Process(term.proc.pid).children(recursive=True):
            for name in ("robot_driver", "intervention", "operator_console"):
                if f"dojo.nodes.{name}" in " ".join(child.cmdline()):
                    nodes[name] = child
        assert sorted(nodes) == ["intervention", "operator_console", "robot_driver"], nodes
        term.type(b" ")  # the person is in control when they press Ctrl-C
        wait_until(lambda: any(m.data for m in probe.got(topics.INTERVENTION_ACTIVE)), 20, "engage")
        term.type(b"\x03", pause=0.0)  # Ctrl-C: the terminal signals its foreground group

        def gone() -> bool:
            for name, proc in nodes.items():
                if name not in exited and _dead(proc):
                    exited.setdefault(name, time.monotonic())
            return len(exited) == len(nodes)

        wait_until(gone, 40, "every node to stop")
        term.proc.wait(timeout=20)
        after = termios.tcgetattr(term.slave)
    except (AssertionError, subprocess.TimeoutExpired, psutil.Error) as err:
        raise AssertionError(f"{err}\n--- dojo run\n{term.output()[-8000:]}") from None
    finally:
        term.close()
    log = term.output()
    assert term.proc.returncode == 130, log[-6000:]
    assert "dojo run: interrupted" in log and "died" not in log
    # the nodes are not in the terminal's process group: the supervisor stops them, driver first
    assert exited["robot_driver"] < exited["intervention"], exited
    assert after == term.before, "the terminal was not restored"


def _dead(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
