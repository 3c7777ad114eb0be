"""A bus of Dynamixel X-series servos (protocol 2.0) on the far end of a pseudo-terminal.

Like ``feetech_sim``: LeRobot's ``DynamixelMotorsBus`` and ``dynamixel_sdk`` open the pty's
slave path, and every byte goes through the real packet code (header, byte stuffing, CRC-16);
ping (model number and firmware in the reply), read, write, sync read and sync write on a
register memory laid out as LeRobot's X-series control table. With torque on,
``Present_Position`` follows ``Goal_Position`` at once. ``dead`` silences every reply. The
emulator runs in a process of its own (see ``bus_sim``).
"""

from __future__ import annotations

from lerobot.motors.dynamixel.tables import MODEL_NUMBER_TABLE, X_SERIES_CONTROL_TABLE

from tests.robot.arms.bus_sim import ServoBusProcess


class DynamixelBusSim(ServoBusProcess):
    """X-series servos ``models`` (id -> LeRobot model name) behind a pty."""

    def __init__(self, models: dict[int, str], positions: dict[int, int] | None = None) -> None:
        super().__init__(
            "dynamixel",
            models,
            positions or {},
            X_SERIES_CONTROL_TABLE,
            MODEL_NUMBER_TABLE,
            init={"Firmware_Version": 52, "Max_Position_Limit": 4095},
            size=1024,
        )
