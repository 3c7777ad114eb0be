"""dojo run's process supervision, with stand-in node processes (no ROS needed)."""

from __future__ import annotations

import sys
import time

from dojo.graph import NodeSpec
from dojo.supervisor import Supervisor


def _node(name: str, script: str, **kw) -> NodeSpec:
    """A NodeSpec whose process is a short Python script instead of a ROS node."""
    spec = NodeSpec(name=name, module="unused", **kw)
    object.__setattr__(spec, "command", lambda *_a, **_k: [sys.executable, "-c", script])
    return spec


# Records the order in which nodes receive SIGINT, then exits cleanly.
ON_SIGINT = """
import signal, sys, time
def stop(*_):
    with open({log!r}, "a") as f:
        f.write({name!r} + "\\n")
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
end = time.monotonic() + 30
while time.monotonic() < end:
    time.sleep(0.01)
"""


def test_a_dying_node_is_reported_by_name(tmp_path):
    nodes = [
        _node("robot_driver", "import time; time.sleep(30)", stop_first=True),
        _node("flaky", "import sys; sys.exit(3)"),
    ]
    sup = Supervisor(nodes, env={})
    sup.start()
    try:
        outcome = sup.wait(timeout=20)
    finally:
        sup.stop()
    assert outcome.code == 3
    assert "node 'flaky' died (exit code 3)" in outcome.reason
    assert all(p.poll() is not None for p in sup.procs.values())


def test_finishing_node_ends_the_run_and_driver_stops_first(tmp_path):
    log = tmp_path / "order.txt"
    nodes = [
        _node("operator", ON_SIGINT.format(log=str(log), name="operator")),
        _node("robot_driver", ON_SIGINT.format(log=str(log), name="robot_driver"), stop_first=True),
        _node("runner", "import time; time.sleep(1.0)", finishes_run=True),
    ]
    sup = Supervisor(nodes, env={})
    sup.start()
    t0 = time.monotonic()
    try:
        outcome = sup.wait(timeout=20)
    finally:
        sup.stop()
    assert outcome.code == 0 and "runner finished" in outcome.reason
    assert time.monotonic() - t0 < 15
    assert log.read_text().split() == ["robot_driver", "operator"]


def test_a_node_ignoring_sigint_is_killed_within_the_bound(monkeypatch, tmp_path):
    import dojo.supervisor as supervisor_module

    monkeypatch.setattr(supervisor_module, "STOP_WAIT_S", 1.0)
    ready = tmp_path / "ready"
    stubborn = (
        "import signal, time, pathlib; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    )
    sup = Supervisor([_node("stubborn", stubborn)], env={})
    sup.start()
    end = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < end:
        time.sleep(0.01)
    assert ready.exists(), "the stand-in node did not start within 10 s"
    t0 = time.monotonic()
    sup.stop()
    assert sup.procs["stubborn"].poll() is not None
    assert time.monotonic() - t0 < 5
