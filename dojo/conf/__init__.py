"""Hydra structured configs: a dataclass schema per group, YAML presets that fill it in.

Groups (a folder of presets each): ``robot``, ``task``, ``teleop``, ``camera``, ``policy``,
``critic``. Sections without presets (``sim``, ``executor``, ``train``, ``critic_train``, ...)
take ``key=value`` overrides. Libraries never see hydra: after composition the config is turned
into the plain objects the libraries take (``RobotSpec``, ``ExecutorConfig``, the library
config dataclasses themselves), and a bad value fails at start-up, before any node starts or
any hardware moves, with a message that names the key. A misspelt preset or key names the
nearest valid one. No ``eval`` resolvers: only OmegaConf's plain interpolation is available.

Three concerns, three modules: :mod:`dojo.conf.schema` (the dataclasses and what is
registered), :mod:`dojo.conf.compose` (presets + overrides -> a config, the key checks,
``--help``), :mod:`dojo.conf.validate` (a config -> library objects, checked). This package
is their public face: ``conf.load``, ``conf.robot_spec``, ...
"""

from dojo.conf.compose import (
    CONF_DIR,
    describe,
    from_yaml_file,
    load,
    presets,
    schema_keys,
    to_yaml,
    top_level_keys,
)
from dojo.conf.schema import GROUPS, ConfigError, DojoConfig
from dojo.conf.validate import (
    camera_devices,
    executor_config,
    plain,
    robot_spec,
    scripted_config,
    section,
    task_config,
    twin_config,
    validate,
)

__all__ = [
    "CONF_DIR",
    "GROUPS",
    "ConfigError",
    "DojoConfig",
    "camera_devices",
    "describe",
    "executor_config",
    "from_yaml_file",
    "load",
    "plain",
    "presets",
    "robot_spec",
    "schema_keys",
    "scripted_config",
    "section",
    "task_config",
    "to_yaml",
    "top_level_keys",
    "twin_config",
    "validate",
]
