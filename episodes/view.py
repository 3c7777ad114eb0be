"""What a person looks at to judge an episode: summaries, control-source segments, an MP4 per
camera, a plot, and a rerun recording.

Why these outputs: the store is built for the learner (zarr chunks, JPEG frames one per chunk),
not for eyes. An H.264 (yuv420p) MP4 plays in every browser, chat client and file manager, which
LeRobot's AV1 exports do not; a PNG plot shows in one picture what the arm did, what it was told
to do and who was in control; a rerun recording (``.rrd``) lets one scrub all of it in sync.

Time axes are seconds since the episode's first step, from the recorded ``t`` (ROS time). A
step holds from its own ``t`` to the next step's; the last one holds for one store period
(``1 / fps``), so an episode of ``n`` evenly spaced steps lasts ``n / fps`` seconds. Videos play
one frame per step at the store's fps, whatever jitter ``t`` has.

Nothing here writes to the store: episodes are read through :class:`EpisodeStore` (checksums
verified unless asked not to) and everything goes under the output directory given.
rerun-sdk is imported lazily and optional: without it the ``.rrd`` is skipped with a note.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from episodes.codec import encode_jpeg
from episodes.store import Episode, EpisodeStore
from robot.schema import ControlSource

logger = logging.getLogger(__name__)

SOURCE_COLOURS: dict[ControlSource, str] = {
    ControlSource.POLICY: "#3a86ff",
    ControlSource.HUMAN: "#ff006e",
    ControlSource.SCRIPT: "#ffbe0b",
    ControlSource.HOLD: "#8d99ae",
}
"""Colour of each control source in plots and recordings (solid, so it can be found again)."""

UNKNOWN_SOURCE_COLOUR = "#000000"
_VIDEO_BATCH = 32  # frames decoded at a time while encoding a video
_RRD_JPEG_QUALITY = 85


def source_name(value: int) -> str:
    """``"policy"``, ``"human"``, ``"script"``, ``"hold"``, or ``"unknown(<value>)"``."""
    try:
        return ControlSource(int(value)).name.lower()
    except ValueError:
        return f"unknown({int(value)})"


def source_colour(value: int) -> str:
    try:
        return SOURCE_COLOURS[ControlSource(int(value))]
    except ValueError:
        return UNKNOWN_SOURCE_COLOUR


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


# --------------------------------------------------------------------------------------------
# Time and control-source segments


def step_ends(t: np.ndarray, fps: float) -> np.ndarray:
    """End of each step, in seconds since the first: the next step's ``t``; the last step ends
    one store period (``1 / fps``) after it starts."""
    t = np.asarray(t, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0)
    rel = t - t[0]
    period = 1.0 / fps if fps > 0 else 0.0
    return np.append(rel[1:], rel[-1] + period)


def episode_duration(t: np.ndarray, fps: float) -> float:
    """Seconds from the first step to the end of the last (see the module docstring)."""
    ends = step_ends(t, fps)
    return float(ends[-1]) if ends.size else 0.0


@dataclass(frozen=True)
class Segment:
    """A run of consecutive steps with one control source: steps ``[start_step, end_step)``,
    seconds ``[start_s, end_s)`` since the episode's first step."""

    source: int
    start_step: int
    end_step: int
    start_s: float
    end_s: float

    @property
    def name(self) -> str:
        return source_name(self.source)

    @property
    def n_steps(self) -> int:
        return self.end_step - self.start_step

    def __str__(self) -> str:
        return f"{self.start_s:.1f}-{self.end_s:.1f} s {self.name}"


def control_segments(t: np.ndarray, control_source: np.ndarray, fps: float) -> list[Segment]:
    """Split an episode into runs of one control source, in time order."""
    cs = np.asarray(control_source).reshape(-1)
    if cs.size == 0:
        return []
    if np.asarray(t).shape[0] != cs.size:
        raise ValueError(f"t has {np.asarray(t).shape[0]} steps, control_source {cs.size}")
    rel = np.asarray(t, dtype=np.float64) - float(t[0])
    ends = step_ends(t, fps)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(cs.astype(np.int16)) != 0) + 1])
    stops = np.append(starts[1:], cs.size)
    return [
        Segment(int(cs[a]), int(a), int(b), float(rel[a]), float(ends[b - 1]))
        for a, b in zip(starts, stops, strict=True)
    ]


def format_segments(segments: Sequence[Segment]) -> str:
    """``"0.0-3.2 s policy, 3.2-5.0 s human"``."""
    return ", ".join(str(s) for s in segments)


