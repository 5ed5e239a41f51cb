"""Named, weighted loss terms assembled from a LossConfig.

    loss = loss_l2_w * MSE + loss_ssim_w * (1 - SSIM) + loss_lpips_w * LPIPS
           (+ loss_source_w * MSE of each light source, with the lighting split by source)

MSE is taken in the training space over the batch's independent random texels. SSIM and LPIPS need
image structure, so they apply in patch mode only (``--patch_size P``): the batch's patch texels are
reshaped to [B, 3, P, P] patches. The patch texels stay out of the MSE: a few patches are a few highly
correlated samples, and giving them the MSE's weight made its gradient so noisy that training slowed
several-fold (measured on the courtyard renders).
LPIPS runs every ``lpips_freq`` steps. Perceptual terms see a display view of the values: the sRGB
values themselves for LDR data; for HDR data the tone-mapped view ``(x / (1 + x)) ** (1 / 2.2)`` of the
linear radiance x (Reinhard, then a display gamma), which lies in [0, 1). Invalid texels (a mask) are
left out of every term: they are excluded from the MSE mean, from the SSIM average, and zeroed in both
images before LPIPS.

Each term is returned by name, already weighted, so the trainer can sum and log them.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from airender.config import LossConfig
from airender.data.samplers import PixelBatch
from airender.data.sequence import ValueTransform
from airender.metrics import LPIPS_MIN_SIZE, masked_ssim_mean, ssim_map
from airender.nn.lpips import LPIPSAlex


def mse_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over [N, 3] texels (training space); ``valid`` [N] bool leaves texels out.

    >>> mse_loss(torch.zeros(2, 3), torch.ones(2, 3))
    tensor(1.)
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    squared = (pred.float() - target.float()) ** 2
    if valid is None:
        return squared.mean()
    return (squared * valid[:, None]).sum() / (valid.sum().clamp_min(1) * squared.shape[1])


def perceptual_view(train_values: torch.Tensor, transform: ValueTransform) -> torch.Tensor:
    """Training-space values -> the [0, 1] view SSIM and LPIPS see (see the module docstring)."""
    if transform.name == "identity":
        return train_values
    linear = transform.to_linear(train_values).clamp_min(0.0)
    return (linear / (1.0 + linear)).clamp_min(1e-8) ** (1.0 / 2.2)


def to_patches(values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[B * P * P, C] in patch-major, row-major order -> [B, C, P, P]."""
    channels = values.shape[1]
    return values.reshape(-1, patch_size, patch_size, channels).permute(0, 3, 1, 2)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """1 - mean SSIM of patches [B, 3, P, P] with values in [0, 1]; ``valid`` [B, P, P] bool or None."""
    return 1.0 - masked_ssim_mean(ssim_map(pred, target, data_range=1.0), valid).mean()


