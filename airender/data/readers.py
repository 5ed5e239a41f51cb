"""Readers: an image folder (PNG/JPEG 8/16-bit, EXR) or the contest lightmap layout -> TODSequence.

Every problem with the input raises :class:`InputError` with one line naming the file and the problem.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from airender.hours import hour_from_contest_key, hour_from_name
from airender.data.layout import check_folder, select_entry
from airender.data.sequence import SOURCES, TODSequence
from airender.data.virtual_texture import (COMPONENT_ATOL, COMPONENT_FOLDERS, COMPONENT_RTOL, is_virtual_texture,
                                          read_virtual_texture)
from airender.errors import InputError

LDR_SUFFIXES = (".png", ".jpg", ".jpeg")
HDR_SUFFIXES = (".exr",)
IMAGE_SUFFIXES = LDR_SUFFIXES + HDR_SUFFIXES
MASK_STEM = "mask"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_bit_depth(path: Path) -> int:
    """Bit depth from the PNG header (IHDR is always the first chunk); 0 if not a PNG."""
    with open(path, "rb") as f:
        head = f.read(25)
    if len(head) < 25 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return 0
    return head[24]


def _to_rgb(array: np.ndarray) -> np.ndarray:
    """[H, W], [H, W, 1|2|3|4] -> [H, W, 3] (grey replicated, alpha dropped)."""
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[2]
    if channels in (1, 2):
        return np.repeat(array[..., :1], 3, axis=2)
    return array[..., :3]


def _read_png16(path: Path) -> np.ndarray:
    import png  # pypng: Pillow silently truncates 16-bit RGB PNGs to 8 bits

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    planes = info["planes"]
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, planes)
    return _to_rgb(array).astype(np.float32) / 65535.0


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L"):
            return _to_rgb(np.asarray(image, dtype=np.uint16)).astype(np.float32) / 65535.0
        if image.mode in ("I", "F"):
            raise ValueError(f"unsupported 32-bit image mode {image.mode}")
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        channels = exr.parts[0].channels
        if "RGB" in channels or "RGBA" in channels:
            array = channels["RGB" if "RGB" in channels else "RGBA"].pixels
        elif all(c in channels for c in "RGB"):
            array = np.stack([channels[c].pixels for c in "RGB"], axis=-1)
        elif "Y" in channels:
            array = channels["Y"].pixels
        else:
            raise ValueError(f"no RGB or Y channels (has {sorted(channels)})")
        return _to_rgb(np.asarray(array)).astype(np.float32)


def read_image(path: str | Path) -> tuple[np.ndarray, bool]:
    """Read one image as float32 [H, W, 3].

    Returns (array, is_hdr): LDR images (PNG/JPEG, 8 or 16 bit, grey/RGB/RGBA/palette) scaled to [0, 1]
    sRGB values; EXR as linear float radiance. Raises InputError naming the file on any failure.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in HDR_SUFFIXES:
            array, is_hdr = _read_exr(path), True
        elif suffix == ".png" and _png_bit_depth(path) == 16:
            array, is_hdr = _read_png16(path), False
        else:
            array, is_hdr = _read_pillow(path), False
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as exc:  # decoder errors come in many types; all mean the same to a user
        raise InputError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
    if is_hdr and not np.isfinite(array).all():
        raise InputError(f"{path}: HDR data contain NaN or Inf values")
    return np.ascontiguousarray(array), is_hdr


def _read_mask_image(path: Path, height: int, width: int) -> torch.Tensor:
    array, _ = read_image(path)
    if array.shape[:2] != (height, width):
        raise InputError(f"{path}: mask is {array.shape[1]}x{array.shape[0]} but the frames are {width}x{height}")
    return torch.from_numpy(array.max(axis=2) > 0)


