"""Model size: every parameter and buffer the decoder reads, and the compression ratio against raw frames."""
from __future__ import annotations

import torch


def model_bytes(field: torch.nn.Module) -> int:
    """Bytes the decoder reads: every parameter at its stored precision (``store_dtype``), persistent
    buffers as they are, except a baseline frame from an 8-bit source, counted at 1 byte per value (it
    is exact in 8 bits). A model made of several fields (a tiled atlas) counts itself: ``stored_bytes()``."""
    if hasattr(field, "stored_bytes"):
        return int(field.stored_bytes())
    stored = getattr(torch, field.cfg.store_dtype).itemsize
    total = sum(p.numel() * stored for p in field.parameters())
    persistent = field.state_dict()
    for name, buffer in field.named_buffers():
        if name not in persistent:
            continue
        if name == "baseline" and getattr(field.desc, "baseline_8bit", False):
            total += buffer.numel()
        else:
            total += buffer.numel() * buffer.element_size()
    return int(total)


def raw_frames_bytes(height: int, width: int, num_frames: int = 24) -> int:
    """Size of the raw float32 RGB frames the contest measures against: H * W * 3 * 4 * 24."""
    return height * width * 3 * 4 * num_frames


def size_report(nbytes: int, raw_bytes: int) -> dict:
    """The one size report every command gives: {'model_bytes', 'raw_bytes', 'percent_of_raw' (%),
    'compression_ratio' (raw / model)} for ``nbytes`` a decoder reads against ``raw_bytes``."""
    return {"model_bytes": int(nbytes), "raw_bytes": int(raw_bytes), "percent_of_raw": 100.0 * nbytes / raw_bytes,
            "compression_ratio": raw_bytes / nbytes}


def compression_report(field: torch.nn.Module) -> dict:
    """:func:`size_report` of a field (or any model with ``stored_bytes()``) against its 24 raw frames."""
    return size_report(model_bytes(field), raw_frames_bytes(field.desc.height, field.desc.width))


def with_extra_bytes(size: dict, key: str, extra: int) -> dict:
    """``size`` (a :func:`size_report`) with ``extra`` bytes of a second part stored under ``key`` and the
    total against the raw frames (``total_bytes``, ``total_percent_of_raw``)."""
    size[key] = int(extra)
    size["total_bytes"] = size["model_bytes"] + size[key]
    size["total_percent_of_raw"] = 100.0 * size["total_bytes"] / size["raw_bytes"]
    return size


def size_line(size: dict, what: str = "model") -> str:
    """``model: N bytes the decoder reads = P % of the raw float32 frames (R bytes for 24 frames), ratio X:1``."""
    return (f"{what}: {size['model_bytes']:,} bytes the decoder reads = {size['percent_of_raw']:.2f} % of the raw "
            f"float32 frames ({size['raw_bytes']:,} bytes for 24 frames), compression ratio "
            f"{size['compression_ratio']:.1f}:1")
