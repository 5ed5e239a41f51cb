"""``level.glb``: the baked level's geometry beside its atlases (glTF 2.0 binary, written with trimesh), so that a
viewer can light the level with its lightmaps.

Layout (glTF's conventions: metres, +Y up; the bake's world is +Z up and is turned (x, y, z) -> (x, z, -y)):

    meshes     one per object and atlas, named ``<object>@<lightmap id>``: POSITION, NORMAL (the bake's shading
               normals), TEXCOORD_0 the lightmap UV: the bake's texel coordinates (column, row) over the atlas's
               width and height, glTF's way round: (0, 0) is the atlas's top-left corner, v grows downwards,
               and texel (c, r) spans [c, c + 1] / W x [r, r + 1] / H (its centre at ((c + 0.5) / W, (r + 0.5) / H))
    mesh extras  {"object", "lightmap_id", "atlas_width", "atlas_height"}: which atlas the mesh's UVs address
    materials  one per object: baseColorFactor = the object's albedo (:data:`ALBEDO`, linear RGB)
    camera     a perspective camera node at the default view; scene extras ``airender`` repeat it as
               {"position", "target", "yfov_deg"} with {"format": "airender-level", "format_version": 1,
               "lightmaps": [ids], "units": "metres", "up": "+y"}
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from airender.fileio import atomic_path

LEVEL_FILE = "level.glb"
LEVEL_FORMAT = "airender-level"
# linear albedo per object of the procedural level (airender.bake.scene), the rest DEFAULT_ALBEDO
ALBEDO = {"ground": (0.32, 0.30, 0.27), "colonnade": (0.62, 0.58, 0.50), "fence": (0.35, 0.24, 0.15),
          "crates": (0.45, 0.33, 0.20), "benches": (0.40, 0.30, 0.20), "tree": (0.18, 0.30, 0.12),
          "lamp_posts": (0.12, 0.12, 0.13)}
BUILDING_ALBEDO = [(0.60, 0.52, 0.42), (0.55, 0.45, 0.40), (0.65, 0.60, 0.52), (0.50, 0.48, 0.45)]
DEFAULT_ALBEDO = (0.5, 0.5, 0.5)
CAMERA_YFOV_DEG = 50.0


def albedo_of(name: str, index: int) -> tuple[float, float, float]:
    """The linear albedo of object ``name`` (the ``index``-th object of the level)."""
    if name in ALBEDO:
        return ALBEDO[name]
    return BUILDING_ALBEDO[index % len(BUILDING_ALBEDO)] if name.startswith("building") else DEFAULT_ALBEDO


def to_y_up(points: np.ndarray) -> np.ndarray:
    """[..., 3] points or directions of the bake's +Z-up world in glTF's +Y-up frame."""
    return np.stack([points[..., 0], points[..., 2], -points[..., 1]], axis=-1)


def default_camera(half_extent: float) -> dict:
    """The default view (glTF frame): from above the south-east corner, looking at the middle of the level."""
    position = to_y_up(np.array([0.95 * half_extent, 0.95 * half_extent, 0.85 * half_extent]))
    return {"position": [float(v) for v in position], "target": [0.0, 0.0, 0.0], "yfov_deg": CAMERA_YFOV_DEG}


def _look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4 x 4 camera-to-world matrix of a camera at ``position`` looking at ``target`` (+Y up; it looks along -Z)."""
    back = position - target
    back = back / np.linalg.norm(back)
    right = np.cross([0.0, 1.0, 0.0], back)
    right = right / np.linalg.norm(right)
    up = np.cross(back, right)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, up, back, position
    return matrix


def _mesh(positions: np.ndarray, normals: np.ndarray, texels: np.ndarray, size: tuple[int, int], material,
          name: str, lightmap_id: int):
    """One mesh of the file: corners [F * 3, 3] in the file's frame, their texel coordinates (column, row) [F * 3, 2]
    in an atlas of ``size`` (width, height)."""
    uv = texels.astype(np.float64) / [size[0], size[1]]
    mesh = trimesh.Trimesh(vertices=positions, faces=np.arange(len(positions)).reshape(-1, 3), vertex_normals=normals,
                           process=False)
    # trimesh keeps v upwards and writes 1 - v: give it 1 - row / H so that the file holds row / H
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1), material=material)
    mesh.metadata.update({"object": name, "lightmap_id": int(lightmap_id), "atlas_width": int(size[0]),
                          "atlas_height": int(size[1])})
    return mesh


