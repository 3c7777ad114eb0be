"""The episode state machine of a recording session with a person: :class:`Console`.

The person ends an episode (``success`` / ``failure`` buttons), resets the scene by hand and
presses ``reset`` to start the next one; the console turns those buttons into requests
(``sim/reset`` in the twin, ``episode/start``, ``episode/stop``, ``episode/abort``) and stops
after ``episodes`` episodes::

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

No ROS and no I/O here: inputs are method calls, outputs are :class:`Request` values.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class ConsolePhase(enum.Enum):
    """Where the episode the person is running stands (the diagram above)."""

    WAITING = "waiting for reset"
    RESETTING = "resetting the scene"
    STARTING = "starting"
    RECORDING = "recording"
    STOPPING = "stopping"
    DONE = "done"


BUSY = frozenset({ConsolePhase.RESETTING, ConsolePhase.STARTING, ConsolePhase.STOPPING})
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
class OperatorEpisode:
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
        self.phase = ConsolePhase.WAITING
        self.results: list[OperatorEpisode] = []
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
        return self.phase is ConsolePhase.DONE

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
        if self.phase is ConsolePhase.WAITING:
            if self.sim:
                return f"press {k['reset']} to reset the scene and start episode {nxt}"
            return f"reset the scene, then press {k['reset']} to start episode {nxt}"
        if self.phase is ConsolePhase.RECORDING:
            return (
                f"{k['success']}: success   {k['failure']}: failure   "
                f"{k['reset']}: discard and reset"
            )
        if self.phase is ConsolePhase.DONE:
            return "done"
        return f"{self.phase.value}..."

    def status_line(self, now: float | None) -> str:
        """The status: episode n/N, ROS time since it began, who is in control, steps written
        and dropped, the instruction. ``now=None``: without the clock and the step counts
        (what a log file gets, so it changes only when something the person did changed)."""
        shown = self._started or self.counted + (self.phase is not ConsolePhase.DONE)
        parts = [f"episode {self._of(shown)}"]
        if self.phase is ConsolePhase.RECORDING:
            rec = "REC" if self.record else "RUN"
            parts.append(rec if now is None else f"{rec} {max(0.0, now - self._t0):5.1f} s")
        else:
            parts.append(self.phase.value)
        parts.append("YOU in control" if self._active else "policy in control")
        if self.phase is ConsolePhase.RECORDING:
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
        if name not in ("success", "failure", "reset") or self.phase is ConsolePhase.DONE:
            return []
        if self.phase in BUSY:
            self._messages.append(f"{self.labels[name]} ignored: still {self.phase.value}")
            return []
        if self.phase is ConsolePhase.WAITING:
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
        if not self.duration or self.phase is ConsolePhase.DONE or now <= 0.0:
            return []
        if self._run_t0 is None:
            self._run_t0 = now
        if now - self._run_t0 < self.duration or self._finish_after:
            return []
        self._finish_after = True
        self._reset_after_stop = False
        self._messages.append(f"run time of {self.duration:g} s reached")
        if self.phase is ConsolePhase.RECORDING:
            return self._end_episode(Request(Op.ABORT) if self.record else None, "abort", now)
        if self.phase is ConsolePhase.WAITING:
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
                self.phase = ConsolePhase.STARTING
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
            self.phase = ConsolePhase.RESETTING
            return self._issue(Request(Op.RESET_SCENE))
        return self._start(now)

    def _start(self, now: float) -> list[Request]:
        if self._finish_after:
            return self._finish()
        if not self.record:
            return self._recording(now)
        self.phase = ConsolePhase.STARTING
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
        self.phase = ConsolePhase.RECORDING
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
            OperatorEpisode(
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
        self.phase = ConsolePhase.STOPPING
        return self._issue(request)

    def _after_episode(self, now: float) -> list[Request]:
        if self._finish_after or (self.episodes and self.counted >= self.episodes):
            return self._finish()
        self.phase = ConsolePhase.WAITING
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
        self.phase = ConsolePhase.WAITING
        self._started = 0
        return []

    def _finish(self) -> list[Request]:
        self.phase = ConsolePhase.DONE
        ok = sum(r.success for r in self.results)
        self._messages.append(f"done: {ok}/{self.counted} episodes succeeded")
        return [Request(Op.FINISH)]

    def _ended_text(self, result: OperatorEpisode) -> str:
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
    if message.startswith("{"):
        with contextlib.suppress(ValueError):
            return json.loads(message)
    return message or None
