"""What every camera driver shares: frames, the capture thread, staleness and reconnects.

A driver implements three device steps (``_open``, ``_grab``, ``_close``); :class:`Camera`
runs them on a capture thread of its own and does everything that must be the same for every
camera:

- **stamps**: a frame's device timestamp goes through :class:`~robot.cameras.clock.ClockSync`
  into host time (ROS time on the robot: the system clock, or the ``clock`` callable given);
  a camera without device timestamps is stamped on arrival;
- **staleness**: no new frame for ``stale_periods`` frame periods (2 by default) makes the
  camera *stale*; a frozen camera (frames keep coming with the same device timestamp or frame
  number) is stale too, because nothing new arrives;
- **reconnects**: stale for ``reconnect_after`` s, or a grab that raises, closes the device and
  reopens it, with a bounded back-off, until :meth:`Camera.stop`.

Lifecycle, as for arms: the constructor does no device I/O; :meth:`Camera.start` opens the
device (errors name it) and starts the thread; :meth:`Camera.stop` ends the thread and closes
the device in ``finally``. Consumers either poll :meth:`Camera.latest`, block on
:meth:`Camera.wait_frame`, or register a callback with :meth:`Camera.subscribe`.
"""

from __future__ import annotations

import abc
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot.cameras.clock import ClockSync
from robot.schema import CameraIntrinsics

log = logging.getLogger(__name__)


class CameraError(RuntimeError):
    """A camera failed or was misconfigured. The message names the camera and the device."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured frame.

    ``stamp``: host/ROS time (s) of capture, mapped from ``device_stamp`` (device clock, s;
    NaN when the device gives none, then ``stamp`` is the arrival time). ``received``: host
    time it arrived. ``color``: ``(H, W, 3)`` uint8 RGB. ``depth``: ``(H, W)`` uint16 in units
    of ``depth_scale`` metres (aligned to ``color`` when the driver was asked to), or None.
    """

    camera: str
    seq: int
    stamp: float
    device_stamp: float
    received: float
    color: np.ndarray
    depth: np.ndarray | None = None
    depth_scale: float = 0.001
    frame_number: int = -1


@dataclass(frozen=True, eq=False)
class RawFrame:
    """What a driver's ``_grab`` hands back: pixels and the device's own stamp (s) if any."""

    color: np.ndarray
    device_stamp: float = math.nan
    frame_number: int = -1
    depth: np.ndarray | None = None
    depth_scale: float = 0.001


