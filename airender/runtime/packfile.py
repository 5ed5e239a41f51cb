"""The ``.airpack`` container: a JSON header followed by flat little-endian arrays (numpy only).

Layout (every integer little-endian)::

    bytes 0..7     magic b"AIRPACK\\0"
    bytes 8..11    uint32 n: length of the JSON header in bytes
    bytes 12..     the header, UTF-8 JSON (n bytes), then zero padding to a multiple of 4
    data section   the arrays, each starting at a multiple of 4 bytes from the section start

The header is an object with at least::

    format          "airender-pack"
    format_version  1
    quant           "fp32" | "fp16" | "int8" (how the weights were stored)
    field           the FieldConfig the model was trained with (for reference)
    data            the DataDescription (size, times, LDR/HDR, training-space transform, ...)
    model           what the decoder assembles (see airender.runtime.model)
    data_bytes      length of the data section; data_crc32: its CRC-32
    arrays          [{name, dtype, shape, offset, nbytes[, scale][, unorm]}], offsets from the data section

Stored values decode to float32 as follows: ``float32``/``float16`` as they are; ``int8`` (or ``uint8``)
with ``scale`` = {"offset", "count", and either "axis": 0 (one float32 scale per index along the first
axis: per output channel of a weight) or "rows": [r_0, r_1, ...] (one scale per block of rows starting
at r_k: per level of a hash-grid table)}: value = q * scale; ``uint8`` with ``"unorm": 255``: value =
q / 255 (exact for an 8-bit source). Scales are float32 arrays in the data section.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"AIRPACK\0"
FORMAT = "airender-pack"
FORMAT_VERSION = 1
ALIGN = 4
DTYPES = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "uint8": np.uint8}


class PackError(ValueError):
    """A file that is not a readable airender pack; the message names the file and the problem."""


@dataclass
class StoredArray:
    """One array as it goes into a pack: ``data`` (float32, float16, int8 or uint8, any shape), and how it
    decodes: ``scale`` [K] float32 with ``scale_axis`` (K == data.shape[0]) or ``scale_rows`` (K row-block
    starts), or ``unorm`` (uint8 / unorm)."""

    data: np.ndarray
    scale: np.ndarray | None = None
    scale_axis: int | None = None
    scale_rows: list[int] | None = None
    unorm: int | None = None


def _pad(n: int) -> int:
    return (-n) % ALIGN


def encode_pack(header: dict, arrays: dict[str, StoredArray]) -> bytes:
    """The bytes of a pack holding ``arrays`` (insertion order) under ``header`` (a JSON-able dict;
    format, version, data_bytes, data_crc32 and the array table are filled in here)."""
    table, chunks, offset = [], [], 0

    def put(raw: bytes) -> int:
        nonlocal offset
        start = offset
        chunks.append(raw)
        chunks.append(b"\0" * _pad(len(raw)))
        offset += len(raw) + _pad(len(raw))
        return start

    for name, stored in arrays.items():
        data = np.ascontiguousarray(stored.data)
        dtype = data.dtype.name
        if dtype not in DTYPES:
            raise ValueError(f"array {name}: dtype {dtype} cannot be stored")
        entry: dict = {"name": name, "dtype": dtype, "shape": list(data.shape)}
        entry["offset"] = put(data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes())
        entry["nbytes"] = int(data.nbytes)
        if stored.scale is not None:
            scale = np.ascontiguousarray(stored.scale, dtype="<f4").reshape(-1)
            spec: dict = {"offset": put(scale.tobytes()), "count": int(scale.size)}
            if stored.scale_rows is not None:
                spec["rows"] = [int(r) for r in stored.scale_rows]
            else:
                spec["axis"] = int(stored.scale_axis or 0)
            entry["scale"] = spec
        if stored.unorm is not None:
            entry["unorm"] = int(stored.unorm)
        table.append(entry)
    data_section = b"".join(chunks)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, **header,
              "data_bytes": len(data_section), "data_crc32": zlib.crc32(data_section), "arrays": table}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return MAGIC + struct.pack("<I", len(text)) + text + b"\0" * _pad(len(MAGIC) + 4 + len(text)) + data_section


@dataclass
class PackContents:
    """A decoded pack: the header dict and every array as float32 (``arrays``), plus its size in bytes."""

    header: dict
    arrays: dict[str, np.ndarray]
    nbytes: int


def _decode_entry(entry: dict, data: memoryview, path: str) -> np.ndarray:
    dtype = DTYPES.get(entry.get("dtype"))
    if dtype is None:
        raise PackError(f"{path}: array {entry.get('name')!r} has unknown dtype {entry.get('dtype')!r}")
    shape = tuple(int(s) for s in entry["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    itemsize = np.dtype(dtype).itemsize
    offset = int(entry["offset"])
    if offset < 0 or offset + count * itemsize > len(data):
        raise PackError(f"{path}: array {entry['name']!r} lies outside the data section")
    raw = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=offset).reshape(shape)
    if "unorm" in entry:
        return raw.astype(np.float32) / np.float32(entry["unorm"])
    if "scale" not in entry:
        return raw.astype(np.float32)
    spec = entry["scale"]
    scale = np.frombuffer(data, dtype="<f4", count=int(spec["count"]), offset=int(spec["offset"])).astype(np.float32)
    values = raw.astype(np.float32)
    if "rows" in spec:
        starts = [int(r) for r in spec["rows"]]
        per_row = np.repeat(scale, np.diff(starts + [shape[0]]))
        return values * per_row.reshape((-1,) + (1,) * (len(shape) - 1))
    axis = int(spec.get("axis", 0))
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return values * scale.reshape(view)


def read_pack(path: str | Path) -> PackContents:
    """Read and check a pack: the magic, the header, the CRC of the data; arrays decoded to float32."""
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise PackError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return parse_pack(blob, str(path))


def parse_pack(blob: bytes, name: str = "pack") -> PackContents:
    """:func:`read_pack` of the bytes ``blob`` (``name`` is used in messages)."""
    path = name
    if len(blob) < len(MAGIC) + 4 or blob[:len(MAGIC)] != MAGIC:
        raise PackError(f"{path}: not an airender pack (no {MAGIC[:7].decode()} marker)")
    (length,) = struct.unpack_from("<I", blob, len(MAGIC))
    start = len(MAGIC) + 4
    if start + length > len(blob):
        raise PackError(f"{path}: truncated header")
    try:
        header = json.loads(blob[start:start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackError(f"{path}: unreadable header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise PackError(f"{path}: not an airender pack (format {header.get('format') if isinstance(header, dict) else None!r})")
    if header.get("format_version") != FORMAT_VERSION:
        raise PackError(f"{path}: pack format version {header.get('format_version')} is not supported "
                        f"(this reader reads version {FORMAT_VERSION})")
    data_start = start + length + _pad(start + length)
    data = memoryview(blob)[data_start:]
    if len(data) != header.get("data_bytes") or zlib.crc32(data) != header.get("data_crc32"):
        raise PackError(f"{path}: the data section is truncated or corrupt (size or CRC-32 mismatch)")
    try:
        arrays = {entry["name"]: _decode_entry(entry, data, str(path)) for entry in header["arrays"]}
    except PackError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PackError(f"{path}: unreadable array table ({type(exc).__name__}: {exc})") from None
    return PackContents(header=header, arrays=arrays, nbytes=len(blob))


INT8_MAX = 127


def quantise_int8(values: np.ndarray, scale_rows: list[int] | None = None) -> StoredArray:
    """Symmetric int8 of ``values`` [R, ...] with one scale per block of rows starting at ``scale_rows``
    (per hash-grid level) or, without it, one per index of the first axis (per output channel).
    q = round(v / s) in [-127, 127] with s = max |v| / 127 over the block (s = 0 for an all-zero block)."""
    values = np.asarray(values, dtype=np.float32)
    if scale_rows is not None:
        bounds = list(scale_rows) + [values.shape[0]]
        peaks = np.array([np.abs(values[a:b]).max(initial=0.0) for a, b in zip(bounds[:-1], bounds[1:])], np.float32)
        per_row = np.repeat(peaks, np.diff(bounds))
    else:
        peaks = np.abs(values.reshape(values.shape[0], -1)).max(axis=1, initial=0.0).astype(np.float32)
        per_row = peaks
    scale = (peaks / np.float32(INT8_MAX)).astype(np.float32)
    row_scale = (per_row / np.float32(INT8_MAX)).astype(np.float32).reshape((-1,) + (1,) * (values.ndim - 1))
    safe = np.where(row_scale > 0, row_scale, np.float32(1.0))
    q = np.clip(np.round(values / safe), -INT8_MAX, INT8_MAX).astype(np.int8)
    if scale_rows is not None:
        return StoredArray(q, scale=scale, scale_rows=list(scale_rows))
    return StoredArray(q, scale=scale, scale_axis=0)
