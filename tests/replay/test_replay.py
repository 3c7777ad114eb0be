"""Replay in the twin: self-replay is exact, injected events are found and clean episodes have
none, the fit recovers known dynamics, the reports are written, bad input is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from episodes.store import EpisodeStore
from replay import dynamics
from replay.actions import ActionReplayer
from replay.config import FitConfig, ReplayConfig, ReplayError
from replay.contacts import SELF, TABLE, Contact
from replay.episodes import check_episode, open_episodes
from replay.report import Analysis
from robot.sim.config import TwinConfig
from robot.sim.twin import Twin
from tests.sim_helpers import robot_spec


@pytest.fixture(scope="module")
def twin(spec, task):
    with Twin(spec, TwinConfig(), task) as t:
        yield t


def _report(twin, path, episode_id, config=None):
    config = config or ReplayConfig()
    replayer = ActionReplayer(twin, config)
    ep = EpisodeStore.open(str(path)).read(episode_id)
    trace = replayer.run(ep)
    return Analysis(twin.spec, replayer.fk, config).report(ep, trace), ep, trace


def test_self_replay_is_exact_and_eventless(twin, stores):
    path, rec = stores["nominal"]
    report, ep, trace = _report(twin, path, rec.ids[0])
    assert report["scene"] == f"seed {rec.seeds[0]}"  # the scene found from the first frame
    err = ep.joint_pos - trace.at(ep.t - ep.t[0])
    assert np.abs(err).max() < 1e-5, np.abs(err).max(axis=0)
    assert report["events"] == [] and report["verdict"] == "ok", report["reasons"]
    assert report["safety"]["clamped_steps"] == 0 and report["safety"]["held_steps"] == 0


def test_clean_real_episodes_have_no_events_but_track_worse(twin, stores):
    path, rec = stores["real"]
    report, _, _ = _report(twin, path, rec.ids[0])
    assert report["events"] == [], report["events"]
    assert report["tracking_rms"] > 1e-3  # other gains and a 40 ms delay: not the nominal twin


def test_injected_collision_and_limit_violation_are_found(twin, stores):
    path, rec = stores["injected"]
    table, _, _ = _report(twin, path, rec.ids[0])
    hits = [e for e in table["events"] if e["kind"] == "collision" and e["what"] == "table"]
    assert hits and table["verdict"] == "fail", table["events"]
    assert any(e["source"] == "recorded" for e in hits)
    assert all(e["commanded_depth"] > 0.01 for e in hits), hits  # sent 2 cm into the table
    limit, _, _ = _report(twin, path, rec.ids[1])
    over = [e for e in limit["events"] if e["kind"] == "position_limit"]
    assert over and over[0]["joint"] == "shoulder_pan", limit["events"]
    assert limit["safety"]["clamped_steps"] > 0  # the preset's safety clamps the command


def test_a_hand_resting_on_the_table_is_a_touch_and_pushing_or_another_link_collides(twin, stores):
    """The contact rule of ``replay.contacts`` on one replayed trace with contacts added: the
    jaw on the table is a touch (no event) unless the command drove it in or it pressed for
    ``contact_duration`` above ``contact_force`` x the arm's weight; the wrist on the table and
    a self-contact collide at any depth."""
    config = ReplayConfig()
    path, rec = stores["nominal"]
    _, ep, trace = _report(twin, path, rec.ids[0], config)
    assert 3.0 < trace.weight < 8.0  # N: the SO-101's moving links, about 0.5 kg
    analysis = Analysis(twin.spec, ActionReplayer(twin, config).fk, config)
    jaw = ("table", "moving_jaw_so101_v1")
    period = twin.spec.control_period
    ticks = 1.0 + period * np.arange(10)  # 0.2 s of contact
    limit = config.contact_force * trace.weight

    def collisions(*contacts, commanded=()):
        trace.twin_contacts = [(t, c) for t, c in contacts]
        trace.commanded_contacts = list(commanded)
        report = analysis.report(ep, trace)
        return [e for e in report["events"] if e["kind"] == "collision"], report["touches"]

    resting = [(t, Contact(TABLE, jaw, 4e-4, 0.9 * limit, hand=True)) for t in ticks]
    hits, touches = collisions(*resting)
    assert hits == [] and len(touches) == 1 and touches[0]["peak_force"] > 0, (hits, touches)
    brief = [(t, Contact(TABLE, jaw, 4e-4, 1.5 * limit, hand=True)) for t in ticks[:3]]
    assert collisions(*brief, *resting[5:])[0] == []  # 60 ms above the limit: an impact's spike
    pushing = [(t, Contact(TABLE, jaw, 4e-4, 1.5 * limit, hand=True)) for t in ticks]
    hits, _ = collisions(*pushing)
    assert len(hits) == 1 and "N for" in hits[0]["detail"], hits
    sent = [(t, Contact(TABLE, jaw, 2 * config.command_depth)) for t in ticks]
    hits, _ = collisions(*resting, commanded=sent)
    assert len(hits) == 1 and hits[0]["commanded_depth"] > config.command_depth, hits
    wrist = [(t, Contact(TABLE, ("table", "wrist"), 3e-4, 0.1)) for t in ticks]
    own = [(t, Contact(SELF, ("upper_arm", "wrist"), 3e-4, 0.1)) for t in ticks]
    assert len(collisions(*wrist)[0]) == 1 and len(collisions(*own)[0]) == 1


def test_fit_recovers_the_delay_and_cuts_the_error(spec, task, stores):
    path, rec = stores["real"]
    store = EpisodeStore.open(str(path))
    eps = [store.read(i) for i in rec.ids]
    with Twin(spec, TwinConfig(), task) as own:  # the fit leaves its twin fitted
        replayer = ActionReplayer(own, ReplayConfig())
        result = dynamics.fit(replayer, eps[:2], eps[2:], FitConfig(rounds=3, grid=5))
    delays = [a.delay for a in result.actuators.values()]
    assert abs(float(np.median(delays)) - 0.04) <= 0.010, delays
    assert result.ratio >= 3.0, (result.before, result.after)


def test_override_file_round_trips_and_refuses_unknown_joints(tmp_path, spec, real_dynamics):
    path = dynamics.write_override(tmp_path / "d.yaml", real_dynamics, "fitted")
    loaded = dynamics.load_override(path, spec)
    assert loaded["elbow_flex"].kp == pytest.approx(real_dynamics["elbow_flex"].kp)
    path.write_text("twin:\n  actuators:\n    elbow: {kp: 1.0}\n")
    with pytest.raises(ReplayError, match="elbow"):
        dynamics.load_override(path, spec)


def test_a_store_of_another_robot_or_with_nothing_committed_is_refused(tmp_path, stores, spec):
    with pytest.raises(ReplayError, match="joints"):
        open_episodes(str(stores["nominal"][0]), robot_spec("panda"))
    empty = tmp_path / "empty.zarr"
    EpisodeStore.create(str(empty), spec, 50.0)
    with pytest.raises(ReplayError, match="no committed episodes"):
        open_episodes(str(empty), spec)


def test_timestamps_going_backwards_are_named(stores, spec):
    path, rec = stores["nominal"]
    ep = EpisodeStore.open(str(path)).read(rec.ids[0])
    ep.t[5] = ep.t[3]
    with pytest.raises(ReplayError, match=r"episode 'x'.*backwards at step 5"):
        check_episode(ep, spec, "episode 'x'")


def _dojo(*args, capsys) -> tuple[int, str, str]:
    """``dojo ARGS`` in process (the twin's imports are paid once): status, stdout, stderr."""
    from dojo.cli import main

    with pytest.raises(SystemExit) as done:
        main(list(args))
    out = capsys.readouterr()
    return int(done.value.code), out.out, out.err


def _digest(path: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


def test_cli_writes_reports_and_fail_on_sets_the_exit_status(tmp_path, stores, capsys):
    clean, _ = stores["nominal"]
    bad, _ = stores["injected"]
    before = _digest(bad)
    code, _, err = _dojo(
        "replay", str(clean), f"out={tmp_path / 'a'}", "--fail-on", "warn", capsys=capsys
    )
    assert code == 0, err
    body = json.loads((tmp_path / "a" / "replay.json").read_text())
    assert body["summary"]["verdict"] == "ok"
    files = body["episodes"][0]["files"]
    assert Path(files["plot"]).stat().st_size > 0 and Path(files["video"]).stat().st_size > 0
    code, out, err = _dojo(
        "replay",
        str(bad),
        f"out={tmp_path / 'b'}",
        "--fail-on",
        "fail",
        "replay.video=false",
        capsys=capsys,
    )
    assert code == 3, err
    assert "fail" in out
    assert _digest(bad) == before  # nothing in the store was touched
    code, _, err = _dojo("replay", str(bad), "robot=sim_panda", capsys=capsys)
    assert code == 2 and "joints" in err and len(err.splitlines()) == 1, err
