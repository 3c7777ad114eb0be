"""The twin: sim time, the simulated arm, cameras and their intrinsics, clocks."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import math

import mujoco
import numpy as np
import pytest

from robot.arm_interface import ArmError
from robot.schema import RobotSpec
from robot.sim.clock import ClockMode, RealTimePacer
from robot.sim.config import TaskConfig, TwinConfig, TwinError
from robot.sim.twin import Twin
from tests.sim_helpers import preset, robot_spec, toy_arm


@pytest.fixture(scope="module")
def so101():
    twin = Twin(robot_spec("so101"), TwinConfig(), TaskConfig())
    twin.reset(seed=0)
    yield twin
    twin.close()


@pytest.fixture(scope="module")
def panda():
    twin = Twin(robot_spec("panda"), TwinConfig(), TaskConfig(name="push"))
    twin.reset(seed=0)
    yield twin
    twin.close()


def test_sim_time_advances_only_by_whole_physics_steps(so101):
    start = so101.time
    so101.step(0.02)
    assert so101.time == pytest.approx(start + 0.02, abs=1e-12)
    with pytest.raises(TwinError, match=r"dt=0\.003"):
        so101.step(0.003)
    with pytest.raises(TwinError, match="dt=0"):
        so101.step(0.0)
    before = so101.time
    so101.reset(seed=1)
    assert so101.time == before  # a reset never rewinds /clock


def test_a_new_twin_starts_at_time_zero_and_refuses_a_period_it_cannot_step():
    twin = Twin(robot_spec("so101"), TwinConfig(render=False))
    assert twin.time == 0.0
    twin.close()
    cfg = preset("robot/sim_so101")
    cfg["control_hz"] = 30  # 1/30 s is not a whole number of 2 ms steps
    with pytest.raises(TwinError, match="control period"):
        Twin(RobotSpec.from_mapping(cfg), TwinConfig(render=False))


def test_the_arm_follows_the_arm_lifecycle(so101):
    arm = Twin(robot_spec("so101"), TwinConfig(render=False)).arm
    with pytest.raises(ArmError, match="before connect"):
        arm.read()
    arm.connect()
    with pytest.raises(ArmError, match="enable"):
        arm.send(arm.spec.home)
    arm.enable()
    arm.send(arm.spec.home)
    arm.disable()
    with pytest.raises(ArmError, match="enable"):
        arm.send(arm.spec.home)
    arm.close()
    with pytest.raises(ArmError, match="before connect"):
        arm.read()


def test_the_arm_tracks_a_target_and_reads_stamped_with_sim_time(so101):
    so101.reset(seed=0)
    arm = so101.arm
    arm.connect()
    arm.enable()
    target = arm.spec.home.copy()
    target[0] += 0.3  # shoulder_pan
    target[5] = 1.0  # open the gripper
    sent = arm.send(target)
    np.testing.assert_array_equal(sent, target)
    for _ in range(50):
        so101.step(0.02)
    state = arm.read()
    assert state.stamp == so101.time
    np.testing.assert_allclose(state.position[[0, 5]], target[[0, 5]], atol=0.02)
    assert np.all(np.abs(state.velocity) < 0.05)


def test_send_clamps_to_the_device_range_and_returns_what_it_commanded(so101):
    arm = so101.arm
    arm.connect()
    arm.enable()
    wild = arm.spec.home.copy()
    wild[0] = 5.0
    sent = arm.send(wild)
    m = so101.model
    device_max = min(
        m.jnt_range[m.joint("shoulder_pan").id, 1], m.actuator("shoulder_pan").ctrlrange[1]
    )
    assert sent[0] == device_max
    with pytest.raises(ArmError, match="not finite"):
        arm.send(np.full(6, np.nan))
    with pytest.raises(ArmError, match=r"expected \(6,\)"):
        arm.send(np.zeros(3))
    arm.send(arm.spec.home)


def test_hold_keeps_the_measured_position(so101):
    arm = so101.arm
    arm.connect()
    arm.enable()
    target = arm.spec.home.copy()
    target[0] -= 0.5
    arm.send(target)
    so101.step(0.1)  # moving
    arm.hold()
    held = arm.read().position
    for _ in range(25):
        so101.step(0.02)
    assert abs(arm.read().position[0] - held[0]) < 0.05
    assert abs(arm.read().position[0] - target[0]) > 0.1
    # holding again keeps the same target: soft servos must not ratchet down under gravity
    commanded = arm.commanded.copy()
    for _ in range(25):
        arm.hold()
        so101.step(0.02)
    np.testing.assert_array_equal(arm.commanded, commanded)


def test_the_panda_gripper_is_normalised_zero_open_one_closed(panda):
    arm = panda.arm
    arm.connect()
    arm.enable()
    panda.reset(seed=0)
    assert arm.read().position[7] == pytest.approx(0.0, abs=0.02)
    closed = arm.spec.home.copy()
    closed[7] = 1.0
    arm.send(closed)
    for _ in range(75):
        panda.step(0.02)
    assert arm.read().position[7] > 0.8
    arm.send(arm.spec.home)
    for _ in range(75):
        panda.step(0.02)
    assert arm.read().position[7] < 0.1


@pytest.mark.parametrize("robot", ["so101", "panda"])
def test_cameras_render_non_blank_images_of_the_configured_shape(robot, so101, panda):
    twin = {"so101": so101, "panda": panda}[robot]
    images = {}
    for cam in twin.spec.cameras:
        image = twin.render(cam.name)
        assert image.shape == (cam.height, cam.width, 3) and image.dtype == np.uint8
        assert image.std() > 10  # not a flat fill
        images[cam.name] = image
    assert not np.array_equal(images["front"], images["wrist"])


@pytest.mark.parametrize("camera", ["front", "wrist"])
def test_camera_info_matches_the_model_fovy(so101, camera):
    info = so101.camera_info(camera)
    cam = next(c for c in so101.spec.cameras if c.name == camera)
    fovy = math.radians(so101.model.cam_fovy[so101.model.camera(camera).id])
    assert (info.width, info.height) == (cam.width, cam.height)
    assert info.fy == pytest.approx(cam.height / 2 / math.tan(fovy / 2))
    assert info.fx == info.fy
    assert (info.cx, info.cy) == ((cam.width - 1) / 2, (cam.height - 1) / 2)
    assert info.K.shape == (3, 3) and info.K[0, 2] == info.cx and info.K[2, 2] == 1.0
    assert info.frame_id == f"{camera}_optical"


@pytest.mark.parametrize("camera", ["front", "wrist"])
def test_a_cube_projects_where_camera_info_and_camera_pose_say(so101, camera):
    """Place the red cube in view; its centre pixel, by K and the optical-frame pose, is red."""
    so101.reset(seed=0)
    pos, rot = so101.camera_pose(camera)
    if camera == "front":
        where = np.array([0.32, 0.12, 0.015])
    else:  # 12 cm in front of the lens, off the optical axis
        where = pos + rot @ np.array([0.02, -0.015, 0.12])
    adr = so101.model.joint("cube_red").qposadr[0]
    so101.data.qpos[adr : adr + 7] = [*where, 1.0, 0.0, 0.0, 0.0]
    mujoco.mj_forward(so101.model, so101.data)
    info = so101.camera_info(camera)
    x, y, z = rot.T @ (where - pos)
    assert z > 0  # in front of the camera
    u, v = info.fx * x / z + info.cx, info.fy * y / z + info.cy
    image = so101.render(camera)
    r, g, b = image[round(v), round(u)].astype(int)
    assert r > 120 and r > 2 * g and r > 2 * b, (u, v, (r, g, b))


def test_objects_are_ground_truth_in_the_base_frame(so101):
    so101.reset(seed=3)
    objects = so101.objects()
    assert set(objects) == {"cube_red", "cube_green", "cube_blue", "bin"}
    for name, (x, y, _yaw) in so101.setup.cubes.items():
        pose = objects[name]
        np.testing.assert_allclose(pose.position, [x, y, so101.scene.layout.cube_size / 2])
        assert np.linalg.norm(pose.quaternion) == pytest.approx(1.0)
        np.testing.assert_allclose(pose.size, so101.scene.layout.cube_size)
    bin_pose = objects["bin"]
    np.testing.assert_allclose(bin_pose.position[:2], so101.setup.bin)
    assert bin_pose.position[2] == pytest.approx(bin_pose.size[2] / 2)


def test_rendering_can_be_off():
    twin = Twin(robot_spec("so101"), TwinConfig(render=False))
    with pytest.raises(TwinError, match="rendering is off"):
        twin.render("front")
    with pytest.raises(TwinError, match="no camera 'top'"):
        twin.camera_info("top")
    twin.close()
    with pytest.raises(TwinError, match="after close"):
        twin.step(0.02)


def test_a_twin_of_an_arbitrary_mjcf_resets_steps_and_renders(tmp_path):
    _, spec = toy_arm(tmp_path)
    with Twin(spec, TwinConfig(), TaskConfig(colors=["red", "blue"])) as twin:
        assert twin.reset(seed=2).endswith("cube in the bin")
        twin.arm.connect()
        twin.arm.enable()
        target = spec.home.copy()
        target[0] = 0.4
        twin.arm.send(target)
        for _ in range(50):
            twin.step(0.02)
        assert twin.arm.read().position[0] == pytest.approx(0.4, abs=0.03)
        assert twin.render("wrist").shape == (64, 96, 3)
        assert twin.render("front").std() > 10


def test_joint_names_must_match_the_model():
    cfg = preset("robot/sim_so101")
    cfg["joint_names"][1] = "shoulder_lfit"
    with pytest.raises(TwinError, match="shoulder_lfit"):
        Twin(RobotSpec.from_mapping(cfg), TwinConfig(render=False))


def test_twin_config_refuses_bad_values():
    with pytest.raises(TwinError, match="physics_dt"):
        TwinConfig(physics_dt=-1.0)
    with pytest.raises(TwinError, match="warp"):
        TwinConfig(clock="warp")


class _FakeWall:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_realtime_pacer_sleeps_until_the_wall_clock_catches_up():
    wall = _FakeWall()
    pacer = RealTimePacer("realtime", monotonic=wall.monotonic, sleep=wall.sleep)
    assert pacer.wait(5.0) == 0.0  # anchors
    wall.now += 0.005  # 5 ms of work
    assert pacer.wait(5.02) == pytest.approx(0.015)
    assert wall.now == pytest.approx(100.02)
    assert pacer.overruns == 0


def test_realtime_pacer_counts_overruns_and_does_not_burst():
    wall = _FakeWall()
    pacer = RealTimePacer(
        ClockMode.realtime, max_lag=0.1, monotonic=wall.monotonic, sleep=wall.sleep
    )
    pacer.wait(0.0)
    wall.now += 0.5  # a stall
    assert pacer.wait(0.02) == 0.0
    assert pacer.overruns == 1
    wall.now += 0.001
    assert pacer.wait(0.04) == pytest.approx(0.019)  # re-anchored: no catch-up burst


def test_lockstep_never_waits():
    wall = _FakeWall()
    pacer = RealTimePacer("lockstep", monotonic=wall.monotonic, sleep=wall.sleep)
    for k in range(10):
        assert pacer.wait(k * 10.0) == 0.0
    assert wall.slept == [] and pacer.overruns == 0
    with pytest.raises(ValueError, match="clock mode 'fast'"):
        RealTimePacer("fast")
