"""Checkpoints: the model, its full config and data description, and (optionally) the training state.

A checkpoint is a plain ``torch.save`` dict loadable with ``weights_only=True``:
    format, format_version, airender_version, config (ExperimentConfig dict), data (DataDescription
    dict), model (state dict at the stored precision; the residual baseline frame is the buffer
    ``baseline`` at full precision), train_state (optimizer, scheduler, RNG and callback states, step;
    only for resuming).
Inference rebuilds the exact model from ``config`` and ``data`` alone.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch import nn

from airender import __version__
from airender.assembly import build_field
from airender.config import ExperimentConfig
from airender.data.description import DataDescription
from airender.errors import CheckpointError
from airender.fileio import atomic_path
from airender.models.loaded import LoadedModel

FORMAT = "airender-checkpoint"
FORMAT_VERSION = 1


def checkpoint_dict(field: nn.Module, config: ExperimentConfig, desc: DataDescription,
                    train_state: dict | None = None) -> dict:
    """``model`` holds the weights at their stored precision (what a decoder reads); with a training
    state and a reduced ``store_dtype``, ``train_state["model_full"]`` keeps full precision for resuming."""
    if train_state is not None and field.cfg.store_dtype != "float32":
        train_state = {**train_state, "model_full": {k: v.detach().clone() for k, v in field.state_dict().items()}}
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "airender_version": __version__,
        "config": config.to_dict(),
        "data": desc.to_dict(),
        "model": stored_state(field),
        "train_state": train_state,
    }


def stored_state(field: nn.Module) -> dict[str, torch.Tensor]:
    """The field's state dict at its stored precision: with ``store_dtype float16`` every floating-point
    parameter is rounded to float16 (the residual baseline frame stays at full precision)."""
    dtype = getattr(torch, field.cfg.store_dtype)
    parameters = {name for name, _ in field.named_parameters()}
    return {k: (v.detach().to(dtype) if k in parameters and v.is_floating_point() else v.detach()).clone()
            for k, v in field.state_dict().items()}


def save_checkpoint(path: str | Path, ckpt: dict) -> None:
    """Write atomically (temp file + rename): an interrupted save leaves the previous file intact."""
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def read_checkpoint(path: str | Path, formats: dict[str, int] | None = None) -> dict:
    """The raw checkpoint dict; CheckpointError with a clear message if it is not one of ours.

    ``formats``: {format marker: supported version} accepted (default: a single field's checkpoint)."""
    formats = formats or {FORMAT: FORMAT_VERSION}
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable airender checkpoint (not a PyTorch checkpoint file)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's messages span paragraphs: name the kind of failure only
        raise CheckpointError(f"{path}: not a readable airender checkpoint (a PyTorch file that cannot be "
                              f"loaded safely: {type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") not in formats:
        found = ckpt.get("format") if isinstance(ckpt, dict) else None
        if isinstance(found, str) and found.startswith("airender"):
            raise CheckpointError(f"{path}: a '{found}' file; this reader takes {', '.join(map(repr, formats))} "
                                  f"(airender render/eval read both)")
        raise CheckpointError(f"{path}: not an airender checkpoint (no '{next(iter(formats))}' marker)")
    if ckpt.get("format_version") != formats[ckpt["format"]]:
        raise CheckpointError(f"{path}: checkpoint format version {ckpt.get('format_version')} is not supported "
                              f"(this airender {__version__} reads version {formats[ckpt['format']]})")
    return ckpt


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the field from the checkpoint alone and load its weights."""
    return field_from_checkpoint(path, read_checkpoint(path), device)


def field_from_checkpoint(path: str | Path, ckpt: dict, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the field of the checkpoint dict ``ckpt`` (read from ``path``, named in errors)."""
    try:
        config = ExperimentConfig.from_dict(ckpt["config"])
        desc = DataDescription.from_dict(ckpt["data"])
        field = build_field(config.field, desc)
        field.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the model ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0]})") from None
    field.eval()
    return LoadedModel("field", field.to(device), config, desc, ckpt)
