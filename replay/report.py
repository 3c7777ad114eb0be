"""What a replay says about one episode: tracking, limits, events, a verdict, and its files.

Why these measures: they are what decides whether a recording (or the checkpoint, preset or
safety configuration it is replayed with) may go near the hardware. Each is taken from the
recorded joint states (what the real arm did), from the twin's (what the twin did with the same
commands) and, for velocities and accelerations, from the commands themselves, against the
*preset's* limits, not the ones the episode was recorded with.

Verdict, in order of weight:

``fail``  an event: a self or table collision (``replay.contacts``: a hand resting on the
          table is a *touch*, listed but no event), a joint past its position limit (beyond
          ``position_tolerance``), the end effector out of the workspace box (beyond
          ``workspace_tolerance``), a joint or command faster than its velocity limit (by more
          than ``velocity_tolerance``, a fraction); or a joint's tracking RMS above
          ``tracking_fail``.
``warn``  the preset's safety layer changed recorded commands (clamped or held steps), a
          command's acceleration past its limit (by more than ``acceleration_tolerance``), or
          a joint's tracking RMS above ``tracking_warn``.
``ok``    none of these.

Times in reports are seconds from the episode's first step.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from episodes.store import Episode
from replay.actions import Trace
from replay.config import ReplayConfig
from robot.schema import ControlSource, RobotSpec

FAIL, WARN, OK = "fail", "warn", "ok"
MERGE_GAP = 0.5  # s
COMMAND_LEAD = 0.2  # s: a command reaches the table before a late servo's arm does
_RANK = {OK: 0, WARN: 1, FAIL: 2}


def _r(x: float, digits: int = 6) -> float | None:
    x = float(x)
    return round(x, digits) if np.isfinite(x) else None


def intervals(times: np.ndarray, mask: np.ndarray, gap: float) -> list[tuple[int, int]]:
    """Index ranges ``[a, b]`` (inclusive) of runs of ``mask``; runs closer than ``gap`` s
    are one."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    out = [[int(idx[0]), int(idx[0])]]
    for i in idx[1:]:
        if times[i] - times[out[-1][1]] <= gap:
            out[-1][1] = int(i)
        else:
            out.append([int(i), int(i)])
    return [(a, b) for a, b in out]


def _longest_run(times: np.ndarray, mask: np.ndarray, period: float) -> float:
    """The longest time ``mask`` holds on consecutive ticks of ``times`` (s; one tick counts
    as ``period``)."""
    best = run = 0
    for i in range(len(times)):
        if mask[i] and run and times[i] - times[i - 1] <= 1.5 * period:
            run += 1
        else:
            run = int(mask[i])
        best = max(best, run)
    return best * period


