"""A replay over a store: every episode through the twin, a report each, one summary.

Files under ``out``: ``replay.json`` (every episode's report and the summary),
``<episode>.png`` (recorded against twin joints, events marked) and, for an episode with
images, ``<episode>.mp4`` (the recorded camera beside the twin's render of the same moment).
The store is only read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from episodes.store import Episode, EpisodeStore
from replay.actions import ActionReplayer, Trace
from replay.config import ReplayConfig
from replay.episodes import check_episode
from replay.report import Analysis, summary_table, worst, write_plot

VIDEO_FPS = 15.0


@dataclass
class ReplaySummary:
    """Every episode's report, the worst verdict, and the whole run's throughput."""

    reports: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = "ok"
    sim_s: float = 0.0
    wall_s: float = 0.0
    path: Path | None = None

    def to_json(self) -> dict[str, Any]:
        counts = {v: sum(r["verdict"] == v for r in self.reports) for v in ("ok", "warn", "fail")}
        return {
            "verdict": self.verdict,
            "episodes": len(self.reports),
            "verdicts": counts,
            "sim_s": round(self.sim_s, 3),
            "wall_s": round(self.wall_s, 3),
            "speed_x_realtime": round(self.sim_s / max(self.wall_s, 1e-9), 2),
        }

    def table(self) -> str:
        return summary_table(self.reports)


def replay_episodes(
    store: EpisodeStore,
    ids: Sequence[str],
    replayer: ActionReplayer,
    config: ReplayConfig,
    out: str | Path,
    *,
    extra: dict[str, Any] | None = None,
) -> ReplaySummary:
    """Replay ``ids`` of ``store`` with ``replayer``; write the reports under ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = replayer.spec
    analysis = Analysis(spec, replayer.fk, config)
    summary = ReplaySummary()
    bar = None
    if config.progress:
        from policy.schedule import progress_bar

        bar = progress_bar(len(ids), "replay", "episode")
    t0 = time.perf_counter()
    for episode_id in ids:
        episode = store.read(episode_id)
        check_episode(episode, spec, f"{store.url}: episode '{episode_id}'")
        report = replay_one(episode, replayer, analysis, config, out, store=store.url)
        summary.reports.append(report)
        summary.sim_s += report["duration_s"]
        if bar is not None:
            bar.update(1)
            bar.set_postfix(verdict=report["verdict"], refresh=False)
    if bar is not None:
        bar.close()
    summary.wall_s = time.perf_counter() - t0
    summary.verdict = worst([r["verdict"] for r in summary.reports])
    body = {
        "summary": summary.to_json(),
        "robot": spec.name,
        "dynamics": config.dynamics or None,
        **(extra or {}),
        "episodes": summary.reports,
    }
    summary.path = _write_json(out / "replay.json", body)
    return summary


def replay_one(
    episode: Episode,
    replayer: ActionReplayer,
    analysis: Analysis,
    config: ReplayConfig,
    out: Path,
    *,
    store: str = "",
) -> dict[str, Any]:
    """One episode: replay, report, PNG, MP4 (when it has images and ``config.video``)."""
    rel = np.asarray(episode.t, dtype=np.float64) - float(episode.t[0])
    cams = [c for c in replayer.spec.cameras if c.name in episode.images]
    video = bool(config.video and cams)
    frame_idx = np.array([], dtype=int)
    if video:
        fps = (len(rel) - 1) / max(rel[-1], 1e-9)
        stride = max(1, round(fps / VIDEO_FPS))
        frame_idx = np.arange(0, len(rel), stride)
    trace = replayer.run(episode, snapshot_times=rel[frame_idx] if video else None)
    report = analysis.report(episode, trace, store=store)
    files: dict[str, str] = {}
    if config.plots:
        files["plot"] = str(
            write_plot(out / f"{episode.id}.png", replayer.spec, episode, trace, report)
        )
    if video:
        rate = (
            (len(rel) - 1) / max(rel[-1], 1e-9) / max(int(frame_idx[1] - frame_idx[0]), 1)
            if len(frame_idx) > 1
            else VIDEO_FPS
        )
        path = write_side_by_side(
            out / f"{episode.id}.mp4", replayer, episode, trace, frame_idx, cams[0].name, rate
        )
        if path is not None:
            files["video"] = str(path)
    report["files"] = files
    return report


def write_side_by_side(
    path: Path,
    replayer: ActionReplayer,
    episode: Episode,
    trace: Trace,
    frame_idx: np.ndarray,
    camera: str,
    fps: float = VIDEO_FPS,
) -> Path | None:
    """The recorded frames of ``camera`` beside the twin's render of the same moments."""
    from episodes.view import write_video
    from robot.sim.twin import SnapshotRenderer

    snaps = trace.snapshots[: len(frame_idx)]
    if not snaps:
        return None
    recorded = np.asarray(episode.images[camera][frame_idx[: len(snaps)]], dtype=np.uint8)
    h, w = recorded.shape[1:3]
    renderer = SnapshotRenderer(replayer.twin)
    try:
        twin_frames = np.stack([renderer.render(camera, s, size=(h, w)) for s in snaps])
    except Exception:  # a recorded size the twin's camera cannot give (another aspect)
        return None
    finally:
        renderer.close()
    frames = np.concatenate([recorded, twin_frames], axis=2)
    return write_video(frames, len(frames), fps, path)


def _write_json(path: Path, body: dict[str, Any]) -> Path:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(body, indent=1))
    tmp.replace(path)
    return path
