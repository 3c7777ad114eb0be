"""What every vla-dojo launch file shares: the graph of ``dojo/graph.py`` as launch actions.

Installed next to the launch files (``share/vla_dojo/launch/``); they import it from there. It
imports only ``launch``, ``launch_ros`` and the standard library, because ``ros2 launch`` may
run under a Python that cannot import vla-dojo (apt's ``ros2`` runs the system Python, the
project lives in a venv). The graph itself comes from the installation's own Python:
``python -m dojo.graph --command CMD name=value ...`` composes the config from the launch
arguments, refuses bad input in one line before any node starts, writes the resolved config
and prints the plan (``dojo.graph.plan``): nodes in order, their ROS arguments, roles and
environment. Each node runs as ``python -m <module>`` with exactly the command line
``dojo run`` gives it; only the driver's ``autostart`` differs, because here the launch file
drives its lifecycle:

- configure when its process has started, activate when it reaches ``inactive`` (lifecycle
  events, no sleeps); a driver that refuses to configure ends the launch;
- on a shutdown the launch itself starts (a node died, the episodes are done), the driver is
  deactivated first, so the arm holds while its command sources are still alive, then every
  process gets SIGINT. On Ctrl-C the terminal sends SIGINT to every process at once and the
  driver holds on its own way down (``dojo.nodes.robot_driver.close``).
- a node that dies ends the launch, naming it and its exit code, as ``dojo run`` does; a node
  that finishes the run (the episode runner) ends it cleanly.

tf: the plan includes ROS's ``robot_state_publisher`` when the ament index has it (a workstation
with ROS installed); when not, the plan's one-line note says so and the launch goes on without
tf (``robot_description`` is published by the driver either way).

A person at the keyboard (``intervention.device=keyboard``) needs a terminal, which
``ros2 launch`` does not have to give: its output is every node's log, its standard input is
not theirs, and a Ctrl-C in it reaches every process at once. So the person's side of the graph
(the nodes ``dojo.graph`` marks ``console``: the keyboard device and the operator console) is
not started here. The launch says, in one line, what to run in a terminal of the person's own
(a second ssh session, a tmux pane)::

    dojo console out=<the run directory>

which starts those nodes there, exactly as ``dojo run`` would (the keys relayed through a
pseudo-terminal, the terminal restored at the end, every node dying with it), on the config
this launch wrote. Why not ``prefix="xterm -e"``: it needs a display, and the node's parent
would be the terminal emulator, which outlives a crashed launch, leaving a process that can
still publish ``command/teleop``. The launch ends when the person's console leaves the graph
(its episodes done, or the person stopped it), as ``dojo record`` ends with its console: the
driver is deactivated first, then the rest stop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.event_handlers import OnProcessExit, OnProcessStart, OnShutdown
from launch.events import Shutdown, matches_action
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

PLAN_TIMEOUT_S = 120.0
DEACTIVATE_TIMEOUT_S = 2.0

COMMON_ARGUMENTS = {
    "robot": "robot preset (robot=...): sim_so101, so101, sim_panda, ...",
    "task": "task preset (task=...)",
    "namespace": "ROS namespace of this robot's graph (ros.namespace=)",
    "domain_id": "ROS domain (ros.domain_id=); -1 or empty: ROS_DOMAIN_ID",
    "policy_checkpoint": "policy checkpoint directory (policy.checkpoint=)",
    "critic_checkpoint": "critic checkpoint directory (critic.checkpoint=)",
    "out": "run directory: the resolved config, reports (out=)",
    "overrides": 'hydra overrides as they are, e.g. overrides:="episodes=5 sim.clock=lockstep"',
}
"""Launch arguments every file declares, so ``ros2 launch -s`` lists them. Any other
``name:=value`` is taken as a config key too: ``sim.clock:=lockstep``, or with underscores,
``driver_status_hz:=5`` (``driver.status_hz``)."""

CONSOLE_POLL_S = 0.5
"""Wall seconds between looks for the person's console on the graph."""


def installation_python() -> str:
    """The Python vla-dojo is installed in: ``<prefix>/bin/python`` when this file is
    ``<prefix>/share/vla_dojo/launch/``; ``VLA_DOJO_PYTHON`` if set; else this Python (a launch
    file run from the source tree by the project's own ``ros2``)."""
    if os.environ.get("VLA_DOJO_PYTHON"):
        return os.environ["VLA_DOJO_PYTHON"]
    here = Path(os.path.abspath(__file__)).parent  # not resolved: the installed place counts
    if here.parts[-3:] == ("share", "vla_dojo", "launch"):
        candidate = here.parents[2] / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return sys.executable


