"""Model size: every parameter and buffer the decoder reads, and the compression ratio against raw frames."""
from __future__ import annotations

import torch


def model_bytes(field: torch.nn.Module) -> int:
    """Bytes of every parameter and persistent buffer (the residual baseline frame included), as stored."""
    total = sum(p.numel() * p.element_size() for p in field.parameters())
    persistent = field.state_dict()
    total += sum(b.numel() * b.element_size() for name, b in field.named_buffers() if name in persistent)
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
