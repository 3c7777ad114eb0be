"""dojo.graph's side of the launch files: launch arguments to config keys, bad input refused in
one line before any node, and the plan a launch file starts (no ROS processes here)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dojo import conf, graph


def test_launch_arguments_name_keys_aliases_and_raw_overrides():
    overrides = graph.launch_overrides(
        {
            "robot": "sim_panda",
            "namespace": "arm1",
            "policy_checkpoint": "/ckpt",
            "driver_status_hz": "5",
            "sim.clock": "lockstep",
            "task": "",  # left at its default: sets nothing
            "overrides": "episodes=3 seed=7",
        }
    )
    assert overrides == [
        "robot=sim_panda",
        "ros.namespace=arm1",
        "policy.checkpoint=/ckpt",
        "driver.status_hz=5",
        "sim.clock=lockstep",
        "episodes=3",
        "seed=7",
    ]


def test_a_launch_argument_that_is_no_key_names_the_nearest():
    with pytest.raises(graph.LaunchArgumentError, match=r"launch argument 'robto:='.*'robot'"):
        graph.launch_overrides({"robto": "so101"})


@pytest.mark.parametrize("namespace", ["1arm", "arm-1", "arm__1", "a b"])
def test_a_namespace_that_is_not_a_ros_name_is_refused(namespace):
    cfg = conf.load([f"ros.namespace={namespace}"])
    with pytest.raises(graph.LaunchArgumentError, match=r"ros\.namespace"):
        graph.check_startable(cfg)


def test_valid_namespaces_pass():
    for namespace in ("", "arm1", "/lab/arm_1"):
        graph.check_startable(conf.load([f"ros.namespace={namespace}"]))


def test_a_missing_checkpoint_is_refused(tmp_path):
    cfg = conf.load([f"policy.checkpoint={tmp_path / 'nowhere'}"])
    with pytest.raises(graph.LaunchArgumentError, match=r"policy\.checkpoint.*does not exist"):
        graph.check_startable(cfg)


def test_the_plan_is_dojo_runs_graph_with_a_managed_driver(tmp_path):
    plan = graph.plan([f"out={tmp_path}", "ros.namespace=arm1", "ros.domain_id=42"])
    cfg = conf.from_yaml_file(plan["config_file"])
    nodes = graph.build(cfg, tmp_path / "config.yaml")
    assert [n["name"] for n in plan["nodes"]] == [n.name for n in nodes]
    assert plan["namespace"] == "/arm1"
    assert plan["environment"]["ROS_DOMAIN_ID"] == "42"
    assert plan["environment"]["FASTDDS_DEFAULT_PROFILES_FILE"].endswith("fastdds_profile.xml")
    driver = plan["nodes"][0]
    assert driver["lifecycle"] and driver["parameters"]["autostart"] is False
    for planned, node in zip(plan["nodes"], nodes, strict=True):
        run_line = node.command("arm1", "info")
        if node.name == "robot_driver":
            run_line[run_line.index("autostart:=true")] = "autostart:=false"
        assert planned["command"] == run_line
        # the layout launch_ros uses: executable, args, --ros-args ..., --ros-args name, ns
        assert planned["command"][3:] == [
            "--ros-args",
            *planned["ros_arguments"],
            "--ros-args",
            "-r",
            f"__node:={node.name}",
            "-r",
            "__ns:=/arm1",
        ]


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("robto=so101", "did you mean 'robot'"),
        ("namespace=9lives", "is not a ROS namespace"),
        ("policy_checkpoint=/no/such/dir", "does not exist"),
        ("overrides=robot.limits.velocity=[]", "'velocity_limit' has 0 values"),  # no limits
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_node(tmp_path, argument, message):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "dojo.graph", argument, f"out={out}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stdout == ""
    assert not (out / "config.yaml").exists(), "nothing is written before the input is good"


def test_the_plan_on_stdout_is_json(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dojo.graph", f"out={tmp_path}", "domain_id=7"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    plan = json.loads(proc.stdout)
    assert plan["environment"]["ROS_DOMAIN_ID"] == "7"
    assert (tmp_path / "config.yaml").exists()
