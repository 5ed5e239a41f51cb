"""Seams: reconstruction quality on a band of texels along tile borders against the tile interiors.

Independent fields meet at tile borders; where they disagree, a seam shows. :func:`seam_report` scores
predicted frames against the ground truth on two sets of valid texels: the *border band* (texels within
``band`` texels of a border between two tiles of the grid) and the *interior* (every other valid texel),
as PSNR in the training space (sRGB values for LDR data, log(1 + radiance) for HDR data) with one peak
for both, the largest valid ground-truth value: the two PSNRs differ only by their mean squared errors.
"""
from __future__ import annotations

import math

import torch

from airender.data.sequence import ValueTransform
from airender.fileio import write_json_atomic


def border_band(height: int, width: int, tile_size: int, band: int) -> torch.Tensor:
    """[H, W] bool: texels within ``band`` texels of a border between two tiles of a ``tile_size`` grid
    (the atlas edge is no border)."""
    def near(n: int) -> torch.Tensor:
        k = torch.arange(n)
        offset = k % tile_size
        after_border = (offset < band) & (k >= tile_size)               # first rows of a tile below another
        before_border = (tile_size - offset <= band) & (k - offset + tile_size < n)  # last rows above another
        return after_border | before_border

    return near(height)[:, None] | near(width)[None, :]


def seam_report(predictions: list[torch.Tensor], truths: list[torch.Tensor], mask: torch.Tensor | None,
                tile_size: int, transform: ValueTransform, band: int = 2) -> dict:
    """PSNR (dB) of the border band and of the interior over every frame (see the module docstring).

    predictions, truths: [H, W, 3] display-space frames (same order); mask: [H, W] bool or None (all
    valid); tile_size, band: texels. Returns {"band", "border_psnr", "interior_psnr", "difference_db"
    (interior - border), "border_texels", "interior_texels", "peak"}; a PSNR is +inf when that set matches
    exactly and NaN when it is empty.
    """
    if not predictions:
        raise ValueError("no frames to score")
    height, width = truths[0].shape[:2]
    valid = torch.ones(height, width, dtype=torch.bool) if mask is None else mask.cpu().bool()
    border = border_band(height, width, tile_size, band) & valid
    interior = valid & ~border
    sums = {"border": 0.0, "interior": 0.0}
    peak = 0.0
    for pred, truth in zip(predictions, truths):
        p = transform.to_train(pred.detach().cpu().double())
        r = transform.to_train(truth.detach().cpu().double())
        if bool(valid.any()):
            peak = max(peak, float(r[valid].max()))
        error = ((p - r) ** 2).sum(dim=2)
        sums["border"] += float(error[border].sum())
        sums["interior"] += float(error[interior].sum())
    counts = {"border": int(border.sum()) * 3 * len(truths), "interior": int(interior.sum()) * 3 * len(truths)}

    def psnr(name: str) -> float:
        if counts[name] == 0:
            return math.nan
        mse = sums[name] / counts[name]
        return math.inf if mse == 0 else 10.0 * math.log10(max(peak, 1e-12) ** 2 / mse)

    border_psnr, interior_psnr = psnr("border"), psnr("interior")
    return {"band": band, "border_psnr": border_psnr, "interior_psnr": interior_psnr,
            "difference_db": interior_psnr - border_psnr, "border_texels": int(border.sum()),
            "interior_texels": int(interior.sum()), "peak": peak}


def seam_line(report: dict) -> str:
    """One line for the console."""
    return (f"seams: PSNR {report['border_psnr']:.2f} dB on the {report['band']}-texel band along tile borders "
            f"({report['border_texels']:,} texels) vs {report['interior_psnr']:.2f} dB inside the tiles "
            f"({report['interior_texels']:,} texels): {report['difference_db']:+.2f} dB (training space)")


def eval_seams(atlas, report, groups: list, out_dir, band: int = 2) -> str:
    """The seam report of an evaluated tiled atlas (``report`` from airender.evaluate, kept images; the
    masks of ``groups``), written to ``out_dir/seams.json``; returns its console line."""
    from pathlib import Path

    masks = {name: sequence.mask for name, sequence in groups}
    keys = [k for k in report.predictions if k[0] in masks]
    if not keys:
        return "seams: no decoded frames to score"
    mask = masks[keys[0][0]]
    result = seam_report([report.predictions[k] for k in keys], [report.truths[k] for k in keys], mask,
                         atlas.tile_size, atlas.transform, band)
    result["frames"] = len(keys)
    write_json_atomic(Path(out_dir) / "seams.json", result)
    return seam_line(result)
