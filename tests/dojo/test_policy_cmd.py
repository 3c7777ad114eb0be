"""`dojo collect`, `dojo train policy` and `dojo eval policy` end to end, on a tiny budget."""

from __future__ import annotations

import json
import os

import pytest

from dojo import cli

os.environ.setdefault("MUJOCO_GL", "egl")


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    store = tmp_path_factory.mktemp("collect") / "demos.zarr"
    assert run(["collect", f"store={store}", "episodes=1", "seed=3"]) == 0
    return store


def test_collect_train_eval(demos, tmp_path, capsys):
    from episodes.store import EpisodeStore

    store = EpisodeStore.open(str(demos))
    (eid,) = store.episode_ids()
    ep = store.read(eid)
    assert ep.success and ep.n_steps > 20 and set(ep.images) == {"front", "wrist"}

    out = tmp_path / "policy"
    assert (
        run(
            [
                "train",
                "policy",
                f"store={demos}",
                f"out={out}",
                "train.steps=3",
                "train.batch_size=4",
                "train.checkpoint_every=0",
            ]
        )
        == 0
    )
    assert (out / "checkpoint" / "model.safetensors").exists()
    assert (out / "training.png").exists()
    assert json.loads((out / "train_state.json").read_text())["step"] == 3

    code = run(
        [
            "eval",
            "policy",
            f"checkpoint={out}",
            "episodes=1",
            "task.max_duration=1",
            "evaluate.failure_videos=1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "success 0/1" in printed and "95% CI" in printed
    report = json.loads((out / "eval" / "eval.json").read_text())
    assert report["episodes"] == 1 and len(report["failure_videos"]) == 1


def test_train_without_a_store_says_so(capsys):
    assert run(["train", "policy", "out=/tmp/nowhere"]) == 2
    assert "store=demos.zarr" in capsys.readouterr().err


def test_eval_of_a_missing_checkpoint_names_it(tmp_path, capsys):
    assert run(["eval", "policy", f"checkpoint={tmp_path / 'nope'}", "episodes=1"]) == 2
    assert "nope" in capsys.readouterr().err


def test_train_refuses_a_store_of_another_robot(demos, tmp_path, capsys):
    code = run(
        [
            "train",
            "policy",
            f"store={demos}",
            f"out={tmp_path}/p",
            "robot=sim_panda",
            "train.steps=1",
        ]
    )
    assert code == 2
    assert "recorded joints" in capsys.readouterr().err


def test_the_demos_critic_trains_beside_the_policy_in_a_child_process(demos, tmp_path, capsys):
    from dojo.demo import CriticBeside

    critic = CriticBeside(demos, tmp_path / "critic", steps=3)
    critic.start()
    assert critic.proc is not None and critic.proc.poll() is None  # running, not yet waited on
    assert critic.wait() == 0
    assert (tmp_path / "critic" / "critic.json").exists()
    # a second demo reuses it without starting a process
    again = CriticBeside(demos, tmp_path / "critic", steps=3)
    again.start()
    assert again.proc is None and again.wait() == 0


def test_a_failing_critic_is_reported_with_its_log_and_the_demo_goes_on(tmp_path, capsys):
    from dojo.demo import CriticBeside

    critic = CriticBeside(tmp_path / "no_such.zarr", tmp_path / "critic", steps=3)
    critic.start()
    assert critic.wait() != 0
    err = capsys.readouterr().err
    assert "continuing without it" in err and "no_such.zarr" in err


def test_the_demo_ends_with_a_practice_run_measured_before_and_after(demos, tmp_path, capsys):
    """Step 6 of `dojo demo`: the trained policy practises with the distil learner in the twin;
    its success is measured on the same held-out scene before and after, and the learner's
    checkpoint is a compact one."""
    from dojo import demo
    from dojo.cli import DEMO
    from policy.compact import CompactVLAPolicy
    from policy.learner.learner import LATEST

    policy = tmp_path / "policy"
    train = ["train", "policy", f"store={demos}", f"out={policy}", "train.steps=3"]
    assert run([*train, "train.batch_size=4", "train.checkpoint_every=0"]) == 0
    cfg = DEMO.load(
        [
            "demo.practice_episodes=2",
            "demo.practice_eval=1",
            "learner.actor=distil",
            "learner.reward=sparse",
            "learner.distil_steps_per_episode=2",
            "learner.distil_round=4",
            "task.max_duration=2",
        ]
    )
    out = tmp_path / "practice"
    summary = demo.practise(cfg, policy / "checkpoint", demos, out)
    printed = capsys.readouterr().out
    assert "before practice: 0/1" in printed and "after practice : 0/1" in printed
    assert summary["before"]["total"] == summary["after"]["total"] == 1
    report = json.loads((out / "practice.json").read_text())
    assert [e["seed"] for e in report["episodes"]] == [demo.PRACTICE_SEED0, demo.PRACTICE_SEED0 + 1]
    assert report["learner"]["updates"] == 4  # two episodes, two optimiser steps credited each
    assert (out / "practice.png").exists()
    latest = json.loads((out / "learner" / LATEST).read_text())["checkpoint"]
    assert (
        CompactVLAPolicy.load(latest).joint_names
        == CompactVLAPolicy.load(policy / "checkpoint").joint_names
    )


def test_a_demo_practice_without_held_out_scenes_is_refused_with_the_key(capsys):
    from dojo.cli import DEMO

    with pytest.raises(Exception, match=r"demo\.practice_eval"):
        DEMO.load(["demo.practice_eval=0"])
