"""``dojo replay ... mode=policy``: a checkpoint run open loop over recorded observations, its
chunks compared per joint and by control source with what was executed, and closed loop in the
twin from the reconstructed scene."""

from __future__ import annotations

import json

import numpy as np
import pytest

from episodes.store import EpisodeStore, StoreConfig
from policy.compact import save_checkpoint
from policy.config import VLAConfig
from policy.models.vla import CompactVLA
from replay.synthetic import SMALL_FRONT, recording_spec
from robot.schema import ControlSource
from tests.policy.conftest import tiny_model_overrides
from tests.replay.test_replay import _dojo

OFFSET = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])  # rad above each joint's highest action
HUMAN_FROM = 2.0  # s: the person takes over here


@pytest.fixture(scope="module")
def handed_over(tmp_path_factory, spec, stores):
    """The nominal episode again, the steps from ``HUMAN_FROM`` on marked as the human's."""
    path, rec = stores["nominal"]
    ep = EpisodeStore.open(str(path)).read(rec.ids[0])
    url = tmp_path_factory.mktemp("policy") / "handed.zarr"
    rec_spec = recording_spec(spec, None, SMALL_FRONT)
    store = EpisodeStore.create(
        str(url), rec_spec, rec_spec.control_hz, StoreConfig(min_free_bytes=0, durable=False)
    )
    w = store.begin(ep.instruction, ep.task, started_at=ep.started_at)
    rel = ep.t - ep.t[0]
    for i in range(len(ep.t)):
        source = int(ControlSource.HUMAN) if rel[i] >= HUMAN_FROM else int(ep.control_source[i])
        w.append(
            float(ep.t[i]),
            ep.joint_pos[i],
            ep.joint_vel[i],
            ep.action[i],
            source,
            {c: ep.images[c][i] for c in ep.images},
        )
    w.commit(ep.outcome, ep.success)
    return url, ep, rec.seeds[0]


def constant_checkpoint(path, spec, target: np.ndarray):
    """A compact VLA (tiny, absolute actions) whose every chunk is ``target``: all weights
    zero, so its normalised output is 0 and the action is the stats' mean."""
    config = VLAConfig(
        joint_names=list(spec.joint_names),
        cameras=["front"],
        # the camera's aspect (4:3): the closed loop renders the twin at the model's size
        **tiny_model_overrides(action_mode="absolute", image_size=(48, 64)),
    )
    model = CompactVLA(config)
    for p in model.parameters():
        p.data.zero_()
    d = spec.dof
    model.set_stats(
        state_mean=[0.0] * d,
        state_std=[1.0] * d,
        action_mean=target.tolist(),
        action_std=[1.0] * d,
    )
    return save_checkpoint(model.eval(), path)


def test_policy_mode_reports_the_open_loop_error_per_joint_and_by_source(
    tmp_path, spec, handed_over, capsys
):
    url, ep, seed = handed_over
    actions = np.asarray(ep.action, dtype=np.float64)
    target = actions.max(axis=0) + OFFSET
    ckpt = constant_checkpoint(tmp_path / "ckpt", spec, target)
    code, out, err = _dojo(
        "replay",
        str(url),
        "mode=policy",
        f"checkpoint={ckpt}",
        f"out={tmp_path / 'out'}",
        "task.max_duration=1.0",
        capsys=capsys,
    )
    assert code == 0, err
    body = json.loads((tmp_path / "out" / "replay.json").read_text())
    (report,) = body["episodes"]
    assert report["mode"] == "policy" and report["episode"] in out
    loop = report["open_loop"]
    assert set(loop) == {"script", "human"}, loop
    rel = ep.t - ep.t[0]
    every = 0.5  # s between the open-loop queries (replay.policy_mode.open_loop)
    assert loop["script"]["chunks"] == pytest.approx(HUMAN_FROM / every, abs=1)
    assert loop["human"]["chunks"] == pytest.approx((rel[-1] - HUMAN_FROM) / every, abs=1)
    spread = actions.max(axis=0) - actions.min(axis=0)
    for source in ("script", "human"):
        rms, worst = loop[source]["rms"], loop[source]["max"]
        assert list(rms) == list(spec.joint_names)
        for j, name in enumerate(spec.joint_names):
            # every chunk step is OFFSET[j] to OFFSET[j] + spread[j] above the executed action
            assert OFFSET[j] - 1e-4 <= rms[name] <= worst[name] + 1e-9, (source, name, rms)
            assert worst[name] <= OFFSET[j] + spread[j] + 1e-4, (source, name, worst)
    closed = report["closed_loop"]
    assert closed is not None and closed["seed"] == seed and closed["episodes"] == 1, closed
    assert report["scene"] == f"seed {seed}"
