"""A robot added to the twin with one preset file and no code: the FR3 (``robot=sim_fr3``),
on the MJCF franky-sim ships, with the preset's two model edits (mesh folder, TCP site)."""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import numpy as np
import pytest

from robot.mjcf import ForwardKinematics
from robot.sim.config import TaskConfig, TwinConfig
from robot.sim.twin import Twin
from teleop.scripted import ScriptedOperator
from teleop.scripted_rollout import rollout
from tests.sim_helpers import robot_spec

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("franky_sim") is None, reason="franky-sim (hardware extra) ships it"
)


def test_the_fr3_twin_holds_home_where_its_kinematics_say():
    spec = robot_spec("fr3")
    with Twin(spec, TwinConfig(render=False), TaskConfig()) as twin:
        twin.reset(seed=0)
        twin.arm.connect()
        twin.arm.enable()
        for _ in range(25):
            twin.arm.send(spec.home)
            twin.step(spec.control_period)
        state = twin.arm.read()
        np.testing.assert_allclose(state.position, spec.home, atol=2e-3)
        site = twin.model.site(spec.ee_site).id
        np.testing.assert_allclose(
            ForwardKinematics.for_robot(spec)(state.position), twin.data.site_xpos[site], atol=1e-9
        )


@pytest.mark.parametrize("task", ["pick_place", "push"])
def test_the_scripted_operator_solves_the_fr3_tasks(task):
    spec = robot_spec("fr3")
    with Twin(spec, TwinConfig(render=False), TaskConfig(name=task)) as twin:
        result = rollout(twin, ScriptedOperator(spec), seed=1)
        assert result.success and result.operator_done, result
