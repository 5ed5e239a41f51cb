"""Validation: decode held-in, held-out or extra frames on a strided texel lattice and score them.

Validation at downsample N evaluates the texels (N * i + N // 2, N * j + N // 2): the ground truth is
exact (no resampling), the baseline lookup is exact, and the cost falls by N^2. No gradients flow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from airender.data.samplers import pixel_centres
from airender.metrics import MetricSuite, mean_rows


TRAINED_GROUP = "hours"  # the validation group of trained hours; the others (holdout, extra) are held out


@dataclass
class ValidationFrames:
    """A named group of ground-truth frames to validate on.

    frames: [K, H, W, 3] display space at the training resolution; times: [K] hours; mask: [H, W] or None.
    """

    name: str
    frames: torch.Tensor
    times: torch.Tensor
    mask: torch.Tensor | None


def lattice(height: int, width: int, step: int, device: torch.device) -> tuple[torch.Tensor, int, int]:
    """Flat pixel indices of the strided lattice [h * w] and its size (h, w)."""
    ys = torch.arange(step // 2, height, step, device=device)
    xs = torch.arange(step // 2, width, step, device=device)
    return (ys[:, None] * width + xs[None, :]).reshape(-1), ys.numel(), xs.numel()


class Validator:
    """Scores a field on validation groups at ``downsample``.

    ``suite`` selects the metrics (default: PSNR only; LPIPS needs the suite to hold a model).
    Returns {"<group>/<metric>": mean, "<group>/per_hour": {hour: {metric: value}}, "<metric>": mean over the
    frames of the trained hours (the group "hours"; every group's frames when there is no such group), and,
    with more than one group, "all/<metric>": mean over every validated frame}. The bare "<metric>" is what
    ``--monitor`` reads by default, so that held-out frames never choose a checkpoint. Frames are decoded
    through the field's time-invariant cache.
    """

    def __init__(self, groups: list[ValidationFrames], downsample: int, is_hdr: bool,
                 suite: MetricSuite | None = None):
        self.groups = [g for g in groups if g.frames.shape[0] > 0]
        self.downsample = max(1, downsample)
        self.is_hdr = is_hdr
        self.suite = suite or MetricSuite(metrics=("psnr",))

    @torch.no_grad()
    def __call__(self, field: torch.nn.Module) -> dict:
        was_training = field.training
        field.eval()
        results: dict = {}
        all_rows: list[dict] = []
        trained_rows: list[dict] = []
        caches: dict = {}  # the groups share the training resolution: one time-invariant cache per lattice
        for group in self.groups:
            _, height, width, _ = group.frames.shape
            step = self.downsample
            pix, h, w = lattice(height, width, step, group.frames.device)
            if group.mask is not None and not bool(group.mask.reshape(-1)[pix].any()):
                step = 1  # the strided lattice misses every valid texel of a sparse mask
                pix, h, w = lattice(height, width, step, group.frames.device)
            if step not in caches:
                caches[step] = field.prepare(pixel_centres(pix, height, width), pix)
            cache = caches[step]
            mask = None if group.mask is None else group.mask.reshape(-1)[pix].reshape(h, w)
            rows = {}
            for k in range(group.frames.shape[0]):
                pred = field.transform.to_display(field.decode(cache, float(group.times[k])).float()).reshape(h, w, 3)
                truth = group.frames[k].reshape(-1, 3)[pix].reshape(h, w, 3)
                rows[float(group.times[k])] = self.suite.frame(pred, truth, mask, self.is_hdr)
            group_rows = list(rows.values())
            all_rows += group_rows
            if group.name == TRAINED_GROUP:
                trained_rows += group_rows
            for key, value in mean_rows(group_rows).items():
                results[f"{group.name}/{key}"] = value
            results[f"{group.name}/per_hour"] = rows
        for key, value in mean_rows(trained_rows or all_rows).items():
            results[key] = value
        if len(self.groups) > 1:
            for key, value in mean_rows(all_rows).items():
                results[f"all/{key}"] = value
        if was_training:
            field.train()
        return results


def is_better(value: float, best: float | None, mode: str) -> bool:
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best
