"""The config's schema: one dataclass per section, and the groups hydra composes from presets.

The libraries' own config dataclasses are the schema where a library has one (registered as
they are, never mirrored field by field), so every key a library has is settable from the
command line, typed, and validated by one path:

======================  ===================================================================
section                 dataclass
======================  ===================================================================
``task``                :class:`robot.sim.config.TaskConfig`
``sim``                 :class:`robot.sim.config.TwinConfig`
``executor``            :class:`robot.executor.ExecutorConfig`
``teleop.scripted``     :class:`teleop.scripted_config.ScriptedConfig`
``train``               :class:`policy.config.PolicyTrainConfig` (``train.model``: the VLA)
``evaluate``            :class:`policy.config.PolicyEvalConfig`
``critic_train``        :class:`critic.config.CriticTrainConfig` (``critic_train.pairs``)
``critic_eval``         :class:`critic.evaluate.CriticEvalConfig`
``relabel``             :class:`critic.relabel.RelabelConfig`
``audit``               :class:`critic.audit.AuditConfig`
``replay``              :class:`replay.config.ReplayConfig` (``replay.fit``: the twin fit)
``learner``             :class:`policy.learner.config.LearnerConfig`
``practice.hil``        :class:`policy.learner.config.HilConfig`
``calibrate``           :class:`calibration.config.CalibrateConfig`
``camera.devices[i]``   ``realsense``: :class:`robot.cameras.realsense.RealSenseConfig`,
                        ``opencv``: :class:`robot.cameras.opencv.OpenCVConfig`
======================  ===================================================================

The other sections (``robot``, ``policy``, ``critic``, ``recorder``, ...) describe the
application itself and are defined here. :data:`FILLED_BY_COMMAND` lists the library fields a
command fills in (stores, output paths, seeds, the robot's joints): setting one is refused with
the key to use instead.

Nothing here imports torch, MuJoCo or a hardware SDK: every node process loads this.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from calibration.config import CalibrateConfig
from critic.audit import AuditConfig
from critic.config import CriticTrainConfig, ProgressMode
from critic.evaluate import CriticEvalConfig
from critic.relabel import RelabelConfig
from policy.config import PolicyEvalConfig, PolicyTrainConfig
from policy.learner.config import HilConfig, LearnerConfig
from replay.config import ReplayConfig
from robot.cameras.opencv import OpenCVConfig
from robot.cameras.realsense import RealSenseConfig
from robot.description import HandDescription, ModelEdits, TwinDescription
from robot.executor import ExecutorConfig
from robot.sim.config import TaskConfig, TwinConfig
from teleop.scripted_config import ScriptedConfig

GROUPS = ("robot", "task", "teleop", "policy", "camera", "critic")


class ConfigError(ValueError):
    """The configuration is invalid. The message names the key and, where it can, a fix."""


@dataclass
class LimitsConfig:
    position_lower: list[float] = MISSING
    position_upper: list[float] = MISSING
    velocity: list[float] = MISSING
    acceleration: list[float] = MISSING
    max_step: list[float] = MISSING


@dataclass
class WorkspaceConfig:
    lower: list[float] = MISSING
    upper: list[float] = MISSING


@dataclass
class CameraConfig:
    name: str = MISSING
    width: int = 640
    height: int = 480
    fps: float = 30.0


@dataclass
class RobotConfig:
    """A robot preset: the robot's one description (``robot.schema.RobotSpec`` is built from
    it). ``driver`` picks the Arm implementation (``sim``: the MuJoCo twin); ``model`` names
    the MJCF (``<package>:<path>``, an absolute path, or ``dh:<table>``); ``model_edits``,
    ``twin`` and ``hand`` are :mod:`robot.description`'s dataclasses, registered as they are."""

    name: str = MISSING
    driver: str = "sim"
    device: dict[str, Any] = field(default_factory=dict)  # port/host/model... of a real arm
    model: str = MISSING
    model_edits: ModelEdits | None = None
    joint_names: list[str] = MISSING
    joint_units: list[str] = field(default_factory=list)
    gripper_joint: str | None = None
    gripper_open: float | None = None
    gripper_closed: float | None = None
    ee_site: str = ""
    control_hz: float = MISSING
    home: list[float] = MISSING
    limits: LimitsConfig = MISSING
    workspace: WorkspaceConfig = MISSING
    cameras: list[CameraConfig] = field(default_factory=list)
    twin: TwinDescription | None = None
    hand: HandDescription | None = None


