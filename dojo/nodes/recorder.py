"""``recorder``: writes episodes to the store, every step with the action actually sent.

Subscribes to what the driver says it did (``driver/command``: the command sent at each tick
and who was in control, which is also where a takeover shows), ``joint_states``, the cameras,
``task/instruction`` and, when a critic runs, ``critic/progress`` and ``critic/done``. It
aligns them to the record grid (``episodes.align``) and appends steps to the store on a writer
thread, so a slow disk never blocks a callback. The queue between them is sized from rates
(``recorder.fps x recorder.queue_seconds``); a full queue drops steps and says how many.

Services (std_srvs, so any ROS install can call them)::

    episode/start  Trigger   begin an episode with the current task/instruction
    episode/stop   SetBool   data=true: success, false: failure; commits the episode
    episode/abort  Trigger   commits it with outcome "abort" (kept: nothing recorded is lost)

The critic's live values are kept per step and, once the episode is committed, stored as
``rewards/live.critic_progress`` and ``rewards/live.critic_done`` (steps before the first value
repeat the first one; ``attrs.steps_without_value`` says how many). They are monitoring values:
training rewards come from relabelling, tagged with the critic's id.

Camera latency: each camera's calibrated delay behind the joint states (``dojo calibrate
latency``, from its calibration file or ``recorder.calibration_dir``) is taken off its frames'
stamps before they are matched (``episodes.align``).

``recorder/status`` (JSON) reports the state, the instruction it would record against, the
episode, steps written and dropped, and per camera the misaligned and missing frames and any
clock skew between streams. It is published at 2 Hz and at once when the instruction changes:
a caller that just reset the scene waits for its new instruction there before
``episode/start``, since a service reply and a latched topic can arrive in either order.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from dojo import conf
from dojo.nodes.base import node_config, ros_time, spin_node
from dojo.ros import convert, topics
from episodes.align import AlignConfig, StepAligner
from episodes.store import EpisodeStore, ImageCodec, StoreConfig, StoreError

_COMMIT = object()
COMMIT_WAIT_S = 120.0


def camera_latencies(cfg, cameras: list[str]) -> dict[str, float]:
    """Each camera's calibrated latency behind the joint states (s), from its calibration
    file: a camera device's ``calibration`` key, else ``<recorder.calibration_dir>/<name>.yaml``
    (what ``dojo calibrate latency`` writes). A camera with neither has none."""
    from calibration.camera_file import camera_path, image_latency

    devices = {d["name"]: d.get("calibration") or "" for d in conf.camera_devices(cfg)}
    out = {}
    for camera in cameras:
        path = devices.get(camera) or ""
        if not path and cfg.recorder.calibration_dir:
            path = str(camera_path(cfg.recorder.calibration_dir, camera))
        value = image_latency(path) if path else None
        if value is not None:
            out[camera] = value
    return out


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        cfg = node_config(self)
        if not cfg.store:
            raise conf.ConfigError("recorder: 'store' is not set (e.g. store=demos.zarr)")
        self._cfg = cfg
        self._spec = conf.robot_spec(cfg)
        rec = cfg.recorder
        codecs = {
            cam.name: ImageCodec(
                kind=str(rec.camera_codecs.get(cam.name, rec.codec)), quality=int(rec.jpeg_quality)
            )
            for cam in self._spec.cameras
        }
        self._store = EpisodeStore.open_or_create(
            str(cfg.store),
            self._spec,
            fps=float(rec.fps),
            config=StoreConfig(
                min_free_bytes=int(rec.min_free_gb * (1 << 30)), image_codecs=codecs
            ),
        )
        self._align_config = AlignConfig(
            fps=float(rec.fps),
            image_tolerance=float(rec.image_tolerance),
            max_latency=float(rec.max_latency),
            skew_threshold=float(rec.skew_threshold),
            camera_latency=camera_latencies(cfg, [c.name for c in self._spec.cameras]),
        )
        if self._align_config.camera_latency:
            self.get_logger().info(f"camera latency (s): {self._align_config.camera_latency}")
        self._cameras = {c.name: (c.height, c.width, c.fps) for c in self._spec.cameras}
        self._lock = threading.Lock()
        self._aligner: StepAligner | None = None
        self._writer = None
        self._queue: queue.Queue = queue.Queue(maxsize=max(8, int(rec.fps * rec.queue_seconds)))
        self._instruction = ""
        self._episode = ""
        self._written = 0
        self._dropped = 0
        self._error = ""
        self._committed: list[str] = []
        self._done = threading.Event()
        self._result: dict = {}
        self._critic = {"progress": math.nan, "done": math.nan}  # latest live values
        self._live: dict[str, list[float]] = {"progress": [], "done": []}
        # One executor thread for everything (see dojo.nodes.base.spin_node): a stop blocks the
        # stream callbacks only while the writer commits, after the episode's last step.
        topics.TASK_INSTRUCTION.subscription(self, self._on_instruction)
        topics.JOINT_STATES.subscription(self, self._on_joint_state)
        topics.DRIVER_COMMAND.subscription(self, self._on_command)
        # best effort accepts any critic publisher, reliable or not
        topics.CRITIC_PROGRESS.subscription(
            self, lambda m: self._critic.__setitem__("progress", float(m.data))
        )
        topics.CRITIC_DONE.subscription(
            self, lambda m: self._critic.__setitem__("done", float(m.data))
        )
        for cam in self._cameras:
            topics.camera_image(cam).subscription(
                self, lambda msg, cam=cam: self._on_image(cam, msg)
            )
        topics.EPISODE_START.server(self, self._on_start)
        topics.EPISODE_STOP.server(self, self._on_stop)
        topics.EPISODE_ABORT.server(self, self._on_abort)
        self._status = topics.RECORDER_STATUS.publisher(self)
        self.create_timer(0.5, self._publish_status)
        threading.Thread(target=self._write_loop, name="episode-writer", daemon=True).start()
        self.get_logger().info(
            f"recording to {cfg.store} at {rec.fps:g} steps/s "
            f"({len(self._store.episode_ids())} episodes there)"
        )

    # -- streams ------------------------------------------------------------------------------

    def _on_instruction(self, msg: String) -> None:
        changed = msg.data != self._instruction
        self._instruction = msg.data
        if changed:
            self._publish_status()

    def _on_joint_state(self, msg: JointState) -> None:
        with self._lock:
            if self._aligner is not None:
                s = convert.joint_state_from_msg(msg, self._spec.joint_names)
                self._aligner.add_joint_state(s.stamp, s.position, s.velocity)

    def _on_command(self, msg: JointState) -> None:
        with self._lock:
            if self._aligner is not None:
                stamp, command, source = convert.command_from_msg(msg, self._spec.joint_names)
                self._enqueue(self._aligner.add_command(stamp, command, source))

    def _on_image(self, cam: str, msg: Image) -> None:
        with self._lock:
            if self._aligner is not None:
                image, stamp = convert.image_from_msg(msg)
                self._enqueue(self._aligner.add_frame(cam, stamp, image))

    def _enqueue(self, steps) -> None:
        for step in steps:
            try:
                self._queue.put_nowait((step, self._critic["progress"], self._critic["done"]))
            except queue.Full:
                self._dropped += 1

    # -- the writer thread --------------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, tuple) and item and item[0] is _COMMIT:
                self._finish(*item[1:])
                continue
            if self._writer is None:
                continue  # the episode already failed; its remaining steps are discarded
            item, progress, done = item
            try:
                self._writer.append(
                    item.t,
                    item.joint_pos,
                    item.joint_vel,
                    item.action,
                    int(item.control_source),
                    item.images,
                )
                self._written += 1
                self._live["progress"].append(progress)
                self._live["done"].append(done)
            except Exception as err:  # out of space, a dead disk: abort this one, keep the rest
                self._error = f"episode {self._episode} aborted while writing: {err}"
                self.get_logger().error(self._error)
                try:
                    self._writer.abort(str(err))
                finally:
                    self._writer = None

    def _finish(self, outcome: str, success: bool) -> None:
        result: dict = {"episode": self._episode}
        try:
            if self._writer is None:
                result["error"] = self._error or "nothing to commit"
            else:
                t0 = time.monotonic()
                self._writer.commit(outcome, success)
                result["commit_s"] = round(time.monotonic() - t0, 4)
                self._committed.append(self._episode)
                self._store_live_critic(result)
        except StoreError as err:
            result["error"] = f"commit failed: {err}"
            self.get_logger().error(result["error"])
        finally:
            self._writer = None
            self._result = result
            self._done.set()

    def _store_live_critic(self, result: dict) -> None:
        for name, values in self._live.items():
            arr = np.asarray(values, dtype=np.float64)
            finite = np.isfinite(arr)
            if not finite.any():
                continue
            first = int(np.argmax(finite))
            filled = arr.copy()
            filled[:first] = arr[first]
            for i in range(first + 1, len(filled)):  # hold the last value over gaps
                if not np.isfinite(filled[i]):
                    filled[i] = filled[i - 1]
            try:
                self._store.write_rewards(
                    self._episode,
                    f"live.critic_{name}",
                    filled,
                    {
                        "source": f"critic/{name} topic, latest value at each step",
                        "steps_without_value": int((~finite).sum()),
                    },
                )
                result[f"live_critic_{name}"] = True
            except StoreError as err:
                result[f"live_critic_{name}"] = f"not stored: {err}"

    # -- services -----------------------------------------------------------------------------

    def _on_start(self, request, response):
        if self._writer is not None:
            response.success = False
            response.message = f"already recording episode {self._episode}; stop it first"
            return response
        if not self._instruction:
            response.success = False
            response.message = "no task/instruction received yet; nothing to record against"
            return response
        now = ros_time(self)
        try:
            writer = self._store.begin(self._instruction, str(self._cfg.task.name), started_at=now)
        except StoreError as err:
            response.success, response.message = False, f"cannot start an episode: {err}"
            self.get_logger().error(response.message)
            return response
        with self._lock:
            self._writer = writer
            self._episode = writer.id
            self._written = 0
            self._dropped = 0
            self._error = ""
            self._live = {"progress": [], "done": []}
            self._aligner = StepAligner(self._cameras, self._spec.control_hz, self._align_config)
        response.success = True
        response.message = f"{self._episode}: {self._instruction}"
        self.get_logger().info(f"recording {response.message}")
        return response

    def _stop(self, outcome: str, success: bool) -> tuple[bool, str]:
        with self._lock:
            if self._aligner is None:
                return False, "no episode is being recorded (episode/stop without episode/start)"
            self._enqueue(self._aligner.flush())
            stats = self._aligner.stats.to_json()
            self._aligner = None
        self._done.clear()
        self._queue.put((_COMMIT, outcome, success))
        if not self._done.wait(timeout=COMMIT_WAIT_S):
            return False, f"episode {self._episode} was not committed within {COMMIT_WAIT_S} s"
        result = {
            **self._result,
            "outcome": outcome,
            "steps": self._written,
            "dropped": self._dropped,
            **stats,
        }
        ok = "error" not in result
        self.get_logger().info(f"episode {'committed' if ok else 'FAILED'}: {json.dumps(result)}")
        return ok, json.dumps(result)

    def _on_stop(self, request, response):
        outcome = "success" if request.data else "failure"
        response.success, response.message = self._stop(outcome, bool(request.data))
        return response

    def _on_abort(self, request, response):
        response.success, response.message = self._stop("abort", False)
        return response

    def _publish_status(self) -> None:
        with self._lock:
            stats = self._aligner.stats.to_json() if self._aligner is not None else {}
        status = {
            "recording": self._aligner is not None,
            "instruction": self._instruction,
            "episode": self._episode,
            "written": self._written,
            "dropped": self._dropped,
            "queued": self._queue.qsize(),
            "committed": len(self._committed),
            "error": self._error,
            **stats,
        }
        self._status.publish(String(data=json.dumps(status)))


def main() -> None:
    raise SystemExit(spin_node(RecorderNode))


if __name__ == "__main__":
    main()
