"""The training loop: on-device batches, named loss terms, callbacks, checkpoints and resume."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from airender.config import ExperimentConfig
from airender.data.samplers import PixelSampler
from airender.data.sequence import TODSequence, transform_for
from airender.engine.callbacks import (BestCheckpoint, Callback, JSONLLogger, LastCheckpoint, ProgressBar,
                                       ValidationCallback)
from airender.engine.checkpoint import checkpoint_dict, read_checkpoint, save_checkpoint
from airender.engine.validation import ValidationFrames, Validator
from airender.errors import InputError
from airender.field import DataDescription, build_field
from airender.losses import LossAssembler


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return device


def out_dir_for(config: ExperimentConfig) -> Path:
    return Path(config.out_dir) if config.out_dir else Path("runs") / config.name


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    seconds: float
    samples_per_s: float
    best_metric: float | None
    final_validation: dict


class Trainer:
    """Trains a TODField on a TODSequence.

    Everything the run needs is checked and built in the constructor, before anything is written:
    bad input (a baseline or hold-out hour not in the data, ...) raises InputError with nothing on disk.
    ``fit()`` creates ``out_dir`` and writes config.json, baseline.png, train_log.jsonl, best.ckpt and
    last.ckpt (both atomically).
    """

    def __init__(self, config: ExperimentConfig, sequence: TODSequence, out_dir: Path | None = None,
                 extra_callbacks: list[Callback] | None = None):
        self.config = config
        tcfg = config.train
        if tcfg.batch_size < 1 or tcfg.samples_per_epoch < 1 or tcfg.epochs < 1:
            raise InputError("--batch_size, --samples_per_epoch and --epochs must be positive")
        self.device = resolve_device(tcfg.device)
        self.out_dir = Path(out_dir) if out_dir is not None else out_dir_for(config)
        self.sequence = sequence.to(self.device)
        seq = self.sequence
        self.transform = transform_for(seq.is_hdr, config.data.hdr_transform)
        self.frames = self.transform.to_train(seq.frames)
        self.baseline_index = seq.index_of_time(config.data.baseline_time)
        holdout = sorted({seq.index_of_time(h) for h in config.data.holdout_hours})
        self.train_ids = [i for i in range(seq.num_frames) if i not in holdout]
        self.holdout_ids = holdout
        if not self.train_ids:
            raise InputError(f"{seq.source}: every frame is held out; nothing left to train on")
        self.desc = DataDescription(
            height=seq.height, width=seq.width, is_hdr=seq.is_hdr, transform=self.transform.name,
            times=seq.time_list(), baseline_time=float(seq.times[self.baseline_index]),
            has_mask=seq.mask is not None, source=seq.source, names=list(seq.names),
            train_times=[seq.time_list()[i] for i in self.train_ids])

        torch.manual_seed(tcfg.seed)
        self.field = build_field(config.field, self.desc, baseline=self.frames[self.baseline_index]).to(self.device)
        valid = seq.valid_pixel_index()
        if valid.numel() == 0:
            raise InputError(f"{seq.source}: the mask has no valid texel")
        self.sampler = PixelSampler(self.frames, seq.times, valid,
                                    torch.tensor(self.train_ids, dtype=torch.long, device=self.device))
        self.loss = LossAssembler(config.loss)
        self.optimizer = self._make_optimizer()
        self.steps_per_epoch = math.ceil(tcfg.samples_per_epoch / tcfg.batch_size)
        planned = tcfg.epochs * self.steps_per_epoch
        self.total_steps = min(planned, tcfg.max_steps) if tcfg.max_steps > 0 else planned
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(tcfg.seed)
        self.use_amp = tcfg.amp and self.device.type == "cuda"
        self.step = 0
        self.epoch = 0
        self.should_stop = False
        self._elapsed_before = 0.0
        self._start_time = None
        self.last_validation: dict = {}
        self.validator = Validator(self._validation_groups(), tcfg.val_downsample, seq.is_hdr)

        self.best = BestCheckpoint(self.out_dir / "best.ckpt", monitor="psnr", mode="max")
        self.logger = JSONLLogger(self.out_dir / "train_log.jsonl")
        self.callbacks: list[Callback] = [ValidationCallback(), self.best, LastCheckpoint(self.out_dir / "last.ckpt"),
                                          self.logger]
        if tcfg.progress:
            self.callbacks.append(ProgressBar())
        self.callbacks += list(extra_callbacks or [])

    # --- construction helpers ------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        tcfg = self.config.train
        params = [p for p in self.field.parameters() if p.requires_grad]
        if tcfg.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        return torch.optim.Adam(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)

    def _lr_factor(self, step: int) -> float:
        tcfg = self.config.train
        if tcfg.warmup_steps and step < tcfg.warmup_steps:
            return (step + 1) / tcfg.warmup_steps
        if tcfg.lr_schedule == "constant":
            return 1.0
        span = max(self.total_steps - tcfg.warmup_steps, 1)
        progress = min(max(step - tcfg.warmup_steps, 0) / span, 1.0)
        return tcfg.lr_min_ratio + (1.0 - tcfg.lr_min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _validation_groups(self) -> list[ValidationFrames]:
        seq = self.sequence

        def group(name: str, ids: list[int]) -> ValidationFrames:
            index = torch.tensor(ids, dtype=torch.long, device=self.device)
            return ValidationFrames(name, seq.frames.index_select(0, index), seq.times.index_select(0, index), seq.mask)

        groups = [group("hours", self.train_ids)]
        if self.holdout_ids:
            groups.append(group("holdout", self.holdout_ids))
        return groups

    # --- state ----------------------------------------------------------------------------------------
    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def elapsed(self) -> float:
        running = time.perf_counter() - self._start_time if self._start_time is not None else 0.0
        return self._elapsed_before + running

    def is_last_epoch_end(self) -> bool:
        return self.step >= self.total_steps or self.should_stop

    def train_state(self) -> dict:
        return {
            "step": self.step, "epoch": self.epoch, "elapsed_s": self.elapsed(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
        }

    def save_checkpoint(self, path: Path, with_train_state: bool) -> None:
        save_checkpoint(path, checkpoint_dict(self.field, self.config, self.desc,
                                              self.train_state() if with_train_state else None))

    def resume_from(self, path: str | Path) -> None:
        """Continue an interrupted run: model, optimizer, scheduler, RNG and callback states from ``path``."""
        ckpt = read_checkpoint(path)
        state = ckpt.get("train_state")
        if not state:
            raise InputError(f"{path}: holds no training state (resume from last.ckpt)")
        if ckpt["config"] != self.config.to_dict():
            raise InputError(f"{path}: was written with a different configuration; resume with the same flags")
        self.field.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.epoch, self._elapsed_before = state["step"], state["epoch"], state["elapsed_s"]
        for cb in self.callbacks:
            cb.load_state_dict(state["callbacks"].get(type(cb).__name__, {}))

    # --- loop -----------------------------------------------------------------------------------------
    def validate(self) -> dict:
        metrics = self.validator(self.field)
        self.last_validation = metrics
        for cb in self.callbacks:
            cb.on_validation_end(self, metrics)
        return metrics

    def _write_run_files(self) -> None:
        from airender.fileio import write_json_atomic
        from airender.images import hdr_preview_exposure, save_frame

        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.out_dir / "config.json", {"config": self.config.to_dict(), "data": self.desc.to_dict()})
        baseline = self.sequence.frames[self.baseline_index]
        exposure = hdr_preview_exposure(baseline) if self.sequence.is_hdr else 1.0
        save_frame(self.out_dir / "baseline.png", baseline, self.sequence.is_hdr, exposure)
        if self.sequence.is_hdr:
            save_frame(self.out_dir / "baseline.exr", baseline, True)

    def train_step(self) -> dict[str, torch.Tensor]:
        batch = self.sampler.sample(self.config.train.batch_size, self.generator)
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            pred = self.field(batch.uv, batch.t, batch.pix)
        terms = self.loss(pred.float(), batch.target, self.step)
        total = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.config.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.field.parameters(), self.config.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return {k: v.detach() for k, v in terms.items()}

    def fit(self) -> TrainResult:
        if self.step == 0:
            self._write_run_files()
        self._start_time = time.perf_counter()
        start_step = self.step
        self.field.train()
        for cb in self.callbacks:
            cb.on_train_start(self)
        budget = self.config.train.time_budget_s
        try:
            while self.step < self.total_steps and not self.should_stop:
                terms = self.train_step()
                self.step += 1
                for cb in self.callbacks:
                    cb.on_step_end(self, terms)
                if budget > 0 and self.elapsed() >= budget:
                    self.should_stop = True
                if self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps or self.should_stop:
                    self.epoch += 1
                    for cb in self.callbacks:
                        cb.on_epoch_end(self)
        finally:
            for cb in self.callbacks:
                cb.on_train_end(self)
        seconds = time.perf_counter() - self._start_time
        samples = (self.step - start_step) * self.config.train.batch_size
        return TrainResult(out_dir=self.out_dir, steps=self.step, seconds=seconds,
                           samples_per_s=samples / seconds if seconds > 0 else 0.0,
                           best_metric=self.best.best, final_validation=self.last_validation)
