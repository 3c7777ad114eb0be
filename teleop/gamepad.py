r"""Gamepad teleop: SDL through pygame (headless), or Linux evdev directly.

Why two backends: SDL (pygame) knows many controllers and runs on macOS too, but needs its
event pump; evdev reads ``/dev/input/event*`` with no SDL at all (a container without SDL, or
a controller SDL does not know). Both turn the pad into the same :class:`PadState`, and one
mapping turns that into a :class:`~teleop.device.TeleopCommand`, so the two cannot drift.

pygame runs with ``SDL_VIDEODRIVER=dummy`` (no window, no X server) and
``SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS=1`` (SDL otherwise drops joystick events when no window
of the process has focus, which is always the case here).

Controls (Xbox layout; PlayStation: cross = A, circle = B, L1 = LB, share = Back, options =
Start)::

         LB: hold = deadman (you are in control while held)
         ________                              ________
        /  [LB]  \____________________________/  [RB]  \
       |    _                Back  Start            (Y)   |
       |  ( L )  left stick                      (X)   (B) |   A      gripper toggle
       |   `-'                                      (A)    |   B      reset
       |        +       D-pad             _                |   Start  success
       |      + o +                     ( R )  right stick |   Back   failure
        \       +                        `-'              /
         \_____________/              \_________________/

    left stick   away/towards you: +x/-x       left/right: +y/-y
    right stick  away/towards you: +z/-z       left/right: +yaw/-yaw (turn left/right)
    D-pad        up/down: +pitch/-pitch        right/left: +roll/-roll

The stick frame is the robot base frame seen by a person standing behind the robot: pushing a
stick away from you moves the gripper away from you. Stick values past the deadzone are
velocities: full deflection is ``max_speed`` m/s (``max_rot_speed`` rad/s), and each read
returns velocity x (time since the previous read). The person is in control only while the
deadman (LB by default) is held; releasing it hands control back at once.

Axis conventions of the two backends, normalised here: sticks in [-1, 1] with up = -1 (as both
report), triggers in [0, 1], D-pad with up = +1 (pygame's hat) where evdev's ``ABS_HAT0Y``
reports up = -1.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from teleop.device import (
    Button,
    DeviceNotFoundError,
    DeviceReadError,
    PeriodTracker,
    TeleopCommand,
    TeleopConfigError,
    TeleopDevice,
    apply_deadzone,
    check_positive,
)

log = logging.getLogger(__name__)

NAME = "Gamepad"
AXES = ("lx", "ly", "rx", "ry", "lt", "rt")
BUTTONS = ("a", "b", "north", "west", "lb", "rb", "back", "start", "guide")
TRIGGERS = ("lt", "rt")

# SDL joystick indices of an Xbox-layout pad on Linux (xpad / xone / hid-generic order)
PYGAME_AXES = {"lx": 0, "ly": 1, "lt": 2, "rx": 3, "ry": 4, "rt": 5}
PYGAME_BUTTONS = {
    "a": 0,
    "b": 1,
    "north": 2,
    "west": 3,
    "lb": 4,
    "rb": 5,
    "back": 6,
    "start": 7,
    "guide": 8,
}
# logical button -> action; the deadman is configured separately
DEFAULT_ACTIONS = {"a": "gripper", "b": "reset", "start": "success", "back": "failure"}
_ACTIONS = ("gripper", "success", "failure", "reset")


@dataclass(frozen=True)
class PadState:
    """One snapshot of a pad: ``axes`` by name (sticks [-1, 1], triggers [0, 1]), ``hat``
    ``(x, y)`` with right and up positive, ``buttons``: names of the buttons held."""

    axes: dict[str, float]
    hat: tuple[int, int] = (0, 0)
    buttons: frozenset[str] = frozenset()


@dataclass
class GamepadConfig:
    """``backend``: ``"pygame"`` or ``"evdev"``. ``index``: SDL joystick index (pygame).
    ``path``: ``/dev/input/eventN`` (evdev; default: the first device with gamepad buttons).
    ``deadzone``: fraction of a stick's range. ``max_speed`` m/s, ``max_rot_speed`` rad/s at
    full deflection. ``hat_rot_speed``: rad/s for the D-pad. ``deadman``: the button (or
    trigger, pressed past half way) held to engage. ``actions``: button -> one of gripper,
    success, failure, reset. ``axis_map``/``button_map``: SDL indices of each logical control
    (pygame only; evdev uses the kernel's standard codes). ``period``: s assumed for the first
    read, later ones use the time since the previous read, at most ``max_period``."""

    backend: str = "pygame"
    index: int = 0
    path: str | None = None
    deadzone: float = 0.1
    max_speed: float = 0.10
    max_rot_speed: float = 0.8
    hat_rot_speed: float = 0.5
    deadman: str = "lb"
    actions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    axis_map: dict[str, int] = field(default_factory=lambda: dict(PYGAME_AXES))
    button_map: dict[str, int] = field(default_factory=lambda: dict(PYGAME_BUTTONS))
    period: float = 0.02
    max_period: float = 0.1

    def __post_init__(self) -> None:
        if self.backend not in ("pygame", "evdev"):
            raise TeleopConfigError(f"{NAME}: 'backend'={self.backend!r}; use 'pygame' or 'evdev'")
        if not 0.0 <= self.deadzone < 1.0:
            raise TeleopConfigError(f"{NAME}: 'deadzone'={self.deadzone} must be in [0, 1)")
        check_positive(
            NAME,
            max_speed=self.max_speed,
            max_rot_speed=self.max_rot_speed,
            hat_rot_speed=self.hat_rot_speed,
            period=self.period,
            max_period=self.max_period,
        )
        if self.deadman not in BUTTONS + TRIGGERS:
            raise TeleopConfigError(
                f"{NAME}: 'deadman'={self.deadman!r}; use one of {BUTTONS + TRIGGERS}"
            )
        for button, action in self.actions.items():
            if button not in BUTTONS:
                raise TeleopConfigError(f"{NAME}: 'actions' names unknown button {button!r}")
            if action not in _ACTIONS:
                raise TeleopConfigError(f"{NAME}: 'actions.{button}'={action!r}; use {_ACTIONS}")
            if button == self.deadman:
                raise TeleopConfigError(f"{NAME}: button {button!r} is the deadman and an action")
        unknown = (set(self.axis_map) - set(AXES)) | (set(self.button_map) - set(BUTTONS))
        if unknown:
            raise TeleopConfigError(f"{NAME}: axis_map/button_map name unknown controls {unknown}")


# -- backends -----------------------------------------------------------------------------


class _PygameBackend:
    """SDL joystick API through pygame, headless."""

    def __init__(self, config: GamepadConfig) -> None:
        self.config = config
        self._pygame = None
        self._js = None

    def open(self) -> str:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError as exc:
            raise DeviceNotFoundError(f"{NAME}: pygame is not installed: {exc}") from exc
        self._pygame = pygame
        pygame.display.init()  # the event pump that updates joysticks needs the video subsystem
        pygame.joystick.init()
        count = pygame.joystick.get_count()
        index = self.config.index
        if not 0 <= index < count:
            raise DeviceNotFoundError(
                f"{NAME}: no joystick with index {index} (SDL sees {count}); plugged in? "
                "paired? read access to /dev/input/event* (group 'input')?"
            )
        js = pygame.joystick.Joystick(index)
        js.init()
        self._js = js
        return str(js.get_name())

    def poll(self) -> PadState:
        pygame, js = self._pygame, self._js
        try:
            # drain SDL's queue (it would fill up otherwise); joystick state is updated by it
            for event in pygame.event.get():
                if (
                    event.type == pygame.JOYDEVICEREMOVED
                    and getattr(event, "instance_id", None) == js.get_instance_id()
                ):
                    raise DeviceReadError(f"{NAME}: '{js.get_name()}' was unplugged")
            n_axes, n_buttons = js.get_numaxes(), js.get_numbuttons()
            axes = {}
            for name in AXES:
                i = self.config.axis_map.get(name)
                value = float(js.get_axis(i)) if i is not None and i < n_axes else 0.0
                if name in TRIGGERS:  # SDL: -1 released .. +1 pressed
                    value = (value + 1.0) / 2.0 if i is not None and i < n_axes else 0.0
                axes[name] = value
            held = frozenset(
                name
                for name, i in self.config.button_map.items()
                if i < n_buttons and js.get_button(i)
            )
            hat = tuple(int(v) for v in js.get_hat(0)) if js.get_numhats() > 0 else (0, 0)
        except pygame.error as exc:
            raise DeviceReadError(f"{NAME}: SDL read failed (unplugged?): {exc}") from exc
        return PadState(axes=axes, hat=(hat[0], hat[1]), buttons=held)

    def close(self) -> None:
        pygame, self._pygame = self._pygame, None
        js, self._js = self._js, None
        if pygame is None:
            return
        if js is not None:
            js.quit()
        pygame.joystick.quit()
        pygame.display.quit()


class _EvdevBackend:
    """Linux input events, read without blocking; state kept from the event stream."""

    def __init__(self, config: GamepadConfig) -> None:
        self.config = config
        self._dev = None
        self._axes: dict[str, float] = {}
        self._hat = [0, 0]
        self._held: set[str] = set()

    def _codes(self, ecodes) -> tuple[dict[int, str], dict[int, str]]:
        abs_codes = {
            ecodes.ABS_X: "lx",
            ecodes.ABS_Y: "ly",
            ecodes.ABS_RX: "rx",
            ecodes.ABS_RY: "ry",
            ecodes.ABS_Z: "lt",
            ecodes.ABS_RZ: "rt",
            ecodes.ABS_HAT0X: "hat_x",
            ecodes.ABS_HAT0Y: "hat_y",
        }
        key_codes = {
            ecodes.BTN_SOUTH: "a",
            ecodes.BTN_EAST: "b",
            ecodes.BTN_NORTH: "north",
            ecodes.BTN_WEST: "west",
            ecodes.BTN_TL: "lb",
            ecodes.BTN_TR: "rb",
            ecodes.BTN_SELECT: "back",
            ecodes.BTN_START: "start",
            ecodes.BTN_MODE: "guide",
        }
        return abs_codes, key_codes

    def open(self) -> str:
        try:
            import evdev
        except ImportError as exc:
            raise DeviceNotFoundError(
                f"{NAME}: the 'evdev' package is not installed: {exc}"
            ) from exc
        ecodes = evdev.ecodes
        self._abs_codes, self._key_codes = self._codes(ecodes)
        if self.config.path is None:
            dev = self._find(evdev)
        else:
            try:
                dev = evdev.InputDevice(self.config.path)
            except OSError as exc:
                raise DeviceNotFoundError(
                    f"{NAME}: cannot open {self.config.path} ({exc}); plugged in? in group 'input'?"
                ) from exc
        self._dev = dev
        self._ranges: dict[int, tuple[int, int]] = {}
        caps = dev.capabilities()
        for code in caps.get(ecodes.EV_ABS, []):
            code = code[0] if isinstance(code, tuple) else code
            if code in self._abs_codes:
                info = dev.absinfo(code)
                self._ranges[code] = (info.min, info.max)
                self._set_abs(code, info.value)
        self._held = {self._key_codes[k] for k in dev.active_keys() if k in self._key_codes}
        return str(dev.name)

    def _find(self, evdev):
        """The first input device with gamepad buttons, opened."""
        ecodes = evdev.ecodes
        seen = []
        for path in evdev.list_devices():
            try:
                dev = evdev.InputDevice(path)
            except OSError:
                continue
            keys = dev.capabilities().get(ecodes.EV_KEY, [])
            if ecodes.BTN_SOUTH in keys or ecodes.BTN_GAMEPAD in keys:
                return dev
            seen.append(f"{path} ({dev.name})")
            dev.close()
        raise DeviceNotFoundError(
            f"{NAME}: no evdev device with gamepad buttons among {seen or 'none readable'}; "
            "plugged in? in group 'input'?"
        )

    def _set_abs(self, code: int, value: int) -> None:
        name = self._abs_codes[code]
        if name in ("hat_x", "hat_y"):
            v = int(np.sign(value))
            if name == "hat_x":
                self._hat[0] = v
            else:
                self._hat[1] = -v  # evdev: up is -1
            return
        lo, hi = self._ranges.get(code, (-32768, 32767))
        span = max(hi - lo, 1)
        if name in TRIGGERS:
            self._axes[name] = float(np.clip((value - lo) / span, 0.0, 1.0))
        else:
            self._axes[name] = float(np.clip(2.0 * (value - lo) / span - 1.0, -1.0, 1.0))

    def poll(self) -> PadState:
        import evdev

        ecodes = evdev.ecodes
        try:
            for event in self._dev.read():
                if event.type == ecodes.EV_ABS and event.code in self._abs_codes:
                    self._set_abs(event.code, event.value)
                elif event.type == ecodes.EV_KEY and event.code in self._key_codes:
                    name = self._key_codes[event.code]
                    if event.value:  # 1 press, 2 autorepeat
                        self._held.add(name)
                    else:
                        self._held.discard(name)
        except BlockingIOError:
            pass  # nothing pending
        except OSError as exc:
            raise DeviceReadError(f"{NAME}: evdev read failed (unplugged?): {exc}") from exc
        axes = {name: self._axes.get(name, 0.0) for name in AXES}
        return PadState(axes=axes, hat=(self._hat[0], self._hat[1]), buttons=frozenset(self._held))

    def close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            dev.close()


# -- the device ---------------------------------------------------------------------------


def command_from_pad(
    pad: PadState,
    config: GamepadConfig,
    dt: float,
) -> tuple[bool, np.ndarray]:
    """``(deadman held, ee_delta)`` for one snapshot, ``dt`` s after the previous one."""
    c = config
    if c.deadman in TRIGGERS:
        held = pad.axes.get(c.deadman, 0.0) > 0.5
    else:
        held = c.deadman in pad.buttons
    sticks = np.array([pad.axes.get(k, 0.0) for k in ("lx", "ly", "rx", "ry")])
    lx, ly, rx, ry = apply_deadzone(sticks, c.deadzone)
    hx, hy = pad.hat
    velocity = np.array(
        [
            -ly * c.max_speed,
            -lx * c.max_speed,
            -ry * c.max_speed,
            hx * c.hat_rot_speed,
            hy * c.hat_rot_speed,
            -rx * c.max_rot_speed,
        ]
    )
    if not held:
        return False, np.zeros(6)
    return True, velocity * dt


class Gamepad(TeleopDevice):
    """A gamepad through pygame (SDL) or evdev; see the module docstring for the controls."""

    name = NAME

    def __init__(self, config: GamepadConfig | None = None) -> None:
        super().__init__()
        self.config = config or GamepadConfig()
        self._backend: _PygameBackend | _EvdevBackend | None = None
        self._period = PeriodTracker(self.config.period, self.config.max_period)
        self._held: frozenset[str] = frozenset()
        self._engaged = False
        self._gripper: float | None = None
        self.device_name = ""

    def _connect(self) -> None:
        backend_cls = _PygameBackend if self.config.backend == "pygame" else _EvdevBackend
        self._backend = backend_cls(self.config)
        self.device_name = self._backend.open()
        self._period.reset()
        self._held = frozenset()
        self._engaged = False
        log.info("%s: opened '%s' via %s", NAME, self.device_name, self.config.backend)

    def _close(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()

    def help(self) -> str:
        c = self.config
        actions = ", ".join(f"{b}: {a}" for b, a in c.actions.items())
        return (
            f"{NAME} ({c.backend}): hold {c.deadman.upper()} to take control. Left stick: "
            "forward/back, left/right. Right stick: up/down, turn. D-pad: pitch/roll. "
            f"{actions}"
        )

    def _read(self, now: float) -> TeleopCommand:
        assert self._backend is not None
        pad = self._backend.poll()
        dt = self._period(now)
        engaged, delta = command_from_pad(pad, self.config, dt)
        pressed = pad.buttons - self._held
        self._held = pad.buttons
        buttons: set[Button] = set()
        for name in pressed:
            action = self.config.actions.get(name)
            if action is not None:
                buttons.add(Button(action))
        if engaged and not self._engaged:
            buttons.add(Button.ENGAGE)
        self._engaged = engaged
        if Button.GRIPPER in buttons:
            self._gripper = 0.0 if self._gripper == 1.0 else 1.0
        return TeleopCommand(
            stamp=now,
            engaged=engaged,
            ee_delta=delta,
            gripper=self._gripper,
            buttons=frozenset(buttons),
        )
