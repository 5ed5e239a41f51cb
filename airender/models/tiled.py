"""A tiled model: one small field per tile of one or more atlases, decoded as one model.

Checkpoint (``torch.save`` dict, loadable with ``weights_only=True``)::

    format "airender-tiled-checkpoint", format_version 1, airender_version,
    config      the run's ExperimentConfig dict (tile_size and tile_overlap included)
    tile_size, overlap
    atlases     [{atlas_id, label, height, width, times, names, is_hdr, source, grid [rows, cols],
                  valid_texels}]                                   the index, one entry per atlas
    tiles       [{atlas_id, y, x, height, width, window [top, left, height, width],
                  config, data, model}]                            one entry per fitted tile

``config``, ``data`` and ``model`` of a tile are what :mod:`airender.models.checkpoint` writes for one
field (its ExperimentConfig, DataDescription of the window and state dict at the stored precision), so
each tile rebuilds exactly as a single field does.

:class:`TiledAtlas` is one atlas of the model seen as a frame decoder: ``desc`` (a DataDescription of the
whole atlas), ``decode(t)`` -> display [H, W, 3] assembled from tile decodes, ``query(y, x, t)`` random
access dispatching each texel to its tile, and ``stored_bytes()``; ``evaluate_field``, the protocols,
``airender render`` and ``render-all`` take it as they take a field. Texels of skipped tiles (no valid
texel) decode to 0. :func:`airender.models.load_model` reads it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from airender import __version__
from airender.assembly import build_field
from airender.config import ExperimentConfig
from airender.data.description import DataDescription
from airender.data.samplers import pixel_centres
from airender.data.sequence import ValueTransform
from airender.errors import CheckpointError, InputError
from airender.models.checkpoint import FORMAT, FORMAT_VERSION, read_checkpoint
from airender.render import NativeFrames, query_pixels
from airender.sizes import model_bytes, raw_frames_bytes, size_report

TILED_FORMAT = "airender-tiled-checkpoint"
TILED_FORMAT_VERSION = 1
INDEX_BYTES_PER_TILE = 8 * 4   # y, x, height, width and the window (top, left, height, width) as int32
INDEX_BYTES_PER_ATLAS = 4 * 4  # id, height, width, tile size as int32
DECODE_CACHE_BYTES = 1 << 30   # time-invariant decode caches kept between frames, bytes (least recently used go)


def tiled_checkpoint(config: dict, tile_size: int, overlap: int, atlases: list[dict], tiles: list[dict]) -> dict:
    """The checkpoint dict of a tiled model (see the module docstring)."""
    return {"format": TILED_FORMAT, "format_version": TILED_FORMAT_VERSION, "airender_version": __version__,
            "config": config, "tile_size": int(tile_size), "overlap": int(overlap), "atlases": atlases,
            "tiles": tiles}


@dataclass(frozen=True)
class _Region:
    """The texels of tile ``tile`` that land in an output frame: output rows [r0, r1) x columns [c0, c1)."""

    tile: int
    rows: tuple[int, int]
    cols: tuple[int, int]


class TiledFrameDecoder:
    """Whole frames of one atlas at ``height`` x ``width`` (default: the atlas size), assembled tile by tile.

    Per tile, the time-invariant part of its texels (as :class:`airender.render.FrameDecoder` caches it)
    is computed once and kept while the kept caches stay under ``cache_bytes`` (least recently used
    dropped first, then recomputed when needed). Memory: the output image plus the kept caches.
    """

    def __init__(self, atlas: "TiledAtlas", height: int | None = None, width: int | None = None,
                 chunk_pixels: int = 0, cache_bytes: int = DECODE_CACHE_BYTES):
        self.atlas = atlas
        self.desc = atlas.desc
        self.device = atlas.device
        self.height = height or atlas.desc.height
        self.width = width or atlas.desc.width
        self.native = (self.height, self.width) == (atlas.desc.height, atlas.desc.width)
        self.chunk_pixels = chunk_pixels or (1 << 22 if self.device.type == "cuda" else 1 << 18)
        self.cache_bytes = cache_bytes
        self._caches: OrderedDict[int, tuple[list, int]] = OrderedDict()
        self._kept = 0
        self.regions = [r for r in (self._region(i) for i in range(len(atlas.tiles))) if r is not None]

    def _span(self, start: int, size: int, out_size: int, atlas_size: int) -> tuple[int, int]:
        """Output indices [a, b) whose centres (k + 0.5) * atlas / out fall in texels [start, start + size)."""
        if self.native:
            return start, start + size
        scale = out_size / atlas_size
        return int(np.ceil(start * scale - 0.5)), int(np.ceil((start + size) * scale - 0.5))

    def _region(self, i: int) -> _Region | None:
        tile = self.atlas.tiles[i]
        r0, r1 = self._span(tile["y"], tile["height"], self.height, self.desc.height)
        c0, c1 = self._span(tile["x"], tile["width"], self.width, self.desc.width)
        return _Region(i, (r0, r1), (c0, c1)) if r1 > r0 and c1 > c0 else None

    def _inputs(self, region: _Region) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uv [N, 2] of the region's output pixels in the tile's window, and (at the native resolution) their
        flat window indices pix [N] (made when the region's cache is, and not kept beside it)."""
        top, left, win_h, win_w = self.atlas.tiles[region.tile]["window"]
        rows = torch.arange(*region.rows, device=self.device)
        cols = torch.arange(*region.cols, device=self.device)
        if self.native:
            pix = ((rows[:, None] - top) * win_w + (cols[None, :] - left)).reshape(-1)
            return pixel_centres(pix, win_h, win_w), pix
        yc = (rows.double() + 0.5) * self.desc.height / self.height
        xc = (cols.double() + 0.5) * self.desc.width / self.width
        u = ((xc - left) / win_w)[None, :].expand(len(rows), -1)
        v = ((yc - top) / win_h)[:, None].expand(-1, len(cols))
        return torch.stack((u, v), dim=-1).reshape(-1, 2).float(), None

    def _caches_of(self, region: _Region, field: torch.nn.Module) -> list:
        if region.tile in self._caches:
            self._caches.move_to_end(region.tile)
            return self._caches[region.tile][0]
        feature_map = field.encoder_features() if field.encoder is not None else None
        uv, pix = self._inputs(region)
        caches, size = [], 0
        for start in range(0, uv.shape[0], self.chunk_pixels):
            stop = start + self.chunk_pixels
            cache = field.prepare(uv[start:stop], None if pix is None else pix[start:stop], feature_map)
            caches.append(cache)
            size += cache.nbytes()
        while self._caches and self._kept + size > self.cache_bytes:
            _, (_, dropped) = self._caches.popitem(last=False)
            self._kept -= dropped
        if size <= self.cache_bytes:
            self._caches[region.tile] = (caches, size)
            self._kept += size
        return caches

    @torch.no_grad()
    def decode(self, t: float) -> torch.Tensor:
        """The frame at hour ``t`` in display space [H, W, 3] (0 where no tile was fitted)."""
        return self.decode_source(t, "original")

    @torch.no_grad()
    def decode_source(self, t: float, source: str = "original") -> torch.Tensor:
        """One light source at hour ``t`` in display space [H, W, 3]: ``original`` (all light) or one of the
        tile fields' ``sources`` (fields trained with ``components``); 0 where no tile was fitted."""
        if source != "original" and source not in self.atlas.sources:
            have = ", ".join(("original",) + tuple(self.atlas.sources))
            raise ValueError(f"no light source {source!r} in this model (it decodes {have})")
        out = torch.zeros(self.height, self.width, 3, device=self.device)
        t_row = torch.full((1,), float(t), device=self.device)
        for region in self.regions:
            field = self.atlas.field(region.tile)
            caches = self._caches_of(region, field)
            if source == "original":
                parts = [field.decode_at(cache, t_row) for cache in caches]
            else:
                index = field.sources.index(source)
                parts = [field.decode_components(cache, float(t))[:, index] for cache in caches]
            (r0, r1), (c0, c1) = region.rows, region.cols
            out[r0:r1, c0:c1] = field.transform.to_display(torch.cat(parts).float()).reshape(r1 - r0, c1 - c0, 3)
        return out


