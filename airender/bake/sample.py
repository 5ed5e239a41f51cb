"""The bundled sample atlas: a window of one baked lightmap, stored compactly, written out in the VT layout.

``scripts/make_sample_atlas.py`` bakes the procedural level, cuts a window out of one lightmap and stores
it with ``save_sample_atlas`` in ``airender/sample_data/atlas/``:

    atlas.npz   mask [H, W] int8; times [T] float64 (hours);
                directional [Td, N, 3] float16 with directional_index [T] int16 (-1: zero, the sun is down);
                sky [Ts, N, 3] float16 with sky_index [T] int16 (identical night skies stored once);
                local [N, 3] float16 with local_on [T] bool (the lamps are either on with this image or off).
                N = the valid texels (mask 127) in row-major order.
    meta.json   the bake's meta.json, with the window it was cut from.
    level.glb   the part of the level whose triangles' lightmap texels lie in the window, its UVs those of the
                window (airender.bake.level_file.window_scene), for the level page of the lightmap demo.

``materialise_sample_atlas(dest)`` writes it back as a virtual-texture dataset (through
``airender.data.virtual_texture.VTWriter``) that needs no Mitsuba: Original is the float32 sum of the three
sources (exactly additive after the float16 rounding), gutters are dilated again inside the window.
Float16 keeps about three significant digits.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np

from airender.bake.level_file import LEVEL_FILE, window_scene, write_scene
from airender.bake.raster import plan_dilation
from airender.data.virtual_texture import (MASK_VALID, SOURCE_COMPONENTS, VTWriter, list_lightmaps, open_component,
                                           open_mask)
from airender.errors import InputError
from airender.fileio import atomic_path, write_json_atomic

SAMPLE_FILE = "atlas.npz"
SAMPLE_META = "meta.json"
SAMPLE_LIGHTMAP_ID = 1
DILATE_TEXELS = 4


def sample_atlas_dir() -> Path:
    """Folder of the bundled sample atlas inside the package."""
    return Path(str(resources.files("airender") / "sample_data" / "atlas"))


def _dedupe(stack: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack distinct arrays once: returns (unique [U, ...], index [len(stack)] int16 into it)."""
    unique: list[np.ndarray] = []
    keys: dict[bytes, int] = {}
    index = np.empty(len(stack), dtype=np.int16)
    for i, array in enumerate(stack):
        key = hashlib.sha1(array.tobytes()).digest()
        if key not in keys:
            keys[key] = len(unique)
            unique.append(array)
        index[i] = keys[key]
    return np.stack(unique), index


def save_sample_atlas(bake_root: Path, lightmap_id: int, window: tuple[int, int, int, int], dest: Path) -> dict:
    """Cut rows ``window[0]:window[0]+window[2]``, columns ``window[1]:window[1]+window[3]`` out of lightmap
    ``lightmap_id`` of the bake at ``bake_root`` and store it compactly in ``dest`` (see the module doc).
    Returns the sizes written, in bytes."""
    row, col, height, width = window
    entry = next((e for e in list_lightmaps(bake_root) if e.lightmap_id == lightmap_id), None)
    if entry is None:
        raise InputError(f"{bake_root}: no lightmap {lightmap_id}")
    if row < 0 or col < 0 or row + height > entry.height or col + width > entry.width:
        raise InputError(f"window {window} does not fit lightmap {lightmap_id} ({entry.width} x {entry.height})")
    meta = json.loads((Path(bake_root) / "meta.json").read_text())
    mask = open_mask(bake_root, entry).read(row, row + height, col, col + width)
    valid = mask == MASK_VALID
    sources = {c: open_component(bake_root, entry, c) for c in SOURCE_COMPONENTS}
    times = [float(t) for t in meta["times"]["hours"] + meta["times"]["held_out"]]
    directional, direct_index, sky, local_on = [], [], [], []
    local = None
    for t in times:
        d, lamp, s = (sources[c].read(t, window)[valid].astype(np.float16) for c in SOURCE_COMPONENTS)
        if d.any():
            direct_index.append(len(directional))
            directional.append(d)
        else:
            direct_index.append(-1)
        sky.append(s)
        local_on.append(bool(lamp.any()))
        if lamp.any():
            if local is not None and not np.array_equal(local, lamp):
                raise ValueError(f"LocalOnly differs between lit times (t = {t}); the sample format keeps one image")
            local = lamp
    sky_unique, sky_index = _dedupe(sky)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest / SAMPLE_FILE) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, mask=mask, times=np.asarray(times), directional=np.stack(directional),
                                directional_index=np.asarray(direct_index, dtype=np.int16), sky=sky_unique,
                                sky_index=sky_index, local=local if local is not None else np.zeros_like(sky[0]),
                                local_on=np.asarray(local_on))
    meta["sample_window"] = {"lightmap_id": lightmap_id, "row": row, "col": col, "height": height, "width": width,
                             "source_size": [entry.width, entry.height]}
    if (Path(bake_root) / LEVEL_FILE).is_file():
        write_scene(window_scene(Path(bake_root) / LEVEL_FILE, lightmap_id, window, SAMPLE_LIGHTMAP_ID),
                    dest / LEVEL_FILE)
    meta["sample_storage"] = "float16 at valid texels; Original = DirectionalOnly + LocalOnly + SkyLightOnly (float32)"
    write_json_atomic(dest / SAMPLE_META, meta)
    sizes = {"npz_bytes": (dest / SAMPLE_FILE).stat().st_size, "meta_bytes": (dest / SAMPLE_META).stat().st_size}
    if (dest / LEVEL_FILE).is_file():
        sizes["level_bytes"] = (dest / LEVEL_FILE).stat().st_size
    return sizes


