"""The node graph, derived from the config. The single source for ``dojo run`` and ``launch/``.

Each entry says which module runs as the node, under what name, with which parameters, and
what its exit means to the run. ``dojo run`` turns entries into processes; a launch file turns
the same entries into ``launch_ros`` ``Node`` actions. Neither decides anything on its own, so
the two cannot drift apart.

The launch files do not import this module: ``ros2 launch`` may run under another Python than
the one vla-dojo is installed in (apt's ``ros2`` runs the system Python). They run
``python -m dojo.graph name=value ...`` with the installation's own Python instead, which
composes the config from the launch arguments (:func:`launch_overrides`), checks it, writes it
and prints the plan as JSON (:func:`plan`): the nodes in order, each one's ROS arguments,
executable and role, and the environment. Every node's command line is the one ``launch_ros``
builds from the same fields (executable, ``--ros-args`` + ROS arguments, then the name and the
namespace), so ``dojo graph`` and ``ros2 launch`` print the same lines; the one difference is
the driver's ``autostart``, false under a launch file, whose lifecycle events configure and
activate it.

tf comes from ROS's own ``robot_state_publisher`` (joint_states + the URDF -> tf): no wheel
here carries ``tf2_msgs``, so it runs where ROS is installed. :func:`build` adds it when the
ament index on ``AMENT_PREFIX_PATH`` has it (:func:`find_ros_executable`) and the robot has an
MJCF to write the URDF from, and otherwise says in one line why there is no tf
(:func:`tf_note`). It runs through ``dojo.nodes.robot_state_publisher``, which writes the URDF
and execs it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from dojo.ros.env import node_env

log = logging.getLogger("dojo.graph")


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    ``required``: if it dies, the run has failed and everything stops.
    ``finishes_run``: when it exits cleanly, the run is over (the episode runner).
    ``stop_first``: stopped before the others on shutdown (the driver, so the arm holds while
    its command sources are still alive).
    ``terminal``: reads the person's keys on its standard input (the keyboard device);
    ``dojo run`` gives it a pseudo-terminal fed from its own terminal (``dojo.console.keys``).
    ``console``: the person's side of the graph (the keyboard device and the operator console
    that shows them their episodes). ``dojo run`` starts it with the rest; a launch file does
    not, because ``ros2 launch`` has no terminal to give it: the person runs ``dojo console``
    in a terminal of their own, which starts these nodes there and joins the launched graph.
    """

    name: str
    module: str
    parameters: dict[str, Any] = field(default_factory=dict)
    required: bool = True
    finishes_run: bool = False
    stop_first: bool = False
    terminal: bool = False
    console: bool = False
    lifecycle: bool = False

    @property
    def executable(self) -> str:
        """The installed ``lib/vla_dojo/<executable>`` shim that runs :attr:`module`."""
        return self.module.rsplit(".", 1)[-1]

    def ros_arguments(self, log_level: str = "info") -> list[str]:
        """Parameters and log level, as ``launch_ros`` ``Node(ros_arguments=...)`` takes them."""
        args = []
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={_param(value)}"]
        return [*args, "--log-level", log_level]

    def command(self, namespace: str = "", log_level: str = "info") -> list[str]:
        """The process command line, ``python -m module`` then the ROS arguments laid out as
        ``launch_ros`` lays them out for a ``Node`` with a name and a namespace."""
        args = [sys.executable, "-m", self.module, "--ros-args", *self.ros_arguments(log_level)]
        args += ["--ros-args", "-r", f"__node:={self.name}"]
        return [*args, "-r", f"__ns:={absolute_namespace(namespace)}"]


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def absolute_namespace(namespace: str) -> str:
    """``arm1`` -> ``/arm1``; empty -> ``/`` (the root, written out as launch_ros does)."""
    return f"/{namespace.strip('/')}"


