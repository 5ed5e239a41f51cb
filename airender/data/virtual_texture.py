"""The "virtual texture" lightmap layout: large atlases split into row bands, lighting split by source.

Layout (see docs/HPRC-FORMAT.md)::

    <Dataset>/config.json   {"lightmap_count": N, "lightmap_list": [{"id": I, "resolution": {"width": W,
                             "height": H}, "parts": P}, ...]}
    <Dataset>/Mask/         lightmapCoverage_Dilate_VirtualTexture0_<I>_HQ_<W>_<H>_1.00.bin_<part>
    <Dataset>/Original/     lightmapRawData_Dilate_VirtualTexture0_<I>_HQ_<W>_<H>_<T>.bin_<part>
    <Dataset>/DirectionalOnly/, LocalOnly/, SkyLightOnly/   (same names as Original/; each optional)

Part k of an image holds rows [k H / P, (k + 1) H / P), row-major: float32 RGB for lighting, int8 for
the mask (127 = valid texel, -1 = invalid). ``<T>`` is the hour with two decimals ("7.00", "7.50",
"24.00" = midnight); the hour is parsed from the name, never from the order of the files.

Files are read through ``np.memmap``: only the rows (and columns) asked for are copied, so a window of
an atlas far larger than memory can be read. :func:`read_virtual_texture` gives one lightmap and one
component as a :class:`TODSequence`; :func:`read_components` gives every component present;
:func:`check_component_sum` verifies Original = DirectionalOnly + LocalOnly + SkyLightOnly band by band;
:meth:`VTComponent.read` gives one hour as an array. :class:`VTWriter` writes the layout one image at a
time (memory stays at one image, for atlases of any size) into a staging folder that is renamed into
place only when complete; :func:`write_virtual_texture` writes whole lightmaps through it.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from airender.data.layout import check_folder, select_entry
from airender.data.sequence import TODSequence
from airender.errors import InputError, OutputError
from airender.fileio import atomic_path, make_dir, write_json_atomic
from airender.hours import HOURS_PER_DAY

COMPONENT_FOLDERS: dict[str, str] = {"original": "Original", "directional": "DirectionalOnly",
                                     "local": "LocalOnly", "sky": "SkyLightOnly"}
COMPONENTS: tuple[str, ...] = tuple(COMPONENT_FOLDERS)
SOURCE_COMPONENTS: tuple[str, ...] = ("directional", "local", "sky")  # they add up to "original"
MASK_FOLDER = "Mask"
RAW_PREFIX = "lightmapRawData_Dilate_VirtualTexture0_"
MASK_PREFIX = "lightmapCoverage_Dilate_VirtualTexture0_"
MASK_TIME_TEXT = "1.00"
MASK_VALID, MASK_INVALID = 127, -1
RAW_DTYPE = np.dtype("<f4")
MASK_DTYPE = np.dtype("i1")
COMPONENT_RTOL = 1e-4  # |D + L + S - O| <= atol + rtol (|D| + |L| + |S|): float32 rounding with margin
COMPONENT_ATOL = 1e-6
CHECK_CHUNK_TEXELS = 1 << 18  # texels per band of the component-sum check (bounds its memory)

_RAW_NAME = re.compile(r"lightmapRawData_Dilate_VirtualTexture0_(?P<id>\d+)_HQ_(?P<w>\d+)_(?P<h>\d+)_"
                       r"(?P<t>\d+(?:\.\d+)?)\.bin_(?P<part>\d+)")


def time_text(hour: float) -> str:
    """The time field of a file name: two decimals, midnight written as "24.00" (7.5 -> "7.50").

    Raises InputError for hours outside [0, 24] or with more than two decimals (they would not read back).
    """
    if not 0.0 <= hour <= HOURS_PER_DAY:
        raise InputError(f"hour {hour:g}: not a time of day in [0, 24]")
    hour = hour % HOURS_PER_DAY
    text = f"{hour if hour > 0.0 else HOURS_PER_DAY:.2f}"
    if abs(float(text) % HOURS_PER_DAY - hour) > 1e-9:
        raise InputError(f"hour {hour!r}: the layout names times with two decimals; {text} would not read back")
    return text


def raw_file_name(lightmap_id: int, width: int, height: int, time: str, part: int) -> str:
    """Name of one part of one hour of a lighting component (``time`` as made by :func:`time_text`)."""
    return f"{RAW_PREFIX}{lightmap_id}_HQ_{width}_{height}_{time}.bin_{part}"


def mask_file_name(lightmap_id: int, width: int, height: int, part: int) -> str:
    """Name of one part of the validity mask of a lightmap (one mask for every hour)."""
    return f"{MASK_PREFIX}{lightmap_id}_HQ_{width}_{height}_{MASK_TIME_TEXT}.bin_{part}"


# --- config -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VTEntry:
    """One listed lightmap: id, size in texels, and the number of row bands (parts) per image."""

    lightmap_id: int
    width: int
    height: int
    parts: int

    @property
    def band_rows(self) -> int:
        return self.height // self.parts


def _read_config(root: Path) -> tuple[Path, list[dict]]:
    config_path = root / "config.json"
    try:
        config = json.loads(config_path.read_text())
        lightmaps = config["lightmap_list"]
        if not isinstance(lightmaps, list):
            raise TypeError("lightmap_list is not a list")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{config_path}: not a lightmap config.json ({type(exc).__name__}: {exc})") from None
    return config_path, lightmaps


def is_virtual_texture(path: str | Path) -> bool:
    """True for a folder in the virtual-texture layout: an ``Original/`` folder, or a config.json whose
    lightmaps give ``parts``."""
    path = Path(path)
    if (path / COMPONENT_FOLDERS["original"]).is_dir():
        return True
    try:
        lightmaps = json.loads((path / "config.json").read_text())["lightmap_list"]
        return bool(lightmaps) and all(isinstance(e, dict) and "parts" in e for e in lightmaps)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def list_lightmaps(root: str | Path) -> list[VTEntry]:
    """Every lightmap listed in the config.json of a virtual-texture dataset, in the listed order."""
    root = Path(root)
    config_path, lightmaps = _read_config(root)
    return [_entry(config_path, e) for e in lightmaps]


def select_lightmap(root: str | Path, lightmap_id: str = "") -> VTEntry:
    """The lightmap whose id is ``lightmap_id`` (default: the first listed)."""
    root = Path(root)
    check_folder(root)
    config_path, lightmaps = _read_config(root)
    return _entry(config_path, select_entry(config_path, lightmaps, str(lightmap_id)))


def _entry(config_path: Path, entry: Any) -> VTEntry:
    try:
        ident = int(entry["id"])
        width, height = int(entry["resolution"]["width"]), int(entry["resolution"]["height"])
        parts = int(entry["parts"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{config_path}: lightmap entry {entry!r:.80} lacks or mangles {exc}") from None
    if ident < 0 or width <= 0 or height <= 0 or parts <= 0:
        raise InputError(f"{config_path}: lightmap {ident}: id, width, height and parts must be positive "
                         f"(got {ident}, {width}, {height}, {parts})")
    if height % parts:
        raise InputError(f"{config_path}: lightmap {ident}: height {height} does not split into {parts} equal parts")
    return VTEntry(ident, width, height, parts)


# --- memory-mapped images -----------------------------------------------------------------------------
@dataclass
class BandedImage:
    """One H x W image stored as row bands (``paths[k]`` holds rows [k R, (k + 1) R), R = H / P), read
    through memory maps. ``channels`` is 3 for RGB lighting, 1 for a mask (read as [h, w])."""

    paths: list[Path]
    height: int
    width: int
    channels: int
    dtype: np.dtype

    @property
    def band_rows(self) -> int:
        return self.height // len(self.paths)

    def band(self, part: int) -> np.memmap:
        """Part ``part`` as a read-only memory map, [R, W, C] (or [R, W] for a mask)."""
        shape = (self.band_rows, self.width) + ((self.channels,) if self.channels > 1 else ())
        try:
            return np.memmap(self.paths[part], dtype=self.dtype, mode="r", shape=shape)
        except OSError as exc:
            raise InputError(f"{self.paths[part]}: cannot be read ({exc.strerror or exc})") from None

    def path_at(self, y: int) -> Path:
        """The file holding row ``y``."""
        return self.paths[y // self.band_rows]

    def read(self, top: int, bottom: int, left: int = 0, right: int | None = None,
             out: np.ndarray | None = None) -> np.ndarray:
        """Rows [top, bottom) and columns [left, right) as an array [h, w, C] (or [h, w]); only those
        texels are read from the files. ``out`` (optional) receives them instead of a new array."""
        right = self.width if right is None else right
        shape = (bottom - top, right - left) + ((self.channels,) if self.channels > 1 else ())
        out = np.empty(shape, dtype=self.dtype) if out is None else out
        rows = self.band_rows
        for part in range(top // rows, -(-bottom // rows)):
            y0, y1 = max(top, part * rows), min(bottom, (part + 1) * rows)
            band = self.band(part)
            out[y0 - top:y1 - top] = band[y0 - part * rows:y1 - part * rows, left:right]
            del band
        return out


def _banded(paths: list[Path], entry: VTEntry, channels: int, dtype: np.dtype, what: str) -> BandedImage:
    expected = entry.band_rows * entry.width * channels * dtype.itemsize
    for path in paths:
        size = path.stat().st_size
        if size != expected:
            raise InputError(f"{path}: has {size} bytes, expected {expected} for a {entry.width}x{entry.band_rows} "
                             f"{what} part ({entry.parts} parts of {entry.width}x{entry.height})")
    return BandedImage(paths, entry.height, entry.width, channels, dtype)


@dataclass
class VTComponent:
    """Every hour of one lighting component of one lightmap, memory-mapped.

    hours: [T] ascending hours in [0, 24) (24.00 in a name is 0); times: the time field of each hour's
    file names; images: [T] one BandedImage of float32 RGB per hour.
    """

    entry: VTEntry
    component: str
    folder: Path
    hours: list[float]
    times: list[str]
    images: list[BandedImage]

    def names(self) -> list[str]:
        """Per hour, the file name without its part suffix."""
        e = self.entry
        return [raw_file_name(e.lightmap_id, e.width, e.height, t, 0)[:-2] for t in self.times]

    def read(self, hour: float, window: Window | None = None) -> np.ndarray:
        """The image at ``hour`` (24 and 0 name the same hour) as [h, w, 3] float32 linear radiance: the
        whole lightmap, or ``window`` = (top, left, height, width) texels of it. Only those texels are read.
        Raises InputError when the component has no image at ``hour``."""
        key = round(float(hour) % HOURS_PER_DAY, 6)
        if key not in self.hours:
            raise InputError(f"{self.folder}: lightmap {self.entry.lightmap_id} has no image at hour {hour:g} "
                             f"(it has {', '.join(f'{h:g}' for h in self.hours)})")
        top, left, height, width = _check_window(self.folder.parent, self.entry, window)
        return self.images[self.hours.index(key)].read(top, top + height, left, left + width)


def open_component(root: str | Path, entry: VTEntry, component: str = "original") -> VTComponent:
    """Find and check every file of ``component`` of lightmap ``entry``: each hour needs all P parts
    of the right size. Files of other lightmaps in the folder are ignored."""
    if component not in COMPONENT_FOLDERS:
        raise InputError(f"component {component!r}: unknown (choose from {', '.join(COMPONENTS)})")
    root = Path(root)
    folder = root / COMPONENT_FOLDERS[component]
    if not folder.is_dir():
        have = [c for c, name in COMPONENT_FOLDERS.items() if (root / name).is_dir()]
        raise InputError(f"{folder}: no such folder: this dataset has no {component!r} component "
                         f"(it has {', '.join(have) or 'none'})")
    by_hour: dict[float, tuple[str, dict[int, Path]]] = {}
    for path in sorted(folder.iterdir()):
        match = _RAW_NAME.fullmatch(path.name)
        if not match or int(match["id"]) != entry.lightmap_id:
            continue
        if (int(match["w"]), int(match["h"])) != (entry.width, entry.height):
            raise InputError(f"{path}: the name says {match['w']}x{match['h']} but config.json gives lightmap "
                             f"{entry.lightmap_id} as {entry.width}x{entry.height}")
        raw_hour, part = float(match["t"]), int(match["part"])
        if raw_hour > HOURS_PER_DAY:
            raise InputError(f"{path}: time {match['t']} is beyond 24:00")
        if part >= entry.parts:
            raise InputError(f"{path}: part {part}, but config.json splits lightmap {entry.lightmap_id} into "
                             f"{entry.parts} (parts 0..{entry.parts - 1})")
        hour = round(raw_hour % HOURS_PER_DAY, 6)
        text, parts = by_hour.setdefault(hour, (match["t"], {}))
        if text != match["t"]:
            other = raw_file_name(entry.lightmap_id, entry.width, entry.height, text, part)
            raise InputError(f"{path}: same hour {hour:g} as {other}")
        parts[part] = path
    if not by_hour:
        raise InputError(f"{folder}: no files of lightmap {entry.lightmap_id} ({entry.width}x{entry.height}; "
                         f"expected e.g. {raw_file_name(entry.lightmap_id, entry.width, entry.height, '1.00', 0)})")
    hours = sorted(by_hour)
    images = []
    for hour in hours:
        text, parts = by_hour[hour]
        for k in range(entry.parts):
            if k not in parts:
                missing = folder / raw_file_name(entry.lightmap_id, entry.width, entry.height, text, k)
                raise InputError(f"{missing}: missing (part {k} of {entry.parts} of hour {hour:g})")
        paths = [parts[k] for k in range(entry.parts)]
        images.append(_banded(paths, entry, 3, RAW_DTYPE, "float32 RGB"))
    return VTComponent(entry, component, folder, hours, [by_hour[h][0] for h in hours], images)


def open_mask(root: str | Path, entry: VTEntry) -> BandedImage:
    """The int8 validity mask of lightmap ``entry`` (127 valid, -1 invalid), memory-mapped."""
    folder = Path(root) / MASK_FOLDER
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder (the layout keeps the validity masks there)")
    paths = [folder / mask_file_name(entry.lightmap_id, entry.width, entry.height, k) for k in range(entry.parts)]
    for k, path in enumerate(paths):
        if not path.is_file():
            raise InputError(f"{path}: missing (mask part {k} of {entry.parts})")
    return _banded(paths, entry, 1, MASK_DTYPE, "int8 mask")


def check_same_hours(components: dict[str, VTComponent]) -> None:
    """Raise InputError naming the first component folder whose hours differ from the first one's."""
    items = list(components.values())
    first = items[0]
    for other in items[1:]:
        if other.hours != first.hours:
            extra = sorted(set(other.hours) - set(first.hours))
            lacking = sorted(set(first.hours) - set(other.hours))
            parts = ([f"has hours {', '.join(f'{h:g}' for h in extra)} that {first.folder.name}/ lacks"] if extra
                     else []) + ([f"lacks hours {', '.join(f'{h:g}' for h in lacking)} of {first.folder.name}/"]
                                 if lacking else [])
            raise InputError(f"{other.folder}: {'; '.join(parts)}")


