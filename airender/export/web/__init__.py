"""GLSL ES 3.0 fragment shader and a static WebGL2 viewer page for a trained field.

The shader (``field.frag.glsl`` in this folder, under a generated block of constants) evaluates the
field per fragment for the hour in the uniform ``u_hour``: static features (hash grid, Fourier octaves,
the baseline CNN's feature map baked as a texture), the first layer, the time code, FiLM, the remaining
layers, time blending, the residual baseline and the lamp image, exactly as airender.runtime does. Its
inputs are data textures read with ``texelFetch``:

    u_params    every weight and bias, each matrix row padded to whole texels (PARAMS_WIDTH wide)
    u_tables    hash-grid tables, one row of F features in ceil(F / 4) texels (TABLES_WIDTH wide)
    u_baseline  the baseline frame [H, W] (residual fields)
    u_features  the baseline CNN's feature map, C channels per pixel in C / 4 texels (encoder fields)

and the uniforms u_hour (hours), u_size (output pixels) and u_exposure (HDR preview exposure).

The data are the values of the field's pack at the export's precision (``quant``, see
airender.export.pack), so the shader decodes what airender.runtime decodes from that pack:

    fp32  every texture RGBA32F (float32)
    fp16  u_params, u_tables and u_features RGBA16F (half floats: the fp16 pack's values exactly; the
          feature map, computed from the pack's weights, rounded to half); u_baseline RGBA8 (q / 255)
          when the pack stores it as 8 bits, else RGBA32F
    int8  u_tables RGBA8I (the int8 pack's q; the shader multiplies by the level's scale, a constant);
          the int8 weight matrices in u_weights (RGBA8I, rows padded to whole texels) with their
          per-output-channel scales in u_wscale (R32F, one per row); biases and time codes in u_params
          (RGBA16F); u_features and u_baseline as at fp16. A weight offset (W_*) then addresses matrix
          m = offset >> MATRIX_SHIFT (m > 0; its start, texels per row and first scale are Q_START[m],
          Q_TPR[m], Q_SCALE0[m]); m = 0 is u_params.

``--format glsl`` writes field.frag, field.vert, textures.bin (the textures' texels, little endian,
one after another) and textures.json (their names, sizes, formats, dtypes and byte offsets, and the
uniforms).
``--format html`` writes a page that works from file:// : index.html and viewer.js (static assets of
this folder) and model.js (the shader, the textures in base64, the model's description); the page
exposes ``window.airenderViewer`` with ``ready`` (a promise), ``setHour(h)``, ``readPixels()`` (a
promise of {width, height, data}: RGBA8 rows from the top) and ``comparison``. ``airender view --truth``
adds truth.js (:func:`truth_script`): the page then shows the ground truth and an error view beside
the model. :func:`shader_layout` (constants, weight offsets, data) is shared with the WGSL compute
shader (airender.export.wgsl).
"""
from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from importlib import resources
from pathlib import Path

import numpy as np
from torch import nn

from airender import __version__
from airender.errors import InputError
from airender.export.pack import model_spec, pack_bytes
from airender.export.web.between import BWEIGHTS_WIDTH, BetweenPasses, glsl_programs, model_passes
from airender.fileio import atomic_path, write_text_atomic
from airender.runtime.model import FieldModel
from airender.runtime.packfile import StoredArray, parse_pack

PARAMS_WIDTH = 1024
TABLES_WIDTH = 2048
FEATURES_WIDTH = 4096
WEB_FORMATS = ("glsl", "html")
MATRIX_SHIFT = 20  # int8 exports: a weight offset is (m << MATRIX_SHIFT) + texel within matrix m
TEXTURE_FORMATS = {("float32", 4): "RGBA32F", ("float16", 4): "RGBA16F", ("int8", 4): "RGBA8I",
                   ("uint8", 4): "RGBA8", ("float32", 1): "R32F", ("int32", 4): "RGBA32I"}
VERTEX_SHADER = """#version 300 es
// A triangle that covers the viewport; the fragment shader does the work.
void main() {
    vec2 p = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    gl_Position = vec4(p * 2.0 - 1.0, 0.0, 1.0);
}
"""


@dataclass
class Texture:
    """A data texture: ``texels`` [height, width, 4] of float32 (RGBA32F), float16 (RGBA16F), int8 (RGBA8I,
    read as integers), uint8 (RGBA8, read as q / 255) or int32 (RGBA32I, a tiled program's tile index); or
    [height, width, 1] float32 (R32F)."""

    texels: np.ndarray

    @property
    def width(self) -> int:
        return int(self.texels.shape[1])

    @property
    def height(self) -> int:
        return int(self.texels.shape[0])

    @property
    def dtype(self) -> str:
        return self.texels.dtype.name

    @property
    def format(self) -> str:
        """The WebGL2 internal format: RGBA32F, RGBA16F, RGBA8I, RGBA8, R32F or RGBA32I."""
        return TEXTURE_FORMATS[(self.dtype, int(self.texels.shape[2]))]

    @property
    def nbytes(self) -> int:
        return int(self.texels.nbytes)

    def tobytes(self) -> bytes:
        """The texels, little endian, row by row."""
        return self.texels.astype(self.texels.dtype.newbyteorder("<"), copy=False).tobytes()


