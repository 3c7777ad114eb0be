"""Every ``dojo`` command on a missing store, a missing checkpoint and a bad key: one line on
stderr naming the input, a non-zero exit status, never a traceback."""

from __future__ import annotations

import os

import pytest

from dojo import cli

os.environ.setdefault("MUJOCO_GL", "egl")

MISSING_STORE = "/nonexistent/demos.zarr"
MISSING_CKPT = "/nonexistent/checkpoint"

CASES = [
    # (argv, what the one line must name)
    (["train", "policy", f"store={MISSING_STORE}", "out=/tmp/dojo-never"], MISSING_STORE),
    (["train", "policy", "store=x.zarr", "train.stpes=3"], "did you mean 'train.steps'"),
    (["eval", "policy", f"checkpoint={MISSING_CKPT}", "episodes=1"], MISSING_CKPT),
    (
        ["eval", "policy", "checkpoint=x", "seed=4242"],
        "did you mean 'task.seed' or 'evaluate.seed'",
    ),
    (["train", "critic", f"store={MISSING_STORE}", "out=/tmp/dojo-never"], MISSING_STORE),
    (["train", "critic", "store=x.zarr", "steps=3"], "did you mean 'critic_train.steps'?"),
    (["eval", "critic", f"checkpoint={MISSING_CKPT}", "store=x.zarr"], MISSING_CKPT),
    (["eval", "critic", "checkpoint=x", "store=x.zarr", "critic_eval.mod=chain"], "mode"),
    (
        ["critic", "relabel", f"store={MISSING_STORE}", f"checkpoint={MISSING_CKPT}"],
        "/nonexistent/",
    ),
    (["critic", "relabel", "store=x", "checkpoint=x", "relabel.reward=bogus"], "relabel.reward"),
    (["critic", "audit", f"store={MISSING_STORE}", "audit.critic_id=c"], MISSING_STORE),
    (["critic", "audit", f"store={MISSING_STORE}", f"checkpoint={MISSING_CKPT}"], "/nonexistent/"),
    (["critic", "curves", f"store={MISSING_STORE}", f"checkpoint={MISSING_CKPT}"], "/nonexistent/"),
    (["critic", "curves", "store=x", "checkpoint=x", "critic_eval.limt=2"], "critic_eval.limit"),
    (["episodes", "ls", MISSING_STORE], MISSING_STORE),
    (["episodes", "show", MISSING_STORE, "3"], MISSING_STORE),
    (["episodes", "ls", MISSING_STORE, "episodes_cmd.verbos=true"], "episodes_cmd.verbose"),
    (["collect", f"store={MISSING_STORE}", "teleop.scripted.failure_rat=0.1"], "failure_rate"),
    (["collect", "episodes=1", "train.steps=3"], "'train.steps' is not read by `dojo collect`"),
    (["run", "durration=3"], "did you mean 'duration'"),
    (["record", "store=x.zarr", "train.lr=0.1"], "'train.lr' is not read by `dojo record`"),
    (["graph", "robot=sim_pand"], "did you mean 'robot=sim_panda'"),
    (["config", "sim.clok=realtime"], "did you mean 'sim.clock'"),
    (["demo", "demo.demoss=3"], "did you mean 'demo.demos'"),
    (["hw", "check", "robot=so101", "+robot.device.prot=/dev/x"], "did you mean 'port'"),
    (["hw", "find-port", "hw.jsn=true"], "did you mean 'hw.json'"),
    (["trian", "policy"], "did you mean 'train'"),
]


@pytest.mark.parametrize(("argv", "names"), CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_an_error_is_one_line_naming_the_input(argv, names, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert exit_info.value.code not in (0, None), (out, err)
    text = (err + out).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert names in lines[0], lines[0]
    assert "Traceback" not in text


def test_eval_policy_refuses_the_seed_it_would_ignore_and_takes_its_own(capsys):
    with pytest.raises(SystemExit):
        cli.main(["eval", "policy", "seed=4242"])
    assert "evaluate.seed" in capsys.readouterr().err
    from dojo import policy_cmd

    cfg = policy_cmd.EVAL.load(["evaluate.seed=4242"])
    assert cfg.evaluate.seed == 4242


def test_help_lists_keys_and_exits_0(capsys):
    for argv in (["train", "policy"], ["critic", "relabel"], ["episodes"], ["hw", "check"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*argv, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert ("keys (type = default):" in out and "store" in out) or "robot" in out