def lpips_loss(model: LPIPSAlex, pred: torch.Tensor, target: torch.Tensor,
               valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean LPIPS-Alex of patches [B, 3, P, P] in [0, 1] (upsampled to 32 x 32 when smaller)."""
    if valid is not None:
        keep = valid[:, None].to(pred.dtype)
        pred, target = pred * keep, target * keep
    size = pred.shape[-1]
    if size < LPIPS_MIN_SIZE:
        pred = F.interpolate(pred, size=LPIPS_MIN_SIZE, mode="bilinear", align_corners=False)
        target = F.interpolate(target, size=LPIPS_MIN_SIZE, mode="bilinear", align_corners=False)
    return model(pred * 2.0 - 1.0, target * 2.0 - 1.0).mean()


def lpips_loss_on(cfg: LossConfig, patch_size: int) -> bool:
    """Whether training uses the LPIPS loss: it needs a weight, a frequency and patches."""
    return patch_size > 0 and cfg.loss_lpips_w > 0 and cfg.lpips_freq > 0


class LossAssembler:
    """Builds the dict of weighted loss terms for one batch.

    ``__call__(pred, batch, step)``: pred [N, 3] in the training space for the texels of ``batch``.
    Returns {"mse": ..., "ssim": ..., "lpips": ...} with each term multiplied by its weight; terms whose
    weight is 0, or that do not apply (SSIM/LPIPS without patches, LPIPS off this step), are left out.
    """

    def __init__(self, cfg: LossConfig, transform: ValueTransform, patch_size: int = 0,
                 lpips_model: LPIPSAlex | None = None, total_steps: int = 1):
        if cfg.loss_lpips_w > 0 and cfg.lpips_freq <= 0:
            raise ValueError("--loss_lpips_w > 0 needs --lpips_freq N (LPIPS every N steps; 0 = off)")
        if lpips_loss_on(cfg, patch_size) and lpips_model is None:
            raise ValueError("--loss_lpips_w > 0 needs LPIPS weights (--lpips_weights FILE or "
                             "$AIRENDER_LPIPS_WEIGHTS)")
        self.cfg, self.transform, self.patch_size, self.lpips_model = cfg, transform, patch_size, lpips_model
        self.total_steps = max(total_steps, 1)

    def perceptual_scale(self, step: int) -> float:
        """0 before --perceptual_start, then a linear ramp to 1 over --perceptual_ramp (fractions of the run).

        Perceptual terms from the first step pull a freshly initialised field towards the baseline frame
        (its delta starts as high-frequency noise, which SSIM punishes hardest), where MSE gets stuck; once
        the field fits the colours, SSIM/LPIPS refine structure instead.
        """
        progress = step / self.total_steps
        start, ramp = self.cfg.perceptual_start, self.cfg.perceptual_ramp
        if progress < start:
            return 0.0
        return 1.0 if ramp <= 0 else min(1.0, (progress - start) / ramp)

    @property
    def uses_lpips(self) -> bool:
        return lpips_loss_on(self.cfg, self.patch_size)

    def __call__(self, pred: torch.Tensor, batch: PixelBatch, step: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        terms: dict[str, torch.Tensor] = {}
        if cfg.loss_l2_w:
            texels = pred.shape[0] - batch.patch_texels
            valid = None if batch.valid is None else batch.valid[:texels]
            terms["mse"] = cfg.loss_l2_w * mse_loss(pred[:texels], batch.target[:texels], valid)
        scale = self.perceptual_scale(step)
        if batch.num_patches and scale > 0 and (cfg.loss_ssim_w or self.uses_lpips):
            size, tail = batch.patch_size, batch.patch_texels
            pred_view = to_patches(perceptual_view(pred[-tail:].float(), self.transform), size)
            target_view = to_patches(perceptual_view(batch.target[-tail:].float(), self.transform), size)
            valid = None if batch.valid is None else batch.valid[-tail:].reshape(-1, size, size)
            if cfg.loss_ssim_w:
                terms["ssim"] = scale * cfg.loss_ssim_w * ssim_loss(pred_view, target_view, valid)
            if self.uses_lpips and step % cfg.lpips_freq == 0:
                terms["lpips"] = scale * cfg.loss_lpips_w * lpips_loss(self.lpips_model, pred_view, target_view,
                                                                       valid)
        if not terms:
            raise ValueError("every loss weight is 0: nothing to train")
        return terms

    def source_terms(self, pred: torch.Tensor, batch: PixelBatch, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """With the lighting split by source: {"mse_<name>": loss_source_w x MSE of that source} over the
        batch's random texels (patch texels and invalid texels left out, as for "mse").

        pred: [N, S, 3] each source in the training space (as gated by time, before the clamp at 0 that
        decoding applies: the clamp would stop the gradient of a source predicted below 0 where it should
        be lit); ``batch.components`` [N, S, 3] the targets; names: the S source names. Empty when the
        weight is 0.
        """
        if not self.cfg.loss_source_w:
            return {}
        if batch.components is None or batch.components.shape != pred.shape or pred.shape[1] != len(names):
            got = None if batch.components is None else tuple(batch.components.shape)
            raise ValueError(f"source predictions {tuple(pred.shape)} and targets {got} do not match {len(names)} "
                             f"sources")
        texels = pred.shape[0] - batch.patch_texels
        valid = None if batch.valid is None else batch.valid[:texels]
        return {f"mse_{name}": self.cfg.loss_source_w * mse_loss(pred[:texels, s], batch.components[:texels, s], valid)
                for s, name in enumerate(names)}