def _flat_texture(values: np.ndarray, width: int, channels: int = 4) -> Texture:
    """Texels [n, channels] (their dtype kept) laid out row-major in a texture ``width`` texels wide (zero
    padded)."""
    texels = np.asarray(values).reshape(-1, channels)
    width = max(1, min(width, texels.shape[0]))
    height = max(1, math.ceil(texels.shape[0] / width))
    padded = np.zeros((height * width, channels), texels.dtype)
    padded[:texels.shape[0]] = texels
    return Texture(padded.reshape(height, width, channels))


def _texels(n: int) -> int:
    return (n + 3) // 4


@dataclass
class _Params:
    """Weights and biases packed into texels; every block starts on a texel, every matrix row too.

    Float blocks go to ``chunks`` (u_params); int8 matrices (with one scale per row) to ``q_chunks``
    (u_weights) and ``scales`` (u_wscale), addressed as (m << MATRIX_SHIFT) + texel for matrix m >= 1."""

    chunks: list[np.ndarray] = dataclass_field(default_factory=list)
    size: int = 0  # texels
    q_chunks: list[np.ndarray] = dataclass_field(default_factory=list)
    q_size: int = 0  # texels of the int8 matrices
    scales: list[np.ndarray] = dataclass_field(default_factory=list)
    scale_count: int = 0
    q_start: list[int] = dataclass_field(default_factory=lambda: [0])  # per matrix m (index 0: unused)
    q_tpr: list[int] = dataclass_field(default_factory=lambda: [1])
    q_scale0: list[int] = dataclass_field(default_factory=lambda: [0])

    def matrix(self, weight: np.ndarray, scale: np.ndarray | None = None) -> int:
        """Add weight [out, in] (rows padded to whole texels); returns its first texel. With ``scale`` [out]
        the weight is int8 (value = q * scale of its row) and goes to the int8 matrices."""
        if scale is not None:
            return self._int8_matrix(weight, scale)
        rows, cols = weight.shape
        padded = np.zeros((rows, _texels(cols) * 4), np.float32)
        padded[:, :cols] = weight
        return self._add(padded.reshape(-1, 4))

    def vector(self, values: np.ndarray) -> int:
        values = np.asarray(values, np.float32).reshape(-1)
        padded = np.zeros(_texels(values.size) * 4, np.float32)
        padded[:values.size] = values
        return self._add(padded.reshape(-1, 4))

    def _int8_matrix(self, q: np.ndarray, scale: np.ndarray) -> int:
        rows, cols = q.shape
        per_row = _texels(cols)
        if rows * per_row >= 1 << MATRIX_SHIFT:
            raise InputError(f"a weight of {rows} x {cols} is too large for the int8 shaders")
        padded = np.zeros((rows, per_row * 4), np.int8)
        padded[:, :cols] = q
        m = len(self.q_start)
        self.q_start.append(self.q_size)
        self.q_tpr.append(per_row)
        self.q_scale0.append(self.scale_count)
        self.q_chunks.append(padded.reshape(-1, 4))
        self.q_size += rows * per_row
        self.scales.append(np.asarray(scale, np.float32).reshape(rows))
        self.scale_count += rows
        return m << MATRIX_SHIFT

    def _add(self, texels: np.ndarray) -> int:
        start = self.size
        self.chunks.append(texels)
        self.size += texels.shape[0]
        return start

    def texture(self) -> Texture:
        return _flat_texture(np.concatenate(self.chunks), PARAMS_WIDTH)

    def int8_textures(self) -> dict[str, Texture]:
        """u_weights (RGBA8I) and u_wscale (R32F) of the int8 matrices (none without them)."""
        if not self.q_chunks:
            return {}
        if self.size >= 1 << MATRIX_SHIFT:
            raise InputError(f"{self.size} texels of biases are too many for the int8 shaders")
        return {"u_weights": _flat_texture(np.concatenate(self.q_chunks), PARAMS_WIDTH),
                "u_wscale": _flat_texture(np.concatenate(self.scales), PARAMS_WIDTH, channels=1)}


def _glsl_float(value: float) -> str:
    text = repr(float(np.float32(value)))
    return text if ("." in text or "e" in text) else text + ".0"


def _float_array(name: str, values) -> str:
    values = list(values) or [0.0]
    return f"const float {name}[{len(values)}] = float[{len(values)}]({', '.join(_glsl_float(v) for v in values)});"


def _int_array(name: str, values) -> str:
    values = [int(v) for v in values] or [0]
    return f"const int {name}[{len(values)}] = int[{len(values)}]({', '.join(str(v) for v in values)});"


