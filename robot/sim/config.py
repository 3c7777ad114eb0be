"""The twin's and the tasks' settings, in a module light enough for every config load.

``dojo/conf`` registers :class:`TwinConfig` (the ``sim`` section) and :class:`TaskConfig` (the
``task`` group) as the hydra schema, so they must not import MuJoCo: a config load on a laptop
(``dojo <cmd> --help``, validation before anything moves) reads them. ``robot.sim.twin`` and
``robot.sim.tasks`` build on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from robot.registry import did_you_mean
from robot.sim.clock import ClockMode

# How far (m) a render mesh may stray from the shipped surface by default; bench/sim.py
# measures speed and pixel error against the shipped meshes (README, the twin's section).
DEFAULT_RENDER_MESH_TOLERANCE = 0.0002
# The coarser tolerance of a policy-size frame from a camera fixed in the world, see Twin.render.
DEFAULT_FAR_VIEW_MESH_TOLERANCE = 0.002

# Colours a task may name. RGBA in [0, 1].
COLORS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.12, 0.62, 0.20, 1.0),
    "blue": (0.10, 0.28, 0.85, 1.0),
    "yellow": (0.95, 0.80, 0.10, 1.0),
    "purple": (0.55, 0.20, 0.70, 1.0),
}

# The tasks robot.sim.tasks defines (it checks that it defines exactly these).
TASK_NAMES = ("pick_place", "push")
SIDES: dict[str, float] = {"left": 1.0, "right": -1.0}  # sign along the base y axis
BIN = "bin"


class TaskError(ValueError):
    """A task config or instruction is invalid. The message names the offending value."""


@dataclass
class TaskConfig:
    """One task preset (plain types: hydra registers it as a structured config).

    ``colors``: the cubes in the scene, each a distractor unless named by the goal.
    ``sides``: the sides a ``push`` goal may name. ``max_duration``: seconds of sim time an
    episode may last. ``seed``: seed of the first reset; reset ``k`` uses ``seed + k`` unless
    given a seed of its own.
    """

    name: str = "pick_place"
    colors: list[str] = field(default_factory=lambda: ["red", "green", "blue"])
    sides: list[str] = field(default_factory=lambda: ["left", "right"])
    max_duration: float = 20.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.name not in TASK_NAMES:
            hint = did_you_mean(self.name, TASK_NAMES)
            raise TaskError(
                f"task.name: unknown task '{self.name}' (known: {sorted(TASK_NAMES)}){hint}"
            )
        if not self.colors:
            raise TaskError("task.colors is empty")
        unknown = [c for c in self.colors if c not in COLORS]
        if unknown:
            raise TaskError(f"task.colors: unknown colour(s) {unknown}; known: {sorted(COLORS)}")
        if len(set(self.colors)) != len(self.colors):
            raise TaskError(f"task.colors has duplicates: {list(self.colors)}")
        bad_sides = [s for s in self.sides if s not in SIDES]
        if bad_sides or not self.sides:
            raise TaskError(
                f"task.sides: {list(self.sides)} must be a non-empty subset of {list(SIDES)}"
            )
        if not (math.isfinite(self.max_duration) and self.max_duration > 0):
            raise TaskError(f"task.max_duration={self.max_duration} must be > 0 seconds")


class TwinError(ValueError):
    """The twin cannot be built or driven as asked. The message names the offending value."""


class BoardMount(StrEnum):
    """Where a calibration board sits: ``table`` (fixed in the world, for a camera on the arm)
    or ``hand`` (carried by the gripper on the robot's ``ee_site``, for a camera fixed in the
    world)."""

    table = "table"
    hand = "hand"


@dataclass
class BoardConfig:
    """A ChArUco board: the one a lab prints, and its copy in the twin (``sim.board``, drawn
    when ``sim.show_board``).

    ``squares_x`` x ``squares_y`` chessboard squares of ``square_length`` (m), ArUco markers of
    ``marker_length`` (m) from OpenCV's ``dictionary`` in the white squares, ``margin`` (m) of
    white around the squares. ``mount`` says what carries it; ``pos`` (m) and ``euler`` (rad,
    extrinsic x-y-z) are the pose of the board's centre in the mount's frame (the base frame
    on the table, the ``ee_site`` frame in the hand), its printed face towards the mount
    frame's +z after the rotation, the board behind it (on the table: ``pos`` z = the
    thickness, 3 mm, so the face is not drawn level with the table top). OpenCV's board
    frame (corner 0 of the squares at its origin, x along ``squares_x``, y along
    ``squares_y``, z into the board) is what ``calibration.board`` estimates from images.
    """

    squares_x: int = 7
    squares_y: int = 5
    square_length: float = 0.025
    marker_length: float = 0.019
    dictionary: str = "DICT_4X4_50"
    margin: float = 0.01
    mount: BoardMount = BoardMount.table
    pos: list[float] = field(default_factory=lambda: [0.22, 0.0, 0.003])
    euler: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])

    def __post_init__(self) -> None:
        try:
            self.mount = BoardMount(self.mount)
        except ValueError:
            raise TwinError(
                f"board.mount={self.mount!r} is not one of {[m.value for m in BoardMount]}"
            ) from None
        if not (int(self.squares_x) >= 3 and int(self.squares_y) >= 3):
            raise TwinError(
                f"board: {self.squares_x}x{self.squares_y} squares; a ChArUco board needs at "
                "least 3x3"
            )
        for key in ("square_length", "marker_length", "margin"):
            if not (_finite_number(getattr(self, key)) and getattr(self, key) >= 0):
                raise TwinError(f"board.{key}={getattr(self, key)!r} must be >= 0 metres")
        if not 0 < self.marker_length < self.square_length:
            raise TwinError(
                f"board.marker_length={self.marker_length} must be > 0 and smaller than "
                f"board.square_length={self.square_length}"
            )
        for key in ("pos", "euler"):
            value = list(getattr(self, key))
            if len(value) != 3 or not all(_finite_number(v) for v in value):
                raise TwinError(f"board.{key}={value!r} must be three finite numbers")

    @property
    def size(self) -> tuple[float, float]:
        """Printed width and height (m), margins included."""
        return (
            self.squares_x * self.square_length + 2 * self.margin,
            self.squares_y * self.square_length + 2 * self.margin,
        )


def _finite_number(value: object) -> bool:
    """A real, finite number (a bool is not one, though Python counts it as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class TwinConfig:
    """The twin's own settings (plain types; hydra fills them from the ``sim`` section).

    The robot (its MJCF, its twin description) is the :class:`~robot.schema.RobotSpec`'s, never
    a second setting here. ``physics_dt``: MuJoCo timestep
    (s); the control period must be a whole number of them. ``render``: build renderers on
    demand (off for physics-only runs). ``clock``: ``realtime`` or ``lockstep`` (see
    :mod:`robot.sim.clock`); the twin itself never waits, whoever steps it paces it.
    ``render_mesh_tolerance`` (m): the robot's render-only geoms draw copies of their meshes
    decimated within this distance of the shipped surface, made once and cached
    (:mod:`robot.sim.meshes`); collision meshes, masses and so physics are exactly as
    shipped. 0 (or None): the shipped meshes, full fidelity at several times the render cost.
    ``far_view_mesh_tolerance`` (m): the coarser copies a frame smaller than its camera's size
    (a policy's input) draws when the camera is fixed in the world (see :meth:`Twin.render`);
    0, or a ``render_mesh_tolerance`` of 0 (the shipped meshes): the same meshes as every frame.

    ``show_board``: put the ChArUco board ``board`` (:class:`BoardConfig`) in the scene (off
    by default: the scene is then exactly as without these keys); with it, a reset leaves the
    task's objects parked behind the robot (the workspace cleared). ``camera_delay``: camera
    name -> seconds by which its frames lag the physics (what ``dojo calibrate latency``
    measures; a frame rendered at sim time t shows the state at t - delay, to the nearest
    physics step); empty: none.

    How the driver paces a ``lockstep`` twin (:class:`robot.runtime.LoopConfig`): it advances
    one control period per tick as fast as the machine allows, and waits (at most
    ``lockstep_wait`` wall seconds) for the policy whenever fewer than ``lockstep_min_horizon``
    seconds of actions are queued, so a slow policy sees the same world as a fast one. While no
    policy is alive (none has sent a chunk within the watchdog) lockstep keeps to the wall
    clock.
    """

    physics_dt: float = 0.002
    render: bool = True
    clock: ClockMode = ClockMode.lockstep
    render_mesh_tolerance: float = DEFAULT_RENDER_MESH_TOLERANCE
    far_view_mesh_tolerance: float = DEFAULT_FAR_VIEW_MESH_TOLERANCE
    lockstep_min_horizon: float = 0.06
    lockstep_wait: float = 2.0
    show_board: bool = False
    board: BoardConfig = field(default_factory=BoardConfig)
    camera_delay: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, delay in self.camera_delay.items():
            if not (_finite_number(delay) and 0 <= delay <= 1.0):
                raise TwinError(f"sim.camera_delay.{name}={delay!r} must be between 0 and 1 second")
        if not (math.isfinite(self.physics_dt) and self.physics_dt > 0):
            raise TwinError(f"sim.physics_dt={self.physics_dt} must be > 0 seconds")
        try:
            self.clock = ClockMode.parse(self.clock)
        except ValueError as exc:
            raise TwinError(f"sim.clock: {exc}") from None
        for key in ("lockstep_min_horizon", "lockstep_wait"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise TwinError(f"sim.{key}={value} must be > 0 seconds")
        if self.render_mesh_tolerance is None:
            self.render_mesh_tolerance = 0.0
        tol = self.render_mesh_tolerance
        if not (_finite_number(tol) and tol >= 0):
            raise TwinError(
                f"sim.render_mesh_tolerance={tol!r} must be >= 0 metres (0: the shipped meshes)"
            )
        far = self.far_view_mesh_tolerance
        if not (_finite_number(far) and (far == 0 or far >= tol)):
            raise TwinError(
                f"sim.far_view_mesh_tolerance={far!r} must be 0 (off) or >= "
                f"sim.render_mesh_tolerance={tol!r} metres"
            )
