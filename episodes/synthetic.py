"""Synthetic robots and episodes for storage tests, crash trials and benchmarks, where no arm moves.

The limits of :func:`storage_spec` are wide but valid (``RobotSpec`` refuses a robot without
limits): nothing built from these specs is ever sent to an arm. Episode content is a pure
function of its seed, so a reader can regenerate what a (possibly killed) writer wrote and
compare byte for byte. :class:`SeededEpisodes` carries the seed in the instruction
(``"seed=<n>"``), so even an episode committed just before a kill, whose id the writer never got
to print, can be checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from episodes.codec import ImageCodec, decode_jpeg, encode_jpeg
from episodes.store import EpisodeStore, StoreConfig
from robot.schema import RobotSpec


def storage_spec(
    name: str,
    joints: Sequence[str],
    cameras: Sequence[tuple[str, int, int]],
    control_hz: float,
) -> RobotSpec:
    """A ``len(joints)``-joint spec with ``cameras`` given as ``(name, width, height)``."""
    d = len(joints)
    return RobotSpec.from_mapping(
        {
            "name": name,
            "joint_names": list(joints),
            "limits": {
                "position_lower": [-3.0] * d,
                "position_upper": [3.0] * d,
                "velocity": [2.0] * d,
                "acceleration": [10.0] * d,
                "max_step": [0.1] * d,
            },
            "home": [0.0] * d,
            "workspace": {"lower": [-1, -1, -1], "upper": [1, 1, 1]},
            "control_hz": control_hz,
            "cameras": [{"name": n, "width": w, "height": h} for n, w, h in cameras],
        }
    )


def synthetic_episode(
    seed: int,
    n: int,
    joints: Sequence[str],
    cameras: Sequence[tuple[str, int, int]],
    fps: float,
) -> dict[str, Any]:
    """Deterministic content of episode ``seed``: smooth images (JPEG-friendly) plus noise,
    random joint vectors and control sources, strictly increasing times."""
    rng = np.random.default_rng(seed)
    d = len(joints)
    data: dict[str, Any] = {
        "t": 1000.0 + seed + np.arange(n) / fps + rng.uniform(0, 1e-3, n),
        "joint_pos": rng.normal(size=(n, d)).astype(np.float32),
        "joint_vel": rng.normal(size=(n, d)).astype(np.float32),
        "action": rng.normal(size=(n, d)).astype(np.float32),
        "control_source": rng.integers(0, 4, n).astype(np.uint8),
        "images": {},
    }
    for name, w, h in cameras:
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 60], -1)
        shift = rng.uniform(0, 40, (n, 1, 1, 3))
        noise = rng.integers(-3, 4, (n, h, w, 3))
        data["images"][name] = np.clip(base[None] + shift + noise, 0, 255).astype(np.uint8)
    return data


def append_steps(writer, data: dict[str, Any], start: int = 0, stop: int | None = None) -> None:
    """Append steps ``start:stop`` of a :func:`synthetic_episode` to an ``EpisodeWriter``."""
    stop = len(data["t"]) if stop is None else stop
    for i in range(start, stop):
        writer.append(
            data["t"][i],
            data["joint_pos"][i],
            data["joint_vel"][i],
            data["action"][i],
            int(data["control_source"][i]),
            {name: frames[i] for name, frames in data["images"].items()},
        )


def data_digest(data: dict[str, Any]) -> str:
    """A digest of everything an episode's data holds, to compare across processes."""
    h = hashlib.blake2b(digest_size=16)
    for key in ("t", "joint_pos", "joint_vel", "action", "control_source"):
        h.update(np.ascontiguousarray(data[key]).tobytes())
    for name in sorted(data["images"]):
        h.update(name.encode())
        h.update(np.ascontiguousarray(data["images"][name]).tobytes())
    return h.hexdigest()


def seed_of(instruction: str) -> int:
    if not instruction.startswith("seed="):
        raise ValueError(f"instruction {instruction!r} does not carry a seed")
    return int(instruction[len("seed=") :])


