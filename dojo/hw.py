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

Exit status: 0 all good, 2 refused (bad config, device missing, limits wider than the device),
1 unexpected failure. Every refusal names the device and the value.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

import numpy as np

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


def check(overrides: list[str], out=sys.stdout) -> int:
    """Connect the configured robot (and cameras), read, compare limits; never enable."""
    from omegaconf import OmegaConf

    from dojo import conf
    from robot.arm_interface import ArmError
    from robot.arms.registry import make_arm
    from robot.cameras.base import CameraError
    from robot.cameras.registry import make_camera

    try:
        cfg = conf.load(overrides)
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
    arm = make_arm(spec, driver, OmegaConf.to_container(cfg.robot.device, resolve=True))
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dojo hw", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("find-cameras", "find-port"):
        p = sub.add_parser(name)
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        if name == "find-port":
            p.add_argument(
                "--probe",
                nargs="*",
                default=None,
                metavar="PORT",
                help="broadcast-ping these ports (all listed ports when none are named)",
            )
    p = sub.add_parser("check")
    p.add_argument("overrides", nargs="*", help="hydra key=value overrides, e.g. robot=so101")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    if args.cmd == "check":
        return check(args.overrides)
    items = find_cameras() if args.cmd == "find-cameras" else find_ports()
    if args.cmd == "find-port" and args.probe is not None:
        ports = args.probe or [p["port"] for p in items]
        known = {p["port"]: p for p in items}
        items = [
            {**known.get(port, {"port": port}), "servos": probe_port(port) or "none answered"}
            for port in ports
        ]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("none found")
    for item in items:
        print("  ".join(f"{k}={v}" for k, v in item.items() if k != "modes" and v != ""))
        for mode in item.get("modes", []):
            print(f"    {mode}")
    return 0
