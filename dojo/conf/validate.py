"""From a composed config to the plain objects the libraries take, checked before anything runs.

:func:`validate` builds everything a node or a command will build from the config (the robot's
``RobotSpec``, the executor's and the task's configs, the arm driver and the cameras without
device I/O, the library configs of every section) so a bad value fails here, at start-up,
naming the key, before any node starts or any hardware moves. The builders (:func:`robot_spec`,
:func:`section`, :func:`camera_devices`, ...) are what the commands and nodes call afterwards.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, ValidationError

from dojo.conf.compose import presets
from dojo.conf.schema import CAMERA_DRIVER_SECTIONS, ConfigError
from robot.executor import ExecutorConfig
from robot.registry import did_you_mean
from robot.schema import RobotSpec, SchemaError
from robot.sim.config import TaskConfig, TwinConfig
from teleop.scripted_config import OperatorError, ScriptedConfig


def plain(node: Any) -> Any:
    """A config node as plain Python (enums as their strings), for libraries that take
    mappings."""
    return OmegaConf.to_container(node, resolve=True, enum_to_str=True)


def section(cfg: DictConfig, key: str) -> Any:
    """The library dataclass of section ``key`` (``train`` -> ``PolicyTrainConfig``, nested
    dataclasses included), as the schema registered it."""
    try:
        return OmegaConf.to_object(OmegaConf.select(cfg, key))
    except (TypeError, ValueError, OperatorError) as err:
        raise ConfigError(f"config '{key}': {err}") from err


def person_from_teleop(cfg: DictConfig) -> None:
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


def _require_complete(cfg: DictConfig) -> None:
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        key = err.full_key
        extra = " (a robot config must state its limits)" if key.startswith("robot.limits") else ""
        raise ConfigError(f"config: '{key}' is missing{extra}") from err
    except (ConfigKeyError, ValidationError) as err:
        raise ConfigError(f"config: {err}") from err


def camera_devices(cfg: DictConfig) -> list[dict[str, Any]]:
    """The real cameras as plain mappings (what ``robot.cameras.registry.make_camera`` takes):
    ``name``, ``driver``, ``calibration`` and the chosen driver's own config."""
    if "camera" not in cfg or cfg.camera is None:
        return []
    out = []
    for dev in plain(cfg.camera.devices):
        driver = dev["driver"]
        own = dict(dev.get(driver) or {}) if driver in CAMERA_DRIVER_SECTIONS else {}
        own.pop("name", None)
        out.append(
            {"name": dev["name"], "driver": driver, "calibration": dev["calibration"], **own}
        )
    return out


def robot_spec(cfg: DictConfig) -> RobotSpec:
    """The robot's spec; on a real robot its cameras are the ``camera`` group's devices."""
    mapping = plain(cfg.robot)
    if mapping.get("driver", "sim") != "sim" and "camera" in cfg and cfg.camera is not None:
        have = {c["name"] for c in mapping.get("cameras") or []}
        mapping["cameras"] = list(mapping.get("cameras") or []) + [
            {"name": d["name"], "width": d["width"], "height": d["height"], "fps": d["fps"]}
            for d in camera_devices(cfg)
            if d["name"] not in have and "width" in d
        ]
    try:
        return RobotSpec.from_mapping(mapping)
    except SchemaError as err:
        raise ConfigError(f"config 'robot': {err}") from err


def executor_config(cfg: DictConfig) -> ExecutorConfig:
    return section(cfg, "executor")


def task_config(cfg: DictConfig) -> TaskConfig:
    return section(cfg, "task")


def twin_config(cfg: DictConfig) -> TwinConfig:
    """The ``sim`` section: the twin's own config."""
    return section(cfg, "sim")


def scripted_config(cfg: DictConfig) -> ScriptedConfig:
    return section(cfg, "teleop.scripted")


def _validate_cameras(cfg: DictConfig, driver: str) -> None:
    from robot.cameras.base import CameraError
    from robot.cameras.registry import make_camera

    for key in ("stale_periods", "reconnect_after", "status_hz"):
        if not cfg.camera[key] > 0:
            raise ConfigError(f"config 'camera.{key}': {cfg.camera[key]} must be > 0")
    twin_cameras = {c.name for c in cfg.robot.cameras}
    seen: set[str] = set()
    for i, (node, dev) in enumerate(zip(cfg.camera.devices, camera_devices(cfg), strict=True)):
        where = f"config 'camera.devices[{i}]'"
        if dev["name"] in seen:
            raise ConfigError(f"{where}: camera name {dev['name']!r} is used twice")
        seen.add(dev["name"])
        if driver == "sim" and dev["name"] in twin_cameras:
            raise ConfigError(
                f"{where}: camera {dev['name']!r} is also one of the twin's cameras; rename it"
            )
        for other, cls in CAMERA_DRIVER_SECTIONS.items():
            if other == dev["driver"]:
                continue
            if plain(node[other]) != plain(OmegaConf.structured(cls)):
                raise ConfigError(
                    f"config 'camera.devices.{i}.{other}': set, but the camera's driver is "
                    f"{dev['driver']!r}; move the keys to camera.devices.{i}.{dev['driver']}"
                )
        try:
            make_camera(dev)
        except (CameraError, TypeError) as err:
            raise ConfigError(f"{where}: {err}") from err


