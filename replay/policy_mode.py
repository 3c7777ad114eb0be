"""``mode=policy``: a checkpoint checked against recorded data before it drives the real arm.

Open loop: at every recorded step where a chunk was due (every ``replan`` s), the policy sees
the recorded observation (joint state and frames) and its chunk is compared with the actions
that were executed over the chunk's span, per joint, grouped by who was in control then
(``policy``, ``human``, ``script``): where a human took over is where the old policy went
wrong, so that is where the new one should differ. Closed loop: where the episode's scene
can be reconstructed (``replay.actions``), the policy runs in the twin from that scene
through the driver's control path (:class:`policy.rollout.TwinRollout`) and the task's
ground truth says whether it succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from episodes.store import EpisodeStore
from replay.actions import ActionReplayer
from replay.config import ReplayConfig
from replay.episodes import check_episode
from replay.run import ReplaySummary, _write_json
from robot.schema import ControlSource, Observation


def open_loop(policy, episode, spec, every: float = 0.5) -> dict[str, Any]:
    """Per-joint RMS of the policy's chunks against the executed actions, by control source."""
    rel = np.asarray(episode.t, dtype=np.float64) - float(episode.t[0])
    actions = np.asarray(episode.action, dtype=np.float64)
    size = getattr(policy, "input_size", None)
    cams = list(episode.images)
    errors: dict[str, list[np.ndarray]] = {}
    policy.reset()
    next_t = 0.0
    for i, t in enumerate(rel):
        if t + 1e-9 < next_t:
            continue
        next_t = t + every
        images = {}
        for cam in cams:
            frame = np.asarray(episode.images[cam][i], dtype=np.uint8)
            if size is not None and frame.shape[:2] != tuple(size):
                import cv2

                frame = cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_AREA)
            images[cam] = frame
        obs = Observation(
            stamp=float(episode.t[i]),
            joint_pos=np.asarray(episode.joint_pos[i], dtype=np.float64),
            joint_vel=np.asarray(episode.joint_vel[i], dtype=np.float64),
            images=images,
            image_stamps={c: float(episode.t[i]) for c in cams},
        )
        chunk = policy.predict(obs, episode.instruction)
        index = [chunk.joint_names.index(n) for n in spec.joint_names]
        due = t + np.asarray(chunk.times)
        inside = due <= rel[-1]
        if not inside.any():
            continue
        executed = np.stack(
            [np.interp(due[inside], rel, actions[:, j]) for j in range(spec.dof)], axis=1
        )
        err = chunk.positions[inside][:, index] - executed
        source = ControlSource(int(episode.control_source[i])).name.lower()
        errors.setdefault(source, []).append(err)
    out = {}
    for source, errs in errors.items():
        e = np.concatenate(errs)
        out[source] = {
            "chunks": len(errs),
            "rms": dict(
                zip(spec.joint_names, np.sqrt(np.mean(e**2, axis=0)).round(6).tolist(), strict=True)
            ),
            "max": dict(
                zip(spec.joint_names, np.abs(e).max(axis=0).round(6).tolist(), strict=True)
            ),
        }
    return out


def replay_policy(
    store: EpisodeStore,
    ids: Sequence[str],
    replayer: ActionReplayer,
    policy,
    config: ReplayConfig,
    out: str | Path,
) -> ReplaySummary:
    """Open loop over every episode, closed loop where its scene is known; ``out/replay.json``."""
    from policy.rollout import RolloutConfig, TwinRollout

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = replayer.spec
    summary = ReplaySummary()
    t0 = time.perf_counter()
    for episode_id in ids:
        episode = store.read(episode_id)
        check_episode(episode, spec, f"{store.url}: episode '{episode_id}'")
        report: dict[str, Any] = {
            "episode": episode_id,
            "mode": "policy",
            "instruction": episode.instruction,
            "steps": int(episode.n_steps),
            "duration_s": round(float(episode.t[-1] - episode.t[0]), 3),
            "open_loop": open_loop(policy, episode, spec),
        }
        scene = replayer.prepare_scene(episode)
        closed = None
        if scene.startswith("seed "):
            seed = int(scene.split()[1])
            rollout = TwinRollout(replayer.twin, RolloutConfig(executor=replayer.executor_config))
            results = [rollout.run(policy, seed=seed) for _ in range(config.policy_episodes)]
            closed = {
                "seed": seed,
                "successes": sum(r.success for r in results),
                "episodes": len(results),
                "recorded_success": bool(episode.success),
            }
        report["scene"] = scene
        report["closed_loop"] = closed
        failed = closed is not None and closed["recorded_success"] and not closed["successes"]
        report["verdict"] = "warn" if failed else "ok"
        report["reasons"] = (
            ["warn: the policy failed in the twin where the recorded episode succeeded"]
            if failed
            else []
        )
        report["tracking_rms"] = None
        summary.reports.append(report)
        summary.sim_s += report["duration_s"]
    summary.wall_s = time.perf_counter() - t0
    summary.verdict = "warn" if any(r["verdict"] == "warn" for r in summary.reports) else "ok"
    summary.path = _write_json(
        out / "replay.json", {"summary": summary.to_json(), "episodes": summary.reports}
    )
    return summary
