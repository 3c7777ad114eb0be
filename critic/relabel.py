"""Relabelling: the critic's rewards for every episode of a store (``dojo critic relabel``).

Per episode three arrays are written under ``rewards/``, tagged with the critic's id (derived
from its weights, so the same critic always writes the same arrays):

    rewards/<critic_id>           the reward of each step (``delta`` or ``shaping``)
    rewards/<critic_id>.progress  the accumulated progress value
    rewards/<critic_id>.done      the done probability of each frame (where the critic has one)

with attributes naming the critic, its version, the reward mode, gamma and the progress mode.
The reward array is written last: an episode that has it is finished, so an interrupted run
resumes where it stopped (a half-written episode is simply redone). Frames go through the
critic in batches, one episode at a time, so memory stays at one episode's frames.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

import numpy as np

from critic.base import CriticError, ProgressCritic
from critic.config import ProgressMode
from critic.evaluate import check_store_cameras, episode_frames
from critic.value import REWARD_MODES, rewards_from_deltas
from policy.schedule import progress_bar

# reward modes of critic.value, as an enum so a config names a bad one (hydra: by name)
RewardMode = enum.StrEnum("RewardMode", [(m, m) for m in REWARD_MODES])


@dataclass
class RelabelConfig:
    """``dojo critic relabel``: ``reward`` per step from the critic's deltas (``delta``, or
    potential-based ``shaping`` with ``gamma``); ``overwrite`` rewards already written by this
    critic; ``limit`` episodes (0: all)."""

    reward: RewardMode = RewardMode.delta
    gamma: float = 0.99
    mode: ProgressMode = ProgressMode.chain
    overwrite: bool = False
    limit: int = 0

    def validate(self) -> None:
        if self.reward not in REWARD_MODES:
            raise CriticError(f"relabel: reward={self.reward!r} is not one of {REWARD_MODES}")
        if not 0.0 < self.gamma <= 1.0:
            raise CriticError(f"relabel: gamma={self.gamma} must be in (0, 1]")


@dataclass
class RelabelSummary:
    critic_id: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"critic {self.critic_id}: {len(self.written)} episode(s) relabelled, "
            f"{len(self.skipped)} already done, in {self.seconds:.1f} s"
        )


def relabel_episode(
    critic: ProgressCritic, frames: dict, instruction: str, config: RelabelConfig
) -> dict[str, np.ndarray]:
    """Rewards, progress values and done probabilities of one episode's frames."""
    if hasattr(critic, "episode"):
        out = critic.episode(frames, instruction, mode=config.mode)
        deltas, done = out["deltas"], out["done"]
    else:
        _, deltas = critic.progress(frames, instruction, mode=config.mode)
        done = critic.done_frames(frames, instruction)
    if not np.all(np.isfinite(deltas)):
        bad = int(np.flatnonzero(~np.isfinite(deltas))[0])
        raise CriticError(f"critic {critic.critic_id} gave a non-finite delta at step {bad}")
    rewards, values = rewards_from_deltas(deltas, config.reward, config.gamma)
    return {"rewards": rewards, "progress": values, "done": np.nan_to_num(done, nan=0.0)}


def relabel(
    store_url: str,
    critic: ProgressCritic,
    config: RelabelConfig | None = None,
    *,
    progress: bool = True,
) -> RelabelSummary:
    """Write ``rewards/<critic_id>`` (and ``.progress``, ``.done``) for every committed episode
    of the store that does not have them yet (all of them with ``overwrite``)."""
    from episodes.store import EpisodeStore

    config = config or RelabelConfig()
    config.validate()
    store = EpisodeStore.open(store_url, "a")
    check_store_cameras(store, critic)
    cid = critic.critic_id
    summary = RelabelSummary(critic_id=cid)
    ids = store.episode_ids()
    ids = ids[: config.limit] if config.limit else ids
    attrs = {
        "critic_id": cid,
        "critic_version": critic.version,
        "reward": str(config.reward),
        "gamma": config.gamma,
        "progress_mode": str(config.mode),
    }
    t0 = time.monotonic()
    bar = progress_bar(len(ids), f"relabel {store_url} with {cid}", "episode") if progress else None
    for eid in ids:
        ep = store.read(eid, verify=False)
        if cid in ep.rewards and not config.overwrite:
            summary.skipped.append(eid)
        else:
            out = relabel_episode(critic, episode_frames(ep, critic, store_url), ep.instruction,
                                  config)  # fmt: skip
            for suffix in (".progress", ".done"):
                store.write_rewards(eid, cid + suffix, out[suffix[1:]], attrs, overwrite=True)
            store.write_rewards(eid, cid, out["rewards"], attrs, overwrite=config.overwrite)
            summary.written.append(eid)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(already_done=len(summary.skipped), refresh=False)
    if bar is not None:
        bar.close()
    summary.seconds = time.monotonic() - t0
    return summary
