"""Schema types to and from ROS 2 messages. The only place where a node touches message fields.

Every function here has an inverse and the pair is round-trip tested, so a node is a thin
shell: message in -> schema type -> library call -> schema type -> message out.

Choices that a reader of the wire format needs to know:

- Time is ``builtin_interfaces/Time`` on the wire and float64 seconds (ROS time) inside.
- An action chunk is a ``trajectory_msgs/JointTrajectory``: ``header.stamp`` is the stamp of
  the observation it was computed from, ``points[i].time_from_start`` its schedule.
  ``header.frame_id`` carries the producer (``policy``, ``script``, ``human``): a joint-space
  trajectory has no frame, and standard messages have no other field for provenance.
- The driver's committed plan (``driver/plan``) is a ``JointTrajectory`` too: ``header.stamp``
  is the observation stamp of the newest policy chunk in it, the points are the targets it will
  run at each control tick from the time it was published on; no points means no plan.
- The executed command is a ``sensor_msgs/JointState`` whose ``header.frame_id`` is the control
  source of that tick (``policy``, ``human``, ``script``, ``hold``).
- Images are ``sensor_msgs/Image`` with encoding ``rgb8``; scene objects of the twin are a
  ``visualization_msgs/MarkerArray`` (one CUBE per object, ``ns`` = object name), which RViz
  displays as it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from builtin_interfaces.msg import Duration as DurationMsg
from builtin_interfaces.msg import Time as TimeMsg
from sensor_msgs.msg import CameraInfo, Image
from sensor_msgs.msg import JointState as JointStateMsg
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from robot.schema import (
    ActionChunk,
    ControlSource,
    JointState,
    ObjectPose,
    SchemaError,
)

_NS = 1_000_000_000


def to_time(seconds: float) -> TimeMsg:
    """Float seconds -> ``builtin_interfaces/Time`` (nanosecond resolution, never negative)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise SchemaError(f"time {seconds!r} s cannot be a ROS Time (finite and >= 0)")
    total = round(seconds * _NS)
    return TimeMsg(sec=total // _NS, nanosec=total % _NS)


def from_time(msg: TimeMsg) -> float:
    return msg.sec + msg.nanosec * 1e-9


def to_duration(seconds: float) -> DurationMsg:
    total = round(seconds * _NS)
    return DurationMsg(sec=total // _NS, nanosec=total % _NS)


def from_duration(msg: DurationMsg) -> float:
    return msg.sec + msg.nanosec * 1e-9


def source_name(source: ControlSource) -> str:
    return ControlSource(source).name.lower()


def parse_source(name: str, default: ControlSource = ControlSource.POLICY) -> ControlSource:
    """``frame_id`` -> ControlSource; an empty field means ``default``, anything else unknown is
    an error that names it."""
    if not name:
        return default
    try:
        return ControlSource[name.upper()]
    except KeyError:
        valid = [s.name.lower() for s in ControlSource]
        raise SchemaError(
            f"unknown control source {name!r} in header.frame_id; valid: {valid}"
        ) from None


# --- joint states ------------------------------------------------------------------------------


def joint_state_to_msg(state: JointState, joint_names: Sequence[str]) -> JointStateMsg:
    msg = JointStateMsg()
    msg.header.stamp = to_time(state.stamp)
    msg.name = list(joint_names)
    msg.position = np.asarray(state.position, dtype=np.float64).tolist()
    msg.velocity = np.asarray(state.velocity, dtype=np.float64).tolist()
    if state.effort is not None:
        msg.effort = np.asarray(state.effort, dtype=np.float64).tolist()
    return msg


def joint_state_from_msg(msg: JointStateMsg, joint_names: Sequence[str]) -> JointState:
    """Reorders the message's joints into ``joint_names``; missing joints are an error."""
    index = {n: i for i, n in enumerate(msg.name)}
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise SchemaError(f"JointState lacks joint(s) {missing}; it has {list(msg.name)}")
    order = [index[j] for j in joint_names]
    pos = np.asarray(msg.position, dtype=np.float64)
    vel = np.asarray(msg.velocity, dtype=np.float64) if len(msg.velocity) else np.zeros(len(pos))
    eff = np.asarray(msg.effort, dtype=np.float64)[order] if len(msg.effort) else None
    return JointState(
        stamp=from_time(msg.header.stamp), position=pos[order], velocity=vel[order], effort=eff
    )


def command_to_msg(
    stamp: float, command: np.ndarray, source: ControlSource, joint_names: Sequence[str]
) -> JointStateMsg:
    """The command actually sent at a tick, tagged with its control source."""
    msg = JointStateMsg()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = source_name(source)
    msg.name = list(joint_names)
    msg.position = np.asarray(command, dtype=np.float64).tolist()
    return msg


def command_from_msg(
    msg: JointStateMsg, joint_names: Sequence[str]
) -> tuple[float, np.ndarray, ControlSource]:
    state = joint_state_from_msg(msg, joint_names)
    return state.stamp, state.position, parse_source(msg.header.frame_id, ControlSource.HOLD)


# --- action chunks -----------------------------------------------------------------------------


def chunk_to_msg(chunk: ActionChunk) -> JointTrajectory:
    msg = JointTrajectory()
    msg.header.stamp = to_time(chunk.stamp)
    msg.header.frame_id = source_name(chunk.source)
    msg.joint_names = list(chunk.joint_names)
    points = []
    for row, t in zip(chunk.positions, chunk.times, strict=True):
        p = JointTrajectoryPoint()
        p.positions = row.tolist()
        p.time_from_start = to_duration(float(t))
        points.append(p)
    msg.points = points
    return msg


def chunk_from_msg(
    msg: JointTrajectory, default_source: ControlSource = ControlSource.POLICY
) -> ActionChunk:
    """Raises SchemaError naming the problem (empty, ragged, NaN handled by the executor)."""
    if not msg.points:
        raise SchemaError("JointTrajectory has no points")
    d = len(msg.joint_names)
    for i, p in enumerate(msg.points):
        if len(p.positions) != d:
            raise SchemaError(
                f"JointTrajectory point {i} has {len(p.positions)} positions for {d} joints"
            )
    positions = np.asarray([p.positions for p in msg.points], dtype=np.float64).reshape(-1, d)
    times = np.asarray([from_duration(p.time_from_start) for p in msg.points], dtype=np.float64)
    return ActionChunk(
        stamp=from_time(msg.header.stamp),
        joint_names=tuple(msg.joint_names),
        positions=positions,
        times=times,
        source=parse_source(msg.header.frame_id, default_source),
    )


def plan_to_msg(
    plan: ActionChunk | None, now: float, joint_names: Sequence[str]
) -> JointTrajectory:
    """The executor's plan (:meth:`robot.executor.ChunkExecutor.plan`); ``None`` becomes a
    trajectory with no points stamped ``now``: nothing is queued."""
    if plan is not None:
        return chunk_to_msg(plan)
    msg = JointTrajectory()
    msg.header.stamp = to_time(now)
    msg.header.frame_id = source_name(ControlSource.POLICY)
    msg.joint_names = list(joint_names)
    return msg


def plan_from_msg(msg: JointTrajectory, joint_names: Sequence[str]) -> ActionChunk | None:
    """``None`` for an empty plan; columns reordered into ``joint_names`` (missing: an error)."""
    if not msg.points:
        return None
    plan = chunk_from_msg(msg)
    index = {n: i for i, n in enumerate(plan.joint_names)}
    missing = [j for j in joint_names if j not in index]
    if missing:
        raise SchemaError(f"plan lacks joint(s) {missing}; it has {list(plan.joint_names)}")
    return ActionChunk(
        plan.stamp,
        tuple(joint_names),
        plan.positions[:, [index[j] for j in joint_names]],
        plan.times,
        plan.source,
    )


# --- images ------------------------------------------------------------------------------------


def image_to_msg(image: np.ndarray, stamp: float, frame_id: str) -> Image:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise SchemaError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    h, w, _ = image.shape
    msg = Image()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.height, msg.width = h, w
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = w * 3
    msg.data = np.ascontiguousarray(image).tobytes()
    return msg


def image_from_msg(msg: Image) -> tuple[np.ndarray, float]:
    """Returns an RGB ``(H, W, 3)`` uint8 array (bgr8 is converted) and its stamp."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise SchemaError(f"image encoding {msg.encoding!r} is not supported (rgb8, bgr8)")
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.step < msg.width * 3 or buf.size != msg.step * msg.height:
        raise SchemaError(
            f"image data is {buf.size} bytes for {msg.height} rows of step {msg.step}"
        )
    img = buf.reshape(msg.height, msg.step)[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    if msg.encoding == "bgr8":
        img = img[:, :, ::-1]
    return np.ascontiguousarray(img), from_time(msg.header.stamp)


def camera_info_to_msg(
    width: int, height: int, k: np.ndarray, stamp: float, frame_id: str
) -> CameraInfo:
    """Pinhole intrinsics ``k`` (3x3), no distortion (plumb_bob with zero coefficients)."""
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    msg = CameraInfo()
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = k.reshape(-1).tolist()
    msg.r = np.eye(3).reshape(-1).tolist()
    p = np.zeros((3, 4))
    p[:, :3] = k
    msg.p = p.reshape(-1).tolist()
    return msg


def camera_info_from_msg(msg: CameraInfo) -> tuple[int, int, np.ndarray]:
    return int(msg.width), int(msg.height), np.asarray(msg.k, dtype=np.float64).reshape(3, 3)


# --- scene objects -----------------------------------------------------------------------------


def objects_to_msg(objects: Mapping[str, ObjectPose], stamp: float, frame_id: str) -> MarkerArray:
    out = MarkerArray()
    for i, (name, obj) in enumerate(sorted(objects.items())):
        m = Marker()
        m.header.stamp = to_time(stamp)
        m.header.frame_id = frame_id
        m.ns = name
        m.id = i
        m.type = Marker.CUBE
        m.action = Marker.ADD
        px, py, pz = (float(v) for v in obj.position)
        qw, qx, qy, qz = (float(v) for v in obj.quaternion)
        m.pose.position.x, m.pose.position.y, m.pose.position.z = px, py, pz
        m.pose.orientation.w, m.pose.orientation.x = qw, qx
        m.pose.orientation.y, m.pose.orientation.z = qy, qz
        sx, sy, sz = (float(v) for v in obj.size)
        m.scale.x, m.scale.y, m.scale.z = sx, sy, sz
        r, g, b, a = (float(v) for v in obj.rgba)
        m.color.r, m.color.g, m.color.b, m.color.a = r, g, b, a
        out.markers.append(m)
    return out


def objects_from_msg(msg: MarkerArray) -> tuple[dict[str, ObjectPose], float]:
    objects: dict[str, ObjectPose] = {}
    stamp = 0.0
    for m in msg.markers:
        stamp = max(stamp, from_time(m.header.stamp))
        p, q = m.pose.position, m.pose.orientation
        objects[m.ns] = ObjectPose(
            name=m.ns,
            position=np.array([p.x, p.y, p.z]),
            quaternion=np.array([q.w, q.x, q.y, q.z]),
            size=np.array([m.scale.x, m.scale.y, m.scale.z]),
            rgba=np.array([m.color.r, m.color.g, m.color.b, m.color.a]),
        )
    return objects, stamp