class TiledAtlas(NativeFrames):
    """One atlas of a tiled model, usable wherever a frame decoder is (see the module docstring).

    tiles: the checkpoint's tile entries of this atlas; desc: DataDescription of the whole atlas;
    device: where the tile fields live (each built on first use)."""

    baseline = None  # one baseline per tile, none for the atlas

    def __init__(self, entry: dict, tiles: list[dict], config: ExperimentConfig, tile_size: int,
                 device: torch.device | str = "cpu"):
        self.entry, self.tiles, self.config, self.tile_size = entry, tiles, config, int(tile_size)
        self.device = torch.device(device)
        self.atlas_id = str(entry["atlas_id"])
        first = tiles[0]["data"] if tiles else {}
        height, width = int(entry["height"]), int(entry["width"])
        self.desc = DataDescription(
            height=height, width=width, is_hdr=bool(entry["is_hdr"]),
            transform=first.get("transform", "log1p" if entry["is_hdr"] else "identity"),
            times=[float(t) for t in entry["times"]], baseline_time=float(config.data.baseline_time),
            has_mask=int(entry["valid_texels"]) < height * width, source=str(entry["source"]),
            names=list(entry["names"]), train_times=list(first.get("train_times", [])))
        self.transform = ValueTransform(self.desc.transform)
        self.grid = tuple(int(v) for v in entry["grid"])
        self._tile_at = {(t["y"] // self.tile_size) * self.grid[1] + t["x"] // self.tile_size: i
                         for i, t in enumerate(tiles)}
        self._fields: dict[int, torch.nn.Module] = {}

    def field(self, i: int) -> torch.nn.Module:
        """The field of tile ``i`` (built from its config, data description and weights on first use)."""
        if i not in self._fields:
            tile = self.tiles[i]
            try:
                field = build_field(ExperimentConfig.from_dict(tile["config"]).field,
                                    DataDescription.from_dict(tile["data"]))
                field.load_state_dict(tile["model"])
            except (KeyError, TypeError, ValueError, RuntimeError) as exc:
                raise CheckpointError(f"tile y {tile.get('y')}, x {tile.get('x')} of atlas {self.atlas_id}: cannot "
                                      f"rebuild its field ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
            self._fields[i] = field.eval().to(self.device)
        return self._fields[i]

    @property
    def sources(self) -> tuple[str, ...]:
        """The light sources the tile fields predict (fields trained with ``components``; else empty)."""
        return tuple(getattr(self.field(0), "sources", ())) if self.tiles else ()

    def frame_decoder(self, height: int | None = None, width: int | None = None) -> TiledFrameDecoder:
        """A decoder of whole frames at ``height`` x ``width`` (default: the atlas size)."""
        return TiledFrameDecoder(self, height, width)

    @torch.no_grad()
    def query(self, y: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Random access: display values [N, 3] at integer texels (y [N], x [N]) and hours t [N]; each
        texel goes to the field of its tile (found arithmetically: the cost does not depend on where the
        texel is); texels of skipped tiles are 0."""
        y, x = y.long().cpu(), x.long().cpu()
        t = torch.as_tensor(t, dtype=torch.float32).cpu().expand(y.shape[0])
        if bool(((y < 0) | (y >= self.desc.height) | (x < 0) | (x >= self.desc.width)).any()):
            raise ValueError(f"texel outside the {self.desc.width}x{self.desc.height} atlas")
        code = (y // self.tile_size) * self.grid[1] + x // self.tile_size
        out = torch.zeros(y.shape[0], 3, device=self.device)
        for value in torch.unique(code).tolist():
            i = self._tile_at.get(value)
            if i is None:
                continue
            sel = torch.nonzero(code == value, as_tuple=False).squeeze(1)
            top, left = self.tiles[i]["window"][:2]
            out[sel.to(self.device)] = query_pixels(self.field(i), y[sel] - top, x[sel] - left, t[sel])
        return out

    def stored_bytes(self) -> int:
        """Bytes a decoder reads: every tile's field (as :func:`airender.sizes.model_bytes` counts one field)
        plus the index (INDEX_BYTES_PER_TILE a tile, INDEX_BYTES_PER_ATLAS for the atlas)."""
        fields = sum(model_bytes(self.field(i)) for i in range(len(self.tiles)))
        return int(fields + INDEX_BYTES_PER_TILE * len(self.tiles) + INDEX_BYTES_PER_ATLAS)


class TiledModel:
    """Every atlas of a tiled checkpoint: ``decode(atlas_id, t)``, ``query(atlas_id, y, x, t)``."""

    def __init__(self, ckpt: dict, device: torch.device | str = "cpu", path: str | Path = ""):
        try:
            self.config = ExperimentConfig.from_dict(ckpt["config"])
            self.tile_size, self.overlap = int(ckpt["tile_size"]), int(ckpt["overlap"])
            by_atlas: dict[str, list[dict]] = {str(a["atlas_id"]): [] for a in ckpt["atlases"]}
            for tile in ckpt["tiles"]:
                by_atlas[str(tile["atlas_id"])].append(tile)
            self.atlases = {str(a["atlas_id"]): TiledAtlas(a, by_atlas[str(a["atlas_id"])], self.config,
                                                           self.tile_size, device) for a in ckpt["atlases"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: not a readable tiled checkpoint ({type(exc).__name__}: {exc})") from None
        self.labels = {str(a["label"]): str(a["atlas_id"]) for a in ckpt["atlases"]}
        self.path = path

    @property
    def atlas_ids(self) -> list[str]:
        return list(self.atlases)

    def atlas(self, atlas_id: str = "") -> TiledAtlas:
        """The atlas ``atlas_id`` (its id or file-name label; default: the first)."""
        if not atlas_id:
            return next(iter(self.atlases.values()))
        key = atlas_id if atlas_id in self.atlases else self.labels.get(atlas_id)
        if key is None:
            raise InputError(f"--lightmap_id {atlas_id}: {self.path} holds no such atlas (it holds "
                             f"{', '.join(repr(a) for a in self.atlases)})")
        return self.atlases[key]

    def decode(self, atlas_id: str, t: float) -> torch.Tensor:
        """Atlas ``atlas_id`` at hour ``t``, display space [H, W, 3]."""
        return self.atlas(atlas_id).decode(t)

    def query(self, atlas_id: str, y: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Display values [N, 3] of atlas ``atlas_id`` at texels (y [N], x [N]) and hours t [N]."""
        return self.atlas(atlas_id).query(y, x, t)

    def size_report(self) -> dict:
        """{"atlases": {id: {model_bytes, raw_bytes, percent_of_raw, compression_ratio, tiles}}, "dataset":
        the same summed over atlases}; raw = 24 float32 RGB frames of each atlas."""
        rows = {}
        for ident, atlas in self.atlases.items():
            rows[ident] = {**size_report(atlas.stored_bytes(), raw_frames_bytes(atlas.desc.height, atlas.desc.width)),
                           "tiles": len(atlas.tiles)}
        dataset = size_report(sum(r["model_bytes"] for r in rows.values()), sum(r["raw_bytes"] for r in rows.values()))
        return {"atlases": rows, "dataset": {**dataset, "tiles": sum(r["tiles"] for r in rows.values())}}


def read_any_checkpoint(path: str | Path) -> dict:
    """The raw dict of a single-field or a tiled checkpoint."""
    return read_checkpoint(path, {FORMAT: FORMAT_VERSION, TILED_FORMAT: TILED_FORMAT_VERSION})
