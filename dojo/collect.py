"""``dojo collect``: scripted demonstrations written straight to a store, in process.

``dojo record`` is the real path (the ROS graph, the recorder node, a person or the scripted
operator); this is the fast one for training data: the same twin, the same scripted operator,
the same control path (executor and safety), and the same store format, ticked in lockstep with
no ROS in between, so rendering the recorded frames is most of the cost.

    dojo collect store=demos.zarr episodes=50 [teleop.scripted.failure_rate=0.3] [seed=100]

Episode ``k`` uses seed ``seed + k``: disjoint seed ranges give disjoint train and test scenes.
Each episode is committed with the ground-truth outcome; a crash loses at most the one being
written (``dojo episodes repair`` removes it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from episodes.store import EpisodeStore, StoreConfig
from policy.rollout import RolloutConfig, TwinRollout
from policy.schedule import progress_bar
from robot.executor import ExecutorConfig
from robot.schema import ActionChunk, Observation
from robot.sim.config import TwinConfig
from robot.sim.twin import Twin
from teleop.scripted import ScriptedOperator
from teleop.scripted_config import ScriptedConfig


class ScriptedAgent:
    """The scripted operator as a chunk agent. It sees the twin's ground truth (object poses),
    which is why it only exists in simulation."""

    def __init__(self, twin: Twin, config: ScriptedConfig) -> None:
        self.twin = twin
        self.operator = ScriptedOperator(twin.spec, config)
        self.seed: int | None = None
        self.chunk_dt = config.chunk_dt or twin.spec.control_period

    def reset(self) -> None:
        self.operator.reset(self.twin.instruction, seed=self.seed)

    def predict(self, obs: Observation, instruction: str, committed=None) -> ActionChunk:
        return self.operator.act(
            obs.stamp, obs.joint_pos, self.twin.objects(), self.twin.arm.commanded
        )

    @property
    def done(self) -> bool:
        return self.operator.done


@dataclass
class CollectSummary:
    episodes: int
    succeeded: int
    seconds: float
    sim_seconds: float


def collect(
    store_url: str,
    twin: Twin,
    scripted: ScriptedConfig,
    *,
    episodes: int,
    seed: int,
    fps: float = 10.0,
    progress: bool = True,
) -> CollectSummary:
    """Record ``episodes`` scripted episodes (seeds ``seed ..``) into ``store_url``."""
    store = EpisodeStore.open_or_create(store_url, twin.spec, fps, StoreConfig(durable=False))
    agent = ScriptedAgent(twin, scripted)
    half_chunk = scripted.horizon * (scripted.chunk_dt or twin.spec.control_period) / 2
    rollout = TwinRollout(
        twin,
        RolloutConfig(executor=ExecutorConfig(), replan_horizon=half_chunk, record_fps=fps),
    )
    t0 = time.monotonic()
    succeeded = 0
    sim = 0.0
    bar = progress_bar(episodes, store_url, "episode") if progress else None
    for k in range(episodes):
        agent.seed = seed + k
        instruction = twin.task.sample(seed + k).instruction  # what the reset will draw
        writer = store.begin(instruction, twin.task_config.name, started_at=twin.time)
        try:
            result = rollout.run(
                agent, seed=seed + k, writer=writer, done=lambda: agent.done, observe_cameras=[]
            )
        except BaseException as err:
            writer.abort(f"collection failed: {err}")
            raise
        writer.commit("success" if result.success else "failure", result.success)
        succeeded += int(result.success)
        sim += result.duration
        if bar is not None:
            bar.update(1)
            bar.set_postfix(succeeded=succeeded, refresh=False)
    if bar is not None:
        bar.close()
    return CollectSummary(episodes, succeeded, time.monotonic() - t0, sim)


def recorded(store_url: str) -> tuple[int, int]:
    """``(successful, all)`` episodes committed in ``store_url`` (``(0, 0)`` where none is)."""
    if not Path(store_url).exists():
        return 0, 0
    store = EpisodeStore.open(store_url)
    ids = store.episode_ids()
    return sum(bool(store.info(e).get("success")) for e in ids), len(ids)


def collect_successful(
    store_url: str,
    twin: Twin,
    scripted: ScriptedConfig,
    *,
    successful: int,
    rounds: int = 3,
    fps: float = 10.0,
    progress: bool = True,
) -> tuple[int, int]:
    """Top ``store_url`` up until it holds ``successful`` successful episodes, recording the
    missing count from the next unused seed, at most ``rounds`` times: the configured
    operator's wobble (``teleop.scripted.noise_std``) fails a few episodes, and a store
    recorded earlier is reused as far as it goes. Returns :func:`recorded` after it."""
    have, seen = recorded(store_url)
    for _ in range(rounds):
        if have >= successful:
            break
        collect(
            store_url,
            twin,
            scripted,
            episodes=successful - have,
            seed=seen,
            fps=fps,
            progress=progress,
        )
        have, seen = recorded(store_url)
    return have, seen


def make_twin(spec, task, sim: TwinConfig | None = None) -> Twin:
    """The in-process twin of ``spec`` (its model, its twin description) doing ``task``;
    ``sim``: the config's ``sim`` section (``conf.twin_config(cfg)``; None: the defaults)."""
    return Twin(spec, sim or TwinConfig(), task)