# --- reading into sequences ---------------------------------------------------------------------------
Window = tuple[int, int, int, int]  # (top, left, height, width) in texels


def _check_window(root: Path, entry: VTEntry, window: Window | None) -> Window:
    if window is None:
        return 0, 0, entry.height, entry.width
    top, left, height, width = (int(v) for v in window)
    if top < 0 or left < 0 or height <= 0 or width <= 0 or top + height > entry.height or left + width > entry.width:
        raise InputError(f"{root}: window (top {top}, left {left}, {width}x{height}) is not inside lightmap "
                         f"{entry.lightmap_id} ({entry.width}x{entry.height})")
    return top, left, height, width


def _read_mask_window(mask: BandedImage, window: Window) -> np.ndarray:
    top, left, height, width = window
    return mask.read(top, top + height, left, left + width) > 0


def _read_frames(component: VTComponent, valid: np.ndarray, window: Window) -> torch.Tensor:
    """[T, h, w, 3] float32 of ``window`` for every hour (one copy from the memory maps). Non-finite
    values are an error at valid texels and become 0 at invalid ones."""
    top, left, height, width = window
    frames = torch.empty((len(component.hours), height, width, 3), dtype=torch.float32)
    array = frames.numpy()
    for t, image in enumerate(component.images):
        image.read(top, top + height, left, left + width, out=array[t])
        bad = ~np.isfinite(array[t]).all(axis=2)
        if bad.any():
            at_valid = bad & valid
            if at_valid.any():
                y, x = (int(v) for v in np.argwhere(at_valid)[0])
                raise InputError(f"{image.path_at(top + y)}: NaN or Inf at valid texel y {top + y}, x {left + x}")
            array[t][bad] = 0.0
    return frames


