"""The operator's console for ``dojo record`` with a person: episodes, the status line, the keys.

    dojo record intervention.enabled=true intervention.device=keyboard store=demos.zarr

Three pieces, none of which imports ROS:

- :class:`Console`: the episode state machine. The person ends an episode (``success`` /
  ``failure`` buttons), resets the scene by hand and presses ``reset`` to start the next one;
  the console turns those buttons into requests (``sim/reset`` in the twin, ``episode/start``,
  ``episode/stop``, ``episode/abort``) and stops after ``episodes`` episodes::

      ┌──────────────── committed, fewer than N so far ───────────────────────┐
      ▼                                                                       │
   WAITING ─reset─► RESETTING ─► STARTING ─► RECORDING ─success/failure─► STOPPING ─► DONE
                   (twin only:  (episode/       │                     (episode/stop)  (N)
                    sim/reset)   start)         └─reset─► STOPPING (episode/abort), then
                                                          straight on to RESETTING

  One request is in flight at a time; buttons that arrive meanwhile are ignored (and the
  person is told so), never queued, so a double press cannot end two episodes. The ROS shell
  (``dojo/nodes/operator_console.py``) executes each request with a bounded wait and feeds the
  reply back.
- :class:`StatusDisplay`: the status line and the prompt (the keys to press now), kept on the
  terminal's last two rows while the nodes' log lines scroll above them; in a file or a pipe,
  printed only when more than the clock changed.
- :class:`KeyRelay`: how the keyboard device gets the person's terminal.

Who owns the terminal, and why a relay
--------------------------------------
The keyboard device reads a terminal in raw mode, and only the terminal's foreground process
group may read it. ``dojo run`` starts every node in its own session, so that a Ctrl-C reaches
only the supervisor, which stops the driver first (the arm holds while its command sources are
still alive). Putting the intervention node in the terminal's foreground group instead would
let the same Ctrl-C reach it at the moment it reaches the supervisor: the person's commands
would stop (and ``intervention/active`` drop to false, handing the arm back to the policy)
before the driver holds. So the node never sees the person's terminal:

- the ``dojo record`` process, which the person started and which owns the terminal, puts it
  in cbreak mode (keys arrive one by one, no echo; signals stay on, so Ctrl-C is still Ctrl-C
  and reaches only the supervisor) and copies every byte typed to a pseudo-terminal;
- the node whose :class:`dojo.graph.NodeSpec` says ``terminal=True`` (the intervention node
  with ``intervention.device=keyboard``) gets that pseudo-terminal as its standard input, and
  the unchanged keyboard device reads it exactly as it would read an ssh session;
- the terminal is restored (``TCSAFLUSH``: keys typed meanwhile are discarded, never run by
  the shell) in a ``finally`` after the nodes are stopped; a ``dojo record`` killed with
  SIGKILL cannot restore it (``stty sane`` does).

No node calls ``input()`` or reads the person's terminal; every wait here is bounded.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import select
import termios
import threading
import tty
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, TextIO

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    WAITING = "waiting for reset"
    RESETTING = "resetting the scene"
    STARTING = "starting"
    RECORDING = "recording"
    STOPPING = "stopping"
    DONE = "done"


BUSY = frozenset({Phase.RESETTING, Phase.STARTING, Phase.STOPPING})
RECORDER_INSTRUCTION_WAIT_S = 15.0  # ROS s after a reset for the recorder to hear its instruction


class Op(enum.Enum):
    """What the shell must do. The value is the service it calls (FINISH: end the run)."""

    RESET_SCENE = "sim/reset"
    START = "episode/start"
    STOP = "episode/stop"
    ABORT = "episode/abort"
    FINISH = "finish"


@dataclass(frozen=True)
class Request:
    op: Op
    success: bool = False  # STOP only: the outcome the person gave


@dataclass
class EpisodeResult:
    """One episode the person ended. ``outcome``: success | failure | abort | error."""

    episode: int
    instruction: str
    outcome: str
    duration_s: float
    steps: int = 0
    recorded: Any = None

    @property
    def success(self) -> bool:
        return self.outcome == "success"

    @property
    def counted(self) -> bool:
        """Counts towards ``episodes``: ended with a verdict and committed."""
        return self.outcome in ("success", "failure")

    def to_json(self) -> dict[str, Any]:
        out = {
            "episode": self.episode,
            "instruction": self.instruction,
            "success": self.success,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 3),
            "steps": self.steps,
        }
        if self.recorded is not None:
            out["recorded"] = self.recorded
        return out


# What each button is on the devices whose buttons are fixed (tests check these against help()).
KEY_LABELS: dict[str, dict[str, str]] = {
    "keyboard": {"success": "Enter", "failure": "Backspace", "reset": "Esc"},
}


def button_labels(device: str, device_config: Any = None) -> dict[str, str]:
    """How the person presses success / failure / reset on ``device``, for the prompts.

    ``device_config``: the device's config object (a gamepad's ``actions`` say which button
    does what). Devices without such buttons (a leader arm) get the action's own name: any
    publisher of ``intervention/button`` can send it.
    """
    labels = {a: a for a in ("success", "failure", "reset")}
    labels.update(KEY_LABELS.get(device, {}))
    actions = getattr(device_config, "actions", None)
    if isinstance(actions, Mapping):
        for button, action in actions.items():
            if action in labels:
                labels[action] = str(button)
    return labels


class Console:
    """The episode logic of a recording session with a person; no ROS, no I/O.

    Inputs are the buttons (:meth:`button`), the replies to the requests it made
    (:meth:`done`), the clock (:meth:`tick`) and what it shows (:meth:`instruction`,
    :meth:`recorder_status`, :meth:`person_active`, :meth:`task_success`). Each returns the
    requests to execute now: at most one, and none while one is in flight. Times are ROS
    seconds.

    ``episodes``: stop after this many episodes ended with a verdict (0: until Ctrl-C).
    ``sim``: the twin (``reset`` asks for ``sim/reset``); on a robot the person resets the
    scene and ``reset`` only starts the next episode. ``record``: a recorder is running
    (otherwise episodes are only counted). ``duration``: end the run after this many ROS
    seconds, aborting an episode being recorded (0: no limit).
    """

    def __init__(
        self,
        episodes: int,
        *,
        sim: bool,
        record: bool = True,
        duration: float = 0.0,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if episodes < 0 or duration < 0:
            raise ValueError(f"episodes={episodes} and duration={duration} must be >= 0")
        self.episodes = int(episodes)
        self.sim = sim
        self.record = record
        self.duration = float(duration)
        self.labels = {**button_labels(""), **dict(labels or {})}
        self.phase = Phase.WAITING
        self.results: list[EpisodeResult] = []
        self._pending: Request | None = None
        self._started = 0  # episodes started (the number shown while one runs)
        self._t0 = 0.0
        self._run_t0: float | None = None
        self._reset_after_stop = False
        self._finish_after = False
        self._instruction = ""
        self._active = False
        self._task_done: bool | None = None
        self._status: dict[str, Any] = {}
        self._awaiting: str | None = None  # what the recorder must have before episode/start
        self._awaiting_since = 0.0
        self._messages: list[str] = []

    # -- what it shows ------------------------------------------------------------------------

    def instruction(self, text: str) -> None:
        self._instruction = text

    def recorder_status(self, status: Mapping[str, Any], now: float = 0.0) -> list[Request]:
        """What the recorder reports; after a reset it is also what ``episode/start`` waits on."""
        self._status = dict(status)
        return self._start_when_recorder_has_instruction(now)

    def person_active(self, active: bool) -> None:
        self._active = bool(active)

    def task_success(self, done: bool) -> None:
        self._task_done = bool(done)

    @property
    def counted(self) -> int:
        return sum(r.counted for r in self.results)

    @property
    def pending(self) -> Request | None:
        return self._pending

    @property
    def finished(self) -> bool:
        return self.phase is Phase.DONE

    def take_messages(self) -> list[str]:
        """Events to print once (episode started, committed, a refused button, an error)."""
        out, self._messages = self._messages, []
        return out

    def _of(self, n: int) -> str:
        return f"{n}/{self.episodes}" if self.episodes else str(n)

    def prompt(self) -> str:
        """What the person should do now, with the keys to do it."""
        k = self.labels
        nxt = self._of(self.counted + 1)
        if self.phase is Phase.WAITING:
            if self.sim:
                return f"press {k['reset']} to reset the scene and start episode {nxt}"
            return f"reset the scene, then press {k['reset']} to start episode {nxt}"
        if self.phase is Phase.RECORDING:
            return (
                f"{k['success']}: success   {k['failure']}: failure   "
                f"{k['reset']}: discard and reset"
            )
        if self.phase is Phase.DONE:
            return "done"
        return f"{self.phase.value}..."

    def status_line(self, now: float | None) -> str:
        """The status: episode n/N, ROS time since it began, who is in control, steps written
        and dropped, the instruction. ``now=None``: without the clock and the step counts
        (what a log file gets, so it changes only when something the person did changed)."""
        shown = self._started or self.counted + (self.phase is not Phase.DONE)
        parts = [f"episode {self._of(shown)}"]
        if self.phase is Phase.RECORDING:
            rec = "REC" if self.record else "RUN"
            parts.append(rec if now is None else f"{rec} {max(0.0, now - self._t0):5.1f} s")
        else:
            parts.append(self.phase.value)
        parts.append("YOU in control" if self._active else "policy in control")
        if self.phase is Phase.RECORDING:
            if self.record and now is not None:
                written = int(self._status.get("written", 0))
                dropped = int(self._status.get("dropped", 0))
                parts.append(f"{written} steps, {dropped} dropped")
            if self._task_done:
                parts.append("scene: task done")
        else:
            ok = sum(r.success for r in self.results)
            parts.append(f"{ok} ok, {self.counted - ok} failed")
        parts.append(f'"{self._instruction}"' if self._instruction else "(no instruction yet)")
        return " | ".join(parts)

    def status_lines(self, now: float | None) -> list[str]:
        """What the display keeps in view: the status, then the prompt."""
        return [self.status_line(now), self.prompt()]

    # -- events -------------------------------------------------------------------------------

    def button(self, name: str, now: float) -> list[Request]:
        """The person pressed ``name`` (success | failure | reset; others are ignored)."""
        if name not in ("success", "failure", "reset") or self.phase is Phase.DONE:
            return []
        if self.phase in BUSY:
            self._messages.append(f"{self.labels[name]} ignored: still {self.phase.value}")
            return []
        if self.phase is Phase.WAITING:
            if name == "reset":
                return self._begin_episode(now)
            self._messages.append(
                f"{self.labels[name]} ignored: no episode running; {self.prompt()}"
            )
            return []
        # RECORDING
        if name == "reset":
            self._reset_after_stop = True
            return self._end_episode(Request(Op.ABORT) if self.record else None, "abort", now)
        success = name == "success"
        request = Request(Op.STOP, success=success) if self.record else None
        return self._end_episode(request, name, now)

    def tick(self, now: float) -> list[Request]:
        """The clock moved: ends the run once ``duration`` ROS seconds have passed, and gives up
        on a recorder that has not heard the reset's instruction in time."""
        if self._awaiting is not None and now - self._awaiting_since > RECORDER_INSTRUCTION_WAIT_S:
            heard = self._status.get("instruction")
            self._awaiting = None
            return self._back_to_waiting(
                f"the recorder still has instruction {heard!r} "
                f"{RECORDER_INSTRUCTION_WAIT_S:g} s after the reset; not started"
            )
        if not self.duration or self.phase is Phase.DONE or now <= 0.0:
            return []
        if self._run_t0 is None:
            self._run_t0 = now
        if now - self._run_t0 < self.duration or self._finish_after:
            return []
        self._finish_after = True
        self._reset_after_stop = False
        self._messages.append(f"run time of {self.duration:g} s reached")
        if self.phase is Phase.RECORDING:
            return self._end_episode(Request(Op.ABORT) if self.record else None, "abort", now)
        if self.phase is Phase.WAITING:
            return self._finish()
        return []  # busy: finishes when the reply comes

    def done(self, request: Request, ok: bool, message: str, now: float) -> list[Request]:
        """The reply to ``request`` (the one in flight): ``ok`` and the service's message."""
        if request != self._pending:
            raise ValueError(f"reply to {request} but {self._pending} is in flight")
        self._pending = None
        if request.op is Op.RESET_SCENE:
            if not ok:
                return self._back_to_waiting(f"{Op.RESET_SCENE.value} failed: {message}")
            if message:
                self._instruction = message
            if self.record and message and not self._finish_after:  # once the recorder has it
                self._awaiting, self._awaiting_since = message, now
                self.phase = Phase.STARTING
                return self._start_when_recorder_has_instruction(now)
            return self._start(now)
        if request.op is Op.START:
            if not ok:
                return self._back_to_waiting(f"{Op.START.value} failed: {message}")
            return self._recording(now)
        if request.op in (Op.STOP, Op.ABORT):
            result = self.results[-1]
            recorded = _json_or_text(message)
            result.recorded = recorded
            if isinstance(recorded, dict):
                result.steps = int(recorded.get("steps", result.steps))
            if not ok:
                result.outcome = "error"
                self._messages.append(
                    f"episode {result.episode} was NOT committed ({request.op.value}): {message}"
                )
            else:
                self._messages.append(self._ended_text(result))
            return self._after_episode(now)
        raise ValueError(f"no reply expected for {request}")

    # -- transitions --------------------------------------------------------------------------

    def _issue(self, request: Request) -> list[Request]:
        self._pending = request
        return [request]

    def _begin_episode(self, now: float) -> list[Request]:
        self._started = self.counted + 1
        self._task_done = None
        if self.sim:
            self.phase = Phase.RESETTING
            return self._issue(Request(Op.RESET_SCENE))
        return self._start(now)

    def _start(self, now: float) -> list[Request]:
        if self._finish_after:
            return self._finish()
        if not self.record:
            return self._recording(now)
        self.phase = Phase.STARTING
        return self._issue(Request(Op.START))

    def _start_when_recorder_has_instruction(self, now: float) -> list[Request]:
        """``sim/reset``'s reply and the latched ``task/instruction`` reach the recorder in
        either order; starting before it has the new one would store the episode under the
        previous scene's instruction."""
        if self._awaiting is None or self._status.get("instruction") != self._awaiting:
            return []
        self._awaiting = None
        return self._start(now)

    def _recording(self, now: float) -> list[Request]:
        self.phase = Phase.RECORDING
        self._t0 = now
        self._status = {}
        what = "recording" if self.record else "running"
        self._messages.append(
            f"episode {self._of(self._started)} {what}: {self._instruction or '(no instruction)'}"
        )
        if self._finish_after:  # the run time ran out while it started
            return self._end_episode(Request(Op.ABORT) if self.record else None, "abort", now)
        return []

    def _end_episode(self, request: Request | None, outcome: str, now: float) -> list[Request]:
        self.results.append(
            EpisodeResult(
                episode=self._started,
                instruction=self._instruction,
                outcome=outcome,
                duration_s=max(0.0, now - self._t0),
                steps=int(self._status.get("written", 0)),
            )
        )
        if request is None:
            self._messages.append(self._ended_text(self.results[-1]))
            return self._after_episode(now)
        self.phase = Phase.STOPPING
        return self._issue(request)

    def _after_episode(self, now: float) -> list[Request]:
        if self._finish_after or (self.episodes and self.counted >= self.episodes):
            return self._finish()
        self.phase = Phase.WAITING
        if self._reset_after_stop:
            self._reset_after_stop = False
            return self._begin_episode(now)
        self._started = 0
        return []

    def _back_to_waiting(self, why: str) -> list[Request]:
        self._messages.append(f"{why}; {self.labels['reset']} to try again")
        self._reset_after_stop = False
        if self._finish_after:
            return self._finish()
        self.phase = Phase.WAITING
        self._started = 0
        return []

    def _finish(self) -> list[Request]:
        self.phase = Phase.DONE
        ok = sum(r.success for r in self.results)
        self._messages.append(f"done: {ok}/{self.counted} episodes succeeded")
        return [Request(Op.FINISH)]

    def _ended_text(self, result: EpisodeResult) -> str:
        kept = (
            " (kept in the store as 'abort')" if result.outcome == "abort" and self.record else ""
        )
        steps = f", {result.steps} steps" if self.record else ""
        return (
            f"episode {self._of(result.episode)}: {result.outcome.upper()} after "
            f"{result.duration_s:.1f} s{steps}{kept}"
        )

    def summary(self) -> dict[str, Any]:
        """What ``<out>/episodes.json`` holds (the episode runner's format)."""
        episodes = [r.to_json() for r in self.results]
        return {
            "episodes": episodes,
            "succeeded": sum(r.success for r in self.results),
            "total": len(episodes),
        }


