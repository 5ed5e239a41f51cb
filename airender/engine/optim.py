"""The optimiser, the learning-rate schedule and the callbacks of a run, from its TrainConfig."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from airender.config import TrainConfig
from airender.engine.callbacks import (BestCheckpoint, Callback, EarlyStopping, JSONLLogger, LastCheckpoint, PlateauLR,
                                       ProgressBar, TensorBoardLogger, ValidationCallback, monitor_mode)


def make_optimizer(field: torch.nn.Module, tcfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over the field's parameter groups (feature tables at --grid_lr)."""
    groups = field.param_groups(tcfg.lr, tcfg.grid_lr, tcfg.weight_decay)
    if tcfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    return torch.optim.Adam(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)


def lr_factor(step: int, tcfg: TrainConfig, total_steps: int, scale: float = 1.0) -> float:
    """Learning rate / --lr at ``step``: linear warm-up, then the schedule (cosine down to --lr_min_ratio over
    the planned steps, or constant), times ``scale`` (the plateau schedule's and the NaN guard's halvings)."""
    if tcfg.warmup_steps and step < tcfg.warmup_steps:
        return scale * (step + 1) / tcfg.warmup_steps
    if tcfg.lr_schedule != "cosine":
        return scale
    span = max(total_steps - tcfg.warmup_steps, 1)
    progress = min(max(step - tcfg.warmup_steps, 0) / span, 1.0)
    cosine = tcfg.lr_min_ratio + (1.0 - tcfg.lr_min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return scale * cosine


def make_callbacks(tcfg: TrainConfig, out_dir: Path, extra: list[Callback] | None) -> tuple[list[Callback],
                                                                                            BestCheckpoint]:
    """(callbacks in calling order, the best-checkpoint callback among them). The log line of an epoch is
    written before its last.ckpt: after a kill, every epoch whose checkpoint exists has its line (lines past
    the checkpoint are dropped on resume)."""
    mode = monitor_mode(tcfg.monitor)
    best = BestCheckpoint(out_dir / "best.ckpt", monitor=tcfg.monitor, mode=mode)
    callbacks: list[Callback] = [ValidationCallback(tcfg.val_every, tcfg.val_every_steps), best]
    if tcfg.lr_schedule == "plateau":
        callbacks.append(PlateauLR(tcfg.monitor, mode, tcfg.plateau_patience))
    if tcfg.early_stop_patience > 0:
        callbacks.append(EarlyStopping(tcfg.monitor, mode, tcfg.early_stop_patience))
    callbacks += [JSONLLogger(out_dir / "train_log.jsonl"), LastCheckpoint(out_dir / "last.ckpt")]
    if tcfg.tensorboard:
        callbacks.append(TensorBoardLogger(out_dir / "tb"))
    if tcfg.progress:
        callbacks.append(ProgressBar())
    return callbacks + list(extra or []), best
