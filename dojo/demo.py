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

Everything lands in ``out`` (default ``runs/demo``): ``demos.zarr``, ``policy/`` (checkpoint,
``training.png``), ``critic/``, ``rollouts.zarr`` (the policy's episodes), ``graph/``
(``episodes.json``, ``contact_sheet.png``), ``critic_curves.png`` and ``demo.json``.

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

DEFAULTS = {"episodes": "5", "out": "runs/demo"}


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
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    print(f"report: {out / 'demo.json'}")
    return code


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
