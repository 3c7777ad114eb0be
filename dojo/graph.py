"""The node graph, derived from the config. The single source for ``dojo run`` and ``launch/``.

Each entry says which module runs as the node, under what name, with which parameters, and
what its exit means to the run. ``dojo run`` turns entries into processes; a launch file turns
the same entries into ``launch_ros`` ``Node`` actions. Neither decides anything on its own, so
the two cannot drift apart.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph.

    ``required``: if it dies, the run has failed and everything stops.
    ``finishes_run``: when it exits cleanly, the run is over (the episode runner).
    ``stop_first``: stopped before the others on shutdown (the driver, so the arm holds while
    its command sources are still alive).
    ``terminal``: reads the person's keys on its standard input (the keyboard device);
    ``dojo run`` gives it a pseudo-terminal fed from its own terminal (``dojo.console.keys``).
    """

    name: str
    module: str
    parameters: dict[str, Any] = field(default_factory=dict)
    required: bool = True
    finishes_run: bool = False
    stop_first: bool = False
    terminal: bool = False

    def command(self, namespace: str = "", log_level: str = "info") -> list[str]:
        """The process command line: ``python -m module --ros-args ...``."""
        args = [sys.executable, "-m", self.module, "--ros-args", "-r", f"__node:={self.name}"]
        if namespace:
            args += ["-r", f"__ns:=/{namespace.strip('/')}"]
        for key, value in self.parameters.items():
            args += ["-p", f"{key}:={_param(value)}"]
        args += ["--log-level", log_level]
        return args


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def build(cfg: DictConfig, config_file: Path) -> list[NodeSpec]:
    """The nodes this config runs. ``config_file`` is the resolved config every node reads."""
    sim = cfg.robot.driver == "sim"
    common = {"config_file": str(config_file), "use_sim_time": sim}
    nodes = [
        NodeSpec(
            name="robot_driver",
            module="dojo.nodes.robot_driver",
            # the twin is the clock source: its own stamps come from physics, not /clock
            parameters={**common, "use_sim_time": False, "autostart": True},
            stop_first=True,
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
    if cfg.intervention.enabled:
        nodes.append(
            NodeSpec(
                name="intervention",
                module="dojo.nodes.intervention",
                parameters=common,
                terminal=cfg.intervention.device == "keyboard",
            )
        )
    if cfg.store:
        nodes.append(NodeSpec(name="recorder", module="dojo.nodes.recorder", parameters=common))
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
    return nodes
