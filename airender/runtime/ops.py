"""numpy versions of the field's building blocks, in float32, matching airender.nn and airender.field.

Shapes: N pixels (or queries), L hash-grid levels, D grid dimensions, F features per level, C channels.
Coordinates uv [N, 2] are pixel centres in (0, 1), x right and y down; hours are float32 and periodic
(24 == 0).
"""
from __future__ import annotations

import numpy as np

HOURS_PER_DAY = np.float32(24.0)
PRIMES = np.array([1, 2654435761, 805459861], dtype=np.int64)
F32 = np.float32


def pixel_centres(pix: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flat pixel indices [N] (y * W + x) -> pixel centres uv [N, 2] float32 in (0, 1)."""
    x = (pix % width).astype(F32)
    y = (pix // width).astype(F32)
    return np.stack(((x + F32(0.5)) / F32(width), (y + F32(0.5)) / F32(height)), axis=1)


def texel_arguments(y, x, t, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random-access arguments checked and shaped: integer texels y [N], x [N] (int64) of a height x width
    frame and hours t [N] (float32; one hour is used for all). ValueError for mismatched lengths,
    non-integer or out-of-range texels."""
    y = np.asarray(y).reshape(-1)
    x = np.asarray(x).reshape(-1)
    if y.shape != x.shape:
        raise ValueError(f"y has {y.size} entries but x has {x.size}")
    if not (np.issubdtype(y.dtype, np.integer) and np.issubdtype(x.dtype, np.integer)):
        if not (np.array_equal(y, np.round(y)) and np.array_equal(x, np.round(x))):
            raise ValueError("y and x must be integer texel coordinates")
    y, x = y.astype(np.int64), x.astype(np.int64)
    if bool(((y < 0) | (y >= height) | (x < 0) | (x >= width)).any()):
        raise ValueError(f"texel outside the {width}x{height} frame")
    t = np.broadcast_to(np.asarray(t, dtype=F32).reshape(-1) if np.ndim(t) else np.asarray([t], F32),
                        y.shape).astype(F32)
    return y, x, t


def wrap_hours(t: np.ndarray) -> np.ndarray:
    """Hours [N] float32 -> [0, 24) (floored modulo, as torch's ``%``)."""
    return np.mod(np.asarray(t, dtype=F32), HOURS_PER_DAY)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x [N, in] @ weight [out, in]^T + bias [out] -> [N, out]."""
    out = x @ weight.T
    if bias is not None:
        out += bias
    return out


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, F32(0.0), out=x)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (F32(1.0) + np.exp(-x))


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + exp(x)), and x itself above 20 (torch's threshold)."""
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, F32(20.0))))).astype(F32)


def fourier_xy(uv: np.ndarray, freqs: np.ndarray, include_input: bool) -> np.ndarray:
    """uv [N, 2] -> [p, sin(f p), cos(f p)] with p = 2 uv - 1 and freqs [K] (pi 2^k): [N, 2 * include + 4K]."""
    p = uv * F32(2.0) - F32(1.0)
    parts = [p] if include_input else []
    if freqs.size:
        angles = (p[:, :, None] * freqs).reshape(p.shape[0], -1)
        parts += [np.sin(angles), np.cos(angles)]
    if not parts:
        return np.zeros((p.shape[0], 0), F32)
    return np.concatenate(parts, axis=1)


