"""Rasterise an atlas's UV charts: per-texel world position and normal, the coverage mask, gutter dilation.

A texel is *valid* (mask 127) when a triangle of its atlas touches it: either its centre lies inside the
triangle, or the triangle's point nearest the centre lies inside the texel's square (conservative
coverage, so thin charts keep their texels). Its position and normal are those of that nearest point,
from the corners by barycentric interpolation; a texel whose centre lies inside a triangle always wins
over one that only touches. Every other texel is invalid (mask -1). Gutter texels, invalid ones within
``gutter`` texels of a valid one, get the value of a nearby valid texel when an image is dilated, as a
real baker does so that bilinear filtering across chart borders does not read black.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airender.bake.unwrap import AtlasCharts
from airender.data.virtual_texture import MASK_INVALID, MASK_VALID
CANDIDATES_PER_CHUNK = 1 << 21


@dataclass
class TexelGeometry:
    """The valid texels of one atlas.

    texel: [N] int64 flat row-major indices (row * width + column) of the valid texels.
    position: [N, 3] float32 world positions, metres.
    normal: [N, 3] float32 unit shading normals.
    face_normal: [N, 3] float32 unit geometric normals of the triangle each texel samples.
    object_index: [N] int32 index into ``Level.objects``.
    dilate_to, dilate_from: [M] int64 flat indices: gutter texel ``dilate_to[i]`` copies ``dilate_from[i]``.
    """

    height: int
    width: int
    texel: np.ndarray
    position: np.ndarray
    normal: np.ndarray
    face_normal: np.ndarray
    object_index: np.ndarray
    dilate_to: np.ndarray
    dilate_from: np.ndarray

    @property
    def count(self) -> int:
        return int(self.texel.size)

    def mask(self) -> np.ndarray:
        """[height, width] int8 coverage: 127 valid, -1 invalid (gutters included)."""
        mask = np.full(self.height * self.width, MASK_INVALID, dtype=np.int8)
        mask[self.texel] = MASK_VALID
        return mask.reshape(self.height, self.width)

    def image(self, values: np.ndarray) -> np.ndarray:
        """Scatter per-texel ``values`` [N, C] into a dilated [height, width, C] float32 image (0 outside gutters)."""
        values = np.asarray(values, dtype=np.float32)
        flat = np.zeros((self.height * self.width, values.shape[1]), dtype=np.float32)
        flat[self.texel] = values
        flat[self.dilate_to] = flat[self.dilate_from]
        return flat.reshape(self.height, self.width, values.shape[1])


def _closest_on_triangle(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray):
    """Barycentric coordinates [K, 3] of the point of each 2-D triangle (a, b, c) nearest to ``p`` (all [K, 2]),
    and whether ``p`` lies inside it ([K] bool)."""
    v0, v1, v2 = b - a, c - a, p - a
    d00 = np.einsum("ij,ij->i", v0, v0)
    d01 = np.einsum("ij,ij->i", v0, v1)
    d11 = np.einsum("ij,ij->i", v1, v1)
    d20 = np.einsum("ij,ij->i", v2, v0)
    d21 = np.einsum("ij,ij->i", v2, v1)
    denom = d00 * d11 - d01 * d01
    denom = np.where(np.abs(denom) < 1e-20, 1e-20, denom)
    v = (d11 * d20 - d01 * d21) / denom
    w = (d00 * d21 - d01 * d20) / denom
    u = 1.0 - v - w
    bary = np.stack([u, v, w], axis=1)
    inside = (bary >= -1e-7).all(axis=1)
    if inside.all():
        return bary, inside
    # Outside: the nearest point lies on one of the three edges.
    best_d = np.full(len(p), np.inf)
    best = np.zeros_like(bary)
    corners = (a, b, c)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        e = corners[j] - corners[i]
        t = np.einsum("ij,ij->i", p - corners[i], e) / np.maximum(np.einsum("ij,ij->i", e, e), 1e-20)
        t = np.clip(t, 0.0, 1.0)
        q = corners[i] + t[:, None] * e
        d = np.einsum("ij,ij->i", p - q, p - q)
        closer = d < best_d
        best_d = np.where(closer, d, best_d)
        edge_bary = np.zeros_like(bary)
        edge_bary[:, i], edge_bary[:, j] = 1.0 - t, t
        best = np.where(closer[:, None], edge_bary, best)
    bary = np.where(inside[:, None], bary, best)
    return bary, inside


def rasterize(charts: AtlasCharts, gutter: int) -> TexelGeometry:
    """Rasterise ``charts`` (texel centres, conservative coverage) and plan the dilation of ``gutter`` texels."""
    height, width = charts.height, charts.width
    uv = charts.uv.astype(np.float64)
    area2 = (uv[:, 1, 0] - uv[:, 0, 0]) * (uv[:, 2, 1] - uv[:, 0, 1]) - \
            (uv[:, 2, 0] - uv[:, 0, 0]) * (uv[:, 1, 1] - uv[:, 0, 1])
    faces = np.flatnonzero(np.abs(area2) > 1e-12)
    # Candidate texels: every texel whose square meets the triangle's bounding box.
    lo = np.floor(uv[faces].min(axis=1)).astype(np.int64)
    hi = np.floor(uv[faces].max(axis=1)).astype(np.int64)
    lo = np.clip(lo, 0, [width - 1, height - 1])
    hi = np.clip(hi, 0, [width - 1, height - 1])
    nx, ny = hi[:, 0] - lo[:, 0] + 1, hi[:, 1] - lo[:, 1] + 1
    counts = nx * ny

    # Per texel: the best (smallest) score so far and the barycentrics / face that gave it.
    # Score 0 = centre inside a triangle; otherwise 1 + squared distance to the nearest point.
    size = height * width
    best_score = np.full(size, np.inf)
    best_face = np.full(size, -1, dtype=np.int64)
    best_bary = np.zeros((size, 3), dtype=np.float64)
    ends = np.cumsum(counts)
    start = 0
    while start < len(faces):
        stop = int(np.searchsorted(ends, ends[start - 1] + CANDIDATES_PER_CHUNK if start else CANDIDATES_PER_CHUNK,
                                   side="right"))
        stop = max(stop, start + 1)
        sel = np.arange(start, stop)
        reps = counts[sel]
        f_local = np.repeat(sel, reps)
        offset = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
        x = lo[f_local, 0] + offset % nx[f_local]
        y = lo[f_local, 1] + offset // nx[f_local]
        face = faces[f_local]
        centre = np.stack([x + 0.5, y + 0.5], axis=1)
        tri = uv[face]
        bary, inside = _closest_on_triangle(centre, tri[:, 0], tri[:, 1], tri[:, 2])
        nearest = np.einsum("ki,kij->kj", bary, tri)
        gap = nearest - centre
        touches = inside | (np.abs(gap) <= 0.5).all(axis=1)
        score = np.where(inside, 0.0, 1.0 + np.einsum("ij,ij->i", gap, gap))
        keep = np.flatnonzero(touches)
        flat = y[keep] * width + x[keep]
        # Best candidate per texel within the chunk, then merge with earlier chunks.
        order = np.lexsort((score[keep], flat))
        flat_sorted = flat[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = flat_sorted[1:] != flat_sorted[:-1]
        pick = keep[order[first]]
        pick_flat = flat_sorted[first]
        better = score[pick] < best_score[pick_flat]
        pick, pick_flat = pick[better], pick_flat[better]
        best_score[pick_flat] = score[pick]
        best_face[pick_flat] = face[pick]
        best_bary[pick_flat] = bary[pick]
        start = stop

    texel = np.flatnonzero(best_face >= 0)
    face = best_face[texel]
    bary = best_bary[texel]
    position = np.einsum("ki,kij->kj", bary, charts.position[face].astype(np.float64))
    normal = np.einsum("ki,kij->kj", bary, charts.normal[face].astype(np.float64))
    p = charts.position[face].astype(np.float64)
    face_normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    face_normal /= np.maximum(np.linalg.norm(face_normal, axis=1, keepdims=True), 1e-20)
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = np.where(length > 1e-8, normal / np.maximum(length, 1e-20), face_normal)
    dilate_to, dilate_from = plan_dilation(best_face >= 0, height, width, gutter)
    return TexelGeometry(height=height, width=width, texel=texel, position=position.astype(np.float32),
                         normal=normal.astype(np.float32), face_normal=face_normal.astype(np.float32),
                         object_index=charts.object_index[face].astype(np.int32),
                         dilate_to=dilate_to, dilate_from=dilate_from)


def plan_dilation(valid: np.ndarray, height: int, width: int, gutter: int) -> tuple[np.ndarray, np.ndarray]:
    """For every invalid texel within ``gutter`` rings of a valid one, the flat index of the valid texel it copies.

    ``valid``: [height * width] bool. Ring by ring, an unfilled texel takes the source of its first filled
    neighbour (edge neighbours before corner ones), so each gutter texel copies a nearest valid texel.
    Returns (to, from), both [M] int64.
    """
    source = np.where(valid.reshape(height, width), np.arange(height * width).reshape(height, width), -1)
    neighbours = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))
    for _ in range(gutter):
        ring = source.copy()
        for dy, dx in neighbours:
            shifted = np.full_like(source, -1)
            ys = slice(max(dy, 0), height + min(dy, 0))
            yd = slice(max(-dy, 0), height + min(-dy, 0))
            xs = slice(max(dx, 0), width + min(dx, 0))
            xd = slice(max(-dx, 0), width + min(-dx, 0))
            shifted[yd, xd] = source[ys, xs]
            take = (ring < 0) & (shifted >= 0)
            ring[take] = shifted[take]
        source = ring
    flat = source.ravel()
    to = np.flatnonzero((flat >= 0) & ~valid)
    return to.astype(np.int64), flat[to].astype(np.int64)
