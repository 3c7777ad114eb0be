"""The types every package speaks: observations, action chunks, robot specs, features.

Why a schema module: ROS messages, LeRobot batches and zarr arrays all describe the same few
things. Converting at the edges (``dojo/ros/convert.py``, ``episodes/lerobot.py``) into these
typed objects keeps every library independent of its transport, and puts shapes and units in
one place.

Conventions, everywhere in vla-dojo:

- time is ROS time in float64 seconds (``/clock`` in the twin, the system clock on a robot);
  never a mix of ``time.time()`` and ``time.monotonic()``;
- joint positions in rad (prismatic joints in m), velocities in rad/s, accelerations in rad/s^2;
  a gripper is one more joint of the arm, in its own units (see ``RobotSpec.joint_units``);
- Cartesian positions in m, in the robot's base frame (x forward, y left, z up);
- images are RGB, ``uint8``, shape ``(H, W, 3)``, row-major from the top-left pixel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

from robot.description import (
    DescriptionError,
    HandDescription,
    ModelEdits,
    TwinDescription,
    from_mapping,
)

FloatArray = np.ndarray  # float64 or float32 array; shapes are given in each docstring


class SchemaError(ValueError):
    """A value does not fit the schema. The message names the offending field."""


class ControlSource(IntEnum):
    """Who produced the action that was sent at a control tick. Stored as ``uint8``.

    ``HOLD`` marks ticks where no valid action existed and the arm held its position
    (chunk exhausted, stale observation, watchdog, e-stop); the learner must not treat those
    as policy actions.
    """

    POLICY = 0
    HUMAN = 1
    SCRIPT = 2
    HOLD = 3


@dataclass(frozen=True)
class CameraSpec:
    """One camera of a robot. ``name`` is used in topic names: ``camera/<name>/image_raw``."""

    name: str
    width: int = 640
    height: int = 480
    fps: float = 30.0

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise SchemaError(f"camera name {self.name!r} must be a non-empty [A-Za-z0-9_] word")
        if self.width <= 0 or self.height <= 0:
            raise SchemaError(f"camera {self.name!r}: size {self.width}x{self.height} must be > 0")
        if not self.fps > 0:
            raise SchemaError(f"camera {self.name!r}: fps={self.fps} must be > 0")


def _as_vector(name: str, value: Any, size: int, *, field_of: str) -> np.ndarray:
    if value is None:
        raise SchemaError(f"{field_of}: '{name}' is missing; a robot must state its limits")
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (size,):
        raise SchemaError(f"{field_of}: '{name}' has {arr.size} values, expected {size}")
    return arr


@dataclass(frozen=True, eq=False)
class RobotSpec:
    """What the control path must know about an arm, with the limits it must never exceed.

    Arrays are float64 of shape ``(D,)`` with ``D = len(joint_names)``, in joint order.
    ``max_step`` bounds the change of the commanded position in one control tick; it is the
    last line of defence against a jump that velocity limiting at a wrong rate would allow.
    The workspace box bounds the end-effector position (m, base frame).

    It is the robot's one description (built from its preset): besides joints and limits,
    ``model`` names the MJCF (``<package>:<path inside it>``, an absolute path, or ``dh:<table>``
    for an arm with DH kinematics only) and ``model_edits`` what to fix in it as shipped,
    ``gripper_open``/``gripper_closed`` the gripper joint's
    values fully open and closed (config units; teleop and the scripted operator command them),
    ``twin`` what the MuJoCo twin needs beyond the MJCF and ``hand`` how the scripted operator
    grasps (:mod:`robot.description`).

    Construct it with :meth:`from_mapping` from config: it refuses a config without limits.
    """

    name: str
    joint_names: tuple[str, ...]
    position_lower: np.ndarray
    position_upper: np.ndarray
    velocity_limit: np.ndarray
    acceleration_limit: np.ndarray
    max_step: np.ndarray
    home: np.ndarray
    workspace_lower: np.ndarray
    workspace_upper: np.ndarray
    control_hz: float
    cameras: tuple[CameraSpec, ...] = ()
    joint_units: tuple[str, ...] = ()
    gripper_joint: str | None = None
    ee_site: str = ""
    model: str = ""
    model_edits: ModelEdits | None = None
    gripper_open: float | None = None
    gripper_closed: float | None = None
    twin: TwinDescription | None = None
    hand: HandDescription | None = None

    def __post_init__(self) -> None:
        where = f"robot '{self.name}'"
        if not self.joint_names:
            raise SchemaError(f"{where}: joint_names is empty")
        if len(set(self.joint_names)) != len(self.joint_names):
            raise SchemaError(f"{where}: joint_names has duplicates: {list(self.joint_names)}")
        d = len(self.joint_names)
        for key in (
            "position_lower",
            "position_upper",
            "velocity_limit",
            "acceleration_limit",
            "max_step",
            "home",
        ):
            arr = _as_vector(key, getattr(self, key), d, field_of=where)
            if not np.all(np.isfinite(arr)):
                raise SchemaError(f"{where}: '{key}' must be finite, got {arr.tolist()}")
            object.__setattr__(self, key, arr)
        for key in ("workspace_lower", "workspace_upper"):
            arr = _as_vector(key, getattr(self, key), 3, field_of=where)
            if not np.all(np.isfinite(arr)):
                raise SchemaError(f"{where}: '{key}' must be finite, got {arr.tolist()}")
            object.__setattr__(self, key, arr)
        for i, j in enumerate(self.joint_names):
            if not self.position_lower[i] < self.position_upper[i]:
                raise SchemaError(
                    f"{where}: joint '{j}' position_lower={self.position_lower[i]} is not below "
                    f"position_upper={self.position_upper[i]}"
                )
            for key in ("velocity_limit", "acceleration_limit", "max_step"):
                if not getattr(self, key)[i] > 0:
                    raise SchemaError(
                        f"{where}: joint '{j}' {key}={getattr(self, key)[i]} must be > 0"
                    )
            if not self.position_lower[i] <= self.home[i] <= self.position_upper[i]:
                raise SchemaError(
                    f"{where}: joint '{j}' home={self.home[i]} is outside "
                    f"[{self.position_lower[i]}, {self.position_upper[i]}]"
                )
        if not np.all(self.workspace_lower < self.workspace_upper):
            raise SchemaError(
                f"{where}: workspace_lower={self.workspace_lower.tolist()} must be below "
                f"workspace_upper={self.workspace_upper.tolist()} on every axis"
            )
        if not (math.isfinite(self.control_hz) and self.control_hz > 0):
            raise SchemaError(f"{where}: control_hz={self.control_hz} must be > 0")
        if self.joint_units and len(self.joint_units) != d:
            raise SchemaError(f"{where}: joint_units has {len(self.joint_units)} entries, not {d}")
        if self.gripper_joint is not None and self.gripper_joint not in self.joint_names:
            raise SchemaError(
                f"{where}: gripper_joint '{self.gripper_joint}' is not one of {self.joint_names}"
            )
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise SchemaError(f"{where}: camera names have duplicates: {names}")
        if (self.gripper_open is None) != (self.gripper_closed is None):
            raise SchemaError(f"{where}: give both gripper_open and gripper_closed, or neither")
        if self.gripper_open is not None and self.gripper_joint is None:
            raise SchemaError(f"{where}: gripper_open/gripper_closed without a gripper_joint")
        if self.hand is not None and self.gripper_open is None:
            raise SchemaError(f"{where}: a hand needs gripper_open and gripper_closed")

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    @property
    def control_period(self) -> float:
        return 1.0 / self.control_hz

    def joint_index(self, names: Sequence[str]) -> np.ndarray:
        """Indices of ``names`` in this robot's joint order; unknown names are an error."""
        lookup = {n: i for i, n in enumerate(self.joint_names)}
        unknown = [n for n in names if n not in lookup]
        if unknown:
            raise SchemaError(
                f"robot '{self.name}' has no joint(s) {unknown}; its joints are "
                f"{list(self.joint_names)}"
            )
        return np.asarray([lookup[n] for n in names], dtype=np.intp)

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> RobotSpec:
        """Build from a plain mapping (a resolved config section).

        Required keys: ``name``, ``joint_names``, ``limits`` with ``position_lower``,
        ``position_upper``, ``velocity``, ``acceleration``, ``max_step``; ``home``,
        ``workspace`` with ``lower``/``upper``; ``control_hz``. A missing key names itself.
        """
        name = str(cfg.get("name") or "<unnamed>")
        where = f"robot '{name}'"
        limits = cfg.get("limits")
        if not limits:
            raise SchemaError(f"{where}: 'limits' is missing; a robot config must state its limits")
        workspace = cfg.get("workspace")
        if not workspace:
            raise SchemaError(f"{where}: 'workspace' (end-effector box) is missing")

        def need(section: Mapping[str, Any], key: str, prefix: str) -> Any:
            if key not in section or section[key] is None:
                raise SchemaError(f"{where}: '{prefix}{key}' is missing")
            return section[key]

        cameras = tuple(
            CameraSpec(
                name=str(c["name"]),
                width=int(c.get("width", 640)),
                height=int(c.get("height", 480)),
                fps=float(c.get("fps", 30.0)),
            )
            for c in (cfg.get("cameras") or [])
        )
        try:
            edits = from_mapping(ModelEdits, cfg.get("model_edits"), f"{where}: 'model_edits'")
            twin = from_mapping(TwinDescription, cfg.get("twin"), f"{where}: 'twin'")
            hand = from_mapping(HandDescription, cfg.get("hand"), f"{where}: 'hand'")
        except DescriptionError as err:
            raise SchemaError(str(err)) from None

        def number(key: str) -> float | None:
            return None if cfg.get(key) is None else float(cfg[key])

        return cls(
            name=name,
            joint_names=tuple(str(j) for j in need(cfg, "joint_names", "")),
            position_lower=need(limits, "position_lower", "limits."),
            position_upper=need(limits, "position_upper", "limits."),
            velocity_limit=need(limits, "velocity", "limits."),
            acceleration_limit=need(limits, "acceleration", "limits."),
            max_step=need(limits, "max_step", "limits."),
            home=need(cfg, "home", ""),
            workspace_lower=need(workspace, "lower", "workspace."),
            workspace_upper=need(workspace, "upper", "workspace."),
            control_hz=float(need(cfg, "control_hz", "")),
            cameras=cameras,
            joint_units=tuple(str(u) for u in (cfg.get("joint_units") or ())),
            gripper_joint=cfg.get("gripper_joint"),
            ee_site=str(cfg.get("ee_site") or ""),
            model=str(cfg.get("model") or ""),
            model_edits=edits,
            gripper_open=number("gripper_open"),
            gripper_closed=number("gripper_closed"),
            twin=twin,
            hand=hand,
        )