def fourier_time(t: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Hours t [N] -> [sin(f t), cos(f t)] [N, 2K] for freqs [K] (2 pi k / 24)."""
    angles = wrap_hours(t)[:, None] * freqs
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def spline_time(t: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hours t [N] -> periodic uniform cubic B-spline blend [N, dim] of ``codes`` [K, dim] (knots every 24/K h)."""
    knots = codes.shape[0]
    u = wrap_hours(t) / HOURS_PER_DAY * F32(knots)
    i = np.floor(u)
    s = (u - i)[:, None]
    w = np.concatenate([(1 - s) ** 3, 3 * s ** 3 - 6 * s ** 2 + 4, -3 * s ** 3 + 3 * s ** 2 + 3 * s + 1, s ** 3],
                       axis=1) / F32(6.0)
    idx = (i.astype(np.int64)[:, None] + np.arange(-1, 3)) % knots
    return (codes[idx] * w[..., None].astype(F32)).sum(axis=1)


class HashGrid:
    """Multi-resolution hash encoding (D = 2: (x, y); D = 3: (x, y, phase = t / 24), periodic in phase).

    ``spec``: {dims, features, table_size, vertices [L][D], scale [L][D], dense [L], offsets [L]} as
    written by the exporter from the trained module; ``table`` [rows, F] float32.
    __call__(coords [N, D] in [0, 1]) -> features [N, L * F].
    """

    def __init__(self, spec: dict, table: np.ndarray):
        self.dims = int(spec["dims"])
        self.features = int(spec["features"])
        self.table_size = int(spec["table_size"])
        self.vertices = np.asarray(spec["vertices"], dtype=np.int64)  # [L, D]
        self.scale = np.asarray(spec["scale"], dtype=F32)  # [L, D]
        self.dense = np.asarray(spec["dense"], dtype=bool)  # [L]
        self.offsets = np.asarray(spec["offsets"], dtype=np.int64)  # [L]
        self.levels = self.vertices.shape[0]
        self.out_dim = self.levels * self.features
        self.table = np.ascontiguousarray(table, dtype=F32)
        if self.table.shape[1] != self.features:
            raise ValueError(f"hash-grid table has {self.table.shape[1]} features, expected {self.features}")
        dims = self.dims
        self.corners = np.array([[(c >> d) & 1 for d in range(dims)] for c in range(1 << dims)], dtype=np.int64)
        strides = np.ones_like(self.vertices)
        strides[:, 1] = self.vertices[:, 0]
        if dims == 3:
            strides[:, 2] = self.vertices[:, 0] * self.vertices[:, 1]
        self.strides = strides

    def level(self, coords: np.ndarray, level: int) -> np.ndarray:
        """Features [N, F] of one level at coords [N, D]: the (bi/tri)linear blend of its 2^D corners."""
        pos = coords * self.scale[level]  # [N, D]
        if self.dims == 3:
            pos[:, 2] = np.mod(pos[:, 2], self.scale[level, 2])
        base = np.floor(pos)
        frac = pos - base
        low = base.astype(np.int64)
        vertices = self.vertices[level]
        axes = []  # per axis: (index, weight) of the lower and the upper corner
        for d in range(self.dims):
            upper = low[:, d] + 1
            if d < 2:
                lower_index = np.clip(low[:, d], 0, vertices[d] - 1)
                upper_index = np.clip(upper, 0, vertices[d] - 1)
            else:
                lower_index, upper_index = np.mod(low[:, d], vertices[d]), np.mod(upper, vertices[d])
            axes.append(((lower_index, F32(1.0) - frac[:, d]), (upper_index, frac[:, d])))
        dense = bool(self.dense[level])
        out = np.zeros((coords.shape[0], self.features), F32)
        for corner in self.corners:
            parts = [axes[d][int(corner[d])] for d in range(self.dims)]
            weight = parts[0][1]
            for d in range(1, self.dims):
                weight = weight * parts[d][1]
            if dense:
                row = parts[0][0] + parts[1][0] * self.strides[level, 1]
                if self.dims == 3:
                    row = row + parts[2][0] * self.strides[level, 2]
            else:
                row = parts[0][0] * PRIMES[0]
                for d in range(1, self.dims):
                    row = np.bitwise_xor(row, parts[d][0] * PRIMES[d])
                row &= self.table_size - 1
            out += np.take(self.table, row + self.offsets[level], axis=0) * weight[:, None]
        return out

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, F32)
        out = np.empty((coords.shape[0], self.out_dim), F32)
        for level in range(self.levels):
            out[:, level * self.features:(level + 1) * self.features] = self.level(coords, level)
        return out

    def _axis(self, values: np.ndarray, level: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Along axis d: (lower vertex [n], upper vertex [n], weight of the upper one [n]) at coordinates
        values [n], as :meth:`level` computes them per point."""
        pos = values * self.scale[level, d]
        base = np.floor(pos)
        frac = (pos - base).astype(F32)
        low = base.astype(np.int64)
        top = self.vertices[level, d] - 1
        return np.clip(low, 0, top), np.clip(low + 1, 0, top), frac

    def frame_columns(self, u: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per level, what :meth:`frame` needs of the columns u [W]: (vertex columns touched [C], position of
        each column's lower and upper vertex among them [2 W], weight of the upper one [W])."""
        u = np.asarray(u, F32)
        plan = []
        for level in range(self.levels):
            x0, x1, fx = self._axis(u, level, 0)
            columns, column_of = np.unique(np.concatenate([x0, x1]), return_inverse=True)
            plan.append((columns, column_of, fx))
        return plan

    def frame(self, columns: list[tuple[np.ndarray, np.ndarray, np.ndarray]], v: np.ndarray) -> np.ndarray:
        """Features [len(v) * W, L * F] at the lattice of points (u[j], v[i]) in row-major order (i slowest):
        a band of pixel rows of a frame whose columns u [W] were planned by :meth:`frame_columns`. 2D grids
        only. The same function as ``__call__`` at those points (up to float rounding): each level is read
        at the vertices the band touches and interpolated along x, then along y, which costs far less per
        point than gathering four corners per point."""
        if self.dims != 2:
            raise ValueError("HashGrid.frame: only for 2D grids")
        v = np.asarray(v, F32)
        width = columns[0][2].size
        out = np.empty((v.size, width, self.out_dim), F32)
        for level in range(self.levels):
            vertex_columns, column_of, fx = columns[level]
            y0, y1, fy = self._axis(v, level, 1)
            rows, inverse = np.unique(np.concatenate([y0, y1]), return_inverse=True)  # vertex rows touched
            if self.dense[level]:
                index = rows[:, None] * self.strides[level, 1] + vertex_columns[None, :]
            else:
                index = np.bitwise_xor(vertex_columns[None, :] * PRIMES[0], rows[:, None] * PRIMES[1]) \
                    & (self.table_size - 1)
            vertex = np.take(self.table, index + self.offsets[level], axis=0)  # [rows, columns, F]
            left, right = vertex[:, column_of[:width]], vertex[:, column_of[width:]]
            right -= left
            right *= fx[None, :, None]
            right += left  # along x: [rows, W, F]
            top, bottom = right[inverse[:v.size]], right[inverse[v.size:]]
            bottom -= top
            bottom *= fy[:, None, None]
            np.add(bottom, top, out=out[:, :, level * self.features:(level + 1) * self.features])
        return out.reshape(-1, self.out_dim)


def conv2d(image: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int = 1, padding: int = 0,
           dilation: int = 1) -> np.ndarray:
    """2D convolution (cross-correlation, zero padding): image [C_in, H, W], weight [C_out, C_in, k, k],
    bias [C_out] -> [C_out, (H + 2p - d (k - 1) - 1) // s + 1, (W + ...) // s + 1]; one matrix product per tap."""
    c_out, _, k, _ = weight.shape
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
    span = dilation * (k - 1) + 1
    height = (padded.shape[1] - span) // stride + 1
    width = (padded.shape[2] - span) // stride + 1
    out = np.empty((c_out, height * width), F32)
    out[:] = bias[:, None]
    for ky in range(k):
        for kx in range(k):
            top, left = ky * dilation, kx * dilation
            tap = padded[:, top:top + stride * (height - 1) + 1:stride, left:left + stride * (width - 1) + 1:stride]
            out += weight[:, :, ky, kx] @ tap.reshape(tap.shape[0], -1)
    return out.reshape(c_out, height, width)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """image [C, h, w] -> [C, height, width], bilinear with align_corners=False (torch ``F.interpolate``)."""

    def axis(size_out: int, size_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(size_out, dtype=F32) + F32(0.5)) * F32(size_in / size_out) - F32(0.5), F32(0.0))
        low = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
        return low, np.minimum(low + 1, size_in - 1), (src - low).astype(F32)

    y0, y1, fy = axis(height, image.shape[1])
    x0, x1, fx = axis(width, image.shape[2])
    rows = image[:, y0] * (F32(1.0) - fy)[None, :, None] + image[:, y1] * fy[None, :, None]
    return (rows[:, :, x0] * (F32(1.0) - fx) + rows[:, :, x1] * fx).astype(F32, copy=False)


