"""``dojo hw``: find the hardware and check a robot before anything runs on it.

    dojo hw find-cameras [--json]        RealSense serials, models, firmware and modes; V4L2
                                         devices with their stable /dev/v4l/by-id links
    dojo hw find-port [--json] [--probe [PORT ...]]
                                         serial ports, with the USB adapters motor buses use
                                         (Feetech/Waveshare CH340/CH343, ROBOTIS U2D2 FTDI);
                                         --probe broadcast-pings each port (Feetech and
                                         Dynamixel, 1 Mbaud) and lists the servos that answer.
                                         A ping moves nothing.
    dojo hw check robot=so101 [k=v ...]  connect, read the state, check the configured joint
                                         limits against the device, and (with camera=...)
                                         take one frame from each camera. Moves nothing:
                                         the arm is never enabled.
    dojo hw urdf robot=so101 [out=FILE]  the robot's URDF, generated from its MJCF (what the
                                         driver publishes on robot_description), to FILE (a
                                         folder: FILE/<robot>.urdf) or stdout

Exit status: 0 all good, 2 refused (bad config, device missing, limits wider than the device),
1 unexpected failure. Every refusal names the device and the value.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import numpy as np

from dojo.commands import Command

# USB adapters that motor buses use: (vid, pid) -> what it usually is.
BUS_ADAPTERS = {
    (0x1A86, 0x7523): "CH340 (Feetech/Waveshare bus board: SO-100/SO-101)",
    (0x1A86, 0x55D3): "CH343 (Feetech/Waveshare bus board: SO-100/SO-101)",
    (0x0403, 0x6014): "FTDI FT232H (ROBOTIS U2D2: Koch, Dynamixel)",
    (0x0403, 0x6001): "FTDI FT232R (Dynamixel/USB2AX adapter)",
}


def find_cameras() -> list[dict[str, Any]]:
    from robot.cameras import opencv

    found: list[dict[str, Any]] = []
    try:
        from robot.cameras import realsense

        found += realsense.find_cameras()
    except Exception as err:  # no SDK or no librealsense backend: say so, list the rest
        found.append({"kind": "realsense", "error": str(err)})
    found += opencv.find_cameras()
    return found


def find_ports() -> list[dict[str, Any]]:
    from serial.tools import list_ports

    ports = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        key = (p.vid, p.pid) if p.vid is not None else None
        ports.append(
            {
                "port": p.device,
                "description": p.description,
                "usb": f"{p.vid:04x}:{p.pid:04x}" if key else "",
                "serial_number": p.serial_number or "",
                "motor_bus": BUS_ADAPTERS.get(key, "") if key else "",
            }
        )
    return ports


def probe_port(port: str, baudrate: int = 1_000_000) -> dict[str, dict[int, int]]:
    """Servos answering a broadcast ping on ``port``: {"feetech"|"dynamixel": {id: model}}."""
    found: dict[str, dict[int, int]] = {}
    try:
        from lerobot.motors.dynamixel import DynamixelMotorsBus
        from lerobot.motors.feetech import FeetechMotorsBus
    except ImportError as err:
        raise RuntimeError(f"probing needs LeRobot's motor buses: {err}") from err
    for kind, cls in (("feetech", FeetechMotorsBus), ("dynamixel", DynamixelMotorsBus)):
        bus = cls(port=port, motors={})
        try:
            bus.connect(handshake=False)
            bus.set_baudrate(baudrate)
            ids = bus.broadcast_ping()
        except Exception:  # not this protocol, or not a serial port at all
            ids = None
        finally:
            if bus.is_connected:
                bus.port_handler.closePort()
        if ids:
            found[kind] = {int(k): int(v) for k, v in ids.items()}
            break  # one bus, one protocol
    return found


def check(overrides: list[str], out=None) -> int:
    """Connect the configured robot (and cameras), read, compare limits; never enable.
    ``out``: where the report goes (default: stdout)."""
    from dojo import conf
    from robot.arm_interface import ArmError
    from robot.arms.registry import make_arm
    from robot.cameras.base import CameraError
    from robot.cameras.registry import make_camera

    out = out or sys.stdout
    try:
        cfg = CHECK.load(overrides)
    except conf.ConfigError as err:
        print(f"dojo hw check: {err}", file=out)
        return 2
    spec = conf.robot_spec(cfg)
    driver = str(cfg.robot.driver)
    if driver == "sim":
        print(
            f"dojo hw check: robot={cfg.robot.name} is the twin (driver sim); nothing to check",
            file=out,
        )
        return 0
    arm = make_arm(spec, driver, conf.plain(cfg.robot.device))
    code = 0
    try:
        arm.connect()  # refuses limits wider than the device's before anything else
        state = arm.read()
        lower, upper, _velocity = arm.device_limits()
        print(f"{arm.name}: connected, fault={arm.fault}", file=out)
        print(f"{'joint':>16} {'position':>10} {'config':>21} {'device':>21}", file=out)
        for i, joint in enumerate(spec.joint_names):
            dev = (
                f"[{lower[i]:8.3f}, {upper[i]:8.3f}]"
                if lower is not None and np.isfinite(lower[i])
                else "(not reported)"
            )
            inside = spec.position_lower[i] <= state.position[i] <= spec.position_upper[i]
            print(
                f"{joint:>16} {state.position[i]:10.4f} "
                f"[{spec.position_lower[i]:8.3f}, {spec.position_upper[i]:8.3f}] {dev:>21}"
                f"{'' if inside else '  OUTSIDE the configured limits'}",
                file=out,
            )
        if arm.fault:
            code = 2
    except ArmError as err:
        print(f"dojo hw check: refused: {err}", file=out)
        code = 2
    finally:
        arm.close()
    for dev in conf.camera_devices(cfg):
        cam = make_camera(dev)
        try:
            cam.start()
            frame = cam.wait_frame(0, timeout=max(2.0, 10 / cam.fps))
            if frame is None:
                print(f"{cam}: no frame within the timeout", file=out)
                code = 2
            else:
                print(f"{cam}: frame {frame.color.shape} ok", file=out)
        except CameraError as err:
            print(f"dojo hw check: refused: {err}", file=out)
            code = 2
        finally:
            cam.stop()
    print("ok: nothing was moved" if code == 0 else "refused: nothing was moved", file=out)
    return code


def urdf(overrides: list[str], out=None) -> int:
    """The robot's URDF (``robot.urdf``) to ``out=`` (a file, or a folder for
    ``<robot>.urdf``), or to stdout without it."""
    from pathlib import Path

    from dojo import conf
    from dojo.commands import given
    from robot.files import write_atomic
    from robot.mjcf import KinematicsError
    from robot.urdf import robot_urdf

    out = out or sys.stdout
    cfg = URDF.load(overrides)
    try:
        text = robot_urdf(conf.robot_spec(cfg))
    except KinematicsError as err:
        print(f"dojo hw urdf: robot={cfg.robot.name}: {err}", file=sys.stderr)
        return 2
    if not given(overrides, "out"):
        out.write(text)
        return 0
    path = Path(str(cfg.out)).expanduser()
    if path.is_dir():
        path = path / f"{cfg.robot.name}.urdf"
    write_atomic(path, text)
    print(f"{path}: URDF of robot={cfg.robot.name} from {cfg.robot.model}", file=out)
    return 0


def find(what: str, overrides: list[str]) -> int:
    """``find-cameras`` / ``find-port``: a table, or JSON with ``hw.json=true``."""
    command = FIND_CAMERAS if what == "find-cameras" else FIND_PORT
    cfg = command.load(overrides)
    items = find_cameras() if what == "find-cameras" else find_ports()
    if what == "find-port" and cfg.hw.probe:
        ports = list(cfg.hw.ports) or [p["port"] for p in items]
        known = {p["port"]: p for p in items}
        items = [
            {**known.get(port, {"port": port}), "servos": probe_port(port) or "none answered"}
            for port in ports
        ]
    if cfg.hw.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("none found")
    for item in items:
        print("  ".join(f"{k}={v}" for k, v in item.items() if k != "modes" and v != ""))
        for mode in item.get("modes", []):
            print(f"    {mode}")
    return 0


def _flags(argv: list[str]) -> list[str]:
    """The flags as keys: ``--json`` -> ``hw.json=true``; ``--probe [PORT ...]`` ->
    ``hw.probe=true hw.ports=[...]``."""
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        if word == "--json":
            out.append("hw.json=true")
        elif word == "--probe":
            ports = []
            while i + 1 < len(argv) and not argv[i + 1].startswith("-") and "=" not in argv[i + 1]:
                ports.append(argv[i + 1])
                i += 1
            out += ["hw.probe=true", "hw.ports=[" + ",".join(f"'{p}'" for p in ports) + "]"]
        else:
            out.append(word)
        i += 1
    return out


def main(argv: list[str]) -> int:
    """``dojo hw <find-cameras|find-port|check> ...``: the words after ``hw``."""
    from dojo import conf
    from robot.registry import did_you_mean

    names = [c.name.split()[1] for c in COMMANDS]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] not in names:
        print(f"dojo hw: unknown command '{argv[0]}'{did_you_mean(argv[0], names)} ({names})")
        return 2
    command = next(c for c in COMMANDS if c.name == f"hw {argv[0]}")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    try:
        return command.run(argv[1:])
    except conf.ConfigError as err:
        print(f"{command.name}: {err}", file=sys.stderr)
        return 2


FIND_CAMERAS = Command(
    "hw find-cameras",
    lambda argv: find("find-cameras", _flags(argv)),
    reads=("hw",),
    usage="RealSense serials, models, firmware and modes; V4L2 devices with their stable "
    "/dev/v4l/by-id links. --json: hw.json=true.",
)
FIND_PORT = Command(
    "hw find-port",
    lambda argv: find("find-port", _flags(argv)),
    reads=("hw",),
    usage="Serial ports, with the USB adapters motor buses use. --probe [PORT ...]: "
    "hw.probe=true hw.ports=[...] broadcast-pings them (moves nothing).",
)
CHECK = Command(
    "hw check",
    check,
    reads=("robot", "camera"),
    usage="Connect robot= (and camera=), read the state, check the configured limits against "
    "the device, take one frame per camera. Moves nothing: the arm is never enabled.",
)
URDF = Command(
    "hw urdf",
    urdf,
    reads=("robot", "out"),
    usage="The robot's URDF, generated from its MJCF (what the driver publishes on "
    "robot_description): out=FILE (a folder: FILE/<robot>.urdf), else stdout.",
)
COMMANDS = (FIND_CAMERAS, FIND_PORT, CHECK, URDF)
