"""``airender export --format contest``: a folder that answers the contest's decoder interface.

    OUT/Interface.py      reconstruct(dataset, lightmap_id, coords) -> [N, 3] float32 (numpy only)
    OUT/runtime/          a copy of airender.runtime (the numpy decoder), so that OUT imports nothing
                          of airender
    OUT/packs/*.airpack   one pack per lightmap (airender.runtime.packfile); a lightmap of a tiled run:
                          packs/lightmap_NAME/tile_Y_X.airpack, one pack per fitted tile (its window)
    OUT/lightmaps.json    which pack is which lightmap: {format, format_version, layout, dataset,
                          lightmaps: [{id, level, width, height, pack, bytes, checkpoint, trained_on}]};
                          a tiled lightmap has, instead of "pack", "tile_size" and "tiles": [{y, x, height,
                          width, window [top, left, h, w], pack, bytes}], and its "bytes" are the tile packs
                          plus 32 bytes of index per tile
    OUT/selfcheck.py      the release's evaluation loop and weighted score on a dataset (see its docstring)
    OUT/README.md         how to call it

Each checkpoint is matched to a lightmap of the dataset ``--data_dir`` by the lightmap its data
description names ("... (lightmap LEVEL:ID)" for the first layout, "... (lightmap ID, Original)" for the
virtual-texture layout), or by ``--lightmap_ids`` given in the order of the checkpoints. A tiled
checkpoint (``airender train --tile_size N``) gives every lightmap of the dataset that one of its atlases
names (by its data description, or its atlas id in the virtual-texture layout); ``--lightmap_ids`` is
refused with it. The runtime decodes such a lightmap with ``TiledFieldModel``. The folder is
built beside OUT and renamed into place when complete; an existing OUT is replaced only when it holds an
earlier contest export (its lightmaps.json), and any other non-empty folder is refused.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from airender import __version__
from airender.between.cli import run_network
from airender.data.layout import check_folder
from airender.data.virtual_texture import is_virtual_texture, list_lightmaps
from airender.errors import InputError, OutputError
from airender.export.pack import pack_bytes
from airender.models import load_model
from airender.models.tiled import INDEX_BYTES_PER_TILE

LAYOUTS = {"first": "hprc", "virtual-texture": "hprc-vt"}
RUNTIME_LEFT_OUT = ("onnx_decoder.py",)  # needs onnxruntime; the folder decodes packs with numpy alone
INDEX_NAME = "lightmaps.json"
_SOURCE_LIGHTMAP = re.compile(r"\(lightmap (?:(?P<level>[^():,]*):)?(?P<id>\d+)(?:, [^()]*)?\)\s*$")


@dataclass(frozen=True)
class DatasetLightmap:
    """One lightmap listed by a dataset's config.json: level (None in the virtual-texture layout), id, size."""

    level: str | None
    ident: int
    width: int
    height: int

    @property
    def name(self) -> str:
        return f"{self.level}:{self.ident}" if self.level else str(self.ident)


