"""The tile index: which N x N tiles of which atlases are fitted, and on which windows.

An atlas of H x W texels is cut into tiles of ``tile_size`` texels in row-major order (the last row and
column of tiles may be smaller). A tile whose own texels hold no valid texel is skipped. Each tile is
fitted on its *window*: its texels padded by ``overlap`` texels on every side, clipped to the atlas; it
decodes only its own texels (the core). The seed of a tile depends only on the base seed and where the
tile is (atlas id, y, x), so a tile's field does not depend on how many workers fit the plan, in which
order, or on which engine.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from airender.data.frame_store import AtlasInfo, FrameSource, Window

SEED_MODULUS = 2 ** 31 - 1


@dataclass(frozen=True)
class Tile:
    """One tile. atlas_id / label: the atlas (id as the readers take it, and safe for file names);
    y, x: top-left texel of the core; height, width: core size in texels; window: (top, left, height,
    width) of the texels it trains on (the core padded by the overlap, clipped to the atlas)."""

    atlas_id: str
    label: str
    y: int
    x: int
    height: int
    width: int
    window: Window

    @property
    def key(self) -> str:
        """``<atlas>_<y>_<x>``: the tile's folder name under ``tiles/``."""
        return f"{self.label}_{self.y}_{self.x}"

    @property
    def core_in_window(self) -> tuple[int, int]:
        """(row, column) of the core's top-left texel inside the window."""
        return self.y - self.window[0], self.x - self.window[1]

    def seed(self, base_seed: int) -> int:
        """The training seed of this tile: a function of ``base_seed`` and (atlas id, y, x) only."""
        return (int(base_seed) + zlib.crc32(f"{self.atlas_id}:{self.y}:{self.x}".encode())) % SEED_MODULUS

    def to_dict(self) -> dict:
        return {"atlas_id": self.atlas_id, "label": self.label, "y": self.y, "x": self.x, "height": self.height,
                "width": self.width, "window": list(self.window)}

    @classmethod
    def from_dict(cls, d: dict) -> "Tile":
        return cls(str(d["atlas_id"]), str(d["label"]), int(d["y"]), int(d["x"]), int(d["height"]),
                   int(d["width"]), tuple(int(v) for v in d["window"]))


@dataclass
class AtlasPlan:
    """The tiles of one atlas. info: the atlas; source: the spec that reopens its frames
    (:func:`airender.data.frame_store.open_source`); grid: (rows, columns) of tiles in the full grid;
    tiles: the tiles with a valid texel, row-major; valid_texels: valid texels in the whole atlas."""

    info: AtlasInfo
    source: dict
    grid: tuple[int, int]
    tiles: list[Tile] = field(default_factory=list)
    valid_texels: int = 0

    @property
    def skipped(self) -> int:
        return self.grid[0] * self.grid[1] - len(self.tiles)

    def to_dict(self) -> dict:
        return {"info": self.info.to_dict(), "source": self.source, "grid": list(self.grid),
                "tiles": [t.to_dict() for t in self.tiles], "valid_texels": self.valid_texels}

    @classmethod
    def from_dict(cls, d: dict) -> "AtlasPlan":
        return cls(AtlasInfo.from_dict(d["info"]), dict(d["source"]), tuple(d["grid"]),
                   [Tile.from_dict(t) for t in d["tiles"]], int(d["valid_texels"]))


@dataclass
class TilePlan:
    """Every atlas to fit, cut into ``tile_size`` tiles trained on windows padded by ``overlap``."""

    tile_size: int
    overlap: int
    atlases: list[AtlasPlan]

    def tiles(self) -> list[Tile]:
        """Every tile of every atlas, in plan order (atlases in order, tiles row-major)."""
        return [t for atlas in self.atlases for t in atlas.tiles]

    def atlas(self, atlas_id: str) -> AtlasPlan:
        for plan in self.atlases:
            if atlas_id in (plan.info.atlas_id, plan.info.label):
                return plan
        raise KeyError(atlas_id)

    def to_dict(self) -> dict:
        return {"tile_size": self.tile_size, "overlap": self.overlap, "atlases": [a.to_dict() for a in self.atlases]}

    @classmethod
    def from_dict(cls, d: dict) -> "TilePlan":
        return cls(int(d["tile_size"]), int(d["overlap"]), [AtlasPlan.from_dict(a) for a in d["atlases"]])


def tile_window(y: int, x: int, height: int, width: int, overlap: int, atlas_h: int, atlas_w: int) -> Window:
    """The core (y, x, height, width) padded by ``overlap`` on every side, clipped to the atlas."""
    top, left = max(0, y - overlap), max(0, x - overlap)
    bottom, right = min(atlas_h, y + height + overlap), min(atlas_w, x + width + overlap)
    return top, left, bottom - top, right - left


def plan_atlas(source: FrameSource, tile_size: int, overlap: int = 0) -> AtlasPlan:
    """Cut ``source``'s atlas into tiles, skipping those with no valid texel. The mask is read one band of
    ``tile_size`` rows at a time (memory: tile_size x W bytes)."""
    info = source.info
    rows, cols = -(-info.height // tile_size), -(-info.width // tile_size)
    tiles, valid_total = [], 0
    for ty in range(rows):
        y = ty * tile_size
        height = min(tile_size, info.height - y)
        band = source.read_mask(y, y + height)
        valid_total += int(band.sum())
        # valid texels per tile column of this band: sum over rows, then over each tile's columns
        per_column = band.sum(axis=0)
        per_tile = np.add.reduceat(per_column, np.arange(0, info.width, tile_size))
        for tx in range(cols):
            if per_tile[tx] == 0:
                continue
            x = tx * tile_size
            width = min(tile_size, info.width - x)
            tiles.append(Tile(info.atlas_id, info.label, y, x, height, width,
                              tile_window(y, x, height, width, overlap, info.height, info.width)))
    return AtlasPlan(info, source.spec(), (rows, cols), tiles, valid_total)


def plan_tiles(sources: list[FrameSource], tile_size: int, overlap: int = 0) -> TilePlan:
    """The plan of every atlas of ``sources``."""
    return TilePlan(tile_size, overlap, [plan_atlas(s, tile_size, overlap) for s in sources])
