"""The schema is the libraries' own config dataclasses: every field of each is a key, settable
through the one parser, and every preset of every group composes."""

from __future__ import annotations

import dataclasses
import enum
import typing

import pytest
from omegaconf import OmegaConf

from critic.audit import AuditConfig
from critic.config import CriticTrainConfig
from critic.evaluate import CriticEvalConfig
from critic.pairs import PairConfig
from critic.relabel import RelabelConfig
from dojo import conf
from dojo.conf.compose import check_overrides
from policy.config import PolicyEvalConfig, PolicyTrainConfig, VLAConfig
from robot.cameras.opencv import OpenCVConfig
from robot.cameras.realsense import RealSenseConfig
from robot.executor import ExecutorConfig
from robot.sim.config import TaskConfig, TwinConfig
from teleop.scripted_config import ScriptedConfig

LIBRARY_SECTIONS = {
    "train": PolicyTrainConfig,
    "train.model": VLAConfig,
    "evaluate": PolicyEvalConfig,
    "critic_train": CriticTrainConfig,
    "critic_train.pairs": PairConfig,
    "critic_eval": CriticEvalConfig,
    "relabel": RelabelConfig,
    "audit": AuditConfig,
    "executor": ExecutorConfig,
    "task": TaskConfig,
    "sim": TwinConfig,
    "teleop.scripted": ScriptedConfig,
    "camera.devices.N.realsense": RealSenseConfig,
    "camera.devices.N.opencv": OpenCVConfig,
}
EXTRA = {  # what a preset needs beside its own name to compose
    "camera": ["robot=so101"],
    "camera=playback": ["robot=so101", "camera.devices.0.realsense.playback=x.db3"],
}


def flow(value) -> str:
    """``value`` as a hydra override value."""
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value)
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(flow(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return "'" + value + "'"
    return repr(value)


def _presets():
    for group in conf.GROUPS:
        for name in conf.presets(group):
            yield group, name


@pytest.mark.parametrize(("group", "name"), list(_presets()))
def test_every_preset_of_every_group_composes(group, name):
    extra = EXTRA.get(f"{group}={name}", EXTRA.get(group, []))
    cfg = conf.load([f"{group}={name}", *extra])
    assert cfg[group].name  # robot presets name the robot (sim_panda: panda), the others themselves


@pytest.mark.parametrize("section", sorted(LIBRARY_SECTIONS))
def test_every_library_config_field_is_a_key(section):
    """Walk the library dataclass: each field is a key of the schema under its section, of the
    same type, present in the composed config, and (unless the command fills it) settable."""
    cls = LIBRARY_SECTIONS[section]
    schema = {k.path: k for k in conf.schema_keys()}
    cfg = conf.load(["robot=so101", "camera=realsense"] if "camera" in section else [])
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = f"{section}.{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            assert any(p.startswith(path + ".") for p in schema), path
            continue
        assert path in schema, f"{path} is not a key"
        assert schema[path].type == hints[f.name], path
        concrete = path.replace(".N.", ".0.")
        assert OmegaConf.select(cfg, concrete, throw_on_missing=False) is not None or (
            f.default is None
        ), concrete
        value = OmegaConf.select(cfg, concrete)
        text = (
            OmegaConf.to_yaml({"v": value}).split(":", 1)[1].strip()
            if value is not None
            else "null"
        )
        override = f"{concrete}={text}"
        if conf.compose._is_filled(concrete) is not False:
            with pytest.raises(conf.ConfigError, match="filled in by the command"):
                check_overrides([override])
        else:
            check_overrides([override])


def test_all_settable_keys_compose_in_one_load():
    """Every settable library key set to its own value at once: hydra takes each one."""
    base = ["robot=so101", "camera=realsense"]
    cfg = conf.load(base)
    overrides = []
    for section in LIBRARY_SECTIONS:
        for key in conf.schema_keys():
            concrete = key.path.replace(".N.", ".0.")
            if not key.path.startswith(section + ".") or "." in key.path[len(section) + 1 :]:
                continue
            if conf.compose._is_filled(concrete) is not False:
                continue
            value = OmegaConf.select(cfg, concrete)
            if value is not None:
                overrides.append(f"{concrete}={flow(value)}")
    assert len(overrides) > 80
    again = conf.load([*base, *overrides])
    assert OmegaConf.to_yaml(again) == OmegaConf.to_yaml(cfg)


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("train.model.hed=flow", r"did you mean 'train\.model\.head'"),
        ("train.weight_decy=0", r"did you mean 'train\.weight_decay'"),
        ("critic_train.pairs.mismach=0.2", r"did you mean 'critic_train\.pairs\.mismatch'"),
        (
            "camera.devices.0.realsense.serail=1",
            r"did you mean 'camera\.devices\.0\.realsense\.serial'",
        ),
        ("evaluate.inference=asynch", "inference"),
        ("train.model.head=flw", "head"),
    ],
)
def test_a_typo_anywhere_names_the_nearest_key(override, hint):
    with pytest.raises(conf.ConfigError, match=hint):
        conf.load([override])


