"""Device timestamps mapped to ROS time: an online estimate of offset and drift.

A camera stamps each frame with its own clock (RealSense: the sensor's hardware clock in ms;
V4L2: the kernel's buffer time). The host sees the frame later, by a transport latency that is
never negative and jitters. Fitting ``host = offset + (1 + drift) * device`` by least squares
over a window would put the line through the *middle* of the latency and carry its jitter
into the drift; what a consumer wants is the capture instant, so both come from the lower
envelope: the slope (drift) by least squares through the fastest arrival of each of a few
bins of the window, the offset from the fastest arrival of all. The stamp of a frame is then the
host time at which it was captured, plus the minimum transport latency, which is unknowable
without a shared clock and is small (a USB frame: well under a millisecond) and constant.

The window is sized from the frame rate (``fps x window_s``), so it never grows without bound.
Drift is reported in ppm: a crystal is typically within +-50 ppm, so a drift estimate of
hundreds of ppm means the timestamps are wrong (a clock reset, a wrong unit) and the estimator
restarts.
"""

from __future__ import annotations

import collections
import math

import numpy as np


class ClockSync:
    """Maps device time (s) to host time (s), learning offset and drift online.

    ``update(device_t, host_t)`` with each frame's device stamp and its arrival time on the host
    returns the frame's host-clock stamp. Until ``min_samples`` frames have been seen the drift
    is taken as 0 and only the offset is estimated.
    """

    def __init__(
        self,
        window: int = 300,
        min_samples: int = 10,
        max_drift_ppm: float = 500.0,
        max_jump_s: float = 0.5,
    ) -> None:
        if window < 2:
            raise ValueError(f"ClockSync: window={window} must be >= 2")
        self.window = int(window)
        self.min_samples = int(min_samples)
        self.max_drift_ppm = float(max_drift_ppm)
        self.max_jump_s = float(max_jump_s)
        self._dev: collections.deque[float] = collections.deque(maxlen=self.window)
        self._host: collections.deque[float] = collections.deque(maxlen=self.window)
        self._slope = 1.0
        self._offset = math.nan
        self.resets = 0

    @property
    def drift_ppm(self) -> float:
        """How fast the device clock runs against the host, in ppm (> 0: device fast).

        ``host = offset + slope * device``, so a device fast by ``x`` has ``slope = 1/(1+x)``.
        """
        return (1.0 / self._slope - 1.0) * 1e6

    @property
    def offset(self) -> float:
        """Host time at device time 0 (s), per the current fit."""
        return self._offset

    @property
    def samples(self) -> int:
        return len(self._dev)

    def reset(self) -> None:
        self._dev.clear()
        self._host.clear()
        self._slope = 1.0
        self._offset = math.nan
        self.resets += 1

    def to_host(self, device_t: float) -> float:
        """Host time of device time ``device_t`` under the current fit (NaN before any sample)."""
        return self._offset + self._slope * device_t

    def update(self, device_t: float, host_t: float) -> float:
        """Add one (device, arrival) pair; return the host-clock stamp of the frame."""
        if self._dev and (
            device_t <= self._dev[-1] or abs(host_t - self.to_host(device_t)) > self.max_jump_s
        ):
            # the device clock went backwards (re-enumeration, playback loop) or jumped
            self.reset()
        self._dev.append(float(device_t))
        self._host.append(float(host_t))
        self._fit()
        return self.to_host(device_t)

    def _fit(self) -> None:
        dev = np.fromiter(self._dev, dtype=np.float64)
        host = np.fromiter(self._host, dtype=np.float64)
        slope = 1.0
        if dev.size >= self.min_samples and dev[-1] - dev[0] > 0:
            # slope through the lower envelope: the fastest arrival of each of a few bins
            # (least squares through all points would carry the latency jitter into the drift)
            bins = max(2, min(10, dev.size // 5))
            resid = host - dev
            xs, ys = [], []
            for idx in np.array_split(np.arange(dev.size), bins):
                k = idx[np.argmin(resid[idx])]
                xs.append(dev[k])
                ys.append(resid[k])
            x, y = np.asarray(xs), np.asarray(ys)
            x0 = x - x.mean()
            denom = float(np.dot(x0, x0))
            if denom > 0:
                fitted = 1.0 + float(np.dot(x0, y - y.mean()) / denom)
                if abs(fitted - 1.0) * 1e6 <= self.max_drift_ppm:
                    slope = fitted
        self._slope = slope
        # lower envelope: the frame that arrived with the least latency fixes the offset
        self._offset = float(np.min(host - slope * dev))