def _json_or_text(message: str) -> Any:
    import json

    if message.startswith("{"):
        with contextlib.suppress(ValueError):
            return json.loads(message)
    return message or None


# -- the display ------------------------------------------------------------------------------


class StatusDisplay:
    """The status lines on the last rows of the terminal, with event lines scrolling above.

    Every node of ``dojo run`` writes its log lines to the same terminal, so a line rewritten
    in place with ``\\r`` would end up glued to them. On a terminal the display reserves the
    last rows instead (apt's progress-bar recipe): the scroll region becomes rows 1..N-k, so
    everyone's output scrolls above, and the k status lines are drawn below it with the cursor
    saved and restored around them, in one ``write`` so no other process's bytes land in
    between. The size is checked at every draw (a resize moves the rows); :meth:`close` gives
    the rows back. Anywhere else (a file, a pipe, ``TERM=dumb``) a line is written only when
    ``stable`` (the lines without the clock) changed, so a log does not fill up with times.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        size: Callable[[], tuple[int, int] | None] | None = None,
    ) -> None:
        self.stream = stream
        if tty is None:
            try:
                tty = stream.isatty() and os.environ.get("TERM", "") != "dumb"
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self._size = size or self._terminal_size
        self._rows = 0  # the terminal's height when the status rows were reserved (0: not yet)
        self._n = 0  # how many rows are reserved
        self._last = ""
        self._lock = threading.Lock()  # the console's thread draws; close() runs on another
        self._closed = False

    def _terminal_size(self) -> tuple[int, int] | None:
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            return None
        return size.lines, size.columns

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def event(self, text: str) -> None:
        with self._lock:
            self._last = ""  # a log shows the status again below the event
            self._write(text.rstrip("\n") + "\n")

    def status(self, lines: Sequence[str], stable: Sequence[str] | None = None) -> None:
        """Show ``lines`` (the status, the prompt). ``stable``: the same without the clock."""
        with self._lock:
            if not self._closed:
                self._status(list(lines), stable)

    def _status(self, lines: list[str], stable: Sequence[str] | None) -> None:
        size = self._size() if self.tty else None
        n = len(lines)
        if size is None or size[0] < n + 2:
            key = " | ".join(lines if stable is None else stable)
            if key != self._last:
                self._last = key
                self._write(" | ".join(lines) + "\n")
            return
        rows, cols = size
        setup = ""
        if (rows, n) != (self._rows, self._n):
            # room for the rows, scroll region above them (the cursor goes home), cursor back
            setup = "\n" * n + f"\x1b7\x1b[1;{rows - n}r\x1b8\x1b[{n}A"
            setup = self._release() + setup
            self._rows, self._n = rows, n
        draw = "".join(
            f"\x1b[{rows - n + 1 + i};1H\x1b[K{line[: max(1, cols - 1)]}"
            for i, line in enumerate(lines)
        )
        self._write(f"{setup}\x1b7{draw}\x1b8")

    def _release(self) -> str:
        if not self._rows:
            return ""
        clear = "".join(f"\x1b[{self._rows - i};1H\x1b[K" for i in range(self._n))
        self._rows = self._n = 0
        return f"\x1b7\x1b[r{clear}\x1b8"

    def close(self) -> None:
        """Give the rows back: full-screen scrolling again, the status rows cleared. Later
        status updates are dropped, so none can take the rows again."""
        with self._lock:
            self._closed = True
            if self._rows:
                self._write(self._release())


# -- the terminal -----------------------------------------------------------------------------


class TerminalError(RuntimeError):
    """The operator's terminal cannot be used (not a terminal, or in the background)."""


