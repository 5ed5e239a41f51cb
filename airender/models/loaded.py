"""What loading a model gives: one typed record for a checkpoint, a tiled checkpoint or a pack."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from airender.config import ExperimentConfig
from airender.data.description import DataDescription

ModelKind = Literal["field", "tiled", "pack"]


@dataclass
class LoadedModel:
    """A model as :func:`airender.models.load_model` returns it.

    kind: "field" (a single-field checkpoint: ``field`` is the torch module), "tiled" (a tiled checkpoint:
    ``field`` is one atlas, a :class:`airender.models.tiled.TiledAtlas`, and ``model`` the whole
    :class:`airender.models.tiled.TiledModel`) or "pack" (an exported ``.airpack``: ``field`` and ``model``
    are the :class:`airender.models.packed.PackedModel`, decoded by the numpy runtime).
    config: the run's ExperimentConfig (a pack's: its field section and the baseline hour); desc: what the
    model was trained on (for a tiled atlas: the whole atlas); raw: the checkpoint dict or the pack header;
    atlas_id: the lightmap it decodes (tiled: its atlas; pack: the one asked for; field: "").
    """

    kind: ModelKind
    field: Any
    config: ExperimentConfig
    desc: DataDescription
    raw: dict
    atlas_id: str = ""
    model: Any = None

    @property
    def is_tiled(self) -> bool:
        return self.kind == "tiled"

    @property
    def is_pack(self) -> bool:
        return self.kind == "pack"
