"""A procedural game level built from the seed: the geometry a lightmap baker unwraps and lights.

World frame (shared with ``scripts/make_sample_scene.py``): metres, z up, +x south, +y east.
The level is a paved square of ``2 * half_extent`` metres a side with, around it, buildings (window
sills, hoods, an awning and a roof parapet whose shadows sweep over the facades), a colonnade whose
columns stripe the ground, a fence, crates, benches, a tree and lamp posts. Point lamps sit in the
lamp-post lanterns and beside the building doors.

Every object is one triangle mesh whose vertices are split at creases (angle above
``CREASE_ANGLE_RAD``), so that ``mesh.vertex_normals`` are the shading normals: flat on boxes,
smooth around columns and the tree canopy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # trimesh is the optional ``scene`` extra, imported inside the functions
    import trimesh

CREASE_ANGLE_RAD = math.radians(40.0)
GROUND_CELL_M = 2.0
LAMP_WARM_RGB = (1.0, 0.72, 0.42)


@dataclass(frozen=True)
class SceneObject:
    """One named mesh of the level (metres, world frame)."""

    name: str
    mesh: "trimesh.Trimesh"


@dataclass(frozen=True)
class Lamp:
    """A point lamp: ``position`` in metres, ``intensity`` the radiant intensity per RGB channel (W/sr,
    in the bake's linear units: a surface 1 m away facing the lamp receives ``intensity`` W/m^2)."""

    position: tuple[float, float, float]
    intensity: tuple[float, float, float]


@dataclass
class Level:
    """The whole level: meshes and lamps; ``half_extent`` is half the ground's side in metres."""

    seed: int
    half_extent: float
    objects: list[SceneObject] = field(default_factory=list)
    lamps: list[Lamp] = field(default_factory=list)

    @property
    def triangle_count(self) -> int:
        return int(sum(len(o.mesh.faces) for o in self.objects))

    @property
    def area_m2(self) -> float:
        """Total surface area of every mesh in square metres (what the atlases must hold)."""
        return float(sum(o.mesh.area for o in self.objects))


def _box(size: tuple[float, float, float], center: tuple[float, float, float], yaw: float = 0.0):
    """An axis-aligned box of ``size`` (x, y, z metres) rotated by ``yaw`` radians about z, centred at ``center``."""
    import trimesh

    transform = trimesh.transformations.rotation_matrix(yaw, (0.0, 0.0, 1.0))
    transform[:3, 3] = center
    return trimesh.creation.box(extents=size, transform=transform)


def _cylinder(radius: float, z0: float, z1: float, x: float, y: float, sections: int = 12):
    import trimesh

    mesh = trimesh.creation.cylinder(radius=radius, height=z1 - z0, sections=sections)
    mesh.apply_translation((x, y, 0.5 * (z0 + z1)))
    return mesh


def _finish(name: str, parts: list) -> SceneObject:
    """Concatenate ``parts`` into one mesh and split its vertices at creases (shading normals)."""
    import trimesh

    mesh = trimesh.util.concatenate(parts)
    # Faces lying on the ground and facing down are never seen: leave them out of the atlas.
    hidden = (mesh.face_normals[:, 2] < -0.99) & (mesh.triangles_center[:, 2] < 1e-4)
    mesh.update_faces(~hidden)
    mesh.remove_unreferenced_vertices()
    mesh.merge_vertices()
    mesh = trimesh.graph.smooth_shade(mesh, angle=CREASE_ANGLE_RAD)
    return SceneObject(name, mesh)


@dataclass(frozen=True)
class _Footprint:
    """A building's footprint: centre, half sizes along x and y, and the side that faces the square."""

    cx: float
    cy: float
    hx: float
    hy: float
    height: float


def _ground(half_extent: float, footprints: list[_Footprint]) -> SceneObject:
    """The paved square as a grid of ``GROUND_CELL_M`` cells, cut exactly round the building footprints
    (no ground is left under a building)."""
    import trimesh

    n = int(round(2 * half_extent / GROUND_CELL_M))
    edges = np.linspace(-half_extent, half_extent, n + 1)
    vertices: list[tuple[float, float, float]] = []
    faces: list[tuple[int, int, int]] = []

    def covered(x: float, y: float) -> bool:
        return any(abs(x - f.cx) < f.hx and abs(y - f.cy) < f.hy for f in footprints)

    for i in range(n):
        for j in range(n):
            x0, x1, y0, y1 = edges[i], edges[i + 1], edges[j], edges[j + 1]
            xs = sorted({x0, x1} | {e for f in footprints for e in (f.cx - f.hx, f.cx + f.hx) if x0 < e < x1})
            ys = sorted({y0, y1} | {e for f in footprints for e in (f.cy - f.hy, f.cy + f.hy) if y0 < e < y1})
            for xa, xb in zip(xs[:-1], xs[1:]):
                for ya, yb in zip(ys[:-1], ys[1:]):
                    if covered(0.5 * (xa + xb), 0.5 * (ya + yb)):
                        continue
                    base = len(vertices)
                    vertices += [(xa, ya, 0.0), (xb, ya, 0.0), (xb, yb, 0.0), (xa, yb, 0.0)]
                    faces += [(base, base + 1, base + 2), (base, base + 2, base + 3)]
    mesh = trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), process=True)
    return SceneObject("ground", mesh)