@dataclass(frozen=True, eq=False)
class JointState:
    """Measured arm state at ``stamp`` (ROS time, s). ``position``/``velocity``: ``(D,)``."""

    stamp: float
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Observation:
    """What a policy or critic sees at one instant.

    ``stamp``: ROS time (s) of the joint state. ``joint_pos``/``joint_vel``: ``(D,)`` float32.
    ``images``: camera name -> ``(H, W, 3)`` uint8 RGB. ``image_stamps``: camera name -> ROS
    time (s) each frame was captured; a frame may be older than ``stamp`` by up to one camera
    period.
    """

    stamp: float
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    images: Mapping[str, np.ndarray] = field(default_factory=dict)
    image_stamps: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        jp = np.asarray(self.joint_pos, dtype=np.float32).reshape(-1)
        jv = np.asarray(self.joint_vel, dtype=np.float32).reshape(-1)
        if jp.shape != jv.shape:
            raise SchemaError(f"Observation: joint_pos {jp.shape} and joint_vel {jv.shape} differ")
        object.__setattr__(self, "joint_pos", jp)
        object.__setattr__(self, "joint_vel", jv)
        for cam, img in self.images.items():
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                raise SchemaError(
                    f"Observation: image '{cam}' must be (H, W, 3) uint8 RGB, "
                    f"got {img.shape} {img.dtype}"
                )

    def age(self, now: float) -> float:
        """Seconds between the joint state and ``now``."""
        return now - self.stamp


