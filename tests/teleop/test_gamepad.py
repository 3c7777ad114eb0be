"""Gamepad: the pygame backend with SDL's dummy video driver and a fake joystick object at
pygame's API boundary; the evdev backend with a fake ``InputDevice`` at evdev's API boundary
(real ``evdev.ecodes`` and ``InputEvent``)."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from teleop.device import Button, DeviceNotFoundError, DeviceReadError
from teleop.gamepad import Gamepad, GamepadConfig, PadState, command_from_pad
from teleop.registry import make_device

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

SPEED, ROT, HAT = 0.1, 0.8, 0.5


def cfg(**overrides) -> GamepadConfig:
    base = dict(deadzone=0.1, max_speed=SPEED, max_rot_speed=ROT, hat_rot_speed=HAT, period=0.02)
    base.update(overrides)
    return GamepadConfig(**base)


# -- the mapping (pure) -------------------------------------------------------------------------


def pad(buttons=(), hat=(0, 0), **axes) -> PadState:
    full = dict.fromkeys(("lx", "ly", "rx", "ry", "lt", "rt"), 0.0)
    full.update(axes)
    return PadState(axes=full, hat=hat, buttons=frozenset(buttons))


def test_sticks_map_to_base_frame_velocities() -> None:
    c = cfg(deadzone=0.0)
    held, d = command_from_pad(pad({"lb"}, ly=-1.0, lx=-1.0, ry=-1.0, rx=-1.0), c, 0.02)
    assert held
    # stick up = forward (+x); stick left = left (+y); right stick up = up; right stick left = +yaw
    np.testing.assert_allclose(d, np.array([SPEED, SPEED, SPEED, 0, 0, ROT]) * 0.02)
    _, d = command_from_pad(pad({"lb"}, hat=(1, 1)), c, 0.02)
    np.testing.assert_allclose(d, np.array([0, 0, 0, HAT, HAT, 0]) * 0.02)


def test_no_deadman_no_motion_and_deadzone() -> None:
    held, d = command_from_pad(pad(ly=-1.0), cfg(), 0.02)
    assert not held and not np.any(d)
    _, d = command_from_pad(pad({"lb"}, ly=-0.05, lx=0.09), cfg(deadzone=0.1), 0.02)
    assert not np.any(d)
    _, d = command_from_pad(pad({"lb"}, ly=-0.55), cfg(deadzone=0.1), 0.02)
    np.testing.assert_allclose(d[0], 0.5 * SPEED * 0.02)  # rescaled past the deadzone
    held, _ = command_from_pad(pad(rt=0.8), cfg(deadman="rt"), 0.02)
    assert held


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="'deadman'"):
        GamepadConfig(deadman="lbb")
    with pytest.raises(ValueError, match="'backend'"):
        GamepadConfig(backend="sdl3")
    with pytest.raises(ValueError, match="deadman and an action"):
        GamepadConfig(actions={"lb": "success"})


# -- pygame backend -------------------------------------------------------------------------


class FakeJoystick:
    """pygame.joystick.JoystickType's reading API, for an Xbox-layout pad."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.axes = [0.0, 0.0, -1.0, 0.0, 0.0, -1.0]  # triggers rest at -1 in SDL
        self.buttons = [0] * 11
        self.hat = (0, 0)
        self.initialised = False

    def init(self) -> None:
        self.initialised = True

    def quit(self) -> None:
        self.initialised = False

    def get_name(self) -> str:
        return "Fake Xbox pad"

    def get_instance_id(self) -> int:
        return 7

    def get_numaxes(self) -> int:
        return len(self.axes)

    def get_axis(self, i: int) -> float:
        return self.axes[i]

    def get_numbuttons(self) -> int:
        return len(self.buttons)

    def get_button(self, i: int) -> int:
        return self.buttons[i]

    def get_numhats(self) -> int:
        return 1

    def get_hat(self, i: int) -> tuple[int, int]:
        return self.hat


