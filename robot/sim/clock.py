"""How sim time relates to wall time: real time, or lockstep.

``realtime``  physics is paced to the wall clock (demos, a person at the teleop device).
``lockstep``  physics advances as fast as the machine allows, one control period per tick;
              nothing waits on the wall clock (RL experiments, tests).

Sim time (the twin's ``time``, published on ``/clock``) is the only time that stamps anything.
The wall clock (``time.monotonic``) is used here for pacing only and never mixed into a stamp.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class ClockMode(StrEnum):
    realtime = "realtime"
    lockstep = "lockstep"

    @classmethod
    def parse(cls, value: str | ClockMode) -> ClockMode:
        try:
            return cls(value)
        except ValueError:
            raise ValueError(
                f"clock mode {value!r} is not one of {[m.value for m in cls]}"
            ) from None


class RealTimePacer:
    """Sleeps until the wall clock catches up with sim time; counts overruns.

    Call :meth:`wait` with the sim time about to be reached. The first call anchors sim time to
    the wall clock. If the caller is already late by more than ``max_lag`` wall seconds, it
    does not sleep, counts an overrun and re-anchors, so a stall is not followed by a burst of
    catch-up steps. In lockstep mode :meth:`wait` returns at once.
    """

    def __init__(
        self,
        mode: ClockMode | str = ClockMode.realtime,
        *,
        rate: float = 1.0,
        max_lag: float = 0.1,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate={rate} (sim seconds per wall second) must be > 0")
        self.mode = ClockMode.parse(mode)
        self.rate = float(rate)
        self.max_lag = float(max_lag)
        self.overruns = 0
        self._monotonic = monotonic
        self._sleep = sleep
        self._anchor: tuple[float, float] | None = None  # (sim time, wall time)

    def reset(self) -> None:
        """Forget the anchor (after a pause): the next :meth:`wait` anchors again."""
        self._anchor = None

    def wait(self, sim_time: float) -> float:
        """Block until wall time corresponds to ``sim_time``. Returns the seconds slept."""
        if self.mode is ClockMode.lockstep:
            return 0.0
        now = self._monotonic()
        if self._anchor is None:
            self._anchor = (sim_time, now)
            return 0.0
        sim0, wall0 = self._anchor
        delay = wall0 + (sim_time - sim0) / self.rate - now
        if delay > 0:
            self._sleep(delay)
            return delay
        if -delay > self.max_lag:
            self.overruns += 1
            self._anchor = (sim_time, now)
        return 0.0
