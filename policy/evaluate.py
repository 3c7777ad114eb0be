"""Success rate of a chunk policy in the twin, with its uncertainty, per instruction.

A success rate from 50 episodes is an estimate: 35/50 is 0.70 with a 95% interval of about
0.56-0.81. Every rate here is reported with its Wilson score interval (it behaves at 0/n and
n/n, where the normal approximation gives nonsense), so two policies are only called different
when their intervals say so.

Episodes use seeds ``seed, seed + 1, ...``: pick a range the training demos did not use, and
the same range for every policy you compare (the same scenes, colour for colour).
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from policy.config import PolicyEvalConfig
from policy.rollout import RolloutConfig, RolloutResult, TwinRollout
from policy.schedule import progress_bar


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% (``z=1.96``) Wilson score interval of a binomial proportion."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(results: list[RolloutResult]) -> dict[str, Any]:
    n = len(results)
    k = sum(r.success for r in results)
    lo, hi = wilson_interval(k, n)
    per: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        per[r.instruction].append(r.success)
    lat = np.concatenate([np.asarray(r.latencies) for r in results]) if results else np.zeros(0)
    return {
        "episodes": n,
        "successes": k,
        "success_rate": k / n if n else 0.0,
        "ci_low": lo,
        "ci_high": hi,
        "per_instruction": {
            ins: {
                "episodes": len(v),
                "successes": int(sum(v)),
                "success_rate": sum(v) / len(v),
                "ci_low": wilson_interval(int(sum(v)), len(v))[0],
                "ci_high": wilson_interval(int(sum(v)), len(v))[1],
            }
            for ins, v in sorted(per.items())
        },
        "held_ticks": int(sum(r.held_ticks for r in results)),
        "ticks": int(sum(r.ticks for r in results)),
        "inference_p50_ms": float(np.percentile(lat, 50) * 1e3) if lat.size else None,
        "inference_p99_ms": float(np.percentile(lat, 99) * 1e3) if lat.size else None,
    }


def evaluate(
    policy,
    twin,
    config: PolicyEvalConfig,
    rollout: RolloutConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    instruction_override: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Roll ``policy`` out for ``config.episodes`` episodes; write ``eval.json`` and up to
    ``failure_videos`` MP4s of failed episodes into ``out``. ``config.inference`` replaces
    ``rollout.inference``; ``progress``: a tqdm bar (quiet when stderr is not a terminal).

    ``instruction_override``: maps the scene's instruction to the one given to the policy
    (e.g. swapped colours: the scene asks for red, the policy is told blue), to test whether it
    follows the words or the scene.
    """
    rollout = replace(rollout or RolloutConfig(), inference=str(config.inference))
    runner = TwinRollout(twin, rollout)
    camera = config.video_camera or next((c.name for c in twin.spec.cameras), "")
    want_video = out is not None and config.failure_videos > 0
    results: list[RolloutResult] = []
    videos: list[str] = []
    t0 = time.monotonic()
    agent = policy
    if instruction_override:
        agent = Retold(policy, instruction_override)
    bar = progress_bar(config.episodes, "eval", "episode") if progress else None
    for i in range(config.episodes):
        keep = camera if want_video and len(videos) < config.failure_videos else None
        r = runner.run(agent, seed=config.seed + i, keep_frames=keep)
        results.append(r)
        if keep and not r.success and r.frames.get(keep):
            from episodes.view import write_video

            frames = np.stack(r.frames[keep])
            path = Path(out) / f"failure_{len(videos):02d}_seed{r.seed}.mp4"
            write_video(frames, len(frames), runner.config.record_fps, path)
            videos.append(str(path))
        r.frames.clear()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(succeeded=sum(x.success for x in results), refresh=False)
    if bar is not None:
        bar.close()
    summary = summarize(results)
    summary["seconds"] = round(time.monotonic() - t0, 1)
    summary["failure_videos"] = videos
    summary["results"] = [r.to_json() for r in results]
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "eval.json").write_text(json.dumps(summary, indent=2))
    return summary


class Retold:
    """Passes the policy another instruction than the scene's (see ``instruction_override``);
    ``mapping`` is a dict or a function of the scene's instruction."""

    def __init__(self, policy, mapping) -> None:
        self.policy = policy
        self.mapping = mapping
        self.input_size = getattr(policy, "input_size", None)
        self.chunk_dt = getattr(policy, "chunk_dt", None)

    def reset(self) -> None:
        self.policy.reset()

    def predict(self, obs, instruction, committed=None):
        told = (
            self.mapping(instruction)
            if callable(self.mapping)
            else self.mapping.get(instruction, instruction)
        )
        return self.policy.predict(obs, told, committed)


def format_summary(s: dict[str, Any]) -> str:
    lines = [
        f"success {s['successes']}/{s['episodes']} = {s['success_rate']:.2f} "
        f"(95% CI {s['ci_low']:.2f}-{s['ci_high']:.2f})"
    ]
    for ins, v in s["per_instruction"].items():
        lines.append(
            f"  {ins:<40} {v['successes']:>3}/{v['episodes']:<3} {v['success_rate']:.2f} "
            f"({v['ci_low']:.2f}-{v['ci_high']:.2f})"
        )
    if s.get("inference_p50_ms") is not None:
        lines.append(
            f"inference p50 {s['inference_p50_ms']:.1f} ms, p99 {s['inference_p99_ms']:.1f} ms; "
            f"held ticks {s['held_ticks']}/{s['ticks']}"
        )
    for v in s.get("failure_videos", []):
        lines.append(f"failure video: {v}")
    return "\n".join(lines)
