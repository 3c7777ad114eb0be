"""Practice in process: the twin, the practised policy, the scripted person and the learner in
one loop, in sim time (``bench/practice.py``, tests). ``dojo practice`` runs the same learner
through the ROS 2 graph instead; both go through the store, so both build the same transitions
from the same episodes (:func:`policy.learner.replay.episode_transitions`).

**The graded human-in-the-loop protocol** (VLAC's three stages; ``HilConfig``, ``mode=graded``):

1. *offline demonstration replay*: the demonstrations seed the prior buffer and are replayed by
   the learner from its first update (every learning arm does this; it is RLPD's prior data);
2. *return and explore*: after a failed episode, while ``episode < return_until``, the next
   episode starts with the person bringing the arm along a successful demonstration up to a
   phase of the task drawn from ``return_phases`` (in the twin: the scripted operator drives
   from the reset), then hands over and the policy explores from there;
3. *human-guided exploration*: from ``guided_from``, the person takes over when the arm stalls
   or the task regresses (:class:`teleop.arbitration.StallMonitor`, the intervention node's
   rule), guides it ``guide_phases`` phases further, and hands back; at most ``max_takeovers``
   per episode.

Everything the person drives is recorded as ``HUMAN`` and goes into both buffers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from policy.learner.config import HilConfig
from robot.schema import ActionChunk, ControlSource, Observation
from teleop.arbitration import StallMonitor, bin_distance
from teleop.scripted import OperatorPhase, ScriptedOperator

PHASE_ORDER = [p for p in OperatorPhase]


class GuidedAgent:
    """The policy, with the (scripted) person taking over as the stage says."""

    def __init__(self, policy, twin, operator: ScriptedOperator, hil: HilConfig) -> None:
        self.policy, self.twin, self.operator, self.hil = policy, twin, operator, hil
        self.chunk_dt = policy.chunk_dt
        self.input_size = getattr(policy, "input_size", None)
        self.monitor = StallMonitor(hil.stall_s, hil.stall_rad, hil.regress_m, hil.grace_s)
        self.seed: int | None = None
        self.return_to: OperatorPhase | None = None  # stage 2 this episode: hand back here
        self.guided = False  # stage 3 this episode
        self.person = False
        self.takeovers = 0
        self._handback: int | None = None  # phase index at which the person hands back
        self.events: list[tuple[float, str]] = []

    def reset(self) -> None:
        self.policy.reset()
        self.operator.reset(self.twin.instruction, seed=self.seed)
        self.monitor.reset(self.twin.time)
        self.takeovers = 0
        self.events = []
        self.person = self.return_to is not None
        self._handback = PHASE_ORDER.index(self.return_to) if self.person else None

    def _phase(self) -> int:
        return PHASE_ORDER.index(self.operator.phase)

    def on_tick(self) -> None:
        """Watch the policy at the control rate, as the intervention node does."""
        if not self.guided or self.person:
            return
        state = self.twin.arm.read()
        self.monitor.source(state.stamp, ControlSource.POLICY)
        reason = self.monitor.update(state.stamp, state.position, self._goal_distance())
        if reason and self.takeovers < self.hil.max_takeovers:
            self.person = True
            self.takeovers += 1
            self._handback = None  # set once the operator has caught up with the scene
            self.events.append((state.stamp, f"takeover: {reason}"))

    def _goal_distance(self) -> float | None:
        goal = self.operator.goal
        return None if goal is None else bin_distance(goal.target, self.twin.objects())

    def predict(self, obs: Observation, instruction: str, committed=None) -> ActionChunk:
        if self.person:
            chunk = self.operator.act(
                obs.stamp, obs.joint_pos, self.twin.objects(), self.twin.arm.commanded
            )
            if self._handback is None:
                self._handback = self._phase() + self.hil.guide_phases
            if self._phase() >= self._handback or self.operator.done:
                self.person = False
                self.monitor.reset(obs.stamp)
                self.events.append((obs.stamp, "handback"))
            return ActionChunk(
                chunk.stamp, chunk.joint_names, chunk.positions, chunk.times, ControlSource.HUMAN
            )
        if committed is not None:
            return self.policy.predict(obs, instruction, committed)
        return self.policy.predict(obs, instruction)


@dataclass
class EpisodeEntry:
    """One practice episode, as ``practice.json`` lists it."""

    index: int
    seed: int
    instruction: str
    success: bool
    steps: int
    human_steps: int
    stage: str
    checkpoint: int  # learner updates of the weights that drove it
    episode_id: str
    seconds: float
    takeovers: int = 0


class PracticeLoop:
    """Roll out, record, learn, repeat. ``learner``: a :class:`policy.learner.learner.Learner`
    whose store is ``store_url``; ``policy``: the :class:`PracticedPolicy` sharing its nets."""

    def __init__(
        self,
        twin,
        learner,
        policy,
        store_url: str,
        *,
        scripted_config,
        hil: HilConfig | None = None,
        rollout_config=None,
    ) -> None:
        from episodes.store import EpisodeStore, StoreConfig
        from policy.learner.replay import StoreFollower
        from policy.rollout import RolloutConfig, TwinRollout

        self.twin, self.learner, self.policy = twin, learner, policy
        self.hil = hil or HilConfig()
        self.store = EpisodeStore.open_or_create(
            store_url, twin.spec, learner.fps, StoreConfig(durable=False)
        )
        self.follower = StoreFollower(store_url, seen=self.store.episode_ids())
        h = learner.config.chunk_steps
        replan = (policy.horizon - h) * policy.chunk_dt + 1e-6
        self.rollout = TwinRollout(
            twin, rollout_config or RolloutConfig(replan_horizon=replan, record_fps=learner.fps)
        )
        self.operator = ScriptedOperator(twin.spec, scripted_config)
        self.agent = GuidedAgent(policy, twin, self.operator, self.hil)
        self.entries: list[EpisodeEntry] = []
        self._rng = np.random.default_rng(learner.config.seed + 1)
        self._last_failed = False

    def _stage(self, index: int) -> str:
        hil = self.hil
        if hil.mode != "graded":
            return "autonomous"
        if self._last_failed and index < hil.return_until:
            return "return"
        return "guided" if index >= hil.guided_from else "autonomous"

    def episode(self, index: int, seed: int) -> EpisodeEntry:
        stage = self._stage(index)
        agent = self.agent
        agent.seed = seed
        agent.return_to = (
            OperatorPhase(self._rng.choice(self.hil.return_phases)) if stage == "return" else None
        )
        agent.guided = (
            stage in ("guided", "return")
            and self.hil.mode == "graded"
            and (index >= self.hil.guided_from)
        )
        instruction = self.twin.task.sample(seed).instruction
        checkpoint = self.learner.status.updates
        self.policy.explore = True
        t0 = time.monotonic()
        writer = self.store.begin(
            instruction, self.twin.task_config.name, started_at=self.twin.time
        )
        try:
            result = self.rollout.run(agent, seed=seed, writer=writer, on_tick=agent.on_tick)
        except BaseException as err:
            writer.abort(f"practice episode failed: {err}")
            raise
        writer.commit("success" if result.success else "failure", result.success)
        self._last_failed = not result.success
        reports = self.learner.follow(self.follower)
        self.learner.train()
        report = reports[-1] if reports else None  # the episode just committed
        entry = EpisodeEntry(
            index=index,
            seed=seed,
            instruction=instruction,
            success=bool(result.success),
            steps=report.steps if report else 0,
            human_steps=report.human_steps if report else 0,
            stage=stage,
            checkpoint=checkpoint,
            episode_id=report.episode_id if report else "",
            seconds=time.monotonic() - t0,
            takeovers=agent.takeovers,
        )
        self.entries.append(entry)
        return entry

    def run(self, seeds: Sequence[int], on_episode: Callable[[EpisodeEntry], None] | None = None):
        for _i, seed in enumerate(seeds):
            entry = self.episode(len(self.entries), int(seed))
            if on_episode is not None:
                on_episode(entry)
        return self.entries


def evaluate(twin, policy, seeds: Sequence[int], rollout_config=None) -> list[bool]:
    """Success per held-out scene, the policy acting on its mean (no exploration, no person)."""
    from policy.rollout import RolloutConfig, TwinRollout

    rollout = TwinRollout(twin, rollout_config or RolloutConfig())
    explore = getattr(policy, "explore", None)
    if explore is not None:
        policy.explore = False
    try:
        return [bool(rollout.run(policy, seed=int(s)).success) for s in seeds]
    finally:
        if explore is not None:
            policy.explore = explore