def source_shares(control_source: np.ndarray) -> dict[str, float]:
    """Share of steps per control source: every ``ControlSource`` (0.0 when absent), then any
    unknown values found."""
    cs = np.asarray(control_source).reshape(-1)
    n = max(cs.size, 1)
    values, counts = np.unique(cs, return_counts=True)
    found = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    shares = {s.name.lower(): found.pop(int(s), 0) / n for s in ControlSource}
    shares.update({source_name(v): c / n for v, c in sorted(found.items())})
    return shares


# --------------------------------------------------------------------------------------------
# Summaries (no image is read)


@dataclass(frozen=True)
class EpisodeSummary:
    """One committed episode in a line: from its attributes and its low-dimensional arrays."""

    id: str
    started_at: float
    n_steps: int
    duration_s: float
    instruction: str
    task: str
    outcome: str
    success: bool
    shares: dict[str, float]
    nbytes: int | None


def summarize(store: EpisodeStore, episode_id: str) -> EpisodeSummary:
    """Summary of a committed episode. Reads ``t`` and ``control_source`` without verifying
    checksums (``show`` and ``view`` verify); raises ``StoreError`` if the episode is gone."""
    attrs = store.info(episode_id)
    ep = store.read(episode_id, verify=False)
    return EpisodeSummary(
        id=episode_id,
        started_at=float(attrs.get("started_at", ep.started_at)),
        n_steps=ep.n_steps,
        duration_s=episode_duration(ep.t, store.fps),
        instruction=ep.instruction,
        task=ep.task,
        outcome=ep.outcome,
        success=ep.success,
        shares=source_shares(ep.control_source),
        nbytes=episode_nbytes(store, episode_id),
    )


def episode_nbytes(store: EpisodeStore, episode_id: str) -> int | None:
    """Bytes the episode occupies in the store (every object under its group), or ``None``
    where the filesystem cannot say."""
    url = store.url
    if "://" not in url or url.startswith("file://"):
        root = Path(url.removeprefix("file://")).expanduser() / "episodes" / episode_id
        total = 0
        for dirpath, _, files in os.walk(root):
            for f in files:
                with contextlib.suppress(OSError):  # removed meanwhile
                    total += os.stat(os.path.join(dirpath, f)).st_size
        return total
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
        return int(fs.du(f"{path.rstrip('/')}/episodes/{episode_id}", total=True))
    except Exception as exc:
        logger.debug("%s: size of %s unknown: %s", url, episode_id, exc)
        return None


