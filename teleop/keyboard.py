"""Keyboard teleop from a terminal: works over ssh, with no X server and no root.

Why a terminal and not an X/evdev keyboard hook: the robot workstation is often reached by ssh,
where there is no display and no access to ``/dev/input``. A terminal only delivers key
*presses* (no releases), so every key is an increment: one byte = one step of the configured
size. Holding a key lets the terminal's auto-repeat send the byte again and again (after the
repeat delay, at the repeat rate), which moves the arm in steps; releasing it stops.

The terminal is put in a cbreak-style raw mode (``termios``: no line buffering, no echo) on
``connect()`` and restored exactly on ``close()``, which the context manager runs in
``finally``. Signals stay enabled (``ISIG``), so Ctrl-C still raises ``KeyboardInterrupt`` and
the ``finally`` restores the terminal; output processing stays on, so log lines still end
properly. Restoring uses ``TCSAFLUSH``: keys typed during teleop are discarded, never run by
the shell afterwards.

Key map (lower case: one fine step; upper case / Shift+arrow: ``coarse`` steps)::

    w / s      +x / -x   forward / back      (also Up / Down arrows)
    a / d      +y / -y   left / right        (also Left / Right arrows)
    r / f      +z / -z   up / down
    q / e      +yaw / -yaw    turn left / right (about base z)
    i / k      +pitch / -pitch (about base y)
    j / l      +roll / -roll   (about base x)
    space      toggle engage (the person takes / gives back control)
    g          toggle gripper (first press closes)
    Enter      episode success
    Backspace  episode failure
    Esc        reset the scene

Motion keys typed while disengaged are dropped: engaging never replays them.

Frames: the keys act in the robot base frame, as seen by a person standing behind the robot
and looking where it looks::

            r (+z up)
            ^   w (+x forward)
            |  /
            | /
   a (+y) --+-- d (-y)
           /|
          s f
"""

from __future__ import annotations

import logging
import os
import select
import sys
import termios
from dataclasses import dataclass

import numpy as np

from teleop.device import (
    Button,
    DeviceNotFoundError,
    DeviceReadError,
    TeleopCommand,
    TeleopDevice,
    check_positive,
)

log = logging.getLogger(__name__)

# byte -> (axis index in ee_delta, direction)
_MOTION: dict[int, tuple[int, float]] = {
    ord("w"): (0, 1.0),
    ord("s"): (0, -1.0),
    ord("a"): (1, 1.0),
    ord("d"): (1, -1.0),
    ord("r"): (2, 1.0),
    ord("f"): (2, -1.0),
    ord("j"): (3, 1.0),
    ord("l"): (3, -1.0),
    ord("i"): (4, 1.0),
    ord("k"): (4, -1.0),
    ord("q"): (5, 1.0),
    ord("e"): (5, -1.0),
}
# final byte of an arrow key's escape sequence (ESC [ A or ESC O A) -> motion key
_ARROWS: dict[int, int] = {
    ord("A"): ord("w"),
    ord("B"): ord("s"),
    ord("D"): ord("a"),
    ord("C"): ord("d"),
}
_ESC = 0x1B
_ENTER = (ord("\n"), ord("\r"))
_BACKSPACE = (0x7F, 0x08)


@dataclass
class KeyboardConfig:
    """``fd``: the terminal to read (None: standard input). ``step``: m per key press.
    ``rot_step``: rad per key press. ``coarse``: factor for upper-case keys and Shift+arrows.
    ``max_steps``: at most this many steps per axis in one read (a pasted burst of text never
    becomes a large jump). ``esc_timeout``: s a lone Esc waits for the rest of an escape
    sequence (an arrow key split across reads) before it counts as Esc. ``engaged``: the
    engage state at connect."""

    fd: int | None = None
    step: float = 0.005
    rot_step: float = 0.05
    coarse: float = 5.0
    max_steps: int = 10
    esc_timeout: float = 0.05
    engaged: bool = False

    def __post_init__(self) -> None:
        check_positive(
            "keyboard",
            step=self.step,
            rot_step=self.rot_step,
            coarse=self.coarse,
            max_steps=self.max_steps,
            esc_timeout=self.esc_timeout,
        )


