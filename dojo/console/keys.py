"""How the keyboard device gets the person's terminal: :class:`KeyRelay`.

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
import errno
import logging
import os
import select
import termios
import threading
import tty
from typing import Self

log = logging.getLogger(__name__)


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