class Analysis:
    """Builds the report of one replayed episode (:meth:`report`)."""

    def __init__(self, spec: RobotSpec, fk, config: ReplayConfig) -> None:
        self.spec = spec
        self.fk = fk
        self.config = config

    def report(self, episode: Episode, trace: Trace, *, store: str = "") -> dict[str, Any]:
        spec, cfg = self.spec, self.config
        rel = np.asarray(episode.t, dtype=np.float64) - float(episode.t[0])
        recorded = np.asarray(episode.joint_pos, dtype=np.float64)
        twin_at = trace.at(rel)
        err = recorded - twin_at
        period = spec.control_period
        # events closer than this are one (a joint hovering at a limit is one event)
        gap = max(1.5 * float(np.median(np.diff(rel))), 1.5 * period, MERGE_GAP)
        events: list[dict[str, Any]] = []

        tracking = {}
        for j, name in enumerate(spec.joint_names):
            k = int(np.argmax(np.abs(err[:, j])))
            tracking[name] = {
                "rms": _r(np.sqrt(np.mean(err[:, j] ** 2))),
                "max": _r(abs(err[k, j])),
                "max_at": _r(rel[k], 3),
            }

        # position limits: recorded states and the twin's
        margins: dict[str, dict[str, Any]] = {}
        lo, hi = spec.position_lower, spec.position_upper
        for source, times, q in (("recorded", rel, recorded), ("twin", trace.t, trace.position)):
            for j, name in enumerate(spec.joint_names):
                m = margins.setdefault(name, {"lower": _r(lo[j]), "upper": _r(hi[j])})
                m[f"{source}_lower_margin"] = _r(np.min(q[:, j] - lo[j]))
                m[f"{source}_upper_margin"] = _r(np.min(hi[j] - q[:, j]))
                beyond = np.maximum(lo[j] - q[:, j], q[:, j] - hi[j])
                for a, b in intervals(times, beyond > cfg.position_tolerance, gap):
                    peak = a + int(np.argmax(beyond[a : b + 1]))
                    events.append(
                        self._event(
                            "position_limit",
                            source,
                            FAIL,
                            times,
                            a,
                            b,
                            joint=name,
                            peak=float(q[peak, j]),
                            limit=float(hi[j] if q[peak, j] > hi[j] else lo[j]),
                            detail=f"joint '{name}' {float(beyond[peak]):.3g} past its limit",
                        )
                    )

        # workspace box, end effector of recorded and twin states
        workspace = {}
        wl, wu = spec.workspace_lower, spec.workspace_upper
        for source, times, q in (("recorded", rel, recorded), ("twin", trace.t, trace.position)):
            ee = np.array([self.fk(x) for x in q])
            out_by = np.maximum(wl - ee, 0.0) + np.maximum(ee - wu, 0.0)
            worst = out_by.max(axis=1)
            workspace[f"{source}_max_outside"] = _r(worst.max())
            for a, b in intervals(times, worst > cfg.workspace_tolerance, gap):
                peak = a + int(np.argmax(worst[a : b + 1]))
                axis = "xyz"[int(np.argmax(out_by[peak]))]
                events.append(
                    self._event(
                        "workspace",
                        source,
                        FAIL,
                        times,
                        a,
                        b,
                        peak=float(worst[peak]),
                        detail=f"end effector {float(worst[peak]) * 1000:.1f} mm outside the "
                        f"box along {axis} at {np.round(ee[peak], 3).tolist()}",
                    )
                )

        # velocities: measured (recorded, twin) and commanded; accelerations commanded
        actions = np.asarray(episode.action, dtype=np.float64)
        dt = np.diff(rel)
        cmd_vel = np.diff(actions, axis=0) / dt[:, None]
        cmd_acc = np.diff(cmd_vel, axis=0) / ((dt[1:] + dt[:-1]) / 2)[:, None]
        hold = np.asarray(episode.control_source) == int(ControlSource.HOLD)
        near_hold = hold[:-2] | hold[1:-1] | hold[2:]  # a hold stops abruptly, by design
        cmd_acc[near_hold] = 0.0
        rec_vel = np.asarray(episode.joint_vel, dtype=np.float64)
        rec_acc = np.diff(rec_vel, axis=0) / dt[:, None]
        velocity, acceleration = {}, {}
        vlim, alim = spec.velocity_limit, spec.acceleration_limit
        sources = (
            ("recorded", rel, rec_vel),
            ("twin", trace.t, trace.velocity),
            ("commanded", rel[1:], cmd_vel),
        )
        for j, name in enumerate(spec.joint_names):
            velocity[name] = {"limit": _r(vlim[j])}
            for source, times, v in sources:
                speed = np.abs(v[:, j])
                velocity[name][f"{source}_peak"] = _r(speed.max())
                over = speed > vlim[j] * (1 + cfg.velocity_tolerance)
                for a, b in intervals(times, over, gap):
                    peak = a + int(np.argmax(speed[a : b + 1]))
                    events.append(
                        self._event(
                            "velocity",
                            source,
                            FAIL,
                            times,
                            a,
                            b,
                            joint=name,
                            peak=float(speed[peak]),
                            limit=float(vlim[j]),
                            detail=f"joint '{name}' at {float(speed[peak]):.3g}/s, limit "
                            f"{float(vlim[j]):.3g}/s",
                        )
                    )
            acc = np.abs(cmd_acc[:, j])
            acceleration[name] = {
                "limit": _r(alim[j]),
                "commanded_peak": _r(acc.max()) if acc.size else 0.0,
                "recorded_peak": _r(np.abs(rec_acc[:, j]).max()),
            }
            over = acc > alim[j] * (1 + cfg.acceleration_tolerance)
            for a, b in intervals(rel[1:-1], over, gap):
                peak = a + int(np.argmax(acc[a : b + 1]))
                events.append(
                    self._event(
                        "acceleration",
                        "commanded",
                        WARN,
                        rel[1:-1],
                        a,
                        b,
                        joint=name,
                        peak=float(acc[peak]),
                        limit=float(alim[j]),
                        detail=f"joint '{name}' commanded {float(acc[peak]):.3g}/s^2, limit "
                        f"{float(alim[j]):.3g}/s^2",
                    )
                )

        # collisions: recorded states (kinematic check) and the twin's physics; the hand's
        # table contacts judged by the commanded poses and the twin's contact forces
        touches: list[dict[str, Any]] = []
        commanded: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for t, c in trace.commanded_contacts:
            commanded.setdefault(c.bodies, []).append((t, c.depth))
        force_limit = cfg.contact_force * trace.weight
        for source, contacts in (
            ("recorded", trace.recorded_contacts),
            ("twin", trace.twin_contacts),
        ):
            pairs: dict[tuple[str, str, str, bool], list[tuple[float, float, float]]] = {}
            for t, c in contacts:
                pairs.setdefault((c.what, *c.bodies, c.hand), []).append((t, c.depth, c.force))
            for (what, a_body, b_body, hand), hits in pairs.items():
                times = np.array([h[0] for h in hits])
                depth = np.array([h[1] for h in hits])
                force = np.array([h[2] for h in hits])
                for a, b in intervals(times, np.ones(len(times), bool), gap):
                    peak = a + int(np.argmax(depth[a : b + 1]))
                    fields: dict[str, Any] = {
                        "what": what,
                        "bodies": [a_body, b_body],
                        "peak": float(depth[peak]),
                    }
                    text = f"{a_body} / {b_body}, {float(depth[peak]) * 1000:.2f} mm deep"
                    if source == "twin":
                        fields["peak_force"] = float(np.max(force[a : b + 1]))
                        text += f", {fields['peak_force']:.1f} N"
                    why = "not a link meant to touch"
                    if hand:
                        lo_t, hi_t = times[a] - COMMAND_LEAD, times[b] + COMMAND_LEAD
                        sent = commanded.get((a_body, b_body), [])
                        cmd = max((d for t, d in sent if lo_t <= t <= hi_t), default=0.0)
                        pressed = (
                            _longest_run(times[a : b + 1], force[a : b + 1] > force_limit, period)
                            if source == "twin"
                            else 0.0
                        )
                        fields["commanded_depth"] = float(cmd)
                        if cmd > cfg.command_depth:
                            why = f"commanded {cmd * 1000:.1f} mm into the table"
                        elif pressed >= cfg.contact_duration - 1e-9:
                            why = f"above {force_limit:.1f} N for {pressed:.2f} s"
                        else:
                            touches.append(
                                self._event("touch", source, OK, times, a, b, **fields)
                                | {"detail": f"hand on the table: {text}"}
                            )
                            continue
                    events.append(
                        self._event(
                            "collision",
                            source,
                            FAIL,
                            times,
                            a,
                            b,
                            **fields,
                            detail=f"{what} collision {text} ({why})",
                        )
                    )
        events.sort(key=lambda e: (e["start"], e["kind"]))

        safety = {
            "clamped_steps": int(trace.clamped.sum()),
            "held_steps": int(trace.held.sum()),
            "recorded_held_steps": int(hold.sum()),
            "reasons": sorted({r.split(",")[0] for _, r in trace.safety_events})[:8],
            "first_at": _r(trace.safety_events[0][0], 3) if trace.safety_events else None,
        }
        verdict, reasons = self.verdict(tracking, events, safety)
        duration = float(rel[-1])
        return {
            "episode": episode.id,
            "store": store,
            "instruction": episode.instruction,
            "task": episode.task,
            "mode": "actions",
            "steps": int(episode.n_steps),
            "duration_s": _r(duration, 3),
            "scene": trace.scene,
            "verdict": verdict,
            "reasons": reasons,
            "tracking": tracking,
            "tracking_rms": _r(np.sqrt(np.mean(err**2))),
            "limits": margins,
            "workspace": workspace,
            "velocity": velocity,
            "acceleration": acceleration,
            "events": events,
            "touches": touches,
            "safety": safety,
            "wall_s": _r(trace.wall_s, 3),
            "speed_x_realtime": _r(duration / max(trace.wall_s, 1e-9), 2),
        }

    def verdict(
        self, tracking: dict[str, dict], events: Sequence[dict], safety: dict
    ) -> tuple[str, list[str]]:
        cfg = self.config
        reasons: list[tuple[str, str]] = []
        for e in events:
            reasons.append(
                (e["severity"], f"{e['kind']} ({e['source']}) at {e['start']:.2f} s: {e['detail']}")
            )
        for name, t in tracking.items():
            if t["rms"] > cfg.tracking_fail:
                reasons.append(
                    (FAIL, f"tracking RMS of '{name}' {t['rms']:.3g} > {cfg.tracking_fail:g}")
                )
            elif t["rms"] > cfg.tracking_warn:
                reasons.append(
                    (WARN, f"tracking RMS of '{name}' {t['rms']:.3g} > {cfg.tracking_warn:g}")
                )
        if safety["clamped_steps"] or safety["held_steps"]:
            reasons.append(
                (
                    WARN,
                    f"the preset's safety clamped {safety['clamped_steps']} and "
                    f"held {safety['held_steps']} step(s) of the recorded commands",
                )
            )
        verdict = max((s for s, _ in reasons), key=_RANK.__getitem__, default=OK)
        reasons.sort(key=lambda r: -_RANK[r[0]])
        return verdict, [f"{s}: {text}" for s, text in reasons]

    @staticmethod
    def _event(
        kind: str, source: str, severity: str, times: np.ndarray, a: int, b: int, **fields: Any
    ) -> dict[str, Any]:
        out = {
            "kind": kind,
            "source": source,
            "severity": severity,
            "start": _r(times[a], 3),
            "end": _r(times[b], 3),
        }
        for key, value in fields.items():
            out[key] = _r(value) if isinstance(value, float) else value
        return out


