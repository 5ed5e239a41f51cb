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


def compression_report(field: torch.nn.Module) -> dict:
    """{'model_bytes', 'raw_bytes', 'percent_of_raw', 'compression_ratio'} for a field."""
    size = model_bytes(field)
    raw = raw_frames_bytes(field.desc.height, field.desc.width)
    return {"model_bytes": size, "raw_bytes": raw, "percent_of_raw": 100.0 * size / raw,
            "compression_ratio": raw / size}
