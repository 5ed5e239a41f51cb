"""``airender export --format level --ckpt C --data_dir BAKE --out DIR``: the baked level in 3D, lit by the model.

The page renders ``BAKE/level.glb`` (airender.bake.level_file) with three.js (vendored: ``vendor/``, refreshed by
``scripts/vendor_three.sh``) and works from file://. Every fragment's lighting is the field decoded in the
fragment shader (the viewer's GLSL decoder, airender.export.web, at the pack's precision ``quant``) at the texel its
lightmap UV falls in and the chosen hour, in linear light; the fragment's radiance is the mesh's albedo times that
lighting, shown through an exposure and the tone curve 1 - exp(-x), then sRGB. Between two stored daylight hours a
run's network between the hours (``between``) gives the per-texel blend of the field's frames at those hours, as
``airender render --between auto`` does (its passes run at the atlas's size, airender.export.web.between).

The page has a time slider, a play button, an orbit camera, an exposure slider, the modes "neural", "baked truth"
(the bake's atlas at the nearest baked time) and "error" (|neural - truth| of the shown colours, x ERROR_GAIN,
as a heat map), and a frame-time readout. ``window.airenderLevel`` is its test API: ``ready`` (a promise),
``setHour(h)``, ``setMode("neural" | "truth" | "error")``, ``setCamera({position, target})``, ``readPixels()``
(a promise of {width, height, data}: RGBA8 rows from the top; alpha 0 where no mesh covers the pixel),
``frameMs`` (the last frame's render time, ms) and ``meta``.

Files written into DIR: index.html, level.js (the page), hours.js (airender.export.web's), three.bundle.min.js with THREE-LICENSE and
THREE-VERSION, model.js (the model as the viewer's page holds it) and level_data.js (``window.AIRENDER_LEVEL``:
the meshes of the model's atlas, positions and lightmap UVs as base64 float32, per-vertex albedo; the default
camera; the atlas at every baked time as base64 float16 RGBA).
"""
from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

import numpy as np
import trimesh
from torch import nn

from airender.bake.level_file import LEVEL_FILE
from airender.data.virtual_texture import is_virtual_texture, list_lightmaps, open_component
from airender.errors import InputError
from airender.export.contest import lightmap_of_source
from airender.export import web
from airender.export.web import data_bytes, model_script
from airender.export.web.tiled import program_of
from airender.fileio import write_text_atomic
from airender.models.tiled import TiledAtlas

VENDOR_FILES = {"three.bundle.min.js": "three.bundle.min.js", "LICENSE": "THREE-LICENSE", "VERSION": "THREE-VERSION"}
TRUTH_BYTES_LIMIT = 512 << 20  # baked atlases kept for "baked truth" (float16), at most; more times are thinned


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def level_meshes(bake_dir: Path, lightmap_id: int) -> tuple[list[dict], dict]:
    """The meshes of ``bake_dir``/level.glb whose UVs address lightmap ``lightmap_id`` (positions [V, 3] and UVs
    [V, 2] float32, glTF's way round; albedo [3]) and the scene's ``airender`` extras."""
    path = bake_dir / LEVEL_FILE
    if not path.is_file():
        raise InputError(f"{path}: no such file (airender bake writes the level's geometry there; bake again)")
    try:
        scene = trimesh.load(str(path), file_type="glb")
    except Exception as exc:  # trimesh raises many kinds on a damaged file
        raise InputError(f"{path}: not a readable glTF binary ({exc})") from None
    extras = dict(scene.metadata.get("airender", {}))
    if extras.get("format") != "airender-level":
        raise InputError(f"{path}: not a level written by airender bake (no extras.airender.format)")
    meshes = []
    for name, mesh in scene.geometry.items():
        if int(mesh.metadata.get("lightmap_id", -1)) != lightmap_id:
            continue
        corners = np.asarray(mesh.faces).ravel()
        uv = np.asarray(mesh.visual.uv, np.float32)[corners]  # trimesh's v is upwards: 1 - v is glTF's
        meshes.append({"name": name, "positions": np.asarray(mesh.vertices, np.float32)[corners],
                       "uvs": np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1),
                       "albedo": np.asarray(mesh.visual.material.baseColorFactor[:3], np.float32) / 255.0})
    if not meshes:
        raise InputError(f"{path}: no mesh addresses lightmap {lightmap_id} (its lightmaps: "
                         f"{', '.join(str(i) for i in extras.get('lightmaps', []))})")
    return meshes, extras


