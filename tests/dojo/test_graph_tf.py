"""tf in the graph: robot_state_publisher joins it when the ament index has it and the robot has
an MJCF, and is left out with a one-line note otherwise; its launcher hands it the URDF and
execs it with the graph's ROS arguments (no ROS processes here; the integration test runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dojo import conf, graph
from dojo.nodes import robot_state_publisher as rsp
from robot.urdf import robot_urdf

FAKE_RSP = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/argv.txt"
"""


def fake_prefix(root: Path, *, index: bool = True, executable: bool = True) -> Path:
    """A ROS prefix as an ament index lays it out, with a stand-in robot_state_publisher that
    records its command line."""
    if index:
        marker = root / "share/ament_index/resource_index/packages/robot_state_publisher"
        marker.parent.mkdir(parents=True)
        marker.write_text("")
    program = root / "lib/robot_state_publisher/robot_state_publisher"
    program.parent.mkdir(parents=True)
    program.write_text(FAKE_RSP)
    program.chmod(0o755 if executable else 0o644)
    return program


def names(nodes) -> list[str]:
    return [n.name for n in nodes]


def test_without_robot_state_publisher_the_graph_has_no_tf_and_says_so(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    cfg = conf.load([f"out={tmp_path}"])
    with caplog.at_level("INFO", logger="dojo.graph"):
        nodes = graph.build(cfg, tmp_path / "config.yaml")
    assert graph.ROBOT_STATE_PUBLISHER not in names(nodes)
    notes = [r.getMessage() for r in caplog.records if r.name == "dojo.graph"]
    assert len(notes) == 1 and "\n" not in notes[0]
    assert "robot_state_publisher is not on AMENT_PREFIX_PATH" in notes[0]
    assert graph.plan([f"out={tmp_path}"])["notes"] == notes


def test_with_robot_state_publisher_it_follows_the_driver(tmp_path, monkeypatch):
    fake_prefix(tmp_path / "ros")
    monkeypatch.setenv("AMENT_PREFIX_PATH", f"{tmp_path / 'empty'}{os.pathsep}{tmp_path / 'ros'}")
    cfg = conf.load([f"out={tmp_path}", "ros.namespace=arm1"])
    nodes = graph.build(cfg, tmp_path / "config.yaml")
    assert names(nodes)[:2] == ["robot_driver", graph.ROBOT_STATE_PUBLISHER]
    node = nodes[1]
    assert node.module == "dojo.nodes.robot_state_publisher" and not node.required
    assert node.parameters["frame_prefix"] == "arm1/"  # two arms' tf trees never collide
    assert node.parameters["use_sim_time"] is True  # the twin's clock, as every other node
    plan = graph.plan([f"out={tmp_path}", "ros.namespace=arm1"])
    assert plan["notes"] == []
    assert [n["name"] for n in plan["nodes"]][:2] == names(nodes)[:2]
    assert graph.tf_note(conf.load(["ros.namespace="])) == ""
    root = graph.build(conf.load([f"out={tmp_path}"]), tmp_path / "config.yaml")
    assert "frame_prefix" not in root[1].parameters


def test_a_dh_robot_has_no_urdf_so_no_tf_even_with_ros(tmp_path, monkeypatch):
    fake_prefix(tmp_path)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    cfg = conf.load(["robot=ur5e"])
    assert "DH table" in graph.tf_note(cfg)
    assert graph.ROBOT_STATE_PUBLISHER not in names(graph.build(cfg, tmp_path / "c.yaml"))


def test_the_ament_index_decides_not_the_file_alone(tmp_path):
    fake_prefix(tmp_path / "unindexed", index=False)
    fake_prefix(tmp_path / "not_executable", executable=False)
    program = fake_prefix(tmp_path / "good")
    find = graph.find_ros_executable
    rsp_ = graph.ROBOT_STATE_PUBLISHER
    assert find(rsp_, rsp_, str(tmp_path / "unindexed")) is None
    assert find(rsp_, rsp_, str(tmp_path / "not_executable")) is None
    assert find(rsp_, rsp_, "") is None
    every = os.pathsep.join(str(tmp_path / p) for p in ("unindexed", "not_executable", "good"))
    assert find(rsp_, rsp_, every) == program


def test_the_launcher_writes_the_urdf_and_execs_with_the_graphs_arguments(tmp_path, monkeypatch):
    program = fake_prefix(tmp_path / "ros")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "ros"))
    cfg = conf.load([f"out={tmp_path}", "ros.namespace=arm1"])
    config_file = tmp_path / "config.yaml"
    config_file.write_text(conf.to_yaml(cfg))
    env = dict(os.environ)
    spec = next(n for n in graph.build(cfg, config_file) if n.module == rsp.__name__)
    line = spec.command("arm1")
    proc = subprocess.run(line, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    argv = (program.parent / "argv.txt").read_text().splitlines()
    # exactly the graph's ROS arguments, then the URDF's parameters file and the remap
    assert argv[: len(line) - 3] == line[3:]
    assert argv[len(line) - 3 :] == [
        "--ros-args",
        "--params-file",
        str(tmp_path / rsp.PARAMS_FILE),
        "-r",
        "robot_description:=robot_state_publisher/robot_description",
    ]
    urdf = robot_urdf(conf.robot_spec(cfg))
    assert (tmp_path / rsp.URDF_FILE).read_text() == urdf
    params = yaml.safe_load((tmp_path / rsp.PARAMS_FILE).read_text())
    assert params == {"/**": {"ros__parameters": {"robot_description": urdf}}}


def test_the_launcher_without_ros_or_config_fails_in_one_line(tmp_path):
    env = {**os.environ, "AMENT_PREFIX_PATH": str(tmp_path)}
    args = [sys.executable, "-m", "dojo.nodes.robot_state_publisher", "--ros-args"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "not found on AMENT_PREFIX_PATH" in proc.stderr
    fake_prefix(tmp_path)
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no URDF" in proc.stderr and "config_file" in proc.stderr


def test_params_file_is_json_so_any_urdf_survives_quoting(tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(conf.to_yaml(conf.load([f"out={tmp_path}"])))
    text = json.loads(rsp.write_files(config_file).read_text())
    assert text["/**"]["ros__parameters"]["robot_description"].startswith("<?xml")


@pytest.mark.parametrize("argv", [[], ["-p", "other:=1"], ["-p"]])
def test_the_config_file_must_be_among_the_ros_arguments(argv):
    with pytest.raises(rsp.LaunchError, match="config_file"):
        rsp.config_file(argv)