@dataclass
class CameraStats:
    frames: int = 0
    reconnects: int = 0
    errors: int = 0
    stale_events: int = 0
    last_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Camera(abc.ABC):
    """A camera with a capture thread, device-to-host time mapping, staleness and reconnects.

    ``name``: the camera's name in topics. ``fps``: its nominal rate (frame period for
    staleness). ``clock``: host time source (ROS time), ``time.time`` by default.
    """

    def __init__(
        self,
        name: str,
        fps: float,
        *,
        clock: Callable[[], float] | None = None,
        stale_periods: float = 2.0,
        reconnect_after: float = 1.0,
        reconnect_backoff_max: float = 5.0,
        sync_window_s: float = 10.0,
    ) -> None:
        if not fps > 0:
            raise CameraError(f"camera '{name}': fps={fps} must be > 0")
        self.name = name
        self.fps = float(fps)
        self.clock = clock or time.time
        self.stale_periods = float(stale_periods)
        self.reconnect_after = float(reconnect_after)
        self.reconnect_backoff_max = float(reconnect_backoff_max)
        self.sync = ClockSync(window=max(2, int(self.fps * sync_window_s)))
        self.stats = CameraStats()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._seq = 0
        self._last_new = -math.inf  # host time of the last *new* frame
        self._opened_at = -math.inf  # host time the device was last opened
        self._last_key: tuple[float, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribers: list[Callable[[Frame], None]] = []
        self._open_now = False
        self.fatal: BaseException | None = None

    # ------------------------------------------------------------------ driver hooks

    @property
    @abc.abstractmethod
    def device(self) -> str:
        """The device, in words that find it: serial number, path, file."""

    @abc.abstractmethod
    def _open(self) -> None:
        """Open the device; raise :class:`CameraError` naming it on failure."""

    @abc.abstractmethod
    def _grab(self, timeout: float) -> RawFrame | None:
        """The next frame, or None when none came within ``timeout`` s. May raise."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the device. Must not raise when already closed."""

    def intrinsics(self) -> CameraIntrinsics | None:
        """The device's own intrinsics of the colour stream, when it reports them."""
        return None

    # ------------------------------------------------------------------ lifecycle

    @property
    def period(self) -> float:
        return 1.0 / self.fps

    def __str__(self) -> str:
        return f"{type(self).__name__}('{self.name}', {self.device})"

    def start(self) -> None:
        """Open the device and start capturing. A device that cannot be opened raises here."""
        if self._thread is not None:
            return
        self._open()
        self._open_now = True
        self._stop.clear()
        self._opened_at = self.clock()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop capturing and close the device; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> Camera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def subscribe(self, callback: Callable[[Frame], None]) -> None:
        """Call ``callback(frame)`` on the capture thread for every new frame."""
        self._subscribers.append(callback)

    # ------------------------------------------------------------------ consumers

    def latest(self) -> Frame | None:
        with self._cond:
            return self._latest

    def wait_frame(self, after_seq: int = 0, timeout: float = 1.0) -> Frame | None:
        """The first frame with ``seq > after_seq``, or None after ``timeout`` s."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.seq <= after_seq:
                left = end - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    return None
                self._cond.wait(left)
            return self._latest

    def age(self, now: float | None = None) -> float:
        """Seconds since the last new frame arrived (host clock); inf before the first."""
        now = self.clock() if now is None else now
        return now - self._last_new

    def is_stale(self, now: float | None = None) -> bool:
        """No new frame for ``stale_periods`` frame periods (2 by default)."""
        return self.age(now) > self.stale_periods * self.period

    def status(self) -> dict[str, Any]:
        return {
            "camera": self.name,
            "device": self.device,
            "frames": self.stats.frames,
            "stale": self.is_stale(),
            "age_s": round(self.age(), 4),
            "reconnects": self.stats.reconnects,
            "errors": self.stats.errors,
            "drift_ppm": round(self.sync.drift_ppm, 2),
            "last_error": self.stats.last_error,
            **self.stats.extra,
        }

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        backoff = self.reconnect_after
        was_stale = False
        try:
            while not self._stop.is_set():
                if not self._open_now:
                    if not self._try_reopen():
                        self._stop.wait(min(backoff, self.reconnect_backoff_max))
                        backoff = min(backoff * 2, self.reconnect_backoff_max)
                        continue
                    backoff = self.reconnect_after
                try:
                    raw = self._grab(timeout=min(self.period, 0.1) * 2)
                except Exception as exc:  # a driver error is a reason to reconnect, not die
                    self._note_error(f"grab failed: {type(exc).__name__}: {exc}")
                    self._close_quietly()
                    continue
                now = self.clock()
                if raw is not None and self._is_new(raw):
                    self._publish(raw, now)
                    was_stale = False
                    continue
                stale = self.is_stale(now)
                if stale and not was_stale:
                    self.stats.stale_events += 1
                    log.warning("%s: stale, no new frame for %.3f s", self, self.age(now))
                was_stale = stale
                if now - max(self._last_new, self._opened_at) > self.reconnect_after:
                    self._note_error(f"no new frame for {self.age(now):.2f} s; reconnecting")
                    self._close_quietly()
        except BaseException as exc:  # pragma: no cover - reported through fatal
            self.fatal = exc
            log.exception("%s: capture thread died", self)
        finally:
            self._close_quietly()

    def _is_new(self, raw: RawFrame) -> bool:
        key = (raw.device_stamp, raw.frame_number)
        if math.isnan(raw.device_stamp) and raw.frame_number < 0:
            return True
        if key == self._last_key:
            return False  # a frozen device repeats its last frame
        self._last_key = key
        return True

    def _publish(self, raw: RawFrame, now: float) -> None:
        if math.isnan(raw.device_stamp):
            stamp = now
        else:
            stamp = self.sync.update(raw.device_stamp, now)
        with self._cond:
            self._seq += 1
            frame = Frame(
                camera=self.name,
                seq=self._seq,
                stamp=stamp,
                device_stamp=raw.device_stamp,
                received=now,
                color=raw.color,
                depth=raw.depth,
                depth_scale=raw.depth_scale,
                frame_number=raw.frame_number,
            )
            self._latest = frame
            self._last_new = now
            self.stats.frames += 1
            self._cond.notify_all()
        for callback in list(self._subscribers):
            try:
                callback(frame)
            except Exception:
                log.exception("%s: frame subscriber failed", self)

    def _note_error(self, text: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = text
        log.warning("%s: %s", self, text)

    def _try_reopen(self) -> bool:
        self.stats.reconnects += 1
        try:
            self._open()
        except Exception as exc:
            self._note_error(f"reconnect failed: {exc}")
            return False
        self._open_now = True
        self._opened_at = self.clock()
        self._last_key = None
        self.sync.reset()
        log.info("%s: reconnected (attempt %d)", self, self.stats.reconnects)
        return True

    def _close_quietly(self) -> None:
        if not self._open_now:
            return
        self._open_now = False
        try:
            self._close()
        except Exception as exc:
            log.warning("%s: close failed: %s", self, exc)
