"""Protocol-level servo-bus emulators behind a pseudo-terminal, each in a process of its own.

Why a process: LeRobot's SDKs read the serial port in a busy loop; an emulator thread in the
same interpreter competes with it for the GIL and, on a loaded machine, misses the reply
deadline. The emulator process shares the servos' register memory and a few control values
with the test through named shared memory (no pickling), prints the pty path on its first line
and every ``Goal_Position`` sync write as a JSON line after it.

Layout of the shared memory: ``[0]`` stop, ``[1]`` dead (no servo answers), ``[4:8]`` replies
still to drop (int32), ``[8:12]`` requests seen (uint32), then each servo's register memory
(``size`` bytes) in ascending id order.

Protocols (what the SDKs put on the wire):

- ``feetech`` (SCS/STS, protocol 0): ``FF FF id len instr params checksum``, status
  ``FF FF id len err data checksum``;
- ``dynamixel`` (protocol 2.0): ``FF FF FD 00 id len_l len_h instr params crc_l crc_h`` with
  byte stuffing and CRC-16 (poly 0x8005), status instruction 0x55.

A ping to the broadcast id (0xFE) is answered by every servo, as ``dojo hw find-port --probe``
(LeRobot's ``broadcast_ping``) expects.

Run as ``python -m tests.robot.arms.bus_sim SPEC_JSON`` by :class:`ServoBusProcess`.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import struct
import subprocess
import sys
import threading
import tty
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path

PING, READ, WRITE, SYNC_READ, SYNC_WRITE, STATUS = 0x01, 0x02, 0x03, 0x82, 0x83, 0x55
BROADCAST = 0xFE
CONTROL = 64
ROOT = Path(__file__).resolve().parents[3]


# ---------------------------------------------------------------------- the emulator process


class BusEmulator:
    def __init__(self, spec: dict, shm: shared_memory.SharedMemory) -> None:
        self.table = {k: tuple(v) for k, v in spec["table"].items()}
        self.size = int(spec["size"])
        self.ids = sorted(int(i) for i in spec["models"])
        self.buf = shm.buf
        self.mem = {
            sid: self.buf[CONTROL + k * self.size : CONTROL + (k + 1) * self.size]
            for k, sid in enumerate(self.ids)
        }
        self.goal = self.table["Goal_Position"]
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.slave = slave
        self.port = os.ttyname(slave)
        for sid in self.ids:
            pos = int(spec["positions"].get(str(sid), 2048))
            for name, value in spec["init"].items():
                self.put(sid, name, int(value))
            self.put(sid, "Model_Number", int(spec["model_numbers"][spec["models"][str(sid)]]))
            self.put(sid, "Present_Position", pos)

    def put(self, sid: int, name: str, value: int) -> None:
        addr, n = self.table[name]
        self.mem[sid][addr : addr + n] = int(value).to_bytes(n, "little")

    def get(self, sid: int, name: str) -> int:
        addr, n = self.table[name]
        return int.from_bytes(self.mem[sid][addr : addr + n], "little")

    def swallow_reply(self) -> bool:
        if self.buf[1]:
            return True
        drop = struct.unpack_from("<i", self.buf, 4)[0]
        if drop > 0:
            struct.pack_into("<i", self.buf, 4, drop - 1)
            return True
        return False

    def count_request(self) -> None:
        struct.pack_into("<I", self.buf, 8, struct.unpack_from("<I", self.buf, 8)[0] + 1)

    def write_mem(self, sid: int, addr: int, data: bytes) -> None:
        self.mem[sid][addr : addr + len(data)] = data
        if addr == self.goal[0] and self.get(sid, "Torque_Enable"):
            self.put(sid, "Present_Position", self.get(sid, "Goal_Position"))

    def record_goals(self, goals: dict[int, int]) -> None:
        sys.stdout.write(json.dumps({str(k): v for k, v in goals.items()}) + "\n")
        sys.stdout.flush()

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def run(self) -> None:
        pending = bytearray()
        while not self.buf[0]:
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if ready:
                pending += os.read(self.master, 4096)
                self.parse(pending)

    def sync_write(self, addr: int, n: int, entries: bytes) -> None:
        goals = {}
        for k in range(0, len(entries), n + 1):
            target = entries[k]
            if target in self.mem:
                self.write_mem(target, addr, entries[k + 1 : k + 1 + n])
                if addr == self.goal[0]:
                    goals[target] = self.get(target, "Goal_Position")
        if goals:
            self.record_goals(goals)

    def parse(self, pending: bytearray) -> None:
        raise NotImplementedError


class FeetechEmulator(BusEmulator):
    def parse(self, pending: bytearray) -> None:
        while True:
            start = pending.find(b"\xff\xff")
            if start < 0 or len(pending) < start + 4:
                return
            end = start + 4 + pending[start + 3]
            if len(pending) < end:
                return
            packet = bytes(pending[start:end])
            del pending[:end]
            if (~sum(packet[2:-1])) & 0xFF == packet[-1]:
                self.handle(packet[2], packet[4], packet[5:-1])

    def reply(self, sid: int, data: bytes = b"") -> None:
        if self.swallow_reply():
            return
        body = bytes([sid, len(data) + 2, 0]) + data
        self.send(b"\xff\xff" + body + bytes([(~sum(body)) & 0xFF]))

    def handle(self, sid: int, instr: int, params: bytes) -> None:
        self.count_request()
        if instr == SYNC_WRITE:
            self.sync_write(params[0], params[1], params[2:])
        elif instr == SYNC_READ:
            addr, n = params[0], params[1]
            for target in params[2:]:
                if target in self.mem:
                    self.reply(target, bytes(self.mem[target][addr : addr + n]))
        elif sid == BROADCAST and instr == PING:
            for target in self.ids:  # every servo answers a broadcast ping, in id order
                self.reply(target)
        elif sid in self.mem and instr == PING:
            self.reply(sid)
        elif sid in self.mem and instr == READ:
            self.reply(sid, bytes(self.mem[sid][params[0] : params[0] + params[1]]))
        elif sid in self.mem and instr == WRITE:
            self.write_mem(sid, params[0], params[1:])
            self.reply(sid)


def crc16(data: bytes) -> int:
    """CRC-16/BUYPASS (poly 0x8005, init 0), as Dynamixel protocol 2.0 uses."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


