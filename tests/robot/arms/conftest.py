"""Serial-bus test settings shared by the LeRobot arm tests.

The SDKs wait a few tens of milliseconds for a servo's reply (scservo_sdk as patched by
LeRobot: 50 ms; dynamixel_sdk: 2 x its 16 ms USB latency timer). A real servo answers in
microseconds; an emulator process on a loaded 2-core test machine sometimes does not get the
CPU that soon, the reply arrives late and then answers the *next* request. The fixture models a
slower adapter (250 ms) so these tests exercise the driver, not the machine's scheduler.
Injected failures (``dead``, ``drop_replies``) still time out, only later.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def slow_serial_adapters(monkeypatch):
    try:
        import dynamixel_sdk.port_handler as dxl_port

        monkeypatch.setattr(dxl_port, "LATENCY_TIMER", 125)
    except ImportError:
        pass
    try:
        from lerobot.motors.feetech import feetech
    except ImportError:
        return

    def patient_timeout(self, packet_length):
        self.packet_start_time = self.getCurrentTime()
        self.packet_timeout = (self.tx_time_per_byte * packet_length) + 250.0

    monkeypatch.setattr(feetech, "patch_setPacketTimeout", patient_timeout)
