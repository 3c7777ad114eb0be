"""3Dconnexion SpaceMouse over raw HID (``hidapi``): no 3Dconnexion driver, no spacenavd.

Why raw HID: spacenavd/libspnav need a daemon and a socket, and the vendor driver does not
exist on Linux; ``hidapi`` reads ``/dev/hidraw*`` directly (a udev rule gives a user access).
The decoding is a pure function, :func:`decode_report`, tested on recorded report bytes.

HID input reports, as read by hidapi (the first byte is the report id)::

    wired models (SpaceNavigator, SpaceMouse Compact, SpaceMouse Pro, ...):
      id 1  translation  [01 | x lo x hi | y lo y hi | z lo z hi]          7 bytes
      id 2  rotation     [02 | rx lo rx hi | ry lo ry hi | rz lo rz hi]    7 bytes
    wireless models (SpaceMouse Wireless, Pro Wireless, Universal Receiver, Enterprise):
      id 1  all six      [01 | x | y | z | rx | ry | rz]  (each int16 LE)  13 bytes
    all models:
      id 3  buttons      [03 | bitmask bytes, little-endian: bit 8*(k-1)+j = byte k, bit j]
      other ids (4 LED, 0x17 battery, ...) are ignored

Each axis is a signed little-endian int16, about +/-350 at full deflection (wired about
+/-350, wireless up to about +/-500; ``full_scale`` sets it). Sources: pyspacemouse
(``devices.toml``: axis channels and byte offsets, button bits per model), robosuite
``devices/spacemouse.py`` (the Compact's split reports vs. the wireless 13-byte report), the
3Dconnexion HID usage tables as summarised by pyspacemouse's ``AxisConvention.HID``.

Device frame (raw HID, right-handed, z down), looking down at the SpaceMouse on the desk
with the cable / logo away from the person::

              (away from the person)
                      ^  -y
                      |
               _______|_______
              |    .-----.    |
     -x <-----|---(   o   )---|----> +x (right)
              |    '-----'    |
              |_______|_______|
                      |
                      v  +y  (towards the person)
              +z points down, into the desk (push the cap down: +z)
              rx, ry, rz: right-hand rotations about +x, +y, +z
              (twist the cap clockwise seen from above: +rz)

Robot base frame (x forward, y left, z up). With the person standing behind the robot and
looking where it looks (``operator_yaw = 0``), pushing the cap away moves the gripper forward,
pushing it left moves it left, pulling it up moves it up::

    base = R_z(operator_yaw) @ M @ device,   M = [[ 0, -1,  0],     x_base = -y_dev
                                                  [-1,  0,  0],     y_base = -x_dev
                                                  [ 0,  0, -1]]     z_base = -z_dev

M is a proper rotation (det +1), so the same matrix maps the rotation axes: twisting the cap
counter-clockwise seen from above is +yaw in the base frame. ``operator_yaw`` (rad) is the
direction the person faces, in the base frame: ``pi`` for a person facing the robot from
its front.

Engaging: the person is in control while the cap is deflected beyond the deadzone, and for
``release_delay`` s after it returns to rest (so a brief let-go does not hand control back),
or while the engage button has toggled control on. The default button map (bit index:
action) suits both the two-button models (bits 0, 1) and the Pro's numbered keys::

    bit 0 (left) / 12 (key 1)   gripper toggle
    bit 1 (right) / 13 (key 2)  engage toggle
    bit 14 (key 3)              success
    bit 15 (key 4)              failure
    bit 22 (Esc)                reset

A motion report older than ``stale_after`` s is dropped (a wireless link that dies with the
cap deflected must not keep the arm moving).
"""

from __future__ import annotations

import logging
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from robot.registry import did_you_mean
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

NAME = "SpaceMouse"
VENDOR_3DCONNEXION = 0x256F
VENDOR_LOGITECH = 0x046D  # older 3Dconnexion devices were sold under Logitech's vendor id
REPORT_TRANSLATION = 1
REPORT_ROTATION = 2
REPORT_BUTTONS = 3


class SpaceMouseReportError(DeviceReadError):
    """A HID report does not have the layout its model and report id call for."""


@dataclass(frozen=True)
class SpaceMouseModel:
    """One SpaceMouse product. ``combined``: report 1 carries all six axes (13 bytes)."""

    name: str
    vendor_id: int
    product_id: int
    combined: bool


