"""``dojo demo``: the whole loop on the embedded default, end to end.

1. **Demonstrations**: ``demo.demos`` scripted pick-and-place episodes (all three colours) are
   recorded in the MuJoCo twin into ``<out>/demos.zarr`` (``dojo collect``; kept and reused by
   the next run).
2. **Fine-tuning**: the compact VLA trains on them for ``demo.train_seconds`` of wall clock
   (``dojo train policy``; a second run resumes the same run, so it costs nothing once done).
3. **The critic**: the compact progress critic trains on the same demonstrations for
   ``demo.critic_steps`` steps (``dojo train critic``), in a child process beside step 2: each
   takes one core, so the critic costs the demo no wall time.
4. **Deployment**: the trained checkpoint runs as the ``policy`` node in the ROS 2 graph against
   the twin's driver (``dojo record policy.checkpoint=... critic.checkpoint=...``) for
   ``episodes`` new scenes, with the critic publishing live progress and the recorder keeping
   every episode; the success rate is reported with its 95% interval.
5. **Progress curves**: the critic scores the policy's recorded episodes; successful and failed
   ones are plotted side by side.
6. **Practice**: a short run of the practice loop in the twin, in process and in sim time
   (:mod:`policy.learner.loop`, as ``bench/practice.py`` runs it): the trained policy practises
   ``demo.practice_episodes`` new scenes with the learner (by default ``learner.actor=distil``
   with sparse reward: the VLA fine-tuned on its own successes and the demonstrations), and its
   success on the same ``demo.practice_eval`` held-out scenes is printed before and after.
   ``dojo practice`` runs the same learner through the ROS 2 graph.

Everything lands in ``out`` (default ``runs/demo``): ``demos.zarr``, ``policy/`` (checkpoint,
``training.png``), ``critic/``, ``rollouts.zarr`` (the policy's episodes), ``graph/``
(``episodes.json``, ``contact_sheet.png``), ``critic_curves.png``, ``practice/`` (``practice.json``,
``practice.png``, the learner's checkpoints) and ``demo.json``.

The demo trains for minutes on a CPU, so expect a policy that has learned to reach and often to
grasp rather than a finished one: ``bench/policy_learning.py`` measures what more demos and
more training buy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dojo import conf
from dojo.commands import GRAPH_READS

DEFAULTS = {
    "episodes": "5",
    "out": "runs/demo",
    # the one actor measured above its start (bench/README.md, practice); sparse reward: the
    # demo's critic has seen only scripted demonstrations
    "learner.actor": "distil",
    "learner.reward": "sparse",
}
PRACTICE_SEED0 = 10_000  # scenes the demonstrations (0..) and the graph episodes never use
HELD_OUT_SEED0 = 20_000


def _value(overrides: list[str], key: str) -> str | None:
    return next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key), None)


def _step(n: int, title: str) -> None:
    print(f"\n=== {n}. {title}", flush=True)


def run(overrides: list[str], run_graph, command) -> int:
    """``run_graph(overrides) -> exit code`` runs the node graph (``dojo run``); ``command``:
    ``dojo demo``'s :class:`dojo.commands.Command` (the keys it reads)."""
    import logging

    logging.getLogger().setLevel(logging.WARNING)  # progress lines, not a log line per episode
    overrides = [
        *(f"{k}={v}" for k, v in DEFAULTS.items() if _value(overrides, k) is None),
        *overrides,
    ]
    cfg = command.load(overrides)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    demos = out / "demos.zarr"
    policy_dir = out / "policy"
    critic_dir = out / "critic"
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    from dojo import critic_cmd, policy_cmd

    def passthrough(reads) -> list[str]:
        """The overrides a step's command reads (it refuses the others); not its paths."""
        keep = set(reads) - {"out", "store", "demo"}
        return [o for o in overrides if o.split("=", 1)[0].lstrip("+~").split(".")[0] in keep]

    _step(1, f"record {cfg.demo.demos} scripted demonstrations in the twin -> {demos}")
    t0 = time.monotonic()
    from dojo.collect import collect_successful, make_twin, recorded

    have, _ = recorded(str(demos))
    if have >= cfg.demo.demos:
        print(f"{demos}: {have} successful demonstrations already recorded; reusing them")
    else:
        twin = make_twin(conf.robot_spec(cfg), conf.task_config(cfg), conf.twin_config(cfg))
        try:
            have, _ = collect_successful(
                str(demos), twin, conf.scripted_config(cfg), successful=cfg.demo.demos
            )
        finally:
            twin.close()
    report["demos"] = {"successful": have, "seconds": round(time.monotonic() - t0, 1)}

    # the critic trains on the other core while the policy trains (each is one thread), so the
    # demo's minutes go to the policy instead of waiting for the critic after it
    critic = CriticBeside(demos, critic_dir, cfg.demo.critic_steps)
    critic.start()
    _step(2, f"fine-tune the compact VLA for {cfg.demo.train_seconds:.0f} s -> {policy_dir}")
    t0 = time.monotonic()
    try:
        code = policy_cmd.train(
            [
                *passthrough(policy_cmd.TRAIN.reads),
                f"store={demos}",
                f"out={policy_dir}",
                f"train.seconds={cfg.demo.train_seconds}",
                "train.steps=1000000",
            ]
        )
    except BaseException:
        critic.stop()
        raise
    if code != 0:
        critic.stop()
        return code
    report["train"] = {
        "seconds": round(time.monotonic() - t0, 1),
        **json.loads((policy_dir / "train_state.json").read_text()).get("history", [{}])[-1],
    }

    _step(
        3, f"the progress critic, trained beside the policy on the demonstrations -> {critic_dir}"
    )
    t0 = time.monotonic()
    code = critic.wait()
    report["critic"] = {
        "seconds": round(critic.seconds, 1),
        "waited_s": round(time.monotonic() - t0, 1),
        "ok": code == 0,
    }
    critic_args = [f"critic.checkpoint={critic_dir}"] if code == 0 else []

    _step(4, f"run the policy through the ROS 2 graph for {cfg.episodes} episodes, recorded")
    graph_out = out / "graph"
    rollouts = out / "rollouts.zarr"
    code = run_graph(
        [
            *passthrough(GRAPH_READS),
            f"policy.checkpoint={policy_dir / 'checkpoint'}",
            *critic_args,
            f"store={rollouts}",
            f"out={graph_out}",
        ]
    )
    summary = graph_out / "episodes.json"
    if summary.exists():
        from policy.evaluate import wilson_interval

        data = json.loads(summary.read_text())
        lo, hi = wilson_interval(data["succeeded"], data["total"])
        report["graph"] = {"succeeded": data["succeeded"], "total": data["total"], "ci": [lo, hi]}
        print(
            f"\ncompact VLA through the graph: {data['succeeded']}/{data['total']} episodes "
            f"succeeded (95% CI {lo:.2f}-{hi:.2f})"
        )
        for ep in data["episodes"]:
            mark = "ok  " if ep["success"] else "FAIL"
            print(f"  [{mark}] {ep['episode']:>2}  {ep['duration_s']:6.1f} s  {ep['instruction']}")
        print(f"training curve: {policy_dir / 'training.png'}")
        print(f"contact sheet: {graph_out / 'contact_sheet.png'}")
    if critic_args and rollouts.exists():
        _step(5, "progress curves of the policy's episodes, as the critic sees them")
        _optional(
            "progress curves",
            critic_cmd.curves,
            [f"store={rollouts}", f"checkpoint={critic_dir}", f"out={out / 'critic_curves.png'}"],
        )
    if cfg.demo.practice_episodes:
        _step(
            6,
            f"practice: {cfg.demo.practice_episodes} episodes in the twin with "
            f"learner.actor={cfg.learner.actor}, before and after on "
            f"{cfg.demo.practice_eval} held-out scenes",
        )
        report["practice"] = practise(cfg, policy_dir / "checkpoint", demos, out / "practice")
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    print(f"report: {out / 'demo.json'}")
    return code


