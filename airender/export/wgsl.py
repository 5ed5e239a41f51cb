"""``--format wgsl``: a WebGPU compute shader that decodes the field for one hour into a storage buffer.

The shader (``web/field.comp.wgsl`` under a generated block of constants) is the GLSL path's
computation (airender.export.web: the same weights, tables, offsets and the same order of operations),
with one invocation per pixel and the data in storage buffers instead of textures. Files written:

    field.wgsl     the shader, entry point ``main``, @workgroup_size(8, 8, 1)
    buffers.bin    the storage buffers' contents one after another (little endian, 4-byte aligned)
    buffers.json   the buffer layout (below), the model's size, hours, LDR/HDR, transform and precision

Bindings (group 0; buffers.json lists those the model uses, with their byte ranges in buffers.bin, their
WGSL type and the dtype of the values):

    0  uniform               Uniforms {hour: f32, width: u32, height: u32, pad: u32} (16 bytes)
    1  storage, read         params: array<vec4<f32>>    every weight and bias (rows padded to vec4s)
    2  storage, read         tables: array<vec4<f32>>    hash-grid tables, one row in ceil(F / 4) vec4s
    3  storage, read         baseline: array<vec4<f32>>  the baseline frame [H * W] (residual fields)
    4  storage, read         features: array<vec4<f32>>  the baseline CNN's feature map (encoder fields)
    5  storage, read_write   rgb: array<vec4<f32>>       output, width * height vec4s, row-major from the top
    6  storage, read         weights: array<u32>         int8 only: the int8 weight matrices, 4 values a word
    7  storage, read         wscale: array<f32>          int8 only: their scales, one per matrix row

At ``quant`` fp16 and int8 (airender.export.web describes which data are at which precision) a vec4 of
float16 values is stored as vec2<u32> (read with unpack2x16float), one of int8 values as a u32 (the
first value in the low byte, sign-extended with extractBits and multiplied by its scale), an 8-bit
baseline pixel as a u32 (unpack4x8unorm): the element of every buffer is still one texel of the GLSL
path's textures.

Dispatch ceil(width / 8) x ceil(height / 8) workgroups. Output ``rgb[y * width + x].xyz`` is the display
value that airender.runtime's ``decode`` returns: sRGB in [0, 1] for LDR data, linear radiance for HDR.

A run that fitted the network between the hours (``export --between auto``, the default) also writes
between.wgsl, whose passes (buffers.json ``between``: slots, passes, bindings; airender.export.web.between)
turn the field's linear frames (uniform ``linear`` = 1) at four stored hours into the frame between two of
them that the numpy runtime decodes. The host runs them at a daylight hour strictly between two stored
hours (the rule of airender.runtime.between.BetweenHours.blend); at every other hour the field's output
is the frame.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from torch import nn

from airender import __version__
from airender.export.web import GridLayout, ShaderLayout, _texels, pack_model, shader_layout
from airender.export.web.between import PASS_OPS, BetweenPasses, model_passes, wgsl_module
from airender.fileio import atomic_path, write_text_atomic
from airender.runtime.model import FieldModel
from airender.runtime.packfile import StoredArray

WORKGROUP = (8, 8)
UNIFORM_BYTES = 16
BINDINGS = {"params": 1, "tables": 2, "baseline": 3, "features": 4, "weights": 6, "wscale": 7}
OUTPUT_BINDING = 5
# the passes of the network between the hours (web/between.comp.wgsl): one bind group layout for every pass
BETWEEN_BINDINGS = {"pass": 0, "a": 1, "b": 2, "c": 3, "d": 4, "weights": 5, "dst": 6}
BETWEEN_UNIFORM_BYTES = 64
TEXTURE_OF = {"params": "u_params", "tables": "u_tables", "baseline": "u_baseline", "features": "u_features",
              "weights": "u_weights", "wscale": "u_wscale"}
# WGSL element type of a buffer by the dtype and channels of its texture
ELEMENT_TYPES = {("float32", 4): "vec4<f32>", ("float16", 4): "vec2<u32>", ("int8", 4): "u32", ("uint8", 4): "u32",
                 ("float32", 1): "f32"}
_CONDITION = re.compile(r"^(?P<name>[A-Z_][A-Z0-9_]*)(?:\s*(?P<op>==|!=)\s*(?P<value>-?\d+))?$")


@dataclass
class WGSLProgram:
    """A field as a WGSL compute shader: ``code``, the storage buffers by name ([n, 4] float32, float16,
    int8 or uint8, or [n, 1] float32: one texel of the GLSL path's textures a row), and ``layout`` (the
    buffers.json description); ``between``: the passes of the run's network between the hours when the pack
    carries one (airender.export.web.between; their module is ``between_code``), else None."""

    code: str
    buffers: dict[str, np.ndarray]
    layout: dict
    between: BetweenPasses | None = None
    between_code: str = ""


def preprocess(template: str, defines: dict[str, int]) -> str:
    """Keep the lines of ``template`` whose ``#if`` / ``#elif`` / ``#else`` / ``#endif`` blocks apply.

    A condition is ``NAME`` (true when non-zero) or ``NAME == N`` / ``NAME != N``; a name that is not
    defined is 0. The directive lines themselves are dropped. Raises ValueError on a malformed block."""
    out, stack = [], []  # stack entries: [this branch active, some branch taken, parent active]

    def test(text: str) -> bool:
        match = _CONDITION.match(text.strip())
        if match is None:
            raise ValueError(f"unreadable #if condition {text!r}")
        value = int(defines.get(match["name"], 0))
        if match["op"] is None:
            return value != 0
        return (value == int(match["value"])) == (match["op"] == "==")

    for number, line in enumerate(template.splitlines(), 1):
        stripped = line.strip()
        active = all(entry[0] for entry in stack)
        if stripped.startswith("#if "):
            taken = active and test(stripped[4:])
            stack.append([taken, taken, active])
        elif stripped.startswith("#elif "):
            if not stack:
                raise ValueError(f"line {number}: #elif without #if")
            entry = stack[-1]
            entry[0] = entry[2] and not entry[1] and test(stripped[6:])
            entry[1] = entry[1] or entry[0]
        elif stripped == "#else":
            if not stack:
                raise ValueError(f"line {number}: #else without #if")
            entry = stack[-1]
            entry[0] = entry[2] and not entry[1]
            entry[1] = True
        elif stripped == "#endif":
            if not stack:
                raise ValueError(f"line {number}: #endif without #if")
            stack.pop()
        elif active:
            out.append(line)
    if stack:
        raise ValueError("#if without #endif")
    return "\n".join(out) + "\n"


def _float(value: float) -> str:
    text = repr(float(np.float32(value)))
    return text if ("." in text or "e" in text) else text + ".0"


def _grid_wgsl(grid: GridLayout) -> str:
    """``fn FUNCTION(coords: vec3<f32>) -> array<vec4<f32>, PREFIX_F4>``: the features of one hash grid."""
    spec, prefix = grid.spec, grid.prefix
    dims, features = int(spec["dims"]), int(spec["features"])
    vertices = [list(v) + [1] * (3 - len(v)) for v in spec["vertices"]]
    scale = [list(s) + [0.0] * (3 - len(s)) for s in spec["scale"]]
    levels = len(vertices)
    lines = [
        f"const {prefix}_L: i32 = {levels};",
        f"const {prefix}_F: i32 = {features};",
        f"const {prefix}_F4: i32 = {_texels(levels * features)};",
        f"const {prefix}_TPR: i32 = {_texels(features)};",
        f"const {prefix}_BASE: i32 = {grid.base_texel};",
        f"const {prefix}_MASK: u32 = {int(spec['table_size']) - 1}u;",
        f"var<private> {prefix}_VERT: array<vec3<i32>, {levels}> = array<vec3<i32>, {levels}>("
        + ", ".join(f"vec3<i32>({a}, {b}, {c})" for a, b, c in vertices) + ");",
        f"var<private> {prefix}_SCALE: array<vec3<f32>, {levels}> = array<vec3<f32>, {levels}>("
        + ", ".join(f"vec3<f32>({', '.join(_float(v) for v in s)})" for s in scale) + ");",
        f"var<private> {prefix}_DENSE: array<i32, {levels}> = array<i32, {levels}>("
        + ", ".join(str(int(bool(d))) for d in spec["dense"]) + ");",
        f"var<private> {prefix}_OFFSET: array<i32, {levels}> = array<i32, {levels}>("
        + ", ".join(str(int(o)) for o in spec["offsets"]) + ");",
        *([f"var<private> {prefix}_QS: array<f32, {levels}> = array<f32, {levels}>("
           + ", ".join(_float(v) for v in grid.scales) + ");"] if grid.scales is not None else []),
        "",
        f"fn {grid.function}(coords: vec3<f32>) -> array<vec4<f32>, {prefix}_F4> {{",
        f"    var feats: array<vec4<f32>, {prefix}_F4>;",
        f"    for (var l = 0; l < {prefix}_L; l++) {{",
        f"        var pos = coords * {prefix}_SCALE[l];",
    ]
    if dims == 3:
        lines.append(f"        pos.z = fmod(pos.z, {prefix}_SCALE[l].z);")
    lines += [
        "        let base = floor(pos);",
        "        let frac = pos - base;",
        "        let b = vec3<i32>(base);",
        f"        let vert = {prefix}_VERT[l];",
        f"        for (var c = 0; c < {1 << dims}; c++) {{",
        "            let corner = vec3<i32>(c & 1, (c >> 1u) & 1, (c >> 2u) & 1);",
        "            var idx = b + corner;",
        "            idx = vec3<i32>(clamp(idx.xy, vec2<i32>(0), vert.xy - 1), idx.z);",
    ]
    weight = "select(1.0 - frac.x, frac.x, corner.x == 1) * select(1.0 - frac.y, frac.y, corner.y == 1)"
    dense = "idx.x + idx.y * vert.x"
    hashed = "u32(idx.x) ^ (u32(idx.y) * 2654435761u)"
    if dims == 3:
        lines.append("            idx.z = idx.z % vert.z;")
        weight += " * select(1.0 - frac.z, frac.z, corner.z == 1)"
        dense += " + idx.z * vert.x * vert.y"
        hashed += " ^ (u32(idx.z) * 805459861u)"
    lines += [
        f"            let w = {weight};",
        f"            var row = i32(({hashed}) & {prefix}_MASK);",
        f"            if ({prefix}_DENSE[l] == 1) {{ row = {dense}; }}",
        f"            row += {prefix}_OFFSET[l];",
        f"            for (var q = 0; q < {prefix}_TPR; q++) {{",
        f"                let v = T4({prefix}_BASE + row * {prefix}_TPR + q)"
        + (f" * {prefix}_QS[l];" if grid.scales is not None else ";"),
        "                for (var e = 0; e < 4; e++) {",
        "                    let f = q * 4 + e;",
        f"                    let j = l * {prefix}_F + f;",
        f"                    if (f < {prefix}_F) {{ feats[j >> 2u][j & 3] += w * v[e]; }}",
        "                }",
        "            }",
        "        }",
        "    }",
        "    return feats;",
        "}",
    ]
    return "\n".join(lines)


def wgsl_source(layout: ShaderLayout) -> str:
    """The WGSL module of ``layout`` (whose defines carry the model's native size, BASE_W x BASE_H)."""
    defines = {**layout.defines, "WORKGROUP_X": WORKGROUP[0], "WORKGROUP_Y": WORKGROUP[1]}
    prelude = [f"// airender {__version__}: generated constants of this model",
               *(f"const {name}: i32 = {value};" for name, value in defines.items()),
               *(f"const {name}: f32 = {_float(value)};" for name, value in layout.floats.items())]
    for name, values in layout.float_arrays.items():
        values = values or [0.0]
        prelude.append(f"var<private> {name}: array<f32, {len(values)}> = array<f32, {len(values)}>("
                       + ", ".join(_float(v) for v in values) + ");")
    for name, values in layout.int_arrays.items():
        values = values or [0]
        prelude.append(f"var<private> {name}: array<i32, {len(values)}> = array<i32, {len(values)}>("
                       + ", ".join(str(int(v)) for v in values) + ");")
    template = resources.files("airender.export.web").joinpath("field.comp.wgsl").read_text(encoding="utf-8")
    body = preprocess(template, {**defines, **precision_flags(layout)})
    grids = "\n\n".join(_grid_wgsl(g) for g in layout.grids)
    return "\n".join(prelude) + "\n\n" + body.replace("//@GRIDS", grids)


def precision_flags(layout: ShaderLayout) -> dict[str, int]:
    """The template's precision switches (``#if`` names only, not declared in the module) of ``layout``."""
    dtypes = {name: texture.dtype for name, texture in layout.textures.items()}
    flags = {"PARAMS_F16": dtypes.get("u_params") == "float16", "WEIGHTS_I8": "u_weights" in dtypes,
             "TABLES_F16": dtypes.get("u_tables") == "float16", "TABLES_I8": dtypes.get("u_tables") == "int8",
             "BASELINE_U8": dtypes.get("u_baseline") == "uint8", "FEATURES_F16": dtypes.get("u_features") == "float16"}
    flags["ANY_F16"] = "float16" in dtypes.values()
    flags["ANY_I8"] = "int8" in dtypes.values()
    return {name: int(value) for name, value in flags.items()}


def wgsl_program(model: FieldModel, stored: dict[str, StoredArray] | None = None) -> WGSLProgram:
    """The compute shader, storage buffers and buffer layout that decode ``model`` (a pack's runtime model,
    at its pack's precision; an int8 pack's needs ``stored``, see airender.export.web.shader_layout)."""
    layout = shader_layout(model, stored)
    code = wgsl_source(layout)
    buffers, entries, offset = {}, [], 0
    for name, binding in BINDINGS.items():
        texture = layout.textures.get(TEXTURE_OF[name])
        if texture is None:
            continue
        channels = int(texture.texels.shape[2])
        data = np.ascontiguousarray(texture.texels.reshape(-1, channels))
        buffers[name] = data
        entries.append({"name": name, "binding": binding, "type": f"array<{ELEMENT_TYPES[texture.dtype, channels]}>",
                        "dtype": texture.dtype, "access": "read", "offset": offset, "nbytes": int(data.nbytes),
                        "elements": int(data.shape[0])})
        offset += int(data.nbytes)
    meta = {"format": "airender-wgsl", "format_version": 1, "airender_version": __version__,
            "width": model.width, "height": model.height, "is_hdr": model.is_hdr, "times": model.times,
            "transform": model.transform, "quant": layout.quant, "entry_point": "main",
            "workgroup_size": [*WORKGROUP, 1],
            "dispatch": "ceil(width / 8), ceil(height / 8), 1",
            "uniforms": {"binding": 0, "nbytes": UNIFORM_BYTES,
                         "fields": [{"name": "hour", "type": "f32", "offset": 0},
                                    {"name": "width", "type": "u32", "offset": 4},
                                    {"name": "height", "type": "u32", "offset": 8},
                                    {"name": "pad", "type": "u32", "offset": 12}]},
            "buffers": entries,
            "output": {"name": "rgb", "binding": OUTPUT_BINDING, "type": "array<vec4<f32>>", "access": "read_write",
                       "elements": "width * height", "order": "row-major from the top; xyz = display value, w = 1"}}
    meta["uniforms"]["fields"][3] = {"name": "linear", "type": "u32", "offset": 12,
                                     "meaning": "1: linear light (the frames the network between the hours reads)"}
    between = model_passes(model)
    if between is None:
        return WGSLProgram(code=code, buffers=buffers, layout=meta)
    meta["between"] = {**between.describe(), "module": "between.wgsl",
                       "entry_points": {op: f"{op}_pass" for op in PASS_OPS},
                       "bindings": BETWEEN_BINDINGS, "uniform_bytes": BETWEEN_UNIFORM_BYTES,
                       "weights": {"offset": offset, "nbytes": int(between.wgsl_weights.nbytes),
                                   "type": "array<f32>"}}
    return WGSLProgram(code=code, buffers=buffers, layout=meta, between=between, between_code=wgsl_module())


def field_wgsl(field: nn.Module, quant: str = "fp32", between: tuple | None = None
               ) -> tuple[FieldModel, WGSLProgram]:
    """The runtime model of ``field``'s pack (a TODField) at precision ``quant`` and its WGSL program (whose
    data are that pack's values; ``between``: the run's network between the hours, see
    airender.export.web.pack_model)."""
    model, stored = pack_model(field, quant, between)
    return model, wgsl_program(model, stored)


def buffer_bytes(data: np.ndarray) -> bytes:
    """A storage buffer's contents: ``data`` little endian."""
    return data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()


def write_wgsl(field: nn.Module, out: str | Path, quant: str = "fp32", between: tuple | None = None) -> list[Path]:
    """field.wgsl, buffers.bin and buffers.json of ``field`` at precision ``quant`` in the folder ``out``
    (each written atomically); with ``between`` (the run's network between the hours and its light-switch
    hours) also between.wgsl, the network's weights at the end of buffers.bin and its passes in buffers.json's
    ``between``. Returns the paths. Everything is built before the first file is written."""
    _, program = field_wgsl(field, quant, between)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "field.wgsl", folder / "buffers.bin", folder / "buffers.json"]
    blobs = [buffer_bytes(b) for b in program.buffers.values()]
    if program.between is not None:
        blobs.append(buffer_bytes(program.between.wgsl_weights))
        paths.append(folder / "between.wgsl")
        write_text_atomic(paths[3], program.between_code)
    write_text_atomic(paths[0], program.code)
    with atomic_path(paths[1]) as tmp:
        tmp.write_bytes(b"".join(blobs))
    write_text_atomic(paths[2], json.dumps(program.layout, indent=2) + "\n")
    return paths