@dataclass(frozen=True)
class SeededEpisodes:
    """A family of episodes whose whole content follows from a seed: the robot, the store's
    configuration, each episode's length, data and outcome.

    ``cameras``: ``(name, width, height, codec)`` with codec ``"jpeg"`` or ``"zstd"``.
    ``steps``: episode ``seed`` has ``min_steps + seed % step_spread`` steps. Small
    ``lowdim_chunk_steps`` and ``growth_steps`` make short episodes cross chunk and resize
    boundaries, so a kill can land in ``begin``, ``append``, growth, flush and ``commit`` alike.
    ``failures``: every third seed ends in failure (else every episode succeeds).
    """

    robot: str
    joints: tuple[str, ...]
    cameras: tuple[tuple[str, int, int, str], ...]
    task: str
    min_steps: int
    step_spread: int
    lowdim_chunk_steps: int
    growth_steps: int
    jpeg_quality: int = 90
    fps: float = 30.0
    failures: bool = False

    def spec(
        self,
        name: str | None = None,
        joints: Sequence[str] | None = None,
        cameras: Sequence[tuple[str, int, int]] | None = None,
    ) -> RobotSpec:
        """The robot; ``name``, ``joints`` or ``cameras`` (``(name, width, height)``) replace
        the family's own."""
        return storage_spec(
            self.robot if name is None else name,
            self.joints if joints is None else joints,
            self.camera_sizes() if cameras is None else list(cameras),
            self.fps,
        )

    def camera_sizes(self) -> list[tuple[str, int, int]]:
        return [(name, w, h) for name, w, h, _ in self.cameras]

    def config(self, **overrides: Any) -> StoreConfig:
        """Durable commits (the default), the family's codecs, chunks and growth blocks."""
        kwargs: dict[str, Any] = {
            "min_free_bytes": 0,
            "image_codecs": {
                name: ImageCodec(kind, quality=self.jpeg_quality)
                if kind == "jpeg"
                else ImageCodec(kind)
                for name, _, _, kind in self.cameras
            },
            "lowdim_chunk_steps": self.lowdim_chunk_steps,
            "growth_steps": self.growth_steps,
        }
        kwargs.update(overrides)
        return StoreConfig(**kwargs)

    def steps(self, seed: int) -> int:
        return self.min_steps + seed % self.step_spread

    def data(
        self,
        seed: int,
        n: int | None = None,
        cameras: Sequence[tuple[str, int, int]] | None = None,
    ) -> dict[str, Any]:
        """Deterministic content of episode ``seed`` (:func:`synthetic_episode`)."""
        cams = self.camera_sizes() if cameras is None else cameras
        return synthetic_episode(
            seed, self.steps(seed) if n is None else n, self.joints, cams, self.fps
        )

    def outcome(self, seed: int) -> tuple[str, bool]:
        if self.failures and seed % 3 == 0:
            return "dropped the cube", False
        return "success", True

    def record(self, store: EpisodeStore, seed: int, n: int | None = None) -> str:
        """Record and commit episode ``seed``; returns its id."""
        data = self.data(seed, n)
        outcome, success = self.outcome(seed)
        with store.begin(f"seed={seed}", self.task, float(seed)) as writer:
            append_steps(writer, data)
            return writer.commit(outcome, success)

    def record_forever(
        self,
        store: EpisodeStore,
        seed_base: int,
        on_commit: Callable[[str, int], None],
        episodes: int = 0,
    ) -> None:
        """What a writer process that is about to be killed does: record episodes
        ``seed_base, seed_base + 1, ...`` (``episodes`` of them; 0: until killed), calling
        ``on_commit(episode_id, seed)`` only after each commit has returned."""
        k = 0
        while episodes <= 0 or k < episodes:
            seed = seed_base + k
            on_commit(self.record(store, seed), seed)
            k += 1

    def expected_images(self, store: EpisodeStore, data: dict[str, Any]) -> dict[str, np.ndarray]:
        """What each camera must read back: exact for zstd, the libjpeg round trip for JPEG
        (deterministic for a given libjpeg build)."""
        out = {}
        for name, frames in data["images"].items():
            codec = store.image_codecs[name]
            if codec.kind == "jpeg":
                out[name] = np.stack([decode_jpeg(encode_jpeg(f, codec.quality)) for f in frames])
            else:
                out[name] = frames
        return out

    def check(self, store: EpisodeStore, episode_id: str, prefix: int | None = None) -> int:
        """Read ``episode_id`` (verifying checksums) and compare every field with what its seed
        generates; ``prefix``: a salvaged episode holds only the first steps. Raises
        ``AssertionError`` naming the episode and the field; returns the seed."""
        ep = store.read(episode_id, verify=True)
        seed = seed_of(ep.instruction)
        full = self.data(seed)
        n = ep.n_steps if prefix is None else prefix
        if prefix is None:
            if n != len(full["t"]):
                raise AssertionError(f"{episode_id}: {n} steps, seed {seed} has {len(full['t'])}")
            if (ep.outcome, ep.success) != self.outcome(seed):
                raise AssertionError(
                    f"{episode_id}: outcome {(ep.outcome, ep.success)}, seed {seed} records "
                    f"{self.outcome(seed)}"
                )
        elif ep.n_steps != prefix:
            raise AssertionError(f"{episode_id}: {ep.n_steps} steps, the salvaged prefix {prefix}")
        if ep.task != self.task or ep.started_at != float(seed):
            raise AssertionError(
                f"{episode_id}: task {ep.task!r}, started_at {ep.started_at}; seed {seed} "
                f"records task {self.task!r}, started_at {float(seed)}"
            )
        np.testing.assert_array_equal(ep.t, full["t"][:n], err_msg=f"{episode_id} t")
        for key in ("joint_pos", "joint_vel", "action", "control_source"):
            np.testing.assert_array_equal(
                getattr(ep, key), full[key][:n], err_msg=f"{episode_id} {key}"
            )
        want = self.expected_images(
            store, {"images": {k: v[:n] for k, v in full["images"].items()}}
        )
        for name, frames in want.items():
            np.testing.assert_array_equal(
                ep.images[name][:], frames, err_msg=f"{episode_id} {name}"
            )
        return seed
