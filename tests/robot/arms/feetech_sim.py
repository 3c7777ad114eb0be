"""A bus of Feetech STS3215 servos at the protocol level, on the far end of a pseudo-terminal.

The driver under test opens the pty's slave path as its serial port with LeRobot's own
``FeetechMotorsBus`` and ``scservo_sdk``, so every byte goes through the real packet code:
``0xFF 0xFF id len instr params checksum`` requests; ping, read, write, sync read (one status
packet per servo) and sync write. Each servo is a 256-byte register memory laid out as LeRobot's
control table says; torque on makes ``Present_Position`` follow ``Goal_Position`` at once.

``drop_replies`` makes the next N replies vanish (a corrupted/lost status packet: the SDK times
out), which is how transient and permanent read failures are injected; ``dead`` silences the
bus. The emulator runs in a process of its own (see ``bus_sim``).
"""

from __future__ import annotations

from lerobot.motors.feetech.tables import MODEL_NUMBER_TABLE, STS_SMS_SERIES_CONTROL_TABLE

from tests.robot.arms.bus_sim import ServoBusProcess


class FeetechBusSim(ServoBusProcess):
    """STS3215 servos ``ids`` (at ``positions`` ticks, 2048 by default) behind a pty."""

    def __init__(self, ids=(1, 2, 3, 4, 5, 6), positions: dict[int, int] | None = None) -> None:
        super().__init__(
            "feetech",
            {i: "sts3215" for i in ids},
            positions or {},
            STS_SMS_SERIES_CONTROL_TABLE,
            MODEL_NUMBER_TABLE,
            init={
                "Firmware_Major_Version": 3,
                "Firmware_Minor_Version": 10,
                "Max_Position_Limit": 4095,
            },
        )