def baked_truth(bake_dir: Path, lightmap_id: int, limit_bytes: int = TRUTH_BYTES_LIMIT
                ) -> tuple[list[float], list[np.ndarray]]:
    """(hours, atlases [H, W, 4] float16 of linear lighting) of lightmap ``lightmap_id`` at the bake's times, thinned
    evenly to at most ``limit_bytes``."""
    entry = next((e for e in list_lightmaps(bake_dir) if e.lightmap_id == lightmap_id), None)
    if entry is None:
        raise InputError(f"{bake_dir}: the bake has no lightmap {lightmap_id}")
    component = open_component(bake_dir, entry, "original")
    hours = list(component.hours)
    keep = max(1, min(len(hours), limit_bytes // (entry.width * entry.height * 8)))
    hours = [hours[i] for i in np.linspace(0, len(hours) - 1, keep).round().astype(int)]
    frames = []
    for hour in hours:
        rgb = component.read(hour)
        frames.append(np.concatenate([rgb, np.ones_like(rgb[..., :1])], axis=2).astype(np.float16))
    return hours, frames


def level_script(meshes: list[dict], extras: dict, lightmap_id: int, size: tuple[int, int], hours: list[float],
                 truth: list[np.ndarray]) -> str:
    """level_data.js: ``window.AIRENDER_LEVEL`` (see the module docstring)."""
    data = {"lightmap_id": lightmap_id, "atlas": {"width": size[1], "height": size[0]},
            "camera": {k: extras[k] for k in ("position", "target", "yfov_deg")},
            "meshes": [{"name": m["name"], "positions": _b64(m["positions"]), "uvs": _b64(m["uvs"]),
                        "albedo": [float(v) for v in m["albedo"]]} for m in meshes],
            "truth": {"hours": [float(h) for h in hours], "frames": [_b64(f.view(np.uint16)) for f in truth]}}
    return "window.AIRENDER_LEVEL = " + json.dumps(data) + ";\n"


def level_exposure(truth: list[np.ndarray]) -> float:
    """The page's default exposure: the 99th luminance percentile of the middle baked time's lighting maps to 1."""
    frame = truth[len(truth) // 2][..., :3].astype(np.float32)
    p99 = float(np.percentile(frame @ np.array([0.2126, 0.7152, 0.0722], np.float32), 99.0))
    return 1.0 / p99 if p99 > 0 else 1.0


def write_level_page(model: nn.Module | TiledAtlas, bake_dir: str | Path, out: str | Path, quant: str = "fp32",
                     between: tuple | None = None) -> tuple[list[Path], int]:
    """The level page of ``model`` (a field or a tiled atlas trained on a lightmap of the bake ``bake_dir``) in the
    folder ``out``; returns the files written and the bytes of the model's data. Everything is read and built
    before the first file is written."""
    desc = model.desc
    bake_dir = Path(bake_dir)
    if not bake_dir.is_dir() or not is_virtual_texture(bake_dir):
        raise InputError(f"--data_dir {bake_dir}: not a bake (airender bake writes a virtual-texture folder with "
                         f"{LEVEL_FILE})")
    if not desc.is_hdr:
        raise InputError("--format level: the model must be trained on a baked lightmap (HDR); this one is LDR")
    named = lightmap_of_source(desc.source)
    if named is None:
        raise InputError(f"--format level: the model's data description names no lightmap ({desc.source!r})")
    lightmap_id = named[1]
    meshes, extras = level_meshes(bake_dir, lightmap_id)
    hours, truth = baked_truth(bake_dir, lightmap_id)
    size = (desc.height, desc.width)
    if truth[0].shape[:2] != size:
        raise InputError(f"--data_dir {bake_dir}: lightmap {lightmap_id} is {truth[0].shape[1]}x{truth[0].shape[0]}, "
                         f"the model {size[1]}x{size[0]}")
    program = program_of(model, quant, between)
    program.meta["level_exposure"] = level_exposure(truth)
    scripts = {"model.js": model_script(program, functions=True),
               "level_data.js": level_script(meshes, extras, lightmap_id, size, hours, truth)}
    assets = resources.files(__package__)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in scripts.items():
        written.append(folder / name)
        write_text_atomic(written[-1], text)
    for name in ("index.html", "level.js"):
        written.append(folder / name)
        write_text_atomic(written[-1], assets.joinpath(name).read_text(encoding="utf-8"))
    written.append(folder / "hours.js")
    write_text_atomic(written[-1], resources.files(web).joinpath("hours.js").read_text(encoding="utf-8"))
    for source, name in VENDOR_FILES.items():
        written.append(folder / name)
        write_text_atomic(written[-1], assets.joinpath("vendor", source).read_text(encoding="utf-8"))
    return written, data_bytes(program)
