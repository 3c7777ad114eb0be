"""Hydra structured configs: a dataclass schema per group, YAML presets that fill it in.

Groups (a folder of presets each): ``robot``, ``task``, ``teleop``, ``camera``, ``policy``,
``critic``. Sections without presets
(``sim``, ``executor``, ``ros``) take ``key=value`` overrides. Libraries never see hydra: after
composition, :func:`validate` turns the config into the plain objects the libraries take
(``RobotSpec``, ``ExecutorConfig``, ...), and a bad value fails here, before any node starts or
any hardware moves, with a message that names the key. A misspelt preset or key names the
nearest valid one.

No ``eval`` resolvers: only OmegaConf's plain interpolation is available.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

from robot.description import HandDescription, TwinDescription
from robot.executor import ExecutorConfig
from robot.schema import RobotSpec, SchemaError
from robot.sim.tasks import TaskConfig
from teleop.scripted import ScriptedConfig

CONF_DIR = Path(__file__).resolve().parent
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
    """A robot preset. ``driver`` picks the Arm implementation; ``sim`` is the MuJoCo twin."""

    name: str = MISSING
    driver: str = "sim"
    device: dict[str, Any] = field(default_factory=dict)  # port/host/model... of a real arm
    model: str = MISSING
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
class SimConfig:
    """The MuJoCo twin's clock and rendering.

    ``clock``: ``realtime`` paces physics to the wall clock; ``lockstep`` advances one control
    period per tick as fast as the machine allows, and waits (at most ``lockstep_wait`` wall
    seconds) for the policy whenever fewer than ``lockstep_min_horizon`` seconds of actions are
    queued, so a slow policy sees the same world as a fast one. While no policy is alive (none
    has sent a chunk within the watchdog) lockstep keeps to the wall clock.

    ``render_mesh_tolerance`` (m): the robot's visual meshes are drawn from copies decimated
    to this surface error (``robot.sim.meshes``), which is what makes the twin's cameras
    cheap; 0 draws the shipped meshes (physics is the same either way).
    """

    clock: str = "lockstep"
    physics_dt: float = 0.002
    render: bool = True
    render_mesh_tolerance: float = 0.0002
    lockstep_min_horizon: float = 0.06
    lockstep_wait: float = 2.0


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


@dataclass
class RecorderConfig:
    """How ``dojo record`` / the recorder node writes episodes (see dojo/nodes/recorder.py).

    ``fps``: steps per second of ROS time (a divisor of the control rate keeps the grid even).
    ``codec``: image codec for every camera (``jpeg`` or ``zstd``); ``camera_codecs`` overrides
    it per camera. ``min_free_gb``: refuse to start an episode with less free disk space.
    """

    fps: float = 10.0
    image_tolerance: float = 0.05
    max_latency: float = 0.3
    skew_threshold: float = 0.1
    codec: str = "jpeg"
    jpeg_quality: int = 90
    camera_codecs: dict[str, str] = field(default_factory=dict)
    min_free_gb: float = 1.0
    queue_seconds: float = 5.0


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
class TrainConfigSection:
    """``dojo train policy``: budget (``steps`` and/or wall-clock ``seconds``), optimiser,
    periodic evaluation in the twin (``eval_every`` steps, ``eval_episodes`` each), and model
    choices (``head``: regression or flow; ``cameras``: empty = every camera of the robot)."""

    steps: int = 100_000
    seconds: float = 1200.0
    batch_size: int = 32
    lr: float = 1e-3
    eval_every: int = 0
    eval_episodes: int = 10
    checkpoint_every: int = 200
    max_episodes: int = 0
    augment_pad: int = 4
    start_weight: float = 1.0
    threads: int = 0
    head: str = "regression"
    horizon: int = 10
    cameras: list[str] = field(default_factory=list)


@dataclass
class EvalConfigSection:
    """``dojo eval policy``: episodes use seeds ``seed, seed+1, ...`` (default far from the
    seeds demos are collected with). ``inference``: instant | sync | async (policy.rollout)."""

    seed: int = 100_000
    failure_videos: int = 3
    inference: str = "instant"
    camera: str = ""


@dataclass
class CriticConfig:
    """The live progress critic (dojo/nodes/critic.py); presets in ``conf/critic/``.

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
    mode: str = "chain"
    device: str = "cpu"
    threads: int = 0