def practise(cfg, checkpoint: Path, demos: Path, out: Path) -> dict:
    """Step 6: the practice loop in process from ``checkpoint``, with the demonstrations as the
    learner's prior; success on the same held-out scenes before and after. Writes
    ``out/practice.json`` and ``out/practice.png``; returns the summary."""
    import shutil

    import numpy as np

    from dojo.collect import make_twin
    from dojo.practice_cmd import _plot
    from episodes.store import EpisodeStore
    from policy.compact import CompactVLAPolicy
    from policy.learner.config import ActorKind, RewardSource
    from policy.learner.learner import make_learner
    from policy.learner.loop import PracticeLoop, evaluate
    from policy.learner.policy import PracticedPolicy
    from policy.models.encoders import TextEncoder

    if out.exists():  # a practice run starts from the trained policy, never from the last run
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t_start = time.monotonic()
    lcfg = conf.section(cfg, "learner")
    base = CompactVLAPolicy.load(checkpoint, TextEncoder())
    store = EpisodeStore.open(str(demos))
    prior = [ep for ep in (store.read(e, verify=False) for e in store.episode_ids()) if ep.success]
    held_out = np.arange(HELD_OUT_SEED0, HELD_OUT_SEED0 + cfg.demo.practice_eval)
    seeds = np.arange(PRACTICE_SEED0, PRACTICE_SEED0 + cfg.demo.practice_episodes)
    critic = None
    if lcfg.reward == RewardSource.critic:
        from critic.registry import load_critic

        critic = load_critic(str(out.parent / "critic"))
    twin = make_twin(conf.robot_spec(cfg), conf.task_config(cfg), conf.twin_config(cfg))
    try:
        before = evaluate(twin, base, held_out)
        _rate("before practice", before)
        learner = make_learner(
            base,
            lcfg,
            fps=store.fps,
            base_source=("compact", str(Path(checkpoint).resolve()), ""),
            critic=critic,
            out=out / "learner",
        )
        learner.ingest(prior)
        distil = lcfg.actor == ActorKind.distil
        if not distil:  # the frozen-feature actors replay the prior first (as the benchmark)
            learner.train(500)
        policy = base if distil else PracticedPolicy(learner.base, learner.net, True)
        loop = PracticeLoop(
            twin,
            learner,
            policy,
            str(out / "practice.zarr"),
            scripted_config=conf.scripted_config(cfg),
            hil=conf.section(cfg, "practice.hil"),
        )
        for i, seed in enumerate(seeds):
            e = loop.episode(i, int(seed))
            s = learner.status
            print(
                f"  practice {i + 1:3d}/{len(seeds)} {'ok  ' if e.success else 'FAIL'} "
                f"success so far {sum(x.success for x in loop.entries)}/{i + 1}, "
                f"human steps {e.human_steps}, learner updates {s.updates}",
                flush=True,
            )
        learner.train(None)
        if learner.ready:
            learner.save()
        final = base if distil else PracticedPolicy(learner.base, learner.net)
        after = evaluate(twin, final, held_out)
        _rate("after practice ", after)
    finally:
        twin.close()
    summary = {
        "episodes": [dict(e.__dict__) for e in loop.entries],
        "held_out_seeds": [int(x) for x in held_out],
        "before": _counts(before),
        "after": _counts(after),
        "learner": learner.status.to_json(),
        "seconds": round(time.monotonic() - t_start, 1),
    }
    (out / "practice.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    _plot(summary, out / "practice.png")
    print(
        f"practice: {summary['learner'].get('updates', 0)} learner updates in "
        f"{summary['seconds']:.0f} s; {out / 'practice.json'}, {out / 'practice.png'}\n"
        f"  (on {len(held_out)} scenes the 95% intervals are wide: bench/practice.py measures "
        "practice on 200 episodes and 50 held-out scenes)"
    )
    return {k: summary[k] for k in ("before", "after", "seconds")}


def _counts(results: list[bool]) -> dict:
    from policy.evaluate import wilson_interval

    k = int(sum(results))
    return {"succeeded": k, "total": len(results), "ci95": list(wilson_interval(k, len(results)))}


def _rate(label: str, results: list[bool]) -> None:
    c = _counts(results)
    lo, hi = c["ci95"]
    print(f"{label}: {c['succeeded']}/{c['total']} held-out scenes (95% CI {lo:.2f}-{hi:.2f})")


class CriticBeside:
    """``dojo train critic`` in a child process beside the policy's training.

    Its output goes to ``<critic_dir>/train.log`` (two progress bars on one terminal would
    garble both); it dies with the demo (``PR_SET_PDEATHSIG``). A failure is reported with the
    log's last line and the demo goes on without the critic, as before."""

    def __init__(self, demos: Path, critic_dir: Path, steps: int) -> None:
        self.demos, self.dir, self.steps = demos, critic_dir, steps
        self.proc: subprocess.Popen | None = None
        self.seconds = 0.0
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        if (self.dir / "critic.json").exists():
            print(f"{self.dir}: already trained; reusing it")
            return
        from dojo.supervisor import _die_with_parent

        self.dir.mkdir(parents=True, exist_ok=True)
        self.log = self.dir / "train.log"
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [sys.executable, "-m", "dojo.cli", "train", "critic"]
        cmd += [f"store={self.demos}", f"out={self.dir}", f"critic_train.steps={self.steps}"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent
            )
        print(f"training the critic beside it ({self.steps} steps; log: {self.log})")

    def wait(self) -> int:
        if self.proc is None:
            return 0 if (self.dir / "critic.json").exists() else 2
        if self.proc.poll() is None:
            print("waiting for the critic to finish ...", flush=True)
        code = self.proc.wait()
        self.seconds = time.monotonic() - self._t0
        if code != 0:
            lines = self.log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            print(
                f"dojo demo: critic: exit {code}: {lines[-1]}; continuing without it "
                f"(log: {self.log})",
                file=sys.stderr,
            )
            return code
        print(f"critic trained in {self.seconds:.0f} s")
        return 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _optional(what: str, step, overrides: list[str]) -> int:
    """Run an optional step (the critic, its curves): bad input there is reported on one line
    and the demo goes on without it."""
    from dojo.commands import is_user_error, one_line

    try:
        return step(overrides)
    except Exception as err:
        if not is_user_error(err):
            raise
        print(f"dojo demo: {what}: {one_line(err)}; continuing without it", file=sys.stderr)
        return 2
