"""Shared by the twin's tests: robot presets as specs, a toy arm MJCF, seeds by goal.

The toy arm (an "arbitrary MJCF" nobody wrote a preset for), seen from the side::

          z
          |      elbow o------o tip (site), finger slides along y
          |           /
          |     lift o          pan: about z at the base
          |          |
     -----+----------o base (on the table, z = 0)
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

from robot.description import SceneLayout
from robot.schema import RobotSpec
from robot.sim.config import TaskConfig
from robot.sim.tasks import make_task

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ROOT / "dojo" / "conf"


def preset(name: str) -> dict:
    """A robot or task preset as a plain mapping (``robot/sim_so101``, ``task/push``, ...)."""
    data = yaml.safe_load((PRESETS / f"{name}.yaml").read_text())
    data.pop("defaults", None)
    return data


def robot_spec(robot: str) -> RobotSpec:
    """The RobotSpec of ``dojo/conf/robot/sim_<robot>.yaml``."""
    return RobotSpec.from_mapping(preset(f"robot/sim_{robot}"))


TOY_ARM_XML = """
<mujoco model="toy_arm">
  <compiler angle="radian" autolimits="true"/>
  <default><joint damping="0.5" armature="0.01"/></default>
  <worldbody>
    <body name="toy_base">
      <geom type="cylinder" size="0.05 0.03" pos="0 0 0.03" rgba="0.3 0.3 0.35 1"/>
      <body name="toy_link1" pos="0 0 0.06">
        <joint name="pan" axis="0 0 1" range="-2 2"/>
        <geom type="capsule" fromto="0 0 0.03 0 0 0.15" size="0.02" rgba="0.9 0.5 0.1 1"/>
        <body name="toy_link2" pos="0 0 0.15">
          <joint name="lift" axis="0 1 0" range="-1.5 1.5"/>
          <geom type="capsule" fromto="0 0 0 0.2 0 0" size="0.018" rgba="0.9 0.5 0.1 1"/>
          <body name="toy_link3" pos="0.2 0 0">
            <joint name="elbow" axis="0 1 0" range="-2.5 2.5"/>
            <geom type="capsule" fromto="0 0 0 0.15 0 0" size="0.015" rgba="0.9 0.5 0.1 1"/>
            <site name="tip" pos="0.15 0 0"/>
            <body name="toy_finger" pos="0.15 0 0">
              <joint name="gripper" type="slide" axis="0 1 0" range="0 0.03"/>
              <geom type="box" size="0.005 0.005 0.02" rgba="0.2 0.2 0.2 1"/>
            </body>
          </body>
        </body>
      </body>
    </body>
  </worldbody>
  <actuator>
    <position joint="pan" kp="30"/>
    <position joint="lift" kp="30"/>
    <position joint="elbow" kp="30"/>
    <position joint="gripper" kp="50"/>
  </actuator>
</mujoco>
"""

TOY_JOINTS = ("pan", "lift", "elbow", "gripper")


def toy_arm(directory: Path) -> tuple[Path, RobotSpec]:
    """Write the toy arm to ``directory``; return its path and a spec for it."""
    path = directory / "toy_arm.xml"
    path.write_text(TOY_ARM_XML)
    spec = RobotSpec.from_mapping(
        {
            "name": "toy",
            "model": str(path),
            "joint_names": list(TOY_JOINTS),
            "gripper_joint": "gripper",
            "ee_site": "tip",
            "control_hz": 50,
            "home": [0.0, -0.6, 1.2, 0.0],
            "limits": {
                "position_lower": [-1.9, -1.4, -2.4, 0.0],
                "position_upper": [1.9, 1.4, 2.4, 0.03],
                "velocity": [2.0, 2.0, 2.0, 0.1],
                "acceleration": [10.0, 10.0, 10.0, 1.0],
                "max_step": [0.06, 0.06, 0.06, 0.003],
            },
            "workspace": {"lower": [-0.6, -0.6, -0.1], "upper": [0.6, 0.6, 0.7]},
            "cameras": [
                {"name": "front", "width": 160, "height": 120, "fps": 15},
                {"name": "wrist", "width": 96, "height": 64, "fps": 15},
            ],
        }
    )
    return path, spec


def seeds_by_goal(task: TaskConfig, layout: SceneLayout, n: int = 200) -> dict[tuple, list[int]]:
    """Seeds grouped by the goal they draw: ``(color,)`` or ``(color, side)`` -> seeds.

    Sampling a reset is pure numpy, so this costs no physics.
    """
    runner = make_task(task, layout)
    out: dict[tuple, list[int]] = {}
    for seed in range(n):
        goal = runner.sample(seed).goal
        key = (goal.color, goal.side) if goal.side else (goal.color,)
        out.setdefault(key, []).append(seed)
    return out
