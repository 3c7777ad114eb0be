"""Scenes compose for the presets and for any MJCF, with the names and render settings promised."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import mujoco
import numpy as np
import pytest

from robot.schema import CameraSpec
from robot.sim.scene import (
    SceneError,
    build_scene,
    chain_length,
    look_at,
    twin_description,
)
from tests.sim_helpers import robot_spec, toy_arm

CAMERAS = (CameraSpec("front", 320, 240, 15), CameraSpec("wrist", 800, 600, 15))


def _names(model: mujoco.MjModel, kind: mujoco.mjtObj, count: int) -> set[str]:
    return {mujoco.mj_id2name(model, kind, i) for i in range(count)}


@pytest.mark.parametrize("robot", ["so101", "panda"])
def test_preset_scene_has_table_cubes_bin_cameras_and_the_robot(robot):
    spec = robot_spec(robot)
    scene = build_scene(spec, cameras=CAMERAS, colors=("red", "green", "blue"))
    m = scene.model
    bodies = _names(m, mujoco.mjtObj.mjOBJ_BODY, m.nbody)
    assert {"table", "cube_red", "cube_green", "cube_blue", "bin"} <= bodies
    assert {"front", "wrist"} <= _names(m, mujoco.mjtObj.mjOBJ_CAMERA, m.ncam)
    assert {"floor", "table", "bin_floor"} <= _names(m, mujoco.mjtObj.mjOBJ_GEOM, m.ngeom)
    joints = _names(m, mujoco.mjtObj.mjOBJ_JOINT, m.njnt)
    assert {j for j in spec.joint_names if j != "gripper" or robot == "so101"} <= joints
    assert m.site(spec.ee_site).id >= 0
    # each cube is a free body with a joint of its own name; the bin is a mocap body
    assert m.jnt_type[m.joint("cube_red").id] == mujoco.mjtJoint.mjJNT_FREE
    assert m.body_mocapid[m.body("bin").id] >= 0
    # the wrist camera rides on the robot, the front camera is fixed in the world
    assert m.cam_bodyid[m.camera("front").id] == 0
    assert m.cam_bodyid[m.camera("wrist").id] != 0


def test_render_settings_suit_a_cpu():
    scene = build_scene(robot_spec("so101"), cameras=CAMERAS)
    m = scene.model
    assert m.vis.quality.shadowsize == 0
    assert m.vis.quality.offsamples == 0
    assert not np.any(m.light_castshadow)
    # the offscreen buffer holds the largest camera
    assert m.vis.global_.offwidth >= 800 and m.vis.global_.offheight >= 600


def test_the_panda_arm_is_driven_by_position_servos_with_gravity_compensation():
    m = build_scene(robot_spec("panda"), cameras=CAMERAS).model
    for j in range(1, 8):
        act = m.actuator(f"actuator{j}")
        assert m.actuator_biastype[act.id] == mujoco.mjtBias.mjBIAS_AFFINE
        assert m.actuator_gainprm[act.id, 0] > 0
        assert m.actuator_biasprm[act.id, 1] == -m.actuator_gainprm[act.id, 0]
    assert m.body_gravcomp[m.body("link3").id] == 1.0


def test_an_arbitrary_mjcf_path_composes_with_a_layout_scaled_to_its_reach(tmp_path):
    _, spec = toy_arm(tmp_path)
    scene = build_scene(spec, cameras=spec.cameras, colors=("red",))
    m = scene.model
    assert {"pan", "lift", "elbow", "gripper", "cube_red"} <= _names(
        m, mujoco.mjtObj.mjOBJ_JOINT, m.njnt
    )
    assert m.cam_bodyid[m.camera("wrist").id] == m.body("toy_link3").id
    ref = build_scene(robot_spec("so101")).layout
    so101 = build_scene(robot_spec("so101")).model
    factor = chain_length(m, "tip") / chain_length(so101, "gripperframe")
    assert scene.layout.reach_max == pytest.approx(ref.reach_max * factor)


def test_an_mjcf_path_needs_an_ee_site(tmp_path):
    _, spec = toy_arm(tmp_path)
    with pytest.raises(SceneError, match="needs an ee_site"):
        twin_description(dataclasses.replace(spec, ee_site=""))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"colors": ("red", "mauve")}, "unknown cube colour"),
        ({"colors": ("red", "red")}, "distinct"),
        ({"cameras": (CameraSpec("ceiling"),)}, "camera 'ceiling'"),
        ({"physics_dt": 0.0}, "physics_dt"),
    ],
)
def test_bad_requests_are_refused_naming_the_value(kwargs, message):
    with pytest.raises(SceneError, match=message):
        build_scene(robot_spec("so101"), **kwargs)


def test_an_ee_site_the_model_lacks_is_refused_naming_it():
    spec = dataclasses.replace(robot_spec("so101"), ee_site="attachment_site")
    with pytest.raises(SceneError, match="no site 'attachment_site'"):
        build_scene(spec)


def test_a_scene_without_bin_has_none():
    scene = build_scene(robot_spec("so101"), with_bin=False, colors=("blue",))
    assert mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_BODY, "bin") < 0
    assert scene.cube_names == ("cube_blue",)


def test_look_at_points_the_camera_axis_at_the_target():
    pos, target = np.array([0.6, 0.2, 0.4]), np.array([0.1, -0.1, 0.0])
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, look_at(pos, target))
    rot = rot.reshape(3, 3)
    view = -rot[:, 2]  # a MuJoCo camera looks along its -z
    np.testing.assert_allclose(view, (target - pos) / np.linalg.norm(target - pos), atol=1e-12)
    assert rot[2, 1] > 0  # image up is world up-ish
    assert abs(rot[2, 0]) < 1e-12  # no roll: image x stays horizontal
