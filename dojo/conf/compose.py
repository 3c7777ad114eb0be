"""Composing a config: presets plus ``key=value`` overrides, checked against the schema first.

Every ``dojo`` command goes through :func:`load`. Before hydra sees an override, each part of
its key is checked against the schema's dataclasses, so a typo anywhere (``train.model.hed``,
``camera.devices.0.realsense.serail``) names the nearest valid key; a key the command does not
read is refused, naming where that key lives if another section has it (``dojo eval policy
seed=1``: the episodes' seeds are ``evaluate.seed``); a field the command fills in itself
(:data:`~dojo.conf.schema.FILLED_BY_COMMAND`) is refused with the key to set instead.

:func:`schema_keys` walks the schema (every field of every dataclass, nested ones included): the
``--help`` of each command lists what it reads from it, with types and defaults.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import types
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dojo.conf.schema import FILLED_BY_COMMAND, GROUPS, ConfigError, DojoConfig, register
from robot.registry import did_you_mean

CONF_DIR = Path(__file__).resolve().parent


def presets(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def top_level_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(DojoConfig)]


@dataclasses.dataclass(frozen=True)
class Key:
    """One settable key of the schema: ``path`` (``train.model.head``) and its type."""

    path: str
    type: Any

    @property
    def type_name(self) -> str:
        return _type_name(self.type)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return args[0] if len(args) == 1 else tp
    return tp


def _type_name(tp: Any) -> str:
    inner = _unwrap(tp)
    optional = inner is not tp
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        name = "|".join(m.name for m in inner)
    elif typing.get_origin(inner) in (list, tuple):
        args = [a for a in typing.get_args(inner) if a is not Ellipsis]
        name = f"list[{_type_name(args[0]) if args else 'any'}]"
    elif typing.get_origin(inner) is dict:
        k, v = typing.get_args(inner)
        name = f"dict[{_type_name(k)}, {_type_name(v)}]"
    elif inner is Any:
        name = "any"
    else:
        name = getattr(inner, "__name__", str(inner))
    return f"{name} | None" if optional else name


def schema_keys(cls: type = DojoConfig, prefix: str = "") -> Iterator[Key]:
    """Every leaf key under ``cls`` (a dataclass), depth first; list-of-dataclass fields
    (``camera.devices``) yield their element's keys under ``<path>.N``."""
    for f in dataclasses.fields(cls):
        declared = _hints(cls)[f.name]
        tp = _unwrap(declared)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            yield from schema_keys(tp, path + ".")
        elif typing.get_origin(tp) is list and dataclasses.is_dataclass(typing.get_args(tp)[0]):
            yield from schema_keys(typing.get_args(tp)[0], path + ".N.")
        else:
            yield Key(path, declared)


def _is_filled(key: str) -> str | bool | None:
    """What to set instead of ``key`` if a command fills it (False: a key a person sets)."""
    pattern = ".".join("*" if p.isdigit() else p for p in key.split("."))
    for filled, instead in FILLED_BY_COMMAND.items():
        if fnmatch.fnmatchcase(pattern, filled):
            return instead
    return False


def _check_path(key: str) -> None:
    """Each part of ``key`` names a field of the dataclass above it (a dict takes any key)."""
    node: Any = DojoConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        node = _unwrap(node)
        if typing.get_origin(node) is list:
            if not part.isdigit():
                where = ".".join(parts[:i])
                raise ConfigError(f"config '{key}': '{where}' is a list; index it ({where}.0)")
            node = typing.get_args(node)[0]
            continue
        if typing.get_origin(node) is dict or node is Any:
            return
        if not dataclasses.is_dataclass(node):
            where = ".".join(parts[:i])
            raise ConfigError(f"config '{key}': '{where}' is a {_type_name(node)}, not a section")
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            above = ".".join(parts[:i])
            full = [f"{above}.{n}" if above else n for n in names]
            bad = ".".join(parts[: i + 1])
            what = "key" if i else "config key"
            hints = _hints(node)
            deeper = [  # a key of a section one level down: camera.devices.0.serial
                f"{above}.{n}.{part}" if above else f"{n}.{part}"
                for n in names
                if dataclasses.is_dataclass(_unwrap(hints[n]))
                and part in {g.name for g in dataclasses.fields(_unwrap(hints[n]))}
            ]
            hint = f"; did you mean '{deeper[0]}'?" if deeper else did_you_mean(bad, full)
            raise ConfigError(f"unknown {what} '{bad}'{hint} (valid: {sorted(names)})")
        node = _hints(node)[part]


