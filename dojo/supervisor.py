"""Starts the graph's nodes as processes and stops them cleanly: what ``dojo run`` does on a
machine without ``ros2 launch``.

- Each node runs in its own session, so a Ctrl-C in the terminal (or its hangup: a dropped
  ssh session) reaches only the supervisor, which then stops the nodes in order: the driver
  first (the arm holds while everything else is still alive), then the rest. Each gets SIGINT,
  then SIGKILL after a bounded wait.
- A node that dies is reported by name with its exit code, and the run stops.
- ``stdin`` gives a node a file descriptor as its standard input: the pseudo-terminal that
  carries the person's keys (``dojo.console.keys.KeyRelay``); the others inherit the supervisor's.
- If the supervisor itself is killed, the kernel sends every node SIGTERM (PR_SET_PDEATHSIG),
  so no orphan keeps driving a robot.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dojo.graph import NodeSpec

log = logging.getLogger("dojo.run")

STOP_WAIT_S = 8.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class RunOutcome:
    code: int
    reason: str


class Supervisor:
    def __init__(
        self,
        nodes: Sequence[NodeSpec],
        env: Mapping[str, str],
        *,
        namespace: str = "",
        log_level: str = "info",
        stdin: Mapping[str, int] | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.env = dict(env)
        self.stdin = dict(stdin or {})  # node name -> fd it gets as standard input
        self.namespace = namespace
        self.log_level = log_level
        self.procs: dict[str, subprocess.Popen] = {}
        self._interrupted = False

    def start(self) -> None:
        for node in self.nodes:
            cmd = node.command(self.namespace, self.log_level)
            log.info("starting %s", node.name)
            self.procs[node.name] = subprocess.Popen(
                cmd,
                env=self.env,
                stdin=self.stdin.get(node.name),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def _on_signal(self, signum, _frame) -> None:
        self._interrupted = True

    def wait(self, timeout: float | None = None) -> RunOutcome:
        """Until a node finishes the run, a required node dies, Ctrl-C, or ``timeout`` (wall s)."""
        stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal went away
        previous = {s: signal.signal(s, self._on_signal) for s in stops}
        end = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                if self._interrupted:
                    return RunOutcome(130, "interrupted")
                for node in self.nodes:
                    code = self.procs[node.name].poll()
                    if code is None:
                        continue
                    if node.finishes_run and code == 0:
                        return RunOutcome(0, f"{node.name} finished")
                    if node.required or code != 0:
                        return RunOutcome(code or 1, f"node '{node.name}' died (exit code {code})")
                if end is not None and time.monotonic() > end:
                    return RunOutcome(0, f"run time of {timeout:g} s reached")
                time.sleep(0.1)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def stop(self) -> None:
        """Driver first, then the others; SIGINT, then SIGKILL after a bounded wait."""
        first = [n for n in self.nodes if n.stop_first]
        rest = [n for n in self.nodes if not n.stop_first]
        for group in (first, rest):
            live = [
                n for n in group if self.procs.get(n.name) and self.procs[n.name].poll() is None
            ]
            for node in live:
                self.procs[node.name].send_signal(signal.SIGINT)
            end = time.monotonic() + STOP_WAIT_S
            for node in live:
                proc = self.procs[node.name]
                try:
                    proc.wait(timeout=max(0.1, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop within %.0f s; killing it", node.name, STOP_WAIT_S)
                    proc.kill()
                    proc.wait(timeout=5)
