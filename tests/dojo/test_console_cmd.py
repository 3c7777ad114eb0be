"""``dojo console``: the person's side of a launched graph. Which nodes are the person's (the
keyboard device and the operator console, only for a person at a keyboard), and every refusal
in one line, exit 2, before any node starts (the integration test joins a real launch)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dojo import conf, graph


def console_nodes(*overrides: str) -> list[str]:
    cfg = conf.load(list(overrides))
    return [n.name for n in graph.build(cfg, "config.yaml") if n.console]


def test_only_a_person_at_a_keyboard_has_a_console_side():
    keyboard = ("intervention.enabled=true", "intervention.device=keyboard")
    assert console_nodes(*keyboard) == ["intervention", "operator_console"]
    assert console_nodes() == []
    assert console_nodes("intervention.enabled=true") == []  # the scripted person
    # a gamepad needs no terminal: its nodes stay in the launch
    assert console_nodes("intervention.enabled=true", "intervention.device=gamepad") == []


def dojo_console(*args: str, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dojo.cli", "console", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=stdin,
    )


def write_config(run, *overrides: str) -> None:
    run.mkdir(exist_ok=True)
    (run / "config.yaml").write_text(conf.to_yaml(conf.load([f"out={run}", *overrides])))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (None, "no graph config at"),
        ((), "has no person at a keyboard (intervention.enabled=False"),
        (
            ("intervention.enabled=true", "intervention.device=keyboard"),
            "not a terminal",  # stdin is /dev/null: no keys to read
        ),
    ],
)
def test_refusals_are_one_line_before_any_node(tmp_path, overrides, message):
    run = tmp_path / "run"
    if overrides is not None:
        write_config(run, *overrides)
    proc = dojo_console(f"out={run}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    assert "joining the graph" not in proc.stdout


def test_a_key_it_does_not_read_is_refused():
    proc = dojo_console("robot=so101")
    assert proc.returncode == 2 and "robot" in proc.stderr