@dataclass
class TeleopConfig:
    """Who or what stands in for the operator. ``scripted``: the twin's IK operator."""

    name: str = MISSING
    scripted: ScriptedConfig = field(default_factory=ScriptedConfig)
    replan_margin: float = 0.1


@dataclass
class DriverConfig:
    status_hz: float = 2.0
    command_deadline: float = 0.5


class Codec(enum.StrEnum):
    jpeg = "jpeg"
    zstd = "zstd"


@dataclass
class RecorderConfig:
    """How ``dojo record`` / the recorder node writes episodes (see dojo/nodes/recorder.py).

    ``fps``: steps per second of ROS time (a divisor of the control rate keeps the grid even).
    ``codec``: image codec for every camera (``jpeg`` or ``zstd``); ``camera_codecs`` overrides
    it per camera. ``min_free_gb``: refuse to start an episode with less free disk space.
    ``calibration_dir``: where ``dojo calibrate`` wrote ``<camera>.yaml``; each camera's
    latency there (or in its device's ``calibration`` file) is taken off its frames' stamps.
    """

    fps: float = 10.0
    image_tolerance: float = 0.05
    max_latency: float = 0.3
    skew_threshold: float = 0.1
    codec: Codec = Codec.jpeg
    jpeg_quality: int = 90
    camera_codecs: dict[str, Codec] = field(default_factory=dict)
    min_free_gb: float = 1.0
    queue_seconds: float = 5.0
    calibration_dir: str = ""  # <dir>/<camera>.yaml: each camera's latency (dojo calibrate)


@dataclass
class InterventionConfig:
    """The human's side (dojo/nodes/intervention.py). ``enabled``: the graph includes it.

    ``device``: ``scripted`` (the twin's operator plays the person) or a teleop device name
    (keyboard, gamepad, spacemouse, leader_arm) with ``device_config`` passed to it.
    The scripted person takes over after ``grace_s`` when the arm moved less than ``stall_rad``
    over ``stall_s``, or the named cube got ``regress_m`` further from its goal.
    """

    enabled: bool = False
    device: str = "scripted"
    device_config: dict[str, Any] = field(default_factory=dict)
    rate_hz: float = 50.0
    stall_s: float = 1.5
    stall_rad: float = 0.01
    regress_m: float = 0.05
    grace_s: float = 1.0


@dataclass
class PolicyConfig:
    """The policy: what the ``policy`` node runs and ``dojo eval policy`` evaluates.

    ``backend``: ``compact`` (the compact VLA; ``checkpoint`` is a directory written by
    ``dojo train policy``) or ``lerobot`` (``checkpoint`` is a LeRobot pretrained directory or a
    hub id; ``kind`` says which: act, smolvla, pi0, pi05). Empty ``checkpoint``: no policy node.
    ``replan_horizon``: request the next chunk when less than this many seconds of the last one
    remain. ``camera_map``: robot camera -> the name the checkpoint uses (LeRobot backends).
    ``threads``: torch CPU threads (0: half the cores, so the driver keeps the rest).
    """

    name: str = "compact"
    backend: str = "compact"
    kind: str = ""
    checkpoint: str = ""
    device: str = "cpu"
    replan_horizon: float = 0.4
    threads: int = 0
    camera_map: dict[str, str] = field(default_factory=dict)
    fps: float = 0.0  # LeRobot checkpoints: rate of their training data (0: from vla_dojo.json)
    tokenizer: str = ""  # LeRobot pi0 family: a local tokenizer directory (offline machines)
    instruction: str = ""  # used until task/instruction says otherwise (a robot with no twin)