def _sequence(component: VTComponent, frames: torch.Tensor, valid: np.ndarray, root: Path) -> TODSequence:
    mask = torch.from_numpy(valid)
    return TODSequence(frames=frames, times=torch.tensor(component.hours, dtype=torch.float64),
                       mask=None if bool(mask.all()) else mask, is_hdr=True,
                       source=f"{root} (lightmap {component.entry.lightmap_id}, {component.folder.name})",
                       names=component.names())


def read_virtual_texture(root: str | Path, lightmap_id: str = "", component: str = "original",
                         window: Window | None = None) -> TODSequence:
    """One component of one lightmap as a TODSequence: frames [T, h, w, 3] float32 linear radiance,
    hours [T] from the file names, mask [h, w] (None when every texel is valid).

    ``lightmap_id``: the config.json id (default: the first listed). ``component``: one of COMPONENTS.
    ``window``: (top, left, height, width) texels to read instead of the whole atlas.
    """
    root = Path(root)
    entry = select_lightmap(root, lightmap_id)
    opened = open_component(root, entry, component)
    window = _check_window(root, entry, window)
    valid = _read_mask_window(open_mask(root, entry), window)
    return _sequence(opened, _read_frames(opened, valid, window), valid, root)


def read_components(root: str | Path, lightmap_id: str = "", window: Window | None = None,
                    check_sum: bool = True, rtol: float = COMPONENT_RTOL,
                    atol: float = COMPONENT_ATOL) -> dict[str, TODSequence]:
    """Every component present of one lightmap, {component: TODSequence} (Original always; the
    source components where their folders exist), with one mask and the same hours for all.

    With ``check_sum`` and all three source components present, first checks (band by band, over the
    whole atlas) that they add up to Original; see :func:`check_component_sum`.
    """
    root = Path(root)
    entry = select_lightmap(root, lightmap_id)
    opened = {c: open_component(root, entry, c) for c in COMPONENTS
              if c == "original" or (root / COMPONENT_FOLDERS[c]).is_dir()}
    check_same_hours(opened)
    mask = open_mask(root, entry)
    if check_sum and all(c in opened for c in SOURCE_COMPONENTS):
        _check_sum(opened, mask, rtol, atol, CHECK_CHUNK_TEXELS)
    window = _check_window(root, entry, window)
    valid = _read_mask_window(mask, window)
    return {c: _sequence(o, _read_frames(o, valid, window), valid, root) for c, o in opened.items()}


