"""The critic interface every backend implements, and the checks on what goes into it.

``ProgressCritic.delta(obs_a, obs_b, instruction, reference=None)`` answers "how much closer to
the goal of ``instruction`` is ``obs_b`` than ``obs_a``", in [-1, 1] (a fraction of the
remaining distance when positive, of the achieved progress when negative; see
``critic.value``). ``done(obs, instruction)`` is the probability that the goal holds.

Backends work on *frames*: camera name -> ``(B, H, W, 3)`` uint8 RGB, batched. The
``Observation`` methods are thin wrappers; relabelling and evaluation call the frame methods
directly so a whole episode goes through in a few batches. Inputs are checked here, once, so
every backend refuses the same bad inputs with the same message: a missing camera, a frame of
another size (the size the critic was trained on) or channel order, an empty instruction, a
reference demonstration of another task.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from critic import value as _value

Frames = Mapping[str, np.ndarray]
"""camera name -> ``(B, H, W, 3)`` uint8 RGB."""

PROGRESS_MODES = ("chain", "anchor")


class CriticError(ValueError):
    """Bad input to a critic. The message names the camera, shape, instruction or file."""


def normalize_instruction(text: str) -> str:
    return " ".join(str(text).lower().replace(",", " ").split()).rstrip(".!")


def check_instruction(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise CriticError(f"instruction {text!r} is empty; the critic needs the task's sentence")
    return text


@dataclass(frozen=True, eq=False)
class Reference:
    """A demonstration of the task, given by a few frames: how a new task can be taught by one
    demonstration. ``frames``: camera -> ``(K, H, W, 3)`` uint8, in time order."""

    instruction: str
    frames: Mapping[str, np.ndarray]
    source: str = ""

    @classmethod
    def from_episode(cls, episode: Any, k: int = 8, cameras: Sequence[str] | None = None):
        """``k`` evenly spaced frames of a (successful) ``episodes.store.Episode``."""
        names = list(cameras) if cameras is not None else list(episode.images)
        missing = [c for c in names if c not in episode.images]
        if missing:
            raise CriticError(
                f"reference episode {episode.id} has no camera(s) {missing}; it has "
                f"{sorted(episode.images)}"
            )
        idx = np.linspace(0, episode.n_steps - 1, k).round().astype(int)
        frames = {c: np.stack([np.asarray(episode.images[c][int(i)]) for i in idx]) for c in names}
        return cls(instruction=episode.instruction, frames=frames, source=episode.id)


def frames_from_observations(observations: Sequence[Any], cameras: Sequence[str]) -> dict:
    """Stack the ``cameras`` of a list of ``robot.schema.Observation`` into frames."""
    out: dict[str, np.ndarray] = {}
    for cam in cameras:
        imgs = []
        for i, obs in enumerate(observations):
            images = getattr(obs, "images", None)
            if images is None or cam not in images:
                have = sorted(images) if images is not None else []
                raise CriticError(
                    f"observation {i} has no image from camera '{cam}' (it has {have}); the "
                    f"critic was trained on cameras {list(cameras)}"
                )
            imgs.append(np.asarray(images[cam]))
        shapes = {im.shape for im in imgs}
        if len(shapes) > 1:
            raise CriticError(f"camera '{cam}': frames of different shapes {sorted(shapes)}")
        out[cam] = np.stack(imgs)
    return out


def check_frames(frames: Frames, sizes: Mapping[str, tuple[int, int]], what: str = "frames") -> int:
    """Refuse frames the critic cannot read; returns the batch size.

    ``sizes``: camera -> ``(height, width)`` the critic was trained on.
    """
    missing = [c for c in sizes if c not in frames]
    if missing:
        raise CriticError(
            f"{what}: no camera(s) {missing} (got {sorted(frames)}); the critic was trained on "
            f"cameras {list(sizes)}"
        )
    batch = None
    for cam, (h, w) in sizes.items():
        arr = frames[cam]
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8:
            raise CriticError(
                f"{what}: camera '{cam}' must be uint8 RGB, got "
                f"{getattr(arr, 'dtype', type(arr).__name__)}"
            )
        if arr.ndim == 4 and arr.shape[1] == 3 and arr.shape[-1] != 3:
            raise CriticError(
                f"{what}: camera '{cam}' has shape {arr.shape}: channels first? frames must be "
                f"(B, H, W, 3) RGB, channels last"
            )
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise CriticError(
                f"{what}: camera '{cam}' has shape {arr.shape}, expected (B, {h}, {w}, 3) RGB"
            )
        if arr.shape[1:3] != (h, w):
            raise CriticError(
                f"{what}: camera '{cam}' frames are {arr.shape[2]}x{arr.shape[1]} (WxH); the "
                f"critic was trained on {w}x{h}"
            )
        if batch is None:
            batch = arr.shape[0]
        elif arr.shape[0] != batch:
            raise CriticError(f"{what}: cameras have different batch sizes")
    return int(batch or 0)


def instructions_for(instruction: str | Sequence[str], batch: int) -> list[str]:
    if isinstance(instruction, str):
        texts = [instruction] * batch
    else:
        texts = list(instruction)
        if len(texts) != batch:
            raise CriticError(f"{len(texts)} instructions for a batch of {batch}")
    for t in texts:
        check_instruction(t)
    return texts


def check_reference(
    reference: Reference | None, instructions: Sequence[str], sizes: Mapping[str, tuple[int, int]]
) -> None:
    """A reference must be a demonstration of the very task asked for, with the same cameras."""
    if reference is None:
        return
    want = {normalize_instruction(t) for t in instructions}
    have = normalize_instruction(reference.instruction)
    if want != {have}:
        raise CriticError(
            f"reference demonstration {reference.source or ''} is of another task: "
            f"{reference.instruction!r}, the instruction is {sorted(want)}"
        )
    check_frames(reference.frames, sizes, what=f"reference {reference.source}".strip())


class ProgressCritic(abc.ABC):
    """Pairwise progress and done from images and the task instruction (VLAC-style).

    ``critic_id``: a name for the rewards this critic writes, derived from its weights, so a
    relabelling is reproducible and two critics never overwrite each other. ``cameras`` and
    ``image_sizes`` (camera -> ``(height, width)``): what it was trained on and accepts.
    """

    critic_id: str = "critic"
    version: str = "0"
    image_sizes: dict[str, tuple[int, int]]

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.image_sizes)

    # -- backends implement these ------------------------------------------------------------

    @abc.abstractmethod
    def delta_frames(
        self,
        frames_a: Frames,
        frames_b: Frames,
        instructions: str | Sequence[str],
        reference: Reference | None = None,
    ) -> np.ndarray:
        """``(B,)`` deltas in [-1, 1]."""

    @abc.abstractmethod
    def done_frames(self, frames: Frames, instructions: str | Sequence[str]) -> np.ndarray:
        """``(B,)`` probabilities that the goal holds."""

    def reject_frames(
        self, frames_a: Frames, frames_b: Frames, instructions: str | Sequence[str]
    ) -> np.ndarray:
        """``(B,)`` probabilities that the instruction is not what these frames are doing.
        Backends without a reject signal raise ``NotImplementedError``."""
        raise NotImplementedError(f"{type(self).__name__} has no reject signal")

    # -- the Observation API -----------------------------------------------------------------

    def delta(
        self,
        obs_a: Any,
        obs_b: Any,
        instruction: str | Sequence[str],
        reference: Reference | None = None,
    ) -> float | np.ndarray:
        """Progress from ``obs_a`` to ``obs_b`` in [-1, 1]; a float for one pair of
        ``Observation``, ``(B,)`` for lists."""
        single = not isinstance(obs_a, Sequence)
        a = [obs_a] if single else list(obs_a)
        b = [obs_b] if single else list(obs_b)
        if len(a) != len(b):
            raise CriticError(f"delta: {len(a)} first and {len(b)} second observations")
        out = self.delta_frames(
            frames_from_observations(a, self.cameras),
            frames_from_observations(b, self.cameras),
            instruction,
            reference,
        )
        return float(out[0]) if single else out

    def done(self, obs: Any, instruction: str | Sequence[str]) -> float | np.ndarray:
        """Probability in [0, 1] that the goal holds at ``obs``; float or ``(B,)``."""
        single = not isinstance(obs, Sequence)
        items = [obs] if single else list(obs)
        out = self.done_frames(frames_from_observations(items, self.cameras), instruction)
        return float(out[0]) if single else out

    # -- whole episodes ----------------------------------------------------------------------

    def pairs_within(
        self,
        frames: Frames,
        instruction: str,
        ia: np.ndarray,
        ib: np.ndarray,
        reference: Reference | None = None,
        with_reject: bool = False,
        batch_size: int = 64,
    ) -> dict[str, np.ndarray]:
        """Deltas (and reject probabilities) of pairs ``(ia[k], ib[k])`` of one episode's
        frames ``(T, ...)``, all under ``instruction``. Backends may share work across pairs."""
        ia, ib = np.asarray(ia, dtype=int), np.asarray(ib, dtype=int)
        out: dict[str, list[np.ndarray]] = {"delta": [], "reject": []}
        for s in range(0, ia.size, batch_size):
            a = {c: frames[c][ia[s : s + batch_size]] for c in self.image_sizes}
            b = {c: frames[c][ib[s : s + batch_size]] for c in self.image_sizes}
            out["delta"].append(self.delta_frames(a, b, instruction, reference))
            if with_reject:
                out["reject"].append(self.reject_frames(a, b, instruction))
        return {
            k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items() if v or k == "delta"
        }

    def progress(
        self,
        frames: Frames,
        instruction: str,
        reference: Reference | None = None,
        mode: str = "chain",
        batch_size: int = 64,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Progress values ``(T,)`` and deltas ``(T - 1,)`` of one episode's frames ``(T, ...)``.

        ``chain`` (VLAC): deltas of consecutive frames, accumulated from 0. ``anchor``: each
        frame against the first, ``v_t = step(0, delta(0, t))``, which cannot drift; the deltas
        returned are then the consecutive differences that reproduce those values.
        """
        if mode not in PROGRESS_MODES:
            raise CriticError(f"progress mode {mode!r} is not one of {PROGRESS_MODES}")
        n = check_frames(frames, self.image_sizes)
        if n == 0:
            raise CriticError("progress: an episode with no frames")
        if n == 1:
            return np.zeros(1), np.zeros(0)
        if mode == "chain":
            ia, ib = np.arange(n - 1), np.arange(1, n)
        else:
            ia, ib = np.zeros(n - 1, dtype=int), np.arange(1, n)
        deltas = np.empty(n - 1)
        for s in range(0, n - 1, batch_size):
            sl = slice(s, s + batch_size)
            deltas[sl] = self.delta_frames(
                {c: f[ia[sl]] for c, f in frames.items() if c in self.image_sizes},
                {c: f[ib[sl]] for c, f in frames.items() if c in self.image_sizes},
                instruction,
                reference,
            )
        if mode == "chain":
            return _value.accumulate(deltas), deltas
        values = np.concatenate([[0.0], _value.step(0.0, deltas)])
        return values, _value.relative_delta(values[:-1], values[1:])
