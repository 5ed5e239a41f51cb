"""Decoder of the lightmaps exported into this folder: ``reconstruct(dataset, lightmap_id, coords)``.

Written by ``airender export --format contest``; needs numpy only (``runtime/`` is a copy of
airender.runtime, the numpy decoder of airender's packs; ``packs/`` holds one pack per lightmap, or
for a lightmap of a tiled run one pack per tile, and ``lightmaps.json`` says which pack is which
lightmap)::

    from Interface import reconstruct
    rgb = reconstruct("courtyard", 0, coords)   # coords [N, 3] = (y, x, t) -> rgb [N, 3] float32

``coords`` [N, 3]: y and x integer texel coordinates (row, column) of the lightmap, t the hour of day,
0 <= t <= 24 (24 is midnight; fractional hours are allowed). Returns the linear radiance at each
texel and hour, float32 [N, 3].

``dataset`` says which exported lightmap is meant when ids repeat (the first layout names a lightmap
by level and id): a level name, or the dataset folder (a path, or its name); it may be None or ""
when the id alone is unique in this export. ``lightmap_id``: the id of config.json (int or str), or
"LEVEL:ID".

Random access: a texel's value depends only on (y, x, t), and every texel costs the same, wherever it
is. The time-invariant part of every texel of a lightmap (its hash-grid features and their first-layer
projection) is computed once, on the lightmap's first use (:meth:`ContestDecoder.prepare`), and kept
when it fits in ``CACHE_BYTES``; each call then gathers those rows and runs the per-hour part.
Rows of a call that share an hour run as one batch, as a whole-frame decode does. A tiled lightmap
(its lightmaps.json entry lists "tiles") sends each texel to its tile's model, found arithmetically from
(y, x); texels of tiles that were not fitted (no valid texel) are 0.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RUNTIME_NAME = "_airender_contest_runtime"
CACHE_BYTES = 2 << 30  # per lightmap (per tile of a tiled one): larger ones compute the time-invariant part per call
HOURS_PER_DAY = 24.0


def _runtime(folder: Path):
    """The numpy decoder copied into ``folder``/runtime, imported under a private name."""
    if RUNTIME_NAME in sys.modules:
        return sys.modules[RUNTIME_NAME]
    init = folder / "runtime" / "__init__.py"
    spec = importlib.util.spec_from_file_location(RUNTIME_NAME, init, submodule_search_locations=[str(init.parent)])
    if spec is None or not init.is_file():
        raise FileNotFoundError(f"{init}: the decoder is missing from this folder")
    module = importlib.util.module_from_spec(spec)
    sys.modules[RUNTIME_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[RUNTIME_NAME]
        raise
    return module


class ContestDecoder:
    """The lightmaps of one exported folder (default: this file's folder).

    ``lightmaps``: the entries of lightmaps.json, each {id, level (or null), width, height, pack, bytes}
    (a tiled lightmap: tile_size and tiles [{y, x, height, width, window, pack, bytes}] instead of pack).
    Models are loaded on first use and kept.
    """

    def __init__(self, folder: str | Path = HERE, cache_bytes: int = CACHE_BYTES):
        self.folder = Path(folder)
        index = json.loads((self.folder / "lightmaps.json").read_text())
        if index.get("format") != "airender-contest":
            raise ValueError(f"{self.folder / 'lightmaps.json'}: not an airender contest export")
        self.index = index
        self.layout = index["layout"]
        self.lightmaps: list[dict] = index["lightmaps"]
        self.cache_bytes = int(cache_bytes)
        self._models: dict[int, object] = {}

    # --- which lightmap ------------------------------------------------------------------------------
    def entry(self, dataset, lightmap_id) -> dict:
        """The lightmaps.json entry that (dataset, lightmap_id) names; KeyError when none or several do."""
        text = str(lightmap_id).strip()
        level, _, ident = text.rpartition(":")
        try:
            number = int(ident)
        except ValueError:
            raise KeyError(f"lightmap_id {lightmap_id!r}: not an id (expected an integer or 'LEVEL:ID')") from None
        matches = [e for e in self.lightmaps
                   if int(e["id"]) == number and (not level or e.get("level") in (level, None))]
        if len(matches) > 1 and dataset not in (None, ""):
            matches = [e for e in matches if e.get("level") in self._levels_of(dataset)] or matches
        if not matches:
            have = ", ".join(_name(e) for e in self.lightmaps)
            raise KeyError(f"lightmap {text!r}: not in this export (it holds {have})")
        if len(matches) > 1:
            raise KeyError(f"lightmap {text!r}: several exported lightmaps have this id "
                           f"({', '.join(_name(e) for e in matches)}); name the level as dataset or 'LEVEL:ID'")
        return matches[0]

    def _levels_of(self, dataset) -> set[str]:
        """Level names that ``dataset`` may mean: itself, its folder name, and the levels its config.json lists."""
        path = Path(str(dataset))
        names = {str(dataset), path.name}
        try:
            names |= {str(e.get("level")) for e in json.loads((path / "config.json").read_text())["lightmap_list"]}
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return names

    def model(self, dataset, lightmap_id):
        """The decoder of one lightmap (airender.runtime.FieldModel, or TiledFieldModel over the packs of
        its tiles), loaded on first use."""
        entry = self.entry(dataset, lightmap_id)
        key = self.lightmaps.index(entry)
        if key not in self._models:
            runtime = _runtime(self.folder)
            if "tiles" in entry:
                tiles = [(tile, runtime.load(self.folder / tile["pack"])) for tile in entry["tiles"]]
                model = runtime.TiledFieldModel(tiles, int(entry["height"]), int(entry["width"]),
                                                int(entry["tile_size"]))
            else:
                model = runtime.load(self.folder / entry["pack"])
            if (model.height, model.width) != (int(entry["height"]), int(entry["width"])):
                raise ValueError(f"{entry.get('pack', _name(entry))}: decodes {model.width}x{model.height}, "
                                 f"lightmaps.json says {entry['width']}x{entry['height']}")
            model.texel_cache_bytes = self.cache_bytes
            self._models[key] = model
        return self._models[key]

    def prepare(self, dataset, lightmap_id) -> None:
        """Load a lightmap's model and compute its texels' time-invariant values (else done on first call)."""
        self.model(dataset, lightmap_id).texel_cache()

    # --- decoding ------------------------------------------------------------------------------------
    def reconstruct(self, dataset, lightmap_id, coords) -> np.ndarray:
        """Linear radiance [N, 3] float32 at coords [N, 3] = (y, x, t); see the module docstring.

        Raises ValueError for coords of the wrong shape, non-integer or out-of-range texels, and hours
        outside [0, 24]."""
        model = self.model(dataset, lightmap_id)
        coords = np.asarray(coords)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise ValueError(f"coords: expected an [N, 3] array of (y, x, t), got shape {coords.shape}")
        if coords.shape[0] == 0:
            return np.zeros((0, 3), np.float32)
        values = coords.astype(np.float64, copy=False)
        if not np.isfinite(values).all():
            raise ValueError("coords: NaN or Inf")
        y, x, t = values[:, 0], values[:, 1], values[:, 2]
        if not (np.array_equal(y, np.round(y)) and np.array_equal(x, np.round(x))):
            raise ValueError("coords: y and x must be integer texel coordinates")
        if bool(((t < 0.0) | (t > HOURS_PER_DAY)).any()):
            raise ValueError("coords: t must be an hour in [0, 24]")
        if bool(((y < 0) | (y >= model.height) | (x < 0) | (x >= model.width)).any()):
            raise ValueError(f"coords: texel outside lightmap {_name(self.entry(dataset, lightmap_id))} "
                             f"({model.width}x{model.height})")
        return model.query(y.astype(np.int64), x.astype(np.int64), t.astype(np.float32))


def _name(entry: dict) -> str:
    return f"{entry['level']}:{entry['id']}" if entry.get("level") else str(entry["id"])


_DEFAULT: ContestDecoder | None = None


def reconstruct(dataset, lightmap_id, coords) -> np.ndarray:
    """Linear radiance [N, 3] float32 of lightmap ``lightmap_id`` at ``coords`` [N, 3] = (y, x, t) (integer
    texel row and column, hour in [0, 24]); ``dataset`` picks among exported lightmaps that share the id
    (see the module docstring). The lightmaps are those of this file's folder."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ContestDecoder(HERE)
    return _DEFAULT.reconstruct(dataset, lightmap_id, coords)