@dataclass(frozen=True, eq=False)
class ActionChunk:
    """A short schedule of joint position targets computed from one observation.

    ``stamp``: ROS time (s) of the observation it was computed from.
    ``joint_names``: the joints the columns of ``positions`` refer to (any order; the executor
    maps them onto the robot and refuses unknown names).
    ``positions``: ``(H, D)`` float64 targets. ``times``: ``(H,)`` seconds from ``stamp``,
    strictly increasing, so step ``i`` is due at ``stamp + times[i]``.
    ``source``: who produced it.
    """

    stamp: float
    joint_names: tuple[str, ...]
    positions: np.ndarray
    times: np.ndarray
    source: ControlSource = ControlSource.POLICY

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        times = np.asarray(self.times, dtype=np.float64).reshape(-1)
        object.__setattr__(self, "joint_names", tuple(self.joint_names))
        if pos.ndim != 2:
            raise SchemaError(f"ActionChunk: positions must be (H, D), got shape {pos.shape}")
        if pos.shape[0] == 0:
            raise SchemaError("ActionChunk: positions is empty (H = 0)")
        if pos.shape[1] != len(self.joint_names):
            raise SchemaError(
                f"ActionChunk: positions has {pos.shape[1]} columns but joint_names has "
                f"{len(self.joint_names)}"
            )
        if times.shape != (pos.shape[0],):
            raise SchemaError(
                f"ActionChunk: times has shape {times.shape}, expected ({pos.shape[0]},)"
            )
        if not math.isfinite(self.stamp):
            raise SchemaError(f"ActionChunk: stamp={self.stamp} is not finite")
        if not np.all(np.isfinite(times)):
            raise SchemaError("ActionChunk: times contains NaN/Inf")
        if times.size > 1 and not np.all(np.diff(times) > 0):
            raise SchemaError(f"ActionChunk: times must be strictly increasing, got {times}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "source", ControlSource(self.source))

    @property
    def horizon(self) -> int:
        return int(self.positions.shape[0])

    @property
    def due(self) -> np.ndarray:
        """Absolute ROS time (s) at which each step is due: ``stamp + times``, ``(H,)``."""
        return self.stamp + self.times

    @property
    def end_time(self) -> float:
        return float(self.stamp + self.times[-1])


@dataclass(frozen=True)
class FeatureSpec:
    """One recorded feature: how it is stored and what its axes mean.

    ``shape`` is per step (the store adds a leading time axis). ``names`` labels the last axis
    (joint names for joint vectors, ``("height", "width", "channel")`` for images).
    """

    key: str
    dtype: str
    shape: tuple[int, ...]
    names: tuple[str, ...] = ()
    unit: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "names": list(self.names),
            "unit": self.unit,
        }

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> FeatureSpec:
        return cls(
            key=key,
            dtype=str(data["dtype"]),
            shape=tuple(int(s) for s in data["shape"]),
            names=tuple(str(n) for n in data.get("names", ())),
            unit=str(data.get("unit", "")),
        )


