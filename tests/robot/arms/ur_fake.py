"""A fake UR controller behind ur_rtde's API (RTDEControl/Receive, DashboardClient).

Models what the driver relies on: joint state that follows servoJ, the RTDE watchdog (the
control script stops when it is not kicked within 1/min_frequency), protective and emergency
stops, the dashboard's unlock, and script re-upload. Method names and signatures are ur_rtde's.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace


class FakeUR:
    def __init__(self, q=(0.0, -1.57, 1.57, -1.57, -1.57, 0.0)) -> None:
        self.lock = threading.Lock()
        self.q = list(q)
        self.program_running = True
        self.protective = False
        self.estop = False
        self.watchdog_hz = 0.0
        self.last_kick = time.monotonic()
        self.servo_calls: list[tuple] = []
        self.servo_stops = 0
        self.unlocks = 0
        self.reuploads = 0
        self.stall = threading.Event()  # set: initPeriod blocks (this process stalls)

    def sdk(self) -> SimpleNamespace:
        robot = self

        class Control:
            def __init__(self, host, frequency=-1.0, flags=1):
                self.dt = 1.0 / frequency

            def setWatchdog(self, min_frequency=10.0):
                robot.watchdog_hz = min_frequency
                robot.last_kick = time.monotonic()
                return True

            def kickWatchdog(self):
                robot.last_kick = time.monotonic()
                return True

            def isProgramRunning(self):
                robot.expire()
                return robot.program_running

            def initPeriod(self):
                robot.stall.wait(0) and time.sleep(0.3)
                return time.monotonic()

            def waitPeriod(self, t0):
                time.sleep(max(0.0, t0 + self.dt - time.monotonic()))

            def servoJ(self, q, speed, acceleration, t, lookahead, gain):
                with robot.lock:
                    if not robot.program_running or robot.protective or robot.estop:
                        return False
                    robot.servo_calls.append((list(q), t, lookahead, gain))
                    robot.q = list(q)
                return True

            def servoStop(self, a=10.0):
                robot.servo_stops += 1
                return True

            def reuploadScript(self):
                robot.reuploads += 1
                robot.program_running = True
                return True

            def stopScript(self):
                robot.program_running = False

            def disconnect(self):
                pass

        class Receive:
            def __init__(self, host, frequency=-1.0):
                pass

            def getActualQ(self):
                with robot.lock:
                    return list(robot.q)

            def getActualQd(self):
                return [0.0] * 6

            def isProtectiveStopped(self):
                return robot.protective

            def isEmergencyStopped(self):
                return robot.estop

            def getSafetyMode(self):
                return 7 if robot.estop else 3 if robot.protective else 1

            def disconnect(self):
                pass

        class Dashboard:
            def __init__(self, host):
                pass

            def connect(self):
                pass

            def disconnect(self):
                pass

            def closeSafetyPopup(self):
                pass

            def unlockProtectiveStop(self):
                robot.unlocks += 1
                robot.protective = False

        return SimpleNamespace(
            RTDEControlInterface=Control, RTDEReceiveInterface=Receive, DashboardClient=Dashboard
        )

    def expire(self) -> None:
        """The robot side of the watchdog: no kick within 1/min_frequency stops the script."""
        if self.watchdog_hz > 0 and time.monotonic() - self.last_kick > 1.0 / self.watchdog_hz:
            self.program_running = False
