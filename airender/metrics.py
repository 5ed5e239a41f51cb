"""Image quality metrics with validity masks: PSNR, SSIM (torchmetrics), FLIP (flip-evaluator), LPIPS.

All functions take display-space images [H, W, 3] (float tensors): sRGB values in [0, 1] for LDR data,
linear radiance for HDR data, and an optional mask [H, W] bool (True = valid). A mask with no valid
texel is an error.

LDR protocol: PSNR with peak 1; SSIM with data range 1 (Gaussian window 11, sigma 1.5); LPIPS on inputs
scaled to [-1, 1]; FLIP in LDR mode.
HDR protocol (the contest's, see docs): frames are cut into 256 x 256 tiles; tiles with no valid texel
or an all-zero reference are skipped; invalid texels of the prediction are set to 0; per tile PSNR uses
the tile's max valid reference value as peak, SSIM uses data range = tile max - tile min, LPIPS sees the
raw values; the frame's score is the mean over tiles. FLIP runs in HDR mode on the whole frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from airender.nn.lpips import LPIPSAlex

SSIM_BORDER = 5  # half of the 11-tap window: the border torchmetrics leaves out of its mean
HPRC_TILE = 256
LPIPS_MIN_SIZE = 32  # AlexNet's five taps need at least 32 x 32 inputs
METRIC_NAMES = ("psnr", "ssim", "lpips", "flip")


def _check(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if pred.shape != ref.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"expected two [H, W, 3] images of one shape, got {tuple(pred.shape)} and {tuple(ref.shape)}")
    if mask is None:
        return torch.ones(pred.shape[:2], dtype=torch.bool, device=pred.device)
    if tuple(mask.shape) != tuple(pred.shape[:2]):
        raise ValueError(f"mask shape {tuple(mask.shape)} != image shape {tuple(pred.shape[:2])}")
    if not bool(mask.any()):
        raise ValueError("the mask has no valid texel")
    return mask.to(pred.device)


def _zero_invalid(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return image if bool(mask.all()) else image * mask[..., None].to(image.dtype)


def psnr(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None, peak: float = 1.0) -> float:
    """PSNR in dB over valid texels: 10 log10(peak^2 / MSE); +inf for identical images."""
    mask = _check(pred, ref, mask)
    mse = float(((pred.double() - ref.double()) ** 2)[mask].mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(peak * peak / mse)


def ssim_map(pred: torch.Tensor, ref: torch.Tensor, data_range: float) -> torch.Tensor:
    """Per-pixel SSIM [B, H, W] (mean over channels) for batches [B, 3, H, W]; differentiable."""
    _, full = structural_similarity_index_measure(pred, ref, data_range=data_range, reduction="none",
                                                  return_full_image=True)
    return full.mean(dim=1)


def masked_ssim_mean(smap: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of an SSIM map [B, H, W] over its interior (the torchmetrics convention: a 5-pixel border is
    left out) and, if given, over valid texels ``mask`` ([H, W] or [B, H, W] bool); returns [B].
    An image whose interior holds no valid texel is averaged over all its valid texels."""
    height, width = smap.shape[-2:]
    interior = torch.zeros(height, width, dtype=torch.bool, device=smap.device)
    if height > 2 * SSIM_BORDER and width > 2 * SSIM_BORDER:
        interior[SSIM_BORDER:-SSIM_BORDER, SSIM_BORDER:-SSIM_BORDER] = True
    else:
        interior[:] = True
    keep = interior.expand_as(smap)
    if mask is not None:
        mask = mask.expand_as(smap)
        keep = keep & mask
        empty = keep.sum(dim=(-2, -1), keepdim=True) == 0
        keep = torch.where(empty, mask, keep)
    return (smap * keep).sum(dim=(-2, -1)) / keep.sum(dim=(-2, -1)).clamp_min(1)


def ssim(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None, data_range: float = 1.0) -> float:
    """SSIM (Gaussian 11 x 11, sigma 1.5, torchmetrics) averaged over valid interior texels; 1 = identical.
    Invalid texels are zeroed in both images first, so whatever they hold cannot leak into the windows."""
    mask = _check(pred, ref, mask)
    pred, ref = _zero_invalid(pred, mask), _zero_invalid(ref, mask)
    smap = ssim_map(pred.permute(2, 0, 1)[None].float(), ref.permute(2, 0, 1)[None].float(), data_range)
    return float(masked_ssim_mean(smap, mask)[0])