@dataclass
class CriticConfig:
    """The progress critic: the live node (dojo/nodes/critic.py) and the critic that the offline
    tools (``dojo eval critic``, ``dojo critic relabel|audit|curves``) load; presets in
    ``conf/critic/``.

    ``backend``: ``compact`` (``checkpoint``: a ``dojo train critic`` directory) or ``vlm``
    (``checkpoint``: an image-text-to-text model directory, VLAC's on a GPU workstation, shown
    the ``cameras`` named here, answering in at most ``max_new_tokens``). ``enabled`` (or a
    ``checkpoint``): the graph runs it. It publishes ``critic/progress`` and ``critic/done`` at
    ``rate_hz`` from the latest frames; ``done_threshold`` turns the done probability into a
    Bool. ``mode``: chain (VLAC: accumulate consecutive deltas) or anchor (each frame against
    the first of the episode). ``threads``: torch CPU threads, 0: half the cores (as the
    policy)."""

    name: str = "compact"
    backend: str = "compact"
    enabled: bool = False
    checkpoint: str = ""
    cameras: list[str] = field(default_factory=lambda: ["front"])
    max_new_tokens: int = 12
    rate_hz: float = 2.0
    done_threshold: float = 0.5
    mode: ProgressMode = ProgressMode.chain
    device: str = "cpu"
    threads: int = 0


@dataclass
class DemoConfig:
    """``dojo demo``: ``demos`` scripted demonstrations collected in the twin (seeds from 0),
    ``train_seconds`` of policy training, ``critic_steps`` of critic training, then ``episodes``
    (top level) episodes through the graph, and last a short practice run in the twin:
    ``practice_episodes`` episodes with the ``learner`` section's learner (the demo's default:
    ``learner.actor=distil``, ``learner.reward=sparse``), success measured before and after it
    on the same ``practice_eval`` held-out scenes (0 episodes: no practice step)."""

    demos: int = 100
    # 5 min: with the critic beside it (one core each) the policy trains about 10% slower;
    # 7.5 min took a fresh clone's demo to 15.5 min after its install (and 0/5 in the graph)
    train_seconds: float = 300.0
    critic_steps: int = 600
    practice_episodes: int = 20
    practice_eval: int = 20

    def __post_init__(self) -> None:
        for key in ("practice_episodes", "practice_eval"):
            if getattr(self, key) < 0:
                raise ValueError(f"demo.{key}={getattr(self, key)}: must be >= 0")
        if self.practice_episodes and not self.practice_eval:
            raise ValueError("demo.practice_eval=0: before and after need held-out scenes")


@dataclass
class RosConfig:
    domain_id: int = -1  # -1: take ROS_DOMAIN_ID from the environment (default 0)
    namespace: str = ""
    log_level: str = "info"


@dataclass
class CameraDeviceConfig:
    """One real camera (``dojo/nodes/camera.py`` runs one node each).

    ``driver`` picks the driver, and the section of the same name is that driver's own config
    (``robot/cameras/``): ``camera.devices.0.realsense.serial=...`` or
    ``camera.devices.0.opencv.source=/dev/video2``. The other driver's section must stay at its
    defaults. Its ``name`` is this camera's ``name``. Exposure is in microseconds for every
    driver. ``calibration``: a ROS camera_calibration YAML published as ``camera_info`` when the
    file exists."""

    name: str = MISSING
    driver: str = MISSING
    calibration: str = ""
    realsense: RealSenseConfig = field(default_factory=RealSenseConfig)
    opencv: OpenCVConfig = field(default_factory=OpenCVConfig)


CAMERA_DRIVER_SECTIONS = {"realsense": RealSenseConfig, "opencv": OpenCVConfig}
"""The driver sections of a camera device: driver name -> its config dataclass."""


@dataclass
class CameraGroupConfig:
    """The real cameras of a rig (group ``camera``; ``none`` for the twin's own cameras)."""

    name: str = MISSING
    devices: list[CameraDeviceConfig] = field(default_factory=list)
    stale_periods: float = 2.0
    reconnect_after: float = 1.0
    status_hz: float = 1.0


@dataclass
class EpisodesCmdConfig:
    """``dojo episodes`` (dojo/episodes_cmd.py); the store is ``store=``.

    ``episode`` (show, view): an id, a unique prefix of one, or a sequence number. ``dataset``:
    a LeRobotDataset root (export: the one written; import: the one read), ``repo_id`` its
    name; ``ids``: export these episodes only, in this order; ``video``: export frames as
    video. ``salvage``/``force`` (repair): commit each uncommitted episode's complete prefix;
    also those whose recorder may still run. ``rerun``/``verify`` (view): write the .rrd
    recording; verify checksums first. ``verbose``: log progress, tracebacks."""

    episode: str = ""
    dataset: str = ""
    repo_id: str = ""
    ids: list[str] = field(default_factory=list)
    video: bool = True
    salvage: bool = False
    force: bool = False
    rerun: bool = True
    verify: bool = True
    verbose: bool = False


