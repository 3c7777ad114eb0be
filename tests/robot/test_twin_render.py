"""Render meshes and render sizes: decimated visual meshes look like the shipped ones, change
no physics, are cached by content; a small frame asked of the twin matches a resized full one.

The bounds are measured numbers with margin (``bench/sim.py`` prints the same measurements):
mean absolute error on 0-255 over all pixels and channels.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import shutil
import threading

import mujoco
import numpy as np
import pytest

from robot.mjcf import load_robot_spec
from robot.sim import meshes
from robot.sim.config import DEFAULT_RENDER_MESH_TOLERANCE, TaskConfig, TwinConfig, TwinError
from robot.sim.meshes import RENDER_SUFFIX, drawn_mesh_faces, render_mesh, use_render_meshes
from robot.sim.twin import Twin
from tests.sim_helpers import robot_spec

# Measured at the default tolerance (0.2 mm) on the SO-101, seeds 0-3: front 0.11-0.16, wrist
# 1.38-1.65 (the wrist camera sees the jaws from 7 cm); at 0.8 mm the wrist reaches 3.4.
MAX_MAE = {"front": 0.5, "wrist": 2.5}
# Measured: a 96x72 frame rendered 2x and box-filtered differs from resize_frames of the full
# frame by 1.67-1.86 (SO-101 and Panda, both cameras); rendered directly at 96x72 (no
# antialiasing) by 2.89-3.97.
MAX_SMALL_MAE = 2.5
SMALL = (72, 96)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One mesh cache for the module, so the SO-101 is decimated once here."""
    path = tmp_path_factory.mktemp("vla-dojo-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(meshes.CACHE_ENV, str(path))
        yield path / "meshes"


def _twin(robot: str, tolerance: float) -> Twin:
    return Twin(
        robot_spec(robot),
        TwinConfig(render_mesh_tolerance=tolerance),
        TaskConfig(name="pick_place"),
    )


@pytest.fixture(scope="module")
def so101_pair(cache):
    """The SO-101 twin with the shipped meshes and with the default decimated ones."""
    shipped, decimated = _twin("so101", 0.0), _twin("so101", DEFAULT_RENDER_MESH_TOLERANCE)
    yield shipped, decimated
    shipped.close()
    decimated.close()


def _move(twin: Twin, seed: int, ticks: int) -> None:
    twin.reset(seed=seed)
    if not twin.arm.connected:
        twin.arm.connect()
        twin.arm.enable()
    target = twin.spec.home.copy()
    target[0] += 0.4
    target[2] -= 0.3
    twin.arm.send(target)
    for _ in range(ticks):
        twin.step(twin.spec.control_period)


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_decimated_render_stays_close_to_the_shipped_meshes(so101_pair):
    shipped, decimated = so101_pair
    before, after = drawn_mesh_faces(shipped.model), drawn_mesh_faces(decimated.model)
    assert after < before / 10, f"decimation left {after} of {before} mesh faces"
    for seed, ticks in ((0, 0), (1, 15)):
        _move(shipped, seed, ticks)
        _move(decimated, seed, ticks)
        for cam, bound in MAX_MAE.items():
            error = _mae(shipped.render(cam), decimated.render(cam))
            assert error <= bound, f"{cam} seed {seed}: mean abs pixel error {error:.2f}"


def test_tolerance_zero_draws_the_shipped_meshes(so101_pair):
    shipped, _ = so101_pair
    assert not any(
        shipped.model.mesh(i).name.endswith(RENDER_SUFFIX) for i in range(shipped.model.nmesh)
    )
    assert TwinConfig(render_mesh_tolerance=None).render_mesh_tolerance == 0


@pytest.mark.parametrize("robot", ["so101", "panda"])
def test_physics_with_decimated_meshes_is_bit_identical(cache, robot):
    a = Twin(robot_spec(robot), TwinConfig(render=False, render_mesh_tolerance=0))
    b = Twin(robot_spec(robot), TwinConfig(render=False))
    try:
        ma, mb = a.model, b.model
        assert mb.nmesh > 0 and any(
            mb.mesh(i).name.endswith(RENDER_SUFFIX) for i in range(mb.nmesh)
        )
        for name in ("body_mass", "body_inertia", "body_ipos", "body_iquat", "dof_armature"):
            assert np.array_equal(getattr(ma, name), getattr(mb, name)), name
        # every geom that can collide draws (and collides with) the shipped mesh
        for g in range(ma.ngeom):
            if ma.geom_contype[g] or ma.geom_conaffinity[g]:
                assert mb.geom(g).name == ma.geom(g).name
                if ma.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH:
                    assert mb.mesh(mb.geom_dataid[g]).name == ma.mesh(ma.geom_dataid[g]).name
        for twin in (a, b):
            _move(twin, seed=3, ticks=100)
        assert np.array_equal(a.data.qpos, b.data.qpos)
        assert np.array_equal(a.data.qvel, b.data.qvel)
        assert a.data.ncon == b.data.ncon
    finally:
        a.close()
        b.close()


def _source(tmp_path, name: str = "sts3215_03a_v1.stl"):
    spec = load_robot_spec(robot_spec("so101").model)
    folder = os.path.join(spec.modelfiledir, spec.compiler.meshdir)
    copy = tmp_path / name
    shutil.copyfile(os.path.join(folder, name), copy)
    return copy


def test_cache_is_reused_and_keyed_on_content_and_tolerance(tmp_path, monkeypatch):
    source = _source(tmp_path)
    store = tmp_path / "cache"
    first = render_mesh(source, 0.0005, store)
    assert first.decimated_now and 0 < first.faces < first.source_faces / 2
    assert first.path.parent == store and first.path.suffix == ".stl"

    def no_decimation(*args):
        raise AssertionError("decimated again on a cache hit")

    monkeypatch.setattr(meshes, "simplify", no_decimation)
    again = render_mesh(source, 0.0005, store)
    assert (again.path, again.decimated_now, again.faces) == (first.path, False, first.faces)
    monkeypatch.undo()

    assert render_mesh(source, 0.001, store).path != first.path  # another tolerance, entry
    data = bytearray(source.read_bytes())
    data[84 + 12] ^= 0x01  # one bit of the first vertex: another mesh, another entry
    source.write_bytes(bytes(data))
    changed = render_mesh(source, 0.0005, store)
    assert changed.decimated_now and changed.path != first.path
    assert not [p for p in store.iterdir() if p.name.endswith(".tmp")]


def test_a_mesh_decimation_would_not_halve_is_used_as_shipped(tmp_path):
    source = _source(tmp_path, "waveshare_mounting_plate_so101_v2.stl")  # 1254 faces
    store = tmp_path / "cache"
    first = render_mesh(source, 1e-7, store)  # 0.1 um: nothing can go
    assert first.path == source and first.decimated_now
    assert render_mesh(source, 1e-7, store).decimated_now is False
    assert [p.suffix for p in store.iterdir()] == [".keep"]


def test_the_second_scene_build_decimates_nothing(tmp_path):
    store = tmp_path / "cache"
    first = use_render_meshes(load_robot_spec(robot_spec("so101").model), 0.001, store)
    second = use_render_meshes(load_robot_spec(robot_spec("so101").model), 0.001, store)
    assert first.decimated_now > 0 and second.decimated_now == 0
    assert {k: m.path for k, m in first.meshes.items()} == {
        k: m.path for k, m in second.meshes.items()
    }
    # shared with collision geoms: a new asset; visual-only: the shipped asset is dropped
    assert "sts3215_03a_v1" not in first.removed_assets
    assert "base_so101_v2" in first.removed_assets


def test_concurrent_builds_never_see_half_a_file(tmp_path):
    """Several nodes start at once on an empty cache: each gets a complete mesh."""
    source = _source(tmp_path)
    store = tmp_path / "cache"
    start = threading.Barrier(4)
    found: list = []

    def build() -> None:
        start.wait(timeout=30)
        found.append(render_mesh(source, 0.0005, store))

    threads = [threading.Thread(target=build) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(found) == 4 and len({m.path for m in found}) == 1
    _, faces, _ = meshes.read_mesh(found[0].path)
    assert len(faces) == found[0].faces > 0
    assert sorted(p.name for p in store.iterdir()) == [found[0].path.name]


def test_a_far_view_draws_coarser_meshes_only_where_a_pixel_hides_them(so101_pair, cache):
    """Small frames of the front camera (fixed in the world) draw the far-view model, whose
    robot meshes have fewer faces; the wrist camera (on the arm) and full-size frames draw the
    twin's own; the far-view frame stays as close to the resized full frame as the bound."""
    resize_frames = pytest.importorskip("policy.data").resize_frames
    _, twin = so101_pair
    _move(twin, 1, 10)
    far = twin._far_view_model()
    assert far is not None and far is not twin.model
    assert drawn_mesh_faces(far) < 0.7 * drawn_mesh_faces(twin.model)
    front = twin.render("front", size=SMALL)
    twin.render("wrist", size=SMALL)
    twin.render("front")
    drew = {key: r.model is far for key, r in twin._renderers.items()}
    assert drew[(144, 192, True)] and not drew[(144, 192, False)] and not drew[(240, 320, False)]
    full = resize_frames(twin.render("front")[None], SMALL)[0]
    assert _mae(front, full) <= MAX_SMALL_MAE
    fine = Twin(twin.spec, TwinConfig(far_view_mesh_tolerance=0.0), TaskConfig(name="pick_place"))
    try:
        assert fine._far_view_model() is None
        fine.data.qpos[:] = twin.data.qpos
        fine.data.mocap_pos[:] = twin.data.mocap_pos
        fine.data.mocap_quat[:] = twin.data.mocap_quat
        mujoco.mj_forward(fine.model, fine.data)
        # measured (bench/sim.py, 3 states): 1.79 drawing the fine meshes, 2.00 the far-view ones
        assert abs(_mae(front, full) - _mae(fine.render("front", size=SMALL), full)) < 0.5
    finally:
        fine.close()


@pytest.mark.parametrize("far", [-0.001, 0.0001, float("nan"), True])
def test_a_bad_far_view_tolerance_is_refused_naming_it(far):
    with pytest.raises(TwinError, match=r"sim\.far_view_mesh_tolerance"):
        TwinConfig(far_view_mesh_tolerance=far)


def test_a_small_frame_matches_a_resized_full_frame(so101_pair):
    resize_frames = pytest.importorskip("policy.data").resize_frames
    _, twin = so101_pair
    _move(twin, 2, 10)
    for cam in ("front", "wrist"):
        full = twin.render(cam)
        small = twin.render(cam, size=SMALL)
        assert small.shape == (*SMALL, 3) and small.dtype == np.uint8
        error = _mae(small, resize_frames(full[None], SMALL)[0])
        assert error <= MAX_SMALL_MAE, f"{cam}: mean abs pixel error {error:.2f}"
        assert np.array_equal(twin.render(cam, size=(240, 320)), full)
        # more than half the camera's size: the full frame, area-resized (no bigger render)
        assert twin.render(cam, size=(180, 240)).shape == (180, 240, 3)
        assert (360, 480, False) not in twin._renderers
        assert (240, 320, False) in twin._renderers
        assert twin.render(cam, size=(480, 640)).shape == (480, 640, 3)  # larger: rendered so
        info, full_info = twin.camera_info(cam, size=SMALL), twin.camera_info(cam)
        assert (info.height, info.width) == SMALL
        assert info.fx == pytest.approx(full_info.fx * SMALL[0] / full_info.height)
        assert info.cx == pytest.approx((SMALL[1] - 1) / 2)


@pytest.mark.parametrize(
    ("size", "match"),
    [
        ((72, 72), "aspect"),
        ((960, 1280), "offscreen buffer"),
        ((72.5, 96), "height, width"),
        ((0, 0), "height, width"),
        ("72x96", "height, width"),
    ],
)
def test_a_bad_render_size_is_refused_naming_it(so101_pair, size, match):
    _, twin = so101_pair
    with pytest.raises(TwinError, match=match):
        twin.render("front", size=size)


@pytest.mark.parametrize("tolerance", [-1e-4, float("nan"), float("inf"), "0.2mm", True])
def test_a_bad_tolerance_is_refused_naming_it(tolerance):
    with pytest.raises(TwinError, match="render_mesh_tolerance"):
        TwinConfig(render_mesh_tolerance=tolerance)


def _grid_obj(path, n: int, texcoords: bool) -> None:
    """A flat n x n grid of quads (2 n^2 triangles, all of which a decimator could merge)."""
    lines = [f"v {i / n} {j / n} 0" for j in range(n + 1) for i in range(n + 1)]
    if texcoords:
        lines += [f"vt {i / n} {j / n}" for j in range(n + 1) for i in range(n + 1)]
    for j in range(n):
        for i in range(n):
            a, b, c, d = (
                j * (n + 1) + i + 1,
                j * (n + 1) + i + 2,
                (j + 1) * (n + 1) + i + 2,
                (j + 1) * (n + 1) + i + 1,
            )
            for tri in ((a, b, c), (a, c, d)):
                lines.append("f " + " ".join(f"{k}/{k}" if texcoords else str(k) for k in tri))
    path.write_text("\n".join(lines) + "\n")


def test_a_textured_mesh_is_used_as_shipped(tmp_path):
    """Decimation would drop the texture coordinates; the same mesh without them is halved."""
    plain, textured = tmp_path / "plain.obj", tmp_path / "textured.obj"
    _grid_obj(plain, 16, texcoords=False)
    _grid_obj(textured, 16, texcoords=True)
    store = tmp_path / "cache"
    assert render_mesh(plain, 1e-4, store).faces < 2 * 16 * 16 / 2
    assert render_mesh(textured, 1e-4, store).path == textured