def dataset_lightmaps(data_dir: str | Path) -> tuple[str, list[DatasetLightmap]]:
    """(protocol "hprc" or "hprc-vt", the lightmaps) of a dataset in either layout; InputError otherwise."""
    root = Path(data_dir)
    check_folder(root)
    config_path = root / "config.json"
    if not config_path.is_file():
        raise InputError(f"{config_path}: no such file (--data_dir takes a lightmap dataset of either contest layout)")
    if is_virtual_texture(root):
        return LAYOUTS["virtual-texture"], [DatasetLightmap(None, e.lightmap_id, e.width, e.height)
                                            for e in list_lightmaps(root)]
    try:
        entries = json.loads(config_path.read_text())["lightmap_list"]
        lightmaps = [DatasetLightmap(str(e["level"]) if e.get("level") not in (None, "") else None, int(e["id"]),
                                     int(e["resolution"]["width"]), int(e["resolution"]["height"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{config_path}: not a lightmap config.json ({type(exc).__name__}: {exc})") from None
    if not lightmaps:
        raise InputError(f"{config_path}: lightmap_list is empty")
    return LAYOUTS["first"], lightmaps


def lightmap_of_source(source: str) -> tuple[str | None, int] | None:
    """(level or None, id) of the lightmap a data description's ``source`` names, or None."""
    match = _SOURCE_LIGHTMAP.search(source or "")
    if match is None:
        return None
    level = (match["level"] or "").strip()
    return level or None, int(match["id"])


def _find(lightmaps: list[DatasetLightmap], level: str | None, ident: int, what: str, data_dir: Path) -> DatasetLightmap:
    """The lightmap (level, ident) of the dataset; a level is ignored where the dataset names none."""
    matches = [m for m in lightmaps if m.ident == ident and (level is None or m.level in (level, None))]
    if len(matches) != 1:
        have = ", ".join(m.name for m in lightmaps)
        problem = "no" if not matches else "more than one"
        raise InputError(f"{what}: {problem} lightmap {f'{level}:{ident}' if level else ident} in {data_dir} "
                         f"(it has {have})")
    return matches[0]


def _parse_id(text: str) -> tuple[str | None, int]:
    level, _, ident = str(text).rpartition(":")
    try:
        return level or None, int(ident)
    except ValueError:
        raise InputError(f"--lightmap_ids {text}: not a lightmap id (ID or LEVEL:ID)") from None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _pack_name(target: DatasetLightmap) -> str:
    return f"lightmap_{_safe(target.name.replace(':', '_'))}"


def _claim(target: DatasetLightmap, owners: dict, ckpt: str, desc, data_dir: Path) -> None:
    """Record that lightmap ``target`` comes from ``ckpt`` (data description ``desc``); InputError when
    another checkpoint gave it already, the sizes differ, or the data were LDR."""
    if target in owners:
        raise InputError(f"{ckpt}: lightmap {target.name} already comes from {owners[target]}")
    owners[target] = ckpt
    if (desc.width, desc.height) != (target.width, target.height):
        raise InputError(f"{ckpt}: trained at {desc.width}x{desc.height}, but lightmap {target.name} of "
                         f"{data_dir} is {target.width}x{target.height}")
    if not desc.is_hdr:
        raise InputError(f"{ckpt}: trained on LDR frames; the contest layouts hold HDR radiance")


def _atlas_lightmap(atlas, lightmaps: list[DatasetLightmap], protocol: str) -> DatasetLightmap | None:
    """The dataset lightmap an atlas of a tiled checkpoint is: the one its data description names, or (in
    the virtual-texture layout) the one whose id is the atlas id; None when there is none."""
    named = lightmap_of_source(atlas.desc.source)
    if named is not None:
        level, ident = named
        matches = [m for m in lightmaps if m.ident == ident and (level is None or m.level in (level, None))]
    elif protocol == LAYOUTS["virtual-texture"] and atlas.atlas_id.isdigit():
        matches = [m for m in lightmaps if m.ident == int(atlas.atlas_id)]
    else:
        matches = []
    return matches[0] if len(matches) == 1 else None


def _tiled_entry(atlas, target: DatasetLightmap, tile_size: int, quant: str,
                 pack_bytes) -> tuple[dict, dict[str, bytes]]:
    """The lightmaps.json entry (without checkpoint and trained_on) of a tiled atlas and its tile packs."""
    folder = f"packs/{_pack_name(target)}"
    blobs, tiles = {}, []
    for i, tile in enumerate(atlas.tiles):
        blob = pack_bytes(atlas.field(i), quant)
        pack = f"{folder}/tile_{int(tile['y'])}_{int(tile['x'])}.airpack"
        blobs[pack] = blob
        tiles.append({"y": int(tile["y"]), "x": int(tile["x"]), "height": int(tile["height"]),
                      "width": int(tile["width"]), "window": [int(v) for v in tile["window"]], "pack": pack,
                      "bytes": len(blob)})
    size = sum(len(b) for b in blobs.values()) + INDEX_BYTES_PER_TILE * len(tiles)
    return {"id": target.ident, "level": target.level, "width": target.width, "height": target.height,
            "tile_size": int(tile_size), "tiles": tiles, "bytes": size}, blobs


def contest_files(ckpts: list[str], data_dir: str | Path, lightmap_ids: list[str] | None = None,
                  quant: str = "fp32", between: str = "auto") -> tuple[dict[str, bytes], dict]:
    """Everything the folder holds, built in memory: ({relative path: bytes}, the lightmaps.json dict).

    Raises InputError (before anything is written) for a checkpoint that names no lightmap of the dataset
    (and no --lightmap_ids), two checkpoints of one lightmap, a size that differs from the lightmap's, LDR
    data, a model the pack format does not support, or --lightmap_ids with a tiled checkpoint."""
    data_dir = Path(data_dir)
    protocol, lightmaps = dataset_lightmaps(data_dir)
    if not ckpts:
        raise InputError("--ckpt: give one checkpoint per lightmap")
    if lightmap_ids and len(lightmap_ids) != len(ckpts):
        raise InputError(f"--lightmap_ids: {len(lightmap_ids)} ids for {len(ckpts)} checkpoints (one id per --ckpt, "
                         f"in order)")
    files: dict[str, bytes] = {}
    entries, owners = [], {}
    for k, ckpt in enumerate(ckpts):
        loaded = load_model(ckpt, "cpu")
        if loaded.is_pack:
            raise InputError(f"{ckpt}: an exported pack; --format contest exports checkpoints (give the run's "
                             f"last.ckpt)")
        if loaded.is_tiled:
            if lightmap_ids:
                raise InputError(f"--lightmap_ids: {ckpt} is a tiled checkpoint, whose atlases name their "
                                 f"lightmaps; leave --lightmap_ids out")
            tiled = loaded.model
            given = 0
            for atlas in tiled.atlases.values():
                target = _atlas_lightmap(atlas, lightmaps, protocol)
                if target is None:
                    continue
                _claim(target, owners, ckpt, atlas.desc, data_dir)
                entry, blobs = _tiled_entry(atlas, target, tiled.tile_size, quant, pack_bytes)
                files.update(blobs)
                entries.append({**entry, "checkpoint": str(ckpt), "trained_on": atlas.desc.source})
                given += 1
            if not given:
                have = ", ".join(f"{a.atlas_id} ({a.desc.source or 'unnamed'})" for a in tiled.atlases.values())
                raise InputError(f"{ckpt}: none of its atlases ({have}) is a lightmap of {data_dir}")
            continue
        desc = loaded.desc
        if lightmap_ids:
            level, ident = _parse_id(lightmap_ids[k])
            target = _find(lightmaps, level, ident, f"--lightmap_ids {lightmap_ids[k]}", data_dir)
        else:
            named = lightmap_of_source(desc.source)
            if named is None:
                raise InputError(f"{ckpt}: its data ({desc.source or 'unnamed'}) name no lightmap; give "
                                 f"--lightmap_ids (one per --ckpt)")
            target = _find(lightmaps, *named, ckpt, data_dir)
        _claim(target, owners, ckpt, desc, data_dir)
        blob = pack_bytes(loaded.field, quant, run_network(ckpt, loaded.config) if between == "auto" else None)
        pack = f"packs/{_pack_name(target)}.airpack"
        files[pack] = blob
        entries.append({"id": target.ident, "level": target.level, "width": target.width, "height": target.height,
                        "pack": pack, "bytes": len(blob), "checkpoint": str(ckpt), "trained_on": desc.source})
    missing = [m.name for m in lightmaps if m not in owners]
    index = {"format": "airender-contest", "format_version": 1, "airender_version": __version__,
             "layout": protocol, "dataset": data_dir.resolve().name, "quant": quant,
             "lightmaps": entries, "not_exported": missing}
    files[INDEX_NAME] = (json.dumps(index, indent=2) + "\n").encode("utf-8")
    runtime = resources.files("airender.runtime")
    for entry in sorted(runtime.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py") and entry.name not in RUNTIME_LEFT_OUT:
            files[f"runtime/{entry.name}"] = entry.read_bytes()
    here = resources.files(__package__)
    for name in ("Interface.py", "selfcheck.py", "README.md"):
        files[name] = here.joinpath(name).read_bytes()
    return files, index


def check_contest_target(out: Path) -> None:
    """InputError unless ``out`` is absent, an empty folder or an earlier contest export (it is replaced)."""
    if out.exists():
        if not out.is_dir():
            raise InputError(f"{out}: exists and is not a folder")
        if any(out.iterdir()) and not (out / INDEX_NAME).is_file():
            raise InputError(f"{out}: a folder that holds other files (not a contest export); choose an empty or "
                             f"new folder")


def write_contest(ckpts: list[str], data_dir: str | Path, out: str | Path, lightmap_ids: list[str] | None = None,
                  quant: str = "fp32", between: str = "auto") -> dict:
    """Write the contest folder ``out`` (see the module docstring; ``between`` 'auto': each pack carries its run's
    network between the hours, 'model': none); returns the lightmaps.json dict."""
    out = Path(out)
    check_contest_target(out)
    files, index = contest_files(ckpts, data_dir, lightmap_ids, quant, between)
    parent = out.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    old = None
    try:
        for name, blob in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob)
        check_contest_target(out)  # again: it may have changed meanwhile
        if out.is_dir():
            old = parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.old"
            os.rename(out, old)
        os.rename(staging, out)
    except OSError as exc:
        if old is not None and not out.exists():
            os.rename(old, out)
            old = None
        raise OutputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return index
