"""``CalibrateConfig``: every setting of ``dojo calibrate``, registered as the ``calibrate``
section of the config as it is.

Plain types only, and no MuJoCo or OpenCV import: every config load (a node starting,
``--help``) reads this module."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from calibration.errors import CalibrationError
from robot.sim.config import BoardConfig, BoardMount


@dataclass
class PlanConfig:
    """How views are chosen. ``views``: how many. ``candidates``: joint-space samples drawn.
    ``min_visible``: the fraction of the board's corners that must be in view, each
    ``edge_px`` plus half a square inside the image (ChArUco needs no whole board: views
    that reach the image's edges are what pins the distortion). ``min_square_px``:
    the smallest projected square (markers must stay readable). ``max_tilt_deg``: the most
    the board may turn away from the camera. ``joint_margin`` (rad or m) and
    ``workspace_margin`` (m): how far inside the safety limits every pose and path stays.
    ``path_step``: joint-space sampling of each path's check (rad). ``grid``: image cells
    (columns, rows) for coverage. ``seed``: of the sampling."""

    views: int = 20
    candidates: int = 30000
    edge_px: float = 4.0
    min_visible: float = 0.6
    min_square_px: float = 24.0
    max_tilt_deg: float = 50.0
    joint_margin: float = 0.05
    workspace_margin: float = 0.01
    path_step: float = 0.01
    grid: list[int] = field(default_factory=lambda: [4, 3])
    seed: int = 0


@dataclass
class IntrinsicsConfig:
    """When a set of views is enough, and how the lens is modelled.

    ``min_views``: views with at least ``min_corners`` corners each. ``grid``: columns and
    rows of the coverage grid; ``min_coverage``: fraction of its cells that must have held a
    corner. ``min_tilt_deg``: the board must have been tilted at least this much (from facing
    the camera) in some views, about both image axes. ``fix_k3``: hold k3 at 0. ``max_rms_px``:
    refuse a fit whose reprojection RMS is larger. ``outlier_px``: a corner's residual below
    this is never an outlier."""

    min_views: int = 12
    min_corners: int = 8
    grid: list[int] = field(default_factory=lambda: [8, 6])
    min_coverage: float = 0.6
    min_tilt_deg: float = 20.0
    fix_k3: bool = True
    max_rms_px: float = 1.0
    outlier_px: float = 0.5


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
class GraphConfig:
    """How ``dojo calibrate`` works through the ROS 2 graph (``dojo.ros.calibration_rig``).

    ``rig``: ``graph`` (the arm moved by ``command/chunk`` through the driver, frames and
    joint states from their topics: a real robot, or the twin through the same graph) or
    ``twin`` (the twin in this process, no ROS: ``calibration.twin_rig``; faster, sim only).
    ``join``: join a graph already running (a launch file's) instead of starting the driver
    and camera nodes. ``start_timeout``: wall s for the graph's first joint state and the
    camera's first frame. ``timeout``: wall s any one wait may take beyond the motion's own
    duration. ``settle``: s (ROS time) the arm must be still before a frame is taken;
    ``still_velocity``: joint speed (rad/s or m/s) below which it counts as still;
    ``tolerance``: rad (or m) a settled pose may miss its target by before it is re-aimed.
    ``frame_margin``: s (ROS time) from the arm at rest to the first frame taken: longer than
    the camera's delay, which is unknown until ``dojo calibrate latency`` has measured it.
    ``lead``: s from a chunk's stamp to its first step (the transport's delay); ``window``:
    s of schedule each ``command/chunk`` carries, within the executor's ``max_horizon``."""

    rig: str = "graph"
    join: bool = False
    start_timeout: float = 90.0
    timeout: float = 30.0
    settle: float = 0.3
    still_velocity: float = 5e-3
    tolerance: float = 0.002
    frame_margin: float = 0.25
    lead: float = 0.1
    window: float = 2.0

    def __post_init__(self) -> None:
        if self.rig not in ("graph", "twin"):
            raise CalibrationError(f"calibrate.graph.rig={self.rig!r} is not 'graph' or 'twin'")
        for key in ("start_timeout", "timeout", "settle", "still_velocity", "tolerance", "window"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value > 0):
                raise CalibrationError(f"calibrate.graph.{key}={value!r} must be > 0")
        for key in ("frame_margin", "lead"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise CalibrationError(f"calibrate.graph.{key}={value!r} must be >= 0")


@dataclass
class CalibrateConfig:
    """``dojo calibrate intrinsics|handeye|latency|check``.

    ``camera``: which camera. ``dir``: where ``<camera>.yaml`` is read and written.
    ``confirmed``:
    the person confirms the arm may move (without it the command asks, and refuses where
    it cannot ask). ``table_board`` serves a camera on the arm, ``hand_board`` a camera fixed
    in the world. ``intrinsics_views`` / ``handeye_views``: poses planned for each
    (:class:`calibration.poses.PlanConfig` says how). ``speed``: fraction of the velocity
    and acceleration limits the arm moves at between views. ``graph``: the rig the arm is
    moved through (:class:`GraphConfig`).
    """

    camera: str = ""
    dir: str = "calibration"
    confirmed: bool = False
    table_board: BoardConfig = field(default_factory=_table_board)
    hand_board: BoardConfig = field(default_factory=_hand_board)
    intrinsics_views: int = 24
    handeye_views: int = 16
    speed: float = 0.5
    plan: PlanConfig = field(default_factory=PlanConfig)
    intrinsics: IntrinsicsConfig = field(default_factory=IntrinsicsConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    check: CheckConfig = field(default_factory=CheckConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)

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
