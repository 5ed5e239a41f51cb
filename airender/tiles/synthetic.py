"""Synthetic virtual-texture atlases of any size as sparse files, for benchmarks and tests.

:func:`write_sparse_atlas` writes the layout (config.json, Mask/, Original/) with every part file cut to
its full size by ``truncate`` and real data written only into a few blocks: the rest of each file is a
hole that reads as zeros (invalid texels: only mask values > 0 are valid) and takes no disk space.
A 16384 x 16384 atlas x 24 hours is 77 GB of float32 on paper and a few megabytes on disk. Never write
such an atlas densely.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from airender.data.virtual_texture import (COMPONENT_FOLDERS, MASK_FOLDER, MASK_INVALID, MASK_VALID, RAW_DTYPE,
                                           mask_file_name, raw_file_name, read_virtual_texture, time_text)
from airender.errors import InputError
from airender.fileio import make_dir, write_json_atomic


def _write_block(paths: list[Path], band_rows: int, width: int, texel_bytes: int, top: int, left: int,
                 block: np.ndarray) -> None:
    """Write ``block`` [h, w, ...] (already in the file's dtype) at texel (top, left) of an image stored as
    row bands ``paths`` (each ``band_rows`` rows of ``width`` texels of ``texel_bytes``), row by row."""
    row_bytes = block.shape[1] * texel_bytes
    for r in range(block.shape[0]):
        y = top + r
        part, row = divmod(y, band_rows)
        with open(paths[part], "r+b") as f:
            f.seek((row * width + left) * texel_bytes)
            f.write(np.ascontiguousarray(block[r]).tobytes()[:row_bytes])


def write_sparse_atlas(root: str | Path, lightmap_id: int, size: int, parts: int, hours: list[float],
                       blocks: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
                       entries: list[dict] | None = None) -> Path:
    """Add lightmap ``lightmap_id`` (``size`` x ``size`` texels in ``parts`` row bands) to the dataset at
    ``root``: sparse part files of full size, and at each (top, left) of ``blocks`` the data (frames
    [T, h, w, 3] float32 linear radiance, one per hour of ``hours``; mask [h, w] bool) written in place.
    ``entries``: the config.json entries of lightmaps written before (this one is appended; the list is
    updated). Returns ``root``.
    """
    root = Path(root)
    if size % parts:
        raise InputError(f"{root}: size {size} does not split into {parts} equal parts")
    band_rows = size // parts
    texts = [time_text(h) for h in hours]
    mask_paths = [make_dir(root / MASK_FOLDER) / mask_file_name(lightmap_id, size, size, k) for k in range(parts)]
    raw_paths = {text: [make_dir(root / COMPONENT_FOLDERS["original"]) /
                        raw_file_name(lightmap_id, size, size, text, k) for k in range(parts)] for text in texts}
    for path in mask_paths:
        with open(path, "wb") as f:
            f.truncate(band_rows * size)
    for paths in raw_paths.values():
        for path in paths:
            with open(path, "wb") as f:
                f.truncate(band_rows * size * 3 * RAW_DTYPE.itemsize)
    for (top, left), (frames, mask) in blocks.items():
        frames = np.asarray(frames, dtype=RAW_DTYPE)
        if frames.shape[0] != len(hours) or top + frames.shape[1] > size or left + frames.shape[2] > size:
            raise InputError(f"{root}: block at ({top}, {left}) of shape {frames.shape} does not fit "
                             f"{len(hours)} hours of a {size}x{size} atlas")
        coverage = np.where(mask, MASK_VALID, MASK_INVALID).astype(np.int8)
        _write_block(mask_paths, band_rows, size, 1, top, left, coverage)
        for t, text in enumerate(texts):
            _write_block(raw_paths[text], band_rows, size, 3 * RAW_DTYPE.itemsize, top, left, frames[t])
    entries = entries if entries is not None else []
    entries.append({"id": int(lightmap_id), "resolution": {"width": size, "height": size}, "parts": int(parts)})
    write_json_atomic(root / "config.json", {"lightmap_count": len(entries), "lightmap_list": entries})
    return root


def sample_blocks(sample_root: str | Path, positions: list[tuple[int, int]],
                  hours: list[float]) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """The bundled sample atlas (materialised at ``sample_root`` by
    :func:`airender.bake.sample.materialise_sample_atlas`) as the data of every block at ``positions``:
    {(top, left): (frames [T, h, w, 3] at ``hours``, mask [h, w])}."""
    sequence = read_virtual_texture(sample_root)
    index = [sequence.index_of_time(h) for h in hours]
    frames = sequence.frames.numpy()[index]
    mask = np.ones(frames.shape[1:3], bool) if sequence.mask is None else sequence.mask.numpy()
    return {pos: (frames, mask) for pos in positions}


def disk_bytes(root: str | Path) -> int:
    """Bytes the files under ``root`` take on disk (sparse holes excluded)."""
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            total += os.stat(os.path.join(folder, name)).st_blocks * 512
    return total
