"""A tiled atlas (``airender train --tile_size N``) as one GLSL program: every tile's field in one shader.

The tiles of a run share one configuration, so their fields share one shader layout (constants, weight offsets,
hash-grid levels); only their data differ. The program stacks every tile's data textures (u_params, u_tables,
u_features: one tile's texels after another; u_baseline: one tile's frames below another's) and routes a texel
to its tile as airender.runtime.tiled does: tile (y // TILE_SIZE, x // TILE_SIZE) of the atlas, decoded at its
place in the tile's window. Two integer textures say where each tile is:

    u_tile_map   RGBA32I [rows, columns] of tiles: .x the tile's row in u_tile_info, -1 where no tile was fitted
                 (its texels decode to 0, as in the runtime)
    u_tile_info  RGBA32I [tiles, 3]: (first texel in u_params, u_tables, u_features, first row in u_baseline),
                 (baseline width, height, feature map width, height), (window top, left, height, width)
    u_tile_grid  RGBA32F [tiles, 2 x levels]: per level of the hash grids (their resolutions follow the window's
                 size): (scale xyz, dense), (vertices xyz, first row of the level's table)

``display_at(uv, t)`` of a tiled program is that routing (uv of the atlas, rows from the top); the program's
``main`` draws the atlas as the viewer's program draws a field. Data at fp32 or fp16 (the int8 path's per-matrix
addressing is one tile's); the stacked textures must fit the GPU's texture size (MAX_TEXTURE_ROWS rows).
"""
from __future__ import annotations

import numpy as np
from torch import nn

from airender.errors import InputError
from airender.export.web import (FEATURES_WIDTH, PARAMS_WIDTH, TABLES_WIDTH, ShaderLayout, ShaderProgram, Texture,
                                 _flat_texture, field_program, layout_program, pack_model, preview_exposure,
                                 program_meta, shader_layout)
from airender.models.tiled import TiledAtlas
from airender.runtime.model import FieldModel

MAX_TEXTURE_ROWS = 16384  # the stacked textures' rows, at most (WebGL2 guarantees 2048; desktop GPUs 16384)
PER_TILE = ("BASE_W", "BASE_H", "ENC_W", "ENC_H")  # constants that differ from tile to tile (the window's size)
PER_TILE_GRID = ("resolutions", "vertices", "scale", "dense", "offsets")  # a hash grid's, by the window's size
FLAT = {"u_params": PARAMS_WIDTH, "u_tables": TABLES_WIDTH, "u_features": FEATURES_WIDTH}
GLOBALS = """out vec4 fragColor;
uniform highp isampler2D u_tile_map;   // per tile of the atlas: its row in u_tile_info, -1 where none
uniform highp isampler2D u_tile_info;  // per tile: data offsets, data sizes, window (airender/export/web/tiled.py)
int g_poff = 0;  // the tile being decoded: first texel of its parameters, tables and feature map,
int g_toff = 0;
int g_foff = 0;
int g_brow = 0;  // first row of its baseline frames,
int g_bw = 1;    // and the sizes of its baseline and feature map
int g_bh = 1;
int g_ew = 1;
int g_eh = 1;
int g_slot = 0;  // its row in u_tile_info and u_tile_grid
uniform highp sampler2D u_tile_grid;   // per tile: its hash grids' levels (scale, dense), (vertices, table offset)
vec4 tile_grid(int i) { return texelFetch(u_tile_grid, ivec2(i, g_slot), 0); }
vec3 tile_scale(int l) { return tile_grid(2 * l).xyz; }
int tile_dense(int l) { return int(tile_grid(2 * l).w); }
ivec3 tile_vert(int l) { return ivec3(tile_grid(2 * l + 1).xyz); }
int tile_offset(int l) { return int(tile_grid(2 * l + 1).w); }
"""
ROUTING = """#define TILED 1
// The display value at uv of the atlas (rows from the top): the field of the tile that holds the texel, at the
// texel's place in the tile's window; 0 where no tile was fitted.
vec3 display_at(vec2 uv, float t) {
    ivec2 texel = clamp(ivec2(floor(uv * vec2(ATLAS_W, ATLAS_H))), ivec2(0), ivec2(ATLAS_W - 1, ATLAS_H - 1));
    int slot = texelFetch(u_tile_map, texel / TILE_SIZE, 0).x;
    if (slot < 0) return vec3(0.0);
    g_slot = slot;
    ivec4 offsets = texelFetch(u_tile_info, ivec2(0, slot), 0);
    ivec4 sizes = texelFetch(u_tile_info, ivec2(1, slot), 0);
    ivec4 window = texelFetch(u_tile_info, ivec2(2, slot), 0);
    g_poff = offsets.x;
    g_toff = offsets.y;
    g_foff = offsets.z;
    g_brow = offsets.w;
    g_bw = sizes.x;
    g_bh = sizes.y;
    g_ew = sizes.z;
    g_eh = sizes.w;
    vec2 local = (vec2(texel.x - window.y, texel.y - window.x) + 0.5) / vec2(window.w, window.z);
    return field_display(local, t);
}
"""
# the template's reads, each moved by the tile's offsets
EDITS = {
    "out vec4 fragColor;\n": GLOBALS,
    "vec4 P4(int i) { return texelFetch(u_params, ivec2(i % PARAMS_WIDTH, i / PARAMS_WIDTH), 0); }":
        "vec4 P4(int i) { int j = i + g_poff; return texelFetch(u_params, ivec2(j % PARAMS_WIDTH, j / PARAMS_WIDTH), 0); }",
    "vec4 T4(int i) { return texelFetch(u_tables, ivec2(i % TABLES_WIDTH, i / TABLES_WIDTH), 0); }":
        "vec4 T4(int i) { int j = i + g_toff; return texelFetch(u_tables, ivec2(j % TABLES_WIDTH, j / TABLES_WIDTH), 0); }",
    "vec4 F4(int i) { return texelFetch(u_features, ivec2(i % FEATURES_WIDTH, i / FEATURES_WIDTH), 0); }":
        "vec4 F4(int i) { int j = i + g_foff; return texelFetch(u_features, ivec2(j % FEATURES_WIDTH, j / FEATURES_WIDTH), 0); }",
    "+ ivec4(0, s * BASE_H, 0, s * BASE_H);": "+ ivec4(0, s * BASE_H + g_brow, 0, s * BASE_H + g_brow);",
    "//@TILED\n": ROUTING,
}


