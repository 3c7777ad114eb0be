"""``dojo``: the command line of vla-dojo.

    dojo run [key=value ...]     start the node graph (e.g. robot=sim_panda task=push duration=30)
    dojo record store=S [...]    run the graph and record every episode to the store S; with a
                                 person: intervention.enabled=true intervention.device=keyboard
    dojo collect store=S [...]   scripted episodes in the twin straight into S (no ROS; fast)
    dojo train policy store=S out=DIR  fine-tune the compact VLA on the demos in S
    dojo eval policy checkpoint=DIR    success rate in the twin, 95% CI, failure videos
    dojo train critic store=S out=DIR  train the progress critic on the episodes in S
    dojo eval critic checkpoint=DIR store=S  VOC, sign accuracy, rejection, done F1, curves
    dojo critic relabel|audit|curves ... rewards per episode, outcome audit, progress plots
    dojo episodes CMD STORE ...  ls | show | repair | export | import | view
    dojo hw find-cameras | find-port | check robot=... [key=value ...]
                                 list cameras and motor-bus ports; connect and check a robot
    dojo hw urdf robot=... [out=FILE]  the robot's URDF, generated from its MJCF
    dojo calibrate intrinsics|handeye|latency|check camera=NAME [yes=true]
                                 camera calibration in the twin, files in calibration/
    dojo replay STORE [EPISODE ...] [--fail-on warn|fail]  recorded episodes in the twin:
                                 tracking, limits, collisions, a verdict each; replay fit
    dojo practice policy.checkpoint=DIR store=S [hil=graded] [learner.reward=sparse]
                                 the graph with the learner: the policy improves from its episodes
    dojo demo [key=value ...]    demos in the twin, fine-tune the VLA, run it through the graph
    dojo console out=DIR         the person's keyboard and console in this terminal, joining
                                 the graph `ros2 launch vla_dojo record.launch.py` started
    dojo config [key=value ...]  print the resolved config
    dojo graph [key=value ...]   print the nodes and the command line of each

Every command takes hydra's ``key=value`` overrides of one config (``dojo/conf``); presets live
in ``dojo/conf/<group>/``. ``dojo <command> --help`` lists the keys that command reads, with
their types and defaults; a key it does not read is refused. A bad value fails before any node
starts, naming the key (and the nearest valid name for a typo); every error is one line
(DOJO_TRACEBACK=1 shows the traceback of an unexpected one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from dojo import conf
from dojo.commands import GRAPH_READS, TWIN_READS, Command, given, is_user_error, one_line
from robot.registry import did_you_mean

log = logging.getLogger("dojo")


def cmd_config(overrides: list[str]) -> int:
    print(conf.to_yaml(CONFIG.load(overrides)), end="")
    return 0


def cmd_graph(overrides: list[str]) -> int:
    from dojo import graph

    cfg = GRAPH.load(overrides)
    for node in graph.build(cfg, Path(cfg.out) / "config.yaml"):
        print(f"{node.name}: {' '.join(node.command(cfg.ros.namespace, cfg.ros.log_level))}")
    return 0


def cmd_run(overrides: list[str]) -> int:
    from dojo import graph
    from dojo.ros.env import node_env

    cfg = RUN.load(overrides)
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg.out = str(out)
    config_file = out / "config.yaml"
    config_file.write_text(conf.to_yaml(cfg))
    domain = cfg.ros.domain_id if cfg.ros.domain_id >= 0 else None
    env = node_env(domain)
    env.setdefault("MUJOCO_GL", "egl")
    nodes = graph.build(cfg, config_file)
    header = (
        f"robot={cfg.robot.name} task={cfg.task.name} clock={cfg.sim.clock} "
        f"episodes={cfg.episodes} domain={env.get('ROS_DOMAIN_ID', '0')} out={out}"
    )
    return _supervise("run", cfg, nodes, env, header)


def _supervise(command: str, cfg, nodes, env: dict[str, str], header: str) -> int:
    """Start ``nodes`` as processes, the person's keys relayed to the one that reads them,
    until the run is over; the terminal restored after the nodes have stopped."""
    from dojo.supervisor import Supervisor

    readers = [n.name for n in nodes if n.terminal]
    relay = None
    if readers:  # a node reads the person's keys: relayed from this terminal (dojo/console/)
        from dojo.console.keys import KeyRelay, TerminalError

        relay = KeyRelay(0)
        try:
            relay.check()
        except TerminalError as err:
            print(f"dojo {command}: {err}", file=sys.stderr)
            return 2
    print(f"dojo {command}: {header}", flush=True)
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
    print(f"dojo {command}: {outcome.reason}", flush=True)
    return outcome.code


def cmd_console(overrides: list[str]) -> int:
    """The person's side of a graph a launch file started, in this terminal: the nodes
    ``dojo.graph`` marks ``console`` (the keyboard device, the operator console), on the config
    the launch wrote to ``out``, started as ``dojo run`` starts them."""
    from dojo import graph
    from dojo.ros.env import node_env

    given_cfg = CONSOLE.load(overrides)
    out = Path(given_cfg.out).expanduser().resolve()
    config_file = out / "config.yaml"
    if not config_file.is_file():
        print(
            f"dojo console: no graph config at {config_file}: start the graph first "
            "(ros2 launch vla_dojo record.launch.py ... out:=DIR), then dojo console out=DIR",
            file=sys.stderr,
        )
        return 2
    cfg = conf.from_yaml_file(config_file)
    if given(overrides, "ros.domain_id"):
        cfg.ros.domain_id = given_cfg.ros.domain_id
    nodes = [n for n in graph.build(cfg, config_file) if n.console]
    if not nodes:
        print(
            f"dojo console: the graph of {out} has no person at a keyboard "
            f"(intervention.enabled={cfg.intervention.enabled}, "
            f"intervention.device={cfg.intervention.device}): nothing to join",
            file=sys.stderr,
        )
        return 2
    domain = cfg.ros.domain_id if cfg.ros.domain_id >= 0 else None
    env = node_env(domain)
    header = (
        f"joining the graph of {out} (namespace={graph.absolute_namespace(cfg.ros.namespace)} "
        f"domain={env.get('ROS_DOMAIN_ID', '0')}): {', '.join(n.name for n in nodes)}"
    )
    return _supervise("console", cfg, nodes, env, header)


def cmd_demo(overrides: list[str]) -> int:
    """Demonstrations, fine-tuning, and the policy through the graph (dojo/demo.py)."""
    from dojo import demo

    return demo.run(overrides, cmd_run, DEMO)


def cmd_record(overrides: list[str]) -> int:
    """``dojo run`` with a store: the recorder joins the graph and every episode is kept."""
    if not given(overrides, "store"):
        print("dojo record: say where to record, e.g. store=demos.zarr", file=sys.stderr)
        return 2
    store = str(RECORD.load(overrides).store)
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
    cfg = COLLECT.load(overrides)
    if not cfg.store:
        print("dojo collect: say where to write, e.g. store=demos.zarr", file=sys.stderr)
        return 2
    spec = conf.robot_spec(cfg)
    twin = make_twin(spec, conf.task_config(cfg), conf.twin_config(cfg))
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


RUN = Command("run", cmd_run, GRAPH_READS, "Start the node graph.")
RECORD = Command("record", cmd_record, GRAPH_READS, "Run the graph and record every episode.")
COLLECT = Command(
    "collect",
    cmd_collect,
    (*TWIN_READS, "teleop", "recorder", "store", "episodes", "seed"),
    "Scripted episodes in the twin straight into store= (no ROS); episode k uses seed seed+k.",
)
DEMO = Command(
    "demo",
    cmd_demo,
    (*GRAPH_READS, "demo", "train", "learner"),
    "Demonstrations, fine-tuning, the critic, and the policy through the graph.",
)
CONFIG = Command("config", cmd_config, None, "Print the resolved config.")
GRAPH = Command("graph", cmd_graph, GRAPH_READS, "Print the nodes and the command line of each.")
CONSOLE = Command(
    "console",
    cmd_console,
    ("out", "ros"),
    "The person's keyboard and operator console, in this terminal, joining the graph a launch "
    "file started with out=DIR (its config.yaml): dojo console out=DIR [ros.domain_id=N].",
)


def commands() -> dict[str, Command]:
    """Every command by its name (``"train policy"``, ``"critic relabel"``, ``"hw check"``)."""
    from dojo import (
        calibrate_cmd,
        critic_cmd,
        episodes_cmd,
        hw,
        policy_cmd,
        practice_cmd,
        replay_cmd,
    )

    table = [RUN, RECORD, COLLECT, DEMO, CONFIG, GRAPH, CONSOLE]
    table += [*policy_cmd.COMMANDS, *critic_cmd.COMMANDS, *episodes_cmd.COMMANDS, *hw.COMMANDS]
    table += [*calibrate_cmd.COMMANDS, *replay_cmd.COMMANDS, *practice_cmd.COMMANDS]
    return {c.name: c for c in table}


def _find(argv: list[str], table: dict[str, Command]) -> Command:
    """The command ``argv`` starts with; a misspelt one names the nearest."""
    two = " ".join(argv[:2])
    if two in table and len(argv) >= 2:
        return table[two]
    if argv[0] in table:
        return table[argv[0]]
    firsts = {n.split()[0]: [m for m in table if m.split()[0] == n.split()[0]] for n in table}
    if argv[0] in firsts:  # "critic relable": the nearest second word
        seconds = [n.split()[1] for n in firsts[argv[0]]]
        if len(argv) < 2:
            raise UnknownCommand(f"dojo {argv[0]}: give a command ({', '.join(seconds)})")
        raise UnknownCommand(
            f"dojo {argv[0]}: unknown command '{argv[1]}'{did_you_mean(argv[1], seconds)} "
            f"({', '.join(seconds)})"
        )
    raise UnknownCommand(
        f"dojo: unknown command '{argv[0]}'{did_you_mean(argv[0], firsts)} "
        f"(commands: {', '.join(sorted(firsts))}; dojo --help)"
    )


class UnknownCommand(ValueError):
    pass


def main(argv: list[str] | None = None) -> None:
    """Dispatch to the command; exit 0 done, 2 bad input (one line on stderr), 1 unexpected.

    Never a traceback for bad input: a user error of any library (:func:`is_user_error`) is
    its message on one line; anything else is one line too, unless DOJO_TRACEBACK=1."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        raise SystemExit(0 if argv else 2)
    table = commands()
    try:
        command = _find(argv, table)
    except UnknownCommand as err:
        print(err, file=sys.stderr)
        raise SystemExit(2) from None
    rest = argv[len(command.name.split()) :]
    if any(w in ("-h", "--help") for w in rest):
        print(command.help())
        raise SystemExit(0)
    graph_like = command.reads is None or command.reads == GRAPH_READS
    logging.basicConfig(
        level=logging.INFO if graph_like else logging.WARNING, format="%(name)s: %(message)s"
    )
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        code = command.run(rest)
    except KeyboardInterrupt:
        print(f"dojo {command.name}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as err:
        if os.environ.get("DOJO_TRACEBACK"):
            raise
        if is_user_error(err):
            print(f"dojo {command.name}: {one_line(err)}", file=sys.stderr)
            raise SystemExit(2) from None
        print(
            f"dojo {command.name}: failed unexpectedly: {type(err).__name__}: {one_line(err)} "
            "(DOJO_TRACEBACK=1 shows the traceback)",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    raise SystemExit(code)


if __name__ == "__main__":
    main()
