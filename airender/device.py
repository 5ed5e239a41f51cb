"""Which torch device a command runs on."""
from __future__ import annotations

import torch

from airender.errors import InputError


def resolve_device(name: str) -> torch.device:
    """``--device``: "auto" (CUDA when there is a GPU, else the CPU), "cpu", "cuda" or "cuda:N"; InputError
    (one line) for a CUDA device on a machine without one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a device (auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device