def _same(a: ShaderLayout, b: ShaderLayout) -> bool:
    shared = {k: v for k, v in a.defines.items() if k not in PER_TILE}
    return (shared == {k: v for k, v in b.defines.items() if k not in PER_TILE} and a.floats == b.floats
            and a.float_arrays == b.float_arrays and a.int_arrays == b.int_arrays
            and [(_shared_grid(g.spec), g.base_texel) for g in a.grids]
            == [(_shared_grid(g.spec), g.base_texel) for g in b.grids]
            and {n: t.dtype for n, t in a.textures.items()} == {n: t.dtype for n, t in b.textures.items()})


def _shared_grid(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in PER_TILE_GRID}


def _grid_rows(layout: ShaderLayout) -> np.ndarray:
    """One tile's row of u_tile_grid: per level of its hash grids, in order, (scale xyz, dense) and (vertices xyz,
    table offset)."""
    texels = []
    for grid in layout.grids:
        spec = grid.spec
        for level, vertices in enumerate(spec["vertices"]):
            scale = list(spec["scale"][level]) + [0.0] * (3 - len(spec["scale"][level]))
            vert = list(vertices) + [1] * (3 - len(vertices))
            texels += [scale + [float(bool(spec["dense"][level]))],
                       [float(v) for v in vert] + [float(spec["offsets"][level])]]
    return np.asarray(texels, np.float32).reshape(-1, 4)


def _grid_edits(layout: ShaderLayout) -> dict[str, str]:
    """The hash-grid functions' per-level constants read from u_tile_grid instead (levels counted over the grids)."""
    edits, first = {}, 0
    for grid in layout.grids:
        p = grid.prefix
        edits.update({f"{p}_VERT[l]": f"tile_vert({first} + l)", f"{p}_SCALE[l]": f"tile_scale({first} + l)",
                      f"{p}_DENSE[l]": f"tile_dense({first} + l)", f"{p}_OFFSET[l]": f"tile_offset({first} + l)"})
        first += len(grid.spec["vertices"])
    return edits


def _texels(texture: Texture) -> np.ndarray:
    return texture.texels.reshape(-1, texture.texels.shape[2])


