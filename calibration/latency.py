"""Latency: how long after a commanded motion it shows in the joint states and in each camera.

Why a commanded excitation and a cross-correlation: the arm's position servos lag a command
by a dynamic response, a camera adds exposure, transfer and processing, and neither says so in
its stamps. Moving one joint through a smooth signal with no dominant period (three sines of
unrelated frequencies under a raised-cosine window, so the correlation has one clear peak) and
finding the lag at which one observation best matches another measures each delay end to end
with the stamps the recorder sees.

Three numbers come out, in seconds, each the lag that maximises the normalised correlation:

``command_to_joint_states``  the command against the measured joint position (servo response)
``command_to_image``         the command against the board's motion in the image
``image_after_joint_states`` the joint position against the image: how much older than its
                             stamp a frame's content is, compared with a joint state; what
                             the recorder's alignment subtracts from the camera's stamps

The lag is searched on a fine grid with the reference signal linearly interpolated at
``t - lag`` (a 15 fps camera is then judged at its own stamps, never resampled), and refined by
a parabola through the peak. The image signal is the motion of the board's corners along their
main direction of motion: each corner's track with its own mean removed, averaged over the
corners seen, projected on the first principal axis (its sign does not matter: the absolute
correlation is maximised).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.board import Detection
from calibration.errors import CalibrationError

FREQUENCIES_HZ = (0.37, 0.83, 1.51)


def excitation(t: np.ndarray, duration: float) -> np.ndarray:
    """The excitation's shape in [-1, 1] at times ``t`` (s from its start), 0 outside."""
    t = np.asarray(t, dtype=np.float64)
    phases = (0.3, 1.9, 4.1)
    s = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(FREQUENCIES_HZ, phases, strict=True))
    s = s / len(FREQUENCIES_HZ)
    ramp = min(1.0, duration / 4)
    window = np.clip(np.minimum(t, duration - t) / ramp, 0.0, 1.0)
    window = 0.5 - 0.5 * np.cos(np.pi * window)
    return np.where((t >= 0) & (t <= duration), s * window, 0.0)


def image_signal(detections: list[Detection | None]) -> tuple[np.ndarray, np.ndarray]:
    """``(mask, signal)``: which frames saw the board, and the board's motion (px) in each."""
    seen = [d for d in detections if d is not None]
    if len(seen) < 10:
        raise CalibrationError(
            f"the board was seen in {len(seen)} of {len(detections)} frames during the "
            "excitation; it must stay in view (check the view and the board's pose)"
        )
    counts: dict[int, int] = {}
    for d in seen:
        for i in d.ids.tolist():
            counts[i] = counts.get(i, 0) + 1
    keep = [i for i, c in counts.items() if c >= 0.9 * len(seen)]
    if not keep:
        raise CalibrationError("no board corner stayed in view through the excitation")
    tracks: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in keep}
    for k, d in enumerate(detections):
        if d is None:
            continue
        for i, uv in zip(d.ids.tolist(), d.image_points, strict=True):
            if i in tracks:
                tracks[i].append((k, uv))
    n = len(detections)
    total = np.zeros((n, 2))
    weight = np.zeros(n)
    for points in tracks.values():
        idx = np.array([k for k, _ in points])
        uv = np.array([p for _, p in points])
        total[idx] += uv - uv.mean(axis=0)
        weight[idx] += 1
    mask = weight > 0
    motion = total[mask] / weight[mask, None]
    _, _, vt = np.linalg.svd(motion - motion.mean(axis=0), full_matrices=False)
    signal = np.full(n, np.nan)
    signal[mask] = motion @ vt[0]
    return mask, signal


@dataclass(frozen=True)
class LagEstimate:
    lag: float  # s: the observation trails the reference by this much
    correlation: float  # |normalised correlation| at the lag


def estimate_lag(
    t_ref: np.ndarray,
    ref: np.ndarray,
    t_obs: np.ndarray,
    obs: np.ndarray,
    max_lag: float = 0.4,
    step: float = 0.0005,
) -> LagEstimate:
    """The lag in ``[-0.05, max_lag]`` s at which ``obs(t)`` best matches ``ref(t - lag)``."""
    t_ref, ref = np.asarray(t_ref, float), np.asarray(ref, float)
    t_obs, obs = np.asarray(t_obs, float), np.asarray(obs, float)
    lags = np.arange(-0.05, max_lag + step / 2, step)
    inside = (t_obs - max_lag >= t_ref[0]) & (t_obs + 0.05 <= t_ref[-1])
    t_obs, obs = t_obs[inside], obs[inside]
    if len(obs) < 10 or np.std(obs) == 0 or np.std(ref) == 0:
        raise CalibrationError(
            "the excitation shows no motion to correlate (the joint or the image did not move)"
        )
    o = (obs - obs.mean()) / obs.std()
    corr = np.empty(len(lags))
    for k, lag in enumerate(lags):
        r = np.interp(t_obs - lag, t_ref, ref)
        sd = r.std()
        corr[k] = abs(float(np.mean(o * (r - r.mean()) / sd))) if sd > 0 else 0.0
    i = int(np.argmax(corr))
    lag = float(lags[i])
    if 0 < i < len(lags) - 1:
        a, b, c = corr[i - 1], corr[i], corr[i + 1]
        denom = a - 2 * b + c
        if denom < 0:
            lag += 0.5 * (a - c) / denom * step
    if i == len(lags) - 1:
        raise CalibrationError(
            f"the best lag is at the end of the search ({max_lag} s): the delay is longer than "
            "calibrate.max_latency allows; raise it"
        )
    return LagEstimate(lag, float(corr[i]))