@dataclass(frozen=True)
class ArrayInfo:
    """How one array of an episode is stored. ``checksum``: the one recorded at commit (or, for
    rewards, when they were written); ``""`` if none."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    codecs: str
    nbytes_stored: int | None
    checksum: str


def _codec_text(codec: Any) -> str:
    d = codec.to_dict()
    name = str(d.get("name", type(codec).__name__))
    cfg = d.get("configuration") or {}
    if name == "bytes":
        return ""
    if name == "zstd":
        return f"zstd({cfg.get('level')})"
    if name == "vla_dojo.jpeg":
        return f"jpeg(q{cfg.get('quality')})"
    args = ",".join(f"{k}={v}" for k, v in cfg.items())
    return f"{name}({args})" if args else name


def describe_arrays(store: EpisodeStore, episode_id: str) -> list[ArrayInfo]:
    """Every array of a committed episode (recorded ones, then rewards), read-only."""
    attrs = store.info(episode_id)  # raises unless committed
    sums: Mapping[str, str] = attrs.get("checksum") or {}
    group = zarr.open_group(store.url, mode="r", path=f"episodes/{episode_id}", zarr_format=3)
    infos: list[ArrayInfo] = []
    for name, node in group.members(max_depth=None):
        if not isinstance(node, zarr.Array):
            continue
        codecs = [c for c in (_codec_text(x) for x in node.metadata.codecs) if c]
        try:
            stored: int | None = int(node.nbytes_stored())
        except Exception:
            stored = None
        checksum = sums.get(name) or str(node.attrs.get("checksum", ""))
        infos.append(
            ArrayInfo(
                name=name,
                shape=tuple(int(s) for s in node.shape),
                dtype=str(node.dtype),
                chunks=tuple(int(c) for c in node.chunks),
                codecs="+".join(codecs) or "none",
                nbytes_stored=stored,
                checksum=checksum,
            )
        )
    infos.sort(key=lambda a: (a.name.startswith("rewards/"), a.name))
    return infos


# --------------------------------------------------------------------------------------------
# Videos, plot, recording


@dataclass
class ViewResult:
    """What :func:`render_episode` wrote. ``notes``: things skipped, and why."""

    episode_id: str
    videos: dict[str, Path] = field(default_factory=dict)
    plot: Path | None = None
    rrd: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        out = list(self.videos.values())
        out += [p for p in (self.plot, self.rrd) if p is not None]
        return out


def _even(frames: np.ndarray) -> np.ndarray:
    """Pad ``(N, H, W, 3)`` frames by edge replication to even H and W (yuv420p needs them)."""
    h, w = frames.shape[1:3]
    ph, pw = h % 2, w % 2
    if not (ph or pw):
        return frames
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


def write_video(frames: Any, n_steps: int, fps: float, path: Path) -> Path:
    """Encode ``frames`` (anything indexable as ``frames[a:b] -> (k, H, W, 3) uint8``, e.g. the
    store's lazy image array) as H.264 yuv420p MP4 at ``fps``, one frame per step. Odd sizes are
    padded by one pixel to even."""
    import imageio_ffmpeg

    if n_steps < 1:
        raise ValueError(f"{path}: no frames to encode")
    h, w = int(frames.shape[1]), int(frames.shape[2])
    size = (w + w % 2, h + h % 2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(path),
        size,
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        fps=float(fps),
        codec="libx264",
        quality=8,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-movflags", "+faststart"],
    )
    writer.send(None)  # start ffmpeg
    try:
        for a in range(0, n_steps, _VIDEO_BATCH):
            batch = _even(np.asarray(frames[a : min(a + _VIDEO_BATCH, n_steps)], dtype=np.uint8))
            for frame in batch:
                writer.send(np.ascontiguousarray(frame))
    finally:
        writer.close()
    return path


def write_plot(
    ep: Episode,
    path: Path,
    *,
    fps: float,
    joint_names: Sequence[str],
    unit: str = "rad",
) -> Path:
    """PNG: joint positions (solid) and the actions sent (dashed, same colour per joint) over
    time, above a band coloured by control source; titled with the instruction and outcome."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rel = ep.t - ep.t[0] if ep.n_steps else np.zeros(0)
    duration = episode_duration(ep.t, fps)
    segments = control_segments(ep.t, ep.control_source, fps)
    names = list(joint_names) or [f"joint {j}" for j in range(ep.joint_pos.shape[1])]

    fig = Figure(figsize=(10, 5.6), dpi=100, layout="constrained")
    top, band = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [6, 1]}, squeeze=True)
    marker = "o" if ep.n_steps < 2 else None
    for j, name in enumerate(names):
        colour = f"C{j % 10}"
        top.plot(rel, ep.joint_pos[:, j], color=colour, lw=1.5, marker=marker, label=name)
        top.plot(rel, ep.action[:, j], color=colour, lw=1.1, ls="--", marker=marker)
    for seg in segments:
        if seg.source != ControlSource.POLICY:
            top.axvspan(seg.start_s, seg.end_s, color=source_colour(seg.source), alpha=0.08, lw=0)
    top.set_ylabel(f"joint position [{unit}]")
    top.grid(True, alpha=0.3)
    handles, labels = top.get_legend_handles_labels()
    handles += [
        Line2D([], [], color="0.3", lw=1.5),
        Line2D([], [], color="0.3", lw=1.1, ls="--"),
    ]
    labels += ["measured", "action sent"]
    top.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)

    for seg in segments:
        band.axvspan(
            seg.start_s, seg.end_s, color=source_colour(seg.source), lw=0, antialiased=False
        )
    present = sorted({s.source for s in segments})
    band.legend(
        [Patch(color=source_colour(v)) for v in present],
        [source_name(v) for v in present],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        title="control",
        title_fontsize=8,
    )
    band.set_yticks([])
    band.set_xlim(0.0, max(duration, 1e-6))
    band.set_xlabel("time since episode start [s]")

    verdict = "success" if ep.success else "failure"
    title = ep.instruction or "(no instruction)"
    fig.suptitle(
        f"{title}\n{ep.id}  |  outcome: {ep.outcome} ({verdict})  |  {ep.n_steps} steps, "
        f"{duration:.1f} s",
        fontsize=10,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _entity_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-]", "_", name) or "_"