class KeyRelay:
    """Copies the keys typed in the operator's terminal (``source_fd``) to a pseudo-terminal.

    :meth:`check` (no I/O beyond queries) says why the terminal cannot be used, before any
    node starts. :meth:`open` creates the pseudo-terminal (its slave side, :attr:`slave_fd`,
    is what a node gets as standard input), puts the terminal in cbreak mode and starts the
    copying thread; :meth:`close` stops it (bounded), restores the terminal exactly
    (``TCSAFLUSH``) and closes the pseudo-terminal. ``with relay:`` does both.
    """

    POLL_S = 0.1

    def __init__(self, source_fd: int) -> None:
        self.source_fd = source_fd
        self._saved: list | None = None
        self._master = -1
        self._slave = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.relayed = 0

    @property
    def slave_fd(self) -> int:
        if self._slave < 0:
            raise TerminalError("KeyRelay: slave_fd before open()")
        return self._slave

    def check(self) -> None:
        fd = self.source_fd
        if not os.isatty(fd):
            raise TerminalError(
                f"the keyboard is read from this terminal, but fd {fd} (standard input) is not "
                "a terminal; run it in an interactive terminal or ssh session"
            )
        try:
            foreground = os.tcgetpgrp(fd)
        except OSError as err:
            if err.errno == errno.ENOTTY:  # a terminal, but not ours to control: no job control
                return
            raise
        if foreground != os.getpgrp():
            raise TerminalError(
                "the keyboard is read from this terminal, but this process is in the background "
                "(started with '&'?); run it in the foreground"
            )

    def open(self) -> int:
        self.check()
        master, slave = os.openpty()
        self._master, self._slave = master, slave
        try:
            # the node's side: raw, so nothing typed before its device connects is echoed or
            # turned into a signal; the device sets its own mode and restores this one
            tty.setraw(slave, termios.TCSANOW)
            self._saved = termios.tcgetattr(self.source_fd)
            mode = termios.tcgetattr(self.source_fd)
            mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflag: byte at a time, no echo; ISIG kept
            mode[6][termios.VMIN] = 0
            mode[6][termios.VTIME] = 0
            termios.tcsetattr(self.source_fd, termios.TCSANOW, mode)
        except BaseException:
            self.close()
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._copy, name="key-relay", daemon=True)
        self._thread.start()
        return slave

    def _copy(self) -> None:
        src, master = self.source_fd, self._master
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([src, master], [], [], self.POLL_S)
                if master in ready:
                    os.read(master, 1024)  # whatever the node's side echoes: discard
                if src not in ready:
                    continue
                data = os.read(src, 1024)
            except OSError as err:
                log.warning(
                    "key relay: reading the terminal failed: %s; keys are no longer read", err
                )
                return
            if not data:
                log.warning("key relay: the terminal closed; keys are no longer read")
                return
            try:
                os.write(master, data)
                self.relayed += len(data)
            except OSError as err:
                log.warning("key relay: the node's terminal went away: %s", err)
                return

    def close(self) -> None:
        """Idempotent. Restores the terminal even when the copying thread is stuck."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._saved is not None:
            saved, self._saved = self._saved, None
            try:
                termios.tcsetattr(self.source_fd, termios.TCSAFLUSH, saved)
            except termios.error as err:
                log.warning(
                    "key relay: cannot restore the terminal on fd %d: %s", self.source_fd, err
                )
        for name in ("_master", "_slave"):
            fd = getattr(self, name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, -1)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
