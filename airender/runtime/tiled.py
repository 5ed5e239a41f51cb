"""One lightmap decoded from the packs of its tiles (a tiled run, ``airender train --tile_size N``).

Each tile of the atlas was fitted as its own field over a window of the atlas (the tile's rect, padded
by the run's ``--tile_overlap`` and clipped at the atlas edges); its pack decodes that window. The tile
entries (from ``lightmaps.json`` of a contest export) say where: ``{y, x, height, width, window: [top,
left, h, w], pack}``. Texels are routed to their tile arithmetically, (y // tile_size, x // tile_size),
so a texel costs the same wherever it is; texels of tiles that were not fitted (no valid texel) are 0.
numpy only, like the rest of this package.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .model import FieldModel
from .ops import F32


class TiledFieldModel:
    """The surface of :class:`FieldModel` the contest decoder uses, over the tiles of one atlas.

    ``tiles``: [(entry, FieldModel of the entry's window)]; ``height`` x ``width``: the atlas;
    ``tile_size``: the run's tile size. ``decode(t)`` -> float32 [H, W, 3] display values assembled
    from the tiles' own rects; ``query(y, x, t)`` -> [N, 3]; ``texel_cache_bytes`` is passed to every
    tile model (each keeps its own texels' time-invariant values when they fit)."""

    def __init__(self, tiles: list[tuple[dict, FieldModel]], height: int, width: int, tile_size: int):
        self.height, self.width, self.tile_size = int(height), int(width), int(tile_size)
        if self.tile_size < 1:
            raise ValueError(f"tile_size {tile_size}: must be positive")
        self.columns = -(-self.width // self.tile_size)
        self.tiles: list[tuple[dict, FieldModel]] = []
        self._tile_at: dict[int, int] = {}
        for entry, model in tiles:
            y, x, h, w = (int(entry[k]) for k in ("y", "x", "height", "width"))
            top, left, win_h, win_w = (int(v) for v in entry["window"])
            if y % self.tile_size or x % self.tile_size or not (0 <= y < self.height and 0 <= x < self.width):
                raise ValueError(f"tile y {y}, x {x}: not at a tile corner of the {self.width}x{self.height} atlas")
            if (model.height, model.width) != (win_h, win_w):
                raise ValueError(f"tile y {y}, x {x}: its model decodes {model.width}x{model.height}, its window is "
                                 f"{win_w}x{win_h}")
            if not (top <= y and left <= x and y + h <= top + win_h and x + w <= left + win_w
                    and h <= self.tile_size and w <= self.tile_size):
                raise ValueError(f"tile y {y}, x {x}: its {w}x{h} rect is not inside its window {entry['window']}")
            code = (y // self.tile_size) * self.columns + x // self.tile_size
            if code in self._tile_at:
                raise ValueError(f"tile y {y}, x {x}: given twice")
            self._tile_at[code] = len(self.tiles)
            self.tiles.append((entry, model))
        self._texel_cache_bytes = 0

    @property
    def texel_cache_bytes(self) -> int:
        return self._texel_cache_bytes

    @texel_cache_bytes.setter
    def texel_cache_bytes(self, value: int) -> None:
        self._texel_cache_bytes = int(value)
        for _, model in self.tiles:
            model.texel_cache_bytes = self._texel_cache_bytes

    @property
    def nbytes(self) -> int:
        """Bytes of every tile's pack."""
        return sum(int(model.nbytes) for _, model in self.tiles)

    def texel_cache(self) -> list:
        """Build every tile's texel cache (see :meth:`FieldModel.texel_cache`); their list (None where a
        tile's does not fit)."""
        return [model.texel_cache() for _, model in self.tiles]

    def query(self, y, x, t) -> np.ndarray:
        """Display values [N, 3] at integer texels (y [N], x [N]) of the atlas at hours t [N] (or one hour
        for all): each texel goes to its tile's model at its place in the tile's window; 0 where no tile
        was fitted."""
        y, x, t = ops.texel_arguments(y, x, t, self.height, self.width)
        out = np.zeros((y.size, 3), F32)
        if y.size == 0:
            return out
        code = (y // self.tile_size) * self.columns + x // self.tile_size
        order = np.argsort(code, kind="stable")
        codes, starts = np.unique(code[order], return_index=True)
        bounds = np.append(starts, order.size)
        for k, value in enumerate(codes.tolist()):
            i = self._tile_at.get(value)
            if i is None:
                continue
            entry, model = self.tiles[i]
            rows = order[bounds[k]:bounds[k + 1]]
            top, left = int(entry["window"][0]), int(entry["window"][1])
            out[rows] = model.query(y[rows] - top, x[rows] - left, t[rows])
        return out

    def decode(self, t: float) -> np.ndarray:
        """The atlas at hour ``t`` as float32 [H, W, 3] display values: each tile's window decoded and
        cropped to the tile's own rect; 0 where no tile was fitted."""
        out = np.zeros((self.height, self.width, 3), F32)
        for entry, model in self.tiles:
            y, x, h, w = (int(entry[k]) for k in ("y", "x", "height", "width"))
            top, left = int(entry["window"][0]), int(entry["window"][1])
            out[y:y + h, x:x + w] = model.decode(t)[y - top:y - top + h, x - left:x - left + w]
        return out
