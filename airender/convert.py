"""``airender convert``: a dataset of the first contest layout (config.json + Data/) -> the virtual-texture
layout (config.json, Mask/, Original/; see airender/data/virtual_texture.py).

The first layout holds all light in one image per hour, so only Original/ is written: the
DirectionalOnly/, LocalOnly/ and SkyLightOnly/ folders are absent from the result. Hours keep their
values (midnight is written as 24.00); the mask is the texels valid at every hour of the source.
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

from airender.cli_args import add_data_dir_argument, add_out_dir_argument, add_subcommand
from airender.data.layout import check_folder, select_entry
from airender.data.readers import read_contest_layout
from airender.data.virtual_texture import VTLightmap, is_virtual_texture, write_virtual_texture
from airender.errors import InputError, OutputError


def _selectors(src: Path, lightmap_ids: list[str]) -> list[tuple[str, int, int]]:
    """(selector for read_contest_layout, id, height) of each lightmap to convert, checked up front."""
    check_folder(src)
    config_path = src / "config.json"
    if not config_path.is_file():
        raise InputError(f"{config_path}: no such file (convert reads the contest layout: config.json + Data/)")
    try:
        lightmaps = json.loads(config_path.read_text())["lightmap_list"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{config_path}: not a contest config.json ({type(exc).__name__}: {exc})") from None
    entries = [select_entry(config_path, lightmaps, i) for i in lightmap_ids] if lightmap_ids else lightmaps
    out, seen = [], {}
    for entry in entries:
        try:
            ident, height = int(entry["id"]), int(entry["resolution"]["height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{config_path}: lightmap entry lacks or mangles {exc}") from None
        name = f"{entry['level']}:{ident}" if "level" in entry else str(ident)
        if ident in seen:
            raise InputError(f"{config_path}: lightmaps {seen[ident]} and {name} share id {ident}, which names a "
                             f"lightmap in the virtual-texture layout; convert one of them (--lightmap_id)")
        seen[ident] = name
        out.append((name, ident, height))
    return out


def convert_contest_to_vt(src: str | Path, out: str | Path, parts: int = 1,
                          lightmap_ids: list[str] | None = None) -> list[int]:
    """Convert the lightmaps ``lightmap_ids`` ("ID" or "LEVEL:ID"; default: all) of the contest dataset
    ``src`` to a virtual-texture dataset ``out`` with ``parts`` row bands per image; returns the ids written.

    One lightmap is in memory at a time; the output appears only when complete (nothing on error).
    """
    src, out = Path(src), Path(out)
    if is_virtual_texture(src):
        raise InputError(f"{src}: already in the virtual-texture layout")
    if parts <= 0:
        raise InputError(f"--parts {parts}: must be positive")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out}: exists and is not an empty folder; refusing to overwrite it")
    chosen = _selectors(src, list(lightmap_ids or []))
    for name, _, height in chosen:
        if height % parts:
            raise InputError(f"{src / 'config.json'}: lightmap {name}: height {height} does not split into "
                             f"{parts} equal parts (--parts)")

    def lightmaps() -> Iterator[VTLightmap]:
        for name, ident, _ in chosen:
            yield VTLightmap.from_sequence(read_contest_layout(src, name), ident, parts)

    write_virtual_texture(out, lightmaps())
    return [ident for _, ident, _ in chosen]


def add_convert_parser(sub) -> None:
    """Register ``airender convert`` on the subcommand set ``sub``."""
    p = add_subcommand(sub, "convert", "convert a contest lightmap dataset (config.json + Data/) to the "
                                       "virtual-texture layout",
                       "airender convert --data_dir SRC --out_dir DST [--parts P] [--lightmap_id ID ...]",
                       __doc__.split("\n\n")[0].replace("``", ""))
    add_data_dir_argument(p, "source dataset in the first contest layout")
    add_out_dir_argument(p, "output folder (must not exist, or be empty)", required=True)
    p.add_argument("--parts", type=int, default=1,
                   help="row bands per image (each lightmap's height must be a multiple; default: 1)")
    p.add_argument("--lightmap_id", action="append", default=[],
                   help="convert only this lightmap, 'ID' or 'LEVEL:ID' (repeatable; default: all)")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> int:
    ids = convert_contest_to_vt(args.data_dir, args.out_dir, args.parts, args.lightmap_id)
    print(f"wrote {args.out_dir}: lightmap{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} in "
          f"{args.parts} part{'s' if args.parts > 1 else ''}; Original/ and Mask/ only (the first layout "
          f"has no DirectionalOnly/, LocalOnly/ or SkyLightOnly/)")
    return 0
