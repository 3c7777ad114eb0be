"""Keyboard through a pseudo-terminal: bytes written on the master side are keys typed by a
person; the device reads the slave side, as it would read an ssh session's terminal."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import subprocess
import sys
import termios
from collections.abc import Iterator

import numpy as np
import pytest

from teleop.device import (
    Button,
    DeviceNotConnectedError,
    DeviceNotFoundError,
    DeviceReadError,
    TeleopCommand,
    TeleopConfigError,
)
from teleop.keyboard import Keyboard, KeyboardConfig
from teleop.registry import make_device

STEP, ROT = 0.005, 0.05


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    master, slave = pty.openpty()
    try:
        yield master, slave
    finally:
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def wait_readable(fd: int) -> None:
    """The pty moves bytes from master to slave asynchronously: wait (bounded) until they
    are there, so the device's non-blocking read sees them."""
    ready, _, _ = select.select([fd], [], [], 2.0)
    assert ready, "the pseudo-terminal did not deliver the keys within 2 s"


def type_keys(master: int, slave: int, data: bytes) -> None:
    os.write(master, data)
    wait_readable(slave)


def make(slave: int, **overrides) -> Keyboard:
    return Keyboard(KeyboardConfig(fd=slave, step=STEP, rot_step=ROT, **overrides))


def test_restores_terminal_attributes(terminal) -> None:
    _, slave = terminal
    before = termios.tcgetattr(slave)
    kb = make(slave)
    assert termios.tcgetattr(slave) == before  # no I/O in the constructor
    with kb:
        during = termios.tcgetattr(slave)
        assert not during[3] & termios.ICANON and not during[3] & termios.ECHO
        assert during[3] & termios.ISIG  # Ctrl-C still interrupts
    assert termios.tcgetattr(slave) == before


def test_restores_terminal_when_the_loop_raises(terminal) -> None:
    _, slave = terminal
    before = termios.tcgetattr(slave)
    with pytest.raises(RuntimeError, match="boom"), make(slave):
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before


def test_motion_keys_need_engage(terminal) -> None:
    master, slave = terminal
    with make(slave) as kb:
        type_keys(master, slave, b"w")
        cmd = kb.read(1.0)
        assert not cmd.engaged and not cmd.moving  # dropped while disengaged
        type_keys(master, slave, b" ")
        cmd = kb.read(1.1)
        assert cmd.engaged and cmd.buttons == {Button.ENGAGE}
        type_keys(master, slave, b"wwa")
        cmd = kb.read(1.2)
        assert cmd.stamp == 1.2
        np.testing.assert_allclose(cmd.ee_delta, [2 * STEP, STEP, 0, 0, 0, 0])
        assert cmd.buttons == frozenset()
        assert not kb.read(1.3).moving  # nothing typed: no motion


def test_every_motion_key(terminal) -> None:
    master, slave = terminal
    expected = {
        b"w": [1, 0, 0, 0, 0, 0],
        b"s": [-1, 0, 0, 0, 0, 0],
        b"a": [0, 1, 0, 0, 0, 0],
        b"d": [0, -1, 0, 0, 0, 0],
        b"r": [0, 0, 1, 0, 0, 0],
        b"f": [0, 0, -1, 0, 0, 0],
        b"j": [0, 0, 0, 1, 0, 0],
        b"l": [0, 0, 0, -1, 0, 0],
        b"i": [0, 0, 0, 0, 1, 0],
        b"k": [0, 0, 0, 0, -1, 0],
        b"q": [0, 0, 0, 0, 0, 1],
        b"e": [0, 0, 0, 0, 0, -1],
        b"\x1b[A": [1, 0, 0, 0, 0, 0],  # arrows
        b"\x1b[B": [-1, 0, 0, 0, 0, 0],
        b"\x1b[D": [0, 1, 0, 0, 0, 0],
        b"\x1b[C": [0, -1, 0, 0, 0, 0],
        b"\x1bOA": [1, 0, 0, 0, 0, 0],  # application cursor mode
    }
    scale = np.array([STEP] * 3 + [ROT] * 3)
    with make(slave, engaged=True) as kb:
        for t, (key, unit) in enumerate(expected.items()):
            type_keys(master, slave, key)
            cmd = kb.read(float(t))
            np.testing.assert_allclose(cmd.ee_delta, np.array(unit) * scale, err_msg=repr(key))
            assert cmd.buttons == frozenset(), repr(key)


def test_coarse_steps_and_the_repeat_cap(terminal) -> None:
    master, slave = terminal
    with make(slave, engaged=True, coarse=5.0, max_steps=10) as kb:
        type_keys(master, slave, b"W")
        np.testing.assert_allclose(kb.read(0.0).ee_delta[0], 5 * STEP)
        type_keys(master, slave, b"\x1b[1;2D")  # Shift+Left
        np.testing.assert_allclose(kb.read(0.1).ee_delta[1], 5 * STEP)
        type_keys(master, slave, b"w" * 40)  # a pasted burst
        np.testing.assert_allclose(kb.read(0.2).ee_delta[0], 10 * STEP)