@dataclass
class HwConfig:
    """``dojo hw`` (dojo/hw.py). ``json``: print JSON instead of a table. ``probe`` (find-port):
    broadcast-ping ``ports`` (every listed port when empty) for servos; a ping moves nothing."""

    json: bool = False
    probe: bool = False
    ports: list[str] = field(default_factory=list)


@dataclass
class PracticeConfig:
    """``dojo practice`` (and ``practice.launch.py``): ``enabled`` puts the ``learner`` node in
    the graph (it learns from ``store=`` with the ``learner`` section); ``hil``: the graded
    human-in-the-loop schedule (:class:`policy.learner.config.HilConfig`); the learner polls the
    store every ``poll_s`` and announces a checkpoint at most every ``announce_s`` seconds."""

    enabled: bool = False
    hil: HilConfig = field(default_factory=HilConfig)
    poll_s: float = 1.0
    announce_s: float = 2.0


@dataclass
class DojoConfig:
    robot: RobotConfig = MISSING
    task: TaskConfig = MISSING
    teleop: TeleopConfig = MISSING
    policy: PolicyConfig = MISSING
    camera: CameraGroupConfig = field(default_factory=lambda: CameraGroupConfig(name="none"))
    sim: TwinConfig = field(default_factory=TwinConfig)  # the twin's own config
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    driver: DriverConfig = field(default_factory=DriverConfig)
    ros: RosConfig = field(default_factory=RosConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    intervention: InterventionConfig = field(default_factory=InterventionConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    train: PolicyTrainConfig = field(default_factory=PolicyTrainConfig)
    evaluate: PolicyEvalConfig = field(default_factory=PolicyEvalConfig)
    critic_train: CriticTrainConfig = field(default_factory=CriticTrainConfig)
    critic_eval: CriticEvalConfig = field(default_factory=CriticEvalConfig)
    relabel: RelabelConfig = field(default_factory=RelabelConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    practice: PracticeConfig = field(default_factory=PracticeConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    episodes_cmd: EpisodesCmdConfig = field(default_factory=EpisodesCmdConfig)
    hw: HwConfig = field(default_factory=HwConfig)
    store: str = ""  # episode store path(s) or fsspec URL(s); set for run: record every episode
    reference_store: str = ""  # dojo eval critic: a store of a task variant, scored with a demo
    episodes: int = 3
    duration: float = 0.0  # ROS seconds the run may last; 0: until the episodes are done
    seed: int = 0
    out: str = "runs/latest"


FILLED_BY_COMMAND = {
    "train.stores": "store=",
    "train.out": "out=",
    "train.seed": "seed=",
    "train.progress": None,
    "train.model.joint_names": "robot=",
    "train.model.chunk_dt": "recorder.fps= when recording (the store's frame period)",
    "evaluate.episodes": "episodes=",
    "critic_train.stores": "store=",
    "critic_train.out": "out=",
    "camera.devices.*.realsense.name": "camera.devices.N.name=",
    "camera.devices.*.opencv.name": "camera.devices.N.name=",
}
"""Library fields a command fills in itself: ``key -> what to set instead`` (None: nothing)."""


_registered = False


def register() -> None:
    """Put the schema in hydra's ConfigStore (once): ``dojo_schema`` and one per group."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="dojo_schema", node=DojoConfig)
    cs.store(group="robot", name="robot_schema", node=RobotConfig)
    cs.store(group="task", name="task_schema", node=TaskConfig)
    cs.store(group="teleop", name="teleop_schema", node=TeleopConfig)
    cs.store(group="policy", name="policy_schema", node=PolicyConfig)
    cs.store(group="camera", name="camera_schema", node=CameraGroupConfig)
    cs.store(group="critic", name="critic_schema", node=CriticConfig)
    _registered = True
