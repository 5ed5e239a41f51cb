"""The lightmap contests' quality metrics, tile by tile, as their evaluation scripts compute them.

Two rule sets, restated from the scripts (docs/HPRC-FORMAT.md has the layouts):

``round 1`` (the first layout; the revised ``Utils.py`` with the entry that published scores)
    * tiles of 256 x 256 from the top-left, the partial tiles at the right and bottom edges included;
    * invalid texels (mask <= 0) of the *decode* are set to 0; the reference keeps its values;
    * a tile is scored when it holds a valid texel (mask >= 127) and its reference is not 0 everywhere
      (the maximum over every texel and channel of the tile, valid or not, is not 0);
    * PSNR: 10 log10(peak^2 / MSE), peak = the largest valid reference value, MSE over the valid texels
      and the three channels;
    * SSIM: torchmetrics (Gaussian 11 x 11, sigma 1.5, reflect padding, border cropped) on the whole tile,
      data range = the reference tile's max - min over every texel and channel;
    * LPIPS (Alex, v0.1) of the two tiles, each min-max normalised to [0, 1] on its own (over every texel
      and channel; a constant tile is passed unchanged), fed to the network as they are
      (``lpips_input="minmax"``). An older copy of the script fed the raw values (``lpips_input="raw"``).

``round 2`` (the virtual-texture release's ``Test.py``)
    * whole tiles of 128 x 128 only: range(H // 128) x range(W // 128); partial edge tiles are not scored;
    * the same test for a tile to be scored, and the same PSNR (numpy, float32);
    * invalid texels of the decode are set to 0 before SSIM and LPIPS; the reference keeps its values
      (its files are dilated: the gutters hold colour);
    * SSIM: scikit-image ``structural_similarity`` per channel (7 x 7 uniform window, float32), data range
      = that channel's max - min over the reference tile, averaged over the three channels;
    * LPIPS: each tile min-max normalised to [0, 1] on its own, with no guard for a constant tile.

What the scripts give for a constant reference tile is kept: its SSIM is NaN (round 1; round 2 where the
decode is constant too, else 0) and its round-2 LPIPS is NaN (0 / 0). A mean over tiles that holds one
NaN is NaN, as the scripts' ``np.mean`` is; :func:`tile_means` also counts them.

Every function takes display values [H, W, 3] (linear radiance) as float tensors and a validity mask
[H, W] bool (True = valid, i.e. mask value 127) or None, and returns one dict per scored tile:
{"top", "left", "psnr" (dB), "ssim", "lpips"} (SSIM only on tiles the window fits, LPIPS only with a
model and on tiles of at least 32 x 32, where the script itself would fail).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torchmetrics.functional.image import structural_similarity_index_measure

ROUND1_TILE = 256
ROUND2_TILE = 128
TORCHMETRICS_SSIM_PAD = 5  # torchmetrics pads by half its 11-tap window (reflect): a side must exceed it
SKIMAGE_SSIM_WINDOW = 7
LPIPS_MIN_SIDE = 32  # AlexNet's five taps need at least 32 x 32 inputs
CONTEST_METRICS = ("psnr", "ssim", "lpips")


def _inputs(pred: torch.Tensor, ref: torch.Tensor, valid: torch.Tensor | None):
    """float32 CPU copies of the decode and reference [H, W, 3] and the mask [H, W] bool."""
    if pred.shape != ref.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"expected two [H, W, 3] images of one shape, got {tuple(pred.shape)} and {tuple(ref.shape)}")
    if valid is None:
        valid = torch.ones(ref.shape[:2], dtype=torch.bool)
    if tuple(valid.shape) != tuple(ref.shape[:2]):
        raise ValueError(f"mask shape {tuple(valid.shape)} != image shape {tuple(ref.shape[:2])}")
    return pred.detach().float().cpu(), ref.detach().float().cpu(), valid.detach().bool().cpu()


def _minmax_or_unchanged(tile: torch.Tensor) -> torch.Tensor:
    """Round 1's normalisation: (x - min) / (max - min) over the whole tile; a constant tile unchanged."""
    low, high = tile.min(), tile.max()
    return (tile - low) / (high - low) if bool(high > low) else tile


