"""``dojo episodes``: look at, repair and convert an episode store from the command line.

    dojo episodes ls STORE                         one line per committed episode, totals
    dojo episodes show STORE EPISODE               attributes, arrays, checksums, control segments
    dojo episodes repair STORE [--salvage] [--force]
                                                   remove (or salvage) uncommitted episodes
    dojo episodes export STORE OUT_DIR --repo-id NAME [--episodes EPISODE ...] [--no-video]
                                                   write a LeRobotDataset
    dojo episodes import LEROBOT_ROOT STORE --repo-id NAME
                                                   record a LeRobotDataset's episodes into STORE
    dojo episodes view STORE EPISODE [--out DIR] [--no-rerun] [--no-verify]
                                                   MP4 per camera, PNG plot, rerun recording

EPISODE is an episode id, a unique prefix of one, or its sequence number (``3`` for
``ep_000003_...``). Only ``repair`` and ``import`` write to STORE; the others open it read-only.

Exit status: 0 done; 2 bad input (not a store, another format version, unknown episode,
checksum mismatch, a LeRobot dataset that does not fit), named on stderr; 1 anything else.
The work is done by ``episodes.store``, ``episodes.view`` and ``episodes.lerobot``; this module
parses arguments and prints.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import difflib
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dojo.commands import Command, given
from episodes.store import (
    ChecksumError,
    EpisodeNotFoundError,
    EpisodeStore,
    StoreError,
)
from robot.registry import did_you_mean
from robot.schema import ControlSource, SchemaError

PROG = "dojo episodes"
SIM_TIME_BEFORE = 1e9
"""A ``started_at`` below this (2001-09-09) is simulated ROS time, printed as seconds."""

_SOURCES = [s.name.lower() for s in ControlSource]
_SEQ_RE = re.compile(r"^ep_(\d+)")

log = logging.getLogger("dojo.episodes")


class UsageError(StoreError):
    """Bad input caught here (an ambiguous episode prefix, ...): exit status 2."""


# --------------------------------------------------------------------------------------------
# Formatting


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def fmt_started(started_at: float) -> str:
    """Local time for wall-clock ROS time; ``"sim t=12.0 s"`` for simulated time."""
    if started_at < SIM_TIME_BEFORE:
        return f"sim t={started_at:.1f} s"
    return _dt.datetime.fromtimestamp(started_at).strftime("%Y-%m-%d %H:%M:%S")


def fmt_share(share: float) -> str:
    return "-" if share <= 0 else f"{100 * share:.0f}%" if share >= 0.005 else "<1%"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Rows aligned under ``headers``; columns in ``right`` right-aligned. The last column is
    left ragged (free text)."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for r in [headers, *rows]:
        cells = [
            str(c).rjust(widths[i]) if i in right else str(c).ljust(widths[i])
            for i, c in enumerate(r)
        ]
        cells[-1] = str(r[-1])
        lines.append("  ".join(cells).rstrip())
    return lines


def _describe_store(store: EpisodeStore) -> str:
    cams = ", ".join(
        f"{c.name} {c.width}x{c.height}"
        + (f" {store.image_codecs[c.name].kind}" if c.name in store.image_codecs else "")
        for c in store.cameras
    )
    return (
        f"{store.url}: robot '{store.robot_name}', {len(store.joint_names)} joints "
        f"({', '.join(store.joint_names)}), cameras: {cams or 'none'}, {store.fps:g} fps, "
        f"format {store.format_version}"
    )


# --------------------------------------------------------------------------------------------
# Episode ids


def resolve_episode(store: EpisodeStore, text: str) -> str:
    """The committed episode ``text`` names: an id, a unique prefix, or a sequence number.
    Raises ``EpisodeNotFoundError`` suggesting the nearest ids, ``UsageError`` if ambiguous."""
    ids = store.episode_ids()
    if text in ids:
        return text
    if text in store.uncommitted_ids():
        raise EpisodeNotFoundError(
            f"{store.url}: episode '{text}' is not committed (still being recorded, or left by "
            f"a crash: run `{PROG} repair {store.url}`)"
        )
    prefix = f"ep_{int(text):06d}_" if text.isdigit() else text
    matches = [e for e in ids if e.startswith(prefix)] if prefix else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise UsageError(
            f"{store.url}: '{text}' matches {len(matches)} episodes ({shown}); give more of the id"
        )
    if not ids:
        raise EpisodeNotFoundError(f"{store.url}: no episode '{text}'; the store has none")
    near = nearest_ids(text, ids)
    raise EpisodeNotFoundError(
        f"{store.url}: no episode '{text}'; nearest: {', '.join(near)} "
        f"({len(ids)} committed episodes; `{PROG} ls {store.url}` lists them)"
    )


def nearest_ids(text: str, ids: Sequence[str], n: int = 3) -> list[str]:
    """Ids closest to ``text``: by spelling, then by sequence number."""
    out = difflib.get_close_matches(text, ids, n=n, cutoff=0.5)
    m = _SEQ_RE.match(text)
    seq = int(text) if text.isdigit() else int(m.group(1)) if m else None
    if seq is not None:

        def seq_of(e: str) -> int:
            mm = _SEQ_RE.match(e)
            return int(mm.group(1)) if mm else -1

        out += sorted(ids, key=lambda e: (abs(seq_of(e) - seq), e))
    out += difflib.get_close_matches(text, ids, n=n, cutoff=0.0)
    return list(dict.fromkeys(out))[:n]


# --------------------------------------------------------------------------------------------
# Commands


def cmd_ls(args: argparse.Namespace) -> int:
    from episodes import view

    store = EpisodeStore.open(args.store, "r")
    print(_describe_store(store))
    ids = store.episode_ids()
    rows: list[list[str]] = []
    summaries = []
    failed: list[tuple[str, Exception]] = []
    for eid in ids:
        try:
            s = view.summarize(store, eid)
        except Exception as exc:  # one unreadable episode must not hide the others
            failed.append((eid, exc))
            rows.append([eid, "?", "?", "?", "UNREADABLE", *["?"] * len(_SOURCES), "?", str(exc)])
            continue
        summaries.append(s)
        others = sorted(k for k in s.shares if k not in _SOURCES and s.shares[k] > 0)
        instruction = s.instruction + (f"  [other sources: {', '.join(others)}]" if others else "")
        rows.append(
            [
                s.id,
                fmt_started(s.started_at),
                str(s.n_steps),
                f"{s.duration_s:.1f} s",
                f"{'ok' if s.success else 'FAIL'} {s.outcome}",
                *(fmt_share(s.shares[k]) for k in _SOURCES),
                fmt_bytes(s.nbytes),
                instruction,
            ]
        )
    if rows:
        headers = ["ID", "STARTED", "STEPS", "DURATION", "OUTCOME"]
        headers += [k.upper() for k in _SOURCES] + ["SIZE", "INSTRUCTION"]
        right = {2, 3, *range(5, 5 + len(_SOURCES) + 1)}
        print()
        print("\n".join(table(headers, rows, right)))
        print()
    steps = sum(s.n_steps for s in summaries)
    total_s = sum(s.duration_s for s in summaries)
    ok = sum(s.success for s in summaries)
    sizes = [s.nbytes for s in summaries if s.nbytes is not None]
    size = fmt_bytes(sum(sizes)) if len(sizes) == len(summaries) else "?"
    overall = {
        k: sum(s.shares.get(k, 0.0) * s.n_steps for s in summaries) / max(steps, 1)
        for k in _SOURCES
    }
    mix = ", ".join(f"{k} {fmt_share(v)}" for k, v in overall.items() if v > 0)
    print(
        f"{len(ids)} committed episode{'s' if len(ids) != 1 else ''}, {steps} steps, "
        f"{total_s:.1f} s, {ok}/{len(summaries)} succeeded, {size}"
        + (f"; control: {mix}" if mix else "")
    )
    pending = store.uncommitted_ids()
    if pending:
        shown = ", ".join(pending[:3]) + (", ..." if len(pending) > 3 else "")
        print(
            f"{len(pending)} uncommitted episode{'s' if len(pending) != 1 else ''} ({shown}): "
            f"being recorded, or left by a crash; `{PROG} repair {store.url}` removes "
            f"{'them' if len(pending) != 1 else 'it'} (--salvage keeps the complete prefix)"
        )
    else:
        print("0 uncommitted episodes")
    if failed:
        for eid, exc in failed:
            _error(f"episode '{eid}' could not be read: {exc}")
        return 2
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from episodes import view

    store = EpisodeStore.open(args.store, "r")
    eid = resolve_episode(store, args.episode)
    attrs = store.info(eid)
    print(f"episode {eid} in {store.url}")
    order = [
        "instruction",
        "task",
        "robot",
        "outcome",
        "success",
        "n_steps",
        "started_at",
        "committed_at",
        "committed",
        "writer",
    ]
    keys = [k for k in order if k in attrs]
    keys += sorted(k for k in attrs if k not in order and k != "checksum")
    width = max(len(k) for k in [*keys, "duration"])
    for k in keys:
        print(f"  {k.ljust(width)}  {_fmt_attr(k, attrs[k])}")

    verify_error: Exception | None = None
    ep = None
    try:
        ep = store.read(eid, verify=True)
    except ChecksumError as exc:
        verify_error = exc
        try:
            ep = store.read(eid, verify=False)
        except Exception as exc2:
            log.debug("reading %s without verification failed too: %s", eid, exc2)
            ep = None
    if ep is not None and ep.n_steps:
        dur = view.episode_duration(ep.t, store.fps)
        print(
            f"  {'duration'.ljust(width)}  {dur:.2f} s (t {ep.t[0]:.3f} .. {ep.t[-1]:.3f}, "
            f"{store.fps:g} fps)"
        )

    print("\narrays")
    infos = view.describe_arrays(store, eid)
    rows = [
        [
            a.name,
            _fmt_shape(a.shape),
            a.dtype,
            _fmt_shape(a.chunks),
            a.codecs,
            fmt_bytes(a.nbytes_stored),
            a.checksum,
        ]
        for a in infos
    ]
    headers = ["NAME", "SHAPE", "DTYPE", "CHUNKS", "CODECS", "STORED", "CHECKSUM"]
    print("\n".join("  " + line for line in table(headers, rows, {5})))
    if verify_error is None:
        print(f"\nchecksums: OK ({len(infos)} arrays verified against the commit record)")
    else:
        print(f"\nchecksums: FAILED: {verify_error}")

    if ep is not None:
        if ep.rewards:
            print("\nrewards")
            for critic, values in sorted(ep.rewards.items()):
                extra = ep.reward_attrs.get(critic) or {}
                print(
                    f"  {critic}: mean {float(values.mean()):.3f}, min {float(values.min()):.3f}"
                    f", max {float(values.max()):.3f}" + (f"  {extra}" if extra else "")
                )
        segments = view.control_segments(ep.t, ep.control_source, store.fps)
        print("\ncontrol source")
        print("  " + view.format_segments(segments))
        seg_rows = [
            [
                f"{s.start_s:.2f}-{s.end_s:.2f} s",
                s.name,
                f"steps {s.start_step}-{s.end_step - 1}",
                f"{s.n_steps} step{'s' if s.n_steps != 1 else ''}",
            ]
            for s in segments
        ]
        print(
            "\n".join("  " + line for line in table(["TIME", "SOURCE", "STEPS", ""], seg_rows, {0}))
        )
        shares = view.source_shares(ep.control_source)
        print("  " + ", ".join(f"{k} {fmt_share(v)}" for k, v in shares.items() if v > 0))
    else:
        print("\ncontrol source: unreadable")
    if verify_error is not None:
        _error(str(verify_error))
        return 2
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    store = EpisodeStore.open(args.store, "a")
    report = store.repair(salvage=args.salvage, force=args.force)
    if not report.actions:
        print(f"{store.url}: nothing to repair (no uncommitted episodes)")
        return 0
    print(report)
    if report.skipped:
        print(
            f"{len(report.skipped)} skipped; once no recorder is writing to this store, "
            f"`{PROG} repair {store.url} --force` repairs them too"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from episodes import lerobot

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # export never needs the Hub
    store = EpisodeStore.open(args.store, "r")
    ids = [resolve_episode(store, e) for e in args.episodes] if args.episodes else None
    root = lerobot.export_lerobot(
        store, Path(args.out_dir), args.repo_id, episode_ids=ids, video=not args.no_video
    )
    exported = ids if ids is not None else store.episode_ids()
    print(
        f"exported {len(exported)} episode{'s' if len(exported) != 1 else ''} of {store.url} "
        f"as LeRobotDataset '{args.repo_id}' to {root}"
    )
    for index, eid in enumerate(exported):
        print(f"  {index:4d}  {eid}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from episodes import lerobot

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fall back to downloading
    root = Path(args.lerobot_root)
    if not root.is_dir():
        raise UsageError(f"{root} is not a LeRobot dataset: no such directory")
    store = EpisodeStore.open(args.store, "a")
    ids = lerobot.import_lerobot(root, args.repo_id, store)
    print(
        f"imported {len(ids)} episode{'s' if len(ids) != 1 else ''} of LeRobotDataset "
        f"'{args.repo_id}' ({root}) into {store.url}"
    )
    for index, eid in enumerate(ids):
        print(f"  {index:4d}  {eid}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from episodes import view

    store = EpisodeStore.open(args.store, "r")
    eid = resolve_episode(store, args.episode)
    out = Path(args.out) if args.out else Path("runs") / "view" / eid
    result = view.render_episode(
        store, eid, out, verify=not args.no_verify, rerun=not args.no_rerun
    )
    info = store.info(eid)
    check = "not verified" if args.no_verify else "checksums verified"
    print(f"{eid}: {info.get('n_steps')} steps at {store.fps:g} fps, {check}")
    for cam, path in result.videos.items():
        c = next(c for c in store.cameras if c.name == cam)
        print(f"  video  {path}  ({cam}, {c.width}x{c.height}, H.264)")
    if result.plot is not None:
        print(f"  plot   {result.plot}")
    if result.rrd is not None:
        print(f"  rerun  {result.rrd}  (open with: rerun {result.rrd})")
    for note in result.notes:
        print(f"  note: {note}")
    return 0


# --------------------------------------------------------------------------------------------
# Plumbing


def _fmt_shape(shape: Sequence[int]) -> str:
    return str(tuple(int(s) for s in shape))


def _fmt_attr(key: str, value: Any) -> str:
    if key == "started_at" and isinstance(value, int | float):
        return f"{value} ({fmt_started(float(value))})"
    if key == "committed_at" and isinstance(value, str):
        try:
            local = _dt.datetime.fromisoformat(value).astimezone()
        except ValueError:
            return value
        return f"{value} ({local.strftime('%Y-%m-%d %H:%M:%S')} local)"
    if key == "writer" and isinstance(value, dict):
        parts = [f"host {value.get('host')}", f"pid {value.get('pid')}"]
        started = value.get("started")
        if isinstance(started, int | float):
            parts.append(f"process started {fmt_started(float(started))}")
        return ", ".join(parts)
    return str(value)


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


# Each subcommand's positional words and flags, as the config keys they stand for: the words a
# user expects (``dojo episodes ls STORE``) are kept, and everything goes through conf.load.
POSITIONAL = {
    "ls": ("store",),
    "show": ("store", "episodes_cmd.episode"),
    "repair": ("store",),
    "export": ("store", "episodes_cmd.dataset"),
    "import": ("episodes_cmd.dataset", "store"),
    "view": ("store", "episodes_cmd.episode"),
}
FLAGS = {  # flag -> (key, value; None: the next word)
    "-v": ("episodes_cmd.verbose", "true"),
    "--verbose": ("episodes_cmd.verbose", "true"),
    "--salvage": ("episodes_cmd.salvage", "true"),
    "--force": ("episodes_cmd.force", "true"),
    "--no-video": ("episodes_cmd.video", "false"),
    "--no-rerun": ("episodes_cmd.rerun", "false"),
    "--no-verify": ("episodes_cmd.verify", "false"),
    "--repo-id": ("episodes_cmd.repo_id", None),
    "--out": ("out", None),
    "--episodes": ("episodes_cmd.ids", None),  # the words up to the next flag or key=value
}
COMMANDS_FN: dict[str, Callable[[argparse.Namespace], int]] = {
    "ls": cmd_ls,
    "show": cmd_show,
    "repair": cmd_repair,
    "export": cmd_export,
    "import": cmd_import,
    "view": cmd_view,
}


def _quote(value: str) -> str:
    """A word as a hydra override value that stays a string (``3``, ``a,b``, ``x=y``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_overrides(argv: list[str]) -> tuple[str, list[str]]:
    """``["ls", "s.zarr", "-v"]`` -> ``("ls", ["store='s.zarr'", "episodes_cmd.verbose=true"])``."""
    words = list(argv)
    flags_first = []
    while words and words[0] in ("-v", "--verbose"):  # -v before the subcommand
        flags_first.append(words.pop(0))
    if not words:
        raise UsageError(f"give a command: {', '.join(POSITIONAL)} (`{PROG} --help`)")
    sub, rest = words[0], flags_first + words[1:]
    if sub not in POSITIONAL:
        raise UsageError(
            f"unknown command '{sub}'{did_you_mean(sub, POSITIONAL)} (commands: "
            f"{', '.join(POSITIONAL)})"
        )
    positional, overrides = list(POSITIONAL[sub]), []
    i = 0
    while i < len(rest):
        word = rest[i]
        if word in FLAGS:
            key, value = FLAGS[word]
            if value is None:
                values = []
                while (
                    i + 1 < len(rest)
                    and not rest[i + 1].startswith("-")
                    and (key == "episodes_cmd.ids" or not values)
                ):
                    values.append(rest[i + 1])
                    i += 1
                if not values:
                    raise UsageError(f"{sub}: {word} needs a value")
                value = (
                    "[" + ",".join(_quote(v) for v in values) + "]"
                    if key == "episodes_cmd.ids"
                    else _quote(values[0])
                )
            overrides.append(f"{key}={value}")
        elif word.startswith("-"):
            valid = [f for f in FLAGS]
            raise UsageError(f"{sub}: unknown option '{word}'{did_you_mean(word, valid)}")
        elif "=" in word and word.split("=", 1)[0].lstrip("+~").replace(".", "").isidentifier():
            overrides.append(word)
        elif positional:
            overrides.append(f"{positional.pop(0)}={_quote(word)}")
        else:
            raise UsageError(f"{sub}: unexpected argument '{word}'")
        i += 1
    if positional:
        names = [p.split(".")[-1].upper() for p in POSITIONAL[sub]]
        raise UsageError(f"{sub}: give {' '.join(names)} (missing {positional[0]}=)")
    return sub, overrides


def _namespace(sub: str, cfg: Any, overrides: list[str]) -> argparse.Namespace:
    """What the ``cmd_*`` functions read, from the composed config."""
    e = cfg.episodes_cmd
    if sub in ("export", "import") and not e.repo_id:
        raise UsageError(f"{sub}: give the LeRobot repo id (--repo-id NAME)")
    return argparse.Namespace(
        command=sub,
        store=str(cfg.store),
        episode=str(e.episode),
        out_dir=str(e.dataset),
        lerobot_root=str(e.dataset),
        repo_id=str(e.repo_id),
        episodes=[str(i) for i in e.ids] or None,
        no_video=not e.video,
        salvage=bool(e.salvage),
        force=bool(e.force),
        out=str(cfg.out) if given(overrides, "out") else "",
        no_rerun=not e.rerun,
        no_verify=not e.verify,
        verbose=bool(e.verbose),
    )


_BAD_INPUT = (StoreError, SchemaError, FileNotFoundError, NotADirectoryError, PermissionError)


def main(argv: list[str]) -> int:
    """Run ``dojo episodes`` with ``argv`` (the words after ``episodes``); returns the exit
    status: 0 done, 2 bad input (message on stderr), 1 unexpected failure."""
    from dojo import conf

    if not argv or argv[0] in ("-h", "--help"):
        print(COMMAND.help())
        return 0 if argv else 2
    verbose = any(w in ("-v", "--verbose") for w in argv)
    try:
        sub, overrides = to_overrides(argv)
        args = _namespace(sub, COMMAND.load(overrides), overrides)
    except (UsageError, conf.ConfigError) as exc:
        _error(str(exc))
        return 2
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(name)s: %(message)s"
    )
    try:
        return int(COMMANDS_FN[sub](args))
    except _BAD_INPUT as exc:
        if args.verbose:
            traceback.print_exc()
        _error(str(exc))
        return 2
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        _error(
            f"{args.command} failed unexpectedly: {type(exc).__name__}: {exc}"
            + ("" if args.verbose else " (-v for the traceback)")
        )
        return 1


COMMAND = Command(
    "episodes",
    main,
    reads=("store", "episodes_cmd", "out"),
    usage=__doc__.split("\n\n")[1]
    + "\n\nEach word and flag stands for a key below (STORE: store=, EPISODE: "
    "episodes_cmd.episode=, OUT_DIR and LEROBOT_ROOT: episodes_cmd.dataset=, --out: out=); "
    "key=value works too.",
)
COMMANDS = (COMMAND,)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
