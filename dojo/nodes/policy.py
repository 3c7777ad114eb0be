"""``policy``: the VLA on the robot, inferring asynchronously (policy/async_runner.py).

    subscribes  joint_states, camera/<name>/image_raw (the cameras the policy needs),
                task/instruction, intervention/active, policy/checkpoint (std_msgs/String),
                driver/status (std_msgs/String, JSON), driver/plan (JointTrajectory; only
                with executor.blend=rtc)
    publishes   command/chunk (trajectory_msgs/JointTrajectory), policy/latency
                (std_msgs/Float32, seconds, one per chunk), policy/status (std_msgs/String, JSON)

Callbacks only store the latest data and tell the runner the time; inference runs on the
runner's thread and loading a new checkpoint on another, so no callback ever waits on the
model. Everything that can be wrong with the checkpoint (format, corrupt weights, another
robot's joints, a missing camera) is checked before the node subscribes to anything: the node
exits with the reason instead of sending a single chunk.

Two things come back from the driver. ``driver/status`` names a policy chunk it refused
(``last_refusal_stamp``): the runner re-plans at once instead of waiting for the end of a plan
that is not running. With ``executor.blend=rtc``, ``driver/plan`` is the executor's committed
plan: each inference continues it (the real-time-chunking prefix, ``committed`` in
:meth:`policy.base.ChunkPolicy.predict`), as the in-process rollout does.

``policy/checkpoint`` names a new checkpoint (the learner publishes it, transient-local): it is
loaded in the background and swapped in between two inferences; if it fails to load, the error
is logged and published on ``policy/status`` and the old weights keep running.
"""

from __future__ import annotations

import json
import threading

from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32, String
from trajectory_msgs.msg import JointTrajectory

from dojo import conf
from dojo.nodes.base import node_config, spin_node
from dojo.ros import convert, topics
from policy.async_runner import AsyncPolicyRunner
from policy.base import PolicyError
from policy.registry import load_policy
from robot.schema import Observation, SchemaError