MODELS: dict[str, SpaceMouseModel] = {
    m.name: m
    for m in (
        SpaceMouseModel("spacenavigator", VENDOR_LOGITECH, 0xC626, combined=False),
        SpaceMouseModel("spacemouse_pro", VENDOR_LOGITECH, 0xC62B, combined=False),
        SpaceMouseModel("spacemouse_compact", VENDOR_3DCONNEXION, 0xC635, combined=False),
        SpaceMouseModel("spacemouse_usb", VENDOR_3DCONNEXION, 0xC641, combined=False),
        SpaceMouseModel("spacemouse_wireless", VENDOR_3DCONNEXION, 0xC62E, combined=True),
        SpaceMouseModel("spacemouse_wireless_new", VENDOR_3DCONNEXION, 0xC63A, combined=True),
        SpaceMouseModel("spacemouse_pro_wireless", VENDOR_3DCONNEXION, 0xC632, combined=True),
        SpaceMouseModel("spacemouse_pro_wireless_bt", VENDOR_3DCONNEXION, 0xC638, combined=True),
        SpaceMouseModel("spacemouse_enterprise", VENDOR_3DCONNEXION, 0xC633, combined=True),
        SpaceMouseModel("universal_receiver", VENDOR_3DCONNEXION, 0xC652, combined=True),
    )
}

DEFAULT_BUTTON_MAP: dict[int, str] = {
    0: "gripper",
    1: "engage",
    12: "gripper",
    13: "engage",
    14: "success",
    15: "failure",
    22: "reset",
}
_ACTIONS = ("gripper", "engage", "success", "failure", "reset")

# device frame (raw HID) -> base frame for a person standing behind the robot
DEVICE_TO_BASE = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def model_named(name: str) -> SpaceMouseModel:
    try:
        return MODELS[name]
    except KeyError:
        hint = did_you_mean(name, MODELS)
        raise TeleopConfigError(
            f"{NAME}: unknown model '{name}' (known: {sorted(MODELS)}){hint}"
        ) from None


@dataclass(frozen=True)
class SpaceMouseState:
    """What one HID report says. Raw values in the device frame (see the module docstring).

    ``translation``/``rotation``: ``(3,)`` int16 counts, or None when the report does not
    carry them. ``buttons``: bitmask of pressed buttons, or None.
    """

    report_id: int
    translation: np.ndarray | None = None
    rotation: np.ndarray | None = None
    buttons: int | None = None


def _axes(data: bytes, offset: int) -> np.ndarray:
    return np.array(struct.unpack_from("<3h", data, offset), dtype=np.int64)


def decode_report(
    data: bytes | bytearray | list[int], model: SpaceMouseModel | str
) -> SpaceMouseState:
    """Decode one HID input report (report id first, as hidapi returns it).

    Raises :class:`SpaceMouseReportError` naming the report id and length when a motion or
    button report is too short or too long for ``model``'s layout.
    """
    m = model_named(model) if isinstance(model, str) else model
    raw = bytes(data)
    if not raw:
        raise SpaceMouseReportError(f"{NAME} ({m.name}): empty HID report")
    rid = raw[0]
    n = len(raw)
    if rid == REPORT_TRANSLATION:
        if m.combined:
            if n != 13:
                raise SpaceMouseReportError(
                    f"{NAME} ({m.name}): report id 1 has {n} bytes, expected 13 (report id + "
                    "six int16 axes); a 7-byte report 1 comes from a wired model with separate "
                    "translation/rotation reports: is the model right?"
                )
            return SpaceMouseState(rid, translation=_axes(raw, 1), rotation=_axes(raw, 7))
        if n != 7:
            raise SpaceMouseReportError(
                f"{NAME} ({m.name}): report id 1 has {n} bytes, expected 7 (report id + three "
                "int16 translation axes); a 13-byte report 1 carries all six axes (wireless "
                "models): is the model right?"
            )
        return SpaceMouseState(rid, translation=_axes(raw, 1))
    if rid == REPORT_ROTATION and not m.combined:
        if n != 7:
            raise SpaceMouseReportError(
                f"{NAME} ({m.name}): report id 2 has {n} bytes, expected 7 (report id + three "
                "int16 rotation axes)"
            )
        return SpaceMouseState(rid, rotation=_axes(raw, 1))
    if rid == REPORT_BUTTONS:
        if not 2 <= n <= 13:
            raise SpaceMouseReportError(
                f"{NAME} ({m.name}): report id 3 (buttons) has {n} bytes, expected 2 to 13"
            )
        return SpaceMouseState(rid, buttons=int.from_bytes(raw[1:], "little"))
    return SpaceMouseState(rid)


