"""``critic``: live ``critic/progress`` (Float32) and ``critic/done`` (Bool) from the cameras.

Subscribes to the critic's cameras (``camera/<name>/image_raw``) and ``task/instruction`` (a
new instruction starts a new episode's progress). A timer at ``critic.rate_hz`` hands the
latest frames to a worker thread of the node's own, so inference never blocks a callback; if
the previous inference is still running, that tick is skipped (counted), never queued. An
inference that fails or gives NaN publishes nothing, logs why (throttled), and is counted in
``critic/status`` (JSON), so silence on ``critic/progress`` always has a stated reason.
Training rewards do not come from here: they come from relabelling (``dojo critic relabel``).
"""

from __future__ import annotations

import json
import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float32, String

from dojo import conf
from dojo.nodes.base import node_config, spin_node
from dojo.ros import convert, topics


def load_configured_critic(cc):
    """The critic the ``critic`` config group names: ``backend`` picks the loader."""
    from critic.registry import load_critic

    return load_critic(
        str(cc.checkpoint),
        str(cc.backend),
        device=str(cc.device),
        cameras=list(cc.cameras),
        max_new_tokens=int(cc.max_new_tokens),
    )


class CriticNode(Node):
    def __init__(self) -> None:
        super().__init__("critic")
        cfg = node_config(self)
        cc = cfg.critic
        if not cc.checkpoint:
            raise conf.ConfigError("critic: 'critic.checkpoint' is not set")
        import torch

        from critic.live import LiveProgress
        from policy.train import default_threads

        # torch's default (every core) busy-waits in OpenMP beside the driver and the policy
        torch.set_num_threads(int(cc.threads) or default_threads())

        self.critic = load_configured_critic(cc)
        self.live = LiveProgress(self.critic, mode=cc.mode)
        self.threshold = float(cc.done_threshold)
        self._lock = threading.Lock()
        self._latest: dict[str, Image] = {}
        self._instruction: str | None = None
        self._new_instruction = False
        self._busy = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.counts = {"published": 0, "failed": 0, "nonfinite": 0, "skipped_busy": 0}
        self.last_error = ""
        self.pub_progress = topics.CRITIC_PROGRESS.publisher(self)
        self.pub_done = topics.CRITIC_DONE.publisher(self)
        self.pub_status = topics.CRITIC_STATUS.publisher(self)
        topics.TASK_INSTRUCTION.subscription(self, self._on_instruction)
        for cam in self.critic.cameras:
            topics.camera_image(cam).subscription(
                self, lambda msg, cam=cam: self._on_image(cam, msg)
            )
        self.create_timer(1.0 / float(cc.rate_hz), self._tick)
        self.create_timer(1.0, self._publish_status)
        self._worker = threading.Thread(target=self._work, name="critic-inference", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"critic {self.critic.critic_id} on cameras {list(self.critic.cameras)} at "
            f"{cc.rate_hz:g} Hz ({cc.mode})"
        )

    def _on_image(self, cam: str, msg: Image) -> None:
        with self._lock:
            self._latest[cam] = msg

    def _on_instruction(self, msg: String) -> None:
        with self._lock:
            self._instruction = str(msg.data)
            self._new_instruction = True

    def _tick(self) -> None:
        with self._lock:
            if self._busy:
                self.counts["skipped_busy"] += 1
                return
            if self._instruction is None or len(self._latest) < len(self.critic.cameras):
                return
            self._busy = True
        self._wake.set()

    def _work(self) -> None:
        while not self._stop.is_set():
            if not self._wake.wait(timeout=0.5):
                continue
            self._wake.clear()
            try:
                self._infer()
            finally:
                with self._lock:
                    self._busy = False

    def _infer(self) -> None:
        from critic.live import NonFiniteError

        with self._lock:
            msgs = dict(self._latest)
            instruction, renew = self._instruction, self._new_instruction
            self._new_instruction = False
        try:
            if renew:
                self.live.reset(instruction)
            images = {cam: np.array(convert.image_from_msg(m)[0]) for cam, m in msgs.items()}
            progress, done = self.live.update(images)
        except NonFiniteError as err:
            self.counts["nonfinite"] += 1
            self._report(f"NaN from the critic, nothing published: {err}")
            return
        except Exception as err:  # a failed inference publishes nothing and says why
            self.counts["failed"] += 1
            self._report(f"critic inference failed, nothing published: {err}")
            return
        if self._stop.is_set() or not self.context.ok():
            return  # shutting down: the publishers are going away with the context
        try:
            self.pub_progress.publish(Float32(data=float(progress)))
            self.pub_done.publish(Bool(data=bool(done >= self.threshold)))
        except Exception as err:  # the context was shut down between the check and the publish
            if self.context.ok():
                raise
            self.get_logger().debug(f"not published, shutting down: {err}")
            return
        self.counts["published"] += 1

    def _report(self, text: str) -> None:
        self.last_error = text
        self.get_logger().warning(text, throttle_duration_sec=5.0)

    def _publish_status(self) -> None:
        status = {
            "critic_id": self.critic.critic_id,
            "progress": self.live.value,
            **self.counts,
            "last_error": self.last_error,
        }
        self.pub_status.publish(String(data=json.dumps(status)))

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._worker.join(timeout=5.0)


def main() -> None:
    raise SystemExit(spin_node(CriticNode))


if __name__ == "__main__":
    main()
