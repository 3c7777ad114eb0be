"""LeRobot's ACT trained on our episode store: the baseline for the compact VLA.

Why this exists: the benchmark compares the compact VLA with ACT under the same wall-clock
budget on the same demonstrations. So the data comes from the same place and in the same form
as the compact VLA's (:class:`policy.data.DemoDataset`: successful episodes, demonstrator steps
only, frames resized once and kept in memory as ``uint8``, target ``action[t+1 : t+1+H]`` with a
pad mask where the episode ends), and ACT is LeRobot's own ``ACTPolicy`` with LeRobot's own
pre/post processors (normalisation statistics computed from the store), saved with
``save_pretrained`` so :meth:`LeRobotPolicy.load` runs it like any other LeRobot checkpoint.
No LeRobotDataset conversion: batches are built straight from the store's arrays.

The CPU setup (:class:`ActTrainConfig` defaults), and why:

- **Backbone: ResNet-18, from scratch.** ACT only takes torchvision ResNets and ResNet-18 is the
  smallest. ImageNet weights would help, but nothing may be downloaded at run time: pass
  ``pretrained_backbone_weights="ResNet18_Weights.IMAGENET1K_V1"`` where torchvision has them
  cached. Backbone and transformer share one learning rate (1e-4) since the backbone must learn.
- **Images 72x96** per camera (a 3x3 feature map of 512 channels, 9 tokens per camera) with
  DrQ random-shift augmentation of 4 px (:func:`policy.data.random_shift`): the compact VLA's
  defaults (``VLAConfig.image_size``, ``PolicyTrainConfig.augment_pad``), so both see the same
  pixels; at 240x320 a step costs ~10x more and a CPU budget of minutes buys only tens of steps.
- **Transformer 256 wide, 8 heads, FFN 1024, 2 encoder layers, 1 decoder layer; CVAE with a
  2-layer encoder, 32-d latent, KL weight 10**: ACT's structure and objective (L1 + KL) at
  about a quarter of its default width (512/3200/4 layers), sized so a step of batch 8 runs in
  well under a second on two cores; dropout 0.1, AdamW (weight decay 1e-4), gradient norm
  clipped at 10.
- **Chunk 10 steps** (1 s at 10 Hz): the compact VLA's horizon, so both predict the same
  targets.

``seconds_budget`` bounds the wall-clock time of the optimisation loop (data loading and saving
are outside it and printed separately), measured with ``time.monotonic``; ``steps`` bounds the
number of optimiser steps; whichever comes first ends training.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policy.base import PolicyError
from policy.lerobot_adapters.adapter import (
    ACTION,
    OBS_STATE,
    SIDECAR,
    SIDECAR_VERSION,
    image_key,
)

MIN_STD = 1e-3
"""Floor for the normalisation std: a joint that never moved in the demos (std 0) would
otherwise be divided by LeRobot's eps (1e-8) at run time, where it does move a little."""


@dataclass(frozen=True)
class ActTrainConfig:
    """ACT's size and optimiser for a CPU budget; the module docstring says why each value."""

    vision_backbone: str = "resnet18"
    pretrained_backbone_weights: str | None = None
    dim_model: int = 256
    n_heads: int = 8
    dim_feedforward: int = 1024
    n_encoder_layers: int = 2
    n_decoder_layers: int = 1
    use_vae: bool = True
    latent_dim: int = 32
    n_vae_encoder_layers: int = 2
    kl_weight: float = 10.0
    dropout: float = 0.1
    lr: float = 1e-4
    lr_backbone: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip_norm: float = 10.0

    def __post_init__(self) -> None:
        if self.dim_model % self.n_heads:
            raise PolicyError(
                f"ActTrainConfig: dim_model={self.dim_model} is not divisible by "
                f"n_heads={self.n_heads}"
            )
        for key in ("lr", "lr_backbone", "grad_clip_norm"):
            if not getattr(self, key) > 0:
                raise PolicyError(f"ActTrainConfig: {key}={getattr(self, key)} must be > 0")