def _validate_hardware(cfg: DictConfig, spec: RobotSpec) -> None:
    """The arm driver and the cameras, built (no device I/O) so a bad value fails here."""
    from robot.arm_interface import ArmError
    from robot.arms.registry import DRIVERS, make_arm

    driver = str(cfg.robot.driver)
    if driver not in DRIVERS:
        names = DRIVERS.names()
        raise ConfigError(
            f"config 'robot.driver': {driver!r}{did_you_mean(driver, names)} (available: {names})"
        )
    if driver != "sim":
        try:
            make_arm(spec, driver, plain(cfg.robot.device))
        except ArmError as err:
            raise ConfigError(f"config 'robot.device': {err}") from err
    elif cfg.robot.device:
        raise ConfigError("config 'robot.device': the sim driver takes no device options")
    if "camera" in cfg and cfg.camera is not None:
        _validate_cameras(cfg, driver)


def validate(cfg: DictConfig) -> None:
    """Everything a node will build from the config, built once here so errors come first."""
    _require_complete(cfg)
    spec = robot_spec(cfg)
    executor_config(cfg)
    task_config(cfg)
    twin_config(cfg)
    scripted_config(cfg)
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
            raise ConfigError(
                f"config 'intervention.device': {icfg.device!r}"
                f"{did_you_mean(icfg.device, valid)} ({valid})"
            )
        for key in ("rate_hz", "stall_s", "stall_rad", "regress_m"):
            if not icfg[key] > 0:
                raise ConfigError(f"config 'intervention.{key}': {icfg[key]} must be > 0")
    rec = cfg.recorder
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
    section(cfg, "demo")  # DemoConfig checks its own values
    if cfg.teleop.name not in presets("teleop"):
        raise ConfigError(
            f"config 'teleop.name': {cfg.teleop.name!r} (available: {presets('teleop')})"
        )


def _validate_critic(cfg: DictConfig) -> None:
    from critic.base import CriticError
    from critic.registry import CRITICS

    cr = cfg.critic
    if cr.backend not in CRITICS:
        names = CRITICS.names()
        raise ConfigError(
            f"config 'critic.backend': {cr.backend!r}{did_you_mean(cr.backend, names)} is not "
            f"one of {names}"
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
    if cr.threads < 0:
        raise ConfigError(f"config 'critic.threads': {cr.threads} must be >= 0 (0: half the cores)")
    relabel = section(cfg, "relabel")
    try:
        relabel.validate()
    except CriticError as err:
        raise ConfigError(f"config 'relabel': {err}") from err
    section(cfg, "critic_eval")
    section(cfg, "audit")
    section(cfg, "learner")
    section(cfg, "practice.hil")
    try:  # the stores come from store= when a command runs: checked there
        dataclasses.replace(section(cfg, "critic_train"), stores=["<store>"]).validate()
    except CriticError as err:
        raise ConfigError(f"config 'critic_train': {err}") from err


LEROBOT_KINDS = ("act", "smolvla", "pi0", "pi05")


def _validate_policy(cfg: DictConfig) -> None:
    from policy.registry import BACKENDS

    pol = cfg.policy
    if pol.backend not in BACKENDS:
        names = BACKENDS.names()
        raise ConfigError(
            f"config 'policy.backend': {pol.backend!r}{did_you_mean(pol.backend, names)} ({names})"
        )
    if pol.backend == "lerobot" and pol.kind not in LEROBOT_KINDS:
        raise ConfigError(
            f"config 'policy.kind': {pol.kind!r}{did_you_mean(pol.kind, LEROBOT_KINDS)} is not a "
            f"LeRobot policy this adapts ({list(LEROBOT_KINDS)})"
        )
    if not pol.replan_horizon >= 0:
        raise ConfigError(f"config 'policy.replan_horizon': {pol.replan_horizon} must be >= 0")
    tr = section(cfg, "train")
    for key in ("steps", "batch_size"):
        if getattr(tr, key) < 1:
            raise ConfigError(f"config 'train.{key}': {getattr(tr, key)} must be >= 1")
    cams = {c.name for c in cfg.robot.cameras}
    unknown = [c for c in tr.model.cameras if c not in cams]
    if unknown:
        raise ConfigError(
            f"config 'train.model.cameras': no camera {unknown} on robot (has {sorted(cams)})"
        )
    try:  # the model as the trainer will build it, with the robot's joints and cameras
        dataclasses.replace(
            tr.model,
            joint_names=list(cfg.robot.joint_names),
            cameras=list(tr.model.cameras) or sorted(cams) or ["<camera>"],
        ).validate()
    except ValueError as err:
        raise ConfigError(f"config 'train.model': {err}") from err
    ev = section(cfg, "evaluate")
    if ev.video_camera and ev.video_camera not in cams:
        raise ConfigError(
            f"config 'evaluate.video_camera': {ev.video_camera!r}"
            f"{did_you_mean(ev.video_camera, cams)} is not a camera of the robot ({sorted(cams)})"
        )