def _elsewhere(key: str, reads: Iterable[str]) -> list[str]:
    """Keys the command reads whose last part is ``key``'s last part (``seed`` ->
    ``evaluate.seed``): where the user probably meant."""
    leaf = key.split(".")[-1]
    out = []
    for k in schema_keys():
        if k.path.split(".")[0] in reads and k.path.split(".")[-1] == leaf and k.path != key:
            out.append(k.path)
    return out


def check_overrides(overrides: list[str], reads: Iterable[str] | None = None, command="") -> None:
    """Refuse what hydra would refuse, and what it would accept but the command ignores."""
    reads = set(reads) if reads is not None else None
    who = f"`dojo {command}`" if command else "this command"
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"argument {item!r} is not key=value")
        key, value = item.split("=", 1)
        key = key.lstrip("+~")
        top = key.split(".", 1)[0]
        if key in GROUPS:
            valid = presets(key)
            if value not in valid:
                hint = did_you_mean(f"{key}={value}", [f"{key}={p}" for p in valid])
                raise ConfigError(f"unknown {key} preset '{value}'{hint} (valid: {valid})")
        elif top not in top_level_keys() and _elsewhere(key, reads or top_level_keys()):
            near = " or ".join(f"'{k}'" for k in _elsewhere(key, reads or top_level_keys()))
            raise ConfigError(f"unknown config key '{key}'; did you mean {near}?")
        else:
            _check_path(key)
        if reads is not None and top not in reads:
            near = " or ".join(f"'{k}'" for k in _elsewhere(key, reads))
            hint = f"; did you mean {near}?" if near else ""
            raise ConfigError(
                f"'{key}' is not read by {who}{hint} (it reads: {', '.join(sorted(reads))})"
            )
        instead = _is_filled(key)
        if instead is not False:
            fix = f"; set {instead} instead" if instead else ""
            raise ConfigError(f"config '{key}': filled in by the command{fix}")


def load(
    overrides: list[str] | None = None, reads: Iterable[str] | None = None, command: str = ""
) -> DictConfig:
    """Compose the config from the presets and ``key=value`` overrides, then validate it.

    ``reads``: the top-level keys the command reads (None: all); an override of any other is
    refused. ``command`` names it in messages (``"eval policy"``)."""
    from dojo.conf.validate import person_from_teleop, validate

    overrides = list(overrides or [])
    check_overrides(overrides, reads, command)
    register()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        cause = err.__cause__ or err
        full_key = getattr(cause, "full_key", None)
        where = f"'{full_key}': " if full_key else ""
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        message = " ".join(lines[:2]) if lines and lines[0].endswith(":") else lines[0]
        raise ConfigError(f"config {where}{message}") from err
    person_from_teleop(cfg)
    validate(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def from_yaml_file(path: str | Path) -> DictConfig:
    """Read back a resolved config written by ``dojo run`` (what each node process receives)."""
    register()
    base = OmegaConf.structured(DojoConfig)
    return OmegaConf.merge(base, OmegaConf.load(str(path)))


def describe(reads: Iterable[str] | None, cfg: DictConfig | None = None) -> str:
    """The keys under ``reads`` (None: all) with their types and ``cfg``'s values (the
    composed defaults), one per line: what ``dojo <cmd> --help`` prints."""
    reads = list(reads) if reads is not None else top_level_keys()
    lines = []
    for top in [k for k in top_level_keys() if k in reads]:
        if top in GROUPS:
            current = OmegaConf.select(cfg, f"{top}.name") if cfg is not None else None
            lines.append(f"  {top}=<preset>  ({', '.join(presets(top))}; default {current})")
        for k in schema_keys():
            if k.path.split(".")[0] != top or _is_filled(k.path) is not False:
                continue
            value = _value(cfg, k.path)
            lines.append(f"  {k.path}: {k.type_name}{value}")
    return "\n".join(lines)


def _value(cfg: DictConfig | None, path: str) -> str:
    if cfg is None or ".N." in path:
        return ""
    try:
        v = OmegaConf.select(cfg, path, throw_on_missing=False)
    except OmegaConfBaseException:
        return ""
    if isinstance(v, DictConfig | ListConfig):
        v = OmegaConf.to_container(v, resolve=True, enum_to_str=True)
    text = v.name if isinstance(v, enum.Enum) else repr(v) if isinstance(v, str) else str(v)
    return f" = {text}" if len(text) <= 60 else f" = {text[:57]}..."
