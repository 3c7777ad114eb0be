"""The shared types refuse what the control path cannot handle, naming the offending key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from robot.schema import ActionChunk, ControlSource, RobotSpec, SchemaError

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex")
MakeConfig = Callable[..., dict[str, Any]]


def _without(cfg: dict[str, Any], path: str) -> dict[str, Any]:
    *parents, leaf = path.split(".")
    section = cfg
    for p in parents:
        section = section[p]
    del section[leaf]
    return cfg


def test_valid_config_builds(spec: RobotSpec) -> None:
    assert spec.dof == 3
    assert spec.control_period == pytest.approx(0.02)
    np.testing.assert_array_equal(spec.max_step, [0.05, 0.01, 0.05])


@pytest.mark.parametrize("section", ["limits", "workspace"])
def test_missing_section_is_refused_by_name(section: str, make_config: MakeConfig) -> None:
    with pytest.raises(SchemaError, match=rf"test_arm3.*'{section}'"):
        RobotSpec.from_mapping(_without(make_config(), section))


@pytest.mark.parametrize(
    "path",
    [
        "limits.position_lower",
        "limits.position_upper",
        "limits.velocity",
        "limits.acceleration",
        "limits.max_step",
        "workspace.lower",
        "workspace.upper",
        "home",
        "control_hz",
        "joint_names",
    ],
)
def test_missing_key_is_named(path: str, make_config: MakeConfig) -> None:
    with pytest.raises(SchemaError, match=rf"'{path}' is missing"):
        RobotSpec.from_mapping(_without(make_config(), path))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("velocity", [1.0, 0.0, 1.0], "velocity_limit"),
        ("max_step", [0.05, -0.01, 0.05], "max_step"),
        ("position_lower", [-2.0, 3.0, -2.0], "position_lower"),
        ("acceleration", [5.0, 5.0], "acceleration_limit"),
        ("velocity", [1.0, float("nan"), 1.0], "velocity_limit"),
    ],
)
def test_bad_limits_are_refused(
    key: str, value: list[float], message: str, make_config: MakeConfig
) -> None:
    cfg = make_config(limits={key: value})
    with pytest.raises(SchemaError, match=message):
        RobotSpec.from_mapping(cfg)


def test_home_outside_limits_is_refused(make_config: MakeConfig) -> None:
    cfg = make_config(home=[0.0, 2.5, 0.0])
    with pytest.raises(SchemaError, match=r"shoulder_lift.*home"):
        RobotSpec.from_mapping(cfg)


def test_joint_index_maps_and_names_unknown_joints(spec: RobotSpec) -> None:
    np.testing.assert_array_equal(spec.joint_index(["elbow_flex", "shoulder_pan"]), [2, 0])
    with pytest.raises(SchemaError, match=r"wrist_roll.*shoulder_pan"):
        spec.joint_index(["shoulder_pan", "wrist_roll"])


def test_action_chunk_normalises_types() -> None:
    chunk = ActionChunk(1.0, list(JOINTS), [[0, 0, 0], [1, 1, 1]], [0.0, 0.1], source=1)
    assert chunk.joint_names == JOINTS
    assert chunk.positions.dtype == np.float64
    assert chunk.source is ControlSource.HUMAN
    np.testing.assert_allclose(chunk.due, [1.0, 1.1])
    assert chunk.end_time == pytest.approx(1.1)


@pytest.mark.parametrize(
    ("positions", "times", "message"),
    [
        (np.zeros(3), [0.0], r"\(H, D\)"),
        (np.zeros((0, 3)), [], "empty"),
        (np.zeros((2, 2)), [0.0, 0.1], "2 columns"),
        (np.zeros((2, 3)), [0.0], "times has shape"),
        (np.zeros((2, 3)), [0.1, 0.1], "strictly increasing"),
        (np.zeros((3, 3)), [0.0, 0.2, 0.1], "strictly increasing"),
        (np.zeros((2, 3)), [0.0, float("nan")], "NaN"),
    ],
)
def test_action_chunk_refuses_bad_shapes_and_times(
    positions: np.ndarray, times: list[float], message: str
) -> None:
    with pytest.raises(SchemaError, match=message):
        ActionChunk(0.0, JOINTS, positions, times)


def test_action_chunk_refuses_non_finite_stamp() -> None:
    with pytest.raises(SchemaError, match="stamp"):
        ActionChunk(float("inf"), JOINTS, np.zeros((1, 3)), [0.0])