@pytest.fixture
def pygame_pad(monkeypatch: pytest.MonkeyPatch) -> FakeJoystick:
    pygame = pytest.importorskip("pygame")
    joystick = FakeJoystick(0)
    monkeypatch.setattr(pygame.joystick, "get_count", lambda: 1)
    monkeypatch.setattr(pygame.joystick, "Joystick", lambda index: joystick)
    return joystick


def test_pygame_without_a_joystick_says_what_to_check() -> None:
    pytest.importorskip("pygame")
    pad_ = Gamepad(cfg(backend="pygame"))
    with pytest.raises(DeviceNotFoundError) as err:
        pad_.connect()
    msg = str(err.value)
    assert msg.startswith("Gamepad: no joystick with index 0 (SDL sees 0)")
    assert "plugged in?" in msg
    assert not pad_.connected


def test_pygame_read(pygame_pad: FakeJoystick) -> None:
    with Gamepad(cfg(backend="pygame")) as gp:
        assert pygame_pad.initialised and gp.device_name == "Fake Xbox pad"
        pygame_pad.axes[1] = -1.0  # left stick fully up, but no deadman
        cmd = gp.read(0.0)
        assert not cmd.engaged and not cmd.moving and cmd.buttons == frozenset()
        pygame_pad.buttons[4] = 1  # hold LB
        cmd = gp.read(0.02)
        assert cmd.engaged and cmd.buttons == {Button.ENGAGE}
        np.testing.assert_allclose(cmd.ee_delta, [SPEED * 0.02, 0, 0, 0, 0, 0])
        cmd = gp.read(0.06)  # 40 ms later: twice the step
        np.testing.assert_allclose(cmd.ee_delta[0], SPEED * 0.04)
        assert cmd.buttons == frozenset()  # ENGAGE only on the press
        pygame_pad.buttons[0] = 1  # A: gripper
        pygame_pad.buttons[7] = 1  # Start: success
        pygame_pad.hat = (0, 1)  # D-pad up: +pitch
        cmd = gp.read(0.08)
        assert cmd.buttons == {Button.GRIPPER, Button.SUCCESS}
        assert cmd.gripper == 1.0
        np.testing.assert_allclose(cmd.ee_delta[4], HAT * 0.02)
        pygame_pad.buttons[4] = 0  # release the deadman: control goes back at once
        cmd = gp.read(0.1)
        assert not cmd.engaged and not cmd.moving
        assert cmd.buttons == frozenset()  # A and Start still held: no new press
    assert not pygame_pad.initialised


def test_pygame_unplugged(pygame_pad: FakeJoystick) -> None:
    import pygame

    with Gamepad(cfg(backend="pygame")) as gp:
        gp.read(0.0)
        pygame.event.post(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=3))  # another
        gp.read(0.02)
        pygame.event.post(pygame.event.Event(pygame.JOYDEVICEREMOVED, instance_id=7))
        with pytest.raises(DeviceReadError, match=r"^Gamepad: 'Fake Xbox pad' was unplugged"):
            gp.read(0.04)


def test_pygame_trigger_as_deadman(pygame_pad: FakeJoystick) -> None:
    with Gamepad(cfg(backend="pygame", deadman="rt")) as gp:
        assert not gp.read(0.0).engaged  # RT at rest reads -1 in SDL: released
        pygame_pad.axes[5] = 1.0
        assert gp.read(0.02).engaged


# -- evdev backend --------------------------------------------------------------------------


@pytest.fixture
def evdev_mod():
    return pytest.importorskip("evdev")


