"""Training pairs for the compact critic, labelled as VLAC labels them.

Frames of every episode are loaded once, resized to the encoder's size, into one in-memory
array per camera (:class:`EpisodeIndex`); a pair is two indices into it plus its labels, so a
training step costs no decoding. Kinds of pairs (:class:`PairConfig` gives their shares):

``forward``     two frames ``i < j`` of a successful episode; progress is time-normalised,
                ``p_t = t / (T - 1)``, and the label is :func:`critic.value.relative_delta`
                ``(p_i, p_j)``, so chaining the labels of consecutive frames gives back ``p``.
``reversed``    the same, played backwards: a negative delta (progress undone).
``mismatch``    a pair of a successful episode with *another* instruction of the vocabulary
                (another cube): zero progress, reject = 1, not done.
``stagnation``  one frame against itself (independently augmented): zero progress.
``failed``      the start and the end of a failed episode: zero net progress, never done.

Done labels: a frame of a successful episode is done from ``done_from`` of its duration on
(the cube rests in the bin by then in the twin's demos); no frame of a failed episode, or under
a mismatched instruction, is done. Unknown labels are NaN and masked out of the loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from critic.base import CriticError, normalize_instruction
from critic.value import relative_delta
from policy.schedule import progress_bar

KINDS = ("forward", "reversed", "mismatch", "stagnation", "failed")


@dataclass
class PairConfig:
    """Shares of each kind of pair (normalised), and the done threshold."""

    forward: float = 0.35
    reversed: float = 0.25
    mismatch: float = 0.15
    stagnation: float = 0.1
    failed: float = 0.15
    done_from: float = 0.9

    def shares(self) -> np.ndarray:
        w = np.array([max(0.0, float(getattr(self, k))) for k in KINDS])
        if w.sum() <= 0:
            raise CriticError("pair shares are all zero")
        return w / w.sum()


def progress_label(t: np.ndarray | int, n: int) -> np.ndarray:
    """Time-normalised progress of step ``t`` of a successful episode of ``n`` steps."""
    return np.asarray(t, dtype=np.float64) / max(n - 1, 1)


@dataclass
class EpisodeIndex:
    """Frames of many episodes, resized, in memory. ``frames[cam]``: ``(N, h, w, 3)`` uint8;
    episode ``e`` is rows ``starts[e] : starts[e] + lengths[e]``."""

    frames: dict[str, np.ndarray]
    starts: np.ndarray
    lengths: np.ndarray
    instructions: list[str]
    success: np.ndarray
    ids: list[str]
    camera_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)

    @property
    def n_episodes(self) -> int:
        return len(self.ids)

    def episode_rows(self, e: int) -> np.ndarray:
        return np.arange(self.starts[e], self.starts[e] + self.lengths[e])

    @classmethod
    def from_stores(
        cls,
        urls: Sequence[str],
        cameras: Sequence[str],
        image_size: Sequence[int],
        *,
        limit: int | None = None,
        progress: bool = True,
    ) -> EpisodeIndex:
        """Load every committed episode of ``urls`` (at most ``limit`` each)."""
        import cv2

        from episodes.store import EpisodeStore

        h, w = int(image_size[0]), int(image_size[1])
        chunks: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
        starts, lengths, instr, succ, ids, tasks = [], [], [], [], [], []
        sizes: dict[str, tuple[int, int]] = {}
        total = 0
        for url in urls:
            store = EpisodeStore.open(url)
            have = {c.name: (c.height, c.width) for c in store.cameras}
            missing = [c for c in cameras if c not in have]
            if missing:
                raise CriticError(
                    f"store {url} has no camera(s) {missing} (it has {sorted(have)}); the critic "
                    f"is trained on cameras {list(cameras)}"
                )
            for c in cameras:
                if c in sizes and sizes[c] != have[c]:
                    raise CriticError(
                        f"store {url}: camera '{c}' is {have[c][1]}x{have[c][0]}, other stores "
                        f"have {sizes[c][1]}x{sizes[c][0]}"
                    )
                sizes[c] = have[c]
            ids_here = store.episode_ids()[:limit] if limit else store.episode_ids()
            bar = progress_bar(len(ids_here), f"loading {url}", "episode") if progress else None
            for eid in ids_here:
                ep = store.read(eid, verify=False)
                for c in cameras:
                    raw = np.asarray(ep.images[c][:])
                    small = np.stack(
                        [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in raw]
                    )
                    chunks[c].append(small)
                starts.append(total)
                lengths.append(ep.n_steps)
                total += ep.n_steps
                instr.append(ep.instruction)
                succ.append(ep.success)
                ids.append(f"{url}#{eid}")
                tasks.append(ep.task)
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        if not ids:
            raise CriticError(f"no committed episodes in {list(urls)}")
        return cls(
            frames={c: np.concatenate(v) for c, v in chunks.items()},
            starts=np.asarray(starts, dtype=np.int64),
            lengths=np.asarray(lengths, dtype=np.int64),
            instructions=instr,
            success=np.asarray(succ, dtype=bool),
            ids=ids,
            camera_sizes=sizes,
            tasks=tasks,
        )


@dataclass
class PairBatch:
    """Row indices of the two frames, the instruction each pair is scored under, and labels
    (NaN: no label). ``p_a``/``p_b``: true progress where known (successful episodes)."""

    ia: np.ndarray
    ib: np.ndarray
    texts: list[str]
    kinds: list[str]
    delta: np.ndarray
    reject: np.ndarray
    done_a: np.ndarray
    done_b: np.ndarray
    p_a: np.ndarray
    p_b: np.ndarray

    def __len__(self) -> int:
        return len(self.ia)

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> PairBatch:
        """From rows ``(ia, ib, text, kind, delta, reject, done_a, done_b, p_a, p_b)``."""
        cols = list(zip(*rows, strict=True))
        return cls(
            ia=np.asarray(cols[0], dtype=np.int64),
            ib=np.asarray(cols[1], dtype=np.int64),
            texts=list(cols[2]),
            kinds=list(cols[3]),
            delta=np.asarray(cols[4], dtype=np.float32),
            reject=np.asarray(cols[5], dtype=np.float32),
            done_a=np.asarray(cols[6], dtype=np.float32),
            done_b=np.asarray(cols[7], dtype=np.float32),
            p_a=np.asarray(cols[8], dtype=np.float32),
            p_b=np.asarray(cols[9], dtype=np.float32),
        )


class PairSampler:
    """Draws labelled pairs from an :class:`EpisodeIndex` (see the module docstring)."""

    def __init__(self, index: EpisodeIndex, config: PairConfig | None = None, seed: int = 0):
        self.index = index
        self.config = config or PairConfig()
        self.rng = np.random.default_rng(seed)
        self.succ = np.flatnonzero(index.success & (index.lengths >= 2))
        self.fail = np.flatnonzero(~index.success & (index.lengths >= 2))
        if self.succ.size == 0:
            raise CriticError("no successful episodes (with >= 2 steps) to train the critic on")
        self.vocab = sorted({normalize_instruction(t): t for t in index.instructions}.values())
        self.by_instruction: dict[str, list[int]] = {}
        for e in self.succ:
            self.by_instruction.setdefault(normalize_instruction(index.instructions[e]), []).append(
                int(e)
            )

    def mismatched(self, text: str) -> str | None:
        """Another instruction of the vocabulary, or ``None`` when there is no other."""
        others = [v for v in self.vocab if normalize_instruction(v) != normalize_instruction(text)]
        return str(self.rng.choice(others)) if others else None

    def done_label(self, e: int, t: np.ndarray | int) -> np.ndarray:
        n = int(self.index.lengths[e])
        if not self.index.success[e]:
            return np.zeros(np.shape(t))
        return (progress_label(t, n) >= self.config.done_from).astype(np.float64)

    def sample(self, n: int) -> PairBatch:
        kinds = self.rng.choice(len(KINDS), size=n, p=self.config.shares())
        rows = [self._one(KINDS[k]) for k in kinds]
        return PairBatch.from_rows(rows)

    def _one(self, kind: str) -> tuple:
        idx = self.index
        if kind == "failed" and self.fail.size == 0:
            kind = "stagnation"
        if kind == "failed":
            e = int(self.rng.choice(self.fail))
            n = int(idx.lengths[e])
            edge = max(1, round(0.15 * n))
            i = int(self.rng.integers(0, edge))
            j = int(self.rng.integers(n - edge, n))
            if self.rng.random() < 0.5:
                i, j = j, i
            s = int(idx.starts[e])
            nan = float("nan")
            return (s + i, s + j, idx.instructions[e], kind, 0.0, 0.0, 0.0, 0.0, nan, nan)
        e = int(self.rng.choice(self.succ))
        n = int(idx.lengths[e])
        s = int(idx.starts[e])
        text = idx.instructions[e]
        i, j = sorted(int(v) for v in self.rng.choice(n, size=2, replace=False))
        if kind == "stagnation":
            j = i
        elif kind == "reversed":
            i, j = j, i
        p_i, p_j = progress_label(i, n), progress_label(j, n)
        d_i, d_j = self.done_label(e, i), self.done_label(e, j)
        if kind == "mismatch":
            other = self.mismatched(text)
            if other is not None:
                return (s + i, s + j, other, kind, 0.0, 1.0, 0.0, 0.0, np.nan, np.nan)
            kind = "forward"
        delta = float(relative_delta(p_i, p_j)) if kind != "stagnation" else 0.0
        return (s + i, s + j, text, kind, delta, 0.0, float(d_i), float(d_j), p_i, p_j)

    def reference_group(self, n: int, k: int) -> tuple[np.ndarray, PairBatch] | None:
        """A reference demonstration (``k`` row indices of one successful episode) and ``n``
        forward/reversed pairs of *other* successful episodes of the same instruction."""
        groups = [g for g in self.by_instruction.values() if len(g) >= 2]
        if not groups:
            return None
        g = groups[int(self.rng.integers(len(groups)))]
        ref_e = int(self.rng.choice(g))
        others = [e for e in g if e != ref_e]
        ref_rows = self.index.starts[ref_e] + np.linspace(
            0, self.index.lengths[ref_e] - 1, k
        ).round().astype(np.int64)
        rows = []
        for _ in range(n):
            e = int(self.rng.choice(others))
            ln, s = int(self.index.lengths[e]), int(self.index.starts[e])
            i, j = sorted(int(v) for v in self.rng.choice(ln, size=2, replace=False))
            if self.rng.random() < 0.4:
                i, j = j, i
            p_i, p_j = progress_label(i, ln), progress_label(j, ln)
            delta = float(relative_delta(p_i, p_j))
            d_i, d_j = float(self.done_label(e, i)), float(self.done_label(e, j))
            text = self.index.instructions[e]
            rows.append((s + i, s + j, text, "reference", delta, 0.0, d_i, d_j, p_i, p_j))
        batch = PairBatch.from_rows(rows)
        return ref_rows, batch