def graph_plan(command: str, arguments: dict[str, str], python: str | None = None) -> dict:
    """The plan ``dojo.graph`` prints for these launch arguments; ``RuntimeError`` with its
    one-line reason for bad input (nothing has started then)."""
    python = python or installation_python()
    argv = [python, "-m", "dojo.graph", "--command", command]
    argv += [f"{k}={v}" for k, v in arguments.items()]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=PLAN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"dojo.graph did not answer within {PLAN_TIMEOUT_S:.0f} s") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        raise RuntimeError(lines[-1] if lines else f"dojo.graph exited {proc.returncode}")
    return json.loads(proc.stdout)


def generate(
    command: str,
    *,
    required: dict[str, str] | None = None,
    modules: tuple[str, ...] | None = None,
) -> LaunchDescription:
    """The launch description of ``dojo <command>``'s graph. ``required``: launch arguments
    without a default (``store`` for recording); ``modules``: start only these node modules
    (the cameras alone)."""
    declared = [
        DeclareLaunchArgument(name, default_value="", description=text)
        for name, text in COMMON_ARGUMENTS.items()
        if name not in (required or {})
    ]
    declared += [
        DeclareLaunchArgument(name, description=text) for name, text in (required or {}).items()
    ]
    start = OpaqueFunction(function=_graph_actions, args=[command, modules])
    return LaunchDescription([*declared, start])


def _graph_actions(context, command: str, modules: tuple[str, ...] | None):
    arguments = dict(context.launch_configurations)
    plan = graph_plan(command, arguments)
    python = installation_python()
    actions: list = [SetEnvironmentVariable(k, v) for k, v in plan["environment"].items()]
    actions += [LogInfo(msg=f"[vla_dojo] {note}") for note in plan.get("notes", [])]
    namespace = plan["namespace"]
    driver = None
    nodes = []
    console = []
    for spec in plan["nodes"]:
        if modules is not None and spec["module"] not in modules:
            continue
        if spec["console"]:  # the person's terminal: ``dojo console`` starts it there
            console.append(spec)
            continue
        kwargs = {
            "executable": python,
            "arguments": ["-m", spec["module"]],
            "name": spec["name"],
            "exec_name": spec["name"],
            "namespace": namespace,
            "ros_arguments": spec["ros_arguments"],
            "output": "screen",
            "sigterm_timeout": "8",  # dojo run's STOP_WAIT_S: SIGINT, then SIGTERM, then SIGKILL
        }
        node = LifecycleNode(**kwargs) if spec["lifecycle"] else Node(**kwargs)
        nodes.append(node)
        actions.append(node)
        exits = OnProcessExit(target_action=node, on_exit=_on_exit(spec))
        actions.append(RegisterEventHandler(exits))
        if spec["lifecycle"]:
            driver = node
    if driver is not None:
        actions += _lifecycle(driver)
    if console:
        actions += _await_console(plan, [spec["name"] for spec in console])
    return actions


def console_command(plan: dict) -> str:
    """What the person runs in a terminal of their own to join this graph (``dojo console``),
    with the domain when it comes from this launch's environment rather than the config."""
    words = ["dojo", "console", f"out={Path(plan['config_file']).parent}"]
    domain = plan["environment"].get("ROS_DOMAIN_ID") or os.environ.get("ROS_DOMAIN_ID")
    if domain and "ROS_DOMAIN_ID" not in plan["environment"]:
        words.append(f"ros.domain_id={domain}")
    return " ".join(words)


def _await_console(plan: dict, names: list[str]) -> list:
    """Say how to start the person's side; end the launch once it has joined and left."""
    text = (
        f"[vla_dojo] the person's keyboard and console ({', '.join(names)}) run in a terminal "
        f"of their own: {console_command(plan)}"
    )
    return [LogInfo(msg=text), OpaqueFunction(function=_watch_console, args=[plan["namespace"]])]


