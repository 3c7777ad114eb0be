"""Demonstrations from the episode store as training samples for chunk policies.

A sample is the observation at step ``t`` (every camera, the joint state, the instruction) and
the chunk ``action[t+1 : t+1+H]`` the demonstrator went on to send, with a mask where the
episode ended before ``H`` more steps (padded with the last action, masked out of the loss).
Actions are the targets actually sent (after safety), as recorded.

Images are decoded once and resized to the model's input size when the data set is built, and
kept in memory as ``uint8``: 100 ten-second demos from two cameras at 96x128 take ~0.7 GB and
make every batch a memory copy, which is what lets a CPU train in minutes.

Which steps are used: by default only steps that a demonstrator produced (``SCRIPT`` or
``HUMAN``) from successful episodes; ``HOLD`` steps (nothing to execute) are never targets of
imitation. The RL learner samples differently (:mod:`episodes` replay sampling); this is
supervised fine-tuning only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from episodes.store import EpisodeStore
from policy.schedule import progress_bar
from robot.schema import ControlSource

DEMO_SOURCES = (int(ControlSource.SCRIPT), int(ControlSource.HUMAN))


class DataError(ValueError):
    """The store cannot feed this model (missing cameras, other joints, no usable episodes)."""


@dataclass
class DemoEpisode:
    instruction: str
    joint_pos: np.ndarray  # (T, D) float32
    action: np.ndarray  # (T, D) float32
    images: dict[str, np.ndarray]  # camera -> (T, h, w, 3) uint8 at the model's size
    usable: np.ndarray  # (T,) bool: steps that may be sampled
    weight: np.ndarray | None = None  # (T,) how often a usable step is drawn (None: 1 each)


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 -> ``(N, h, w, 3)`` uint8, bilinear with antialiasing. The one
    resize behind training data and the LeRobot adapters' inference, so a model sees at run
    time the pixels it was trained on."""
    if frames.shape[1:3] == tuple(size):
        return np.ascontiguousarray(frames)
    out = []
    for i in range(0, len(frames), 64):
        t = torch.from_numpy(frames[i : i + 64]).permute(0, 3, 1, 2).float()
        t = F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
        out.append(t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


class DemoDataset:
    """Every usable step of the chosen episodes, in memory. See the module docstring."""

    def __init__(
        self,
        stores: list[str],
        *,
        cameras: list[str],
        joint_names: list[str],
        image_size: tuple[int, int],
        horizon: int,
        max_episodes: int | None = None,
        successful_only: bool = True,
        progress: bool = True,
    ) -> None:
        self.cameras = list(cameras)
        self.horizon = horizon
        self.episodes: list[DemoEpisode] = []
        self.fps: float | None = None
        for url in stores:
            store = EpisodeStore.open(url)
            if tuple(store.joint_names) != tuple(joint_names):
                raise DataError(
                    f"{url}: recorded joints {list(store.joint_names)}, the model needs "
                    f"{list(joint_names)}"
                )
            have = {c.name for c in store.cameras}
            missing = [c for c in cameras if c not in have]
            if missing:
                raise DataError(f"{url}: no camera(s) {missing} in the store (has {sorted(have)})")
            if self.fps is not None and abs(store.fps - self.fps) > 1e-9:
                raise DataError(f"{url}: recorded at {store.fps} fps, another store at {self.fps}")
            self.fps = store.fps
            ids = store.episode_ids()
            bar = progress_bar(len(ids), f"loading {url}", "episode") if progress else None
            for eid in ids:
                if max_episodes is not None and len(self.episodes) >= max_episodes:
                    break
                ep = store.read(eid, verify=False)
                if successful_only and not ep.success:
                    continue
                usable = np.isin(ep.control_source, DEMO_SOURCES)
                if ep.n_steps < 2 or not usable.any():
                    continue
                images = {
                    c: resize_frames(np.asarray(ep.images[c][:]), image_size) for c in cameras
                }
                self.episodes.append(
                    DemoEpisode(ep.instruction, ep.joint_pos, ep.action, images, usable)
                )
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        if not self.episodes:
            raise DataError(f"no usable episodes in {stores} (successful_only={successful_only})")
        self._reindex()

    @classmethod
    def of(cls, episodes: list[DemoEpisode], *, cameras, horizon: int, fps: float) -> DemoDataset:
        """A data set of episodes already in memory (frames at the model's size)."""
        data = cls.__new__(cls)
        data.cameras, data.horizon, data.fps = list(cameras), int(horizon), float(fps)
        data.episodes = list(episodes)
        data._reindex()
        return data

    def _reindex(self) -> None:
        self.index = np.array(
            [(e, t) for e, ep in enumerate(self.episodes) for t in np.flatnonzero(ep.usable[:-1])],
            dtype=np.int64,
        ).reshape(-1, 2)
        self.instructions = sorted({ep.instruction for ep in self.episodes})

    def add(self, episode: DemoEpisode) -> None:
        """Append an episode (frames already at the model's size): the practice learner's
        distillation grows its data set this way as episodes commit."""
        if episode.usable.any():
            self.episodes.append(episode)
            self._reindex()

    def row_weights(self) -> np.ndarray | None:
        """Per-row sampling weight (None: every row alike)."""
        if all(ep.weight is None for ep in self.episodes):
            return None
        per_episode = [
            np.ones(len(ep.usable)) if ep.weight is None else np.asarray(ep.weight, np.float64)
            for ep in self.episodes
        ]
        return np.array([per_episode[e][t] for e, t in self.index], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.index)

    def stats(self, action_mode: str = "absolute") -> dict[str, np.ndarray]:
        """Normalisation statistics. ``action_mode="delta"``: of the chunk targets relative to
        the joint position each chunk starts from, over every sample and step of the chunk."""
        q = np.concatenate([ep.joint_pos for ep in self.episodes])
        if action_mode == "delta":
            a = np.concatenate([self._chunk_deltas(ep) for ep in self.episodes])
        else:
            a = np.concatenate([ep.action for ep in self.episodes])
        return {
            "state_mean": q.mean(0),
            "state_std": q.std(0),
            "action_mean": a.mean(0),
            "action_std": a.std(0),
        }

    def _chunk_deltas(self, ep: DemoEpisode) -> np.ndarray:
        T = len(ep.action)
        t = np.flatnonzero(ep.usable[:-1])
        idx = np.minimum(t[:, None] + 1 + np.arange(self.horizon)[None, :], T - 1)
        return (ep.action[idx] - ep.joint_pos[t][:, None, :]).reshape(-1, ep.action.shape[1])

    def batch(self, rows: np.ndarray) -> dict:
        """Raw (unnormalised) batch for ``index[rows]``: images uint8, state, actions, mask."""
        H = self.horizon
        B = len(rows)
        D = self.episodes[0].action.shape[1]
        images = {c: [] for c in self.cameras}
        state = np.empty((B, D), np.float32)
        actions = np.empty((B, H, D), np.float32)
        mask = np.zeros((B, H), bool)
        instructions = []
        for b, (e, t) in enumerate(self.index[rows]):
            ep = self.episodes[e]
            T = len(ep.action)
            for c in self.cameras:
                images[c].append(ep.images[c][t])
            state[b] = ep.joint_pos[t]
            idx = np.arange(t + 1, t + 1 + H)
            valid = idx < T
            actions[b] = ep.action[np.minimum(idx, T - 1)]
            mask[b] = valid
            instructions.append(ep.instruction)
        return {
            "images": {c: np.stack(v) for c, v in images.items()},
            "state": state,
            "actions": actions,
            "action_mask": mask,
            "instructions": instructions,
        }


def random_shift(
    images: torch.Tensor, pad: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """DrQ's augmentation: pad by replication and crop back at a random offset per image.

    The one random shift of the project (the policy's and the critic's training both use it);
    ``generator``: draw the offsets from it instead of torch's global generator."""
    if pad <= 0:
        return images
    B, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (B, 2), generator=generator)
    oy, ox = off[:, 0], off[:, 1]
    rows = oy[:, None] + torch.arange(h)[None, :]  # (B, h)
    cols = ox[:, None] + torch.arange(w)[None, :]  # (B, w)
    bidx = torch.arange(B)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)
