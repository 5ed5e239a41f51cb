"""Frames of an atlas read by windows through memory maps, never loaded whole.

A :class:`FrameSource` describes one atlas (size, hours, LDR/HDR) and reads any window of it as a
:class:`TODSequence`, copying only the texels of that window out of memory-mapped files:

* :class:`VTSource`: one lightmap of a virtual-texture dataset; its raw ``.bin_<part>`` files are the
  memory maps (see :mod:`airender.data.virtual_texture`).
* :class:`CacheSource`: any other layout (an image folder, the first contest layout), converted once by
  :func:`build_frame_cache` into ``frames.f32`` (float32 [T, H, W, 3], row-major, little-endian),
  ``mask.u8`` (uint8 [H, W], 1 = valid; absent when every texel is valid) and ``frames.json`` (size,
  hours, names, dynamic range, and a fingerprint of the source files so that a changed source is
  converted again). Image folders are converted one frame at a time.

Sources are rebuilt in worker processes from :meth:`FrameSource.spec` (a small JSON-able dict) by
:func:`open_source`. Memory: a window of h x w texels costs T x h x w x 3 x 4 bytes; reading the mask
for planning costs one band of rows at a time.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from airender.data.layout import check_folder
from airender.data.readers import (_read_mask_image, _sources_problem, is_contest_layout, list_image_folder,
                                   read_contest_layout, read_image)
from airender.data.sequence import SOURCES, TODSequence
from airender.data.virtual_texture import (is_virtual_texture, list_lightmaps, open_component, open_mask,
                                           read_virtual_texture, select_lightmap)
from airender.errors import InputError
from airender.fileio import make_dir, write_json_atomic

Window = tuple[int, int, int, int]  # (top, left, height, width) in texels
CACHE_FRAMES = "frames.f32"
CACHE_MASK = "mask.u8"
CACHE_META = "frames.json"
CACHE_VERSION = 1
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


@dataclass(frozen=True)
class AtlasInfo:
    """What a source holds. atlas_id: the lightmap id as the readers take it ("" for an image folder or
    the first contest lightmap); height, width: texels; times: [T] hours ascending; names: [T] file names
    (or keys); is_hdr: linear radiance (True) or sRGB values (False); source: for messages."""

    atlas_id: str
    height: int
    width: int
    times: tuple[float, ...]
    names: tuple[str, ...]
    is_hdr: bool
    source: str

    @property
    def label(self) -> str:
        """The atlas id made safe for file names ("0" for an unnamed atlas)."""
        return _LABEL_UNSAFE.sub("-", self.atlas_id).strip("-") or "0"

    def to_dict(self) -> dict:
        return {"atlas_id": self.atlas_id, "height": self.height, "width": self.width, "times": list(self.times),
                "names": list(self.names), "is_hdr": self.is_hdr, "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "AtlasInfo":
        return cls(str(d["atlas_id"]), int(d["height"]), int(d["width"]), tuple(float(t) for t in d["times"]),
                   tuple(str(n) for n in d["names"]), bool(d["is_hdr"]), str(d["source"]))


def check_window(info: AtlasInfo, window: Window) -> Window:
    """``window`` as ints, or InputError when it is empty or not inside the atlas."""
    top, left, height, width = (int(v) for v in window)
    if top < 0 or left < 0 or height <= 0 or width <= 0 or top + height > info.height or left + width > info.width:
        raise InputError(f"{info.source}: window (top {top}, left {left}, {width}x{height}) is not inside the "
                         f"{info.width}x{info.height} atlas")
    return top, left, height, width


class FrameSource:
    """An atlas whose windows can be read without loading the rest (see the module docstring)."""

    info: AtlasInfo

    def spec(self) -> dict:
        """A JSON-able description that :func:`open_source` turns back into this source."""
        raise NotImplementedError

    def read_mask(self, top: int, bottom: int) -> np.ndarray:
        """Validity of rows [top, bottom), every column: bool [bottom - top, W] (True = valid)."""
        raise NotImplementedError

    def read_window(self, window: Window, components: bool = False) -> TODSequence:
        """Every hour of ``window``: frames [T, h, w, 3] float32 (display space), mask [h, w] or None; with
        ``components``, also the lighting split by source (TODSequence.components [T, h, w, S, 3])."""
        raise NotImplementedError


class VTSource(FrameSource):
    """One lightmap (one lighting component) of a virtual-texture dataset, memory-mapped."""

    def __init__(self, root: str | Path, lightmap_id: str, component: str = "original"):
        self.root = Path(root)
        self.component = component
        self.entry = select_lightmap(self.root, str(lightmap_id))
        opened = open_component(self.root, self.entry, component)
        self.mask = open_mask(self.root, self.entry)
        self.info = AtlasInfo(str(self.entry.lightmap_id), self.entry.height, self.entry.width,
                              tuple(opened.hours), tuple(opened.names()), True,
                              f"{self.root} (lightmap {self.entry.lightmap_id}, {opened.folder.name})")

    def spec(self) -> dict:
        return {"kind": "vt", "root": str(self.root), "lightmap_id": self.info.atlas_id, "component": self.component}

    def read_mask(self, top: int, bottom: int) -> np.ndarray:
        return self.mask.read(top, bottom) > 0

    def read_window(self, window: Window, components: bool = False) -> TODSequence:
        top, left, height, width = check_window(self.info, window)
        window = (top, left, height, width)
        sequence = read_virtual_texture(self.root, self.info.atlas_id, self.component, window)
        sequence = replace(sequence, source=f"{sequence.source} window y {top}, x {left}, {width}x{height}")
        if components:
            problem = _sources_problem(self.root)
            if problem or self.component != "original":
                raise InputError(problem or f"--component {self.component}: --components trains on all light "
                                            f"split by source; leave --component at original")
            parts = [read_virtual_texture(self.root, self.info.atlas_id, name, window).frames for name in SOURCES]
            sequence = replace(sequence, components=torch.stack(parts, dim=3))
        return sequence


class CacheSource(FrameSource):
    """The frame cache written by :func:`build_frame_cache`, memory-mapped."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / CACHE_META
        try:
            meta = json.loads(meta_path.read_text())
            self.info = AtlasInfo.from_dict(meta["info"])
            self.has_mask = bool(meta["has_mask"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{meta_path}: not a frame cache ({type(exc).__name__}: {exc})") from None
        info = self.info
        expected = len(info.times) * info.height * info.width * 3 * 4
        path = self.folder / CACHE_FRAMES
        if not path.is_file() or path.stat().st_size != expected:
            raise InputError(f"{path}: missing or not {expected} bytes (a frame cache of {len(info.times)} frames "
                             f"of {info.width}x{info.height})")

    def spec(self) -> dict:
        return {"kind": "cache", "folder": str(self.folder)}

    def _frames(self) -> np.memmap:
        info = self.info
        return np.memmap(self.folder / CACHE_FRAMES, dtype="<f4", mode="r",
                         shape=(len(info.times), info.height, info.width, 3))

    def read_mask(self, top: int, bottom: int) -> np.ndarray:
        if not self.has_mask:
            return np.ones((bottom - top, self.info.width), dtype=bool)
        mask = np.memmap(self.folder / CACHE_MASK, dtype=np.uint8, mode="r", shape=(self.info.height, self.info.width))
        out = mask[top:bottom] > 0
        del mask
        return out

    def read_window(self, window: Window, components: bool = False) -> TODSequence:
        if components:
            raise InputError(f"{self.info.source}: --components needs the lighting split by source (the "
                             f"virtual-texture layout's DirectionalOnly/, LocalOnly/, SkyLightOnly/)")
        top, left, height, width = check_window(self.info, window)
        frames_map = self._frames()
        frames = torch.from_numpy(np.ascontiguousarray(frames_map[:, top:top + height, left:left + width]))
        del frames_map
        mask = None
        if self.has_mask:
            mask_map = np.memmap(self.folder / CACHE_MASK, dtype=np.uint8, mode="r",
                                 shape=(self.info.height, self.info.width))
            valid = mask_map[top:top + height, left:left + width] > 0
            del mask_map
            mask = None if valid.all() else torch.from_numpy(valid)
        info = self.info
        return TODSequence(frames=frames, times=torch.tensor(info.times, dtype=torch.float64), mask=mask,
                           is_hdr=info.is_hdr, names=list(info.names),
                           source=f"{info.source} window y {top}, x {left}, {width}x{height}")


def open_source(spec: dict) -> FrameSource:
    """The source described by ``spec`` (from :meth:`FrameSource.spec`)."""
    if spec.get("kind") == "vt":
        return VTSource(spec["root"], spec["lightmap_id"], spec.get("component", "original"))
    if spec.get("kind") == "cache":
        return CacheSource(spec["folder"])
    raise InputError(f"unknown frame source {spec!r}")


# --- the cache of other layouts -----------------------------------------------------------------------------
def source_fingerprint(data_dir: str | Path) -> list:
    """[name, size, mtime_ns] of every file in ``data_dir`` (and its ``Data/``), sorted: a changed, added
    or removed file changes it."""
    root = Path(data_dir)
    rows = []
    for folder in (root, root / "Data"):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.is_file():
                    stat = path.stat()
                    rows.append([str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns])
    return rows


def build_frame_cache(data_dir: str | Path, lightmap_id: str, cache_dir: str | Path) -> CacheSource:
    """Convert an image folder or a contest-layout lightmap into the memory-mappable cache in ``cache_dir``
    (reused as it is when it was made from the same files). Image folders are read and written one frame
    at a time; a contest-layout lightmap (small atlases by design) is read whole once.

    The cache is written into a temporary folder beside ``cache_dir`` and renamed into place when
    complete; on any error nothing is left behind.
    """
    cache_dir = Path(cache_dir)
    fingerprint = source_fingerprint(data_dir)
    meta_path = cache_dir / CACHE_META
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("version") == CACHE_VERSION and meta.get("fingerprint") == fingerprint \
                    and meta.get("lightmap_id") == lightmap_id:
                return CacheSource(cache_dir)
        except (OSError, ValueError, InputError):
            pass
    staging = make_dir(cache_dir.parent) / f".{cache_dir.name}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    make_dir(staging)
    try:
        if is_contest_layout(data_dir):
            sequence = read_contest_layout(data_dir, lightmap_id)
            info = AtlasInfo(lightmap_id, sequence.height, sequence.width, tuple(sequence.time_list()),
                             tuple(sequence.names), True, sequence.source)
            frames = np.memmap(staging / CACHE_FRAMES, dtype="<f4", mode="w+", shape=tuple(sequence.frames.shape))
            frames[:] = sequence.frames.numpy()
            frames.flush()
            del frames
            mask = None if sequence.mask is None else sequence.mask.numpy()
        else:
            if lightmap_id:
                raise InputError(f"{data_dir}: --lightmap_id applies to the contest layout only (no config.json here)")
            hours, by_hour, mask_files = list_image_folder(data_dir)
            if len(mask_files) > 1:
                raise InputError(f"{data_dir}: more than one mask file ({', '.join(p.name for p in mask_files)})")
            frames = None
            first: tuple[Path, tuple[int, int]] | None = None
            is_hdr = False
            for t, hour in enumerate(hours):
                path = by_hour[hour]
                array, is_hdr = read_image(path)
                if first is None:
                    first = (path, array.shape[:2])
                    frames = np.memmap(staging / CACHE_FRAMES, dtype="<f4", mode="w+",
                                       shape=(len(hours), *array.shape[:2], 3))
                elif array.shape[:2] != first[1]:
                    (h0, w0), (h, w) = first[1], array.shape[:2]
                    raise InputError(f"{path}: frame is {w}x{h} but {first[0].name} is {w0}x{h0}; all frames must "
                                     f"match")
                frames[t] = array
            frames.flush()
            height, width = first[1]
            del frames
            mask = _read_mask_image(mask_files[0], height, width).numpy() if mask_files else None
            info = AtlasInfo("", height, width, tuple(hours), tuple(by_hour[h].name for h in hours), is_hdr,
                             str(data_dir))
        if mask is not None:
            mask.astype(np.uint8).tofile(staging / CACHE_MASK)
        write_json_atomic(staging / CACHE_META, {"version": CACHE_VERSION, "info": info.to_dict(),
                                                 "has_mask": mask is not None, "lightmap_id": lightmap_id,
                                                 "fingerprint": fingerprint})
        if cache_dir.exists():
            shutil.rmtree(cache_dir)
        os.replace(staging, cache_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return CacheSource(cache_dir)


def open_sources(data_dir: str, lightmap_id: str, component: str, cache_dir: Path) -> list[FrameSource]:
    """The atlases to fit: every lightmap of a virtual-texture dataset for ``lightmap_id`` "all", else the
    one named (default: the first); other layouts go through the frame cache in ``cache_dir``."""
    if not str(data_dir):
        raise InputError("no data folder given (--data_dir)")
    check_folder(Path(data_dir))
    if is_virtual_texture(data_dir):
        if lightmap_id == "all":
            return [VTSource(data_dir, str(e.lightmap_id), component) for e in list_lightmaps(data_dir)]
        return [VTSource(data_dir, lightmap_id, component)]
    if lightmap_id == "all":
        raise InputError(f"--lightmap_id all: {data_dir} is not a virtual-texture dataset (it holds one atlas)")
    if component != "original":
        raise InputError(f"{data_dir}: --component {component} needs the virtual-texture layout (Original/, "
                         f"DirectionalOnly/, ...); this folder holds all light in one image per hour")
    return [build_frame_cache(data_dir, lightmap_id, cache_dir)]


