"""The "virtual texture" lightmap layout (see HPRC-FORMAT.md): file names, writing parts, reading them back.

    <root>/config.json
    <root>/Mask/lightmapCoverage_Dilate_VirtualTexture0_<id>_HQ_<W>_<H>_1.00.bin_<part>       int8, 127 / -1
    <root>/<Source>/lightmapRawData_Dilate_VirtualTexture0_<id>_HQ_<W>_<H>_<T>.bin_<part>    float32 RGB

``<Source>`` is Original, DirectionalOnly, LocalOnly or SkyLightOnly; ``<T>`` the time of day with two
decimals (``1.00`` .. ``24.00``, held-out times such as ``5.90`` or ``10.25``). A lightmap of H rows is
split into P parts along its height: part k holds rows [k*H/P, (k+1)*H/P), row-major, little-endian.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from airender.errors import InputError
from airender.fileio import write_json_atomic

SOURCES = ("Original", "DirectionalOnly", "LocalOnly", "SkyLightOnly")
MASK_FOLDER = "Mask"
PREFIX = "VirtualTexture0"


def time_suffix(hour: float) -> str:
    """The time field of a file name: two decimals (``7.5`` -> ``7.50``, ``24`` -> ``24.00``)."""
    return f"{hour:.2f}"


def lightmap_name(lightmap_id: int, width: int, height: int, hour: float, part: int) -> str:
    return f"lightmapRawData_Dilate_{PREFIX}_{lightmap_id}_HQ_{width}_{height}_{time_suffix(hour)}.bin_{part}"


def mask_name(lightmap_id: int, width: int, height: int, part: int) -> str:
    return f"lightmapCoverage_Dilate_{PREFIX}_{lightmap_id}_HQ_{width}_{height}_1.00.bin_{part}"


def _row_slices(height: int, parts: int) -> list[slice]:
    if parts < 1 or height % parts:
        raise ValueError(f"{height} rows cannot be split into {parts} equal parts")
    rows = height // parts
    return [slice(k * rows, (k + 1) * rows) for k in range(parts)]


def write_lightmap(root: Path, source: str, lightmap_id: int, hour: float, image: np.ndarray, parts: int) -> None:
    """Write ``image`` [H, W, 3] (any float dtype; stored float32 little-endian) as ``parts`` files."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    height, width, channels = image.shape
    if channels != 3:
        raise ValueError(f"a lightmap has 3 channels, got {channels}")
    folder = Path(root) / source
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate(_row_slices(height, parts)):
        path = folder / lightmap_name(lightmap_id, width, height, hour, part)
        np.ascontiguousarray(image[rows], dtype="<f4").tofile(path)


def write_mask(root: Path, lightmap_id: int, mask: np.ndarray, parts: int) -> None:
    """Write the coverage ``mask`` [H, W] int8 (127 valid, -1 invalid) as ``parts`` files."""
    height, width = mask.shape
    folder = Path(root) / MASK_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in enumerate(_row_slices(height, parts)):
        np.ascontiguousarray(mask[rows], dtype=np.int8).tofile(folder / mask_name(lightmap_id, width, height, part))


def write_config(root: Path, lightmaps: list[dict]) -> None:
    """``config.json`` from entries ``{"id", "width", "height", "parts"}``."""
    write_json_atomic(Path(root) / "config.json", {
        "lightmap_count": len(lightmaps),
        "lightmap_list": [{"id": int(m["id"]), "resolution": {"width": int(m["width"]), "height": int(m["height"])},
                           "parts": int(m["parts"])} for m in lightmaps]})


def read_config(root: Path) -> list[dict]:
    """The lightmaps of ``root/config.json`` as ``{"id", "width", "height", "parts"}`` entries."""
    config = json.loads((Path(root) / "config.json").read_text())
    return [{"id": m["id"], "width": m["resolution"]["width"], "height": m["resolution"]["height"],
             "parts": m.get("parts", 1)} for m in config["lightmap_list"]]


def read_lightmap(root: Path, source: str, entry: dict, hour: float) -> np.ndarray:
    """Read the parts of one lightmap back into [H, W, 3] float32."""
    width, height, parts = entry["width"], entry["height"], entry["parts"]
    chunks = [np.fromfile(Path(root) / source / lightmap_name(entry["id"], width, height, hour, k), dtype="<f4")
              for k in range(parts)]
    return np.concatenate(chunks).reshape(height, width, 3)


def read_mask(root: Path, entry: dict) -> np.ndarray:
    """Read the parts of one coverage mask back into [H, W] int8."""
    width, height, parts = entry["width"], entry["height"], entry["parts"]
    chunks = [np.fromfile(Path(root) / MASK_FOLDER / mask_name(entry["id"], width, height, k), dtype=np.int8)
              for k in range(parts)]
    return np.concatenate(chunks).reshape(height, width)


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty ``out`` unless ``overwrite`` (``InputError``), and a file in its place."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out}: exists and is not empty (pass --overwrite to replace it)")


class StagedFolder:
    """A folder written under a temporary name beside ``out`` and renamed onto ``out`` only on success.

    ``with StagedFolder(out, overwrite) as root:`` writes into ``root``; if the block raises, ``root`` is
    removed and ``out`` is untouched. On success an existing ``out`` (empty, or any with ``overwrite``) is
    replaced.
    """

    def __init__(self, out: Path, overwrite: bool) -> None:
        self.out = Path(out)
        self.overwrite = overwrite
        self.root = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"

    def __enter__(self) -> Path:
        check_output_folder(self.out, self.overwrite)
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        return self.root

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            return
        old = None
        if self.out.exists():
            check_output_folder(self.out, self.overwrite)
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.replace(self.out, old)
        os.replace(self.root, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
