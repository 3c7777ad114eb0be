"""Tasks for the twin: a language instruction, a randomised reset, and ground-truth success.

Why ground truth lives here: the critic learns to *estimate* progress from pixels; to know how
good it is (and to label scripted demonstrations) something must *know* the outcome. In the
twin that is the simulator's state, read by :meth:`Task.success`.

Tasks (``TaskConfig.name``):

``pick_place``  "put the {color} cube in the bin". The other cubes are distractors. Success:
                the named cube's centre is inside the bin's inner footprint and less than 3/4
                of a cube above its rim (resting in it, not carried over it), and no other
                cube is in the bin.
``push``        "push the {color} cube to the {side}", side ``left`` (+y, the robot's left)
                or ``right`` (-y). Success: the cube moved at least ``layout.push_distance``
                that way from where the reset put it, and still rests on the table.

Resets are drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same goal,
cube poses and bin position, bit for bit. Cube centres are at least ``layout.cube_spacing``
apart (room for open jaws), inside the reachable sector of the layout, and clear of the bin.

``parse_instruction`` turns the instruction text back into a :class:`Goal`, so a scripted
operator can be told nothing but the sentence a person would hear.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from robot.description import SceneLayout
from robot.schema import ObjectPose
from robot.sim.config import BIN, COLORS, SIDES, TASK_NAMES, TaskConfig, TaskError
from robot.sim.scene import cube_name


@dataclass(frozen=True)
class Goal:
    """What an instruction asks for. ``side`` is empty unless ``task == "push"``."""

    task: str
    color: str
    side: str = ""

    @property
    def target(self) -> str:
        """Name of the object the goal is about (``cube_<color>``)."""
        return cube_name(self.color)

    @property
    def instruction(self) -> str:
        return TASKS[self.task].template.format(color=self.color, side=self.side)


@dataclass(frozen=True)
class EpisodeSetup:
    """What a reset decided. ``cubes``: name -> ``(x, y, yaw)`` (m, m, rad; base frame),
    ``bin``: ``(x, y)`` of the bin centre or ``None`` when the scene has no bin."""

    goal: Goal
    seed: int
    cubes: Mapping[str, tuple[float, float, float]]
    bin: tuple[float, float] | None = None

    @property
    def instruction(self) -> str:
        return self.goal.instruction


_COLOR_RE = "|".join(sorted(COLORS))
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "pick_place",
        re.compile(
            rf"^(?:put|place|drop)\s+the\s+(?P<color>{_COLOR_RE})\s+(?:cube|block)\s+"
            rf"(?:in|into)\s+the\s+(?:bin|box)$"
        ),
    ),
    (
        "push",
        re.compile(
            rf"^push\s+the\s+(?P<color>{_COLOR_RE})\s+(?:cube|block)\s+"
            rf"(?:to\s+the\s+)?(?P<side>left|right)$"
        ),
    ),
)


def parse_instruction(text: str) -> Goal:
    """The goal of an instruction, e.g. ``"put the red cube in the bin"`` or
    ``"Push the blue cube to the left."`` (case, spacing and a final full stop are free)."""
    norm = " ".join(str(text).lower().replace(",", " ").split()).rstrip(".!")
    for task, pattern in _PATTERNS:
        match = pattern.match(norm)
        if match:
            return Goal(task=task, color=match["color"], side=match.groupdict().get("side") or "")
    forms = [t.template for t in TASKS.values()]
    raise TaskError(f"cannot parse instruction {text!r}; expected one of {forms}")


def _in_sector(layout: SceneLayout, x: float, y: float, margin: float = 0.0) -> bool:
    r = math.hypot(x, y)
    return (
        layout.reach_min + margin <= r <= layout.reach_max - margin
        and abs(math.atan2(y, x)) <= layout.max_azimuth
    )


def _sample_xy(rng: np.random.Generator, r_lo: float, r_hi: float, az: float) -> np.ndarray:
    # uniform over the sector's area
    r = math.sqrt(rng.uniform(r_lo**2, r_hi**2))
    a = rng.uniform(-az, az)
    return np.array([r * math.cos(a), r * math.sin(a)])


class Task(abc.ABC):
    """A task family: how to reset it and when it is solved."""

    name: ClassVar[str]
    template: ClassVar[str]
    needs_bin: ClassVar[bool] = False
    max_tries: ClassVar[int] = 2000

    def __init__(self, config: TaskConfig, layout: SceneLayout) -> None:
        config.validate()
        if config.name != self.name:
            raise TaskError(f"{type(self).__name__} cannot run task '{config.name}'")
        self.config = config
        self.layout = layout

    @abc.abstractmethod
    def sample(self, seed: int) -> EpisodeSetup:
        """A randomised reset, deterministic in ``seed``."""

    @abc.abstractmethod
    def success(self, setup: EpisodeSetup, objects: Mapping[str, ObjectPose]) -> bool:
        """Whether the goal of ``setup`` holds for the ground-truth ``objects``."""

    def _place_cubes(
        self,
        rng: np.random.Generator,
        fixed: Mapping[str, np.ndarray],
        keep_out: list[tuple[np.ndarray, float]],
        corridor: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, tuple[float, float, float]]:
        """Place every cube not in ``fixed`` at least ``cube_spacing`` from the others, clear
        of the discs in ``keep_out`` and of the axis-aligned box ``corridor`` (lo, hi)."""
        lay = self.layout
        placed = dict(fixed)
        for color in self.config.colors:
            name = cube_name(color)
            if name in placed:
                continue
            for _ in range(self.max_tries):
                xy = _sample_xy(rng, lay.reach_min, lay.reach_max, lay.max_azimuth)
                if any(np.linalg.norm(xy - p) < lay.cube_spacing for p in placed.values()):
                    continue
                if any(np.linalg.norm(xy - c) < rad for c, rad in keep_out):
                    continue
                if corridor is not None and np.all(xy >= corridor[0]) and np.all(xy <= corridor[1]):
                    continue
                placed[name] = xy
                break
            else:
                raise TaskError(
                    f"task '{self.name}': no room for {len(self.config.colors)} cubes in the "
                    f"layout (cube_spacing={lay.cube_spacing} m); use fewer colours"
                )
        out = {}
        for color in self.config.colors:  # config order, so the draw order is fixed
            name = cube_name(color)
            yaw = float(rng.uniform(-math.pi / 4, math.pi / 4))
            out[name] = (float(placed[name][0]), float(placed[name][1]), yaw)
        return out


class PickPlaceTask(Task):
    name = "pick_place"
    template = "put the {color} cube in the bin"
    needs_bin = True

    @property
    def bin_half(self) -> float:
        return self.layout.bin_inner / 2 + self.layout.bin_wall

    def sample(self, seed: int) -> EpisodeSetup:
        rng = np.random.default_rng(seed)
        lay = self.layout
        color = str(rng.choice(self.config.colors))
        bin_xy = _sample_xy(rng, lay.bin_reach_min, lay.bin_reach_max, lay.max_azimuth * 0.9)
        # the open jaws must not touch the bin while grasping next to it
        clearance = self.bin_half * math.sqrt(2) + lay.cube_spacing / 2
        cubes = self._place_cubes(rng, {}, [(bin_xy, clearance)])
        return EpisodeSetup(
            goal=Goal(self.name, color),
            seed=seed,
            cubes=cubes,
            bin=(float(bin_xy[0]), float(bin_xy[1])),
        )

    def in_bin(self, pose: ObjectPose, bin_pose: ObjectPose) -> bool:
        """Centre inside the inner footprint and at most 3/4 of a cube above the rim (a cube
        resting on another one in the bin counts; one carried over it does not)."""
        rel = pose.position - bin_pose.position
        inner = self.layout.bin_inner / 2
        rim = bin_pose.position[2] + bin_pose.size[2] / 2  # bin pose is its box centre
        top = rim + 0.75 * self.layout.cube_size
        return bool(np.all(np.abs(rel[:2]) < inner) and pose.position[2] < top)

    def success(self, setup: EpisodeSetup, objects: Mapping[str, ObjectPose]) -> bool:
        bin_pose = objects[BIN]
        target = setup.goal.target
        if not self.in_bin(objects[target], bin_pose):
            return False
        return not any(
            self.in_bin(objects[name], bin_pose) for name in setup.cubes if name != target
        )


class PushTask(Task):
    name = "push"
    template = "push the {color} cube to the {side}"

    def sample(self, seed: int) -> EpisodeSetup:
        rng = np.random.default_rng(seed)
        lay = self.layout
        color = str(rng.choice(self.config.colors))
        side = str(rng.choice(self.config.sides))
        sign = SIDES[side]
        dist = lay.push_distance
        back = lay.cube_spacing  # where the fingers start, behind the cube
        for _ in range(self.max_tries):
            xy = _sample_xy(rng, lay.reach_min, lay.reach_max, lay.max_azimuth)
            end = xy + np.array([0.0, sign * (dist + lay.cube_size)])
            start = xy - np.array([0.0, sign * back])
            if _in_sector(lay, *end) and _in_sector(lay, *start):
                break
        else:
            raise TaskError(f"task 'push': the layout has no room to push {dist} m to the {side}")
        y_lo = min(start[1], end[1]) - lay.cube_spacing / 2
        y_hi = max(start[1], end[1]) + lay.cube_spacing / 2
        corridor = (
            np.array([xy[0] - lay.cube_spacing, y_lo]),
            np.array([xy[0] + lay.cube_spacing, y_hi]),
        )
        cubes = self._place_cubes(rng, {cube_name(color): xy}, [], corridor)
        return EpisodeSetup(goal=Goal(self.name, color, side), seed=seed, cubes=cubes)

    def success(self, setup: EpisodeSetup, objects: Mapping[str, ObjectPose]) -> bool:
        target = setup.goal.target
        pose = objects[target]
        moved = (pose.position[1] - setup.cubes[target][1]) * SIDES[setup.goal.side]
        resting = abs(pose.position[2] - self.layout.cube_size / 2) < 0.25 * self.layout.cube_size
        return bool(moved >= self.layout.push_distance and resting)


TASKS: dict[str, type[Task]] = {PickPlaceTask.name: PickPlaceTask, PushTask.name: PushTask}
assert tuple(TASKS) == TASK_NAMES, "robot.sim.config.TASK_NAMES lists the tasks defined here"


def make_task(config: TaskConfig, layout: SceneLayout) -> Task:
    """The task named by ``config.name`` (the one registry of tasks)."""
    config.validate()
    return TASKS[config.name](config, layout)