def write_rerun(store: EpisodeStore, ep: Episode, path: Path) -> Path | None:
    """A rerun recording of the episode: camera frames (JPEG), joint positions and actions as
    time series, the control source (series and a log line at each change). Timelines:
    ``time`` (seconds since the first step) and ``step``. ``None`` if rerun-sdk is missing."""
    try:
        import rerun as rr
    except ImportError as exc:
        logger.info("rerun-sdk is not installed (%s); skipping the .rrd recording", exc)
        return None

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = ep.n_steps
    rel = ep.t - ep.t[0]
    rec = rr.RecordingStream("vla_dojo_episode", recording_id=ep.id)
    rec.save(path)
    try:
        verdict = "success" if ep.success else "failure"
        rec.log(
            "episode",
            rr.TextDocument(
                f"# {ep.instruction}\n\n- episode: `{ep.id}`\n- task: `{ep.task}`\n"
                f"- robot: `{ep.robot}`\n- outcome: **{ep.outcome}** ({verdict})\n"
                f"- {n} steps at {store.fps:g} fps, started at t={ep.started_at}",
                media_type=rr.MediaType.MARKDOWN,
            ),
            static=True,
        )

        def times() -> list[Any]:
            return [
                rr.TimeColumn("time", duration=rel),
                rr.TimeColumn("step", sequence=np.arange(n, dtype=np.int64)),
            ]

        names = list(store.joint_names) or [f"joint{j}" for j in range(ep.joint_pos.shape[1])]
        for j, name in enumerate(names):
            rgb = _tab10(j)
            for kind, values, width in (
                ("position", ep.joint_pos[:, j], 2.0),
                ("action", ep.action[:, j], 1.0),
            ):
                entity = f"joints/{_entity_part(name)}/{kind}"
                rec.log(
                    entity,
                    rr.SeriesLines(colors=[rgb], widths=[width], names=[f"{name} {kind}"]),
                    static=True,
                )
                rec.send_columns(
                    entity,
                    indexes=times(),
                    columns=rr.Scalars.columns(scalars=np.asarray(values, dtype=np.float64)),
                )
        rec.log("control_source", rr.SeriesLines(names=["control source"]), static=True)
        rec.send_columns(
            "control_source",
            indexes=times(),
            columns=rr.Scalars.columns(scalars=ep.control_source.astype(np.float64)),
        )
        for seg in control_segments(ep.t, ep.control_source, store.fps):
            rec.set_time("time", duration=float(rel[seg.start_step]))
            rec.set_time("step", sequence=seg.start_step)
            rec.log(
                "control_log",
                rr.TextLog(
                    f"control: {seg.name} for {seg.n_steps} steps",
                    level="INFO",
                    color=hex_to_rgb(source_colour(seg.source)),
                ),
            )
        for cam, arr in ep.images.items():
            for a in range(0, n, _VIDEO_BATCH):
                batch = np.asarray(arr[a : min(a + _VIDEO_BATCH, n)], dtype=np.uint8)
                for k, frame in enumerate(batch):
                    i = a + k
                    rec.set_time("time", duration=float(rel[i]))
                    rec.set_time("step", sequence=i)
                    rec.log(
                        f"camera/{_entity_part(cam)}",
                        rr.EncodedImage(
                            contents=encode_jpeg(frame, _RRD_JPEG_QUALITY),
                            media_type="image/jpeg",
                        ),
                    )
        rec.flush()
    finally:
        rec.disconnect()
    return path


def _tab10(j: int) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(f"C{j % 10}")
    return round(r * 255), round(g * 255), round(b * 255)


def render_episode(
    store: EpisodeStore,
    episode_id: str,
    out_dir: Path,
    *,
    verify: bool = True,
    rerun: bool = True,
) -> ViewResult:
    """Write ``<id>.<camera>.mp4`` per camera, ``<id>.png`` and (with rerun-sdk) ``<id>.rrd``
    under ``out_dir``. Reads the episode with checksums verified unless ``verify=False``
    (``ChecksumError`` names the array)."""
    ep = store.read(episode_id, verify=verify)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = ViewResult(episode_id)
    fps = store.fps
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"{store.url}: fps={fps} cannot time a video")
    for cam, frames in ep.images.items():
        result.videos[cam] = write_video(frames, ep.n_steps, fps, out / f"{ep.id}.{cam}.mp4")
    if not ep.images:
        result.notes.append("the store records no cameras: no video")
    feat = store.features.get("obs/joint_pos")
    result.plot = write_plot(
        ep,
        out / f"{ep.id}.png",
        fps=fps,
        joint_names=store.joint_names,
        unit=(feat.unit if feat is not None and feat.unit else "rad"),
    )
    if rerun:
        result.rrd = write_rerun(store, ep, out / f"{ep.id}.rrd")
        if result.rrd is None:
            result.notes.append("rerun-sdk is not installed: no .rrd (pip install rerun-sdk)")
    return result
