"""The status lines of the operator's console on the terminal's last rows.

``dojo run`` shares one terminal between every node's log lines and the console's status: see
:class:`StatusDisplay` for how the two stay apart.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import TextIO


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
