"""Every preset composes; a bad value or a typo fails at start-up, naming the key."""

from __future__ import annotations

import itertools

import pytest
from omegaconf import MISSING

from dojo import conf, graph


@pytest.mark.parametrize(
    ("robot", "task", "teleop"),
    list(itertools.product(conf.presets("robot"), conf.presets("task"), conf.presets("teleop"))),
)
def test_every_preset_composes_and_validates(robot, task, teleop):
    cfg = conf.load([f"robot={robot}", f"task={task}", f"teleop={teleop}"])
    spec = conf.robot_spec(cfg)
    assert spec.dof == len(cfg.robot.joint_names) > 0
    assert cfg.task.name == task


def test_there_are_presets_for_both_robots_and_both_tasks():
    assert {"sim_so101", "sim_panda"} <= set(conf.presets("robot"))
    assert {"pick_place", "push"} <= set(conf.presets("task"))


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("robot=sim_pand", "did you mean 'robot=sim_panda'"),
        ("task=pick_plac", "did you mean 'task=pick_place'"),
        ("durration=3", "did you mean 'duration'"),
        ("sim.clok=realtime", "did you mean 'sim.clock'"),
    ],
)
def test_typos_name_the_nearest_valid_name(override, hint):
    with pytest.raises(conf.ConfigError, match=hint):
        conf.load([override])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("sim.clock=warp", "sim.clock"),
        ("robot.control_hz=fast", "control_hz"),
        ("executor.blend=average", "blend"),
        ("sim.physics_dt=0.003", "sim.physics_dt"),
        ("episodes=-1", "episodes"),
        ("robot.home=[0,0]", "home"),
    ],
)
def test_bad_values_fail_naming_the_key(override, key):
    with pytest.raises(conf.ConfigError, match=key):
        conf.load([override])


def test_a_robot_without_limits_is_refused():
    cfg = conf.load([])
    cfg.robot.limits = MISSING
    with pytest.raises(conf.ConfigError, match=r"robot\.limits.*must state its limits"):
        conf.validate(cfg)


def test_limits_inverted_are_refused_naming_the_joint():
    cfg = conf.load([])
    joint = cfg.robot.joint_names[1]
    lower = list(cfg.robot.limits.position_lower)
    lower[1] = 10.0
    cfg.robot.limits.position_lower = lower
    with pytest.raises(conf.ConfigError, match=f"joint '{joint}'"):
        conf.validate(cfg)


def test_resolved_config_round_trips_through_the_file_nodes_read(tmp_path):
    cfg = conf.load(["robot=sim_panda", "task=push", "seed=7"])
    path = tmp_path / "config.yaml"
    path.write_text(conf.to_yaml(cfg))
    back = conf.from_yaml_file(path)
    conf.validate(back)
    assert back.robot.name == cfg.robot.name and back.seed == 7 and back.task.name == "push"


def test_graph_runs_the_driver_first_with_sim_time_for_the_others(tmp_path):
    cfg = conf.load([])
    nodes = graph.build(cfg, tmp_path / "config.yaml")
    names = [n.name for n in nodes]
    assert names[0] == "robot_driver" and {"scripted_operator", "episode_runner"} <= set(names)
    driver = nodes[0]
    assert driver.stop_first and driver.parameters["autostart"] is True
    assert all(n.parameters["use_sim_time"] for n in nodes[1:])
    cmd = driver.command(namespace="arm1", log_level="warn")
    assert "__ns:=/arm1" in cmd and f"config_file:={tmp_path / 'config.yaml'}" in cmd
    assert sum(n.finishes_run for n in nodes) == 1


def test_a_teleop_device_preset_means_a_person_with_that_device(tmp_path):
    cfg = conf.load(["teleop=keyboard", "store=x.zarr"])
    assert cfg.intervention.enabled and cfg.intervention.device == "keyboard"
    names = [n.name for n in graph.build(cfg, tmp_path / "config.yaml")]
    assert "scripted_operator" not in names
    assert {"intervention", "operator_console", "recorder"} <= set(names)
    with pytest.raises(conf.ConfigError, match="contradicts teleop=keyboard"):
        conf.load(["teleop=keyboard", "intervention.enabled=true", "intervention.device=gamepad"])