def _finish_scene(scene, camera: dict, lightmap_ids: list[int]):
    scene.camera = trimesh.scene.Camera(name="default", fov=(camera["yfov_deg"] * 4 / 3, camera["yfov_deg"]))
    scene.camera_transform = _look_at(np.array(camera["position"]), np.array(camera["target"]))
    scene.metadata["airender"] = {"format": LEVEL_FORMAT, "format_version": 1, "units": "metres", "up": "+y",
                                  "lightmaps": [int(i) for i in lightmap_ids], **camera}
    return scene


def level_scene(level, unwrap, lightmap_ids: list[int]):
    """The trimesh.Scene of ``level`` (airender.bake.scene.Level) unwrapped as ``unwrap`` (airender.bake.unwrap),
    atlas k being lightmap ``lightmap_ids[k]``."""
    scene = trimesh.Scene()
    materials = [trimesh.visual.material.PBRMaterial(name=obj.name, baseColorFactor=[*albedo_of(obj.name, i), 1.0],
                                                     metallicFactor=0.0, roughnessFactor=1.0)
                 for i, obj in enumerate(level.objects)]
    for charts, lightmap_id in zip(unwrap.atlases, lightmap_ids):
        for index in np.unique(charts.object_index):
            pick = charts.object_index == index
            name = level.objects[index].name
            mesh = _mesh(to_y_up(charts.position[pick].reshape(-1, 3)), to_y_up(charts.normal[pick].reshape(-1, 3)),
                         charts.uv[pick].reshape(-1, 2), (charts.width, charts.height), materials[index], name,
                         lightmap_id)
            scene.add_geometry(mesh, geom_name=f"{name}@{lightmap_id}", node_name=f"{name}@{lightmap_id}")
    return _finish_scene(scene, default_camera(level.half_extent), lightmap_ids)


def window_scene(path: str | Path, lightmap_id: int, window: tuple[int, int, int, int], new_id: int):
    """The part of the level in ``path`` (a level.glb) whose triangles' lightmap texels lie in ``window`` (row,
    column, height, width) of lightmap ``lightmap_id``, as the level of an atlas that is that window (lightmap
    ``new_id``), with a default camera that frames it. For the bundled sample, a window of a bake."""
    row, col, height, width = window
    source = trimesh.load(str(path), file_type="glb")
    scene = trimesh.Scene()
    for name, mesh in source.geometry.items():
        meta = mesh.metadata
        if int(meta.get("lightmap_id", -1)) != lightmap_id:
            continue
        corners = np.asarray(mesh.faces).ravel()
        uv = np.asarray(mesh.visual.uv, np.float64)[corners]
        texels = np.stack([uv[:, 0] * meta["atlas_width"], (1.0 - uv[:, 1]) * meta["atlas_height"]], axis=1)
        centre = texels.reshape(-1, 3, 2).mean(axis=1)
        keep = np.repeat((centre[:, 0] >= col) & (centre[:, 0] < col + width) & (centre[:, 1] >= row)
                         & (centre[:, 1] < row + height), 3)
        if not keep.any():
            continue
        part = _mesh(np.asarray(mesh.vertices)[corners][keep], np.asarray(mesh.vertex_normals)[corners][keep],
                     texels[keep] - [col, row], (width, height), mesh.visual.material, meta["object"], new_id)
        scene.add_geometry(part, geom_name=f"{meta['object']}@{new_id}", node_name=f"{meta['object']}@{new_id}")
    if not scene.geometry:
        raise ValueError(f"{path}: no triangle of lightmap {lightmap_id} lies in the window {window}")
    low, high = scene.bounds
    centre, extent = (low + high) / 2.0, float(np.linalg.norm(high - low))
    camera = {"position": [float(v) for v in centre + extent * np.array([0.55, 0.6, 0.55])],
              "target": [float(v) for v in centre], "yfov_deg": CAMERA_YFOV_DEG}
    return _finish_scene(scene, camera, [new_id])


def write_level(folder: str | Path, level, unwrap, lightmap_ids: list[int]) -> Path:
    """Write ``folder``/level.glb (atomically); returns its path."""
    return write_scene(level_scene(level, unwrap, lightmap_ids), Path(folder) / LEVEL_FILE)


def write_scene(scene, path: Path) -> Path:
    """Write a level's trimesh.Scene to ``path`` as glTF binary (atomically); returns ``path``."""
    blob = scene.export(file_type="glb", include_normals=True)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return path
