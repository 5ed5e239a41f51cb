"""Checks the lightmap layouts' readers share: an input folder, and a lightmap picked from config.json."""
from __future__ import annotations

from pathlib import Path

from airender.errors import InputError


def check_folder(folder: Path) -> None:
    """InputError (one line) unless ``folder`` is an existing folder."""
    if not folder.exists():
        raise InputError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")


def select_entry(config_path: Path, lightmaps: list[dict], lightmap_id: str) -> dict:
    """The entry of ``lightmaps`` (config.json's lightmap_list) named by ``lightmap_id`` ("ID" or "LEVEL:ID";
    default: the first); InputError naming ``config_path`` otherwise."""
    if not isinstance(lightmaps, list) or not all(isinstance(e, dict) for e in lightmaps):
        raise InputError(f"{config_path}: lightmap_list must be a list of lightmap entries "
                         f"(got {type(lightmaps).__name__})")
    if not lightmaps:
        raise InputError(f"{config_path}: lightmap_list is empty")
    if not lightmap_id:
        return lightmaps[0]
    level, _, ident = lightmap_id.rpartition(":")
    for entry in lightmaps:
        if str(entry.get("id")) == ident and (not level or str(entry.get("level")) == level):
            return entry
    have = ", ".join(f"{e.get('level')}:{e.get('id')}" for e in lightmaps)
    raise InputError(f"{config_path}: no lightmap {lightmap_id!r} (have {have})")
