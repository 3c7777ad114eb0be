"""``dojo replay`` and ``dojo replay fit``: recorded episodes in the twin (``replay/``).

    dojo replay STORE [EPISODE ...] [robot=sim_so101] [replay.mode=actions]
                [--fail-on warn|fail] [--lerobot REPO_ID] [replay.dynamics=fit.yaml] [out=DIR]
    dojo replay fit STORE [EPISODE ...] [robot=sim_so101] [out=DIR] [replay.fit.rounds=6]

``replay`` drives the twin with each episode's recorded actions through the driver's executor
and safety layer and writes ``out/replay.json``, a PNG per episode and, for episodes with
images, an MP4 of the recorded camera beside the twin; it prints one line per episode. With
``--fail-on warn`` (or ``fail``) the exit status is 3 when any episode is that bad or worse.
``fit`` estimates each joint's servo gain, damping and command delay on part of the episodes,
reports the tracking error before and after on the rest, and writes ``out/dynamics.yaml``, a
preset override (``twin.actuators``) that ``replay.dynamics=`` loads. The store is only read;
``--lerobot REPO_ID`` reads STORE as a LeRobotDataset root instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dojo import conf
from dojo.commands import TWIN_READS, Command, given

EXIT_VERDICT = 3
"""Exit status when ``--fail-on`` is met (2 is bad input, 1 an unexpected failure)."""

FLAGS = {"--fail-on": "replay.fail_on", "--lerobot": "replay.lerobot_repo_id", "--out": "out"}


def to_overrides(argv: list[str]) -> list[str]:
    """``STORE [EPISODE ...] [--flag value] [key=value ...]`` as config overrides."""
    out, words = [], []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in FLAGS:
            if i + 1 >= len(argv):
                raise conf.ConfigError(f"dojo replay: {word} needs a value")
            out.append(f"{FLAGS[word]}={argv[i + 1]}")
            i += 2
            continue
        if word.startswith("--"):
            raise conf.ConfigError(f"dojo replay: unknown option '{word}' (options: {list(FLAGS)})")
        if "=" in word and word.split("=", 1)[0].lstrip("+~").replace(".", "").isidentifier():
            out.append(word)
        else:
            words.append(word)
        i += 1
    if words:
        out.append(f"store='{words[0]}'")
    if len(words) > 1:
        out.append("replay.episodes=[" + ",".join(f"'{w}'" for w in words[1:]) + "]")
    return out


def _setup(cfg):
    """The spec (with ``replay.dynamics`` loaded), twin, replay config, store and episode ids."""
    from dojo.collect import make_twin
    from dojo.episodes_cmd import resolve_episode
    from replay.actions import ActionReplayer
    from replay.dynamics import load_override, with_dynamics
    from replay.episodes import open_episodes

    rc = conf.section(cfg, "replay")
    spec = conf.robot_spec(cfg)
    if rc.dynamics:
        spec = with_dynamics(spec, load_override(rc.dynamics, spec))
    store = open_episodes(str(cfg.store), spec, rc.lerobot_repo_id)
    ids = [resolve_episode(store, e) for e in rc.episodes] or store.episode_ids()
    twin = make_twin(spec, conf.task_config(cfg), conf.twin_config(cfg))
    replayer = ActionReplayer(twin, rc, conf.executor_config(cfg))
    return spec, twin, rc, store, ids, replayer


def replay(overrides: list[str]) -> int:
    from replay.config import FailOn, ReplayMode
    from replay.report import exceeds
    from replay.run import replay_episodes

    cfg = REPLAY.load(to_overrides(overrides))
    if not cfg.store:
        print("dojo replay: say which episodes, e.g. dojo replay demos.zarr", file=sys.stderr)
        return 2
    _, twin, rc, store, ids, replayer = _setup(cfg)
    out = Path(cfg.out) if given(overrides, "out") else Path("runs") / "replay"
    try:
        if rc.mode == ReplayMode.policy:
            summary = _policy(cfg, rc, store, ids, replayer, out)
        else:
            summary = replay_episodes(store, ids, replayer, rc, out)
    finally:
        twin.close()
    print(summary.table())
    s = summary.to_json()
    print(
        f"{len(ids)} episodes: {s['verdicts']['ok']} ok, {s['verdicts']['warn']} warn, "
        f"{s['verdicts']['fail']} fail; {s['sim_s']:.1f} s replayed in {s['wall_s']:.1f} s "
        f"({s['speed_x_realtime']:.1f}x real time); {summary.path}"
    )
    if rc.fail_on != FailOn.never and exceeds(summary.verdict, rc.fail_on.value):
        return EXIT_VERDICT
    return 0


def _policy(cfg, rc, store, ids, replayer, out):
    from dojo.policy_cmd import _load_policy
    from replay.policy_mode import replay_policy

    if not cfg.policy.checkpoint:
        raise conf.ConfigError("dojo replay replay.mode=policy: give checkpoint=PATH")
    policy = _load_policy(cfg, str(cfg.policy.checkpoint))
    return replay_policy(store, ids, replayer, policy, rc, out)


def fit(overrides: list[str]) -> int:
    from replay.dynamics import fit as fit_dynamics
    from replay.dynamics import write_override

    cfg = FIT.load(to_overrides(overrides))
    if not cfg.store:
        print(
            "dojo replay fit: say which episodes, e.g. dojo replay fit real.zarr", file=sys.stderr
        )
        return 2
    spec, twin, rc, store, ids, replayer = _setup(cfg)
    if len(ids) < 2:
        raise conf.ConfigError(
            f"dojo replay fit: {store.url} gives {len(ids)} episode; fitting needs at least 2 "
            "(one to fit, one held out)"
        )
    out = Path(cfg.out) if given(overrides, "out") else Path("runs") / "replay_fit"
    every = max(2, round(1 / rc.fit.held_out))
    held = ids[every - 1 :: every] or ids[-1:]
    train = [e for e in ids if e not in held]
    from replay.episodes import check_episode

    def read(episode_id):
        ep = store.read(episode_id)
        check_episode(ep, spec, f"{store.url}: episode '{episode_id}'")
        return ep

    try:
        result = fit_dynamics(
            replayer,
            [read(e) for e in train],
            [read(e) for e in held],
            rc.fit,
            on_evaluation=lambda i, rms: (
                print(f"  replay {i}: fit RMS {rms:.4g}", flush=True) if rc.progress else None
            ),
        )
    finally:
        twin.close()
    before = float((result.before**2).mean() ** 0.5)
    after = float((result.after**2).mean() ** 0.5)
    comment = (
        f"dojo replay fit: robot '{spec.name}', {len(train)} episode(s) of {store.url} fitted, "
        f"{len(held)} held out\nheld-out tracking RMS {before:.4g} -> {after:.4g} "
        f"({result.ratio:.1f}x), {result.evaluations} replays"
    )
    path = write_override(out / "dynamics.yaml", result.actuators, comment)
    import json

    (out / "fit.json").write_text(
        json.dumps(
            {
                "robot": spec.name,
                "store": store.url,
                "train": train,
                "held_out": held,
                "before_rms": dict(zip(spec.joint_names, result.before.tolist(), strict=True)),
                "after_rms": dict(zip(spec.joint_names, result.after.tolist(), strict=True)),
                "ratio": result.ratio,
                "evaluations": result.evaluations,
                "actuators": {
                    n: {"kp": a.kp, "damping": a.damping, "delay": a.delay}
                    for n, a in result.actuators.items()
                },
                "history": result.history,
            },
            indent=1,
        )
    )
    print(f"{'joint':<14}{'kp':>9}{'damping':>9}{'delay ms':>10}{'rms before':>12}{'after':>10}")
    for j, (name, a) in enumerate(result.actuators.items()):
        print(
            f"{name:<14}{a.kp:>9.3f}{a.damping:>9.4f}{a.delay * 1000:>10.0f}"
            f"{result.before[j]:>12.4g}{result.after[j]:>10.4g}"
        )
    print(
        f"held-out tracking RMS {before:.4g} -> {after:.4g} ({result.ratio:.1f}x lower); "
        f"{path} (load it with replay.dynamics={path})"
    )
    return 0


READS = (*TWIN_READS, "replay", "store", "out", "executor", "policy")
REPLAY = Command(
    "replay",
    replay,
    READS,
    __doc__.split("\n\n")[1],
    aliases={"checkpoint": "policy.checkpoint", "mode": "replay.mode"},
)
FIT = Command(
    "replay fit",
    fit,
    (*TWIN_READS, "replay", "store", "out", "executor"),
    "Fit the twin's servo gain, damping and delay per joint to recorded episodes.",
)
COMMANDS = (REPLAY, FIT)