def _watch_console(context, namespace: str):
    """Poll the graph for the ``operator_console`` node in this namespace (the launch's own ROS
    node, its executor thread); once seen and then gone, shut the launch down as ``dojo
    record`` does when its console finishes."""
    from launch_ros.ros_adapters import get_ros_node

    node = get_ros_node(context)
    state = {"seen": False}
    loop = context.asyncio_loop

    def poll() -> None:
        present = ("operator_console", namespace) in node.get_node_names_and_namespaces()
        if present and not state["seen"]:
            state["seen"] = True
            print("[vla_dojo] the person's console has joined", flush=True)
        elif state["seen"] and not present:
            timer.cancel()
            reason = "the person's console (dojo console) has left the graph"
            print(f"[vla_dojo] {reason}: stopping", flush=True)
            loop.call_soon_threadsafe(context.emit_event_sync, Shutdown(reason=reason))

    timer = node.create_timer(CONSOLE_POLL_S, poll)
    return None


def _on_exit(spec: dict):
    """What a node's exit means to the run (``dojo.supervisor.Supervisor.wait``'s rules)."""

    def handle(event, context):
        if context.is_shutdown:  # stopping anyway: an exit now is the answer to our SIGINT
            return None
        code = event.returncode
        if spec["finishes_run"] and code == 0:
            return [EmitEvent(event=Shutdown(reason=f"{spec['name']} finished"))]
        if spec["required"] or code != 0:
            reason = f"node '{spec['name']}' died (exit code {code})"
            return [EmitEvent(event=Shutdown(reason=reason))]
        return None

    return handle


def _lifecycle(driver: LifecycleNode) -> list:
    """Configure the driver once it runs, activate it once configured; a refusal ends the
    launch; deactivate it first when the launch shuts down."""
    state = {"active": False}

    def transition(transition_id: int) -> EmitEvent:
        return EmitEvent(
            event=ChangeState(
                lifecycle_node_matcher=matches_action(driver), transition_id=transition_id
            )
        )

    def on_active(_event, _context):
        state["active"] = True

    def on_refused(event, _context):
        return [
            EmitEvent(
                event=Shutdown(reason="robot_driver refused to configure (see its log above)")
            )
        ]

    def on_shutdown(event, context):
        if not state["active"] or event.due_to_sigint:  # Ctrl-C: it holds on its own way down
            return None
        _deactivate_now(context, driver)
        state["active"] = False
        return None

    return [
        RegisterEventHandler(
            OnProcessStart(
                target_action=driver, on_start=[transition(Transition.TRANSITION_CONFIGURE)]
            )
        ),
        RegisterEventHandler(
            OnStateTransition(
                target_lifecycle_node=driver,
                start_state="configuring",
                goal_state="inactive",
                entities=[transition(Transition.TRANSITION_ACTIVATE)],
            )
        ),
        RegisterEventHandler(
            OnStateTransition(
                target_lifecycle_node=driver,
                start_state="configuring",
                goal_state="unconfigured",
                entities=[OpaqueFunction(function=lambda c: on_refused(None, c))],
            )
        ),
        RegisterEventHandler(
            OnStateTransition(
                target_lifecycle_node=driver,
                goal_state="active",
                entities=[OpaqueFunction(function=lambda c: on_active(None, c))],
            )
        ),
        # registered after every node, so it runs before their own shutdown handlers (launch
        # calls the newest first): the driver is deactivated before anyone gets SIGINT
        RegisterEventHandler(OnShutdown(on_shutdown=on_shutdown)),
    ]


def _deactivate_now(context, driver: LifecycleNode) -> bool:
    """Call the driver's ``change_state`` (deactivate) and wait for the answer, bounded: this
    blocks the launch's event loop on purpose, so no SIGINT goes out before the arm holds."""
    from launch_ros.ros_adapters import get_ros_node
    from lifecycle_msgs.srv import ChangeState as ChangeStateSrv

    node = get_ros_node(context)
    client = node.create_client(ChangeStateSrv, f"{driver.node_name}/change_state")
    try:
        if not client.wait_for_service(timeout_sec=DEACTIVATE_TIMEOUT_S):
            return False
        request = ChangeStateSrv.Request()
        request.transition.id = Transition.TRANSITION_DEACTIVATE
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        ok = done.wait(DEACTIVATE_TIMEOUT_S) and bool(future.result().success)
        print(f"[vla_dojo] robot_driver deactivated before shutdown: {ok}", flush=True)
        return ok
    finally:
        node.destroy_client(client)