def _grid_glsl(function: str, prefix: str, spec: dict, base_texel: int, scales: list[float] | None = None) -> str:
    """A GLSL function ``function(vec3 coords, out vec4 feats[PREFIX_F4])`` for one hash grid (``scales``:
    an int8 table's scale per level)."""
    dims, features = int(spec["dims"]), int(spec["features"])
    vertices = [list(v) + [1] * (3 - len(v)) for v in spec["vertices"]]
    scale = [list(s) + [0.0] * (3 - len(s)) for s in spec["scale"]]
    levels = len(vertices)
    per_row = _texels(features)
    lines = [
        f"#define {prefix}_L {levels}",
        f"#define {prefix}_F {features}",
        f"#define {prefix}_TPR {per_row}",
        f"#define {prefix}_BASE {base_texel}",
        f"#define {prefix}_MASK {int(spec['table_size']) - 1}u",
        f"const ivec3 {prefix}_VERT[{levels}] = ivec3[{levels}]("
        + ", ".join(f"ivec3({a}, {b}, {c})" for a, b, c in vertices) + ");",
        f"const vec3 {prefix}_SCALE[{levels}] = vec3[{levels}]("
        + ", ".join(f"vec3({', '.join(_glsl_float(v) for v in s)})" for s in scale) + ");",
        _int_array(f"{prefix}_DENSE", [int(bool(d)) for d in spec["dense"]]),
        _int_array(f"{prefix}_OFFSET", spec["offsets"]),
        *([_float_array(f"{prefix}_QS", scales)] if scales is not None else []),
        f"void {function}(vec3 coords, out vec4 feats[{prefix}_F4]) {{",
        f"    for (int k = 0; k < {prefix}_F4; ++k) feats[k] = vec4(0.0);",
        f"    for (int l = 0; l < {prefix}_L; ++l) {{",
        f"        vec3 pos = coords * {prefix}_SCALE[l];",
    ]
    if dims == 3:
        lines.append(f"        pos.z = mod(pos.z, {prefix}_SCALE[l].z);")
    lines += [
        "        vec3 base = floor(pos);",
        "        vec3 frac = pos - base;",
        "        ivec3 b = ivec3(base);",
        f"        ivec3 vert = {prefix}_VERT[l];",
        f"        for (int c = 0; c < {1 << dims}; ++c) {{",
        "            ivec3 corner = ivec3(c & 1, (c >> 1) & 1, (c >> 2) & 1);",
        "            ivec3 idx = b + corner;",
        "            idx.xy = clamp(idx.xy, ivec2(0), vert.xy - 1);",
    ]
    weight = "(corner.x == 1 ? frac.x : 1.0 - frac.x) * (corner.y == 1 ? frac.y : 1.0 - frac.y)"
    dense = "idx.x + idx.y * vert.x"
    hashed = "uint(idx.x) ^ (uint(idx.y) * 2654435761u)"
    if dims == 3:
        lines.append("            idx.z = idx.z % vert.z;")
        weight += " * (corner.z == 1 ? frac.z : 1.0 - frac.z)"
        dense += " + idx.z * vert.x * vert.y"
        hashed += " ^ (uint(idx.z) * 805459861u)"
    lines += [
        f"            float w = {weight};",
        f"            int row = {prefix}_DENSE[l] == 1 ? {dense} : int(({hashed}) & {prefix}_MASK);",
        f"            row += {prefix}_OFFSET[l];",
        f"            for (int q = 0; q < {prefix}_TPR; ++q) {{",
        f"                vec4 v = T4({prefix}_BASE + row * {prefix}_TPR + q)"
        + (f" * {prefix}_QS[l];" if scales is not None else ";"),
        "                for (int e = 0; e < 4; ++e) {",
        "                    int f = q * 4 + e;",
        f"                    int j = l * {prefix}_F + f;",
        f"                    if (f < {prefix}_F) GET(feats, j) += w * v[e];",
        "                }",
        "            }",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join([f"#define {prefix}_F4 {_texels(levels * features)}"] + lines)


@dataclass
class GridLayout:
    """One hash grid as the shaders read it: the GLSL/WGSL function name, the prefix of its constants, the
    grid's spec (see airender.runtime.model), its first texel in the tables and, for an int8 table, its
    scale per level (value = q * scale)."""

    function: str
    prefix: str
    spec: dict
    base_texel: int
    scales: list[float] | None = None


@dataclass
class ShaderLayout:
    """What a shader of ``model`` needs, independent of the shading language.

    ``defines``: integer constants (sizes, feature switches, offsets in texels of every weight block in
    ``params``); ``floats``: float constants (W0, LIGHT_OFF, LIGHT_ON); ``float_arrays`` / ``int_arrays``:
    constant arrays (XY_FREQS, TIME_FREQS, KNOTS / W_HID, B_HID: offsets of the hidden layers);
    ``grids``: the hash grids; ``textures``: the data (u_params, u_tables, u_baseline, u_features; at int8
    also u_weights, u_wscale), at the precision ``quant`` (see the module's description)."""

    defines: dict[str, int]
    floats: dict[str, float]
    float_arrays: dict[str, list[float]]
    int_arrays: dict[str, list[int]]
    grids: list[GridLayout]
    textures: dict[str, Texture]
    quant: str = "fp32"


@dataclass
class ShaderProgram:
    """A field as a fragment shader with its textures and a description of both; ``between``: the passes of the
    run's network between the hours when the pack carries one (airender.export.web.between), else None."""

    fragment: str
    vertex: str
    textures: dict[str, Texture]
    meta: dict
    between: BetweenPasses | None = None
    functions: str = ""  # the same code without ``#version`` and ``main``: field_display(uv, t) for other shaders

    def between_texture(self) -> Texture:
        """u_bweights: the network's weights as the pass shaders read them (RGBA32F, BWEIGHTS_WIDTH wide)."""
        return _flat_texture(self.between.glsl_weights, BWEIGHTS_WIDTH)


def shader_layout(model: FieldModel, stored: dict[str, StoredArray] | None = None) -> ShaderLayout:
    """The constants, weight offsets and data textures that decode ``model`` (a pack's runtime model), at
    the precision of its pack (``model.header["quant"]``); an int8 model needs ``stored``, the pack's
    arrays as stored (:func:`pack_model`).

    Raises InputError for a model the shaders do not implement."""
    spec, a = model.spec, model.arrays
    quant = model.header.get("quant", "fp32")
    if quant == "int8" and stored is None:
        raise ValueError("the shader layout of an int8 pack needs its stored arrays (pack_model)")
    int8 = {name: s for name, s in (stored or {}).items() if s.scale is not None} if quant == "int8" else {}
    mlp = spec["mlp"]
    kind = mlp.get("kind", "mlp")
    if kind not in ("mlp", "basis"):
        raise InputError(f"the shaders decode MLP and basis fields; this model's decoder is {kind!r} "
                         f"(export it as a pack or ONNX)")
    basis = kind == "basis"
    prefix = "mlp.static." if basis else "mlp."
    hidden, layers = int(mlp["hidden"]), int(mlp["layers"])
    static_dim = int(mlp["static_dim"])
    params = _Params()
    tables: list[np.ndarray] = []
    table_texels = 0
    defines: dict[str, int] = {"PARAMS_WIDTH": PARAMS_WIDTH, "TABLES_WIDTH": TABLES_WIDTH,
                               "FEATURES_WIDTH": FEATURES_WIDTH, "HIDDEN": hidden, "H4": _texels(hidden),
                               "LAYERS": layers, "SINE": int(mlp["activation"] == "sine"),
                               "STATIC_DIM": static_dim, "S4": _texels(static_dim)}
    floats: dict[str, float] = {"W0": float(mlp["w0"])}
    float_arrays: dict[str, list[float]] = {}
    int_arrays: dict[str, list[int]] = {}
    grids: list[GridLayout] = []

    def matrix(name: str, columns: slice | None = None) -> int:
        """Add the weight ``name`` [out, in] (its ``columns``) to the params; returns its offset."""
        if name in int8:
            q = int8[name].data
            return params.matrix(q if columns is None else q[:, columns], int8[name].scale)
        return params.matrix(a[name] if columns is None else a[name][:, columns])

    def add_grid(function: str, prefix: str, grid: dict) -> int:
        nonlocal table_texels
        table, scales = a[grid["array"]], None
        if quant == "int8":
            stored_table = int8[grid["array"]]
            if list(stored_table.scale_rows or []) != [int(o) for o in grid["offsets"]]:
                raise ValueError(f"{grid['array']}: the int8 table's scales are not per level")
            table, scales = stored_table.data, [float(s) for s in stored_table.scale]
        per_row = _texels(table.shape[1])
        padded = np.zeros((table.shape[0], per_row * 4), table.dtype)
        padded[:, :table.shape[1]] = table
        grids.append(GridLayout(function, prefix, grid, table_texels, scales))
        tables.append(padded.reshape(-1, 4))
        table_texels += padded.shape[0] * per_row
        return len(grid["vertices"]) * int(grid["features"])

    # static inputs
    encoder = spec.get("encoder")
    defines["ENCODER"] = int(bool(encoder))
    textures: dict[str, Texture] = {}
    if encoder:
        feature_map = model.feature_map()  # [C, h, w]
        channels, fh, fw = feature_map.shape
        c4 = _texels(channels)
        per_pixel = np.zeros((fh, fw, c4 * 4), np.float32)
        per_pixel[..., :channels] = feature_map.transpose(1, 2, 0)
        textures["u_features"] = _flat_texture(per_pixel.reshape(-1, 4), FEATURES_WIDTH)
        defines.update(ENC_C=channels, ENC_C4=c4, ENC_W=fw, ENC_H=fh)
    xy = spec.get("xy")
    defines["XY_KIND"] = 0 if not xy else (2 if xy["kind"] == "hashgrid" else 1)
    if xy and xy["kind"] == "fourier":
        freqs = a[xy["freqs"]]
        defines.update(XY_INCLUDE_INPUT=int(bool(xy["include_input"])), XY_OCTAVES=int(freqs.size))
        float_arrays["XY_FREQS"] = [float(f) for f in freqs]
    elif xy:
        defines["XY_DIM"] = add_grid("grid_xy", "XY", xy["grid"])
    # time code
    time = spec["time"]
    if time["kind"] == "spline":
        codes = a[time["codes"]]
        code_dim = codes.shape[1]
        defines.update(TIME_SPLINE=1, SPLINE_KNOTS=codes.shape[0], SPLINE_CODES=matrix(time["codes"]))
    else:
        freqs = a[time["freqs"]]
        code_dim = 2 * freqs.size
        defines.update(TIME_SPLINE=0, TIME_HARMONICS=int(freqs.size))
        float_arrays["TIME_FREQS"] = [float(f) for f in freqs]
    if code_dim == 0:
        raise InputError("the shader needs a time code: this field has no time harmonics")
    defines.update(CODE_DIM=code_dim, C4=_texels(code_dim), TIME_IN_MLP=int(bool(mlp["time_in_mlp"])))
    # first layer, split by input block
    weight0 = a[f"{prefix}hidden_layers.0.weight"]
    defines["W_L0S"] = matrix(f"{prefix}hidden_layers.0.weight", slice(0, static_dim))
    defines["B_L0"] = params.vector(a[f"{prefix}hidden_layers.0.bias"])
    column = static_dim
    if mlp["time_in_mlp"]:
        defines["W_L0T"] = matrix(f"{prefix}hidden_layers.0.weight", slice(column, column + code_dim))
        column += code_dim
    defines["XYT_GRID"] = int(bool(spec.get("xyt_grid")))
    if spec.get("xyt_grid"):
        dim = add_grid("grid_xyt", "XYT", spec["xyt_grid"])
        defines["W_L0G"] = matrix(f"{prefix}hidden_layers.0.weight", slice(column, column + dim))
        column += dim
    if column != weight0.shape[1]:
        raise InputError(f"the first layer has {weight0.shape[1]} inputs but the shader assembles {column}")
    hid_w, hid_b = [0], [0]
    for i in range(1, layers):
        hid_w.append(matrix(f"{prefix}hidden_layers.{i}.weight"))
        hid_b.append(params.vector(a[f"{prefix}hidden_layers.{i}.bias"]))
    int_arrays.update(W_HID=hid_w, B_HID=hid_b)
    defines["BASIS"] = int(basis)
    if basis:  # the time-free MLP's last layer gives the basis; mlp.output_layer is the coefficients' mean
        rank = int(mlp["rank"])
        defines.update(RANK=rank, R4=_texels(rank), W_BASIS=matrix("mlp.static.output_layer.weight"),
                       B_BASIS=params.vector(a["mlp.static.output_layer.bias"]))
    defines["W_OUT"] = matrix("mlp.output_layer.weight")
    defines["B_OUT"] = params.vector(a["mlp.output_layer.bias"])
    defines["FILM"] = int(bool(spec.get("film")) and not basis)
    defines["TIME_NET"] = int(bool(spec.get("film")))  # a generator from the time code (FiLM or coefficients)
    if spec.get("film"):
        film_hidden = a["film.net.0.weight"].shape[0]
        defines.update(FILM_HIDDEN=film_hidden, FH4=_texels(film_hidden),
                       W_F0=matrix("film.net.0.weight"), B_F0=params.vector(a["film.net.0.bias"]),
                       W_F2=matrix("film.net.2.weight"), B_F2=params.vector(a["film.net.2.bias"]))
    # light switch
    switch = spec.get("light_switch")
    defines["LIGHT_SWITCH"] = int(bool(switch))
    defines["LAMP_GRID"] = int(bool(switch and switch.get("grid")))
    if switch:
        lamp_in = static_dim
        if switch.get("grid"):
            dim = add_grid("grid_lamp", "LAMP", switch["grid"])
            defines["LAMP_GRID_DIM"] = dim
            lamp_in += dim
        lamp_hidden = a["lamp_head.0.weight"].shape[0]
        defines.update(LAMP_IN4=_texels(lamp_in), LAMP_HIDDEN=lamp_hidden, LH4=_texels(lamp_hidden),
                       W_LAMP0=matrix("lamp_head.0.weight"), B_LAMP0=params.vector(a["lamp_head.0.bias"]),
                       W_LAMP2=matrix("lamp_head.2.weight"), B_LAMP2=params.vector(a["lamp_head.2.bias"]))
        floats.update(LIGHT_OFF=float(switch["off"]), LIGHT_ON=float(switch["on"]))
    # sun term (airender/nn/sun_term.py, airender/runtime/sun.py)
    sun = spec.get("sun")
    defines["SUN"] = int(bool(sun))
    if sun:
        sun_hidden = a["sun.response.0.weight"].shape[0]
        curve_hidden = a["sun.irradiance.0.weight"].shape[0]
        defines.update(SUN_HARMONICS=int(sun["harmonics"]), SUN_HIDDEN=sun_hidden, SH4=_texels(sun_hidden),
                       SUN_CURVE=curve_hidden, SC4=_texels(curve_hidden),
                       W_SR0=matrix("sun.response.0.weight"), B_SR0=params.vector(a["sun.response.0.bias"]),
                       W_SR2=matrix("sun.response.2.weight"), B_SR2=params.vector(a["sun.response.2.bias"]),
                       W_SV0S=matrix("sun.visibility_net.0.weight", slice(0, static_dim)),
                       W_SV0D=matrix("sun.visibility_net.0.weight", slice(static_dim, static_dim + 7)),
                       B_SV0=params.vector(a["sun.visibility_net.0.bias"]),
                       W_SV2=matrix("sun.visibility_net.2.weight"), B_SV2=params.vector(a["sun.visibility_net.2.bias"]),
                       W_SV4=matrix("sun.visibility_net.4.weight"), B_SV4=params.vector(a["sun.visibility_net.4.bias"]),
                       W_SI0=matrix("sun.irradiance.0.weight"), B_SI0=params.vector(a["sun.irradiance.0.bias"]),
                       W_SI2=matrix("sun.irradiance.2.weight"), B_SI2=params.vector(a["sun.irradiance.2.bias"]))
        if a["sun.visibility_net.0.weight"].shape[1] != static_dim + 7:
            raise InputError("the sun term's visibility network does not take the pixel features and 7 direction "
                             "features")
        float_arrays["SUN_PATH"] = [float(v) for v in a[sun["path"]].reshape(-1)]
        floats["SUN_DAY_FADE"] = float(sun["day_fade"])
    defines["TIME_BLEND"] = int(model.blend_knots is not None)
    # the trained hours, for time blending and the light sources' gates (both knot the trained hours)
    knots = [float(k) for k in model.blend_knots] if model.blend_knots is not None else \
        [float(k) for k in spec["sources"]["knots"]] if spec.get("sources") else None
    defines["HAS_KNOTS"] = int(knots is not None)
    if knots is not None:
        defines["N_KNOTS"] = len(knots)
        float_arrays["KNOTS"] = knots
    # light sources (--components): the MLP's 3 S outputs, each source switched by time, summed in linear light
    sources = spec.get("sources")
    defines["SOURCES"] = len(sources["names"]) if sources else 0
    defines["OUTPUTS"] = 3 * max(1, defines["SOURCES"])
    if sources:
        if [float(k) for k in sources["knots"]] != knots:
            raise InputError("the light sources' gates knot other hours than the field's time blending")
        int_arrays["SOURCE_ON"] = [int(bool(v)) for row in sources["on"] for v in row]
        terms = sources.get("terms", {})
        if sun:
            defines["SUN_SOURCE"] = list(sources["names"]).index(terms["sun"])
    defines["RESIDUAL"] = int(bool(spec["residual"]))
    defines.update(BASE_W=model.width, BASE_H=model.height)
    if spec["residual"]:  # one frame per light source (or the one baseline frame), stacked by rows
        frames = model.residual_frame.reshape(model.height, model.width, -1, 3).transpose(2, 0, 1, 3)
        baseline = np.zeros((frames.shape[0] * model.height, model.width, 4), np.float32)
        baseline[..., :3] = frames.reshape(-1, model.width, 3)
        textures["u_baseline"] = Texture(baseline)
    defines["TRANSFORM"] = {"identity": 0, "log1p": 1, "linear": 2}[model.transform]
    defines["HDR"] = int(model.is_hdr)
    defines["HAS_TABLES"] = int(bool(tables))
    textures["u_params"] = params.texture()
    if tables:
        textures["u_tables"] = _flat_texture(np.concatenate(tables), TABLES_WIDTH)
    if quant != "fp32":
        _reduce(textures, model)
        int8_textures = params.int8_textures()
        if int8_textures:
            textures.update(int8_textures)
            int_arrays.update(Q_START=params.q_start, Q_TPR=params.q_tpr, Q_SCALE0=params.q_scale0)
    return ShaderLayout(defines, floats, float_arrays, int_arrays, grids, textures, quant)


def _half(texture: Texture, exact: bool) -> Texture:
    """``texture`` as float16 (``exact``: its values are float16 values, checked)."""
    halves = texture.texels.astype(np.float16)
    if exact and not np.array_equal(halves.astype(np.float32), texture.texels):
        raise ValueError("values of a float16 pack are not float16")
    return Texture(halves)


def _reduce(textures: dict[str, Texture], model: FieldModel) -> None:
    """The float textures of an fp16 or int8 pack's layout at that precision (see the module's description)."""
    textures["u_params"] = _half(textures["u_params"], exact=True)  # weights (fp16), biases and time codes
    if "u_tables" in textures and textures["u_tables"].dtype == "float32":
        textures["u_tables"] = _half(textures["u_tables"], exact=True)
    if "u_features" in textures:
        textures["u_features"] = _half(textures["u_features"], exact=False)
    if "u_baseline" in textures:
        entry = next((e for e in model.header.get("arrays", []) if e.get("name") == model.spec.get("baseline")), {})
        if entry.get("dtype") == "uint8" and entry.get("unorm") == 255:
            texels = np.round(textures["u_baseline"].texels * 255.0).astype(np.uint8)
            texels[..., 3] = 0
            textures["u_baseline"] = Texture(texels)


_GLSL_P4 = "vec4 P4(int i) { return texelFetch(u_params, ivec2(i % PARAMS_WIDTH, i / PARAMS_WIDTH), 0); }\n"
_GLSL_T4 = "vec4 T4(int i) { return texelFetch(u_tables, ivec2(i % TABLES_WIDTH, i / TABLES_WIDTH), 0); }\n"
_GLSL_INT8_PARAMS = {
    "uniform sampler2D u_params;\n": "uniform sampler2D u_params;\nuniform highp isampler2D u_weights;\n"
                                     "uniform sampler2D u_wscale;\n",
    _GLSL_P4: f"""// texel i of the parameters: i >> {MATRIX_SHIFT} == 0: u_params (biases, time codes); else the int8
// matrix m = i >> {MATRIX_SHIFT} in u_weights, times the scale of its row (u_wscale)
vec4 P4(int i) {{
    int m = i >> {MATRIX_SHIFT};
    int t = i & {(1 << MATRIX_SHIFT) - 1};
    if (m == 0) return texelFetch(u_params, ivec2(t % PARAMS_WIDTH, t / PARAMS_WIDTH), 0);
    int p = Q_START[m] + t;
    int r = Q_SCALE0[m] + t / Q_TPR[m];
    return vec4(texelFetch(u_weights, ivec2(p % PARAMS_WIDTH, p / PARAMS_WIDTH), 0))
        * texelFetch(u_wscale, ivec2(r % PARAMS_WIDTH, r / PARAMS_WIDTH), 0).x;
}}
""",
}
_GLSL_INT8_TABLES = {
    "uniform sampler2D u_tables;\n": "uniform highp isampler2D u_tables;\n",
    _GLSL_T4: "vec4 T4(int i) { return vec4(texelFetch(u_tables, ivec2(i % TABLES_WIDTH, i / TABLES_WIDTH), 0)); }\n",
}


def _int8_glsl(body: str, layout: ShaderLayout) -> str:
    """field.frag.glsl's body with the reads of int8 data (u_weights, an RGBA8I u_tables) where it has them."""
    edits = dict(_GLSL_INT8_PARAMS) if "u_weights" in layout.textures else {}
    if "u_tables" in layout.textures and layout.textures["u_tables"].dtype == "int8":
        edits.update(_GLSL_INT8_TABLES)
    for old, new in edits.items():
        if body.count(old) != 1:
            raise ValueError(f"field.frag.glsl: expected one {old.strip()!r}")
        body = body.replace(old, new)
    return body


def shader_program(model: FieldModel, exposure: float = 1.0, stored: dict[str, StoredArray] | None = None
                   ) -> ShaderProgram:
    """The GLSL ES 3.0 program and textures that decode ``model`` (a pack's runtime model; an int8 pack's
    needs ``stored``, see :func:`shader_layout`)."""
    layout = shader_layout(model, stored)
    return layout_program(layout, program_meta(model, exposure, layout.quant), model_passes(model))


def program_meta(model: FieldModel, exposure: float, quant: str) -> dict:
    """The description of a program decoding ``model``'s frames (textures.json, model.js's meta)."""
    return {"format": "airender-glsl", "format_version": 1, "airender_version": __version__,
            "width": model.width, "height": model.height, "is_hdr": model.is_hdr, "times": model.times,
            "exposure": float(exposure), "transform": model.transform, "quant": quant,
            "uniforms": {"u_hour": "float, hour of day", "u_size": "vec2, output width and height in pixels",
                         "u_exposure": "float, HDR preview exposure",
                         "u_linear": "int, 1: linear light with rows from the top (the frames the network between "
                                     "the hours reads), 0: the display value"}}


def layout_program(layout: ShaderLayout, meta: dict, between: BetweenPasses | None = None,
                   edits: dict[str, str] | None = None, grid_edits: dict[str, str] | None = None) -> ShaderProgram:
    """The program of ``layout`` (field.frag.glsl under its constants); ``edits``: {text of the template: its
    replacement}, each text found exactly once, and ``grid_edits`` {text: replacement} in the hash-grid
    functions (a tiled program's routing, airender.export.web.tiled)."""
    consts = [*(_float_array(name, values) for name, values in layout.float_arrays.items()),
              *(_int_array(name, values) for name, values in layout.int_arrays.items()),
              *(f"const float {name} = {_glsl_float(value)};" for name, value in layout.floats.items() if name != "W0")]
    grids = [_grid_glsl(g.function, g.prefix, g.spec, g.base_texel, g.scales) for g in layout.grids]
    for old, new in (grid_edits or {}).items():
        grids = [code.replace(old, new) for code in grids]
    prelude = ["#version 300 es", "precision highp float;", "precision highp int;", "precision highp sampler2D;",
               f"// airender {__version__}: generated constants of this model",
               *(f"#define {k} {v}" for k, v in layout.defines.items()),
               f"#define W0 {_glsl_float(layout.floats['W0'])}", *consts]
    body = _int8_glsl(resources.files(__package__).joinpath("field.frag.glsl").read_text(encoding="utf-8"), layout)
    for old, new in (edits or {}).items():
        if body.count(old) != 1:
            raise ValueError(f"field.frag.glsl: expected one {old.strip()!r}")
        body = body.replace(old, new)
    body = body.replace("//@GRIDS", "\n\n".join(grids)).replace("//@TILED\n", "")
    fragment = "\n".join(prelude) + "\n" + body
    functions = "\n".join(prelude[1:] + ["#define FIELD_FUNCTIONS_ONLY 1"]) + "\n" + body
    return ShaderProgram(fragment=fragment, vertex=VERTEX_SHADER, textures=layout.textures, meta=meta,
                         between=between, functions=functions)


def preview_exposure(model: FieldModel) -> float:
    """HDR preview exposure: the 99th luminance percentile of the frame at the baseline hour maps to 0.9."""
    if not model.is_hdr:
        return 1.0
    frame = model.decode(float(model.header["data"].get("baseline_time", 12.0)))
    p99 = float(np.percentile(frame @ np.array([0.2126, 0.7152, 0.0722], np.float32), 99.0))
    return 0.9 / p99 if p99 > 0 else 1.0


def pack_model(field: nn.Module, quant: str = "fp32", between: tuple | None = None
               ) -> tuple[FieldModel, dict[str, StoredArray]]:
    """The runtime model of the pack of ``field`` at precision ``quant`` (``between``: the run's network between
    the hours and its light-switch hours, carried as the pack carries it) and, for int8, the pack's arrays
    as it stores them (int8 values and their scales: airender.export.pack's quantisation); else {}."""
    contents = parse_pack(pack_bytes(field, quant, between), "field")
    model = FieldModel(contents.header, contents.arrays, contents.nbytes)
    return model, (model_spec(field, quant)[1] if quant == "int8" else {})


def field_program(field: nn.Module, quant: str = "fp32", between: tuple | None = None
                  ) -> tuple[FieldModel, ShaderProgram]:
    """The runtime model of ``field``'s pack at precision ``quant`` and its shader program (whose data are
    that pack's values); with ``between`` (see :func:`pack_model`) the program runs the network between the
    hours too."""
    model, stored = pack_model(field, quant, between)
    return model, shader_program(model, preview_exposure(model), stored)


def data_bytes(program: ShaderProgram) -> int:
    """Bytes of the program's data: its textures' texels (and the network between the hours' weights)."""
    extra = program.between_texture().nbytes if program.between is not None else 0
    return sum(t.nbytes for t in program.textures.values()) + extra


def write_glsl(program: ShaderProgram, folder: Path) -> list[Path]:
    """field.frag, field.vert, textures.bin and textures.json in ``folder`` (each written atomically); with the
    network between the hours also between_<pass>.frag, its weights (u_bweights) in textures.bin and its
    passes in textures.json's ``between`` (airender.export.web.between)."""
    offset, table, blobs = 0, {}, []
    textures = dict(program.textures)
    if program.between is not None:
        textures["u_bweights"] = program.between_texture()
    for name, texture in textures.items():
        blob = texture.tobytes()
        table[name] = {"width": texture.width, "height": texture.height, "format": texture.format,
                       "dtype": texture.dtype, "offset": offset, "nbytes": len(blob)}
        blobs.append(blob)
        offset += len(blob)
    paths = [folder / "field.frag", folder / "field.vert", folder / "textures.bin", folder / "textures.json"]
    meta = {**program.meta, "textures": table}
    sources = {}
    if program.between is not None:
        sources = {folder / f"between_{op}.frag": text for op, text in glsl_programs().items()}
        meta["between"] = {**program.between.describe(), "weights": "u_bweights",
                           "programs": {op: f"between_{op}.frag" for op in glsl_programs()}}
    write_text_atomic(paths[0], program.fragment)
    write_text_atomic(paths[1], program.vertex)
    for path, text in sources.items():
        write_text_atomic(path, text)
    with atomic_path(paths[2]) as tmp:
        tmp.write_bytes(b"".join(blobs))
    write_text_atomic(paths[3], json.dumps(meta, indent=2) + "\n")
    return paths + list(sources)


def truth_script(frames: dict[float, np.ndarray], mask: np.ndarray | None, source: str) -> str:
    """truth.js for the viewer: ground-truth frames {hour: uint8 [H, W, 3] display image} and an optional
    validity mask [H, W] bool, as ``window.AIRENDER_TRUTH`` (PNG images in base64)."""
    from PIL import Image

    def png(array: np.ndarray) -> str:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    hours = sorted(frames)
    truth = {"hours": [float(h) for h in hours], "frames": [png(frames[h]) for h in hours],
             "mask": png(np.where(mask, 255, 0).astype(np.uint8)) if mask is not None else None, "source": source}
    return "window.AIRENDER_TRUTH = " + json.dumps(truth) + ";\n"


def model_script(program: ShaderProgram, functions: bool = False) -> str:
    """model.js of the pages: ``window.AIRENDER_MODEL`` = {meta, vertex, fragment, textures (base64 texels), and
    with the network between the hours ``between`` (its passes, programs and weights)}; ``functions``: also the
    shader's functions without ``main`` (``functions``: field_display(uv, t), for the level page)."""
    model = {"meta": program.meta, "vertex": program.vertex, "fragment": program.fragment,
             "textures": {name: {"width": t.width, "height": t.height, "format": t.format, "dtype": t.dtype,
                                 "data": base64.b64encode(t.tobytes()).decode("ascii")}
                          for name, t in program.textures.items()}}
    if functions:
        model["functions"] = program.functions
    if program.between is not None:
        weights = program.between_texture()
        model["between"] = {**program.between.describe(), "programs": glsl_programs(),
                            "weights": {"width": weights.width, "height": weights.height, "format": weights.format,
                                        "data": base64.b64encode(weights.tobytes()).decode("ascii")}}
    return "window.AIRENDER_MODEL = " + json.dumps(model) + ";\n"


def write_html(program: ShaderProgram, folder: Path, truth: str | None = None) -> list[Path]:
    """index.html, viewer.js, hours.js and model.js in ``folder``: a viewer page that works from file://; with
    ``truth`` (the text of truth.js, see :func:`truth_script`) also truth.js, and the page shows the
    ground truth and the error beside the model."""
    assets = resources.files(__package__)
    paths = [folder / "model.js", folder / "viewer.js", folder / "hours.js", folder / "index.html"]
    page = assets.joinpath("index.html").read_text(encoding="utf-8")
    page = page.replace("<!--TRUTH-->\n", '<script src="truth.js"></script>\n' if truth is not None else "")
    write_text_atomic(paths[0], model_script(program))
    write_text_atomic(paths[1], assets.joinpath("viewer.js").read_text(encoding="utf-8"))
    write_text_atomic(paths[2], assets.joinpath("hours.js").read_text(encoding="utf-8"))
    if truth is not None:
        paths.append(folder / "truth.js")
        write_text_atomic(paths[-1], truth)
    write_text_atomic(paths[3], page)
    return paths


def write_web(field: nn.Module, out: str | Path, fmt: str, quant: str = "fp32", between: tuple | None = None
              ) -> list[Path]:
    """``--format glsl`` or ``html`` of ``field`` at precision ``quant`` into the folder ``out`` (``between``: the
    run's network between the hours, see :func:`pack_model`); returns the files written."""
    return export_web(field, out, fmt, quant, between)[0]


def export_web(field: nn.Module, out: str | Path, fmt: str, quant: str = "fp32", between: tuple | None = None
               ) -> tuple[list[Path], int]:
    """:func:`write_web`, also returning the bytes of the data (the textures' texels)."""
    if fmt not in WEB_FORMATS:
        raise InputError(f"--format {fmt}: not a web format (choose from {', '.join(WEB_FORMATS)})")
    _, program = field_program(field, quant, between)  # everything is built before the first file is written
    return write_program(program, out, fmt)


def write_program(program: ShaderProgram, out: str | Path, fmt: str) -> tuple[list[Path], int]:
    """``--format glsl`` or ``html`` of a built ``program`` into the folder ``out``: the files and the data's bytes."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = write_glsl(program, folder) if fmt == "glsl" else write_html(program, folder)
    return written, data_bytes(program)