@dataclass
class SpaceMouseConfig:
    """``model``: a name of :data:`MODELS`, or ``"auto"`` (the first known device found).
    ``path``: a hidraw path to open (as ``hid.enumerate`` lists it), default: search.
    ``full_scale``: raw counts at full deflection. ``deadzone``: fraction of full scale per
    axis (one value or six). ``max_speed``: m/s at full deflection. ``max_rot_speed``: rad/s.
    ``operator_yaw``: direction the person faces in the base frame (rad).
    ``period``: s assumed for the first read; later reads use the time since the previous one,
    at most ``max_period``. ``release_delay``: s control stays with the person after the cap
    comes to rest. ``stale_after``: s after which the last motion report is not trusted.
    ``button_map``: button bit index -> one of gripper, engage, success, failure, reset.
    ``max_reports``: at most this many reports drained per read."""

    model: str = "auto"
    path: str | None = None
    full_scale: float = 350.0
    deadzone: float | tuple[float, ...] = 0.05
    max_speed: float = 0.10
    max_rot_speed: float = 0.8
    operator_yaw: float = 0.0
    period: float = 0.02
    max_period: float = 0.1
    release_delay: float = 0.5
    stale_after: float = 0.5
    button_map: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_BUTTON_MAP))
    max_reports: int = 64

    def __post_init__(self) -> None:
        if self.model != "auto":
            model_named(self.model)
        check_positive(
            NAME,
            full_scale=self.full_scale,
            max_speed=self.max_speed,
            max_rot_speed=self.max_rot_speed,
            period=self.period,
            max_period=self.max_period,
            stale_after=self.stale_after,
            max_reports=self.max_reports,
        )
        if not (math.isfinite(self.release_delay) and self.release_delay >= 0):
            raise TeleopConfigError(f"{NAME}: 'release_delay'={self.release_delay} must be >= 0")
        try:
            dz = np.broadcast_to(np.asarray(self.deadzone, dtype=np.float64), (6,))
        except ValueError:
            raise TeleopConfigError(
                f"{NAME}: 'deadzone'={self.deadzone} must be one value or six"
            ) from None
        if not np.all((dz >= 0) & (dz < 1)):
            raise TeleopConfigError(f"{NAME}: 'deadzone'={self.deadzone} must be in [0, 1)")
        self.button_map = {int(bit): str(action) for bit, action in self.button_map.items()}
        for bit, action in self.button_map.items():
            if action not in _ACTIONS:
                raise TeleopConfigError(
                    f"{NAME}: 'button_map' maps bit {bit} to '{action}'; actions are {_ACTIONS}"
                )