class Keyboard(TeleopDevice):
    """Terminal keyboard; see the module docstring for the key map."""

    name = "Keyboard"

    def __init__(self, config: KeyboardConfig | None = None) -> None:
        super().__init__()
        self.config = config or KeyboardConfig()
        self._fd = -1
        self._saved: list | None = None
        self._pending = b""
        self._pending_since = 0.0
        self._engaged = self.config.engaged
        self._gripper: float | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def _connect(self) -> None:
        fd = self.config.fd if self.config.fd is not None else sys.stdin.fileno()
        if not os.isatty(fd):
            raise DeviceNotFoundError(
                f"{self.name}: fd {fd} is not a terminal (no stdin under a launcher or a "
                "node?); run the teleop in an interactive terminal or ssh session"
            )
        self._fd = fd
        self._saved = termios.tcgetattr(fd)
        mode = termios.tcgetattr(fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflag: byte at a time, no echo; ISIG kept
        mode[6][termios.VMIN] = 0
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, mode)
        self._pending = b""
        self._engaged = self.config.engaged

    def _close(self) -> None:
        if self._saved is not None and self._fd >= 0:
            saved, self._saved = self._saved, None
            try:
                termios.tcsetattr(self._fd, termios.TCSAFLUSH, saved)
            except termios.error as exc:  # the terminal went away: nothing left to restore
                log.warning(
                    "%s: cannot restore the terminal on fd %d: %s", self.name, self._fd, exc
                )

    def help(self) -> str:
        c = self.config
        return "\n".join(
            [
                f"Keyboard teleop (step {c.step * 1000:.1f} mm, {c.rot_step:.3f} rad; "
                f"upper case x{c.coarse:g})",
                "  w/s  forward/back (+x/-x)     arrows Up/Down also",
                "  a/d  left/right (+y/-y)       arrows Left/Right also",
                "  r/f  up/down (+z/-z)",
                "  q/e  yaw left/right",
                "  i/k  pitch +/-    j/l  roll +/-",
                "  space  engage on/off (you take / give back control)",
                "  g      gripper open/close",
                "  Enter  success    Backspace  failure    Esc  reset",
                "  Ctrl-C quit",
            ]
        )

    # -- reading ----------------------------------------------------------------------------

    def _drain(self) -> bytes:
        """Every byte pending on the terminal, without blocking (bounded)."""
        chunks: list[bytes] = []
        for _ in range(16):
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.0)
            except (OSError, ValueError) as exc:
                raise DeviceReadError(
                    f"{self.name}: select on fd {self._fd} failed: {exc}"
                ) from exc
            if not ready:
                break
            try:
                data = os.read(self._fd, 256)
            except OSError as exc:
                self._engaged = False
                raise DeviceReadError(f"{self.name}: read on fd {self._fd} failed: {exc}") from exc
            if not data:
                self._engaged = False
                raise DeviceReadError(f"{self.name}: the terminal closed (EOF on fd {self._fd})")
            chunks.append(data)
        return b"".join(chunks)

    def _read(self, now: float) -> TeleopCommand:
        data = self._drain()
        waited = now - self._pending_since
        if self._pending and not data and waited < self.config.esc_timeout:
            return self._command(now, np.zeros(6), set())
        carried = len(self._pending)
        buf = self._pending + data
        self._pending = b""
        steps = np.zeros(6)
        buttons: set[Button] = set()

        def wait_for_rest(start: int) -> bool:
            """Keep an unfinished escape sequence for the next read, unless it timed out."""
            since = self._pending_since if start < carried else now
            if now - since < self.config.esc_timeout:
                self._pending = buf[start:]
                self._pending_since = since
                return True
            return False

        i = 0
        while i < len(buf):
            b = buf[i]
            if b == _ESC:
                if i + 1 == len(buf):  # a lone Esc, or the start of a split arrow key
                    if wait_for_rest(i):
                        break
                    buttons.add(Button.RESET)
                    i += 1
                    continue
                nxt = buf[i + 1]
                if nxt in (ord("["), ord("O")):
                    end = i + 2
                    while end < len(buf) and not 0x40 <= buf[end] <= 0x7E:
                        end += 1
                    if end == len(buf):
                        if wait_for_rest(i):
                            break
                        i = end  # never finished: drop it
                        continue
                    key = _ARROWS.get(buf[end])
                    if key is not None:
                        shifted = buf[i + 2 : end].endswith(b";2")
                        self._motion(steps, key, self.config.coarse if shifted else 1.0)
                    i = end + 1
                    continue
                if nxt == _ESC:
                    buttons.add(Button.RESET)
                i += 1  # Alt+key sends Esc then the key: ignore the prefix, take the key
                continue
            if b == ord(" "):
                self._engaged = not self._engaged
                buttons.add(Button.ENGAGE)
            elif b in (ord("g"), ord("G")):
                self._gripper = 0.0 if self._gripper == 1.0 else 1.0
                buttons.add(Button.GRIPPER)
            elif b in _ENTER:
                buttons.add(Button.SUCCESS)
            elif b in _BACKSPACE:
                buttons.add(Button.FAILURE)
            elif b in _MOTION:
                self._motion(steps, b, 1.0)
            elif 0x41 <= b <= 0x5A and b + 0x20 in _MOTION:
                self._motion(steps, b + 0x20, self.config.coarse)
            i += 1
        return self._command(now, steps, buttons)

    def _motion(self, steps: np.ndarray, key: int, factor: float) -> None:
        if not self._engaged:
            return
        axis, sign = _MOTION[key]
        steps[axis] += sign * factor

    def _command(self, now: float, steps: np.ndarray, buttons: set[Button]) -> TeleopCommand:
        c = self.config
        limit = float(c.max_steps)
        steps = np.clip(steps, -limit, limit)
        scale = np.array([c.step] * 3 + [c.rot_step] * 3)
        return TeleopCommand(
            stamp=now,
            engaged=self._engaged,
            ee_delta=steps * scale,
            gripper=self._gripper,
            buttons=frozenset(buttons),
        )