def tiled_program(tiles: list[tuple[dict, FieldModel]], height: int, width: int, tile_size: int,
                  exposure: float = 1.0) -> ShaderProgram:
    """The program decoding a tiled atlas of ``height`` x ``width`` texels: ``tiles`` [(tile entry {y, x, height,
    width, window}, its pack's runtime model)] at fp32 or fp16 (see the module docstring)."""
    if not tiles:
        raise InputError("the tiled atlas has no fitted tile: nothing to decode")
    layouts = [shader_layout(model) for _, model in tiles]
    first = layouts[0]
    if first.quant == "int8":
        raise InputError("--quant int8: a tiled atlas decodes in the shaders at fp32 or fp16")
    if any(not _same(first, other) for other in layouts[1:]):
        raise InputError("the tiles' fields differ in their shader layout (not one run's configuration)")
    textures: dict[str, Texture] = {}
    offsets = {name: [0] * len(tiles) for name in (*FLAT, "u_baseline")}
    for name, row_width in FLAT.items():
        if name in first.textures:
            blocks = [_texels(layout.textures[name]) for layout in layouts]
            offsets[name] = [int(v) for v in np.cumsum([0] + [b.shape[0] for b in blocks[:-1]])]
            textures[name] = _flat_texture(np.concatenate(blocks), row_width)
    if "u_baseline" in first.textures:
        frames = [layout.textures["u_baseline"].texels for layout in layouts]
        stacked = np.zeros((sum(f.shape[0] for f in frames), max(f.shape[1] for f in frames), 4), frames[0].dtype)
        row = 0
        for k, frame in enumerate(frames):
            stacked[row:row + frame.shape[0], :frame.shape[1]] = frame
            offsets["u_baseline"][k] = row
            row += frame.shape[0]
        textures["u_baseline"] = Texture(stacked)
    too_tall = [n for n, t in textures.items() if t.height > MAX_TEXTURE_ROWS]
    if too_tall:
        raise InputError(f"the tiled atlas's {len(tiles)} tiles need {too_tall[0]} {textures[too_tall[0]].height} "
                         f"rows, more than the {MAX_TEXTURE_ROWS} a GPU texture holds")
    rows, columns = -(-height // tile_size), -(-width // tile_size)
    tile_map = np.full((rows, columns, 4), -1, np.int32)
    info = np.zeros((len(tiles), 3, 4), np.int32)
    for k, ((entry, _), layout) in enumerate(zip(tiles, layouts)):
        tile_map[int(entry["y"]) // tile_size, int(entry["x"]) // tile_size, 0] = k
        info[k, 0] = [offsets[name][k] for name in ("u_params", "u_tables", "u_features", "u_baseline")]
        info[k, 1] = [layout.defines.get(name, 1) for name in PER_TILE]
        info[k, 2] = [int(v) for v in entry["window"]]
    textures["u_tile_map"] = Texture(tile_map)
    textures["u_tile_info"] = Texture(info)
    if first.grids:
        textures["u_tile_grid"] = Texture(np.stack([_grid_rows(layout) for layout in layouts]))
    defines = {**{k: v for k, v in first.defines.items() if k not in PER_TILE}, "BASE_W": "g_bw", "BASE_H": "g_bh",
               "ENC_W": "g_ew", "ENC_H": "g_eh", "ATLAS_W": int(width), "ATLAS_H": int(height),
               "TILE_SIZE": int(tile_size)}
    layout = ShaderLayout(defines=defines, floats=first.floats, float_arrays=first.float_arrays,
                          int_arrays=first.int_arrays, grids=first.grids, textures=textures, quant=first.quant)
    model = tiles[0][1]
    meta = {**program_meta(model, exposure, first.quant), "width": int(width), "height": int(height),
            "tiles": len(tiles), "tile_size": int(tile_size)}
    return layout_program(layout, meta, None, EDITS, _grid_edits(first))



def program_of(model: nn.Module | TiledAtlas, quant: str = "fp32", between: tuple | None = None) -> ShaderProgram:
    """The shader program of ``model``: a field (with the run's network between the hours ``between``, see
    airender.export.web.pack_model) or one atlas of a tiled checkpoint (tiled runs fit no network between the
    hours)."""
    if isinstance(model, TiledAtlas):
        return atlas_program(model, quant)
    return field_program(model, quant, between)[1]


def atlas_program(atlas: TiledAtlas, quant: str = "fp32") -> ShaderProgram:
    """The program of one atlas of a tiled checkpoint at precision ``quant`` (each tile's data as its pack of that
    precision stores them); its preview exposure is the first tile's."""
    tiles = [(entry, pack_model(atlas.field(i), quant)[0]) for i, entry in enumerate(atlas.tiles)]
    exposure = preview_exposure(tiles[0][1]) if tiles else 1.0
    return tiled_program(tiles, atlas.desc.height, atlas.desc.width, atlas.tile_size, exposure)