def bilinear(features: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Features [C, h, w] read bilinearly at uv [N, 2] -> [N, C] (torch ``grid_sample``, align_corners=False,
    border padding: pixel centres of any resolution; at uv of the map's own pixel centres, its values)."""
    _, h, w = features.shape
    grid = uv * F32(2.0) - F32(1.0)
    ix = np.clip(((grid[:, 0] + F32(1.0)) * F32(w) - F32(1.0)) / F32(2.0), 0, w - 1)
    iy = np.clip(((grid[:, 1] + F32(1.0)) * F32(h) - F32(1.0)) / F32(2.0), 0, h - 1)
    x0, y0 = np.floor(ix).astype(np.int64), np.floor(iy).astype(np.int64)
    fx, fy = (ix - x0).astype(F32)[:, None], (iy - y0).astype(F32)[:, None]
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    flat = features.reshape(features.shape[0], -1).T  # [h * w, C]
    top = flat[y0 * w + x0] * (1 - fx) + flat[y0 * w + x1] * fx
    bottom = flat[y1 * w + x0] * (1 - fx) + flat[y1 * w + x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(F32, copy=False)


# --- value transforms (airender.data.sequence.ValueTransform) --------------------------------------------
def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / F32(12.92),
                    ((np.maximum(v, F32(0.04045)) + F32(0.055)) / F32(1.055)) ** F32(2.4)).astype(F32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, F32(12.92) * x,
                    F32(1.055) * np.maximum(x, F32(0.0031308)) ** F32(1.0 / 2.4) - F32(0.055)).astype(F32)


def to_display(train: np.ndarray, transform: str) -> np.ndarray:
    """Training-space values -> display values (sRGB in [0, 1] for ``identity``, linear radiance >= 0)."""
    if transform == "log1p":
        return np.maximum(np.expm1(train), F32(0.0))
    if transform == "linear":
        return np.maximum(train, F32(0.0))
    return np.clip(train, F32(0.0), F32(1.0))


def to_linear(train: np.ndarray, transform: str) -> np.ndarray:
    """Training-space values -> linear light (unclamped)."""
    if transform == "identity":
        return srgb_to_linear(train)
    return np.expm1(train) if transform == "log1p" else train


def from_linear(linear_light: np.ndarray, transform: str) -> np.ndarray:
    """Linear light -> training-space values (inverse of :func:`to_linear`)."""
    if transform == "identity":
        return linear_to_srgb(linear_light)
    return np.log1p(np.maximum(linear_light, F32(-0.999))) if transform == "log1p" else linear_light


def neighbouring_indices(knots: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For hours t [N] and ascending knots [K] in [0, 24) (float32): the indices [N] of the knots before and
    after each t (cyclically) and the weight [N] in [0, 1) of the later one (0 exactly at a knot)."""
    wrapped = wrap_hours(t)
    after = np.searchsorted(knots, wrapped, side="right")
    before, after = (after - 1) % knots.size, after % knots.size
    span = np.mod(knots[after] - knots[before], HOURS_PER_DAY)
    span = np.where(span == 0, HOURS_PER_DAY, span).astype(F32)
    weight = (np.mod(wrapped - knots[before], HOURS_PER_DAY) / span).astype(F32)
    return before, after, weight


def neighbouring_hours(knots: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`neighbouring_indices` as the knot hours before and after each t (and the weight)."""
    before, after, weight = neighbouring_indices(knots, t)
    return knots[before], knots[after], weight
