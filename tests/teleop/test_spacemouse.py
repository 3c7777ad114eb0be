"""SpaceMouse: HID report decoding from report bytes, and the device against a fake ``hid``.

The byte strings are laid out as hidapi returns them on Linux (report id first). Two are
verbatim captures published with pyspacemouse's protocol notes for a SpaceNavigator
(``02 00 00 e2 ff 00 00``: a rotation about the second axis; ``03 01 00``: button 1).
"""

from __future__ import annotations

import struct
import sys
import types
from collections import deque

import numpy as np
import pytest

from teleop.device import Button, DeviceNotFoundError, DeviceReadError, TeleopConfigError
from teleop.registry import make_device
from teleop.spacemouse import (
    MODELS,
    SpaceMouse,
    SpaceMouseConfig,
    SpaceMouseReportError,
    decode_report,
)

WIRED = MODELS["spacemouse_compact"]
WIRELESS = MODELS["spacemouse_wireless"]


def wired_translation(x: int, y: int, z: int) -> bytes:
    return struct.pack("<B3h", 1, x, y, z)


def wired_rotation(rx: int, ry: int, rz: int) -> bytes:
    return struct.pack("<B3h", 2, rx, ry, rz)


def wireless_motion(*axes: int) -> bytes:
    return struct.pack("<B6h", 1, *axes)


def buttons(mask: int, n_bytes: int = 2) -> bytes:
    return bytes([3]) + mask.to_bytes(n_bytes, "little")


# -- decoding ---------------------------------------------------------------------------------


def test_wired_translation_and_rotation_reports() -> None:
    t = decode_report(wired_translation(120, -350, 7), WIRED)
    assert t.report_id == 1
    assert t.translation.tolist() == [120, -350, 7]
    assert t.rotation is None and t.buttons is None
    r = decode_report(wired_rotation(-1, 300, -32768), "spacemouse_compact")
    assert r.translation is None
    assert r.rotation.tolist() == [-1, 300, -32768]


def test_recorded_spacenavigator_reports() -> None:
    rot = decode_report(bytes.fromhex("020000e2ff0000"), "spacenavigator")
    assert rot.rotation.tolist() == [0, -30, 0]
    assert decode_report(bytes.fromhex("030100"), "spacenavigator").buttons == 1
    assert decode_report(bytes.fromhex("030200"), "spacenavigator").buttons == 2
    assert decode_report(bytes.fromhex("030300"), "spacenavigator").buttons == 3
    assert decode_report(bytes.fromhex("030000"), "spacenavigator").buttons == 0


def test_wireless_report_carries_six_axes() -> None:
    s = decode_report(wireless_motion(1, -2, 3, -400, 500, 6), WIRELESS)
    assert s.translation.tolist() == [1, -2, 3]
    assert s.rotation.tolist() == [-400, 500, 6]
    # a list of ints, as hidapi's read() returns, decodes the same
    again = decode_report(list(wireless_motion(1, -2, 3, -400, 500, 6)), WIRELESS)
    assert again.rotation.tolist() == [-400, 500, 6]


def test_buttons_report_bitmask_spans_bytes() -> None:
    # the Pro's key "3" is byte 2, bit 6 -> bit index 14
    assert decode_report(buttons(1 << 14, 4), "spacemouse_pro").buttons == 1 << 14
    assert decode_report(buttons(0b11, 1), WIRELESS).buttons == 3


@pytest.mark.parametrize(
    ("model", "data", "length", "rid"),
    [
        (WIRED, wireless_motion(0, 0, 0, 0, 0, 0), 13, 1),  # a wireless report to a wired model
        (WIRELESS, wired_translation(0, 0, 0), 7, 1),  # a wired report to a wireless model
        (WIRED, wired_rotation(0, 0, 0)[:5], 5, 2),
        (WIRED, wired_translation(0, 0, 0) + b"\x00", 8, 1),
        (WIRED, b"\x03", 1, 3),
    ],
)
def test_wrong_length_names_length_and_report_id(model, data, length, rid) -> None:
    with pytest.raises(SpaceMouseReportError) as err:
        decode_report(data, model)
    msg = str(err.value)
    assert f"report id {rid}" in msg
    assert f"has {length} bytes" in msg
    assert "SpaceMouse" in msg


def test_other_reports_are_ignored_and_empty_is_an_error() -> None:
    for data in (bytes.fromhex("0401"), bytes.fromhex("1764")):  # LED, battery
        s = decode_report(data, WIRELESS)
        assert s.translation is None and s.rotation is None and s.buttons is None
    # a rotation report id from a wireless model is not a layout it sends: ignored, not misread
    assert decode_report(wired_rotation(5, 5, 5), WIRELESS).rotation is None
    with pytest.raises(SpaceMouseReportError, match="empty"):
        decode_report(b"", WIRED)


# -- the device against a fake hid ----------------------------------------------------------