def test_buttons_and_gripper(terminal) -> None:
    master, slave = terminal
    with make(slave) as kb:
        cmd = kb.read(0.0)
        assert cmd.gripper is None and cmd.buttons == frozenset()
        type_keys(master, slave, b"g")
        cmd = kb.read(0.1)
        assert cmd.gripper == 1.0 and cmd.buttons == {Button.GRIPPER}
        type_keys(master, slave, b"g")
        assert kb.read(0.2).gripper == 0.0
        type_keys(master, slave, b"\r")  # Enter (ICRNL turns it into \n on the way)
        assert kb.read(0.3).buttons == {Button.SUCCESS}
        type_keys(master, slave, b"\x7f")  # Backspace
        assert kb.read(0.4).buttons == {Button.FAILURE}
        assert kb.read(0.5).buttons == frozenset()  # edge-triggered: once per press


def test_escape_alone_is_reset_after_the_timeout(terminal) -> None:
    master, slave = terminal
    with make(slave, esc_timeout=0.05, engaged=True) as kb:
        type_keys(master, slave, b"\x1b")
        assert kb.read(1.0).buttons == frozenset()  # might be the start of an arrow key
        assert kb.read(1.02).buttons == frozenset()
        assert kb.read(1.06).buttons == {Button.RESET}
        assert kb.read(1.08).buttons == frozenset()
        # an arrow key split across two reads is still an arrow, not a reset
        type_keys(master, slave, b"\x1b")
        assert kb.read(2.0).buttons == frozenset()
        type_keys(master, slave, b"[A")
        cmd = kb.read(2.01)
        assert cmd.buttons == frozenset()
        np.testing.assert_allclose(cmd.ee_delta[0], STEP)
        # Esc followed by other keys in one read
        type_keys(master, slave, b"\x1b\x1b")
        assert Button.RESET in kb.read(3.0).buttons


def test_not_a_terminal(tmp_path) -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(DeviceNotFoundError, match=r"^Keyboard: fd \d+ is not a terminal"):
            Keyboard(KeyboardConfig(fd=r)).connect()
    finally:
        os.close(r)
        os.close(w)


def test_read_before_connect(terminal) -> None:
    _, slave = terminal
    with pytest.raises(DeviceNotConnectedError, match=r"^Keyboard: read"):
        make(slave).read(0.0)


def test_terminal_hangup_disengages_and_names_the_device(terminal) -> None:
    master, slave = terminal
    with make(slave, engaged=True) as kb:
        os.close(master)  # the ssh session dropped
        with pytest.raises(DeviceReadError, match=r"^Keyboard: "):
            kb.read(0.0)
    assert not kb.connected  # closing a terminal that is gone does not raise


def test_help_lists_the_keys() -> None:
    text = Keyboard().help()
    for word in ("w/s", "a/d", "r/f", "q/e", "space", "Enter", "Backspace", "Esc", "g "):
        assert word in text


# -- the registry and the command type (shared by every device) --------------------------------


def test_registry_builds_a_keyboard_without_touching_the_terminal(terminal) -> None:
    _, slave = terminal
    before = termios.tcgetattr(slave)
    kb = make_device("keyboard", fd=slave, step=0.001)
    assert isinstance(kb, Keyboard) and kb.config.step == 0.001 and not kb.connected
    assert termios.tcgetattr(slave) == before


def test_registry_suggests_the_nearest_name_and_key() -> None:
    with pytest.raises(TeleopConfigError, match="did you mean 'keyboard'"):
        make_device("keybaord")
    with pytest.raises(TeleopConfigError, match="did you mean 'spacemouse'"):
        make_device("space_mouse")
    with pytest.raises(TeleopConfigError, match=r"unknown config key 'stepp'.*did you mean 'step'"):
        make_device("keyboard", stepp=0.01)
    with pytest.raises(TeleopConfigError, match="'step'"):
        make_device("keyboard", step=-1.0)


def test_importing_the_registry_imports_no_hardware_sdk() -> None:
    code = (
        "import sys, teleop.registry; "
        "sdks = ('hid', 'pygame', 'evdev', 'lerobot', 'torch'); "
        "print(sorted(m for m in sdks if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_command_checks_its_fields() -> None:
    cmd = TeleopCommand(stamp=1.0, engaged=True, ee_delta=[0, 0, 0.001, 0, 0, 0], gripper=1)
    assert cmd.moving and cmd.gripper == 1.0 and cmd.buttons == frozenset()
    with pytest.raises(ValueError):
        cmd.ee_delta[0] = 1.0  # read-only: a command is a record
    with pytest.raises(ValueError, match="ee_delta has shape"):
        TeleopCommand(stamp=0.0, engaged=True, ee_delta=np.zeros(3))
    with pytest.raises(ValueError, match="gripper"):
        TeleopCommand(stamp=0.0, engaged=True, gripper=1.5)
    with pytest.raises(ValueError, match="NaN"):
        TeleopCommand(stamp=0.0, engaged=True, joint_targets=[0.0, float("nan")])
    with pytest.raises(ValueError, match="Button"):
        TeleopCommand(stamp=0.0, engaged=False, buttons=frozenset({"success"}))