def flip(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None, hdr: bool = False) -> float:
    """Mean FLIP error (NVIDIA flip-evaluator) over valid texels (invalid ones zeroed in both images first);
    0 = identical, 1 = maximal."""
    import flip_evaluator

    mask = _check(pred, ref, mask)
    pred, ref = _zero_invalid(pred, mask), _zero_invalid(ref, mask)
    ref_np = np.ascontiguousarray(ref.detach().float().cpu().numpy())
    pred_np = np.ascontiguousarray(pred.detach().float().cpu().numpy())
    if not hdr:
        ref_np, pred_np = np.clip(ref_np, 0.0, 1.0), np.clip(pred_np, 0.0, 1.0)
    error_map = flip_evaluator.evaluate(ref_np, pred_np, "HDR" if hdr else "LDR", applyMagma=False,
                                        computeMeanError=False)[0]
    return float(np.asarray(error_map)[..., 0][mask.cpu().numpy()].mean())


def lpips_distance(model: LPIPSAlex, pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None,
                   scale_to_unit: bool = True) -> float:
    """LPIPS-Alex between two images; invalid texels are zeroed in both. ``scale_to_unit`` maps [0, 1]
    sRGB to the [-1, 1] input range (LDR); HDR tiles are fed raw, as the contest does."""
    mask = _check(pred, ref, mask)
    device = next(model.parameters()).device
    x, y = _zero_invalid(pred, mask).permute(2, 0, 1)[None], _zero_invalid(ref, mask).permute(2, 0, 1)[None]
    if scale_to_unit:
        x, y = x * 2.0 - 1.0, y * 2.0 - 1.0
    with torch.no_grad():
        return float(model(x.to(device).float(), y.to(device).float())[0])


def _hprc_tiles(height: int, width: int, tile: int = HPRC_TILE):
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            yield slice(top, min(top + tile, height)), slice(left, min(left + tile, width))


@dataclass
class MetricSuite:
    """Which metrics to compute per frame: any of ``METRIC_NAMES``; LPIPS only when a model is given
    (otherwise ``lpips_unavailable_reason`` says why)."""

    lpips_model: LPIPSAlex | None = None
    metrics: tuple[str, ...] = METRIC_NAMES
    lpips_unavailable_reason: str = ""

    def wants(self, name: str) -> bool:
        return name in self.metrics and (name != "lpips" or self.lpips_model is not None)

    def _lpips_fits(self, image: torch.Tensor) -> bool:
        """LPIPS-Alex needs at least LPIPS_MIN_SIZE texels per side; smaller images get no LPIPS number."""
        return min(image.shape[:2]) >= LPIPS_MIN_SIZE

    def _score(self, pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, peak: float, data_range: float,
               lpips_unit: bool) -> dict:
        out = {}
        if self.wants("psnr"):
            out["psnr"] = psnr(pred, ref, mask, peak=peak)
        if self.wants("ssim"):
            out["ssim"] = ssim(pred, ref, mask, data_range=data_range)
        if self.wants("lpips") and self._lpips_fits(pred):
            out["lpips"] = lpips_distance(self.lpips_model, pred, ref, mask, scale_to_unit=lpips_unit)
        return out

    def frame(self, pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None, hdr: bool) -> dict:
        """Metrics of one frame pair (display space [H, W, 3]): {'psnr', 'ssim', 'lpips', 'flip'} as asked."""
        full_mask = _check(pred, ref, mask)
        pred, ref = pred.detach().float(), ref.detach().float()
        if not hdr:
            pred = pred.clamp(0.0, 1.0)
            out = self._score(pred, ref, full_mask, 1.0, 1.0, lpips_unit=True)
        else:
            pred = pred.clamp_min(0.0) * full_mask[..., None]
            rows = []
            for ys, xs in _hprc_tiles(*pred.shape[:2]):
                tile_mask, tile_ref = full_mask[ys, xs], ref[ys, xs]
                if not bool(tile_mask.any()):
                    continue
                valid = tile_ref[tile_mask]
                peak, low = float(valid.max()), float(valid.min())
                if peak == 0.0 and low == 0.0:
                    continue
                rows.append(self._score(pred[ys, xs], tile_ref, tile_mask, peak, max(peak - low, 1e-12),
                                        lpips_unit=False))
            if not rows:
                raise ValueError("no tile with a valid, non-zero reference")
            out = {key: float(np.mean([r[key] for r in rows if key in r])) for key in set().union(*rows)}
        if self.wants("flip"):
            out["flip"] = flip(pred, ref, full_mask, hdr=hdr)
        return out


def mean_rows(rows: list[dict]) -> dict:
    """Average each metric over rows (frames); keys missing from a row are skipped."""
    keys = [k for k in METRIC_NAMES if any(k in r for r in rows)]
    return {k: float(np.mean([r[k] for r in rows if k in r])) for k in keys}