class FakeHidDevice:
    def __init__(self, hid: FakeHid) -> None:
        self.hid = hid
        self.path: bytes | None = None
        self.nonblocking = 0
        self.closed = False

    def open_path(self, path: bytes) -> None:
        if self.hid.deny_open:
            raise OSError("open failed")
        self.path = path

    def set_nonblocking(self, value: int) -> None:
        self.nonblocking = value

    def read(self, max_length: int, timeout_ms: int = 0) -> list[int]:
        assert self.nonblocking, "the driver must not block"
        if self.hid.read_error is not None:
            raise self.hid.read_error
        if not self.hid.reports:
            return []
        return list(self.hid.reports.popleft()[:max_length])

    def close(self) -> None:
        self.closed = True


class FakeHid(types.ModuleType):
    """Stands in for the ``hid`` module (cython-hidapi's API)."""

    def __init__(self, devices: list[dict]) -> None:
        super().__init__("hid")
        self.devices = devices
        self.reports: deque[bytes] = deque()
        self.deny_open = False
        self.read_error: Exception | None = None
        self.opened: list[FakeHidDevice] = []

    def enumerate(self, vendor_id: int = 0, product_id: int = 0) -> list[dict]:
        return [
            d
            for d in self.devices
            if vendor_id in (0, d["vendor_id"]) and product_id in (0, d["product_id"])
        ]

    def device(self) -> FakeHidDevice:
        dev = FakeHidDevice(self)
        self.opened.append(dev)
        return dev


def info(model, path: bytes = b"/dev/hidraw3", usage: tuple[int, int] = (1, 8)) -> dict:
    return {
        "path": path,
        "vendor_id": model.vendor_id,
        "product_id": model.product_id,
        "product_string": model.name,
        "usage_page": usage[0],
        "usage": usage[1],
    }


@pytest.fixture
def fake_hid(monkeypatch: pytest.MonkeyPatch) -> FakeHid:
    keyboard = {"path": b"/dev/hidraw0", "vendor_id": 0x046D, "product_id": 0xC31C}
    hid = FakeHid([keyboard, info(WIRED)])
    monkeypatch.setitem(sys.modules, "hid", hid)
    return hid


def config(**overrides) -> SpaceMouseConfig:
    base = dict(deadzone=0.0, max_speed=0.1, max_rot_speed=1.0, period=0.02, full_scale=350.0)
    base.update(overrides)
    return SpaceMouseConfig(**base)


def test_not_plugged_in_names_vendor_and_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hid", FakeHid([]))
    mouse = SpaceMouse(config())
    with pytest.raises(DeviceNotFoundError) as err:
        mouse.connect()
    msg = str(err.value)
    assert msg.startswith("SpaceMouse: no HID device with vendor 0x256f")
    assert "plugged in?" in msg and "udev" in msg
    assert not mouse.connected


def test_a_named_model_that_is_absent(fake_hid: FakeHid) -> None:
    with pytest.raises(DeviceNotFoundError, match="product 0xc62e"):
        SpaceMouse(config(model="spacemouse_wireless")).connect()


def test_cannot_open_names_the_path(fake_hid: FakeHid) -> None:
    fake_hid.deny_open = True
    with pytest.raises(DeviceNotFoundError, match=r"hidraw3.*permissions"):
        SpaceMouse(config()).connect()


def test_no_io_before_connect(fake_hid: FakeHid) -> None:
    SpaceMouse(config())
    assert fake_hid.opened == []


def test_wired_connect_read_close(fake_hid: FakeHid) -> None:
    mouse = SpaceMouse(config())
    with mouse:
        dev = fake_hid.opened[-1]
        assert dev.path == b"/dev/hidraw3" and dev.nonblocking
        assert mouse.model is WIRED  # auto-detected from the product id
        # push the cap fully away from the person (-y raw) and twist it counter-clockwise
        # seen from above (-rz raw); press the left button
        fake_hid.reports.extend(
            [wired_translation(0, -350, 0), wired_rotation(0, 0, -175), buttons(1, 1)]
        )
        cmd = mouse.read(10.0)
        assert cmd.stamp == 10.0
        assert cmd.engaged
        np.testing.assert_allclose(cmd.ee_delta, [0.1 * 0.02, 0, 0, 0, 0, 0.5 * 1.0 * 0.02])
        assert cmd.buttons == {Button.GRIPPER}
        assert cmd.gripper == 1.0
        # nothing new: the state holds, the button is not pressed again
        cmd = mouse.read(10.02)
        np.testing.assert_allclose(cmd.ee_delta[0], 0.1 * 0.02)
        assert cmd.buttons == frozenset()
        # the right button goes down while the left is still held: only the right one is new
        fake_hid.reports.append(buttons(0b11, 1))
        cmd = mouse.read(10.03)
        assert cmd.buttons == {Button.ENGAGE} and cmd.gripper == 1.0
        # release the left button, press it again: the gripper opens
        fake_hid.reports.extend([buttons(0b10, 1), buttons(0b11, 1)])
        assert mouse.read(10.04).gripper == 0.0
    assert dev.closed and not mouse.connected


