"""Named choices (arm drivers, cameras, teleop devices, policy and critic backends) and the
"did you mean" hint every bad name gets.

One pattern everywhere: a package keeps a :class:`Registry` of what it can build, and the
application picks an entry by the name in its config. Entries are registered where they are
defined, and the heavy module behind an entry (a hardware SDK, torch, MuJoCo) is imported only
when that entry is built, so listing the names stays cheap (``dojo <cmd> --help``, config
validation on a laptop).

It lives in ``robot/`` because that is the package every other one may import.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


def did_you_mean(
    value: object, valid: Iterable[str], *, cutoff: float = 0.6, quote: str = "'"
) -> str:
    """``"; did you mean 'x'?"`` for the valid name nearest ``value``, or ``""`` if none is near.

    Meant to be appended to an error message that already names the bad value::

        raise ConfigError(f"unknown driver {name!r}{did_you_mean(name, DRIVERS)} (valid: ...)")
    """
    near = difflib.get_close_matches(str(value), list(valid), n=1, cutoff=cutoff)
    return f"; did you mean {quote}{near[0]}{quote}?" if near else ""


class UnknownNameError(KeyError):
    """A name that is not in a registry. ``str()`` is the whole message (KeyError quotes it)."""

    def __init__(self, message: str, name: str, valid: list[str]):
        super().__init__(message)
        self.name = name
        self.valid = valid

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Entry[T]:
    """One registered choice: what builds it and, optionally, the config dataclass it takes.

    ``target`` is either the callable itself or ``"module:attribute"``, imported on first use.
    """

    name: str
    target: Callable[..., T] | str
    config: type | str | None = None
    doc: str = ""

    def load(self) -> Callable[..., T]:
        return _resolve(self.target)

    def config_class(self) -> type | None:
        return None if self.config is None else _resolve(self.config)


def _resolve(ref: Any) -> Any:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry[T]:
    """Names to builders, for one kind of thing (``kind`` is used in messages: "arm driver")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        target: Callable[..., T] | str,
        *,
        config: type | str | None = None,
        doc: str = "",
    ) -> None:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, target, config, doc)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self.names())

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            valid = self.names()
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, valid)} (available: {valid})",
                str(name),
                valid,
            ) from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> T:
        return self.entry(name).load()(*args, **kwargs)