class PolicyNode(Node):
    def __init__(self) -> None:
        super().__init__("policy")
        cfg = node_config(self)
        self._spec = conf.robot_spec(cfg)
        pcfg = cfg.policy
        import torch

        from policy.train import default_threads

        # beside the driver's control loop: never every core (OpenMP spins; see default_threads)
        torch.set_num_threads(int(pcfg.threads) or default_threads())

        def loader(path: str):
            return load_policy(
                pcfg.backend,
                path,
                joint_names=self._spec.joint_names,
                cameras=[c.name for c in self._spec.cameras],
                kind=pcfg.kind,
                device=pcfg.device,
                camera_map=dict(pcfg.camera_map),
                fps=float(pcfg.fps),
                tokenizer=str(pcfg.tokenizer),
            )

        policy = loader(pcfg.checkpoint)  # raises PolicyError naming the problem: node exits
        self._lock = threading.Lock()
        self._frames: dict[str, tuple] = {}
        self._cameras = list(policy.cameras)
        self._last_event = ""
        self._pub = topics.command_chunk(float(cfg.driver.command_deadline)).publisher(self)
        self._latency_pub = topics.POLICY_LATENCY.publisher(self)
        self._status_pub = topics.POLICY_STATUS.publisher(self)
        ecfg = conf.executor_config(cfg)
        rtc = ecfg.blend == "rtc"
        self._runner = AsyncPolicyRunner(
            policy,
            self._spec,
            replan_horizon=float(pcfg.replan_horizon),
            on_chunk=self._publish_chunk,
            on_event=self._on_event,
            loader=loader,
            rtc_prefix=ecfg.rtc_prefix if rtc else None,
        )
        self._runner.checkpoint = str(pcfg.checkpoint)
        self._runner.start()
        if pcfg.instruction:  # a real robot: no twin publishes task/instruction
            self._on_instruction(String(data=str(pcfg.instruction)))
        topics.TASK_INSTRUCTION.subscription(self, self._on_instruction)
        topics.INTERVENTION_ACTIVE.subscription(self, self._on_intervention)
        topics.POLICY_CHECKPOINT.subscription(self, self._on_checkpoint)
        topics.DRIVER_STATUS.subscription(self, self._on_driver_status)
        if rtc:
            topics.DRIVER_PLAN.subscription(self, self._on_plan)
        for cam in self._cameras:
            topics.camera_image(cam).subscription(
                self, lambda msg, cam=cam: self._on_image(cam, msg)
            )
        topics.JOINT_STATES.subscription(self, self._on_joint_state)
        self.create_timer(1.0, self._publish_status)
        self.get_logger().info(
            f"{policy.describe()}: {len(policy.joint_names)} joints, cameras {self._cameras}, "
            f"horizon {policy.horizon} x {policy.chunk_dt:.3f} s, "
            + (
                f"continuing the driver's plan (rtc_prefix {ecfg.rtc_prefix:g} s)"
                if rtc
                else f"blend={ecfg.blend}: no committed prefix"
            )
        )

    # -- callbacks: store and notify, nothing else ------------------------------------------------

    def _on_instruction(self, msg: String) -> None:
        check = getattr(self._runner.policy, "check_instruction", None)
        if check is not None:
            try:
                check(msg.data)
            except PolicyError as err:
                self._on_event("instruction_refused", str(err))
                self._runner.set_instruction("")
                return
        self._runner.set_instruction(msg.data)

    def _on_intervention(self, msg: Bool) -> None:
        self._runner.set_paused(bool(msg.data))

    def _on_checkpoint(self, msg: String) -> None:
        if msg.data and msg.data != self._runner.checkpoint:
            self.get_logger().info(f"loading checkpoint {msg.data} in the background")
            self._runner.swap(msg.data)

    def _on_plan(self, msg: JointTrajectory) -> None:
        try:
            plan = convert.plan_from_msg(msg, self._spec.joint_names)
        except SchemaError as err:
            self._on_event("bad_plan", f"{topics.DRIVER_PLAN.name}: {err}")
            return
        self._runner.set_plan(plan)

    def _on_driver_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
            stamp = status.get("last_refusal_stamp")
            policy = status.get("last_refusal_source") == "policy"
        except (ValueError, AttributeError):
            return  # not the driver's JSON: nothing to act on
        if policy and isinstance(stamp, int | float) and self._runner.chunk_refused(stamp):
            self._last_event = f"chunk_refused: {status.get('last_refusal', '')}"
            self.get_logger().warning(
                f"{self._last_event}; re-planning now", throttle_duration_sec=1.0
            )

    def _on_image(self, cam: str, msg: Image) -> None:
        try:
            image, stamp = convert.image_from_msg(msg)
        except SchemaError as err:
            self._on_event("bad_image", f"camera {cam}: {err}")
            return
        with self._lock:
            self._frames[cam] = (image, stamp)

    def _on_joint_state(self, msg: JointState) -> None:
        state = convert.joint_state_from_msg(msg, self._spec.joint_names)
        with self._lock:
            if len(self._frames) < len(self._cameras):
                return  # not every camera has sent a frame yet
            frames = dict(self._frames)
        obs = Observation(
            stamp=state.stamp,
            joint_pos=state.position,
            joint_vel=state.velocity,
            images={c: f[0] for c, f in frames.items()},
            image_stamps={c: f[1] for c, f in frames.items()},
        )
        self._runner.update_observation(obs)
        self._runner.tick(state.stamp)

    # -- from the runner's threads ----------------------------------------------------------------

    def _publish_chunk(self, chunk, latency: float) -> None:
        self._pub.publish(convert.chunk_to_msg(chunk))
        self._latency_pub.publish(Float32(data=float(latency)))

    def _on_event(self, kind: str, message: str) -> None:
        self._last_event = f"{kind}: {message}"
        if kind == "swapped":  # rclpy: one severity per logging call site
            self.get_logger().info(self._last_event)
        else:
            self.get_logger().error(self._last_event)
        self._publish_status()

    def _publish_status(self) -> None:
        status = {
            "checkpoint": self._runner.checkpoint,
            "last_event": self._last_event,
            **self._runner.stats.to_json(),
        }
        self._status_pub.publish(String(data=json.dumps(status)))

    def close(self) -> None:
        self._runner.close()


def main() -> None:
    raise SystemExit(spin_node(PolicyNode))


if __name__ == "__main__":
    main()