class DynamixelEmulator(BusEmulator):
    HEADER = b"\xff\xff\xfd\x00"

    def parse(self, pending: bytearray) -> None:
        while True:
            start = pending.find(self.HEADER)
            if start < 0 or len(pending) < start + 7:
                return
            end = start + 7 + (pending[start + 5] | (pending[start + 6] << 8))
            if len(pending) < end:
                return
            packet = bytes(pending[start:end])
            del pending[:end]
            if crc16(packet[:-2]) == packet[-2] | (packet[-1] << 8):
                body = packet[7:-2].replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")
                self.handle(packet[4], body[0], body[1:])

    def reply(self, sid: int, data: bytes = b"") -> None:
        if self.swallow_reply():
            return
        body = (bytes([STATUS, 0]) + data).replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")
        length = len(body) + 2
        packet = self.HEADER + bytes([sid, length & 0xFF, length >> 8]) + body
        crc = crc16(packet)
        self.send(packet + bytes([crc & 0xFF, crc >> 8]))

    def handle(self, sid: int, instr: int, params: bytes) -> None:
        self.count_request()

        def word(k: int) -> int:
            return params[k] | (params[k + 1] << 8)

        if instr == SYNC_WRITE:
            self.sync_write(word(0), word(2), params[4:])
        elif instr == SYNC_READ:
            addr, n = word(0), word(2)
            for target in params[4:]:
                if target in self.mem:
                    self.reply(target, bytes(self.mem[target][addr : addr + n]))
        elif instr == PING and (sid in self.mem or sid == BROADCAST):
            for target in self.ids if sid == BROADCAST else [sid]:
                model = self.get(target, "Model_Number")
                self.reply(target, bytes([model & 0xFF, model >> 8, 52]))
        elif sid in self.mem and instr == READ:
            self.reply(sid, bytes(self.mem[sid][word(0) : word(0) + word(2)]))
        elif sid in self.mem and instr == WRITE:
            self.write_mem(sid, word(0), params[2:])
            self.reply(sid)