def features_for(spec: RobotSpec) -> dict[str, FeatureSpec]:
    """The features an episode of ``spec`` records, keyed by their path in the store."""
    d = spec.dof
    joints = spec.joint_names
    feats = {
        "obs/joint_pos": FeatureSpec("obs/joint_pos", "float32", (d,), joints, "rad"),
        "obs/joint_vel": FeatureSpec("obs/joint_vel", "float32", (d,), joints, "rad/s"),
        "action": FeatureSpec("action", "float32", (d,), joints, "rad"),
        "control_source": FeatureSpec("control_source", "uint8", (), (), "ControlSource"),
        "t": FeatureSpec("t", "float64", (), (), "s"),
    }
    for cam in spec.cameras:
        key = f"obs/images/{cam.name}"
        feats[key] = FeatureSpec(
            key, "uint8", (cam.height, cam.width, 3), ("height", "width", "channel"), "rgb"
        )
    return feats


@dataclass(frozen=True, eq=False)
class ObjectPose:
    """Ground-truth pose of a scene object (the twin) or a perceived one (a detector).

    ``position``: ``(3,)`` m in the robot base frame; ``quaternion``: ``(4,)`` w, x, y, z;
    ``size``: ``(3,)`` full extents in m, for display; ``rgba``: ``(4,)`` in [0, 1].
    """

    name: str
    position: np.ndarray
    quaternion: np.ndarray
    size: np.ndarray = field(default_factory=lambda: np.zeros(3))
    rgba: np.ndarray = field(default_factory=lambda: np.ones(4))


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one camera, as ``sensor_msgs/CameraInfo`` states them.

    Pixel coordinates as in OpenCV and ROS: ``u`` right, ``v`` down, ``(0, 0)`` the centre of
    the top-left pixel. ``frame_id``: the camera's optical frame (z forward, x right, y down).
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    frame_id: str = ""

    @property
    def K(self) -> np.ndarray:
        """The ``(3, 3)`` camera matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])
