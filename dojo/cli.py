"""``dojo``: the command line of vla-dojo.

    dojo run [key=value ...]     start the node graph (e.g. robot=sim_panda task=push duration=30)
    dojo record store=S [...]    run the graph and record every episode to the store S; with a
                                 person: intervention.enabled=true intervention.device=keyboard
    dojo collect store=S [...]   scripted episodes in the twin straight into S (no ROS; fast)
    dojo train policy store=S out=DIR  fine-tune the compact VLA on the demos in S
    dojo eval policy checkpoint=DIR    success rate in the twin, 95% CI, failure videos
    dojo train critic store=S out=DIR  train the progress critic on the episodes in S
    dojo eval critic critic=DIR store=S  VOC, sign accuracy, rejection, done F1, curves
    dojo critic relabel|audit|curves ... rewards per episode, outcome audit, progress plots
    dojo episodes CMD STORE ...  ls | show | repair | export | import | view
    dojo hw find-cameras | find-port | check robot=... [key=value ...]
                                 list cameras and motor-bus ports; connect and check a robot
    dojo demo [key=value ...]    demos in the twin, fine-tune the VLA, run it through the graph
    dojo config [key=value ...]  print the resolved config
    dojo graph [key=value ...]   print the nodes and the command line of each

Overrides are hydra's ``key=value``; presets live in ``dojo/conf/<group>/``. A bad value fails
before any node starts, naming the key (and the nearest valid name for a typo).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from dojo import conf

log = logging.getLogger("dojo")


def _load(overrides: list[str]):
    try:
        return conf.load(overrides)
    except conf.ConfigError as err:
        print(f"dojo: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_config(overrides: list[str]) -> int:
    print(conf.to_yaml(_load(overrides)), end="")
    return 0


def cmd_graph(overrides: list[str]) -> int:
    from dojo import graph

    cfg = _load(overrides)
    for node in graph.build(cfg, Path(cfg.out) / "config.yaml"):
        print(f"{node.name}: {' '.join(node.command(cfg.ros.namespace, cfg.ros.log_level))}")
    return 0


def cmd_run(overrides: list[str]) -> int:
    from dojo import graph
    from dojo.ros.env import node_env
    from dojo.supervisor import Supervisor

    cfg = _load(overrides)
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg.out = str(out)
    config_file = out / "config.yaml"
    config_file.write_text(conf.to_yaml(cfg))
    domain = cfg.ros.domain_id if cfg.ros.domain_id >= 0 else None
    env = node_env(domain)
    env.setdefault("MUJOCO_GL", "egl")
    nodes = graph.build(cfg, config_file)
    readers = [n.name for n in nodes if n.terminal]
    relay = None
    if readers:  # a node reads the person's keys: relayed from this terminal (dojo/console/)
        from dojo.console.keys import KeyRelay, TerminalError

        relay = KeyRelay(0)
        try:
            relay.check()
        except TerminalError as err:
            print(f"dojo run: {err}", file=sys.stderr)
            return 2
    print(
        f"dojo run: robot={cfg.robot.name} task={cfg.task.name} clock={cfg.sim.clock} "
        f"episodes={cfg.episodes} domain={env.get('ROS_DOMAIN_ID', '0')} out={out}",
        flush=True,
    )
    with relay or contextlib.nullcontext():  # the terminal is restored after the nodes stop
        stdin = {name: relay.slave_fd for name in readers} if relay else None
        supervisor = Supervisor(
            nodes, env, namespace=cfg.ros.namespace, log_level=cfg.ros.log_level, stdin=stdin
        )
        supervisor.start()
        try:
            outcome = supervisor.wait()
        finally:
            supervisor.stop()
    print(f"dojo run: {outcome.reason}", flush=True)
    return outcome.code


def cmd_demo(overrides: list[str]) -> int:
    """Demonstrations, fine-tuning, and the policy through the graph (dojo/demo.py)."""
    from dojo import demo

    return demo.run(overrides, cmd_run)


def cmd_record(overrides: list[str]) -> int:
    """``dojo run`` with a store: the recorder joins the graph and every episode is kept."""
    if not any(o.startswith("store=") for o in overrides):
        print("dojo record: say where to record, e.g. store=demos.zarr", file=sys.stderr)
        return 2
    store = next(o.split("=", 1)[1] for o in overrides if o.startswith("store="))
    code = cmd_run(overrides)
    try:
        from episodes.store import EpisodeStore

        print(f"{store}: {len(EpisodeStore.open(store).episode_ids())} committed episodes")
    except Exception as err:  # the run's own outcome is what matters; this is a summary
        print(f"{store}: could not be summarised ({err})")
    return code


def cmd_collect(overrides: list[str]) -> int:
    """Scripted episodes in the twin straight into a store, in process (dojo/collect.py)."""
    from dojo.collect import collect, make_twin

    logging.getLogger().setLevel(logging.WARNING)  # one progress line, not a log per episode
    cfg = _load(overrides)
    if not cfg.store:
        print("dojo collect: say where to write, e.g. store=demos.zarr", file=sys.stderr)
        return 2
    spec = conf.robot_spec(cfg)
    twin = make_twin(spec, conf.task_config(cfg), cfg.sim.physics_dt, cfg.sim)
    try:
        summary = collect(
            cfg.store,
            twin,
            conf.scripted_config(cfg),
            episodes=cfg.episodes,
            seed=cfg.seed,
            fps=cfg.recorder.fps,
        )
    finally:
        twin.close()
    print(
        f"{cfg.store}: {summary.episodes} episodes recorded, {summary.succeeded} succeeded, "
        f"{summary.sim_seconds:.0f} s of sim time in {summary.seconds:.0f} s"
    )
    return 0


def cmd_episodes(argv: list[str]) -> int:
    from dojo import episodes_cmd

    return episodes_cmd.main(argv)


COMMANDS = {
    "run": cmd_run,
    "record": cmd_record,
    "collect": cmd_collect,
    "demo": cmd_demo,
    "config": cmd_config,
    "graph": cmd_graph,
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["episodes"]:  # its own argparse, with subcommands and flags
        raise SystemExit(cmd_episodes(argv[1:]))
    if argv[:1] == ["hw"]:  # hardware discovery and checks: its own argparse
        from dojo import hw

        raise SystemExit(hw.main(argv[1:]))
    if argv[:2] in (["train", "critic"], ["eval", "critic"]) or argv[:1] == ["critic"]:
        from dojo import critic_cmd  # offline critic tools: key=value checked by critic_cmd

        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        raise SystemExit(critic_cmd.dispatch(argv))
    if argv[:1] in (["train"], ["eval"]) and argv[1:2] != ["critic"]:
        from dojo import policy_cmd

        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        os.environ.setdefault("MUJOCO_GL", "egl")
        raise SystemExit(policy_cmd.main(argv))
    parser = argparse.ArgumentParser(
        prog="dojo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=sorted([*COMMANDS, "episodes", "hw"]))
    parser.add_argument("overrides", nargs="*", help="hydra key=value overrides")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    os.environ.setdefault("MUJOCO_GL", "egl")
    raise SystemExit(COMMANDS[args.command](args.overrides))


if __name__ == "__main__":
    main()