EMULATORS = {"feetech": FeetechEmulator, "dynamixel": DynamixelEmulator}


def serve(spec: dict) -> None:
    shm = shared_memory.SharedMemory(name=spec["shm"])
    # the test process owns it: without this, Python 3.12's resource tracker unlinks it
    # when this process exits (fixed by SharedMemory(track=False) in 3.13)
    resource_tracker.unregister(shm._name, "shared_memory")
    emulator = EMULATORS[spec["kind"]](spec, shm)
    sys.stdout.write(f"PORT {emulator.port}\n")
    sys.stdout.flush()
    try:
        emulator.run()
    finally:
        del emulator  # release the memoryviews before the shared memory closes
        shm.close()


# ---------------------------------------------------------------------- the test's side


class ServoBusProcess:
    """Starts an emulator process; the test reads and pokes its servos through shared memory."""

    def __init__(
        self,
        kind: str,
        models: dict[int, str],
        positions: dict[int, int],
        table: dict[str, tuple[int, int]],
        model_numbers: dict[str, int],
        init: dict[str, int],
        size: int = 256,
    ) -> None:
        self.table = table
        self.size = size
        self.ids = sorted(models)
        self.shm = shared_memory.SharedMemory(create=True, size=CONTROL + size * len(self.ids))
        self.shm.buf[:] = bytes(len(self.shm.buf))
        spec = {
            "kind": kind,
            "shm": self.shm.name,
            "models": {str(k): v for k, v in models.items()},
            "positions": {str(k): v for k, v in positions.items()},
            "table": {k: list(v) for k, v in table.items()},
            "model_numbers": model_numbers,
            "init": init,
            "size": size,
        }
        env = dict(
            os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.robot.arms.bus_sim", json.dumps(spec)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(ROOT),
        )
        self._goals: list[dict[int, int]] = []
        self._ready = threading.Event()
        self.port = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(30):
            self.close()
            raise RuntimeError(f"{kind} bus emulator did not start within 30 s")

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("PORT "):
                self.port = line[5:].strip()
                self._ready.set()
            elif line.strip():
                self._goals.append({int(k): v for k, v in json.loads(line).items()})

    def get(self, sid: int, name: str) -> int:
        addr, n = self.table[name]
        base = CONTROL + self.ids.index(sid) * self.size + addr
        return int.from_bytes(self.shm.buf[base : base + n], "little")

    @property
    def dead(self) -> bool:
        return bool(self.shm.buf[1])

    @dead.setter
    def dead(self, value: bool) -> None:
        self.shm.buf[1] = 1 if value else 0

    @property
    def drop_replies(self) -> int:
        return struct.unpack_from("<i", self.shm.buf, 4)[0]

    @drop_replies.setter
    def drop_replies(self, value: int) -> None:
        struct.pack_into("<i", self.shm.buf, 4, int(value))

    @property
    def requests(self) -> int:
        return struct.unpack_from("<I", self.shm.buf, 8)[0]

    @property
    def goal_writes(self) -> list[dict[int, int]]:
        """Every Goal_Position sync write so far, as {id: ticks} (arrives asynchronously)."""
        return list(self._goals)

    def close(self) -> None:
        self.shm.buf[0] = 1
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._reader.join(timeout=2)
        self.shm.close()
        with contextlib.suppress(FileNotFoundError):
            self.shm.unlink()


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