def test_axes_map_to_the_base_frame(fake_hid: FakeHid) -> None:
    with SpaceMouse(config()) as mouse:
        # push right (+x raw), pull up (-z raw), tilt about raw +x
        fake_hid.reports.extend([wired_translation(350, 0, -350), wired_rotation(350, 0, 0)])
        d = mouse.read(0.0).ee_delta / 0.02
        np.testing.assert_allclose(d[:3], [0.0, -0.1, 0.1])  # right is -y; up is +z
        np.testing.assert_allclose(d[3:], [0.0, -1.0, 0.0])  # about raw +x = about base -y


def test_operator_facing_the_robot_flips_x_and_y(fake_hid: FakeHid) -> None:
    with SpaceMouse(config(operator_yaw=np.pi)) as mouse:
        fake_hid.reports.append(wired_translation(0, -350, 0))  # push away from the person
        d = mouse.read(0.0).ee_delta
        np.testing.assert_allclose(d[:3], [-0.002, 0.0, 0.0], atol=1e-12)


def test_wireless_model_and_pro_buttons(fake_hid: FakeHid) -> None:
    fake_hid.devices = [info(MODELS["universal_receiver"])]
    with SpaceMouse(config()) as mouse:
        assert mouse.model.name == "universal_receiver"
        fake_hid.reports.extend([wireless_motion(0, 0, 350, 0, 0, 0), buttons(1 << 14, 4)])
        cmd = mouse.read(1.0)
        np.testing.assert_allclose(cmd.ee_delta, [0, 0, -0.002, 0, 0, 0])  # push down: -z
        assert cmd.buttons == {Button.SUCCESS}
        fake_hid.reports.extend([buttons(0, 4), buttons(1 << 22, 4)])
        assert mouse.read(1.02).buttons == {Button.RESET}


def test_deadzone_release_delay_and_engage_toggle(fake_hid: FakeHid) -> None:
    with SpaceMouse(config(deadzone=0.1, release_delay=0.5)) as mouse:
        fake_hid.reports.append(wired_translation(30, 0, 0))  # inside the deadzone
        cmd = mouse.read(0.0)
        assert not cmd.engaged and not cmd.moving
        fake_hid.reports.append(wired_translation(200, 0, 0))
        assert mouse.read(0.02).engaged
        fake_hid.reports.append(wired_translation(0, 0, 0))  # let go
        assert mouse.read(0.04).engaged  # still within the release delay
        assert not mouse.read(0.6).engaged
        fake_hid.reports.append(buttons(2, 1))  # right button: engage toggle
        cmd = mouse.read(0.7)
        assert cmd.engaged and cmd.buttons == {Button.ENGAGE}


def test_stale_motion_is_dropped(fake_hid: FakeHid) -> None:
    with SpaceMouse(config(stale_after=0.2)) as mouse:
        fake_hid.reports.append(wired_translation(350, 0, 0))
        assert mouse.read(0.0).moving
        assert mouse.read(0.1).moving  # a held cap: the last report still counts
        assert not mouse.read(0.35).moving  # no report for longer than stale_after


def test_step_is_scaled_by_the_time_since_the_last_read(fake_hid: FakeHid) -> None:
    with SpaceMouse(config(max_period=0.1)) as mouse:
        fake_hid.reports.append(wired_translation(-350, 0, 0))
        assert mouse.read(0.0).ee_delta[1] == pytest.approx(0.1 * 0.02)  # first read: period
        fake_hid.reports.append(wired_translation(-350, 0, 0))
        assert mouse.read(0.05).ee_delta[1] == pytest.approx(0.1 * 0.05)
        fake_hid.reports.append(wired_translation(-350, 0, 0))
        assert mouse.read(5.0).ee_delta[1] == pytest.approx(0.1 * 0.1)  # a pause is capped


def test_read_errors_name_the_device(fake_hid: FakeHid) -> None:
    with SpaceMouse(config()) as mouse:
        fake_hid.reports.append(wireless_motion(0, 0, 0, 0, 0, 0))  # wrong layout for a Compact
        with pytest.raises(SpaceMouseReportError, match="report id 1 has 13 bytes"):
            mouse.read(0.0)
        fake_hid.read_error = OSError("No such device")
        with pytest.raises(DeviceReadError, match=r"^SpaceMouse: HID read failed"):
            mouse.read(0.02)


def test_picks_the_multi_axis_interface(fake_hid: FakeHid) -> None:
    fake_hid.devices = [
        info(WIRED, b"/dev/hidraw7", usage=(0x0C, 0x01)),  # consumer-control interface
        info(WIRED, b"/dev/hidraw8", usage=(0x01, 0x08)),  # multi-axis controller
    ]
    with SpaceMouse(config()):
        assert fake_hid.opened[-1].path == b"/dev/hidraw8"


def test_registry_entry(fake_hid: FakeHid) -> None:
    mouse = make_device("spacemouse", model="spacemouse_compact", max_speed=0.05)
    assert isinstance(mouse, SpaceMouse) and mouse.model is WIRED
    assert fake_hid.opened == []
    with pytest.raises(TeleopConfigError, match="did you mean 'spacemouse_compact'"):
        make_device("spacemouse", model="spacemouse_compakt")