def list_image_folder(folder: str | Path) -> tuple[list[float], dict[float, Path], list[Path]]:
    """The frames of an image folder without reading them: (hours ascending, {hour: file}, mask files).

    Checks that the folder holds frames, that each name gives an hour and no two the same, and that
    LDR and HDR frames are not mixed. Hours are rounded to 1e-6 (the keys of the dict).
    """
    folder = Path(folder)
    check_folder(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    mask_files = [p for p in files if p.stem.lower() == MASK_STEM]
    frame_files = [p for p in files if p.stem.lower() != MASK_STEM]
    if not frame_files:
        raise InputError(f"{folder}: no PNG, JPEG or EXR frames in the folder")
    by_hour: dict[float, Path] = {}
    for path in frame_files:
        try:
            hour = hour_from_name(path.name)
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None
        key = round(hour, 6)
        if key in by_hour:
            raise InputError(f"{path}: same hour {hour:g} as {by_hour[key].name}")
        by_hour[key] = path
    kinds = {p.suffix.lower() in HDR_SUFFIXES for p in frame_files}
    if len(kinds) > 1:
        raise InputError(f"{folder}: mixes LDR (PNG/JPEG) and HDR (EXR) frames; use one kind per folder")
    return sorted(by_hour), by_hour, mask_files


def read_image_folder(folder: str | Path) -> TODSequence:
    """Read every frame of an image folder; the hour of each comes from its file name.

    A file named ``mask.png`` (or any image whose stem is ``mask``) is the validity mask: non-zero = valid.
    """
    folder = Path(folder)
    hours, by_hour, mask_files = list_image_folder(folder)
    frames, names = [], []
    first: tuple[Path, tuple[int, int]] | None = None
    is_hdr = False
    for hour in hours:
        path = by_hour[hour]
        array, is_hdr = read_image(path)
        if first is None:
            first = (path, array.shape[:2])
        elif array.shape[:2] != first[1]:
            (h0, w0), (h, w) = first[1], array.shape[:2]
            raise InputError(f"{path}: frame is {w}x{h} but {first[0].name} is {w0}x{h0}; all frames must match")
        frames.append(torch.from_numpy(array))
        names.append(path.name)
    height, width = first[1]
    mask = None
    if len(mask_files) > 1:
        raise InputError(f"{folder}: more than one mask file ({', '.join(p.name for p in mask_files)})")
    if mask_files:
        mask = _read_mask_image(mask_files[0], height, width)
    return TODSequence(frames=torch.stack(frames), times=torch.tensor(hours, dtype=torch.float64),
                       mask=mask, is_hdr=is_hdr, source=str(folder), names=names)


def _raw_file(root: Path, name: str, config_path: Path) -> Path:
    for candidate in (root / "Data" / name, root / name):
        if candidate.is_file():
            return candidate
    raise InputError(f"{root / 'Data' / name}: file named in {config_path.name} does not exist")


def _read_raw(path: Path, dtype: np.dtype, count: int, what: str, width: int, height: int) -> np.ndarray:
    data = np.fromfile(path, dtype=dtype)
    if data.size != count:
        raise InputError(f"{path}: has {path.stat().st_size} bytes, expected {count * np.dtype(dtype).itemsize} "
                         f"for {width}x{height} {what}")
    return data


def read_contest_layout(root: str | Path, lightmap_id: str = "") -> TODSequence:
    """Read one lightmap of the contest layout: config.json + float32 RGB raw files + int8 masks.

    Lightmap files may sit in ``Data/`` or beside config.json. The validity mask is the texels valid
    (value > 0, normally 127) in every time's mask.
    """
    root = Path(root)
    check_folder(root)
    config_path = root / "config.json"
    try:
        config = json.loads(config_path.read_text())
        lightmaps = config["lightmap_list"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{config_path}: not a contest config.json ({type(exc).__name__}: {exc})") from None
    entry = select_entry(config_path, lightmaps, lightmap_id)
    try:
        width, height = int(entry["resolution"]["width"]), int(entry["resolution"]["height"])
        files, mask_files = dict(entry["lightmaps"]), dict(entry.get("masks", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{config_path}: lightmap entry lacks {exc}") from None
    if not files:
        raise InputError(f"{config_path}: lightmap {entry.get('id')} lists no lightmaps")

    by_hour: dict[float, str] = {}
    for key in files:
        try:
            hour = hour_from_contest_key(key)
        except ValueError as exc:
            raise InputError(f"{config_path}: {exc}") from None
        if round(hour, 6) in by_hour:
            raise InputError(f"{config_path}: time keys {by_hour[round(hour, 6)]!r} and {key!r} are the same hour")
        by_hour[round(hour, 6)] = key

    hours = sorted(by_hour)
    frames, mask = [], torch.ones(height, width, dtype=torch.bool)
    for hour in hours:
        key = by_hour[hour]
        path = _raw_file(root, files[key], config_path)
        data = _read_raw(path, np.dtype("<f4"), height * width * 3, "float32 RGB", width, height)
        if not np.isfinite(data).all():
            raise InputError(f"{path}: HDR data contain NaN or Inf values")
        frames.append(torch.from_numpy(data.reshape(height, width, 3).copy()))
        if key in mask_files:
            mask_path = _raw_file(root, mask_files[key], config_path)
            texels = _read_raw(mask_path, np.dtype("i1"), height * width, "int8 mask", width, height)
            mask &= torch.from_numpy(texels.reshape(height, width) > 0)
    level = entry.get("level", "")
    return TODSequence(frames=torch.stack(frames), times=torch.tensor(hours, dtype=torch.float64),
                       mask=None if bool(mask.all()) else mask, is_hdr=True,
                       source=f"{root} (lightmap {level}:{entry.get('id')})",
                       names=[by_hour[h] for h in hours])


def is_contest_layout(path: str | Path) -> bool:
    return (Path(path) / "config.json").is_file()


def _sources_problem(data_dir: str | Path) -> str | None:
    """Why ``data_dir`` holds no lighting split by source (one line), or None when it does: the
    virtual-texture layout with every source folder (DirectionalOnly/, LocalOnly/, SkyLightOnly/)."""
    root = Path(data_dir)
    folders = [root / COMPONENT_FOLDERS[s] for s in SOURCES]
    if not is_virtual_texture(root) or not any(f.is_dir() for f in folders):
        return (f"{root}: --components needs the lighting split by source (the virtual-texture layout's "
                f"{', '.join(f.name + '/' for f in folders)}); this data has no source folders")
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        return f"{missing[0]}: no such folder: --components needs every source folder"
    return None


def has_sources(data_dir: str | Path) -> bool:
    """True for a virtual-texture dataset that holds every source folder (see :func:`attach_components`)."""
    return _sources_problem(data_dir) is None


def attach_components(sequence: TODSequence, data_dir: str | Path, lightmap_id: str = "") -> TODSequence:
    """``sequence`` (all light of one lightmap of the virtual-texture dataset ``data_dir``) with its lighting
    split by source as ``components`` [T, H, W, S, 3] (float32 linear radiance, sources in the order of
    ``SOURCES``: DirectionalOnly/, LocalOnly/, SkyLightOnly/).

    Raises InputError (one line) when ``data_dir`` has no source folders, when a source's hours or size
    differ from ``sequence``, or when the sources do not add up to the frames at a valid texel within the
    layout's tolerance (|D + L + S - O| <= atol + rtol (|D| + |L| + |S|), computed frame by frame).
    """
    problem = _sources_problem(data_dir)
    if problem:
        raise InputError(problem)
    parts = [read_virtual_texture(data_dir, lightmap_id, name) for name in SOURCES]
    for part in parts:
        if part.frames.shape != sequence.frames.shape or \
                not torch.allclose(part.times.double(), sequence.times.double().cpu()):
            raise InputError(f"{part.source}: {part.num_frames} frames of {part.width}x{part.height} at hours "
                             f"{', '.join(f'{t:g}' for t in part.time_list())}, unlike {sequence.source} "
                             f"({sequence.num_frames} of {sequence.width}x{sequence.height} at "
                             f"{', '.join(f'{t:g}' for t in sequence.time_list())})")
    components = torch.stack([part.frames for part in parts], dim=3)
    valid = torch.ones(sequence.height, sequence.width, dtype=torch.bool) if sequence.mask is None \
        else sequence.mask.cpu()
    for k in range(sequence.num_frames):
        split = components[k].double()
        excess = (split.sum(dim=2) - sequence.frames[k].cpu().double()).abs() - \
            (COMPONENT_ATOL + COMPONENT_RTOL * split.abs().sum(dim=2))
        bad = (excess.amax(dim=2) > 0) & valid
        if bool(bad.any()):
            y, x = (int(v) for v in torch.nonzero(bad)[0])
            raise InputError(f"{parts[0].source}: the sources do not add up to {sequence.source} at hour "
                             f"{sequence.time_list()[k]:g}, y {y}, x {x} (tolerance rtol {COMPONENT_RTOL:g}, "
                             f"atol {COMPONENT_ATOL:g})")
    return replace(sequence, components=components.to(sequence.device))


def load_sequence(data_dir: str | Path, lightmap_id: str = "", component: str = "original",
                  components: bool = False) -> TODSequence:
    """Read any layout: the virtual-texture layout (an ``Original/`` folder, or a config.json whose lightmaps
    give ``parts``), the first contest layout (any other folder with config.json), or an image folder.

    ``component`` (virtual-texture layout only) selects the lighting: original, directional, local or sky.
    ``components``: also read the lighting split by source into ``TODSequence.components`` (see
    :func:`attach_components`; virtual-texture layout with every source folder, ``component`` original).
    """
    if not str(data_dir):
        raise InputError("no data folder given (--data_dir)")
    if components:
        if component != "original":
            raise InputError(f"--component {component}: --components trains on all light split by source; "
                             f"leave --component at original")
        problem = _sources_problem(data_dir)
        if problem:
            raise InputError(problem)
        return attach_components(load_sequence(data_dir, lightmap_id), data_dir, lightmap_id)
    if is_virtual_texture(data_dir):
        return read_virtual_texture(data_dir, lightmap_id, component)
    if component != "original":
        raise InputError(f"{data_dir}: --component {component} needs the virtual-texture layout (Original/, "
                         f"DirectionalOnly/, ...); this folder holds all light in one image per hour")
    if is_contest_layout(data_dir):
        return read_contest_layout(data_dir, lightmap_id)
    if lightmap_id:
        raise InputError(f"{data_dir}: --lightmap_id applies to the contest layout only (no config.json here)")
    return read_image_folder(data_dir)