def _minmax_unguarded(tile: np.ndarray) -> np.ndarray:
    """Round 2's normalisation: (x - min) / (max - min) over the whole tile; NaN for a constant tile."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (tile - tile.min()) / (tile.max() - tile.min())


def _lpips(model: torch.nn.Module, ref_chw: torch.Tensor, pred_chw: torch.Tensor) -> float:
    device = next(model.parameters()).device
    with torch.no_grad():
        return float(model(ref_chw.to(device).float(), pred_chw.to(device).float())[0])


def round1_tile_scores(pred: torch.Tensor, ref: torch.Tensor, valid: torch.Tensor | None,
                       lpips_model: torch.nn.Module | None = None, metrics: tuple[str, ...] = CONTEST_METRICS,
                       lpips_input: str = "minmax", tile: int = ROUND1_TILE) -> list[dict]:
    """Per-tile scores under round 1's rules (module docstring); ``lpips_input`` "minmax" or "raw"."""
    if lpips_input not in ("minmax", "raw"):
        raise ValueError(f"lpips_input must be 'minmax' or 'raw', not {lpips_input!r}")
    pred, ref, valid = _inputs(pred, ref, valid)
    pred = torch.where(valid[..., None], pred, torch.zeros((), dtype=pred.dtype))
    ref_chw, pred_chw = ref.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None]
    height, width = ref.shape[:2]
    rows = []
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            ys, xs = slice(top, min(top + tile, height)), slice(left, min(left + tile, width))
            tile_valid, ref_tile, pred_tile = valid[ys, xs], ref_chw[..., ys, xs], pred_chw[..., ys, xs]
            if not bool(tile_valid.any()) or float(ref_tile.max()) == 0.0:
                continue
            row: dict = {"top": top, "left": left}
            if "psnr" in metrics:
                ref_v, pred_v = ref_tile[0][:, tile_valid], pred_tile[0][:, tile_valid]
                mse = torch.mean((ref_v - pred_v) ** 2)
                row["psnr"] = float(10 * torch.log10(ref_v.max() ** 2 / mse))
            if "ssim" in metrics and min(ref_tile.shape[-2:]) > TORCHMETRICS_SSIM_PAD:
                data_range = ref_tile.max() - ref_tile.min()
                row["ssim"] = float(structural_similarity_index_measure(ref_tile, pred_tile, data_range=data_range))
            if "lpips" in metrics and lpips_model is not None and min(ref_tile.shape[-2:]) >= LPIPS_MIN_SIDE:
                if lpips_input == "minmax":
                    row["lpips"] = _lpips(lpips_model, _minmax_or_unchanged(ref_tile), _minmax_or_unchanged(pred_tile))
                else:
                    row["lpips"] = _lpips(lpips_model, ref_tile, pred_tile)
            rows.append(row)
    return rows


def round2_tile_scores(pred: torch.Tensor, ref: torch.Tensor, valid: torch.Tensor | None,
                       lpips_model: torch.nn.Module | None = None, metrics: tuple[str, ...] = CONTEST_METRICS,
                       tile: int = ROUND2_TILE) -> list[dict]:
    """Per-tile scores under round 2's (the virtual-texture release's) rules (module docstring)."""
    pred_t, ref_t, valid_t = _inputs(pred, ref, valid)
    ref_np, pred_np, valid_np = ref_t.numpy(), pred_t.numpy(), valid_t.numpy()
    zeroed = np.where(valid_np[..., None], pred_np, np.float32(0.0))
    rows = []
    for i in range(ref_np.shape[0] // tile):
        for j in range(ref_np.shape[1] // tile):
            ys, xs = slice(i * tile, (i + 1) * tile), slice(j * tile, (j + 1) * tile)
            tile_valid, ref_tile = valid_np[ys, xs], ref_np[ys, xs]
            if not tile_valid.any() or ref_tile.max() == 0:
                continue
            row: dict = {"top": ys.start, "left": xs.start}
            if "psnr" in metrics:
                ref_v, pred_v = ref_tile[tile_valid], pred_np[ys, xs][tile_valid]
                with np.errstate(divide="ignore"):
                    row["psnr"] = float(10 * np.log10(np.max(ref_v) ** 2 / np.mean((ref_v - pred_v) ** 2)))
            if "ssim" in metrics:
                with np.errstate(divide="ignore", invalid="ignore"):
                    row["ssim"] = float(np.mean([
                        structural_similarity(ref_tile[..., c], zeroed[ys, xs, c],
                                              data_range=ref_tile[..., c].max() - ref_tile[..., c].min())
                        for c in range(3)]))
            if "lpips" in metrics and lpips_model is not None:
                ref_n = torch.from_numpy(_minmax_unguarded(ref_tile)).permute(2, 0, 1)[None]
                pred_n = torch.from_numpy(_minmax_unguarded(zeroed[ys, xs])).permute(2, 0, 1)[None]
                row["lpips"] = _lpips(lpips_model, ref_n, pred_n)
            rows.append(row)
    return rows


def tile_means(tiles: list[dict]) -> dict:
    """A frame's scores from its tiles: each metric's mean (NaN if a tile's value is NaN, as the scripts'
    ``np.mean``), "tiles" {metric: tiles scored} and, where any, "nan_tiles" {metric: NaN tiles}. A frame
    with no tile that qualifies adds nothing to the scripts' lists: it gets no metric and "tiles" {}."""
    return pooled_means([{**tile, "tiles": {key: 1 for key in CONTEST_METRICS if key in tile},
                          "nan_tiles": {key: 1 for key in CONTEST_METRICS if key in tile and math.isnan(tile[key])}}
                         for tile in tiles])


def pooled_means(rows: list[dict]) -> dict:
    """The mean over every tile of several frames (what the scripts average: one list of tiles for the whole
    dataset), from frame rows holding their tile means and "tiles" counts; "tiles" and "nan_tiles" summed."""
    out: dict = {}
    counts: dict = {}
    nans: dict = {}
    for key in CONTEST_METRICS:
        pairs = [(r[key], r["tiles"][key]) for r in rows if key in r and key in r.get("tiles", {})]
        total = sum(n for _, n in pairs)
        if total:
            out[key] = math.nan if any(math.isnan(v) for v, _ in pairs) else \
                float(sum(v * n for v, n in pairs) / total)
            counts[key] = total
            bad = sum(r.get("nan_tiles", {}).get(key, 0) for r in rows)
            if bad:
                nans[key] = bad
    out["tiles"] = counts
    if nans:
        out["nan_tiles"] = nans
    return out