def build(cfg: DictConfig, config_file: Path, *, managed: bool = False) -> list[NodeSpec]:
    """The nodes this config runs, in start order. ``config_file`` is the resolved config every
    node reads. ``managed``: a lifecycle manager (a launch file) configures and activates the
    driver, so it does not start itself."""
    sim = cfg.robot.driver == "sim"
    common = {"config_file": str(config_file), "use_sim_time": sim}
    nodes = [
        NodeSpec(
            name="robot_driver",
            module="dojo.nodes.robot_driver",
            # the twin is the clock source: its own stamps come from physics, not /clock
            parameters={**common, "use_sim_time": False, "autostart": not managed},
            stop_first=True,
            lifecycle=True,
        ),
    ]
    # one node per real camera; real cameras run on system time even next to the twin
    nodes += [
        NodeSpec(
            name=f"camera_{dev.name}",
            module="dojo.nodes.camera",
            parameters={**common, "use_sim_time": False, "camera": dev.name},
        )
        for dev in (cfg.camera.devices if "camera" in cfg and cfg.camera is not None else [])
    ]
    if cfg.policy.checkpoint:  # the policy drives; a person (or the scripted one) may take over
        nodes.append(NodeSpec(name="policy", module="dojo.nodes.policy", parameters=common))
    elif cfg.teleop.name == "scripted" and sim:  # it plans on the twin's ground truth
        nodes.append(
            NodeSpec(
                name="scripted_operator", module="dojo.nodes.scripted_operator", parameters=common
            )
        )
    person = cfg.intervention.enabled and cfg.intervention.device != "scripted"
    keyboard = cfg.intervention.enabled and cfg.intervention.device == "keyboard"
    if cfg.intervention.enabled:
        nodes.append(
            NodeSpec(
                name="intervention",
                module="dojo.nodes.intervention",
                parameters=common,
                terminal=keyboard,
                console=keyboard,
            )
        )
    if cfg.store:
        nodes.append(NodeSpec(name="recorder", module="dojo.nodes.recorder", parameters=common))
    practice = cfg.get("practice")
    if practice is not None and practice.enabled:  # learns from the store the recorder fills
        nodes.append(NodeSpec(name="learner", module="dojo.nodes.learner", parameters=common))
    critic = cfg.get("critic")
    if critic is not None and (critic.enabled or critic.checkpoint):
        # monitoring only: a critic that dies costs the live progress, not the run
        nodes.append(
            NodeSpec(name="critic", module="dojo.nodes.critic", parameters=common, required=False)
        )
    if person:  # the person ends each episode and resets the scene: the console, not a timer
        nodes.append(
            NodeSpec(
                name="operator_console",
                module="dojo.nodes.operator_console",
                parameters=common,
                finishes_run=True,
                console=keyboard,  # the keys' terminal is where the person reads their status
            )
        )
    elif sim:
        nodes.append(
            NodeSpec(
                name="episode_runner",
                module="dojo.nodes.episode_runner",
                parameters=common,
                finishes_run=True,
            )
        )
    note = tf_note(cfg)
    if note:
        log.info(note)
    else:  # after the driver, whose joint_states it turns into tf: monitoring, not required
        namespace = str(cfg.ros.namespace).strip("/")
        parameters = {**common, **({"frame_prefix": f"{namespace}/"} if namespace else {})}
        nodes.insert(
            1,
            NodeSpec(
                name=ROBOT_STATE_PUBLISHER,
                module="dojo.nodes.robot_state_publisher",
                parameters=parameters,
                required=False,
            ),
        )
    return nodes


# -- tf: ROS's robot_state_publisher, where ROS is installed ----------------------------------

ROBOT_STATE_PUBLISHER = "robot_state_publisher"
"""The ROS package and executable that turns joint_states and the URDF into tf."""


def find_ros_executable(package: str, executable: str, prefixes: str | None = None) -> Path | None:
    """``<prefix>/lib/<package>/<executable>`` as ``ros2 run`` finds it: the first prefix on
    ``AMENT_PREFIX_PATH`` (or ``prefixes``, same form) whose ament index lists ``package`` and
    that has the executable; None when none has it."""
    prefixes = os.environ.get("AMENT_PREFIX_PATH", "") if prefixes is None else prefixes
    for prefix in filter(None, prefixes.split(os.pathsep)):
        root = Path(prefix)
        if not (root / "share/ament_index/resource_index/packages" / package).is_file():
            continue
        program = root / "lib" / package / executable
        if program.is_file() and os.access(program, os.X_OK):
            return program
    return None


def tf_note(cfg: DictConfig) -> str:
    """Why this graph has no robot_state_publisher (so no tf), in one line; "" when it has."""
    model = str(cfg.robot.model)
    if model.startswith("dh:"):
        return f"no tf: robot model '{model}' is a DH table, no URDF to publish tf from"
    if find_ros_executable(ROBOT_STATE_PUBLISHER, ROBOT_STATE_PUBLISHER) is None:
        return (
            "no tf: robot_state_publisher is not on AMENT_PREFIX_PATH (source a ROS install "
            "to get it: apt install ros-$ROS_DISTRO-robot-state-publisher); robot_description "
            "is published all the same"
        )
    return ""


# -- for the launch files ---------------------------------------------------------------------

LAUNCH_ALIASES = {
    "namespace": "ros.namespace",
    "domain_id": "ros.domain_id",
    "log_level": "ros.log_level",
}
"""Launch arguments that are short for a key (``namespace:=arm1``)."""

OVERRIDES_ARGUMENT = "overrides"
"""The launch argument that takes hydra overrides as they are: ``overrides:="a=1 b=2"``."""

_ROS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class LaunchArgumentError(ValueError):
    """A launch argument that names no key, or a value no graph can start with."""