class SpaceMouse(TeleopDevice):
    """A SpaceMouse read through ``hidapi``; see the module docstring for frames and reports."""

    name = NAME

    def __init__(self, config: SpaceMouseConfig | None = None) -> None:
        super().__init__()
        self.config = config or SpaceMouseConfig()
        c = self.config
        self.model: SpaceMouseModel | None = None if c.model == "auto" else MODELS[c.model]
        yaw = c.operator_yaw
        rz = np.array(
            [[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0, 0, 1]]
        )
        self.device_to_base = rz @ DEVICE_TO_BASE
        self._deadzone = np.broadcast_to(np.asarray(c.deadzone, dtype=np.float64), (6,)).copy()
        self._period = PeriodTracker(c.period, c.max_period)
        self._dev = None
        self._reset_state()

    def _reset_state(self) -> None:
        self._raw = np.zeros(6)  # device frame: x y z rx ry rz, counts
        self._raw_stamp = -math.inf
        self._buttons = 0
        self._toggled = False
        self._last_active = -math.inf
        self._gripper: float | None = None
        self._period.reset()

    # -- lifecycle --------------------------------------------------------------------------

    def _find(self, hid) -> tuple[dict, SpaceMouseModel]:
        by_id = {(m.vendor_id, m.product_id): m for m in MODELS.values()}
        if self.model is not None:
            candidates = hid.enumerate(self.model.vendor_id, self.model.product_id)
            where = f"vendor 0x{self.model.vendor_id:04x} product 0x{self.model.product_id:04x}"
        else:
            candidates = [d for d in hid.enumerate() if (d["vendor_id"], d["product_id"]) in by_id]
            where = f"vendor 0x{VENDOR_3DCONNEXION:04x} or 0x{VENDOR_LOGITECH:04x}"
        if self.config.path is not None:
            want = (
                self.config.path.encode() if isinstance(self.config.path, str) else self.config.path
            )
            candidates = [d for d in candidates if d["path"] == want]
            where += f" at {self.config.path}"
        if not candidates:
            raise DeviceNotFoundError(
                f"{NAME}: no HID device with {where} found; plugged in? udev rule for "
                '/dev/hidraw* (e.g. TAG+="uaccess")? another program (spacenavd) holding it?'
            )
        # the multi-axis controller interface (usage page 1, usage 8) when a device lists several
        candidates.sort(key=lambda d: (d.get("usage_page"), d.get("usage")) != (0x01, 0x08))
        info = candidates[0]
        return info, by_id.get((info["vendor_id"], info["product_id"]), self.model)

    def _connect(self) -> None:
        try:
            import hid
        except ImportError as exc:
            raise DeviceNotFoundError(
                f"{NAME}: the 'hidapi' package is not installed (pip install hidapi): {exc}"
            ) from exc
        info, model = self._find(hid)
        dev = hid.device()
        try:
            dev.open_path(info["path"])
        except OSError as exc:
            raise DeviceNotFoundError(
                f"{NAME}: found {info.get('product_string') or model.name} at "
                f"{info['path']!r} but cannot open it ({exc}); udev rule / permissions on "
                "/dev/hidraw*?"
            ) from exc
        self._dev = dev
        dev.set_nonblocking(1)
        self.model = model
        self._reset_state()
        log.info("%s: opened %s (%s)", NAME, model.name, info.get("product_string"))

    def _close(self) -> None:
        dev, self._dev = self._dev, None
        if dev is not None:
            dev.close()

    def help(self) -> str:
        inv = {}
        for bit, action in sorted(self.config.button_map.items()):
            inv.setdefault(action, []).append(str(bit))
        keys = ", ".join(f"{a}: button bit {'/'.join(b)}" for a, b in inv.items())
        return (
            f"{NAME} ({self.model.name if self.model else 'auto'}): push/pull/lift the cap to "
            "move the gripper, tilt/twist it to turn; you are in control while you move it. " + keys
        )

    # -- reading ----------------------------------------------------------------------------

    def _read(self, now: float) -> TeleopCommand:
        assert self._dev is not None
        c = self.config
        pressed = 0
        for _ in range(c.max_reports):
            try:
                data = self._dev.read(64)
            except (OSError, ValueError) as exc:
                raise DeviceReadError(f"{NAME}: HID read failed (unplugged?): {exc}") from exc
            if not data:
                break
            state = decode_report(data, self.model)
            if state.translation is not None:
                self._raw[:3] = state.translation
                self._raw_stamp = now
            if state.rotation is not None:
                self._raw[3:] = state.rotation
                self._raw_stamp = now
            if state.buttons is not None:
                pressed |= state.buttons & ~self._buttons
                self._buttons = state.buttons
        dt = self._period(now)
        if now - self._raw_stamp > c.stale_after:
            self._raw[:] = 0.0
        axes = apply_deadzone(self._raw / c.full_scale, self._deadzone)
        if np.any(axes != 0.0):
            self._last_active = now
        buttons: set[Button] = set()
        for bit, action in c.button_map.items():
            if pressed >> bit & 1:
                buttons.add(Button(action))
        if Button.ENGAGE in buttons:
            self._toggled = not self._toggled
        if Button.GRIPPER in buttons:
            self._gripper = 0.0 if self._gripper == 1.0 else 1.0
        engaged = self._toggled or now - self._last_active <= c.release_delay
        lin = self.device_to_base @ axes[:3] * (c.max_speed * dt)
        ang = self.device_to_base @ axes[3:] * (c.max_rot_speed * dt)
        return TeleopCommand(
            stamp=now,
            engaged=engaged,
            ee_delta=np.concatenate([lin, ang]),
            gripper=self._gripper,
            buttons=frozenset(buttons),
        )