def worst(verdicts: Sequence[str]) -> str:
    """The heaviest of ``verdicts`` (``ok`` for none)."""
    return max(verdicts, key=_RANK.__getitem__, default=OK)


def exceeds(verdict: str, threshold: str) -> bool:
    """Whether ``verdict`` is at least as bad as ``threshold`` (``warn`` or ``fail``)."""
    return _RANK[verdict] >= _RANK[threshold]


def write_plot(
    path: Path, spec: RobotSpec, episode: Episode, trace: Trace, report: dict[str, Any]
) -> Path:
    """Recorded against twin joint positions over time, one panel per joint, the preset's
    limits dashed and every event shaded (red: fail, orange: warn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rel = np.asarray(episode.t, dtype=np.float64) - float(episode.t[0])
    d = spec.dof
    fig, axes = plt.subplots(d, 1, figsize=(9, 1.6 * d + 1), sharex=True, squeeze=False)
    for j, name in enumerate(spec.joint_names):
        ax = axes[j, 0]
        ax.plot(rel, episode.joint_pos[:, j], color="black", lw=1.2, label="recorded")
        ax.plot(trace.t, trace.position[:, j], color="tab:blue", lw=1.0, ls="--", label="twin")
        ax.plot(rel, episode.action[:, j], color="tab:green", lw=0.7, alpha=0.6, label="action")
        for bound in (spec.position_lower[j], spec.position_upper[j]):
            ax.axhline(bound, color="grey", lw=0.6, ls=":")
        low, high = np.min(episode.joint_pos[:, j]), np.max(episode.joint_pos[:, j])
        pad = 0.15 * max(high - low, 0.05)
        ax.set_ylim(low - pad, high + pad)
        rms = report["tracking"][name]["rms"]
        ax.set_ylabel(f"{name}\nRMS {rms:.2g}", fontsize=7)
        for e in report["events"]:
            if e.get("joint") not in (None, name):
                continue
            color = "red" if e["severity"] == FAIL else "orange"
            ax.axvspan(e["start"], max(e["end"], e["start"] + 0.02), color=color, alpha=0.25)
    for t, _ in trace.safety_events[:200]:
        axes[-1, 0].axvline(t, color="purple", lw=0.3, alpha=0.5)
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=3)
    axes[-1, 0].set_xlabel("s from the first step")
    fig.suptitle(
        f"{episode.id}: {report['verdict']} (tracking RMS {report['tracking_rms']:.2g}, "
        f"{len(report['events'])} events, scene {report['scene']})",
        fontsize=9,
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def summary_table(reports: Sequence[dict[str, Any]]) -> str:
    """One line per episode: verdict, steps, tracking RMS, worst joint, events, safety."""
    header = ("episode", "verdict", "steps", "rms", "worst joint", "events", "clamp/held", "x rt")
    rows = []
    for r in reports:
        tr = r.get("tracking") or {}
        joint = max(tr, key=lambda n: tr[n]["rms"]) if tr else "-"
        kinds: dict[str, int] = {}
        for e in r.get("events", []):
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
        events = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "-"
        s = r.get("safety") or {}
        rows.append(
            (
                r["episode"],
                r["verdict"],
                str(r.get("steps", "")),
                f"{r['tracking_rms']:.2e}" if r.get("tracking_rms") is not None else "-",
                joint,
                events,
                f"{s.get('clamped_steps', 0)}/{s.get('held_steps', 0)}",
                f"{r.get('speed_x_realtime') or 0:.1f}",
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
