"""``learner``: follows the store, trains the practice learner, announces its checkpoints.

Publishes ``policy/checkpoint`` (std_msgs/String, transient-local: a policy node that starts
later still hears the latest) and ``learner/status`` (JSON: updates, buffer sizes, reward
source, rewards excluded, last checkpoint) once a second. Subscribes to nothing: it reads the
episode store (``store=``, a local path or an fsspec URL), so it may run on another machine and
several robots (namespaces) may feed it through one store.

Everything heavy runs on a worker thread of its own (polling the store, the critic's
relabelling, updates, writing checkpoints), never in a callback. A checkpoint is announced only
after it is complete on disk (:meth:`policy.learner.learner.Learner.save`: written under a
temporary name, renamed, then ``latest.json`` replaced), at most once per
``practice.announce_s``; a learner killed at any moment therefore never announces a partial
one, and the policy keeps driving with its last weights. Restarted with the same ``out=``, it
resumes from its own ``latest.json`` and re-reads the store. Unlike the in-process benchmark
(credit of ``learner.utd`` updates per new transition), the node trains continuously once its
buffers hold ``learner.warmup_transitions``, as HIL-SERL's learner does; ``learner.actor=distil``
(:mod:`policy.learner.distil`) trains on the credit of new episodes in both, and its checkpoints
are plain compact VLA checkpoints.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from rclpy.node import Node
from std_msgs.msg import String

from dojo import conf
from dojo.nodes.base import node_config, spin_node
from dojo.ros import topics

TRAIN_SLICE = 25  # updates between two looks at the store and the clock


def build_learner(cfg, out: Path):
    """The learner of this config: its frozen base, critic and store rate."""
    from episodes.store import EpisodeStore
    from policy.learner.learner import make_learner
    from policy.registry import load_policy

    lcfg = conf.section(cfg, "learner")
    spec = conf.robot_spec(cfg)
    pcfg = cfg.policy
    if not pcfg.checkpoint:
        raise conf.ConfigError("learner: 'policy.checkpoint' (the base to practise) is not set")
    if not cfg.store:
        raise conf.ConfigError("learner: 'store' (the episodes to learn from) is not set")
    policy = load_policy(
        pcfg.backend, str(pcfg.checkpoint), joint_names=spec.joint_names,
        cameras=[c.name for c in spec.cameras], kind=pcfg.kind, device=pcfg.device,
        camera_map=dict(pcfg.camera_map),
    )  # fmt: skip
    critic = None
    if str(lcfg.reward) == "critic":
        from dojo.nodes.critic import load_configured_critic

        if not cfg.critic.checkpoint:
            raise conf.ConfigError("learner.reward=critic needs 'critic.checkpoint'")
        critic = load_configured_critic(cfg.critic)
    store = EpisodeStore.open(str(cfg.store))
    if tuple(store.joint_names) != tuple(spec.joint_names):
        raise conf.ConfigError(
            f"store {cfg.store} records joints {list(store.joint_names)}; robot '{spec.name}' "
            f"has {list(spec.joint_names)}"
        )
    if critic is not None:  # the critic scores the store's frames: its cameras must be there
        from critic.base import CriticError
        from critic.evaluate import check_store_cameras

        try:
            check_store_cameras(store, critic)
        except CriticError as err:
            raise conf.ConfigError(f"critic.checkpoint: {err}") from None
    source = (str(pcfg.backend), str(Path(str(pcfg.checkpoint)).resolve()), str(pcfg.kind))
    return make_learner(policy, lcfg, fps=store.fps, base_source=source, critic=critic,
                        out=out)  # fmt: skip


class LearnerNode(Node):
    def __init__(self) -> None:
        super().__init__("learner")
        cfg = node_config(self)
        import torch

        from policy.learner.replay import StoreFollower
        from policy.train import default_threads

        torch.set_num_threads(default_threads())
        self.out = Path(str(cfg.out)) / "learner"
        self.learner = build_learner(cfg, self.out)
        self.follower = StoreFollower(str(cfg.store))
        self.poll_s = float(cfg.practice.poll_s)
        self.announce_s = float(cfg.practice.announce_s)
        self.pub_checkpoint = topics.POLICY_CHECKPOINT.publisher(self)
        self.pub_status = topics.LEARNER_STATUS.publisher(self)
        self.error = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        if self.learner.status.checkpoint:  # resumed: the actor may start on our last weights
            self._announce(self.learner.status.checkpoint)
        self.create_timer(1.0, self._publish_status)
        self._worker = threading.Thread(target=self._work, name="learner", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"learning from {cfg.store} ({self.learner.config.reward} reward, "
            f"{self.learner.config.actor} actor) into {self.out}"
        )

    def _announce(self, path: str) -> None:
        self.pub_checkpoint.publish(String(data=str(path)))
        self.get_logger().info(f"announced {path}")

    def _work(self) -> None:
        last_poll = last_announce = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last_poll >= self.poll_s:
                last_poll = now
                try:
                    with self._lock:
                        reports = self.learner.follow(self.follower)
                    for r in reports:
                        self.get_logger().info(
                            f"episode {r.episode_id}: {r.transitions} transitions "
                            f"({r.prior} prior, {r.online} online, {r.rewards.excluded} excluded)"
                        )
                except Exception as err:  # a bad episode is reported, the learner carries on
                    self.error = f"reading the store: {err}"
                    self.get_logger().error(self.error, throttle_duration_sec=10.0)
            if not self.learner.ready:
                self._stop.wait(0.2)
                continue
            with self._lock:
                trained = self.learner.train(TRAIN_SLICE if self.learner.continuous else None)
                due = self.learner.checkpoint_due() and now - last_announce >= self.announce_s
                path = str(self.learner.save()) if due else ""
            if not trained and not path:  # nothing to do until more episodes commit
                self._stop.wait(0.2)
            if path and not self._stop.is_set():
                last_announce = now
                self._announce(path)

    def _publish_status(self) -> None:
        status = self.learner.status.to_json()
        status["error"] = self.error
        self.pub_status.publish(String(data=json.dumps(status)))
        (self.out / "status.json").parent.mkdir(parents=True, exist_ok=True)
        (self.out / "status.json").write_text(json.dumps(status))

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=10.0)


def main() -> None:
    raise SystemExit(spin_node(LearnerNode))


if __name__ == "__main__":
    main()