@dataclass
class DemoConfig:
    """``dojo demo``: ``demos`` scripted demonstrations collected in the twin (seeds from 0),
    ``train_seconds`` of policy training, ``critic_steps`` of critic training, then ``episodes``
    (top level) episodes through the graph."""

    demos: int = 100
    train_seconds: float = 300.0
    critic_steps: int = 600


@dataclass
class RosConfig:
    domain_id: int = -1  # -1: take ROS_DOMAIN_ID from the environment (default 0)
    namespace: str = ""
    log_level: str = "info"


@dataclass
class CameraDeviceConfig:
    """One real camera (``dojo/nodes/camera.py`` runs one node each). ``driver``: ``realsense``
    or ``opencv``; the other keys are that driver's (robot/cameras/); ``calibration``: a ROS
    camera_calibration YAML published as ``camera_info`` when the file exists."""

    name: str = MISSING
    driver: str = MISSING
    serial: str = ""
    playback: str = ""
    source: str = ""
    preset: str = ""
    width: int = 640
    height: int = 480
    fps: float = 30.0
    depth: bool = False
    align_depth: bool = True
    exposure: float = 0.0
    timestamps: str = "device"
    calibration: str = ""


@dataclass
class CameraGroupConfig:
    """The real cameras of a rig (group ``camera``; ``none`` for the twin's own cameras)."""

    name: str = MISSING
    devices: list[CameraDeviceConfig] = field(default_factory=list)
    stale_periods: float = 2.0
    reconnect_after: float = 1.0
    status_hz: float = 1.0


