"""Named, weighted loss terms assembled from a LossConfig.

``loss = loss_l2_w * MSE``; every term is returned by name (already weighted) so the trainer can sum
and log each.
"""
from __future__ import annotations

import torch

from airender.config import LossConfig


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements of two tensors of one shape (training space)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    return torch.mean((pred.float() - target.float()) ** 2)


class LossAssembler:
    """Builds the dict of weighted loss terms for one batch.

    ``__call__(pred, target, step)``: pred, target [B, 3] texels in the training space.
    Returns {"mse": w_l2 * MSE}; terms with weight 0 are left out.
    """

    def __init__(self, cfg: LossConfig):
        self.cfg = cfg

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if self.cfg.loss_l2_w:
            terms["mse"] = self.cfg.loss_l2_w * mse_loss(pred, target)
        if not terms:
            raise ValueError("every loss weight is 0: nothing to train")
        return terms