def _fingerprint(source: Path) -> str:
    digest = hashlib.sha1((source / SAMPLE_FILE).read_bytes())
    if (source / LEVEL_FILE).is_file():
        digest.update((source / LEVEL_FILE).read_bytes())
    return digest.hexdigest()


def materialise_sample_atlas(dest: Path, parts: int = 1, source: Path | None = None) -> Path:
    """Write the bundled sample atlas to ``dest`` in the virtual-texture layout and return ``dest``.

    ``parts``: files per lightmap (must divide its height). ``source``: a folder made by ``save_sample_atlas``
    (default: the one inside the package). A ``dest`` that already holds this sample is returned as it is;
    any other non-empty ``dest`` is refused with ``InputError``.
    """
    source = Path(source) if source is not None else sample_atlas_dir()
    dest = Path(dest)
    if not (source / SAMPLE_FILE).is_file():
        raise InputError(f"{source / SAMPLE_FILE}: the sample atlas is missing (run scripts/make_sample_atlas.py)")
    fingerprint = _fingerprint(source)
    done = dest / SAMPLE_META
    if done.is_file():
        try:
            meta = json.loads(done.read_text())
        except json.JSONDecodeError:
            meta = {}
        if meta.get("sample_fingerprint") == fingerprint and meta.get("sample_parts") == parts:
            return dest
    with np.load(source / SAMPLE_FILE) as data:
        arrays = {k: data[k] for k in data.files}
    mask = arrays["mask"]
    height, width = mask.shape
    if parts < 1 or height % parts:
        raise InputError(f"parts: {parts} does not divide the sample's height {height}")
    valid = (mask == MASK_VALID).ravel()
    texel = np.flatnonzero(valid)
    dilate_to, dilate_from = plan_dilation(valid, height, width, DILATE_TEXELS)

    def image(values: np.ndarray) -> np.ndarray:
        flat = np.zeros((height * width, 3), dtype=np.float32)
        flat[texel] = values
        flat[dilate_to] = flat[dilate_from]
        return flat.reshape(height, width, 3)

    meta = json.loads((source / SAMPLE_META).read_text())
    zeros = np.zeros((texel.size, 3), dtype=np.float32)
    with VTWriter(dest, overwrite=done.is_file()) as writer:
        writer.begin(SAMPLE_LIGHTMAP_ID, width, height, parts, source=str(source))
        writer.write_mask(SAMPLE_LIGHTMAP_ID, mask)
        for i, t in enumerate(arrays["times"].tolist()):
            d_index = int(arrays["directional_index"][i])
            directional = arrays["directional"][d_index].astype(np.float32) if d_index >= 0 else zeros
            local = arrays["local"].astype(np.float32) if arrays["local_on"][i] else zeros
            sky = arrays["sky"][int(arrays["sky_index"][i])].astype(np.float32)
            original = (directional + local) + sky
            for name, values in (("original", original), ("directional", directional), ("local", local),
                                 ("sky", sky)):
                writer.write(SAMPLE_LIGHTMAP_ID, name, t, image(values))
        meta["lightmaps"] = [{"id": SAMPLE_LIGHTMAP_ID, "width": width, "height": height, "parts": parts,
                              "valid_texels": int(texel.size)}]
        meta["sample_fingerprint"], meta["sample_parts"] = fingerprint, parts
        if (source / LEVEL_FILE).is_file():  # the part of the level the window lights (airender.bake.level_file)
            shutil.copyfile(source / LEVEL_FILE, writer.root / LEVEL_FILE)
        write_json_atomic(writer.root / SAMPLE_META, meta)
    return dest
