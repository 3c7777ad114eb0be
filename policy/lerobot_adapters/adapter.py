"""A LeRobot checkpoint (ACT, SmolVLA, pi0, pi0.5) as a :class:`~policy.base.ChunkPolicy`.

Why through LeRobot's own loaders: a LeRobot checkpoint is three things that must agree, the
model (``config.json`` + ``model.safetensors``), the pre-processor (normalisation statistics,
tokenizer, batching) and the post-processor (unnormalisation). ``PreTrainedPolicy.from_pretrained``
and ``make_pre_post_processors(..., pretrained_path=...)`` load all three from the same place, so
the statistics a model was trained with travel with it and deployment cannot disagree with
training (ARCHITECTURE.md section 5).

Mapping (our types -> LeRobot batch, before the pre-processor)::

    obs.joint_pos (D,) float32           -> "observation.state" (D,)
    obs.images[cam] (H, W, 3) uint8 RGB  -> "observation.images.<camera_map.get(cam, cam)>"
                                            (3, h, w) float32 in [0, 1], resized to the (h, w)
                                            the checkpoint declares (bilinear, antialiased)
    instruction                          -> "task"
    committed (k, D) joint targets       -> "action" (1, k, D), normalised by the pre-processor,
                                            then RTC's ``prev_chunk_left_over`` (see below)

and back: ``predict_action_chunk`` -> post-processor (unnormalise, to CPU) -> ``(H, D)`` joint
targets in ``joint_names`` order, due at ``obs.stamp + chunk_dt * (1..H)``.

Real-time chunking: for backends that support it (``policy.supports_rtc()``: SmolVLA, pi0,
pi0.5) RTC is switched on at load and ``committed`` becomes RTC's guidance prefix
(``inference_delay = execution_horizon = k``), so the new chunk continues from the steps the
executor will run anyway; the first ``k`` returned steps are then set to ``committed`` exactly,
as :mod:`policy.base` promises. ACT has no RTC: it ignores ``committed``.

What each backend needs besides its checkpoint directory (LeRobot's own behaviour, not ours):
SmolVLA builds its VLM from ``config.vlm_model_name`` (config and processor only, the weights
come from the checkpoint), so ``lerobot/smolvla_base`` also needs
``HuggingFaceTB/SmolVLM2-500M-Video-Instruct`` from the hub or a local copy named in its config,
and SmolVLM's processor needs ``num2words`` (``lerobot[smolvla]``). pi0/pi0.5 tokenize with
``google/paligemma-3b-pt-224`` (gated): pass ``tokenizer=`` a local copy offline. Where the
installed transformers is newer than LeRobot 0.6 supports, :mod:`.compat` patches the two
calls that changed.

What a LeRobot checkpoint does not say, the caller does: joint names (LeRobot records only the
action dimension, which is checked) and the control rate of the data (``fps``). Checkpoints
written by :func:`policy.lerobot_adapters.train_act` carry both in ``vla_dojo.json`` beside the
model; for any other checkpoint pass ``joint_names`` and ``fps``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policy.base import ChunkPolicy, PolicyError
from policy.lerobot_adapters.compat import ensure_compatible
from robot.schema import ActionChunk, ControlSource, Observation

SIDECAR = "vla_dojo.json"
"""What our trainer writes beside a LeRobot checkpoint: joints, cameras, fps, provenance."""

SIDECAR_VERSION = 1
OBS_STATE = "observation.state"
IMAGE_PREFIX = "observation.images."
ACTION = "action"
_PRE = "policy_preprocessor.json"
_POST = "policy_postprocessor.json"


def image_key(camera: str, camera_map: Mapping[str, str] | None = None) -> str:
    """The LeRobot feature key our ``camera`` feeds (``camera_map`` may rename it)."""
    name = (camera_map or {}).get(camera, camera)
    return name if name.startswith(IMAGE_PREFIX) else IMAGE_PREFIX + name


def read_sidecar(path: str | Path) -> dict[str, Any] | None:
    """The ``vla_dojo.json`` beside a local checkpoint, or None if it has none."""
    file = Path(path) / SIDECAR
    if not file.is_file():
        return None
    data = json.loads(file.read_text())
    if data.get("format_version") != SIDECAR_VERSION:
        raise PolicyError(
            f"{file}: format_version {data.get('format_version')!r}, this vla-dojo reads "
            f"{SIDECAR_VERSION}"
        )
    return data


def _check_local_checkpoint(path: Path) -> None:
    """Refuse a directory LeRobot would half-load (pi0 silently returns random weights)."""
    needed = ["config.json", "model.safetensors", _PRE, _POST]
    missing = [n for n in needed if not (path / n).is_file()]
    if missing:
        raise PolicyError(
            f"{path} is not a complete LeRobot checkpoint: missing {missing} (a LeRobot >= 0.4 "
            "save_pretrained writes the model and, beside it, the policy pre/post processors "
            "that hold the normalisation statistics)"
        )


def _processor_overrides(
    path: str, local: bool, file: str, device: str, tokenizer: str | None
) -> dict[str, dict[str, Any]]:
    """Overrides for the saved steps that exist: device placement and, if asked, the tokenizer."""
    steps: list[str] = []
    if local:
        cfg = json.loads((Path(path) / file).read_text())
        steps = [s.get("registry_name") or s.get("class", "") for s in cfg.get("steps", [])]
    overrides: dict[str, dict[str, Any]] = {}
    if file == _PRE:
        if not local or "device_processor" in steps:
            overrides["device_processor"] = {"device": device}
        if tokenizer is not None:
            if local and "tokenizer_processor" not in steps:
                raise PolicyError(
                    f"{path}: tokenizer={tokenizer!r} given, but its pre-processor has no "
                    f"tokenizer step (steps: {steps})"
                )
            overrides["tokenizer_processor"] = {"tokenizer_name": tokenizer}
    return overrides


class LeRobotPolicy(ChunkPolicy):
    """A loaded LeRobot policy with its processors. Build it with :meth:`load`."""

    def __init__(
        self,
        policy: Any,
        preprocessor: Any,
        postprocessor: Any,
        *,
        joint_names: Sequence[str],
        cameras: Sequence[str],
        camera_map: Mapping[str, str] | None,
        chunk_dt: float,
        source: str,
    ) -> None:
        self.policy = policy
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.joint_names = tuple(joint_names)
        self.cameras = tuple(cameras)
        self.camera_map = dict(camera_map or {})
        self.chunk_dt = float(chunk_dt)
        self.source = source
        cfg = policy.config
        self.kind = str(cfg.type)
        self.horizon = int(cfg.chunk_size)
        self._keys = {cam: image_key(cam, self.camera_map) for cam in self.cameras}
        self._sizes = {
            key: (int(ft.shape[1]), int(ft.shape[2])) for key, ft in cfg.image_features.items()
        }
        sizes = set(self._sizes.values())
        self.input_size = sizes.pop() if len(sizes) == 1 else None
        rtc_config = getattr(cfg, "rtc_config", None)
        self.rtc = bool(policy.supports_rtc()) and bool(getattr(rtc_config, "enabled", False))

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        path_or_hub_id: str | Path,
        joint_names: Sequence[str] | None = None,
        cameras: Sequence[str] | None = None,
        camera_map: Mapping[str, str] | None = None,
        device: str = "cpu",
        *,
        fps: float | None = None,
        tokenizer: str | None = None,
        rtc: bool = True,
    ) -> LeRobotPolicy:
        """Load a LeRobot checkpoint from a local directory or a hub id.

        ``joint_names``: the action/state order of the checkpoint; ``cameras``: our cameras it
        reads (default: every image feature it declares, through ``camera_map``);
        ``camera_map``: our camera name -> LeRobot camera name (``{"front": "top"}`` feeds
        ``observation.images.top`` from our ``front``); ``fps``: the rate of the data it was
        trained on, which sets ``chunk_dt``. All four default to ``vla_dojo.json`` when the
        checkpoint has one (and must then agree with it). ``tokenizer``: a local tokenizer
        directory replacing the one the pre-processor names (the pi0 family names the gated
        ``google/paligemma-3b-pt-224``). ``rtc``: switch RTC on where the backend has it.
        """
        from lerobot.configs import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        source = str(path_or_hub_id)
        local = Path(source).is_dir()
        side: dict[str, Any] = {}
        if local:
            _check_local_checkpoint(Path(source))
            side = read_sidecar(source) or {}
        elif Path(source).exists() or source.startswith((".", "/", "~")):
            raise PolicyError(f"{source}: not a checkpoint directory (and not a hub id)")
        joint_names, cameras, camera_map, fps = cls._resolve(
            source, side, joint_names, cameras, camera_map, fps
        )

        config = PreTrainedConfig.from_pretrained(source)
        config.device = device
        ensure_compatible(config.type)
        if rtc and getattr(config, "rtc_config", "absent") is None:
            from lerobot.policies.rtc.configuration_rtc import RTCConfig

            config.rtc_config = RTCConfig(enabled=True, execution_horizon=config.chunk_size)
        policy = get_policy_class(config.type).from_pretrained(source, config=config)
        policy.to(device)
        policy.eval()
        pre, post = make_pre_post_processors(
            config,
            pretrained_path=source,
            preprocessor_overrides=_processor_overrides(source, local, _PRE, device, tokenizer),
            postprocessor_overrides=_processor_overrides(source, local, _POST, device, None),
        )
        if cameras is None:
            inverse = {image_key(c, camera_map): c for c in (camera_map or {})}
            cameras = [
                inverse.get(k, k.removeprefix(IMAGE_PREFIX))
                for k in config.image_features
                if not k.removeprefix(IMAGE_PREFIX).startswith("empty_camera_")
            ]
        self = cls(
            policy,
            pre,
            post,
            joint_names=joint_names,
            cameras=cameras,
            camera_map=camera_map,
            chunk_dt=1.0 / fps,
            source=source,
        )
        self._validate(pre)
        return self

    @staticmethod
    def _resolve(
        source: str,
        side: Mapping[str, Any],
        joint_names: Sequence[str] | None,
        cameras: Sequence[str] | None,
        camera_map: Mapping[str, str] | None,
        fps: float | None,
    ) -> tuple[tuple[str, ...], list[str] | None, dict[str, str], float]:
        """Merge the caller's arguments with the checkpoint's sidecar; disagreeing is an error."""
        given = {
            "joint_names": None if joint_names is None else list(joint_names),
            "cameras": None if cameras is None else list(cameras),
            "camera_map": None if camera_map is None else dict(camera_map),
            "fps": None if fps is None else float(fps),
        }
        merged: dict[str, Any] = {}
        for key, value in given.items():
            recorded = side.get(key)
            if value is not None and recorded is not None and value != recorded:
                raise PolicyError(
                    f"{source}: {key}={value} given, but the checkpoint was trained with "
                    f"{key}={recorded} ({SIDECAR})"
                )
            merged[key] = value if value is not None else recorded
        if not merged["joint_names"]:
            raise PolicyError(
                f"{source}: pass joint_names=... (the action order of this checkpoint); a "
                "LeRobot checkpoint records only the action dimension"
            )
        fps = merged["fps"]
        if fps is None or not (math.isfinite(fps) and fps > 0):
            raise PolicyError(
                f"{source}: pass fps=... (> 0), the rate of the data this checkpoint was trained "
                f"on; it sets the time between chunk steps (got {fps})"
            )
        return tuple(merged["joint_names"]), merged["cameras"], merged["camera_map"] or {}, fps

    def _validate(self, pre: Any) -> None:
        """Every mismatch between the checkpoint and what we will feed it, named, at load."""
        cfg = self.policy.config
        d = len(self.joint_names)
        action = cfg.output_features.get(ACTION)
        if action is None:
            raise PolicyError(f"{self.describe()}: checkpoint declares no '{ACTION}' output")
        if tuple(action.shape) != (d,):
            raise PolicyError(
                f"{self.describe()}: checkpoint predicts actions of shape {tuple(action.shape)}; "
                f"joint_names {list(self.joint_names)} has {d}"
            )
        state = cfg.input_features.get(OBS_STATE)
        if state is not None and tuple(state.shape) != (d,):
            raise PolicyError(
                f"{self.describe()}: checkpoint reads '{OBS_STATE}' of shape "
                f"{tuple(state.shape)}; joint_names {list(self.joint_names)} has {d}"
            )
        declared = list(cfg.image_features)
        unknown = [c for c, k in self._keys.items() if k not in cfg.image_features]
        if unknown:
            raise PolicyError(
                f"{self.describe()}: camera(s) {unknown} map to "
                f"{[self._keys[c] for c in unknown]}, which the checkpoint does not read; it "
                f"reads {declared} (use camera_map={{ours: theirs}})"
            )
        fed = set(self._keys.values())
        unfed = [
            k
            for k in declared
            if k not in fed and not k.removeprefix(IMAGE_PREFIX).startswith("empty_camera_")
        ]
        if unfed:
            raise PolicyError(
                f"{self.describe()}: checkpoint reads {unfed}, which none of cameras "
                f"{list(self.cameras)} feed (camera_map={self.camera_map})"
            )
        self._check_stats(pre, cfg)

    def _check_stats(self, pre: Any, cfg: Any) -> None:
        """Without statistics LeRobot's normaliser silently passes values through."""
        from lerobot.configs import NormalizationMode
        from lerobot.processor import NormalizerProcessorStep

        norm = next((s for s in pre.steps if isinstance(s, NormalizerProcessorStep)), None)
        if norm is None:
            raise PolicyError(f"{self.describe()}: its pre-processor has no normaliser step")
        for key, ft in {**cfg.input_features, **cfg.output_features}.items():
            mode = norm.norm_map.get(ft.type, NormalizationMode.IDENTITY)
            if mode is NormalizationMode.IDENTITY:
                continue
            if key not in norm._tensor_stats:
                raise PolicyError(
                    f"{self.describe()}: feature '{key}' is normalised with {mode.value} but the "
                    "checkpoint's pre-processor holds no statistics for it"
                )

    # -- inference ----------------------------------------------------------------------------

    def describe(self) -> str:
        return f"LeRobotPolicy({getattr(self, 'kind', '?')} from {getattr(self, 'source', '?')})"

    def reset(self) -> None:
        self.policy.reset()

    def _batch(self, obs: Observation, instruction: str) -> dict[str, Any]:
        import torch

        from policy.data import resize_frames  # the resize the training data went through

        self.check_observation(obs)
        if not np.all(np.isfinite(obs.joint_pos)):
            raise PolicyError(f"{self.describe()}: joint_pos has NaN/Inf: {obs.joint_pos.tolist()}")
        if not isinstance(instruction, str):
            raise PolicyError(f"{self.describe()}: instruction must be a str, got {instruction!r}")
        batch: dict[str, Any] = {
            OBS_STATE: torch.from_numpy(np.asarray(obs.joint_pos, dtype=np.float32).copy()),
            "task": instruction,
        }
        for cam in self.cameras:
            img = obs.images[cam]
            if (
                not isinstance(img, np.ndarray)
                or img.dtype != np.uint8
                or img.ndim != 3
                or img.shape[2] != 3
            ):
                raise PolicyError(
                    f"{self.describe()}: image '{cam}' must be (H, W, 3) uint8 RGB, got "
                    f"{getattr(img, 'shape', None)} {getattr(img, 'dtype', type(img).__name__)}"
                )
            key = self._keys[cam]
            frame = resize_frames(img[None], self._sizes[key])[0]
            batch[key] = torch.from_numpy(frame).permute(2, 0, 1).float().div_(255.0)
        return batch

    def _committed(self, committed: np.ndarray | None) -> np.ndarray | None:
        if committed is None:
            return None
        c = np.asarray(committed, dtype=np.float64)
        d = len(self.joint_names)
        if c.ndim != 2 or c.shape[1] != d:
            raise PolicyError(
                f"{self.describe()}: committed must be (k, {d}) targets for "
                f"{list(self.joint_names)}, got shape {c.shape}"
            )
        if not np.all(np.isfinite(c)):
            raise PolicyError(f"{self.describe()}: committed has NaN/Inf")
        return c[: self.horizon] if len(c) else None

    def predict(
        self, obs: Observation, instruction: str, committed: np.ndarray | None = None
    ) -> ActionChunk:
        """The next chunk from ``obs``; see the module docstring for the mapping and RTC."""
        import torch

        batch = self._batch(obs, instruction)
        prefix = self._committed(committed)
        kwargs: dict[str, Any] = {}
        if prefix is not None and self.rtc:
            batch[ACTION] = torch.from_numpy(prefix.astype(np.float32))[None]
        with torch.no_grad():
            processed = self.preprocessor(batch)
            guide = processed.pop(ACTION, None)  # LeRobot's batch always has the key
            if guide is not None and prefix is not None:
                k = prefix.shape[0]
                kwargs = {
                    "prev_chunk_left_over": guide,
                    "inference_delay": k,
                    "execution_horizon": k,
                }
        actions = self.policy.predict_action_chunk(processed, **kwargs)
        with torch.no_grad():
            actions = self.postprocessor(actions)
        positions = np.asarray(actions.detach().to("cpu", torch.float64).numpy())
        if positions.ndim == 3:
            positions = positions[0]
        if positions.shape != (self.horizon, len(self.joint_names)):
            raise PolicyError(
                f"{self.describe()}: model returned a chunk of shape {positions.shape}, expected "
                f"({self.horizon}, {len(self.joint_names)})"
            )
        if not np.all(np.isfinite(positions)):
            raise PolicyError(f"{self.describe()}: model returned NaN/Inf actions")
        if prefix is not None and self.rtc:
            positions = positions.copy()
            positions[: len(prefix)] = prefix
        return ActionChunk(
            stamp=obs.stamp,
            joint_names=self.joint_names,
            positions=positions,
            times=self.chunk_times(),
            source=ControlSource.POLICY,
        )
