"""What ``dojo replay`` and ``dojo replay fit`` can be told: plain dataclasses, registered in the
hydra schema as they are (the ``replay`` section). Units: rad (or the joint's unit), s, m.

The thresholds decide the verdict (``replay.report``): an *event* (a collision, a joint past its
limit, the end effector out of the workspace box, a joint faster than its limit) fails an
episode; a safety layer that had to change what was recorded, an acceleration past the limit or
a tracking error above ``tracking_warn`` warns; a tracking error above ``tracking_fail`` fails.
``position_tolerance`` is 15 mrad because a soft servo overshoots a target at its limit by a
few mrad, and the presets keep their limits 20 mrad inside the joints' hard stops.

Contacts (``replay.contacts`` says why): a contact deeper than ``contact_depth`` (m) counts;
one of the hand with the table is a collision only when the command put the hand more than
``command_depth`` (m) into the table, or when its normal force stayed above ``contact_force``
times the weight of the arm's moving links for ``contact_duration`` (s). 5 mm is more than the
3 mm a scripted grasp commands its jaw below the table top without touching it; twice the
arm's weight is more than the grip and the arm's weight press a jaw on the table with during
a grasp (up to 1.6x, 7.5 N for a tick on the SO-101, in the episodes of ``bench/replay.py``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ReplayError(ValueError):
    """Bad input to a replay (an episode of another robot, time going backwards, an empty
    store, ...). The message names the episode or the file and what is wrong."""


class ReplayMode(enum.StrEnum):  # members named by value: hydra validates by name
    actions = "actions"  # drive the twin with the recorded actions
    policy = "policy"  # run a checkpoint over the recorded observations, and closed loop


class FailOn(enum.StrEnum):
    never = "never"  # exit status 0 whatever the verdicts
    warn = "warn"  # exit status 3 when any episode's verdict is warn or fail
    fail = "fail"  # exit status 3 when any episode's verdict is fail


class SceneMode(enum.StrEnum):
    auto = "auto"  # reconstruct the task's scene from the first recorded frame, else empty
    empty = "empty"  # no task objects: the arm alone over the table


@dataclass
class FitConfig:
    """``dojo replay fit``: which episodes fit and which judge, and the search.

    ``held_out``: the fraction of the episodes (every k-th, at least one) kept out of the fit
    and replayed before and after it. ``grid``: delays tried first, from 0 to ``max_delay``.
    ``rounds``: Levenberg-Marquardt iterations after that (four replays of the fit episodes
    each). ``gain_range``/``damping_range``: the fit stays within ``[x / range, x * range]``
    of the model's value.
    """

    held_out: float = 0.34
    rounds: int = 6
    max_delay: float = 0.12
    gain_range: float = 4.0
    damping_range: float = 8.0
    grid: int = 7

    def __post_init__(self) -> None:
        if not 0.0 < self.held_out < 1.0:
            raise ReplayError(f"replay.fit.held_out={self.held_out} must be in (0, 1)")
        if self.rounds < 1 or self.grid < 3:
            raise ReplayError("replay.fit.rounds must be >= 1 and replay.fit.grid >= 3")
        if not self.max_delay > 0 or not self.gain_range > 1 or not self.damping_range > 1:
            raise ReplayError("replay.fit.max_delay must be > 0, gain_range and damping_range > 1")


@dataclass
class ReplayConfig:
    """One replay run. ``episodes``: ids (or unique prefixes, or sequence numbers) to replay;
    empty: every committed episode. ``dynamics``: a preset override written by
    ``dojo replay fit`` (``twin.actuators``), loaded into the twin. ``lerobot_repo_id``: read
    the store argument as a LeRobotDataset root of this name. ``plots``/``video``: a PNG per
    episode, and an MP4 of the recorded camera beside the twin's render when it has images.
    ``policy_episodes``: closed-loop episodes per replayed episode in ``mode=policy``.
    """

    mode: ReplayMode = ReplayMode.actions
    episodes: list[str] = field(default_factory=list)
    fail_on: FailOn = FailOn.never
    dynamics: str = ""
    lerobot_repo_id: str = ""
    scene: SceneMode = SceneMode.auto
    plots: bool = True
    video: bool = True
    progress: bool = True
    tracking_warn: float = 0.05
    tracking_fail: float = 0.25
    position_tolerance: float = 0.015
    workspace_tolerance: float = 0.003
    velocity_tolerance: float = 0.25
    acceleration_tolerance: float = 0.5
    clamp_tolerance: float = 1e-4
    contact_depth: float = 2e-4
    command_depth: float = 0.005
    contact_force: float = 2.0
    contact_duration: float = 0.1
    scene_seeds: int = 300
    scene_match: float = 20.0
    policy_episodes: int = 1
    fit: FitConfig = field(default_factory=FitConfig)

    def __post_init__(self) -> None:
        self.mode = ReplayMode(self.mode)
        self.fail_on = FailOn(self.fail_on)
        self.scene = SceneMode(self.scene)
        for key in (
            "tracking_warn",
            "tracking_fail",
            "position_tolerance",
            "workspace_tolerance",
            "velocity_tolerance",
            "acceleration_tolerance",
            "clamp_tolerance",
            "contact_depth",
            "command_depth",
            "contact_force",
            "contact_duration",
        ):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and value >= 0):
                raise ReplayError(f"replay.{key}={value!r} must be a number >= 0")
        if self.tracking_fail < self.tracking_warn:
            raise ReplayError(
                f"replay.tracking_fail={self.tracking_fail} is below "
                f"replay.tracking_warn={self.tracking_warn}"
            )
