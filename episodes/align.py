"""Align the recorder's asynchronous streams into steps, one per record tick.

The driver publishes, at every control tick ``t``, the joint state and the command it actually
sent (``driver/command``, whose ``frame_id`` is the control source). Cameras publish at their
own rate, on their own threads, with their own latency. A step of the store is::

    t             the first control tick at or after a grid point (every 1/fps s of ROS time)
    joint state   the one stamped t (the driver publishes both per tick), or the nearest
    action        the command sent at t, with its control source
    images        per camera, the frame nearest to the grid point

Frames are matched to the grid point, not to the tick: when the record rate does not divide
the control rate, a tick can trail its grid point by up to a control period, and a camera that
lags the ticks would otherwise have every third frame skipped and its neighbour stored twice.

A tick waits (in ROS time, bounded by ``max_latency``) until every camera has a frame at or
after ``t`` so that "nearest" can be decided; then it is emitted. A frame further than
``image_tolerance`` from ``t`` counts as misaligned; a camera with no frame at all counts as
missing (the step repeats the camera's previous frame, or black before the first one, so the
arrays stay rectangular and the counts say how much to trust them).

Clock skew: for every stream the aligner keeps the offset between the newest control tick at
arrival and the message's stamp. A stream stamped from another clock (a camera on wall time
while the robot runs on sim time, a device whose offset was never estimated) shows up as a
median offset far from the joint states'; ``stats.skew_flags`` names it.

Camera latency: a camera whose frames show the world ``L`` seconds before their stamps
(exposure, transfer, processing; measured by ``dojo calibrate latency``) would pair each frame
with joint states ``L`` too late. ``AlignConfig.camera_latency`` gives ``L`` per camera; the
frame is matched as if stamped ``stamp - L``.

Buffers are sized from rates: ``buffer_seconds`` of each stream at its nominal rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from robot.schema import ControlSource


@dataclass
class AlignConfig:
    fps: float = 10.0  # steps per second of ROS time
    image_tolerance: float = 0.05  # s
    max_latency: float = 0.3  # s of ROS time a tick waits for late frames
    skew_threshold: float = 0.1  # s between stream offsets that counts as clock skew
    buffer_seconds: float = 2.0
    # camera -> s its frames show the world older than their stamps, compared with the joint
    # states (``dojo calibrate latency``'s image_after_joint_states); subtracted from the
    # frame's stamp before matching
    camera_latency: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("fps", "image_tolerance", "max_latency", "skew_threshold", "buffer_seconds"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"recorder.{key}={value} must be a positive number")
        for camera, value in self.camera_latency.items():
            if not (np.isfinite(value) and 0 <= value < self.max_latency):
                raise ValueError(
                    f"camera '{camera}': latency {value} s must be >= 0 and below "
                    f"recorder.max_latency={self.max_latency}"
                )


@dataclass(frozen=True, eq=False)
class Step:
    t: float
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    action: np.ndarray
    control_source: ControlSource
    images: dict[str, np.ndarray]


@dataclass
class AlignStats:
    steps: int = 0
    misaligned: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    joint_state_misaligned: int = 0
    offsets: dict[str, float] = field(default_factory=dict)  # median per stream, s
    skew_flags: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "steps": self.steps,
            "misaligned_frames": dict(self.misaligned),
            "missing_frames": dict(self.missing),
            "joint_state_misaligned": self.joint_state_misaligned,
            "stream_offsets_s": {k: round(v, 4) for k, v in self.offsets.items()},
            "skew_flags": list(self.skew_flags),
        }


class StepAligner:
    """Feed it messages as they arrive; it returns the steps that became ready.

    ``cameras``: camera name -> (height, width, nominal fps). ``control_hz``: the driver's rate.
    Not thread-safe: the recorder node calls it from one callback group.
    """

    def __init__(
        self, cameras: dict[str, tuple[int, int, float]], control_hz: float, config: AlignConfig
    ) -> None:
        self.config = config
        self.cameras = dict(cameras)
        self.control_period = 1.0 / control_hz
        n_ticks = int(config.buffer_seconds * control_hz) + 1
        self._states: deque[tuple[float, np.ndarray, np.ndarray]] = deque(maxlen=n_ticks)
        self._frames = {
            cam: deque(maxlen=int(config.buffer_seconds * fps) + 2)
            for cam, (_h, _w, fps) in cameras.items()
        }
        # (grid time, tick time, command, source)
        self._pending: deque[tuple[float, float, np.ndarray, ControlSource]] = deque(maxlen=n_ticks)
        self._last_image: dict[str, np.ndarray] = {}
        self._offsets: dict[str, deque[float]] = {}
        self._next_record: float | None = None
        self._newest_tick = -np.inf
        self.stats = AlignStats(misaligned={c: 0 for c in cameras}, missing={c: 0 for c in cameras})

    # -- inputs -------------------------------------------------------------------------------

    def add_joint_state(self, stamp: float, position: np.ndarray, velocity: np.ndarray) -> None:
        self._note_offset("joint_states", stamp)
        self._states.append((stamp, np.asarray(position), np.asarray(velocity)))

    def add_frame(self, camera: str, stamp: float, image: np.ndarray) -> list[Step]:
        if camera not in self._frames:
            raise KeyError(f"recorder: frame from unknown camera '{camera}'")
        self._note_offset(f"camera/{camera}", stamp)
        # what the frame shows happened this much before its stamp (a calibrated latency)
        stamp -= self.config.camera_latency.get(camera, 0.0)
        self._frames[camera].append((stamp, image))
        return self._emit_ready(final=False)

    def add_command(self, stamp: float, command: np.ndarray, source: ControlSource) -> list[Step]:
        """A control tick: the command the driver sent at ``stamp``."""
        self._newest_tick = max(self._newest_tick, stamp)
        if self._next_record is None:
            self._next_record = stamp
        if stamp + 1e-9 >= self._next_record:
            grid = self._next_record
            self._pending.append((grid, stamp, np.asarray(command), ControlSource(source)))
            period = 1.0 / self.config.fps
            # stay on the grid; after a gap, restart from this tick rather than bursting
            self._next_record += period
            if self._next_record <= stamp:
                self._next_record = stamp + period
        return self._emit_ready(final=False)

    def flush(self) -> list[Step]:
        """Every pending tick, with what is there (at episode stop)."""
        return self._emit_ready(final=True)

    # -- alignment ----------------------------------------------------------------------------

    def _ready(self, grid: float, t: float) -> bool:
        if self._newest_tick - t >= self.config.max_latency:
            return True
        has_state = any(abs(s - t) <= 0.5 * self.control_period for s, _, _ in self._states)
        frames_in = all(frames and frames[-1][0] + 1e-9 >= grid for frames in self._frames.values())
        return has_state and frames_in

    def _emit_ready(self, final: bool) -> list[Step]:
        steps = []
        while self._pending and (final or self._ready(*self._pending[0][:2])):
            grid, t, command, source = self._pending.popleft()
            steps.append(self._make_step(grid, t, command, source))
        if steps:
            self._update_skew()
        return steps

    def _make_step(self, grid: float, t: float, command: np.ndarray, source: ControlSource) -> Step:
        if self._states:
            stamp, pos, vel = min(self._states, key=lambda s: abs(s[0] - t))
            if abs(stamp - t) > 0.5 * self.control_period:
                self.stats.joint_state_misaligned += 1
        else:
            self.stats.joint_state_misaligned += 1
            pos = vel = np.full_like(command, np.nan, dtype=np.float64)
        images = {}
        for cam, frames in self._frames.items():
            if frames:
                stamp, image = min(frames, key=lambda f: abs(f[0] - grid))
                if abs(stamp - grid) > self.config.image_tolerance:
                    self.stats.misaligned[cam] += 1
            else:
                self.stats.missing[cam] += 1
                h, w, _fps = self.cameras[cam]
                image = self._last_image.get(cam, np.zeros((h, w, 3), np.uint8))
            self._last_image[cam] = image
            images[cam] = image
        self.stats.steps += 1
        return Step(t, pos, vel, command, source, images)

    def _note_offset(self, stream: str, stamp: float) -> None:
        if not np.isfinite(self._newest_tick):
            return
        samples = self._offsets.setdefault(stream, deque(maxlen=200))
        samples.append(self._newest_tick - stamp)

    def _update_skew(self) -> None:
        self.stats.offsets = {k: float(np.median(v)) for k, v in self._offsets.items() if v}
        ref = self.stats.offsets.get("joint_states")
        if ref is None:
            return
        flags = []
        for stream, offset in sorted(self.stats.offsets.items()):
            if stream != "joint_states" and abs(offset - ref) > self.config.skew_threshold:
                flags.append(
                    f"{stream} stamps differ from joint_states by {offset - ref:+.3f} s "
                    f"(> {self.config.skew_threshold} s): clock skew?"
                )
        self.stats.skew_flags = flags