def check_component_sum(root: str | Path, lightmap_id: str = "", rtol: float = COMPONENT_RTOL,
                        atol: float = COMPONENT_ATOL, chunk_texels: int = CHECK_CHUNK_TEXELS) -> None:
    """Check Original = DirectionalOnly + LocalOnly + SkyLightOnly at every valid texel and hour:
    |D + L + S - O| <= atol + rtol (|D| + |L| + |S|) per channel, computed in float64 on bands of about
    ``chunk_texels`` texels (memory stays bounded for any atlas size).

    Raises InputError naming the Original file of the worst texel, with lightmap, hour, y, x and values.
    """
    root = Path(root)
    entry = select_lightmap(root, lightmap_id)
    opened = {c: open_component(root, entry, c) for c in ("original",) + SOURCE_COMPONENTS}
    check_same_hours(opened)
    _check_sum(opened, open_mask(root, entry), rtol, atol, chunk_texels)


def _check_sum(opened: dict[str, VTComponent], mask: BandedImage, rtol: float, atol: float,
               chunk_texels: int) -> None:
    original = opened["original"]
    entry = original.entry
    rows = max(1, chunk_texels // entry.width)
    worst = (0.0, -1, -1, -1)  # (excess over the tolerance, hour index, y, x)
    for top in range(0, entry.height, rows):
        bottom = min(top + rows, entry.height)
        valid = mask.read(top, bottom) > 0
        if not valid.any():
            continue
        for t in range(len(original.hours)):
            total = np.zeros((bottom - top, entry.width, 3))
            magnitude = np.zeros_like(total)
            for c in SOURCE_COMPONENTS:
                part = opened[c].images[t].read(top, bottom).astype(np.float64)
                total += part
                magnitude += np.abs(part)
            excess = np.abs(total - original.images[t].read(top, bottom)) - (atol + rtol * magnitude)
            excess = np.where(valid, np.nan_to_num(excess, nan=np.inf).max(axis=2), -np.inf)
            y, x = np.unravel_index(int(np.argmax(excess)), excess.shape)
            if excess[y, x] > worst[0]:
                worst = (float(excess[y, x]), t, top + int(y), int(x))
    if worst[1] >= 0:
        _, t, y, x = worst

        def rgb(c: str) -> np.ndarray:
            return opened[c].images[t].read(y, y + 1, x, x + 1)[0, 0].astype(np.float64)

        def fmt(v: np.ndarray) -> str:
            return "(" + ", ".join(f"{c:.7g}" for c in v) + ")"

        d, l, s, o = rgb("directional"), rgb("local"), rgb("sky"), rgb("original")
        raise InputError(f"{original.images[t].path_at(y)}: DirectionalOnly + LocalOnly + SkyLightOnly differ from "
                         f"Original beyond tolerance (rtol {rtol:g}, atol {atol:g}); worst texel: lightmap "
                         f"{entry.lightmap_id}, hour {original.hours[t]:g}, y {y}, x {x}: {fmt(d)} + {fmt(l)} + "
                         f"{fmt(s)} = {fmt(d + l + s)} but Original has {fmt(o)}")


# --- writing ------------------------------------------------------------------------------------------
@dataclass
class VTLightmap:
    """One lightmap to write.

    lightmap_id: its id in config.json. hours: [T] hours in [0, 24] (two decimals at most).
    components: {component: [T, H, W, 3] float32 linear radiance} (numpy arrays or CPU tensors);
    "original" is required, the source components are optional. mask: [H, W] bool (True = valid) or
    None (every texel valid). parts: row bands per image (H must be a multiple).
    """

    lightmap_id: int
    hours: list[float]
    components: dict[str, Any]
    mask: Any = None
    parts: int = 1
    source: str = field(default="", repr=False)

    @classmethod
    def from_sequence(cls, sequence: TODSequence, lightmap_id: int = 0, parts: int = 1,
                      sources: dict[str, TODSequence] | None = None) -> "VTLightmap":
        """Original from ``sequence``; optional source components from ``sources`` (same hours)."""
        components = {"original": sequence.frames}
        components.update({c: s.frames for c, s in (sources or {}).items()})
        return cls(lightmap_id, sequence.time_list(), components, sequence.mask, parts, sequence.source)


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _lightmap_label(out: Path, lightmap_id: int, source: str = "") -> str:
    return f"{out}: lightmap {lightmap_id}" + (f" (from {source})" if source else "")


def _check_lightmap(out: Path, lm: VTLightmap) -> tuple[int, int]:
    """(height, width) of a VTLightmap whose components agree in shape; InputError otherwise.
    (Parts, hours and ids are checked by :class:`VTWriter` as they are written.)"""
    what = _lightmap_label(out, lm.lightmap_id, lm.source)
    if "original" not in lm.components:
        raise InputError(f"{what}: no 'original' component to write")
    unknown = sorted(set(lm.components) - set(COMPONENTS))
    if unknown:
        raise InputError(f"{what}: unknown components {unknown} (choose from {', '.join(COMPONENTS)})")
    shape = tuple(lm.components["original"].shape)
    if len(shape) != 4 or shape[3] != 3 or shape[0] != len(lm.hours):
        raise InputError(f"{what}: original is {shape}, expected [{len(lm.hours)}, H, W, 3] for {len(lm.hours)} hours")
    for name, frames in lm.components.items():
        if tuple(frames.shape) != shape:
            raise InputError(f"{what}: {name} is {tuple(frames.shape)} but original is {shape}")
    return shape[1], shape[2]


def check_output_folder(out: str | Path, overwrite: bool = False, overwrite_flag: str = "") -> Path:
    """``out`` as a Path, if a dataset may be written there: it does not exist, or is an empty folder, or
    (with ``overwrite``) any folder. A file in its place, or a non-empty folder without ``overwrite``, is
    refused with OutputError; ``overwrite_flag`` (e.g. "--overwrite") is named in that message."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is a file, not a folder")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        hint = f" (pass {overwrite_flag} to replace it)" if overwrite_flag else ""
        raise OutputError(f"{out}: exists and is not an empty folder; refusing to overwrite it{hint}")
    return out


class VTWriter:
    """Writes a virtual-texture dataset one image at a time; the dataset appears at ``out_dir`` only
    when complete.

    ::

        with VTWriter(out_dir) as writer:
            writer.begin(1, width=W, height=H, parts=P)         # announce each lightmap
            writer.write_mask(1, valid)                          # [H, W] bool or int8 coverage (> 0 = valid)
            writer.write(1, "original", 7.5, image)              # [H, W, 3] float radiance, per component/hour
            write_json_atomic(writer.root / "meta.json", meta)   # other files go into the staging folder

    Everything goes into a staging folder beside ``out_dir``. Leaving the block without an error checks
    that every lightmap has Original images and that its other components have the same hours, writes an
    all-valid mask where none was given, writes config.json (lightmaps in the order begun) and renames
    the staging folder to ``out_dir`` (replacing an existing one with ``overwrite``). On any error the
    staging folder is removed and ``out_dir`` is left as it was. ``out_dir`` must not exist, be an empty
    folder, or (with ``overwrite``) be a folder; see :func:`check_output_folder`.
    """

    def __init__(self, out_dir: str | Path, overwrite: bool = False, overwrite_flag: str = ""):
        self.out = Path(out_dir)
        self.overwrite = overwrite
        self.overwrite_flag = overwrite_flag
        self.root: Path | None = None  # the staging folder, while the writer is open
        self._entries: dict[int, VTEntry] = {}
        self._sources: dict[int, str] = {}
        self._hours: dict[tuple[int, str], dict[float, str]] = {}  # (id, component) -> {hour: time text}
        self._masked: set[int] = set()

    def __enter__(self) -> "VTWriter":
        check_output_folder(self.out, self.overwrite, self.overwrite_flag)
        staging = make_dir(self.out.parent) / f".{self.out.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            staging.mkdir()
        except OSError as exc:
            raise OutputError(f"{staging}: cannot create a folder ({exc.strerror})") from None
        self.root = staging
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        staging = self._staging()
        try:
            if exc_type is None:
                self._commit(staging)
        finally:
            self.root = None
            if staging.exists():  # not committed: nothing is left behind
                shutil.rmtree(staging, ignore_errors=True)

    def begin(self, lightmap_id: int, width: int, height: int, parts: int = 1, source: str = "") -> VTEntry:
        """Announce lightmap ``lightmap_id``: ``width`` x ``height`` texels stored as ``parts`` row bands
        (``height`` must be a multiple). ``source`` names where it comes from in error messages."""
        self._staging()
        ident, width, height, parts = int(lightmap_id), int(width), int(height), int(parts)
        what = _lightmap_label(self.out, ident, source)
        if ident in self._entries:
            raise InputError(f"{self.out}: lightmap id {ident} given twice")
        if ident < 0 or width <= 0 or height <= 0:
            raise InputError(f"{what}: id must be >= 0 and the size positive (got {width}x{height})")
        if parts <= 0 or height % parts:
            raise InputError(f"{what}: height {height} does not split into {parts} equal parts")
        self._entries[ident] = entry = VTEntry(ident, width, height, parts)
        self._sources[ident] = source
        return entry

    def write(self, lightmap_id: int, component: str, hour: float, image: Any) -> None:
        """Write ``image`` [H, W, 3] (linear radiance; numpy array or CPU tensor, stored as little-endian
        float32) as ``component`` (one of COMPONENTS) of lightmap ``lightmap_id`` at ``hour`` (in [0, 24],
        two decimals at most; 0 is written as 24.00), one file per part."""
        entry, what = self._lightmap(lightmap_id)
        if component not in COMPONENT_FOLDERS:
            raise InputError(f"{what}: unknown component {component!r} (choose from {', '.join(COMPONENTS)})")
        image = _as_numpy(image)
        if image.shape != (entry.height, entry.width, 3):
            raise InputError(f"{what}: {component} image is {image.shape}, expected ({entry.height}, {entry.width}, 3)")
        try:
            text = time_text(float(hour))
        except InputError as exc:
            raise InputError(f"{what}: {exc}") from None
        written = self._hours.setdefault((entry.lightmap_id, component), {})
        key = round(float(text) % HOURS_PER_DAY, 6)
        if key in written:
            raise InputError(f"{what}: two frames at the same hour ({written[key]} and {text}) of {component}")
        written[key] = text
        folder = self._staging() / COMPONENT_FOLDERS[component]
        self._write_parts(entry, image, RAW_DTYPE,
                          lambda k: folder / raw_file_name(entry.lightmap_id, entry.width, entry.height, text, k))

    def write_mask(self, lightmap_id: int, mask: Any) -> None:
        """Write the validity mask of lightmap ``lightmap_id``: [H, W] bool (True = valid) or numbers
        (> 0 = valid, e.g. int8 coverage 127 / -1), stored as int8 127 / -1, one file per part. A lightmap
        whose mask is not written is stored as valid everywhere."""
        entry, what = self._lightmap(lightmap_id)
        mask = _as_numpy(mask)
        if mask.shape != (entry.height, entry.width):
            raise InputError(f"{what}: mask is {mask.shape}, frames are {entry.height}x{entry.width} (HxW)")
        if entry.lightmap_id in self._masked:
            raise InputError(f"{what}: mask written twice")
        self._masked.add(entry.lightmap_id)
        valid = mask if mask.dtype == bool else mask > 0
        folder = self._staging() / MASK_FOLDER
        self._write_parts(entry, np.where(valid, MASK_VALID, MASK_INVALID), MASK_DTYPE,
                          lambda k: folder / mask_file_name(entry.lightmap_id, entry.width, entry.height, k))

    def _staging(self) -> Path:
        if self.root is None:
            raise RuntimeError("VTWriter: use it as a context manager (`with VTWriter(out) as writer:`)")
        return self.root

    def _lightmap(self, lightmap_id: int) -> tuple[VTEntry, str]:
        ident = int(lightmap_id)
        if ident not in self._entries:
            raise InputError(f"{self.out}: lightmap {ident} was not begun (call begin() first)")
        return self._entries[ident], _lightmap_label(self.out, ident, self._sources[ident])

    @staticmethod
    def _write_parts(entry: VTEntry, array: np.ndarray, dtype: np.dtype, path_of) -> None:
        """Rows [k R, (k + 1) R) of ``array`` (R = H / P) to ``path_of(k)`` for each part k, as ``dtype``."""
        rows = entry.band_rows
        for k in range(entry.parts):
            with atomic_path(path_of(k)) as tmp:
                np.ascontiguousarray(array[k * rows:(k + 1) * rows], dtype=dtype).tofile(tmp)

    def _commit(self, staging: Path) -> None:
        if not self._entries:
            raise InputError(f"{self.out}: no lightmap to write")
        for ident, entry in self._entries.items():
            what = _lightmap_label(self.out, ident, self._sources[ident])
            original = self._hours.get((ident, "original"))
            if not original:
                raise InputError(f"{what}: no Original image written")
            for component in SOURCE_COMPONENTS:
                hours = self._hours.get((ident, component))
                if hours is not None and set(hours) != set(original):
                    differ = ", ".join(f"{h:g}" for h in sorted(set(hours) ^ set(original)))
                    raise InputError(f"{what}: {COMPONENT_FOLDERS[component]} and Original differ in hours {differ}")
            if ident not in self._masked:
                self.write_mask(ident, np.ones((entry.height, entry.width), bool))
        write_json_atomic(staging / "config.json", {"lightmap_count": len(self._entries), "lightmap_list": [
            {"id": e.lightmap_id, "resolution": {"width": e.width, "height": e.height}, "parts": e.parts}
            for e in self._entries.values()]})
        check_output_folder(self.out, self.overwrite, self.overwrite_flag)  # again: it may have changed meanwhile
        old = None
        try:
            if self.out.is_dir():
                if any(self.out.iterdir()):
                    old = self.out.parent / f".{self.out.name}.{os.getpid()}.{secrets.token_hex(4)}.old"
                    os.rename(self.out, old)
                else:
                    self.out.rmdir()
            os.rename(staging, self.out)
        except OSError as exc:
            if old is not None and not self.out.exists():
                os.rename(old, self.out)
            raise OutputError(f"{self.out}: cannot move the finished dataset into place ({exc.strerror})") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_virtual_texture(out_dir: str | Path, lightmaps: Iterable[VTLightmap], overwrite: bool = False) -> Path:
    """Write ``lightmaps`` as a virtual-texture dataset in ``out_dir`` (config.json, Mask/, Original/ and
    the source component folders given) through :class:`VTWriter`: all or nothing. Lightmaps may come
    from a generator (one in memory at a time). ``out_dir`` must not exist or be an empty folder, unless
    ``overwrite``. Returns ``out_dir`` as a Path."""
    with VTWriter(out_dir, overwrite) as writer:
        for lm in lightmaps:
            height, width = _check_lightmap(writer.out, lm)
            writer.begin(lm.lightmap_id, width, height, lm.parts, lm.source)
            if lm.mask is not None:
                writer.write_mask(lm.lightmap_id, lm.mask)
            for name, frames in lm.components.items():
                for t, hour in enumerate(lm.hours):
                    writer.write(lm.lightmap_id, name, hour, frames[t])
    return writer.out