def _stats(dataset: Any, cameras: Sequence[str], camera_map: dict[str, str]) -> dict[str, Any]:
    """LeRobot-style statistics (mean/std/min/max/quantiles) from the episodes in memory."""

    def vector(x: np.ndarray) -> dict[str, np.ndarray]:
        x = x.astype(np.float64)
        return {
            "mean": x.mean(0).astype(np.float32),
            "std": np.maximum(x.std(0), MIN_STD).astype(np.float32),
            "min": x.min(0).astype(np.float32),
            "max": x.max(0).astype(np.float32),
            "q01": np.quantile(x, 0.01, axis=0).astype(np.float32),
            "q99": np.quantile(x, 0.99, axis=0).astype(np.float32),
            "count": np.array([len(x)]),
        }

    eps = dataset.episodes
    stats: dict[str, Any] = {
        OBS_STATE: vector(np.concatenate([e.joint_pos for e in eps])),
        ACTION: vector(np.concatenate([e.action for e in eps])),
    }
    for cam in cameras:
        # per-channel statistics in [0, 1] over at most ~200 frames per episode
        frames = np.concatenate([e.images[cam][:: max(1, len(e.images[cam]) // 200)] for e in eps])
        px = frames.reshape(-1, 3).astype(np.float64) / 255.0
        stats[image_key(cam, camera_map)] = {
            "mean": px.mean(0).reshape(3, 1, 1).astype(np.float32),
            "std": np.maximum(px.std(0), MIN_STD).reshape(3, 1, 1).astype(np.float32),
            "min": px.min(0).reshape(3, 1, 1).astype(np.float32),
            "max": px.max(0).reshape(3, 1, 1).astype(np.float32),
            "count": np.array([len(frames)]),
        }
    return stats


def _prepare_out_dir(out_dir: Path) -> Path:
    """Refuse to overwrite a checkpoint before any work is done; return the temporary dir."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise PolicyError(f"{out_dir} already exists and is not empty; refusing to overwrite it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp


def train_act(
    store_url: str | Sequence[str],
    out_dir: str | Path,
    *,
    seconds_budget: float | None = None,
    steps: int | None = None,
    chunk_size: int = 10,
    cameras: Sequence[str] = ("front", "wrist"),
    image_size: tuple[int, int] = (72, 96),
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = True,
    camera_map: dict[str, str] | None = None,
    successful_only: bool = True,
    max_episodes: int | None = None,
    augment_pad: int = 4,
    model: ActTrainConfig | None = None,
    device: str = "cpu",
    snapshots: Mapping[float, str | Path] | None = None,
    threads: int = 0,
) -> Path:
    """Train LeRobot's ACT on the demos in ``store_url`` (one store or several) and save it to
    ``out_dir`` (new or empty), loadable with ``LeRobotPolicy.load(out_dir)``. Returns
    ``out_dir``.

    Stops after ``seconds_budget`` seconds of optimisation or ``steps`` optimiser steps,
    whichever comes first (at least one must be given). ``image_size`` is ``(height, width)``.
    ``camera_map`` renames our cameras to LeRobot camera names in the checkpoint.
    ``augment_pad``: random-shift augmentation in pixels (0: none).
    ``snapshots``: ``{seconds: directory}``; the weights after that much optimisation are also
    saved there (the time spent saving is not counted). ACT trains at a constant learning rate
    (LeRobot's recipe), so a snapshot at ``t`` is the model a ``t``-second run would have
    produced: one run gives a benchmark's whole success-against-time curve.
    ``threads``: torch CPU threads (0: the fastest count, measured, as ``policy.threads``).
    """
    import torch
    from lerobot.configs import FeatureType, PolicyFeature
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    from episodes.store import EpisodeStore
    from policy.data import DemoDataset, random_shift

    if seconds_budget is None and steps is None:
        raise PolicyError("train_act: give seconds_budget=... or steps=... (or both)")
    if seconds_budget is not None and not seconds_budget > 0:
        raise PolicyError(f"train_act: seconds_budget={seconds_budget} must be > 0")
    if steps is not None and steps < 1:
        raise PolicyError(f"train_act: steps={steps} must be >= 1")
    if augment_pad < 0:
        raise PolicyError(f"train_act: augment_pad={augment_pad} must be >= 0")
    if chunk_size < 1 or batch_size < 1:
        raise PolicyError(
            f"train_act: chunk_size={chunk_size}, batch_size={batch_size} must be >= 1"
        )
    if not cameras:
        raise PolicyError("train_act: ACT needs at least one camera (cameras=...)")
    h, w = (int(image_size[0]), int(image_size[1]))
    if h < 32 or w < 32:
        raise PolicyError(f"train_act: image_size={image_size} is below ResNet's 32x32 minimum")
    model = model or ActTrainConfig()
    camera_map = dict(camera_map or {})
    urls = [store_url] if isinstance(store_url, str | os.PathLike) else list(store_url)
    urls = [str(u) for u in urls]
    out_dir = Path(out_dir)
    tmp = _prepare_out_dir(out_dir)

    t_load = time.monotonic()
    joint_names = list(EpisodeStore.open(urls[0]).joint_names)
    data = DemoDataset(
        urls,
        cameras=list(cameras),
        joint_names=joint_names,
        image_size=(h, w),
        horizon=chunk_size,
        max_episodes=max_episodes,
        successful_only=successful_only,
        progress=progress,
    )
    fps = float(data.fps)
    d = len(joint_names)
    keys = {cam: image_key(cam, camera_map) for cam in cameras}
    stats = _stats(data, cameras, camera_map)
    load_seconds = time.monotonic() - t_load

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = ACTConfig(
        input_features={
            OBS_STATE: PolicyFeature(type=FeatureType.STATE, shape=(d,)),
            **{k: PolicyFeature(type=FeatureType.VISUAL, shape=(3, h, w)) for k in keys.values()},
        },
        output_features={ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(d,))},
        chunk_size=chunk_size,
        n_action_steps=chunk_size,
        vision_backbone=model.vision_backbone,
        pretrained_backbone_weights=model.pretrained_backbone_weights,
        dim_model=model.dim_model,
        n_heads=model.n_heads,
        dim_feedforward=model.dim_feedforward,
        n_encoder_layers=model.n_encoder_layers,
        n_decoder_layers=model.n_decoder_layers,
        use_vae=model.use_vae,
        latent_dim=model.latent_dim,
        n_vae_encoder_layers=model.n_vae_encoder_layers,
        kl_weight=model.kl_weight,
        dropout=model.dropout,
        optimizer_lr=model.lr,
        optimizer_lr_backbone=model.lr_backbone,
        optimizer_weight_decay=model.weight_decay,
        device=device,
    )
    policy = ACTPolicy(config)
    policy.to(device)
    pre, post = make_pre_post_processors(config, dataset_stats=stats)
    optimizer = torch.optim.AdamW(
        policy.get_optim_params(), lr=model.lr, weight_decay=model.weight_decay
    )
    n_params = sum(p.numel() for p in policy.parameters())
    if progress:
        print(
            f"ACT: {n_params / 1e6:.1f}M parameters, {len(data)} samples from "
            f"{len(data.episodes)} episodes ({load_seconds:.1f}s to load), chunk {chunk_size} "
            f"at {fps:g} Hz, images {h}x{w} from {list(cameras)}, batch {batch_size}",
            file=sys.stderr,
        )

    pending_snapshots = sorted((float(t), Path(d)) for t, d in (snapshots or {}).items())
    for _, snap_dir in pending_snapshots:
        _prepare_out_dir(snap_dir)  # refuse a non-empty one before training, not after

    def sidecar(step: int, train_seconds: float) -> dict:
        return {
            "format_version": SIDECAR_VERSION,
            "trained_by": "policy.lerobot_adapters.train_act",
            "policy_type": "act",
            "joint_names": joint_names,
            "cameras": list(cameras),
            "camera_map": camera_map,
            "fps": fps,
            "image_size": [h, w],
            "stores": urls,
            "episodes": len(data.episodes),
            "samples": len(data),
            "seed": seed,
            "batch_size": batch_size,
            "augment_pad": augment_pad,
            "model": asdict(model),
            "parameters": n_params,
            "train": {
                "steps": step,
                "seconds": train_seconds,
                "load_seconds": load_seconds,
                "seconds_budget": seconds_budget,
                "step_budget": steps,
                "loss": _downsample(losses),
                "l1_loss": _downsample(l1s),
                "threads": governor.summary() if governor is not None else threads,
            },
        }

    losses: list[float] = []
    l1s: list[float] = []
    policy.train()
    bar = None
    if progress:
        from policy.schedule import Budget, BudgetBar

        bar = BudgetBar(Budget(steps or 10**12, seconds_budget or 0.0), "ACT")
    # the same thread policy as the compact VLA's trainer, so a benchmark compares like with like
    governor = None
    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    elif device == "cpu":
        from policy.threads import ThreadGovernor

        governor = ThreadGovernor()
    start = time.monotonic()
    step = 0
    while True:
        elapsed = time.monotonic() - start
        if steps is not None and step >= steps:
            break
        if seconds_budget is not None and elapsed >= seconds_budget:
            break
        with governor.step() if governor is not None else contextlib.nullcontext():
            raw = data.batch(rng.integers(0, len(data), batch_size))
            batch: dict[str, Any] = {
                OBS_STATE: torch.from_numpy(raw["state"]),
                ACTION: torch.from_numpy(raw["actions"]),
                "action_is_pad": torch.from_numpy(~raw["action_mask"]),
            }
            for cam, key in keys.items():
                img = torch.from_numpy(raw["images"][cam]).permute(0, 3, 1, 2).float().div_(255.0)
                batch[key] = random_shift(img, augment_pad)
            batch = pre(batch)
            loss, info = policy.forward(batch)
            if not torch.isfinite(loss):
                raise PolicyError(f"train_act: loss became {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), model.grad_clip_norm)
            optimizer.step()
        step += 1
        losses.append(float(loss.item()))
        l1s.append(float(info["l1_loss"]))
        now = time.monotonic() - start
        while pending_snapshots and now >= pending_snapshots[0][0]:
            _, snap_dir = pending_snapshots.pop(0)
            paused = time.monotonic()
            policy.eval()
            _save(policy, pre, post, _prepare_out_dir(snap_dir), snap_dir, sidecar(step, now))
            policy.train()
            start += time.monotonic() - paused  # saving is not training time
        if bar is not None:
            recent = slice(-20, None)
            bar.update(
                step, now, loss=f"{np.mean(losses[recent]):.4f}", l1=f"{np.mean(l1s[recent]):.4f}"
            )
    train_seconds = time.monotonic() - start
    if bar is not None:
        bar.close()
    torch.set_num_threads(threads_before)  # the caller's count, whatever training chose
    if step == 0:
        raise PolicyError(f"train_act: no optimiser step fitted in seconds_budget={seconds_budget}")

    policy.eval()
    try:
        _save(policy, pre, post, tmp, out_dir, sidecar(step, train_seconds))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if progress:
        print(
            f"ACT: {step} steps in {train_seconds:.1f}s, final loss {np.mean(losses[-10:]):.4f}; "
            f"saved {out_dir}",
            file=sys.stderr,
        )
    return out_dir


def _save(policy: Any, pre: Any, post: Any, tmp: Path, out_dir: Path, sidecar: dict) -> None:
    """Write the checkpoint under ``tmp`` and rename it into place: never half a checkpoint."""
    policy.save_pretrained(tmp)
    pre.save_pretrained(tmp)
    post.save_pretrained(tmp)
    (tmp / SIDECAR).write_text(json.dumps(sidecar, indent=1) + "\n")
    if out_dir.exists():
        out_dir.rmdir()  # empty (checked before training); rename cannot replace it otherwise
    os.replace(tmp, out_dir)


def _downsample(values: list[float], n: int = 200) -> list[list[float]]:
    """``[[step, mean loss over the bucket], ...]`` with at most ``n`` entries."""
    if not values:
        return []
    size = max(1, math.ceil(len(values) / n))
    return [
        [i + min(size, len(values) - i), float(np.mean(values[i : i + size]))]
        for i in range(0, len(values), size)
    ]
