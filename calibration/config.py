"""``CalibrateConfig``: every setting of ``dojo calibrate``, registered as the ``calibrate``
section of the config as it is (plain types, no MuJoCo or OpenCV import)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from calibration.errors import CalibrationError
from calibration.intrinsics import IntrinsicsConfig
from calibration.poses import PlanConfig
from robot.sim.config import BoardConfig, BoardMount


def _table_board() -> BoardConfig:
    """A board for a camera on the SO-101's wrist: 6 x 4 squares of 3 cm, flat on the table
    22 cm in front of the base (a 3 mm thick print)."""
    return BoardConfig(
        squares_x=6,
        squares_y=4,
        square_length=0.03,
        marker_length=0.024,
        margin=0.01,
        mount=BoardMount.table,
        pos=[0.22, 0.0, 0.003],
        euler=[0.0, 0.0, 0.0],
    )


def _hand_board() -> BoardConfig:
    """A board the SO-101's gripper holds up to a camera fixed in the world: 5 x 4 squares
    of 3.5 cm, facing out along the jaws (the ``ee_site``'s x) 1 cm past the site."""
    return BoardConfig(
        squares_x=5,
        squares_y=4,
        square_length=0.035,
        marker_length=0.028,
        margin=0.008,
        mount=BoardMount.hand,
        pos=[0.01, 0.0, 0.0],
        euler=[0.0, math.pi / 2, 0.0],
    )


@dataclass
class LatencyConfig:
    """The excitation ``dojo calibrate latency`` commands: ``joint`` (empty: the first joint,
    the base's yaw) moved by up to ``amplitude`` (rad or m) for ``duration`` s; lags are
    searched up to ``max_lag`` s; ``min_correlation``: below it the motion was not seen
    clearly enough to trust."""

    joint: str = ""
    amplitude: float = 0.08
    duration: float = 8.0
    max_lag: float = 0.4
    min_correlation: float = 0.9


@dataclass
class CheckConfig:
    """``dojo calibrate check``: ``views`` poses; the file holds when the reprojection RMS
    with its intrinsics is at most ``max_rms_px`` and with its hand-eye at most
    ``max_handeye_rms_px`` (a bumped camera shows there first)."""

    views: int = 6
    max_rms_px: float = 0.5
    max_handeye_rms_px: float = 1.0


@dataclass
class CalibrateConfig:
    """``dojo calibrate intrinsics|handeye|latency|check``.

    ``camera``: which camera. ``dir``: where ``<camera>.yaml`` is read and written. ``yes``:
    the person confirms the arm may move (without it the command asks, and refuses where
    it cannot ask). ``table_board`` serves a camera on the arm, ``hand_board`` a camera fixed
    in the world. ``intrinsics_views`` / ``handeye_views``: poses planned for each
    (:class:`calibration.poses.PlanConfig` says how). ``speed``: fraction of the velocity
    and acceleration limits the arm moves at between views.
    """

    camera: str = ""
    dir: str = "calibration"
    yes: bool = False
    table_board: BoardConfig = field(default_factory=_table_board)
    hand_board: BoardConfig = field(default_factory=_hand_board)
    intrinsics_views: int = 24
    handeye_views: int = 16
    speed: float = 0.5
    plan: PlanConfig = field(default_factory=PlanConfig)
    intrinsics: IntrinsicsConfig = field(default_factory=IntrinsicsConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    check: CheckConfig = field(default_factory=CheckConfig)

    def __post_init__(self) -> None:
        if self.table_board.mount != BoardMount.table:
            raise CalibrationError("calibrate.table_board.mount must be 'table'")
        if self.hand_board.mount != BoardMount.hand:
            raise CalibrationError("calibrate.hand_board.mount must be 'hand'")
        for key in ("intrinsics_views", "handeye_views"):
            if getattr(self, key) < 3:
                raise CalibrationError(f"calibrate.{key}={getattr(self, key)} must be >= 3")
        if not 0 < self.speed <= 1:
            raise CalibrationError(f"calibrate.speed={self.speed} must be in (0, 1]")
