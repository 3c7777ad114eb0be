"""``episode_runner``: runs episodes in the twin and reports them.

For each episode: ``sim/reset`` (a new seeded scene; the response carries the instruction),
then wait, in ROS time, until ``task/success`` or the task's ``max_duration``. It logs each
result as it happens, keeps a few camera frames per episode, and at the end writes
``<out>/episodes.json`` and ``<out>/contact_sheet.png``, then exits 0 so ``dojo run`` stops the
graph. ``duration > 0`` ends the run after that many ROS seconds even mid-episode.

With a ``store`` configured, each episode is recorded: ``episode/start`` after the reset,
``episode/stop`` with the outcome at its end (``episode/abort`` if the run is stopped mid-way).
Before ``episode/start`` it waits until ``recorder/status`` shows the reset's instruction: the
reset's reply and the latched ``task/instruction`` reach the recorder in either order, and an
episode must never be stored under the previous scene's instruction.

The episode logic runs on its own thread and only waits on events with timeouts; callbacks
just record what arrived.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, String
from std_srvs.srv import SetBool, Trigger

from dojo.nodes.base import (
    node_config,
    ros_time,
    run_to_the_end,
    spin_node,
    wait_for_services,
    wait_until,
)
from dojo.ros import convert, topics

FRAMES_PER_EPISODE = 5
SERVICE_WAIT_S = 30.0  # wall seconds to wait for the driver to come up
COMMAND_SOURCE_WAIT_S = 120.0  # wall seconds to wait for a policy to load its checkpoint
CLOCK_STALL_S = 30.0  # wall seconds without ROS time advancing before the run is declared stuck
RECORDER_INSTRUCTION_WAIT_S = 15.0  # wall seconds for the recorder to hear a reset's instruction


class EpisodeRunnerNode(Node):
    def __init__(self) -> None:
        super().__init__("episode_runner")
        cfg = node_config(self)
        self._cfg = cfg
        self._out = Path(cfg.out)
        self._out.mkdir(parents=True, exist_ok=True)
        self._cameras = [c.name for c in cfg.robot.cameras]
        self._success = threading.Event()
        self._frames: dict[str, deque] = {
            c: deque(maxlen=int(cfg.task.max_duration * 2) + 2) for c in self._cameras
        }
        self._last_frame_t: dict[str, float] = {c: -1.0 for c in self._cameras}
        self._recording = False
        self._results: list[dict] = []
        self.exit_code = 0
        self._chunks = topics.command_chunk(float(cfg.driver.command_deadline))
        self._reset = topics.SIM_RESET.client(self)
        self._record = bool(cfg.store)
        self._rec_start = topics.EPISODE_START.client(self)
        self._rec_stop = topics.EPISODE_STOP.client(self)
        self._rec_abort = topics.EPISODE_ABORT.client(self)
        self._recorder_instruction: str | None = None
        topics.TASK_SUCCESS.subscription(self, self._on_success)
        if self._record:
            topics.RECORDER_STATUS.subscription(self, self._on_recorder_status)
        for cam in self._cameras:
            topics.camera_image(cam).subscription(
                self, lambda msg, cam=cam: self._on_image(cam, msg)
            )
        run_to_the_end(self, self._run, self._write_outputs, "episode runner")

    # -- callbacks ----------------------------------------------------------------------------

    def _on_success(self, msg: Bool) -> None:
        if msg.data:
            self._success.set()

    def _on_recorder_status(self, msg: String) -> None:
        self._recorder_instruction = json.loads(msg.data).get("instruction")

    def _on_image(self, cam: str, msg: Image) -> None:
        stamp = convert.from_time(msg.header.stamp)
        if not self._recording or stamp - self._last_frame_t[cam] < 0.5:
            return  # 2 frames per second of ROS time are plenty for a contact sheet
        image, _ = convert.image_from_msg(msg)
        self._frames[cam].append((stamp, image))
        self._last_frame_t[cam] = stamp

    # -- the episodes -------------------------------------------------------------------------

    def _now(self) -> float:
        return ros_time(self)

    def _run(self) -> None:
        clients = [self._reset] + ([self._rec_start, self._rec_stop] if self._record else [])
        self.get_logger().info(f"waiting for {', '.join(c.srv_name for c in clients)}")
        wait_for_services(clients, SERVICE_WAIT_S)
        self._wait_for_command_source()
        n = int(self._cfg.episodes)
        max_duration = float(self._cfg.task.max_duration)
        run_end = float(self._cfg.duration) or float("inf")
        t_start_run = None
        for i in range(n):
            self._success.clear()
            response = self._call(self._reset, Trigger.Request())
            instruction = response.message
            self._success.clear()  # a success latched from the previous scene does not count
            for frames in self._frames.values():
                frames.clear()
            self._last_frame_t = {c: -1.0 for c in self._cameras}
            t0 = self._wait_for_time_after(0.0)
            t_start_run = t0 if t_start_run is None else t_start_run
            recorded = ""
            if self._record:
                self._wait_for_recorder_instruction(instruction)
                recorded = self._call(self._rec_start, Trigger.Request()).message
            self._recording = True
            outcome = "timeout"
            last_now, last_progress = t0, time.monotonic()
            while rclpy.ok():
                if self._success.wait(timeout=0.05):
                    outcome = "success"
                    break
                now = self._now()
                if now > last_now:
                    last_now, last_progress = now, time.monotonic()
                elif time.monotonic() - last_progress > CLOCK_STALL_S:
                    raise RuntimeError(
                        f"ROS time stuck at {now:.3f} s for {CLOCK_STALL_S:.0f} s of wall time: "
                        "is robot_driver alive?"
                    )
                if now - t0 >= max_duration:
                    break
                if now - t_start_run >= run_end:
                    outcome = "stopped"
                    break
            else:  # shut down from outside (Ctrl-C, ros2 launch stopping): not a timeout
                outcome = "stopped"
            self._recording = False
            elapsed = self._now() - t0
            if self._record:
                if outcome == "stopped":
                    recorded = self._call(self._rec_abort, Trigger.Request()).message
                else:
                    request = SetBool.Request(data=outcome == "success")
                    recorded = self._call(self._rec_stop, request).message
            result = {
                "episode": i + 1,
                "instruction": instruction,
                "success": outcome == "success",
                "outcome": outcome,
                "duration_s": round(elapsed, 3),
                "frames": self._take_frames(t0),
            }
            if recorded:
                result["recorded"] = json.loads(recorded) if recorded.startswith("{") else recorded
            self._results.append(result)
            self.get_logger().info(
                f"episode {i + 1}/{n}: '{instruction}': "
                f"{'SUCCESS' if result['success'] else outcome.upper()} in {elapsed:.1f} s"
            )
            if outcome == "stopped":
                break
        done = sum(r["success"] for r in self._results)
        self.get_logger().info(f"done: {done}/{len(self._results)} episodes succeeded")

    def _wait_for_command_source(self) -> None:
        """Start the first episode only once something publishes chunks: a policy node creates
        its publisher after its checkpoint loaded, so no episode runs out while it loads."""
        wait_until(
            lambda: self.count_publishers(self._chunks.name) > 0,
            COMMAND_SOURCE_WAIT_S,
            lambda: (
                f"nothing publishes {self._chunks.name} after {COMMAND_SOURCE_WAIT_S:.0f} s "
                "(no policy or scripted operator came up)"
            ),
            poll_s=0.05,
        )

    def _wait_for_recorder_instruction(self, instruction: str) -> None:
        wait_until(
            lambda: self._recorder_instruction == instruction,
            RECORDER_INSTRUCTION_WAIT_S,
            lambda: (
                f"the recorder still has instruction {self._recorder_instruction!r} "
                f"{RECORDER_INSTRUCTION_WAIT_S:.0f} s after the reset said {instruction!r}"
            ),
        )

    def _call(self, client, request, timeout: float = 60.0):
        """Call a service from this thread, bounded; a refusal is an error naming the service."""
        future = client.call_async(request)
        wait_until(
            future.done, timeout, lambda: f"{client.srv_name} did not answer within {timeout:.0f} s"
        )
        response = future.result()
        if not response.success:
            raise RuntimeError(f"{client.srv_name} refused: {response.message}")
        return response

    def _wait_for_time_after(self, t: float) -> float:
        end = time.monotonic() + SERVICE_WAIT_S
        while (now := self._now()) <= t:
            if time.monotonic() > end:
                raise RuntimeError("no /clock received: is the twin running?")
            time.sleep(0.01)
        return now

    def _take_frames(self, t0: float) -> dict[str, list]:
        """A few evenly spaced frames per camera, stamped in seconds since the episode began."""
        picked: dict[str, list] = {}
        for cam, frames in self._frames.items():
            if not frames:
                continue
            idx = np.unique(np.linspace(0, len(frames) - 1, FRAMES_PER_EPISODE).round().astype(int))
            picked[cam] = [(frames[i][0] - t0, frames[i][1]) for i in idx]
        return picked

    # -- outputs ------------------------------------------------------------------------------

    def _write_outputs(self) -> None:
        summary = [{k: v for k, v in r.items() if k != "frames"} for r in self._results]
        n_ok = sum(r["success"] for r in summary)
        (self._out / "episodes.json").write_text(
            json.dumps({"episodes": summary, "succeeded": n_ok, "total": len(summary)}, indent=2)
            + "\n"
        )
        if self._results:
            from dojo.report import contact_sheet

            path = contact_sheet(self._results, self._out / "contact_sheet.png")
            self.get_logger().info(f"wrote {self._out / 'episodes.json'} and {path}")


def main() -> None:
    raise SystemExit(spin_node(EpisodeRunnerNode))


if __name__ == "__main__":
    main()
