"""`dojo.collect.collect_successful`: the top-up that demo and the benchmarks record with."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("MUJOCO_GL", "egl")


def _twin(max_duration: float | None = None):
    from dojo import conf
    from dojo.collect import make_twin

    cfg = conf.load([])
    task = conf.task_config(cfg)
    if max_duration is not None:
        task = dataclasses.replace(task, max_duration=max_duration)
    return make_twin(conf.robot_spec(cfg), task, conf.twin_config(cfg)), conf.scripted_config(cfg)


def test_a_store_is_topped_up_from_the_next_unused_seed(tmp_path):
    from dojo.collect import collect, collect_successful, recorded
    from episodes.store import EpisodeStore

    url = str(tmp_path / "demos.zarr")
    assert recorded(url) == (0, 0)
    twin, scripted = _twin()
    try:
        collect(url, twin, scripted, episodes=1, seed=0, progress=False)
        assert recorded(url) == (1, 1)
        assert collect_successful(url, twin, scripted, successful=2, progress=False) == (2, 2)
        assert collect_successful(url, twin, scripted, successful=2, progress=False) == (2, 2)
    finally:
        twin.close()
    store = EpisodeStore.open(url)
    instructions = [store.info(e)["instruction"] for e in store.episode_ids()]
    assert instructions == [twin.task.sample(s).instruction for s in (0, 1)]  # seeds 0, 1


def test_an_operator_that_always_fails_is_tried_a_bounded_number_of_times(tmp_path):
    from dojo.collect import collect_successful

    url = str(tmp_path / "demos.zarr")
    twin, scripted = _twin(max_duration=0.3)  # no pick and place fits in 0.3 s
    try:
        have, seen = collect_successful(url, twin, scripted, successful=2, rounds=2, progress=False)
    finally:
        twin.close()
    assert (have, seen) == (0, 4)