def _as_key(name: str) -> str:
    """The config key a launch argument names: itself, an alias, or the first reading of its
    underscores as dots that is a key (``policy_checkpoint`` -> ``policy.checkpoint``)."""
    from dojo.conf.compose import _check_path

    if name in LAUNCH_ALIASES:
        return LAUNCH_ALIASES[name]
    try:
        _check_path(name)
        return name
    except ValueError as first_error:
        cuts = [i for i, c in enumerate(name) if c == "_"]
        for i in cuts:
            candidate = f"{name[:i]}.{name[i + 1 :]}"
            try:
                return _as_key(candidate)
            except ValueError:
                continue
        raise LaunchArgumentError(f"launch argument '{name}:=': {first_error}") from None


def launch_overrides(arguments: dict[str, str]) -> list[str]:
    """Hydra overrides from launch arguments: ``name:=value`` -> ``key=value`` (an empty value
    is a launch argument left at its default, so it sets nothing), plus ``overrides:=``."""
    out: list[str] = []
    for name, value in arguments.items():
        if name == OVERRIDES_ARGUMENT:
            out += shlex.split(value)
        elif value != "":
            out.append(f"{_as_key(name)}={value}")
    return out


def check_startable(cfg: DictConfig) -> None:
    """What would fail only once nodes run, refused before any starts (one line, naming the
    key): a namespace that is not a ROS name, a checkpoint path that does not exist."""
    namespace = str(cfg.ros.namespace).strip("/")
    if namespace and not all(
        _ROS_NAME.fullmatch(part) and "__" not in part for part in namespace.split("/")
    ):
        raise LaunchArgumentError(
            f"config 'ros.namespace': {cfg.ros.namespace!r} is not a ROS namespace "
            "(letters, digits and _ in /-separated parts, none starting with a digit, no __)"
        )
    for section in ("policy", "critic"):
        part = cfg.get(section)
        checkpoint = str(part.checkpoint) if part is not None else ""
        if not checkpoint or checkpoint.startswith("vlm:"):
            continue
        local_only = part.backend == "compact"  # other backends also take a hub id
        looks_like_path = checkpoint.startswith(("/", ".", "~"))
        if (local_only or looks_like_path) and not Path(checkpoint).expanduser().exists():
            raise LaunchArgumentError(f"config '{section}.checkpoint': {checkpoint} does not exist")


def environment(cfg: DictConfig) -> dict[str, str]:
    """What a node's environment adds to the one it inherits: the middleware, the Fast DDS
    profile, the domain (``dojo.ros.env.node_env``) and headless rendering."""
    domain = cfg.ros.domain_id if cfg.ros.domain_id >= 0 else None
    env = node_env(domain, base={})
    env.setdefault("MUJOCO_GL", "egl")
    return env


def plan(overrides: list[str], *, command: str = "launch", managed: bool = True) -> dict:
    """Compose and check the config, write it to ``out/config.yaml``, and return the graph as
    plain data: what a launch file needs to start exactly what ``dojo run`` starts."""
    from dojo import conf
    from dojo.cli import commands
    from dojo.commands import GRAPH_READS, Command

    # the keys of the dojo command this launch file stands for (run, record, practice ...)
    reads = getattr(commands().get(command), "reads", GRAPH_READS) or GRAPH_READS
    cfg = Command(command, lambda _argv: 0, reads).load(overrides)
    conf.robot_spec(cfg)  # a robot preset without limits is refused here, before any node
    check_startable(cfg)
    out = Path(cfg.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg.out = str(out)
    config_file = out / "config.yaml"
    config_file.write_text(conf.to_yaml(cfg))
    nodes = build(cfg, config_file, managed=managed)
    namespace, log_level = str(cfg.ros.namespace), str(cfg.ros.log_level)
    return {
        "config_file": str(config_file),
        "notes": [note] if (note := tf_note(cfg)) else [],
        "namespace": absolute_namespace(namespace),
        "environment": environment(cfg),
        "nodes": [
            {
                **asdict(n),
                "executable": n.executable,
                "ros_arguments": n.ros_arguments(log_level),
                "command": n.command(namespace, log_level),
            }
            for n in nodes
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m dojo.graph [--command NAME] name=value ...``: the plan as JSON on stdout.

    Arguments are launch arguments (``policy_checkpoint=...``, ``namespace=arm1``,
    ``overrides=a=1 b=2``). Bad input: one line on stderr, exit status 2, before any node."""
    from dojo.commands import is_user_error, one_line

    argv = sys.argv[1:] if argv is None else argv
    command = "launch"
    if argv[:1] == ["--command"]:
        command, argv = argv[1], argv[2:]
    arguments = {}
    for item in argv:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"dojo {command}: argument {item!r} is not name=value", file=sys.stderr)
            return 2
        arguments[name] = value
    try:
        result = plan(launch_overrides(arguments), command=command)
    except Exception as err:
        if not (isinstance(err, LaunchArgumentError) or is_user_error(err)):
            raise
        print(f"dojo {command}: {one_line(err)}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
