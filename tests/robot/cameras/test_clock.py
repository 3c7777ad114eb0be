"""ClockSync: device time to host time, recovering injected offset and drift."""

from __future__ import annotations

import numpy as np
import pytest

from robot.cameras.clock import ClockSync


@pytest.mark.parametrize("drift_ppm", [-75.0, 0.0, 75.0])
def test_recovers_offset_and_drift_under_latency_jitter(drift_ppm):
    rng = np.random.default_rng(0)
    sync = ClockSync(window=900)
    true_t = np.arange(900) / 30.0  # capture instants, host clock
    device = (true_t - 0.05) * (1 + drift_ppm * 1e-6)  # device clock: offset, runs fast
    latency = 0.004 + rng.exponential(0.003, size=true_t.size)  # never negative
    stamps = [sync.update(d, t + lat) for d, t, lat in zip(device, true_t, latency, strict=True)]
    assert sync.drift_ppm == pytest.approx(drift_ppm, abs=25)
    err = np.asarray(stamps[300:]) - true_t[300:]
    # stamps sit at capture + the minimum latency, not at the mean arrival
    assert np.all(np.abs(err - 0.004) < 0.002), err.max()


def test_restarts_when_the_device_clock_goes_backwards():
    sync = ClockSync()
    for i in range(20):
        sync.update(10.0 + i / 30, 100.0 + i / 30)
    resets = sync.resets
    stamp = sync.update(0.0, 100.0 + 21 / 30)
    assert sync.resets == resets + 1
    assert stamp == pytest.approx(100.0 + 21 / 30)


def test_refuses_a_window_too_small():
    with pytest.raises(ValueError, match="window"):
        ClockSync(window=1)
