"""What every ``dojo`` command shares: the keys it reads, one way to load them, one way to fail.

A :class:`Command` names the top-level config keys it reads (``reads``); :meth:`Command.load`
composes the config through :func:`dojo.conf.load` with them, so an override of any other key
is refused instead of silently ignored, and ``dojo <cmd> --help`` lists exactly those keys
(:func:`dojo.conf.describe`). ``aliases`` are short forms a command accepts
(``checkpoint=`` for ``policy.checkpoint=``). :func:`one_line` turns a user error from any
library into the single line the CLI prints.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field

GRAPH_READS = (
    "robot",
    "task",
    "teleop",
    "policy",
    "camera",
    "critic",
    "sim",
    "executor",
    "driver",
    "ros",
    "recorder",
    "intervention",
    "learner",
    "practice",
    "store",
    "episodes",
    "duration",
    "seed",
    "out",
)
"""What the node graph reads (``dojo run``, ``record``, ``graph``): the config every node gets."""

TWIN_READS = ("robot", "task", "sim")
"""What building the twin reads."""


@dataclass(frozen=True)
class Command:
    """One ``dojo`` command: ``run(argv) -> exit status``; ``reads``: its top-level keys (None:
    every key); ``aliases``: ``short -> full`` key names; ``usage``: shown by ``--help``."""

    name: str
    run: Callable[[list[str]], int]
    reads: tuple[str, ...] | None
    usage: str = ""
    aliases: dict[str, str] = field(default_factory=dict)

    def expand(self, overrides: list[str]) -> list[str]:
        """Aliases to their keys; ``store=a.zarr,b.zarr`` quoted (hydra would read a sweep)."""
        out = []
        for item in overrides:
            key, sep, value = item.partition("=")
            if sep and key in self.aliases:
                key = self.aliases[key]
            if sep and key == "store" and "," in value and value[:1] not in ("'", '"', "["):
                value = f"'{value}'"
            out.append(f"{key}={value}" if sep else item)
        return out

    def load(self, overrides: list[str]):
        """The composed, validated config; a :class:`dojo.conf.ConfigError` names the key."""
        from dojo import conf

        return conf.load(self.expand(overrides), reads=self.reads, command=self.name)

    def help(self) -> str:
        from dojo import conf

        try:
            defaults = conf.load([])
        except conf.ConfigError:
            defaults = None
        short = "".join(f"\n  {k}=  short for {v}=" for k, v in self.aliases.items())
        return (
            f"usage: dojo {self.name} [key=value ...]\n{self.usage.strip(chr(10))}\n\n"
            f"keys (type = default):\n{conf.describe(self.reads, defaults)}"
            + (f"\n\nshort forms:{short}" if short else "")
        )


def given(overrides: list[str], key: str) -> bool:
    """Whether ``key=`` was given on the command line (not a default)."""
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in overrides)


USER_ERRORS = (
    "dojo.conf.schema:ConfigError",
    "episodes.store:StoreError",
    "policy.data:DataError",
    "policy.train:TrainError",
    "policy.models.encoders:InstructionError",
    "policy.base:PolicyError",
    "critic.base:CriticError",
    "robot.cameras.base:CameraError",
    "robot.arm_interface:ArmError",
    "robot.schema:SchemaError",
    "robot.registry:UnknownNameError",
    "teleop.scripted_config:OperatorError",
    "replay.config:ReplayError",
    "calibration.errors:CalibrationError",
    "policy.learner.config:LearnerError",
)
"""Errors that mean bad input (a missing store, a checkpoint of another robot, ...): printed
as one line, exit status 2. Looked up only in modules already imported: an error class whose
module was never imported cannot have been raised, and importing it (torch) just to test would
cost seconds."""


def is_user_error(err: BaseException) -> bool:
    if isinstance(
        err, FileNotFoundError | NotADirectoryError | IsADirectoryError | PermissionError
    ):
        return True
    for ref in USER_ERRORS:
        module, name = ref.split(":")
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(err, cls):
            return True
    return False


def one_line(err: BaseException) -> str:
    """The error's message on one line (the first; a KeyError's without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
