"""Round trips between the schema types and ROS 2 messages."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dojo.ros import convert
from robot.schema import ActionChunk, ControlSource, JointState, ObjectPose, SchemaError

JOINTS = ("a", "b", "c")


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
@settings(max_examples=200)
def test_time_round_trip_within_a_nanosecond(t):
    back = convert.from_time(convert.to_time(t))
    assert abs(back - t) <= 1e-9 + abs(t) * 1e-15
    msg = convert.to_time(t)
    assert 0 <= msg.nanosec < 1_000_000_000


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_time_refuses_negative_or_non_finite(bad):
    with pytest.raises(SchemaError, match="ROS Time"):
        convert.to_time(bad)


def test_joint_state_round_trip_and_reorder():
    state = JointState(12.5, np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0]))
    msg = convert.joint_state_to_msg(state, JOINTS)
    back = convert.joint_state_from_msg(msg, JOINTS)
    assert back.stamp == pytest.approx(12.5)
    np.testing.assert_array_equal(back.position, state.position)
    np.testing.assert_array_equal(back.velocity, state.velocity)
    reordered = convert.joint_state_from_msg(msg, ("c", "a", "b"))
    np.testing.assert_array_equal(reordered.position, [0.3, 0.1, 0.2])


def test_joint_state_missing_joint_is_named():
    msg = convert.joint_state_to_msg(JointState(0.0, np.zeros(3), np.zeros(3)), JOINTS)
    with pytest.raises(SchemaError, match="'wrist'"):
        convert.joint_state_from_msg(msg, ("a", "wrist"))


@pytest.mark.parametrize("source", list(ControlSource))
def test_chunk_round_trip(source):
    rng = np.random.default_rng(0)
    chunk = ActionChunk(
        stamp=3.25,
        joint_names=JOINTS,
        positions=rng.normal(size=(7, 3)),
        times=np.arange(1, 8) * 0.02,
        source=source,
    )
    back = convert.chunk_from_msg(convert.chunk_to_msg(chunk))
    assert back.stamp == pytest.approx(chunk.stamp)
    assert back.joint_names == JOINTS
    assert back.source == source
    np.testing.assert_array_equal(back.positions, chunk.positions)
    np.testing.assert_allclose(back.times, chunk.times, atol=1e-9)


def test_plan_round_trip_reorders_and_an_empty_plan_is_none():
    plan = ActionChunk(2.5, JOINTS, np.arange(12.0).reshape(4, 3), 0.04 + 0.02 * np.arange(4))
    msg = convert.plan_to_msg(plan, 2.54, JOINTS)
    back = convert.plan_from_msg(msg, ("c", "a", "b"))
    assert back.stamp == pytest.approx(2.5) and back.joint_names == ("c", "a", "b")
    np.testing.assert_array_equal(back.positions[:, 0], plan.positions[:, 2])
    np.testing.assert_allclose(back.due, plan.due, atol=1e-9)
    empty = convert.plan_to_msg(None, 7.0, JOINTS)
    assert convert.from_time(empty.header.stamp) == 7.0 and list(empty.joint_names) == list(JOINTS)
    assert convert.plan_from_msg(empty, JOINTS) is None
    with pytest.raises(SchemaError, match="'wrist'"):
        convert.plan_from_msg(msg, ("a", "wrist"))


def test_chunk_nan_survives_transport_for_the_executor_to_refuse():
    chunk = ActionChunk(1.0, JOINTS, np.array([[0.0, np.nan, 0.0]]), np.array([0.02]))
    back = convert.chunk_from_msg(convert.chunk_to_msg(chunk))
    assert np.isnan(back.positions[0, 1])


def test_chunk_ragged_or_empty_is_refused():
    msg = convert.chunk_to_msg(ActionChunk(1.0, JOINTS, np.zeros((2, 3)), np.array([0.1, 0.2])))
    msg.points[1].positions = [0.0, 0.0]
    with pytest.raises(SchemaError, match="point 1 has 2 positions for 3 joints"):
        convert.chunk_from_msg(msg)
    msg.points = []
    with pytest.raises(SchemaError, match="no points"):
        convert.chunk_from_msg(msg)


def test_unknown_source_is_named():
    msg = convert.chunk_to_msg(ActionChunk(1.0, JOINTS, np.zeros((1, 3)), np.array([0.1])))
    msg.header.frame_id = "robot_overlord"
    with pytest.raises(SchemaError, match="robot_overlord"):
        convert.chunk_from_msg(msg)


def test_command_round_trip():
    msg = convert.command_to_msg(2.0, np.array([1.0, 2.0, 3.0]), ControlSource.HUMAN, JOINTS)
    stamp, command, source = convert.command_from_msg(msg, JOINTS)
    assert (stamp, source) == (2.0, ControlSource.HUMAN)
    np.testing.assert_array_equal(command, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8"])
def test_image_round_trip(encoding):
    img = np.random.default_rng(1).integers(0, 255, size=(6, 8, 3), dtype=np.uint8)
    msg = convert.image_to_msg(img, 4.5, "front_optical")
    if encoding == "bgr8":
        msg.data = np.ascontiguousarray(img[:, :, ::-1]).tobytes()
        msg.encoding = "bgr8"
    back, stamp = convert.image_from_msg(msg)
    np.testing.assert_array_equal(back, img)
    assert stamp == pytest.approx(4.5)
    assert msg.header.frame_id == "front_optical"


def test_image_with_padded_rows():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = convert.image_to_msg(img, 0.0, "f")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(2, 9)
    msg.data = np.concatenate([rows, np.zeros((2, 3), np.uint8)], axis=1).tobytes()
    msg.step = 12
    back, _ = convert.image_from_msg(msg)
    np.testing.assert_array_equal(back, img)


def test_image_refuses_wrong_shape_and_encoding():
    with pytest.raises(SchemaError, match="uint8 RGB"):
        convert.image_to_msg(np.zeros((4, 4), np.uint8), 0.0, "f")
    msg = convert.image_to_msg(np.zeros((4, 4, 3), np.uint8), 0.0, "f")
    msg.encoding = "mono16"
    with pytest.raises(SchemaError, match="mono16"):
        convert.image_from_msg(msg)


def test_camera_info_round_trip():
    k = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    msg = convert.camera_info_to_msg(320, 240, k, 1.0, "front_optical")
    w, h, k2 = convert.camera_info_from_msg(msg)
    assert (w, h) == (320, 240)
    np.testing.assert_array_equal(k2, k)
    assert list(msg.p[:3]) == [300.0, 0.0, 160.0]


def test_objects_round_trip():
    objs = {
        "cube_red": ObjectPose(
            "cube_red",
            np.array([0.2, 0.1, 0.02]),
            np.array([1.0, 0, 0, 0]),
            np.full(3, 0.03),
            np.array([1.0, 0, 0, 1]),
        ),
        "bin": ObjectPose("bin", np.array([0.1, -0.2, 0.0]), np.array([0.7071, 0, 0, 0.7071])),
    }
    back, stamp = convert.objects_from_msg(convert.objects_to_msg(objs, 2.0, "world"))
    assert stamp == pytest.approx(2.0)
    assert set(back) == set(objs)
    for name, obj in objs.items():
        np.testing.assert_allclose(back[name].position, obj.position)
        np.testing.assert_allclose(back[name].quaternion, obj.quaternion)
        np.testing.assert_allclose(back[name].size, obj.size)
        np.testing.assert_allclose(back[name].rgba, obj.rgba)