@dataclass
class DojoConfig:
    robot: RobotConfig = MISSING
    task: TaskConfig = MISSING
    teleop: TeleopConfig = MISSING
    policy: PolicyConfig = MISSING
    camera: CameraGroupConfig = field(default_factory=lambda: CameraGroupConfig(name="none"))
    sim: SimConfig = field(default_factory=SimConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    driver: DriverConfig = field(default_factory=DriverConfig)
    ros: RosConfig = field(default_factory=RosConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    intervention: InterventionConfig = field(default_factory=InterventionConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    train: TrainConfigSection = field(default_factory=TrainConfigSection)
    evaluate: EvalConfigSection = field(default_factory=EvalConfigSection)
    demo: DemoConfig = field(default_factory=DemoConfig)
    store: str = ""  # episode store path or fsspec URL; set: the graph records every episode
    episodes: int = 3
    duration: float = 0.0  # ROS seconds the run may last; 0: until the episodes are done
    seed: int = 0
    out: str = "runs/latest"


_registered = False


def _register() -> None:
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


def presets(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _top_level_keys() -> list[str]:
    return sorted(DojoConfig.__dataclass_fields__)


def _check_overrides(overrides: list[str]) -> None:
    """Catch the common typos before hydra does, and suggest the nearest valid name."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        key = key.lstrip("+~")
        if key in GROUPS:
            valid = presets(key)
            if value not in valid:
                near = difflib.get_close_matches(value, valid, n=1)
                hint = f"; did you mean '{key}={near[0]}'?" if near else ""
                raise ConfigError(f"unknown {key} preset '{value}'{hint} (valid: {valid})")
        top = key.split(".", 1)[0]
        if top not in _top_level_keys():
            near = difflib.get_close_matches(top, _top_level_keys(), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(f"unknown config key '{top}'{hint} (valid: {_top_level_keys()})")


def load(overrides: list[str] | None = None) -> DictConfig:
    """Compose the config from the presets and ``key=value`` overrides, then validate it."""
    overrides = list(overrides or [])
    _check_overrides(overrides)
    _register()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose(config_name="config", overrides=overrides)
    except (ConfigCompositionException, MissingConfigException, ValidationError) as err:
        cause = err.__cause__ or err
        msg = str(cause)
        near = ""
        if "Key '" in msg:
            bad = msg.split("Key '", 1)[1].split("'", 1)[0]
            fields = _nearest_key(overrides, bad)
            near = f"; did you mean '{fields}'?" if fields else ""
        full_key = getattr(cause, "full_key", None)
        where = f"'{full_key}': " if full_key else ""
        raise ConfigError(f"config {where}{msg.splitlines()[0]}{near}") from err
    _person_from_teleop(cfg)
    validate(cfg)
    return cfg


def _person_from_teleop(cfg: DictConfig) -> None:
    """``teleop=<device>`` means a person with that device: the intervention node reads it."""
    name = cfg.teleop.name
    if name == "scripted":
        return
    if cfg.intervention.enabled and cfg.intervention.device not in (name, "scripted"):
        raise ConfigError(
            f"config 'intervention.device': {cfg.intervention.device!r} contradicts "
            f"teleop={name}; set one of them"
        )
    cfg.intervention.enabled = True
    cfg.intervention.device = name


def _nearest_key(overrides: list[str], bad: str) -> str | None:
    """For an override whose last part ``bad`` is not a field, the nearest valid full key."""
    import dataclasses
    import typing

    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        parts = key.split(".")
        if parts[-1] != bad:
            continue
        node: Any = DojoConfig
        for part in parts[:-1]:
            fields = (
                {f.name: f for f in dataclasses.fields(node)}
                if dataclasses.is_dataclass(node)
                else {}
            )
            if part not in fields:
                return None
            hints = typing.get_type_hints(node)
            node = hints[part]
        if not dataclasses.is_dataclass(node):
            return None
        names = [f.name for f in dataclasses.fields(node)]
        near = difflib.get_close_matches(bad, names, n=1)
        return ".".join([*parts[:-1], near[0]]) if near else None
    return None


def _require_complete(cfg: DictConfig) -> None:
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        key = err.full_key
        extra = " (a robot config must state its limits)" if key.startswith("robot.limits") else ""
        raise ConfigError(f"config: '{key}' is missing{extra}") from err
    except (ConfigKeyError, ValidationError) as err:
        raise ConfigError(f"config: {err}") from err


def robot_spec(cfg: DictConfig) -> RobotSpec:
    """The robot's spec; on a real robot its cameras are the ``camera`` group's devices."""
    mapping = OmegaConf.to_container(cfg.robot, resolve=True)
    if mapping.get("driver", "sim") != "sim" and "camera" in cfg and cfg.camera is not None:
        have = {c["name"] for c in mapping.get("cameras") or []}
        mapping["cameras"] = list(mapping.get("cameras") or []) + [
            {"name": d.name, "width": d.width, "height": d.height, "fps": d.fps}
            for d in cfg.camera.devices
            if d.name not in have
        ]
    try:
        return RobotSpec.from_mapping(mapping)
    except SchemaError as err:
        raise ConfigError(f"config 'robot': {err}") from err


def executor_config(cfg: DictConfig) -> ExecutorConfig:
    try:
        return ExecutorConfig(**OmegaConf.to_container(cfg.executor, resolve=True))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config 'executor': {err}") from err


def task_config(cfg: DictConfig) -> TaskConfig:
    try:
        return TaskConfig(**OmegaConf.to_container(cfg.task, resolve=True))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config 'task': {err}") from err


def scripted_config(cfg: DictConfig) -> ScriptedConfig:
    try:
        return ScriptedConfig(**OmegaConf.to_container(cfg.teleop.scripted, resolve=True))
    except (TypeError, ValueError) as err:
        raise ConfigError(f"config 'teleop.scripted': {err}") from err


def camera_devices(cfg: DictConfig) -> list[dict[str, Any]]:
    """The real cameras as plain mappings (what ``robot.cameras.registry.make_camera`` takes)."""
    if "camera" not in cfg or cfg.camera is None:
        return []
    out = []
    for dev in OmegaConf.to_container(cfg.camera.devices, resolve=True):
        # keys a driver does not take are dropped here, so presets stay one flat schema
        keep = {
            "realsense": (
                "serial",
                "playback",
                "preset",
                "width",
                "height",
                "fps",
                "depth",
                "align_depth",
                "exposure_us",
            ),
            "opencv": ("source", "width", "height", "fps", "exposure", "timestamps"),
        }.get(dev["driver"], ())
        if dev["driver"] == "realsense":
            dev["exposure_us"] = dev.get("exposure", 0.0)
        item = {k: dev[k] for k in keep if k in dev}
        item.update(name=dev["name"], driver=dev["driver"], calibration=dev.get("calibration", ""))
        out.append(item)
    return out


def _validate_hardware(cfg: DictConfig, spec: RobotSpec) -> None:
    """The arm driver and the cameras, built (no device I/O) so a bad value fails here."""
    from robot.arm_interface import ArmError
    from robot.arms.registry import DRIVERS, make_arm
    from robot.cameras.base import CameraError
    from robot.cameras.registry import make_camera

    driver = str(cfg.robot.driver)
    if driver not in DRIVERS:
        near = difflib.get_close_matches(driver, DRIVERS, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(f"config 'robot.driver': {driver!r}{hint} (available: {list(DRIVERS)})")
    if driver != "sim":
        try:
            make_arm(spec, driver, OmegaConf.to_container(cfg.robot.device, resolve=True))
        except ArmError as err:
            raise ConfigError(f"config 'robot.device': {err}") from err
    elif cfg.robot.device:
        raise ConfigError("config 'robot.device': the sim driver takes no device options")
    names = {c.name for c in cfg.robot.cameras}
    if "camera" not in cfg or cfg.camera is None:
        return
    for key in ("stale_periods", "reconnect_after", "status_hz"):
        if not cfg.camera[key] > 0:
            raise ConfigError(f"config 'camera.{key}': {cfg.camera[key]} must be > 0")
    seen: set[str] = set()
    for i, dev in enumerate(camera_devices(cfg)):
        where = f"config 'camera.devices[{i}]'"
        if dev["name"] in seen:
            raise ConfigError(f"{where}: camera name {dev['name']!r} is used twice")
        seen.add(dev["name"])
        if driver == "sim" and dev["name"] in names:
            raise ConfigError(
                f"{where}: camera {dev['name']!r} is also one of the twin's cameras; rename it"
            )
        try:
            make_camera(dev)
        except (CameraError, TypeError) as err:
            raise ConfigError(f"{where}: {err}") from err


def validate(cfg: DictConfig) -> None:
    """Everything a node will build from the config, built once here so errors come first."""
    _require_complete(cfg)
    spec = robot_spec(cfg)
    executor_config(cfg)
    task_config(cfg)
    scripted_config(cfg)
    if cfg.sim.clock not in ("realtime", "lockstep"):
        raise ConfigError(f"config 'sim.clock': {cfg.sim.clock!r} is not 'realtime' or 'lockstep'")
    _validate_hardware(cfg, spec)
    period = spec.control_period
    steps = period / cfg.sim.physics_dt
    if cfg.robot.driver == "sim" and (abs(steps - round(steps)) > 1e-6 or round(steps) < 1):
        raise ConfigError(
            f"config 'sim.physics_dt': {cfg.sim.physics_dt} s does not divide the control period "
            f"{period} s (robot.control_hz={spec.control_hz})"
        )
    if cfg.episodes < 0:
        raise ConfigError(f"config 'episodes': {cfg.episodes} must be >= 0")
    if cfg.duration < 0:
        raise ConfigError(f"config 'duration': {cfg.duration} must be >= 0")
    icfg = cfg.intervention
    if icfg.enabled:
        from teleop.registry import device_names

        valid = ["scripted", *device_names()]
        if icfg.device not in valid:
            near = difflib.get_close_matches(str(icfg.device), valid, n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(f"config 'intervention.device': {icfg.device!r}{hint} ({valid})")
        for key in ("rate_hz", "stall_s", "stall_rad", "regress_m"):
            if not icfg[key] > 0:
                raise ConfigError(f"config 'intervention.{key}': {icfg[key]} must be > 0")
    rec = cfg.recorder
    for cam, codec in {"*": rec.codec, **rec.camera_codecs}.items():
        if codec not in ("jpeg", "zstd"):
            key = "recorder.codec" if cam == "*" else f"recorder.camera_codecs.{cam}"
            raise ConfigError(f"config '{key}': {codec!r} is not 'jpeg' or 'zstd'")
    unknown = sorted(set(rec.camera_codecs) - {c.name for c in spec.cameras})
    if unknown:
        raise ConfigError(
            f"config 'recorder.camera_codecs': no camera {unknown} on robot '{spec.name}'"
        )
    try:
        from episodes.align import AlignConfig

        AlignConfig(rec.fps, rec.image_tolerance, rec.max_latency, rec.skew_threshold)
    except ValueError as err:
        raise ConfigError(f"config {err}") from err
    _validate_policy(cfg)
    _validate_critic(cfg)
    if cfg.teleop.name not in presets("teleop"):
        raise ConfigError(
            f"config 'teleop.name': {cfg.teleop.name!r} (available: {presets('teleop')})"
        )


CRITIC_BACKENDS = ("compact", "vlm")


def _validate_critic(cfg: DictConfig) -> None:
    cr = cfg.critic
    if cr.backend not in CRITIC_BACKENDS:
        raise ConfigError(
            f"config 'critic.backend': {cr.backend!r} is not one of {list(CRITIC_BACKENDS)}"
        )
    if cr.enabled and not cr.checkpoint:
        what = "a model directory" if cr.backend == "vlm" else "a `dojo train critic` directory"
        raise ConfigError(
            f"config 'critic.checkpoint': the critic is enabled but no checkpoint is set ({what})"
        )
    if cr.backend == "compact" and str(cr.checkpoint).startswith("vlm:"):
        raise ConfigError(
            f"config 'critic.checkpoint': {cr.checkpoint!r} names a VLM; use "
            f"critic=vlm critic.checkpoint={cr.checkpoint[4:]}"
        )
    if cr.backend == "vlm" and (not cr.cameras or cr.max_new_tokens < 1):
        raise ConfigError(
            f"config 'critic.cameras'/'critic.max_new_tokens': a VLM critic needs a camera and "
            f"at least one new token (got {list(cr.cameras)}, {cr.max_new_tokens})"
        )
    if not cr.rate_hz > 0:
        raise ConfigError(f"config 'critic.rate_hz': {cr.rate_hz} must be > 0")
    if not 0.0 <= cr.done_threshold <= 1.0:
        raise ConfigError(f"config 'critic.done_threshold': {cr.done_threshold} must be in [0, 1]")
    if cr.mode not in ("chain", "anchor"):
        raise ConfigError(f"config 'critic.mode': {cr.mode!r} is not 'chain' or 'anchor'")
    if cr.threads < 0:
        raise ConfigError(f"config 'critic.threads': {cr.threads} must be >= 0 (0: half the cores)")


POLICY_BACKENDS = ("compact", "lerobot")
LEROBOT_KINDS = ("act", "smolvla", "pi0", "pi05")


def _validate_policy(cfg: DictConfig) -> None:
    pol = cfg.policy
    if pol.backend not in POLICY_BACKENDS:
        near = difflib.get_close_matches(str(pol.backend), POLICY_BACKENDS, n=1)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        raise ConfigError(
            f"config 'policy.backend': {pol.backend!r}{hint} ({list(POLICY_BACKENDS)})"
        )
    if pol.backend == "lerobot" and pol.kind not in LEROBOT_KINDS:
        raise ConfigError(
            f"config 'policy.kind': {pol.kind!r} is not a LeRobot policy this adapts "
            f"({list(LEROBOT_KINDS)})"
        )
    if not pol.replan_horizon >= 0:
        raise ConfigError(f"config 'policy.replan_horizon': {pol.replan_horizon} must be >= 0")
    tr = cfg.train
    if tr.head not in ("regression", "flow"):
        raise ConfigError(f"config 'train.head': {tr.head!r} is not 'regression' or 'flow'")
    for key in ("steps", "batch_size", "horizon"):
        if tr[key] < 1:
            raise ConfigError(f"config 'train.{key}': {tr[key]} must be >= 1")
    cams = {c.name for c in cfg.robot.cameras}
    unknown = [c for c in tr.cameras if c not in cams]
    if unknown:
        raise ConfigError(
            f"config 'train.cameras': no camera {unknown} on robot (has {sorted(cams)})"
        )
    if cfg.evaluate.inference not in ("instant", "sync", "async"):
        raise ConfigError(
            f"config 'evaluate.inference': {cfg.evaluate.inference!r} is not instant, sync or async"
        )


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def from_yaml_file(path: str | Path) -> DictConfig:
    """Read back a resolved config written by ``dojo run`` (what each node process receives)."""
    _register()
    base = OmegaConf.structured(DojoConfig)
    return OmegaConf.merge(base, OmegaConf.load(str(path)))
