"""The operator's console without ROS: the episode state machine, the status line, the key
relay from the person's terminal, and how the graph and ``dojo run`` use them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from dojo import conf, graph
from dojo.console.display import StatusDisplay
from dojo.console.keys import KeyRelay, TerminalError
from dojo.console.session import Console, ConsolePhase, Op, Request, button_labels
from dojo.graph import NodeSpec
from dojo.supervisor import Supervisor
from teleop.registry import make_device

RESET, START, ABORT = Request(Op.RESET_SCENE), Request(Op.START), Request(Op.ABORT)
STOP_OK, STOP_FAIL = Request(Op.STOP, success=True), Request(Op.STOP, success=False)
FINISH = Request(Op.FINISH)


def committed(steps: int) -> str:
    return json.dumps({"episode": "ep", "outcome": "x", "steps": steps, "dropped": 0})


def start_episode(c: Console, now: float, instruction: str = "put the red cube in the bin"):
    """Reset pressed in the twin: sim/reset, then episode/start, both answered."""
    assert c.button("reset", now) == [RESET]
    assert c.phase is ConsolePhase.RESETTING
    assert c.recorder_status({"instruction": instruction}, now) == []  # heard before the reply
    assert c.done(RESET, True, instruction, now) == [START]
    assert c.phase is ConsolePhase.STARTING
    assert c.done(START, True, "ep: " + instruction, now) == []
    assert c.phase is ConsolePhase.RECORDING


# -- the state machine ----------------------------------------------------------------------


def test_start_waits_until_the_recorder_has_the_reset_instruction():
    c = Console(0, sim=True)
    c.recorder_status({"instruction": "put the red cube in the bin"}, 1.0)
    assert c.button("reset", 1.0) == [RESET]
    # the reply comes first; the recorder still has the previous scene's instruction
    assert c.done(RESET, True, "put the blue cube in the bin", 1.5) == []
    assert c.phase is ConsolePhase.STARTING and c.pending is None
    assert c.button("success", 1.6) == []  # busy
    assert c.recorder_status({"instruction": "put the red cube in the bin"}, 2.0) == []
    assert c.recorder_status({"instruction": "put the blue cube in the bin"}, 2.1) == [START]
    assert c.done(START, True, "ep: put the blue cube in the bin", 2.2) == []
    assert c.phase is ConsolePhase.RECORDING


def test_a_recorder_that_never_hears_the_instruction_sends_the_person_back_to_waiting():
    c = Console(0, sim=True)
    assert c.button("reset", 1.0) == [RESET]
    assert c.done(RESET, True, "put the blue cube in the bin", 1.0) == []
    assert c.tick(10.0) == []
    assert c.tick(17.0) == []
    assert c.phase is ConsolePhase.WAITING
    assert "still has instruction None" in " / ".join(c.take_messages())
    assert c.recorder_status({"instruction": "put the blue cube in the bin"}, 18.0) == []


def test_twin_episodes_wait_for_reset_then_record_then_stop_until_n():
    c = Console(2, sim=True)
    assert c.phase is ConsolePhase.WAITING and "press Esc" not in c.prompt()  # no labels given
    start_episode(c, 10.0)
    assert c.button("success", 14.5) == [STOP_OK]
    assert c.phase is ConsolePhase.STOPPING
    assert c.done(STOP_OK, True, committed(45), 15.0) == []
    assert c.phase is ConsolePhase.WAITING and c.counted == 1
    start_episode(c, 20.0, "put the blue cube in the bin")
    assert c.button("failure", 23.0) == [STOP_FAIL]
    assert c.done(STOP_FAIL, True, committed(30), 23.2) == [FINISH]
    assert c.finished
    summary = c.summary()
    assert summary["succeeded"] == 1 and summary["total"] == 2
    first, second = summary["episodes"]
    assert first["outcome"] == "success" and first["steps"] == 45
    assert first["duration_s"] == pytest.approx(4.5)
    assert first["instruction"] == "put the red cube in the bin"
    assert second["outcome"] == "failure" and second["episode"] == 2
    assert second["instruction"] == "put the blue cube in the bin"
    messages = " / ".join(c.take_messages())
    assert "episode 1/2 recording" in messages and "SUCCESS after 4.5 s, 45 steps" in messages
    assert "done: 1/2 episodes succeeded" in messages


def test_on_a_robot_reset_only_starts_the_next_episode():
    c = Console(1, sim=False)
    assert "reset the scene, then press" in c.prompt()
    assert c.button("reset", 1.0) == [START]  # no sim/reset: the person reset the scene
    assert c.done(START, True, "ep", 1.0) == []
    assert c.button("success", 2.0) == [STOP_OK]
    assert c.done(STOP_OK, True, committed(10), 2.0) == [FINISH]


def test_buttons_while_busy_or_waiting_are_ignored_never_queued():
    c = Console(3, sim=True, labels={"success": "Enter", "failure": "Backspace", "reset": "Esc"})
    assert c.button("success", 0.5) == []  # nothing to end yet
    assert "Enter ignored: no episode running" in c.take_messages()[0]
    assert c.button("reset", 1.0) == [RESET]
    for name in ("reset", "success", "failure"):
        assert c.button(name, 1.1) == []  # sim/reset in flight
    assert all("still resetting the scene" in m for m in c.take_messages())
    c.recorder_status({"instruction": "put the red cube in the bin"})
    assert c.done(RESET, True, "put the red cube in the bin", 1.2) == [START]
    assert c.button("reset", 1.3) == []
    assert c.done(START, True, "ep", 1.4) == []
    assert c.button("engage", 1.5) == [] and c.button("gripper", 1.5) == []
    assert c.button("success", 2.0) == [STOP_OK]
    assert c.button("success", 2.01) == []  # a double press ends one episode, not two
    assert c.pending == STOP_OK
    assert c.done(STOP_OK, True, committed(5), 2.5) == []
    assert c.counted == 1


def test_reset_while_recording_aborts_keeps_it_and_starts_over_with_the_same_number():
    c = Console(2, sim=True)
    start_episode(c, 1.0)
    assert c.button("reset", 3.0) == [ABORT]
    assert c.done(ABORT, True, committed(20), 3.1) == [RESET]  # then straight on: reset
    c.recorder_status({"instruction": "put the green cube in the bin"})
    assert c.done(RESET, True, "put the green cube in the bin", 3.2) == [START]
    assert c.done(START, True, "ep", 3.3) == []
    assert c.counted == 0 and c.results[0].outcome == "abort" and c.results[0].steps == 20
    assert c.status_line(4.0).startswith("episode 1/2 | REC")
    assert "kept in the store as 'abort'" in " ".join(c.take_messages())


def test_a_refused_service_returns_to_waiting_and_says_why():
    c = Console(1, sim=True, labels={"reset": "Esc"})
    c.button("reset", 1.0)
    assert c.done(RESET, False, "driver is not configured", 1.0) == []
    assert c.phase is ConsolePhase.WAITING
    assert "sim/reset failed: driver is not configured; Esc to try again" in c.take_messages()
    c.button("reset", 2.0)
    c.recorder_status({"instruction": "put the red cube in the bin"})
    c.done(RESET, True, "put the red cube in the bin", 2.0)
    assert c.done(START, False, "no task/instruction received yet", 2.0) == []
    assert c.phase is ConsolePhase.WAITING and not c.results
    start_episode(c, 3.0)
    assert c.button("success", 4.0) == [STOP_OK]
    assert c.done(STOP_OK, False, "episode ep was not committed within 120 s", 5.0) == []
    assert c.results[-1].outcome == "error" and c.counted == 0  # not committed: not counted
    assert any("NOT committed" in m for m in c.take_messages())


def test_the_reply_must_be_to_the_request_in_flight():
    c = Console(1, sim=True)
    c.button("reset", 1.0)
    with pytest.raises(ValueError, match="in flight"):
        c.done(START, True, "", 1.0)


def test_run_duration_aborts_the_episode_and_finishes():
    c = Console(5, sim=True, duration=10.0)
    assert c.tick(0.0) == []  # no clock yet
    assert c.tick(100.0) == []  # the run's clock starts here
    start_episode(c, 101.0)
    assert c.tick(109.9) == []
    assert c.tick(110.0) == [ABORT]
    assert c.tick(111.0) == []
    assert c.done(ABORT, True, committed(80), 111.0) == [FINISH]
    assert c.results[0].outcome == "abort"
    # while waiting, the run just ends; while busy, it ends when the reply comes
    w = Console(5, sim=True, duration=1.0)
    w.tick(1.0)
    assert w.tick(2.0) == [FINISH]
    b = Console(5, sim=True, duration=1.0)
    b.tick(1.0)
    b.button("reset", 1.5)
    assert b.tick(2.0) == []
    assert b.done(RESET, True, "x", 2.1) == [FINISH]


def test_without_a_recorder_episodes_are_only_counted():
    c = Console(1, sim=True, record=False)
    assert c.button("reset", 1.0) == [RESET]
    assert c.done(RESET, True, "put the red cube in the bin", 1.0) == []
    assert c.phase is ConsolePhase.RECORDING and "RUN" in c.status_line(2.0)
    assert c.button("success", 3.0) == [FINISH]
    assert c.summary()["succeeded"] == 1


def test_zero_episodes_means_until_stopped():
    c = Console(0, sim=False, record=False)
    for i in range(5):
        c.button("reset", float(i))
        assert c.button("failure", i + 0.5) == []
    assert c.counted == 5 and not c.finished
    assert c.status_line(9.0).startswith("episode 6 |")


def test_status_line_shows_what_the_person_needs():
    keys = {"success": "Enter", "failure": "Backspace", "reset": "Esc"}
    c = Console(3, sim=True, labels=keys)
    c.instruction("put the red cube in the bin")
    status, prompt = c.status_lines(0.0)
    assert status.startswith("episode 1/3 | waiting for reset | policy in control")
    assert status.endswith('"put the red cube in the bin"')
    assert prompt == "press Esc to reset the scene and start episode 1/3"
    start_episode(c, 10.0)
    c.recorder_status({"recording": True, "written": 42, "dropped": 1})
    c.person_active(True)
    status, prompt = c.status_lines(12.5)
    assert status == (
        "episode 1/3 | REC   2.5 s | YOU in control | 42 steps, 1 dropped | "
        '"put the red cube in the bin"'
    )
    assert prompt == "Enter: success   Backspace: failure   Esc: discard and reset"
    c.person_active(False)
    c.task_success(True)
    line = c.status_line(13.0)
    assert "policy in control" in line and "scene: task done" in line
    assert c.status_line(None) == (  # for a log: no clock, no counts
        'episode 1/3 | REC | policy in control | scene: task done | "put the red cube in the bin"'
    )
    robot = Console(2, sim=False, labels=keys)
    assert robot.prompt() == "reset the scene, then press Esc to start episode 1/2"


def test_keyboard_labels_match_the_keyboard_help():
    labels = button_labels("keyboard")
    help_text = make_device("keyboard").help()
    for action, key in labels.items():
        assert f"{key}  {action}" in help_text
    pad = make_device("gamepad")
    pad_labels = button_labels("gamepad", pad.config)
    for button, action in pad.config.actions.items():
        if action in ("success", "failure", "reset"):
            assert pad_labels[action] == button
    assert button_labels("leader_arm") == {
        "success": "success",
        "failure": "failure",
        "reset": "reset",
    }


# -- the display ----------------------------------------------------------------------------


def test_display_keeps_the_status_and_prompt_on_the_last_rows_of_a_terminal():
    out = io.StringIO()
    size = [(24, 30)]
    d = StatusDisplay(out, tty=True, size=lambda: size[0])
    d.status(["episode 1/2 | REC 1.0 s | a status wider than the terminal", "Enter: success"])
    setup = "\n\n\x1b7\x1b[1;22r\x1b8\x1b[2A"  # scroll region: rows 1..22, cursor inside it
    draw = "\x1b7\x1b[23;1H\x1b[Kepisode 1/2 | REC 1.0 s | a s\x1b[24;1H\x1b[KEnter: success\x1b8"
    assert out.getvalue() == setup + draw  # cut to the width: never wraps into the region
    out.seek(0), out.truncate()
    d.event("episode 1/2 recording")
    d.status(["b", "c"])
    assert out.getvalue() == ("episode 1/2 recording\n\x1b7\x1b[23;1H\x1b[Kb\x1b[24;1H\x1b[Kc\x1b8")
    out.seek(0), out.truncate()
    size[0] = (40, 80)  # resized: the old rows are cleared, the region set again
    d.status(["b", "c"])
    assert out.getvalue().startswith("\x1b7\x1b[r\x1b[24;1H\x1b[K\x1b[23;1H\x1b[K\x1b8\n\n")
    assert "\x1b[1;38r" in out.getvalue() and out.getvalue().endswith("\x1b[40;1H\x1b[Kc\x1b8")
    out.seek(0), out.truncate()
    d.close()
    assert out.getvalue() == "\x1b7\x1b[r\x1b[40;1H\x1b[K\x1b[39;1H\x1b[K\x1b8"  # scrolls again
    d.close()
    d.status(["late", "draw"])  # the console's thread, after the node was told to stop
    assert out.getvalue().count("\x1b[r") == 1 and "late" not in out.getvalue()


def test_display_prints_only_changes_to_a_log():
    out = io.StringIO()
    d = StatusDisplay(out)  # StringIO is not a terminal
    d.status(["ep 1 REC 1.0 s", "keys"], ["ep 1 REC", "keys"])
    d.status(["ep 1 REC 1.1 s", "keys"], ["ep 1 REC", "keys"])
    d.status(["ep 1 WAIT", "press"], ["ep 1 WAIT", "press"])
    d.event("committed")
    d.status(["ep 1 WAIT", "press"], ["ep 1 WAIT", "press"])
    d.close()
    assert out.getvalue().splitlines() == [
        "ep 1 REC 1.0 s | keys",
        "ep 1 WAIT | press",
        "committed",
        "ep 1 WAIT | press",
    ]


# -- the person's terminal ------------------------------------------------------------------


@pytest.fixture
def terminal():
    master, slave = pty.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def read_all(fd: int, n: int, timeout: float = 3.0) -> bytes:
    data = b""
    end = time.monotonic() + timeout
    while len(data) < n and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            data += os.read(fd, 1024)
    return data


def test_relay_copies_every_byte_and_restores_the_terminal(terminal):
    master, slave = terminal
    before = termios.tcgetattr(slave)
    keys = b" www\x1b[A\n\x7f\x1bg"
    with KeyRelay(slave) as relay:
        mode = termios.tcgetattr(slave)
        assert not mode[3] & (termios.ICANON | termios.ECHO)  # cbreak: no line buffering, no echo
        assert mode[3] & termios.ISIG  # Ctrl-C is still Ctrl-C (to this process only)
        node_side = relay.slave_fd
        assert os.isatty(node_side)
        os.write(master, keys)
        assert read_all(node_side, len(keys)) == keys
        assert read_all(master, 1, timeout=0.2) == b""  # nothing echoed to the person
    assert termios.tcgetattr(slave) == before
    with pytest.raises(OSError):
        os.fstat(node_side)  # the pseudo-terminal is closed
    relay.close()  # idempotent


def test_relay_refuses_what_is_not_a_terminal(tmp_path):
    with (tmp_path / "f").open("w") as f, pytest.raises(TerminalError, match="not a terminal"):
        KeyRelay(f.fileno()).check()
    r, w = os.pipe()
    try:
        with pytest.raises(TerminalError, match="interactive terminal"):
            KeyRelay(r).open()
    finally:
        os.close(r)
        os.close(w)


def test_supervisor_gives_a_node_its_stdin(tmp_path):
    out = tmp_path / "got"
    script = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_text(sys.stdin.read(5))"
    spec = NodeSpec(name="reader", module="unused", finishes_run=True)
    object.__setattr__(spec, "command", lambda *_a, **_k: [sys.executable, "-c", script])
    r, w = os.pipe()
    try:
        sup = Supervisor([spec], env=dict(os.environ), stdin={"reader": r})
        sup.start()
        os.write(w, b"keys!")
        try:
            outcome = sup.wait(timeout=20)
        finally:
            sup.stop()
    finally:
        os.close(r)
        os.close(w)
    assert outcome.code == 0 and out.read_text() == "keys!"


def test_a_hangup_of_the_terminal_stops_the_run_like_ctrl_c():
    import signal
    import threading

    spec = NodeSpec(name="robot_driver", module="unused", stop_first=True)
    object.__setattr__(
        spec, "command", lambda *_a, **_k: [sys.executable, "-c", "import time; time.sleep(30)"]
    )
    fallback = signal.signal(signal.SIGHUP, lambda *_: None)  # never let a SIGHUP end pytest
    sup = Supervisor([spec], env=dict(os.environ))
    sup.start()
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGHUP))
    timer.start()
    try:
        outcome = sup.wait(timeout=20)
    finally:
        timer.cancel()
        sup.stop()
        signal.signal(signal.SIGHUP, fallback)
    assert (outcome.code, outcome.reason) == (130, "interrupted")
    assert sup.procs["robot_driver"].poll() is not None


# -- the graph and dojo run -----------------------------------------------------------------


def names(nodes: list[NodeSpec]) -> list[str]:
    return [n.name for n in nodes]


def test_graph_uses_the_console_when_the_person_is_real(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    keyboard = graph.build(
        conf.load(["intervention.enabled=true", "intervention.device=keyboard", "store=s.zarr"]),
        cfg_file,
    )
    assert "episode_runner" not in names(keyboard)
    by_name = {n.name: n for n in keyboard}
    assert by_name["operator_console"].finishes_run
    assert by_name["intervention"].terminal
    assert [n.name for n in keyboard if n.terminal] == ["intervention"]
    pad = {
        n.name: n
        for n in graph.build(
            conf.load(["intervention.enabled=true", "intervention.device=gamepad"]), cfg_file
        )
    }
    assert "operator_console" in pad and not pad["intervention"].terminal
    scripted = graph.build(conf.load(["intervention.enabled=true"]), cfg_file)
    assert "episode_runner" in names(scripted) and "operator_console" not in names(scripted)
    assert not any(n.terminal for n in scripted)


def test_dojo_record_with_the_keyboard_needs_a_terminal(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dojo.cli",
            "record",
            "intervention.enabled=true",
            "intervention.device=keyboard",
            f"store={tmp_path / 's.zarr'}",
            f"out={out}",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "is not a terminal" in proc.stderr
    assert "starting" not in proc.stderr  # no node was started
    assert not (tmp_path / "s.zarr").exists()


def test_every_request_calls_the_service_its_value_names() -> None:
    """The console (no ROS) names services by ``Op`` value; the node calls them from the
    topics table: the two must agree."""
    from dojo.nodes.operator_console import SERVICES

    assert {op: service.name for op, service in SERVICES.items()} == {
        op: op.value for op in Op if op is not Op.FINISH
    }