def _building(index: int, fp: _Footprint, facing: np.ndarray, rng: np.random.Generator,
              lamps: list[Lamp]) -> SceneObject:
    """A box building. The facade that faces the square (``facing``: unit xy vector) has a window hood
    over every window and an awning over the door with a wall lamp beside it; the other facades have a
    ledge at every floor; a parapet runs round the roof. Hoods, ledges and awning cast shadows that
    sweep over the walls during the day."""
    parts = [_box((2 * fp.hx, 2 * fp.hy, fp.height), (fp.cx, fp.cy, fp.height / 2))]
    floors = max(1, int(fp.height // 3.0))
    front_axis = 0 if abs(facing[0]) >= abs(facing[1]) else 1
    front_sign = 1.0 if facing[front_axis] > 0 else -1.0
    centre = (fp.cx, fp.cy)
    half = (fp.hx, fp.hy)

    def slab(axis: int, sign: float, depth: float, width: float, height: float, along: float, z: float):
        """A box sticking ``depth`` metres out of the facade (axis, sign), ``width`` along it, centred at
        ``along``, ``z``."""
        other = 1 - axis
        size, middle = [0.0, 0.0, height], [0.0, 0.0, z]
        size[axis], size[other] = depth, width
        middle[axis] = centre[axis] + sign * (half[axis] + depth / 2)
        middle[other] = along
        return _box(tuple(size), tuple(middle))

    for axis, sign in ((0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0)):
        other = 1 - axis
        half_along = half[other]
        if (axis, sign) != (front_axis, front_sign):
            for floor in range(1, floors):
                parts.append(slab(axis, sign, 0.3, 2 * half_along, 0.15, centre[other], 3.0 * floor))
            continue
        columns = max(1, int((2 * half_along - 1.0) // 2.5))
        spacing = 2 * half_along / columns
        for floor in range(1, floors):
            for c in range(columns):
                along = centre[other] - half_along + (c + 0.5) * spacing
                parts.append(slab(axis, sign, 0.45, 1.5, 0.12, along, 3.0 * floor + 2.45))
        depth = float(rng.uniform(1.2, 2.0))
        parts.append(slab(axis, sign, depth, 1.2 * half_along, 0.15, centre[other], 3.1))
        lamp = [0.0, 0.0, 2.6]
        lamp[axis] = centre[axis] + sign * (half[axis] + 0.45)
        lamp[other] = centre[other] + 0.75 * half_along
        lamps.append(Lamp(tuple(lamp), tuple(6.0 * c for c in LAMP_WARM_RGB)))
    # Roof parapet (four low walls on the roof edge).
    t, h, z = 0.3, 0.8, fp.height + 0.4
    parts += [_box((2 * fp.hx, t, h), (fp.cx, fp.cy + s * (fp.hy - t / 2), z)) for s in (-1, 1)]
    parts += [_box((t, 2 * fp.hy - 2 * t, h), (fp.cx + s * (fp.hx - t / 2), fp.cy, z)) for s in (-1, 1)]
    return _finish(f"building_{index}", parts)


def build_level(seed: int, half_extent: float = 20.0) -> Level:
    """The procedural level for ``seed`` (same seed, same level). ``half_extent``: half the ground side, metres."""
    rng = np.random.default_rng(seed)
    level = Level(seed=seed, half_extent=half_extent)
    e = half_extent

    # Buildings along the north (-x) and west (-y) edges and one in the south-east corner; each faces the centre.
    footprints: list[_Footprint] = []
    y = -e + 1.0
    while y < e - 8.0:  # north row
        hy = float(rng.uniform(3.0, 5.0))
        if y + 2 * hy > e - 1.0:
            break
        footprints.append(_Footprint(-e + 5.0, y + hy, float(rng.uniform(3.5, 4.5)), hy, float(rng.uniform(6.0, 14.0))))
        y += 2 * hy + float(rng.uniform(1.5, 3.0))
    x = -e + 12.0
    while x < e - 14.0:  # west row
        hx = float(rng.uniform(3.0, 4.5))
        if x + 2 * hx > e - 12.0:
            break
        footprints.append(_Footprint(x + hx, -e + 4.5, hx, float(rng.uniform(3.0, 4.0)), float(rng.uniform(5.0, 10.0))))
        x += 2 * hx + float(rng.uniform(1.5, 3.0))
    footprints.append(_Footprint(e - 6.0, e - 5.5, 4.0, 3.5, float(rng.uniform(6.0, 9.0))))
    level.objects.append(_ground(e, footprints))
    for i, fp in enumerate(footprints):
        facing = -np.array([fp.cx, fp.cy]) / max(1e-6, math.hypot(fp.cx, fp.cy))
        level.objects.append(_building(i, fp, facing, rng, level.lamps))

    # Colonnade along the east edge: columns on a plinth under an entablature; the columns stripe the ground.
    n_columns = int(rng.integers(6, 9))
    y_col = e - 4.0
    x0, x1 = -e + 14.0, e - 14.0
    column_x = np.linspace(x0, x1, n_columns)
    parts = [_cylinder(0.3, 0.0, 4.0, float(cx), y_col, sections=16) for cx in column_x]
    parts += [_box((0.8, 0.8, 0.3), (float(cx), y_col, 0.15)) for cx in column_x]
    parts.append(_box((x1 - x0 + 1.4, 1.6, 0.6), (0.5 * (x0 + x1), y_col, 4.3)))
    level.objects.append(_finish("colonnade", parts))

    # Fence along the south edge: posts and two rails.
    y0, y1 = -e + 12.0, e - 16.0
    posts = np.arange(y0, y1 + 1e-6, 1.0)
    x_f = e - 2.0
    parts = [_box((0.12, 0.12, 1.3), (x_f, float(py), 0.65)) for py in posts]
    parts += [_box((0.06, y1 - y0, 0.1), (x_f, 0.5 * (y0 + y1), z)) for z in (0.5, 1.05)]
    level.objects.append(_finish("fence", parts))

    # Props in the square: crates, benches, a tree.
    parts = []
    for _ in range(int(rng.integers(4, 8))):
        s = float(rng.uniform(0.6, 1.2))
        parts.append(_box((s, s, s), (float(rng.uniform(-6, 8)), float(rng.uniform(-6, 8)), s / 2),
                          yaw=float(rng.uniform(0, math.pi / 2))))
    level.objects.append(_finish("crates", parts))
    parts = []
    for k in range(3):
        bx, by, yaw = float(rng.uniform(-8, 8)), float(rng.uniform(-8, 8)), float(rng.uniform(0, math.pi))
        c, s = math.cos(yaw), math.sin(yaw)
        parts.append(_box((2.0, 0.5, 0.08), (bx, by, 0.45), yaw=yaw))
        parts += [_box((0.1, 0.45, 0.41), (bx + d * c, by + d * s, 0.205), yaw=yaw) for d in (-0.8, 0.8)]
    level.objects.append(_finish("benches", parts))
    import trimesh

    tx, ty = float(rng.uniform(9, 12)), float(rng.uniform(-4, 2))
    canopy = trimesh.creation.icosphere(subdivisions=2, radius=2.0)
    canopy.apply_scale((1.0, 1.0, 0.8))
    canopy.apply_translation((tx, ty, 4.2))
    level.objects.append(_finish("tree", [_cylinder(0.25, 0.0, 3.0, tx, ty, sections=10), canopy]))

    # Lamp posts: pole, lantern cap; the point lamp sits under the cap.
    parts = []
    for lx, ly in ((-6.0, -6.0), (-6.0, 6.0), (6.0, -6.0), (6.0, 6.0)):
        parts.append(_cylinder(0.07, 0.0, 3.6, lx, ly, sections=8))
        parts.append(_box((0.45, 0.45, 0.1), (lx, ly, 4.1)))
        level.lamps.append(Lamp((lx, ly, 3.85), tuple(10.0 * c for c in LAMP_WARM_RGB)))
    level.objects.append(_finish("lamp_posts", parts))
    return level
