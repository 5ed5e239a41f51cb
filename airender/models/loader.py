"""One way to load any model a user may hold: a checkpoint, a tiled checkpoint or an exported pack."""
from __future__ import annotations

from pathlib import Path

import torch

from airender.models.checkpoint import field_from_checkpoint
from airender.models.loaded import LoadedModel
from airender.models.packed import is_pack, load_pack
from airender.models.tiled import TILED_FORMAT, TiledModel, read_any_checkpoint


def load_model(path: str | Path, device: torch.device | str = "cpu", lightmap_id: str = "") -> LoadedModel:
    """Load ``path`` as a :class:`LoadedModel`: a single-field checkpoint (kind "field"; ``lightmap_id`` is
    not used), a tiled checkpoint (kind "tiled": its atlas ``lightmap_id``, default the first) or a pack
    (kind "pack": decoded by the numpy runtime on the CPU; ``lightmap_id`` is kept as the lightmap it is
    scored against). CheckpointError (one line naming the file) for anything else."""
    if is_pack(path):
        return load_pack(path, lightmap_id)
    ckpt = read_any_checkpoint(path)
    if ckpt["format"] == TILED_FORMAT:
        model = TiledModel(ckpt, device, path)
        atlas = model.atlas(lightmap_id)
        return LoadedModel("tiled", atlas, model.config, atlas.desc, ckpt, atlas.atlas_id, model)
    return field_from_checkpoint(path, ckpt, device)
