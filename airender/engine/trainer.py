"""The training loop: on-device batches, named loss terms, callbacks, a NaN guard, checkpoints and resume."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from airender.assembly import build_field
from airender.config import ExperimentConfig, config_problems
from airender.data.samplers import PixelBatch
from airender.data.sequence import TODSequence
from airender.device import resolve_device
from airender.engine.callbacks import Callback
from airender.engine.optim import lr_factor, make_callbacks, make_optimizer
from airender.engine.run_folder import (check_run_folder, clear_run_folder, out_dir_for, resumable_state, trim_log,
                                        write_run_files)
from airender.engine.summary import run_summary
from airender.engine.training_data import lpips_model_for, make_samplers, prepare_training_data, validation_groups
from airender.engine.validation import Validator
from airender.errors import InputError
from airender.fileio import write_json_atomic
from airender.losses import LossAssembler
from airender.metrics import METRIC_NAMES, MetricSuite
from airender.models.checkpoint import checkpoint_dict, read_checkpoint, save_checkpoint

MAX_NAN_IN_A_ROW = 10


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    seconds: float
    samples_per_s: float
    best_metric: float | None
    final_validation: dict
    nan_events: int
    planned_steps: int = 0


class Trainer:
    """Trains a TODField on a TODSequence.

    Everything the run needs is checked and built in the constructor, before anything is written:
    bad input (a baseline or hold-out hour not in the data, ...) raises InputError with nothing on disk.
    ``fit()`` creates ``out_dir`` and writes config.json, baseline.png, train_log.jsonl, best.ckpt and
    last.ckpt (both atomically). A folder that already holds a run is refused unless ``overwrite`` (then
    that run's files are removed first); ``resume_from`` continues the run instead.

    A step whose loss or gradient is not finite is skipped; the trainer then restores the last good
    state (taken at each validation), halves the learning rate and says so. No checkpoint holding a
    non-finite value is ever written.
    """

    def __init__(self, config: ExperimentConfig, sequence: TODSequence, out_dir: Path | None = None,
                 extra_callbacks: list[Callback] | None = None, overwrite: bool = False):
        self.config = config
        self.overwrite = overwrite
        tcfg = config.train
        problems = config_problems(config)
        if problems:
            raise InputError("; ".join(problems))
        unknown = sorted(set(tcfg.val_metrics) - set(METRIC_NAMES))
        if unknown:
            raise InputError(f"--val_metrics: unknown {unknown} (choose from {', '.join(METRIC_NAMES)})")
        self.device = resolve_device(tcfg.device)
        self.out_dir = Path(out_dir) if out_dir is not None else out_dir_for(config)
        self.data = data = prepare_training_data(config, sequence, self.device)
        self.sequence, self.transform, self.frames = data.sequence, data.transform, data.frames
        self.source_frames, self.baseline_index, self.desc = data.source_frames, data.baseline_index, data.desc
        self.train_ids, self.holdout_ids, self.train_index = data.train_ids, data.holdout_ids, data.train_index
        self.lpips_model = lpips_model_for(config, self.device)
        self.validator = Validator(validation_groups(config, data, self.device), tcfg.val_downsample,
                                   self.sequence.is_hdr, MetricSuite(lpips_model=self.lpips_model,
                                                                     metrics=tuple(tcfg.val_metrics)))

        torch.manual_seed(tcfg.seed)
        try:
            self.field = build_field(config.field, self.desc, baseline=self.frames[self.baseline_index],
                                     source_baseline=None if self.source_frames is None
                                     else self.source_frames[self.baseline_index])
            self.sampler, self.patch_sampler = make_samplers(config, data)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.field.to(self.device)
        self.field.set_training_data(self.frames, self.sequence.times, self.train_index, self.sampler.valid_pix,
                                     config.loss)  # the light terms' loss targets (the lamp prior's)
        self.optimizer = make_optimizer(self.field, tcfg)
        self.steps_per_epoch = math.ceil(tcfg.samples_per_epoch / tcfg.batch_size)
        planned = tcfg.epochs * self.steps_per_epoch
        self.total_steps = min(planned, tcfg.max_steps) if tcfg.max_steps > 0 else planned
        try:
            self.loss = LossAssembler(config.loss, self.transform, tcfg.patch_size, self.lpips_model,
                                      self.total_steps)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.lr_scale = 1.0
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(tcfg.seed)
        self.use_amp = tcfg.amp and self.device.type == "cuda"
        self.step = 0
        self.epoch = 0
        self.should_stop = False
        self.nan_events = 0
        self._nan_in_a_row = 0
        self.inject_nan_at_steps: set[int] = set()  # test hook: steps whose loss is made NaN
        self._elapsed_before = 0.0
        self._start_time: float | None = None
        self._good_state: dict | None = None
        self.last_validation: dict = {}
        self.stop_reason = ""  # why training ends before its planned steps (time budget, early stop)
        self._resumed = False
        self.callbacks, self.best = make_callbacks(tcfg, self.out_dir, extra_callbacks)

    # --- construction helpers ------------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        """Learning rate / --lr at ``step`` (:func:`airender.engine.optim.lr_factor`, times ``lr_scale``)."""
        return lr_factor(step, self.config.train, self.total_steps, self.lr_scale)

    # --- state ----------------------------------------------------------------------------------------
    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr_scale(self, scale: float) -> None:
        """Multiply the scheduled learning rate by ``scale`` from now on (plateau schedule, NaN guard)."""
        self.lr_scale = scale
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * self._lr_factor(self.step)

    def elapsed(self) -> float:
        running = time.perf_counter() - self._start_time if self._start_time is not None else 0.0
        return self._elapsed_before + running

    def is_last_epoch_end(self) -> bool:
        return self.step >= self.total_steps or self.should_stop

    def train_state(self) -> dict:
        return {
            "step": self.step, "epoch": self.epoch, "elapsed_s": self.elapsed(), "lr_scale": self.lr_scale,
            "nan_events": self.nan_events, "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
        }

    def params_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.field.parameters())

    def save_checkpoint(self, path: Path, with_train_state: bool) -> None:
        if not self.params_finite():
            print(f"warning: not writing {path}: the model holds non-finite values")
            return
        save_checkpoint(path, checkpoint_dict(self.field, self.config, self.desc,
                                              self.train_state() if with_train_state else None))

    def resume_from(self, path: str | Path) -> None:
        """Continue an interrupted run: model, optimizer, scheduler, RNG and callback states from ``path``.

        The configuration must be the run's own, except for the budget and reporting options
        (``RESUMABLE_OPTIONS``): a larger --max_steps or --epochs continues the steps and the schedule."""
        ckpt, state = resumable_state(read_checkpoint(path), path, self.config)
        self.field.load_state_dict(state.get("model_full", ckpt["model"]))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.epoch, self._elapsed_before = state["step"], state["epoch"], state["elapsed_s"]
        self.lr_scale, self.nan_events = state["lr_scale"], state["nan_events"]
        for group in self.optimizer.param_groups:  # the schedule over the (possibly new) planned steps
            group["lr"] = group["initial_lr"] * self._lr_factor(self.step)
        for cb in self.callbacks:
            cb.load_state_dict(state["callbacks"].get(type(cb).__name__, {}))
        self._resumed = True

    def _remember_good_state(self) -> None:
        if self.params_finite():
            self._good_state = {"field": copy.deepcopy(self.field.state_dict()),
                                "optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def _recover_from_nan(self, what: str) -> None:
        """Skip the step, restore the last good state, halve the learning rate, and say so."""
        self.nan_events += 1
        self._nan_in_a_row += 1
        if self._nan_in_a_row > MAX_NAN_IN_A_ROW:
            raise RuntimeError(f"training diverged: {MAX_NAN_IN_A_ROW} steps in a row with a non-finite {what}")
        self.optimizer.zero_grad(set_to_none=True)
        if self._good_state is not None:
            self.field.load_state_dict(self._good_state["field"])
            self.optimizer.load_state_dict(self._good_state["optimizer"])
        self.set_lr_scale(self.lr_scale * 0.5)
        print(f"warning: step {self.step}: {what} is not finite; skipped the step, restored the last good state "
              f"and halved the learning rate (now {self.current_lr():.2e})")

    # --- loop -----------------------------------------------------------------------------------------
    def validate(self) -> dict:
        metrics = self.validator(self.field)
        self.last_validation = metrics
        for cb in self.callbacks:
            cb.on_validation_end(self, metrics)
        self._remember_good_state()
        return metrics

    def next_batch(self):
        """--batch_size random texels, followed in patch mode by --patches_per_batch random patches (one
        forward pass decodes both)."""
        tcfg = self.config.train
        texels = self.sampler.sample(tcfg.batch_size, self.generator)
        if self.patch_sampler is None:
            return texels
        return PixelBatch.join(texels, self.patch_sampler.sample(tcfg.patches_per_batch, self.generator))

    def train_step(self) -> dict[str, torch.Tensor] | None:
        """One optimisation step; returns the detached loss terms, or None when the NaN guard skipped it."""
        batch = self.next_batch()
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            terms = self.field.get_loss_dict(batch, self.loss, self.step)
        total = sum(terms.values())
        if self.step in self.inject_nan_at_steps:
            self.inject_nan_at_steps.discard(self.step)
            total = total * float("nan")
        if not bool(torch.isfinite(total)):
            self._recover_from_nan("the loss")
            return None
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        clip = self.config.train.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(self.field.parameters(), clip if clip > 0 else math.inf)
        if not bool(torch.isfinite(norm)):
            self._recover_from_nan("the gradient")
            return None
        self.optimizer.step()
        self.scheduler.step()
        self._nan_in_a_row = 0
        return {k: v.detach() for k, v in terms.items()}

    def summary(self) -> str:
        """What this run trains on and with: printed when training starts."""
        return run_summary(self)

    def fit(self) -> TrainResult:
        if not self._resumed:
            check_run_folder(self.out_dir, self.overwrite)
            if self.overwrite:
                clear_run_folder(self.out_dir)
            write_run_files(self.out_dir, self.config, self.desc, self.sequence.frames[self.baseline_index],
                            self.sequence.is_hdr)
        else:
            trim_log(self.out_dir / "train_log.jsonl", self.step)
            write_json_atomic(self.out_dir / "config.json", {"config": self.config.to_dict(), "data": self.desc.to_dict()})
        if self.config.train.progress:
            print(self.summary(), flush=True)
        self._start_time = time.perf_counter()
        start_step = self.step
        self.field.train()
        self._remember_good_state()
        for cb in self.callbacks:
            cb.on_train_start(self)
        budget = self.config.train.time_budget_s  # this invocation's training time
        self.stop_reason = ""
        try:
            while self.step < self.total_steps and not self.should_stop:
                terms = self.train_step()
                if terms is None:
                    continue
                self.step += 1
                for cb in self.callbacks:
                    cb.on_step_end(self, terms)
                if budget > 0 and time.perf_counter() - self._start_time >= budget and self.step < self.total_steps:
                    self.should_stop = True
                    self.stop_reason = f"the time budget (--time_budget_s {budget:g}) ran out"
                if self.step % self.steps_per_epoch == 0 or self.step >= self.total_steps or self.should_stop:
                    self.epoch += 1
                    for cb in self.callbacks:
                        cb.on_epoch_end(self)
        finally:
            for cb in self.callbacks:
                cb.on_train_end(self)
        if self.step < self.total_steps:
            reason = self.stop_reason or "training was stopped"
            print(f"note: training ended at step {self.step} of {self.total_steps} planned: {reason}; "
                  f"continue it with: airender train --resume {self.out_dir}", flush=True)
        seconds = time.perf_counter() - self._start_time
        samples = (self.step - start_step) * self.config.train.batch_size
        return TrainResult(out_dir=self.out_dir, steps=self.step, seconds=seconds,
                           samples_per_s=samples / seconds if seconds > 0 else 0.0,
                           best_metric=self.best.best, final_validation=self.last_validation,
                           nan_events=self.nan_events, planned_steps=self.total_steps)