def test_library_keys_reach_the_library():
    cfg = conf.load(
        ["train.weight_decay=0.5", "train.warmup=7", "train.prefix_prob=0.25",
         "train.model.head=flow", "train.model.dim=64", "evaluate.inference=async"]
    )  # fmt: skip
    train = conf.section(cfg, "train")
    assert isinstance(train, PolicyTrainConfig) and isinstance(train.model, VLAConfig)
    assert (train.weight_decay, train.warmup, train.prefix_prob) == (0.5, 7, 0.25)
    assert train.model.head == "flow" and train.model.dim == 64
    assert conf.section(cfg, "evaluate").inference == "async"


def test_a_key_the_command_fills_is_refused_with_the_key_to_set():
    with pytest.raises(conf.ConfigError, match="set store= instead"):
        conf.load(["train.stores=[a.zarr]"])
    with pytest.raises(conf.ConfigError, match="set episodes= instead"):
        conf.load(["evaluate.episodes=5"])


def test_camera_devices_come_from_the_drivers_own_configs():
    cfg = conf.load(["robot=so101", "camera=uvc", "camera.devices.0.opencv.fourcc=MJPG",
                     "camera.devices.0.opencv.exposure_us=10000"])  # fmt: skip
    (dev,) = conf.camera_devices(cfg)
    assert dev["driver"] == "opencv" and dev["fourcc"] == "MJPG" and dev["exposure_us"] == 10000
    assert set(dev) == {"name", "driver", "calibration"} | {
        f.name for f in dataclasses.fields(OpenCVConfig) if f.name != "name"
    }
    cfg = conf.load(["robot=so101", "camera=realsense", "camera.devices.0.realsense.repeat=true",
                     "camera.devices.0.realsense.real_time=false"])  # fmt: skip
    (dev,) = conf.camera_devices(cfg)
    assert dev["repeat"] is True and dev["real_time"] is False
    with pytest.raises(
        conf.ConfigError, match=r"camera\.devices\.0\.opencv.*driver is 'realsense'"
    ):
        conf.load(["robot=so101", "camera=realsense", "camera.devices.0.opencv.source=/dev/video2"])
    assert OpenCVConfig().timestamps == "host"  # one default, the driver's


def test_help_lists_the_keys_a_command_reads_with_types_and_defaults():
    from dojo import policy_cmd

    text = policy_cmd.EVAL.help()
    assert (
        "evaluate.seed: int = 100000" in text and "evaluate.inference: instant|sync|async" in text
    )
    assert "train.lr" not in text and "critic_train" not in text
    text = policy_cmd.TRAIN.help()
    assert (
        "train.weight_decay: float = 0.0001" in text and "train.model.head: regression|flow" in text
    )
    assert "train.stores" not in text  # filled by the command from store=
