"""An exported pack (``.airpack``) seen as a model: ``airender render``, ``render-all``, ``eval`` and ``bench``
take it as ``--ckpt`` and decode it with the numpy runtime (:mod:`airender.runtime`).

:class:`PackedModel` offers what those commands ask of a decodable model, as a tiled atlas
(:class:`airender.models.tiled.TiledAtlas`) does: ``desc``, ``transform``, ``baseline`` (None: the pack's
baseline is not replaceable), ``sources`` (none: packs hold RGB fields), ``decode(t)`` -> display
[H, W, 3], ``frame_decoder(height, width)``, ``query(y, x, t)`` and ``stored_bytes()`` (the pack file's
size: what the decoder reads, header and scales included). Decodes run on the CPU whatever ``--device``
says; results are float32 torch tensors on the CPU.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from airender.config import ExperimentConfig, FieldConfig
from airender.data.description import DataDescription
from airender.data.sequence import ValueTransform
from airender.errors import CheckpointError
from airender.models.loaded import LoadedModel
from airender.render import NativeFrames
from airender.runtime import PackError
from airender.runtime import load as runtime_load
from airender.runtime.packfile import MAGIC


def is_pack(path: str | Path) -> bool:
    """Whether ``path`` is a file that starts with the pack marker (False for a missing or short file)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


class PackedFrameDecoder:
    """Whole frames of a pack at ``height`` x ``width`` (default: its native size) through the runtime's
    ``decode(t, width, height)`` (which keeps the resolution's time-invariant values between frames)."""

    def __init__(self, model: "PackedModel", height: int | None = None, width: int | None = None):
        self.model = model
        self.desc = model.desc
        self.device = model.device
        self.height = height or model.desc.height
        self.width = width or model.desc.width

    def decode(self, t: float) -> torch.Tensor:
        """The frame at hour ``t`` in display space [H, W, 3] (float32, CPU)."""
        return self.decode_source(t, "original")

    def decode_source(self, t: float, source: str = "original") -> torch.Tensor:
        """``original`` (all light) only: a pack holds one RGB field."""
        self.model.check_source(source)
        return torch.from_numpy(self.model.runtime.decode(float(t), width=self.width, height=self.height))


class PackedModel(NativeFrames):
    """A pack decoded by the numpy runtime, usable wherever a frame decoder is (see the module docstring).

    runtime: the :class:`airender.runtime.FieldModel`; path: the pack file (its size is ``stored_bytes``)."""

    baseline = None  # kept inside the pack (and not replaceable)
    sources: tuple[str, ...] = ()

    def __init__(self, runtime, path: str | Path):
        self.runtime = runtime
        self.path = Path(path)
        self.header = runtime.header
        self.quant = str(self.header.get("quant", "fp32"))
        self.device = torch.device("cpu")
        try:
            self.desc = DataDescription.from_dict(self.header["data"])
            self.transform = ValueTransform(self.desc.transform)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: the pack's data description is unreadable ({type(exc).__name__}: "
                                  f"{exc})") from None

    def check_source(self, source: str) -> None:
        if source != "original":
            raise ValueError(f"no light source {source!r} in this model (a pack decodes original only)")

    def frame_decoder(self, height: int | None = None, width: int | None = None) -> PackedFrameDecoder:
        """A decoder of whole frames at ``height`` x ``width`` (default: the native size)."""
        return PackedFrameDecoder(self, height, width)

    def query(self, y, x, t) -> torch.Tensor:
        """Random access: display values [N, 3] at integer texels (y [N], x [N]) and hours t [N]."""
        def array(v):
            return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)

        return torch.from_numpy(self.runtime.query(array(y), array(x), array(t).astype(np.float32)))

    def stored_bytes(self) -> int:
        """The pack file's size in bytes."""
        return int(self.runtime.nbytes or self.path.stat().st_size)


def _config_of(header: dict, desc: DataDescription) -> ExperimentConfig:
    """An ExperimentConfig whose field section is the pack's (keys this version does not know are left out:
    the runtime decodes from the model section, the field config is for reference)."""
    known = {f.name for f in dataclasses.fields(FieldConfig)}
    stored = header.get("field") or {}
    field = FieldConfig(**{k: v for k, v in stored.items() if k in known}) if isinstance(stored, dict) \
        else FieldConfig()
    config = ExperimentConfig(field=field)
    config.data.baseline_time = float(desc.baseline_time)
    return config


def load_pack(path: str | Path, lightmap_id: str = "") -> LoadedModel:
    """Read and check the pack at ``path`` (CheckpointError naming the file when it is not a decodable pack).
    ``lightmap_id`` is kept as ``atlas_id`` (which lightmap of a dataset the pack is scored against)."""
    try:
        runtime = runtime_load(path)
    except PackError as exc:
        raise CheckpointError(str(exc)) from None
    model = PackedModel(runtime, path)
    try:
        config = _config_of(model.header, model.desc)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the pack's field config is unreadable ({type(exc).__name__}: {exc})") \
            from None
    return LoadedModel("pack", model, config, model.desc, model.header, lightmap_id, model)