class FakeInputDevice:
    """evdev.InputDevice's API as the backend uses it."""

    def __init__(self, path: str, name: str = "Fake pad", gamepad: bool = True) -> None:
        import evdev

        e = evdev.ecodes
        self.path, self.name = path, name
        self.events: list = []
        self.error: OSError | None = None
        self.closed = False
        keys = [e.BTN_SOUTH, e.BTN_EAST, e.BTN_TL, e.BTN_TR, e.BTN_START, e.BTN_SELECT]
        self._caps = (
            {e.EV_KEY: keys, e.EV_ABS: [e.ABS_X, e.ABS_Y, e.ABS_RX, e.ABS_RY, e.ABS_HAT0Y]}
            if gamepad
            else {e.EV_KEY: [e.KEY_A, e.KEY_B]}
        )
        self._abs = {
            e.ABS_X: evdev.AbsInfo(0, -32768, 32767, 16, 128, 0),
            e.ABS_Y: evdev.AbsInfo(0, -32768, 32767, 16, 128, 0),
            e.ABS_RX: evdev.AbsInfo(0, -32768, 32767, 16, 128, 0),
            e.ABS_RY: evdev.AbsInfo(0, -32768, 32767, 16, 128, 0),
            e.ABS_HAT0Y: evdev.AbsInfo(0, -1, 1, 0, 0, 0),
        }

    def capabilities(self) -> dict:
        return self._caps

    def absinfo(self, code: int):
        return self._abs[code]

    def active_keys(self) -> list[int]:
        return []

    def read(self):
        if self.error is not None:
            raise self.error
        if not self.events:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        events, self.events = self.events, []
        return iter(events)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def evdev_pads(monkeypatch: pytest.MonkeyPatch, evdev_mod) -> dict[str, FakeInputDevice]:
    devices = {
        "/dev/input/event3": FakeInputDevice("/dev/input/event3", "AT keyboard", gamepad=False),
        "/dev/input/event7": FakeInputDevice("/dev/input/event7", "Fake pad"),
    }

    def open_device(path: str) -> FakeInputDevice:
        if path not in devices:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return devices[path]

    monkeypatch.setattr(evdev_mod, "InputDevice", open_device)
    monkeypatch.setattr(evdev_mod, "list_devices", lambda: sorted(devices))
    return devices


def ev(type_: int, code: int, value: int):
    import evdev

    return evdev.InputEvent(0, 0, type_, code, value)


def test_evdev_finds_the_gamepad_and_reads_events(evdev_pads, evdev_mod) -> None:
    e = evdev_mod.ecodes
    dev = evdev_pads["/dev/input/event7"]
    with Gamepad(cfg(backend="evdev")) as gp:
        assert gp.device_name == "Fake pad"
        assert not dev.closed and evdev_pads["/dev/input/event3"].closed  # probed, let go
        assert gp.read(0.0).ee_delta.tolist() == [0.0] * 6  # no events pending: no block
        dev.events = [
            ev(e.EV_KEY, e.BTN_TL, 1),  # LB down
            ev(e.EV_ABS, e.ABS_Y, -32768),  # left stick fully up
            ev(e.EV_ABS, e.ABS_HAT0Y, -1),  # D-pad up (evdev: up is -1)
            ev(e.EV_SYN, 0, 0),
        ]
        cmd = gp.read(0.02)
        assert cmd.engaged and cmd.buttons == {Button.ENGAGE}
        np.testing.assert_allclose(cmd.ee_delta, [SPEED * 0.02, 0, 0, 0, HAT * 0.02, 0])
        dev.events = [ev(e.EV_KEY, e.BTN_EAST, 1), ev(e.EV_KEY, e.BTN_SELECT, 1)]
        assert gp.read(0.04).buttons == {Button.RESET, Button.FAILURE}
        dev.events = [ev(e.EV_KEY, e.BTN_TL, 0)]
        assert not gp.read(0.06).engaged
        dev.error = OSError(errno.ENODEV, "No such device")
        with pytest.raises(DeviceReadError, match=r"^Gamepad: evdev read failed \(unplugged\?\)"):
            gp.read(0.08)
    assert dev.closed


def test_evdev_without_a_gamepad(evdev_pads) -> None:
    del evdev_pads["/dev/input/event7"]
    with pytest.raises(DeviceNotFoundError, match=r"^Gamepad: no evdev device with gamepad"):
        Gamepad(cfg(backend="evdev")).connect()


def test_evdev_wrong_path(evdev_pads) -> None:
    with pytest.raises(DeviceNotFoundError, match=r"event9.*group 'input'"):
        Gamepad(cfg(backend="evdev", path="/dev/input/event9")).connect()


def test_registry_entry() -> None:
    gp = make_device("gamepad", backend="evdev", deadman="rb")
    assert isinstance(gp, Gamepad) and gp.config.deadman == "rb" and not gp.connected
