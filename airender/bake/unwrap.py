"""UV-unwrap the level into K lightmap atlases with xatlas, at one texel density for the whole level.

Every atlas but the first may come out smaller than ``size`` (the charts that are left over rarely fill a
whole atlas); its sides are then the smallest powers of two that hold its charts, the height a multiple of
``min_side`` (the number of parts the writer splits it into).

Texel convention: an atlas is ``height`` rows by ``width`` columns; texel (row r, column c) covers
``[c, c + 1] x [r, r + 1]`` in the texel coordinates ``uv`` below, its centre at ``(c + 0.5, r + 0.5)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from airender.bake.scene import Level
from airender.errors import InputError

# Charts larger than this (square metres) are split, so that long walls and the ground pack well.
MAX_CHART_AREA_M2 = 25.0
BISECTION_STEPS = 8


@dataclass
class AtlasCharts:
    """The triangles that one atlas holds.

    uv: [F, 3, 2] float32 texel coordinates of the corners (x = column, y = row).
    position: [F, 3, 3] float32 world positions of the corners, metres.
    normal: [F, 3, 3] float32 unit shading normals at the corners.
    object_index: [F] int32 index into ``Level.objects``.
    """

    index: int
    height: int
    width: int
    uv: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    object_index: np.ndarray


@dataclass
class Unwrap:
    """The level's atlases; ``texels_per_metre`` is the (uniform) texel density, ``padding`` the texels
    xatlas keeps between charts, ``chart_count`` the number of charts over all atlases."""

    atlases: list[AtlasCharts]
    texels_per_metre: float
    padding: int
    chart_count: int


def default_padding(size: int) -> int:
    """Texels between charts: 1 for small atlases, up to 4 for 512 and more."""
    return int(min(4, max(1, size // 128)))


def _pack(level: Level, size: int, texels_per_metre: float, padding: int):
    import xatlas

    atlas = xatlas.Atlas()
    for obj in level.objects:
        atlas.add_mesh(np.ascontiguousarray(obj.mesh.vertices, dtype=np.float32),
                       np.ascontiguousarray(obj.mesh.faces, dtype=np.uint32),
                       np.ascontiguousarray(obj.mesh.vertex_normals, dtype=np.float32))
    chart_options = xatlas.ChartOptions()
    chart_options.max_chart_area = MAX_CHART_AREA_M2
    pack_options = xatlas.PackOptions()
    pack_options.resolution = size
    pack_options.texels_per_unit = texels_per_metre
    pack_options.padding = padding
    pack_options.bilinear = True
    atlas.generate(chart_options, pack_options)
    return atlas


def _next_pow2(n: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1.0, n))))


def unwrap_level(level: Level, size: int, atlases: int, min_side: int = 1, padding: int | None = None) -> Unwrap:
    """Unwrap every mesh of ``level`` into exactly ``atlases`` atlases, the first ``size`` x ``size`` texels.

    The texel density is the largest (found by bisection) at which xatlas packs the charts into
    ``atlases`` atlases. Raises ``InputError`` when no density gives exactly that many.
    """
    padding = default_padding(size) if padding is None else padding
    packed: dict[float, object] = {}

    def count(tpm: float) -> int:
        if tpm not in packed:
            packed[tpm] = _pack(level, size, tpm, padding)
        return packed[tpm].atlas_count

    # Start from the density that would fill the atlases at 50 %, then bracket and bisect (in log space).
    guess = math.sqrt(0.5 * atlases * size * size / level.area_m2)
    low, high = guess, guess
    while count(high) <= atlases:
        high *= 2.0
        if high > guess * 1e4:
            break
    while count(low) > atlases:
        low /= 2.0
        if low < guess * 1e-3:
            raise InputError(f"--atlases: {atlases} atlas(es) of {size} x {size} texels cannot hold the level's "
                             f"{_charts(packed)} charts at any texel density; raise --size or --atlases")
    for _ in range(BISECTION_STEPS):
        middle = math.sqrt(low * high)
        if count(middle) <= atlases:
            low = middle
        else:
            high = middle
    if count(low) != atlases:
        raise InputError(f"--atlases: the level's {_charts(packed)} charts pack into {count(low)} atlas(es) of {size} x "
                         f"{size} texels or into more than {atlases}, never exactly {atlases}; choose another "
                         f"--atlases or --size")
    return _collect(level, packed[low], size, low, padding, min_side)


def _charts(packed: dict) -> int:
    return int(next(iter(packed.values())).chart_count)


def _collect(level: Level, packed, size: int, texels_per_metre: float, padding: int, min_side: int) -> Unwrap:
    """Gather the triangles of each atlas from a packed ``xatlas.Atlas`` and crop the atlases after the first."""
    uv_all, pos_all, nrm_all, obj_all, atlas_all = [], [], [], [], []
    for i, obj in enumerate(level.objects):
        vmapping, indices, uvs = packed[i]
        atlas_of_vertex, _ = packed.get_mesh_vertex_assignment(i)
        indices = indices.astype(np.int64)
        uv_all.append((uvs[indices] * np.float32(size)).astype(np.float32))
        pos_all.append(np.asarray(obj.mesh.vertices, dtype=np.float32)[vmapping][indices])
        nrm_all.append(np.asarray(obj.mesh.vertex_normals, dtype=np.float32)[vmapping][indices])
        obj_all.append(np.full(len(indices), i, dtype=np.int32))
        atlas_all.append(atlas_of_vertex[indices[:, 0]].astype(np.int64))
    uv, pos, nrm = np.concatenate(uv_all), np.concatenate(pos_all), np.concatenate(nrm_all)
    obj_index, atlas_index = np.concatenate(obj_all), np.concatenate(atlas_all)
    result = []
    for a in range(packed.atlas_count):
        pick = atlas_index == a
        height = width = size
        if a > 0:  # the first atlas is full; later ones shrink to the charts they hold
            extent = uv[pick].reshape(-1, 2).max(axis=0) + padding + 1
            width = min(size, max(min_side, _next_pow2(extent[0])))
            height = min(size, max(min_side, _next_pow2(extent[1])))
        result.append(AtlasCharts(index=a, height=height, width=width, uv=uv[pick], position=pos[pick],
                                  normal=nrm[pick], object_index=obj_index[pick]))
    return Unwrap(atlases=result, texels_per_metre=float(texels_per_metre), padding=padding,
                  chart_count=int(packed.chart_count))
