"""The twin's and the tasks' settings, in a module light enough for every config load.

``dojo/conf`` registers :class:`TwinConfig` (the ``sim`` section) and :class:`TaskConfig` (the
``task`` group) as the hydra schema, so they must not import MuJoCo: a config load on a laptop
(``dojo <cmd> --help``, validation before anything moves) reads them. ``robot.sim.twin`` and
``robot.sim.tasks`` build on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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

    def __post_init__(self) -> None:
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
