"""The field f(x, y, t) decoded from a pack with numpy alone.

The pack header's ``model`` section says what to assemble (written by airender.export.pack from the
trained module)::

    transform      training-space transform: identity (LDR sRGB), log1p or linear (HDR)
    encoder        null | {layers: [{name, stride, padding}, ...]}: a CNN over the baseline frame whose
                   feature map is read bilinearly per pixel (convolutions with ReLU between them)
    xy             null | {kind: fourier, freqs, include_input} | {kind: hashgrid, grid: GRID}
    time           {kind: fourier, freqs} | {kind: spline, codes}   (array names)
    xyt_grid       null | GRID: a hash grid over (x, y, t / 24), periodic in t
    mlp            {kind: mlp, layers, hidden, activation: relu|sine, w0, static_dim, dynamic_dim, time_in_mlp}
                   | {kind: basis, layers, hidden, rank, activation, w0, static_dim, dynamic_dim: 0}: the
                   low-rank basis decoder (airender.nn.basis): a time-free MLP ``mlp.static.*`` gives K = rank
                   values b(x) per pixel; RGB = (W + dW(t)) b(x) + c + dc(t) with W, c = ``mlp.output_layer``
    film           null | {layers}: per-hidden-layer scale and shift from the time code
                   | {kind: basis}: the basis coefficients' time part [dW (3 K), dc (3)] from the time code
    residual       the MLP predicts a delta added to the baseline frame (with ``sources``: to source_baseline)
    baseline       null | name of the baseline frame [H, W, 3] (training space)
    source_baseline null | name of the light sources' baseline frames [H, W, S, 3] (training space)
    sources        null | {names, knots, on, terms}: the MLP predicts S light sources (3 S outputs), each
                   switched on and off by time (``on`` [S][K] at the trained hours ``knots``; strictly between
                   two knots a source is on unless off at both); a term named in ``terms`` ({term: source})
                   takes its source's place; all light is the sum of the sources (each >= 0) in linear light
    light_switch   null | {off, on, grid: GRID | null}: a lamp image (linear light) added while the
                   local lights are on (t < off or t > on)
    blend_knots    null | the training hours; a time between two of them decodes as the blend of the
                   field at those hours
    sun            null | a sun term added in linear light at the true time (see airender.runtime.sun)
    GRID           {array, dims, features, table_size, vertices, scale, dense, offsets}

Array names follow the trained module's state dict (``mlp.hidden_layers.0.weight`` ...).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import ops
from .ops import F32
from .sun import SunLight

CHUNK_PIXELS = 1 << 16
BASIS_BLOCK = 1 << 14  # pixels per [K, n] block of a basis decoder's frame cache
THREADS = max(1, min(8, os.cpu_count() or 1))  # default worker threads of whole-frame work
GROUP_ROWS = 256  # query rows at one hour from which they run as one batch (see FieldModel.query)


@dataclass
class ChunkCache:
    """Time-invariant values of a chunk of N pixels: uv [N, 2]; first [N, hidden] the first layer's
    pre-activation from the static inputs (bias included); baseline [N, 3] (training space) or None;
    lamp [N, 3] (linear light) or None; sun [N, C] the sun term's time-free part (SunLight.prepare) or
    None. The frame caches of a basis decoder keep the basis K-major in ``blocks`` instead of ``first``
    (one [K, n] matrix per block of rows: the per-frame product reads it contiguously)."""

    uv: np.ndarray
    first: np.ndarray | None
    baseline: np.ndarray | None
    lamp: np.ndarray | None
    blocks: list[np.ndarray] | None = None  # basis decoder, frame caches: b(x) as [K, n] per BASIS_BLOCK rows
    sun: np.ndarray | None = None


class FieldModel:
    """A decoded pack. ``decode(t)`` -> float32 [H, W, 3] display values (sRGB in [0, 1] for LDR, linear
    radiance for HDR); ``query(y, x, t)`` -> [N, 3] at single texels of the native resolution.

    Everything about a resolution that does not depend on time is computed on its first decode and kept
    (the two most recent resolutions); per frame only the time code, FiLM parameters (or a basis
    decoder's coefficients), time-dependent grid features and the remaining layers run. Whole frames and
    their caches are processed in bands of rows on ``threads`` threads. ``texel_cache_bytes`` > 0 makes
    ``query`` keep the native texels' time-invariant values (built on first use, when they fit), so a
    query gathers them instead of computing them; either way a texel costs the same wherever it is.
    """

    def __init__(self, header: dict, arrays: dict[str, np.ndarray], nbytes: int = 0, source: str = "pack"):
        self.header, self.arrays, self.nbytes, self.source = header, arrays, nbytes, source
        data, spec = header["data"], header["model"]
        self.spec = spec
        self.height, self.width = int(data["height"]), int(data["width"])
        self.is_hdr = bool(data["is_hdr"])
        self.times = [float(t) for t in data["times"]]
        self.transform = spec["transform"]
        self.mlp = spec["mlp"]
        self.activation = self.mlp["activation"]
        self.w0 = F32(self.mlp["w0"]) if self.activation == "sine" else F32(1.0)
        self.static_dim, self.dynamic_dim = int(self.mlp["static_dim"]), int(self.mlp["dynamic_dim"])
        self.baseline = arrays[spec["baseline"]] if spec.get("baseline") else None
        self.sources = spec.get("sources")  # light sources (see the module docstring) or None
        if self.sources:
            self.source_names = tuple(self.sources["names"])
            self.source_knots = np.asarray(self.sources["knots"], F32)
            self.source_on = np.asarray(self.sources["on"], bool).reshape(len(self.source_names), -1)
        self.outputs = 3 * len(self.source_names) if self.sources else 3  # the MLP's outputs
        self.residual_frame = None  # [H, W, C] added to the MLP's C outputs in residual mode
        if spec["residual"]:
            frame = arrays[spec["source_baseline"]] if spec.get("source_baseline") else self.baseline
            self.residual_frame = frame.reshape(self.height, self.width, -1)
        self.xy_grid = ops.HashGrid(spec["xy"]["grid"], arrays[spec["xy"]["grid"]["array"]]) \
            if spec.get("xy") and spec["xy"]["kind"] == "hashgrid" else None
        self.xyt_grid = ops.HashGrid(spec["xyt_grid"], arrays[spec["xyt_grid"]["array"]]) \
            if spec.get("xyt_grid") else None
        switch = spec.get("light_switch")
        self.lamp_grid = ops.HashGrid(switch["grid"], arrays[switch["grid"]["array"]]) \
            if switch and switch.get("grid") else None
        self.blend_knots = np.asarray(sorted(spec["blend_knots"]), F32) if spec.get("blend_knots") else None
        self.sun = SunLight(spec["sun"], arrays) if spec.get("sun") else None
        self.basis = self.mlp.get("kind", "mlp") == "basis"
        self.first_dim = int(self.mlp["rank"] if self.basis else self.mlp["hidden"])  # cached values per pixel
        prefix = "mlp.static." if self.basis else "mlp."
        weight0 = arrays[f"{prefix}hidden_layers.0.weight"]
        self.w_static, self.w_dynamic = weight0[:, :self.static_dim], weight0[:, self.static_dim:]
        self._feature_map: np.ndarray | None = None
        self._caches: dict[tuple[int, int], list[ChunkCache]] = {}
        self.texel_cache_bytes = 0  # > 0: query() keeps the native texels' time-invariant values up to this size
        self._texel_cache: ChunkCache | None = None
        self.threads = THREADS  # whole frames are decoded (and their caches built) chunk by chunk on this many threads
        self._pool: ThreadPoolExecutor | None = None

    def _map(self, work, items: list) -> list:
        """[work(item) for item in items], on ``threads`` threads (numpy releases the GIL in its array work)."""
        if self.threads <= 1 or len(items) <= 1:
            return [work(item) for item in items]
        if self._pool is None or self._pool._max_workers != self.threads:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="airender-runtime")
        return list(self._pool.map(work, items))

    # --- time-invariant inputs -----------------------------------------------------------------------------
    def feature_map(self) -> np.ndarray:
        """The encoder's feature map [C, h, w] of the baseline frame (computed once)."""
        if self._feature_map is None:
            x = np.ascontiguousarray(self.baseline.transpose(2, 0, 1))
            layers = self.spec["encoder"]["layers"]
            for i, layer in enumerate(layers):
                x = ops.conv2d(x, self.arrays[f"{layer['name']}.weight"], self.arrays[f"{layer['name']}.bias"],
                               int(layer["stride"]), int(layer["padding"]))
                if i < len(layers) - 1:
                    x = ops.relu(x)
            self._feature_map = x
        return self._feature_map

    def _grid(self, grid: ops.HashGrid, uv: np.ndarray, lattice: tuple | None) -> np.ndarray:
        """Features of a hash grid at uv [N, 2]; with ``lattice`` = (column plans by grid, v [R]) the points
        are a band of frame rows and the grid is read row by row (:meth:`ops.HashGrid.frame`)."""
        if lattice is not None and grid.dims == 2:
            plans, v = lattice
            return grid.frame(plans[id(grid)], v)
        return grid(uv)

    def static_features(self, uv: np.ndarray, lattice: tuple | None = None) -> np.ndarray:
        """Time-invariant MLP inputs [N, static_dim] at pixel centres uv [N, 2] (``lattice``: see _grid)."""
        parts = []
        if self.spec.get("encoder"):
            parts.append(ops.bilinear(self.feature_map(), uv))
        xy = self.spec.get("xy")
        if xy:
            if xy["kind"] == "hashgrid":
                parts.append(self._grid(self.xy_grid, uv, lattice))
            else:
                parts.append(ops.fourier_xy(uv, self.arrays[xy["freqs"]], bool(xy["include_input"])))
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def residual_at(self, uv: np.ndarray, pix: np.ndarray | None) -> np.ndarray | None:
        """The residual baseline [N, C] (training space): exact at flat native pixel indices ``pix``, else
        bilinear; None outside residual mode."""
        frame = self.residual_frame
        if frame is None:
            return None
        if pix is not None:
            return frame.reshape(self.height * self.width, -1)[pix]
        return ops.bilinear(np.ascontiguousarray(frame.transpose(2, 0, 1)), uv)

    def lamp_image(self, static: np.ndarray, uv: np.ndarray, lattice: tuple | None = None) -> np.ndarray:
        """Lamp image [N, 3] >= 0 in linear light."""
        if self.lamp_grid is not None:
            static = np.concatenate([static, self._grid(self.lamp_grid, uv, lattice)], axis=1)
        a = self.arrays
        hidden = ops.relu(ops.linear(static, a["lamp_head.0.weight"], a["lamp_head.0.bias"]))
        return ops.softplus(ops.linear(hidden, a["lamp_head.2.weight"], a["lamp_head.2.bias"]))

    def prepare(self, uv: np.ndarray, pix: np.ndarray | None = None, lattice: tuple | None = None,
                blocks: bool = False) -> ChunkCache:
        """Everything about pixels uv [N, 2] that does not depend on time (``pix``: flat indices at the
        native resolution, for the exact baseline; ``lattice``: the pixels are a band of frame rows, see
        :meth:`_grid`; ``blocks``: a basis decoder's frame cache, see ChunkCache)."""
        static = self.static_features(uv, lattice)
        baseline = self.residual_at(uv, pix)
        lamp = self.lamp_image(static, uv, lattice) if self.spec.get("light_switch") else None
        sun = self.sun.prepare(static) if self.sun is not None else None
        if self.basis and blocks:  # a frame cache: the basis K-major, BASIS_BLOCK pixels per block
            return ChunkCache(uv=uv, first=None, baseline=baseline, lamp=lamp,
                              blocks=[self.basis_values(static[s:s + BASIS_BLOCK], k_major=True)
                                      for s in range(0, static.shape[0], BASIS_BLOCK)], sun=sun)
        first = self.basis_values(static) if self.basis else \
            ops.linear(static, self.w_static, self.arrays["mlp.hidden_layers.0.bias"])
        return ChunkCache(uv=uv, first=first.astype(F32, copy=False), baseline=baseline, lamp=lamp, sun=sun)

    def _frame_chunks(self, height: int, width: int, blocks: bool = False) -> list[ChunkCache]:
        """Chunk caches of every pixel of a height x width frame: bands of whole rows in row-major order,
        built on ``threads`` threads (``blocks``: see :meth:`prepare`)."""
        native = (height, width) == (self.height, self.width)
        u = (np.arange(width, dtype=F32) + F32(0.5)) / F32(width)
        plans = {id(g): g.frame_columns(u) for g in (self.xy_grid, self.lamp_grid) if g is not None and g.dims == 2}
        if self.spec.get("encoder"):
            self.feature_map()  # once, before the threads share it
        rows_per_chunk = max(1, CHUNK_PIXELS // width)

        def band(top: int) -> ChunkCache:
            rows = np.arange(top, min(top + rows_per_chunk, height), dtype=np.int64)
            pix = (rows[:, None] * width + np.arange(width, dtype=np.int64)[None, :]).reshape(-1)
            v = (rows.astype(F32) + F32(0.5)) / F32(height)
            return self.prepare(ops.pixel_centres(pix, height, width), pix if native else None, (plans, v), blocks)

        return self._map(band, list(range(0, height, rows_per_chunk)))

    def caches(self, height: int, width: int) -> list[ChunkCache]:
        """Chunk caches covering every pixel of a height x width frame in row-major order (bands of rows)."""
        key = (height, width)
        if key not in self._caches:
            chunks = self._frame_chunks(height, width, blocks=self.basis)
            while len(self._caches) >= 2:
                self._caches.pop(next(iter(self._caches)))
            self._caches[key] = chunks
        return self._caches[key]

    # --- time --------------------------------------------------------------------------------------------
    def time_code(self, t: np.ndarray) -> np.ndarray:
        """Time encoding [N, D] of hours t [N]."""
        time = self.spec["time"]
        if time["kind"] == "spline":
            return ops.spline_time(t, self.arrays[time["codes"]])
        return ops.fourier_time(t, self.arrays[time["freqs"]])

    def film_params(self, t: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Per hidden layer (scale [N, hidden], shift [N, hidden]) for hours t [N]; None without FiLM."""
        if not self.spec.get("film"):
            return None
        a = self.arrays
        hidden = ops.silu(ops.linear(self.time_code(t), a["film.net.0.weight"], a["film.net.0.bias"]))
        out = ops.linear(hidden, a["film.net.2.weight"], a["film.net.2.bias"])
        out = out.reshape(t.shape[0], int(self.mlp["layers"]), 2, int(self.mlp["hidden"]))
        return [(F32(1.0) + out[:, i, 0], out[:, i, 1]) for i in range(out.shape[1])]

    def dynamic_first(self, uv: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The first layer's contribution of the time-dependent inputs: [N, hidden] (or [1, hidden] when it
        does not depend on the pixel), for hours t [N] or one hour t [1]."""
        out = 0.0
        columns = 0
        if self.mlp["time_in_mlp"]:
            code = self.time_code(t)
            columns = code.shape[1]
            out = ops.linear(code, self.w_dynamic[:, :columns])
        if self.xyt_grid is not None:
            phase = (ops.wrap_hours(t) / ops.HOURS_PER_DAY).astype(F32)
            phase = np.broadcast_to(phase, (uv.shape[0],))
            features = self.xyt_grid(np.concatenate([uv, phase[:, None]], axis=1))
            out = out + ops.linear(features, self.w_dynamic[:, columns:])
        return out

    def lights_on(self, t: np.ndarray) -> np.ndarray:
        """Local-light state [N] (float32 0/1): on for t < off or t > on, hours wrapped to [0, 24)."""
        switch = self.spec["light_switch"]
        wrapped = ops.wrap_hours(t)
        return ((wrapped < F32(switch["off"])) | (wrapped > F32(switch["on"]))).astype(F32)

    # --- basis decoder -----------------------------------------------------------------------------------
    def basis_values(self, static: np.ndarray, k_major: bool = False) -> np.ndarray:
        """The basis decoder's time-free MLP: static features [N, static_dim] -> b(x) [N, K] (or, with
        ``k_major``, [K, N] contiguous: the last layer computed transposed, no copy)."""
        a, h = self.arrays, static
        for i in range(int(self.mlp["layers"])):
            h = ops.linear(h, a[f"mlp.static.hidden_layers.{i}.weight"], a[f"mlp.static.hidden_layers.{i}.bias"])
            h = np.sin(h * self.w0, out=h) if self.activation == "sine" else ops.relu(h)
        weight, bias = a["mlp.static.output_layer.weight"], a["mlp.static.output_layer.bias"]
        if k_major:
            out = weight @ h.T
            out += bias[:, None]
            return out.astype(F32, copy=False)
        return ops.linear(h, weight, bias).astype(F32, copy=False)

    def coefficients(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Basis coefficients at hours t [N]: (C [N, 3, K], c [N, 3]); RGB = C b(x) + c."""
        a, rank = self.arrays, self.first_dim
        weight, bias = a["mlp.output_layer.weight"], a["mlp.output_layer.bias"]
        hidden = ops.silu(ops.linear(self.time_code(t), a["film.net.0.weight"], a["film.net.0.bias"]))
        out = ops.linear(hidden, a["film.net.2.weight"], a["film.net.2.bias"])
        outputs = weight.shape[0]
        return weight + out[:, :outputs * rank].reshape(-1, outputs, rank), bias + out[:, outputs * rank:]

    def frame_coefficients(self, hour: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C [3, K], c [3]) of one hour [1]; between blend knots the blend of the knots' coefficients
        (the decoder is linear in them, so this is the blend of the two frames)."""
        if self.blend_knots is None:
            weight, bias = self.coefficients(hour)
            return weight[0], bias[0]
        before, after, w = ops.neighbouring_hours(self.blend_knots, hour)
        weight, bias = self.coefficients(np.concatenate([before, after]))
        return weight[0] + w[0] * (weight[1] - weight[0]), bias[0] + w[0] * (bias[1] - bias[0])

    # --- MLP ---------------------------------------------------------------------------------------------
    def _act(self, h: np.ndarray) -> np.ndarray:
        return np.sin(h, out=h) if self.activation == "sine" else ops.relu(h)

    def _mlp_one_hour(self, pre: np.ndarray, film: list[tuple[np.ndarray, np.ndarray]] | None) -> np.ndarray:
        """The MLP from the first pre-activation [N, hidden] at one hour: FiLM scales and w0 folded into each
        layer's weights (``film`` rows of length 1)."""
        a, w0 = self.arrays, self.w0
        if film is not None:
            scale, shift = film[0]
            h = np.multiply(pre, scale * w0)
            h += shift * w0
        else:
            h = pre * w0 if self.activation == "sine" else pre.copy()
        h = self._act(h)
        for i in range(1, int(self.mlp["layers"])):
            weight, bias = a[f"mlp.hidden_layers.{i}.weight"], a[f"mlp.hidden_layers.{i}.bias"]
            if film is not None:
                scale, shift = film[i][0][0], film[i][1][0]
                weight, bias = weight * scale[:, None], bias * scale + shift
            h = self._act(ops.linear(h, weight * w0, bias * w0))
        return ops.linear(h, a["mlp.output_layer.weight"], a["mlp.output_layer.bias"])

    def _mlp_rows(self, pre: np.ndarray, film: list[tuple[np.ndarray, np.ndarray]] | None) -> np.ndarray:
        """The MLP from the first pre-activation [N, hidden] with per-row FiLM ([N, hidden] each)."""
        a = self.arrays
        h = pre
        for i in range(int(self.mlp["layers"])):
            if i > 0:
                h = ops.linear(h, a[f"mlp.hidden_layers.{i}.weight"], a[f"mlp.hidden_layers.{i}.bias"])
            if film is not None:
                h = h * film[i][0] + film[i][1]
            h = np.sin(self.w0 * h) if self.activation == "sine" else np.maximum(h, F32(0.0))
        return ops.linear(h, a["mlp.output_layer.weight"], a["mlp.output_layer.bias"])

    def _raw_one_hour(self, cache: ChunkCache, hour: np.ndarray) -> np.ndarray:
        """MLP output [N, 3] at one hour [1] for the cached pixels."""
        if self.basis:
            weight, bias = self.coefficients(hour)
            return ops.linear(cache.first, weight[0], bias[0])
        first = cache.first
        if self.dynamic_dim:
            first = first + self.dynamic_first(cache.uv, hour)
        return self._mlp_one_hour(first, self.film_params(hour))

    def _raw_rows(self, first: np.ndarray, uv: np.ndarray, t: np.ndarray) -> np.ndarray:
        """MLP output [N, 3] for pixels with static pre-activation first [N, hidden] at hours t [N]."""
        if self.basis:
            hours, inverse = np.unique(t, return_inverse=True)
            weight, bias = self.coefficients(hours)
            return np.einsum("nk,nok->no", first, weight[inverse]) + bias[inverse]
        if self.dynamic_dim:
            first = first + self.dynamic_first(uv, t)
        film = None
        if self.spec.get("film"):
            hours, inverse = np.unique(t, return_inverse=True)
            film = [(scale[inverse], shift[inverse]) for scale, shift in self.film_params(hours)]
        return self._mlp_rows(first, film)

    def _blended(self, raw_at, t: np.ndarray) -> np.ndarray:
        """``raw_at(t)``, or with blend knots the blend of ``raw_at`` at the neighbouring training hours."""
        if self.blend_knots is None:
            return raw_at(t)
        before, after, weight = ops.neighbouring_hours(self.blend_knots, t)
        raw = raw_at(before)
        if bool((weight > 0).any()):
            raw = raw + weight[:, None] * (raw_at(after) - raw)
        return raw

    def source_gate(self, t: np.ndarray) -> np.ndarray:
        """On/off state [N, S] (float32 0/1) of the light sources at hours t [N]."""
        before, after, weight = ops.neighbouring_indices(self.source_knots, t)
        lit = self.source_on[:, before] | (self.source_on[:, after] & (weight > 0))
        return lit.T.astype(F32)

    def _sources(self, pred: np.ndarray, t: np.ndarray, sun: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(all light [N, 3], gated sources [N, S, 3]) in the training space from the MLP's sources [N, 3 S]
        at hours t [N] or [1] (the sun term, when the field has one, in its source's place)."""
        pred = pred.reshape(pred.shape[0], len(self.source_names), 3)
        if sun is not None:
            pred = pred.copy()
            pred[:, self.source_names.index(self.sources["terms"]["sun"])] = ops.from_linear(sun, self.transform)
        gated = pred * self.source_gate(t)[:, :, None]
        linear = ops.to_linear(np.maximum(gated, F32(0.0)), self.transform).sum(axis=1)
        return ops.from_linear(linear, self.transform).astype(F32, copy=False), gated

    def _compose(self, raw: np.ndarray, baseline: np.ndarray | None, gate: np.ndarray | None,
                 lamp: np.ndarray | None, sun: np.ndarray | None = None, t: np.ndarray | None = None) -> np.ndarray:
        """MLP output -> training-space prediction: + the residual baseline, then either the light sources
        summed at hours t (a field with ``sources``) or + gate x lamp and + sun [N, 3] in linear light."""
        out = raw + baseline if baseline is not None else raw
        if self.sources:
            return self._sources(out, t, sun)[0]
        if lamp is None and sun is None:
            return out
        linear = ops.to_linear(out, self.transform)
        if lamp is not None:
            linear = linear + gate[:, None] * lamp
        if sun is not None:
            linear = linear + sun
        return ops.from_linear(linear, self.transform)

    # --- public decoding ---------------------------------------------------------------------------------
    def decode_train_space(self, t: float, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Frame at hour ``t`` in the training space, float32 [H, W, 3]."""
        return self._frame(t, width, height, sources=False)

    def _frame(self, t: float, width: int | None, height: int | None, sources: bool) -> np.ndarray:
        """All light [H, W, 3] at hour ``t`` in the training space, or with ``sources`` every light source
        [H, W, S, 3] (each >= 0)."""
        height, width = self._size(width, height)
        hour = np.full((1,), t, dtype=F32)
        gate = self.lights_on(hour) if self.spec.get("light_switch") else None
        channels = self.outputs if sources else 3
        out = np.empty((height * width, channels), F32)
        coefficients = self.frame_coefficients(hour) if self.basis else None
        caches = self.caches(height, width)
        starts = np.cumsum([0] + [cache.uv.shape[0] for cache in caches])

        def chunk(k: int) -> None:  # rows [starts[k], starts[k + 1]) of the frame
            cache = caches[k]
            start, stop = int(starts[k]), int(starts[k + 1])
            sun = self.sun.light(cache.sun, hour) if cache.sun is not None else None
            plain = self.basis and cache.baseline is None and cache.lamp is None and sun is None and not self.sources
            if self.basis:
                raw = out[start:stop] if plain else np.empty((stop - start, self.outputs), F32)
                self._basis_rows(cache.blocks, coefficients, raw)
            else:
                raw = self._blended(lambda h: self._raw_one_hour(cache, h), hour)
            if sources:
                pred = raw + cache.baseline if cache.baseline is not None else raw
                out[start:stop] = np.maximum(self._sources(pred, hour, sun)[1], F32(0.0)).reshape(stop - start, -1)
            elif not plain:
                out[start:stop] = self._compose(raw, cache.baseline, gate, cache.lamp, sun, hour)

        self._map(chunk, list(range(len(caches))))
        return out.reshape(height, width, -1, 3) if sources else out.reshape(height, width, 3)

    def decode_sources(self, t: float, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Every light source at hour ``t`` as display values, float32 [H, W, S, 3] in the order of
        ``source_names`` (a model trained with ``--components``; ValueError otherwise)."""
        if not self.sources:
            raise ValueError("this model was trained without --components: it predicts no light sources")
        return ops.to_display(self._frame(t, width, height, sources=True), self.transform)

    def decode_source(self, t: float, source: str = "original") -> np.ndarray:
        """One light source at hour ``t`` (``original``: all light), display values [H, W, 3]."""
        if source == "original":
            return self.decode(t)
        names = self.source_names if self.sources else ()
        if source not in names:
            raise ValueError(f"no light source {source!r} in this model (it decodes {', '.join(('original',) + names)})")
        return self.decode_sources(t)[:, :, names.index(source)]

    @staticmethod
    def _basis_rows(blocks: list[np.ndarray], coefficients: tuple[np.ndarray, np.ndarray], out: np.ndarray) -> None:
        """out [n, 3] = C b + c for the basis blocks [K, n_i] (n = sum n_i) and coefficients (C [3, K], c [3])."""
        weight, bias = coefficients
        start = 0
        for block in blocks:
            values = weight @ block  # [3, n_i]: the block is read once, contiguously
            values += bias[:, None]
            out[start:start + block.shape[1]] = values.T
            start += block.shape[1]

    def decode(self, t: float, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Frame at hour ``t`` (fractional hours allowed, periodic) as float32 [H, W, 3] display values:
        sRGB in [0, 1] for LDR data, linear radiance for HDR; native size unless width and height are given."""
        return ops.to_display(self.decode_train_space(t, width, height), self.transform)

    def texel_cache(self) -> ChunkCache | None:
        """The time-invariant values of every texel of the native resolution as one ChunkCache (rows in
        row-major texel order), built on first use when it fits in ``texel_cache_bytes``; else None."""
        if self._texel_cache is None and self.texel_cache_bytes > 0:
            per_texel = 4 * (2 + self.first_dim + (self.residual_frame.shape[2] if self.residual_frame is not None else 0)
                             + 3 * bool(self.spec.get("light_switch"))
                             + (6 + self.sun.w_pixel.shape[0] if self.sun is not None else 0))
            if self.height * self.width * per_texel <= self.texel_cache_bytes:
                chunks = self._frame_chunks(self.height, self.width)
                joined = {name: None if getattr(chunks[0], name) is None
                          else np.concatenate([getattr(c, name) for c in chunks])
                          for name in ("uv", "first", "baseline", "lamp", "sun")}
                self._texel_cache = ChunkCache(**joined)
        return self._texel_cache

    def _texel_values(self, pix: np.ndarray) -> ChunkCache:
        """The time-invariant values of native texels ``pix`` [N] (flat indices): gathered from the texel
        cache when there is one, else computed (the same cost for every texel either way)."""
        full = self.texel_cache()
        if full is None:
            return self.prepare(ops.pixel_centres(pix, self.height, self.width), pix)
        return ChunkCache(uv=full.uv[pix], first=full.first[pix],
                          baseline=None if full.baseline is None else full.baseline[pix],
                          lamp=None if full.lamp is None else full.lamp[pix],
                          sun=None if full.sun is None else full.sun[pix])

    def query(self, y, x, t) -> np.ndarray:
        """Random access: display values [N, 3] at integer texels (y [N], x [N]) of the native resolution
        at hours t [N] (or one hour for all), equal to the frame decode at those texels.

        Rows that share an hour with many others (at least ``GROUP_ROWS``) run as one batch at that hour,
        as a frame decode does; the others run row by row. The cost of a row does not depend on where its
        texel is."""
        y, x, t = ops.texel_arguments(y, x, t, self.height, self.width)
        pix = y * self.width + x
        out = np.empty((y.size, 3), F32)
        hours, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
        grouped = counts[inverse] >= GROUP_ROWS
        tasks = []  # (rows of the output, their hour [1] or None for one hour per row)
        for k in np.flatnonzero(counts >= GROUP_ROWS):
            rows = np.flatnonzero(inverse == k)
            tasks += [(rows[start:start + CHUNK_PIXELS], hours[k:k + 1]) for start in range(0, rows.size, CHUNK_PIXELS)]
        single = np.flatnonzero(~grouped)
        tasks += [(single[start:start + CHUNK_PIXELS], None) for start in range(0, single.size, CHUNK_PIXELS)]
        coefficients = {float(h[0]): self.frame_coefficients(h) for _, h in tasks if h is not None and self.basis}

        def run(task) -> None:
            chunk, hour = task
            cache = self._texel_values(pix[chunk])
            when = t[chunk] if hour is None else hour
            if hour is None:
                raw = self._blended(lambda h: self._raw_rows(cache.first, cache.uv, h), when)
                gate = self.lights_on(when) if cache.lamp is not None else None
                sun = self.sun.light(cache.sun, when) if cache.sun is not None else None
            else:
                sun = self.sun.light(cache.sun, hour) if cache.sun is not None else None
                gate = self.lights_on(hour) if cache.lamp is not None else None
                raw = (coefficients[float(hour[0])][0] @ cache.first.T).T + coefficients[float(hour[0])][1] \
                    if self.basis else self._blended(lambda h: self._raw_one_hour(cache, h), hour)
            out[chunk] = self._compose(raw, cache.baseline, gate, cache.lamp, sun, when)

        self._map(run, tasks)
        return ops.to_display(out, self.transform)

    def _size(self, width: int | None, height: int | None) -> tuple[int, int]:
        if (width is None) != (height is None):
            raise ValueError("give both width and height, or neither")
        if width is None:
            return self.height, self.width
        if int(width) < 1 or int(height) < 1:
            raise ValueError("width and height must be positive")
        return int(height), int(width)
