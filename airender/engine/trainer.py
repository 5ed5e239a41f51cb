"""The training loop: on-device batches, named loss terms, callbacks, a NaN guard, checkpoints and resume."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from airender.config import ExperimentConfig, config_problems
from airender.data.samplers import PatchSampler, PixelBatch, PixelSampler
from airender.data.sequence import TODSequence, is_8bit, transform_for
from airender.device import resolve_device
from airender.engine.callbacks import (BestCheckpoint, Callback, EarlyStopping, JSONLLogger, LastCheckpoint,
                                       PlateauLR, ProgressBar, TensorBoardLogger, ValidationCallback, monitor_mode)
from airender.engine.run_folder import check_run_folder, clear_run_folder, differing_options, out_dir_for
from airender.engine.validation import ValidationFrames, Validator
from airender.errors import InputError
from airender.field import DataDescription, build_field
from airender.losses import LossAssembler, lpips_loss_on
from airender.metrics import METRIC_NAMES
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
        if config.field.components and sequence.components is None:
            sequence = self._with_sources(sequence)
        self.sequence = sequence.to(self.device)
        seq = self.sequence
        self.transform = transform_for(seq.is_hdr, config.data.hdr_transform)
        self.frames = self.transform.to_train(seq.frames)
        # with --components: [T, H, W, S, 3] the lighting of each source in the training space
        self.source_frames = self.transform.to_train(seq.components) if config.field.components else None
        self.baseline_index = self._baseline_index()
        holdout = sorted({seq.index_of_time(h) for h in config.data.holdout_hours})
        self.train_ids = [i for i in range(seq.num_frames) if i not in holdout]
        self.holdout_ids = holdout
        self.train_index = torch.tensor(self.train_ids, dtype=torch.long, device=self.device)
        if not self.train_ids:
            raise InputError(f"{seq.source}: every frame is held out; nothing left to train on")
        train_times = sorted({round(float(seq.times[i]), 6) for i in self.train_ids})
        if len(train_times) < 2:
            raise InputError(f"{seq.source}: a time-of-day model needs frames at two or more distinct times; "
                             f"the frames to train on are all at {train_times[0]:g} h")
        self.desc = DataDescription(
            height=seq.height, width=seq.width, is_hdr=seq.is_hdr, transform=self.transform.name,
            times=seq.time_list(), baseline_time=float(seq.times[self.baseline_index]),
            has_mask=seq.mask is not None, source=seq.source, names=list(seq.names),
            train_times=[seq.time_list()[i] for i in self.train_ids],
            baseline_8bit=not seq.is_hdr and is_8bit(seq.frames[self.baseline_index]),
            sun_table=self._sun_table(), **self._source_description())
        self.lpips_model = self._lpips_model_if_needed()
        self.validator = Validator(self._validation_groups(), tcfg.val_downsample, seq.is_hdr,
                                   self._validation_suite())

        torch.manual_seed(tcfg.seed)
        try:
            self.field = build_field(config.field, self.desc, baseline=self.frames[self.baseline_index],
                                     source_baseline=None if self.source_frames is None
                                     else self.source_frames[self.baseline_index])
            self._make_samplers()
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.field.to(self.device)
        self.optimizer = self._make_optimizer()
        self.steps_per_epoch = math.ceil(tcfg.samples_per_epoch / tcfg.batch_size)
        planned = tcfg.epochs * self.steps_per_epoch
        self.total_steps = min(planned, tcfg.max_steps) if tcfg.max_steps > 0 else planned
        try:
            self.loss = LossAssembler(config.loss, self.transform, tcfg.patch_size, self.lpips_model,
                                      self.total_steps, lamp_target=self._lamp_target())
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
        self.callbacks = self._make_callbacks(extra_callbacks)

    # --- construction helpers ------------------------------------------------------------------------
    def _baseline_index(self) -> int:
        """The frame at --baseline_time. Fields that use a baseline frame need it in the data; for the others
        it only picks the preview frame (baseline.png), so the nearest frame will do."""
        seq, fcfg = self.sequence, self.config.field
        if fcfg.residual_mode or fcfg.use_baseline_encoder:
            return seq.index_of_time(self.config.data.baseline_time)
        return seq.nearest_index(self.config.data.baseline_time)[0]

    def _with_sources(self, sequence: TODSequence) -> TODSequence:
        """``sequence`` with its lighting split by source, read from --data_dir (for --components)."""
        from airender.data.readers import attach_components

        data = self.config.data
        if not data.data_dir:
            raise InputError(f"--components: {sequence.source}: the frames come without their lighting split by "
                             f"source and no --data_dir names where to read it")
        if data.component != "original":
            raise InputError(f"--component {data.component}: --components trains on all light split by source; "
                             f"leave --component at original")
        return attach_components(sequence, data.data_dir, data.lightmap_id)

    def _source_description(self) -> dict:
        """With --components: the DataDescription fields ``sources`` and ``source_off_hours`` (per source, the
        trained hours at which it is identically zero over the valid texels); else nothing."""
        if not self.config.field.components:
            return {}
        from airender.data.sequence import SOURCES

        dark = self.sequence.dark_sources().cpu()
        times = self.sequence.time_list()
        return {"sources": list(SOURCES),
                "source_off_hours": {name: [times[i] for i in self.train_ids if bool(dark[i, s])]
                                     for s, name in enumerate(SOURCES)}}

    def _sun_table(self) -> dict[str, list[float]]:
        """With --sun_path FILE: {hour: unit direction} read from the file (InputError naming it when it is
        unreadable); else empty (no sun term, or a learned path)."""
        sun_path = self.config.field.sun_path
        if sun_path and self.config.field.components and self.config.field.residual_mode:
            raise InputError("--sun_path with --components: the sun term is the 'directional' source; add "
                             "--residual_mode False (or use a hash-grid preset)")
        if not sun_path or sun_path == "learn":
            return {}
        from airender.data.sun_table import read_sun_table

        return {f"{hour:g}": list(direction) for hour, direction in read_sun_table(sun_path).items()}

    def _lpips_model_if_needed(self):
        from airender.evaluate import build_metric_suite

        cfg = self.config
        wants_loss = lpips_loss_on(cfg.loss, cfg.train.patch_size)
        if not wants_loss and "lpips" not in cfg.train.val_metrics:
            return None
        suite = build_metric_suite(cfg.loss.lpips_weights or None, self.device)
        if suite.lpips_model is None:
            if wants_loss:
                raise InputError(f"--loss_lpips_w > 0 needs LPIPS weights: {suite.lpips_unavailable_reason}")
            print(f"note: validation LPIPS unavailable: {suite.lpips_unavailable_reason}")
        return suite.lpips_model

    def _validation_suite(self):
        from airender.metrics import MetricSuite

        return MetricSuite(lpips_model=self.lpips_model, metrics=tuple(self.config.train.val_metrics))

    def _lamp_target(self) -> torch.Tensor | None:
        """With a light switch, the lamp image the lamp prior pulls towards (see Field.lamp_prior_target)."""
        if not self.config.field.light_switch:
            return None
        ids = self.train_index
        return self.field.lamp_prior_target(self.frames.index_select(0, ids), self.sequence.times[ids],
                                            self.sampler.valid_pix, self.config.loss.lamp_prior_floor)

    def _make_samplers(self) -> None:
        """Texel sampler (always) and patch sampler (patch mode)."""
        seq, tcfg = self.sequence, self.config.train
        frame_ids = self.train_index
        valid = seq.valid_pixel_index()
        if valid.numel() == 0:
            raise ValueError(f"{seq.source}: the mask has no valid texel")
        self.sampler = PixelSampler(self.frames, seq.times, valid, frame_ids, components=self.source_frames)
        self.patch_sampler = None
        if tcfg.patch_size > 0:
            if tcfg.patches_per_batch < 1:
                raise ValueError("--patches_per_batch must be positive in patch mode")
            self.patch_sampler = PatchSampler(self.frames, seq.times, seq.mask, frame_ids, tcfg.patch_size,
                                              components=self.source_frames)

    def _make_optimizer(self) -> torch.optim.Optimizer:
        tcfg = self.config.train
        groups = self.field.param_groups(tcfg.lr, tcfg.grid_lr, tcfg.weight_decay)
        if tcfg.optimizer == "adamw":
            return torch.optim.AdamW(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        return torch.optim.Adam(groups, lr=tcfg.lr, weight_decay=tcfg.weight_decay)

    def _lr_factor(self, step: int) -> float:
        """Learning rate / --lr at ``step``: warm-up, then the schedule, times ``lr_scale`` (plateau, NaN guard)."""
        tcfg = self.config.train
        if tcfg.warmup_steps and step < tcfg.warmup_steps:
            return self.lr_scale * (step + 1) / tcfg.warmup_steps
        if tcfg.lr_schedule != "cosine":
            return self.lr_scale
        span = max(self.total_steps - tcfg.warmup_steps, 1)
        progress = min(max(step - tcfg.warmup_steps, 0) / span, 1.0)
        cosine = tcfg.lr_min_ratio + (1.0 - tcfg.lr_min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr_scale * cosine

    def _validation_groups(self) -> list[ValidationFrames]:
        from airender.data import load_sequence

        seq, tcfg = self.sequence, self.config.train

        def group(name: str, source: TODSequence, ids: list[int]) -> ValidationFrames:
            index = torch.tensor(ids, dtype=torch.long, device=source.device)
            return ValidationFrames(name, source.frames.index_select(0, index), source.times.index_select(0, index),
                                    source.mask)

        val_ids = sorted({seq.index_of_time(h) for h in tcfg.val_hours}) if tcfg.val_hours else self.train_ids
        groups = [group("hours", seq, val_ids)]
        if self.holdout_ids:
            groups.append(group("holdout", seq, self.holdout_ids))
        if tcfg.val_extra_dir:
            extra = load_sequence(tcfg.val_extra_dir).to(self.device)
            if (extra.height, extra.width, extra.is_hdr) != (seq.height, seq.width, seq.is_hdr):
                raise InputError(f"{extra.source}: validation frames must match the training frames in size and "
                                 f"dynamic range ({seq.width}x{seq.height}, {'HDR' if seq.is_hdr else 'LDR'})")
            groups.append(group("extra", extra, list(range(extra.num_frames))))
        return groups

    def _make_callbacks(self, extra: list[Callback] | None) -> list[Callback]:
        tcfg = self.config.train
        mode = monitor_mode(tcfg.monitor)
        self.best = BestCheckpoint(self.out_dir / "best.ckpt", monitor=tcfg.monitor, mode=mode)
        callbacks: list[Callback] = [ValidationCallback(tcfg.val_every, tcfg.val_every_steps), self.best]
        if tcfg.lr_schedule == "plateau":
            callbacks.append(PlateauLR(tcfg.monitor, mode, tcfg.plateau_patience))
        if tcfg.early_stop_patience > 0:
            callbacks.append(EarlyStopping(tcfg.monitor, mode, tcfg.early_stop_patience))
        # The log line of an epoch is written before its last.ckpt: after a kill, every epoch whose
        # checkpoint exists has its line (lines past the checkpoint are dropped on resume).
        callbacks += [JSONLLogger(self.out_dir / "train_log.jsonl"), LastCheckpoint(self.out_dir / "last.ckpt")]
        if tcfg.tensorboard:
            callbacks.append(TensorBoardLogger(self.out_dir / "tb"))
        if tcfg.progress:
            callbacks.append(ProgressBar())
        return callbacks + list(extra or [])

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
        from airender.config import ExperimentConfig

        ckpt = read_checkpoint(path)
        state = ckpt.get("train_state")
        if not state:
            raise InputError(f"{path}: holds no training state (resume from last.ckpt)")
        try:
            stored = ExperimentConfig.from_dict(ckpt["config"])
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}: unreadable configuration ({exc})") from None
        changed = differing_options(stored, self.config)
        if changed:
            raise InputError(f"{path}: was written with other options; cannot resume with {', '.join(changed)}")
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

    def _trim_log(self) -> None:
        """Drop log lines of steps past the resumed checkpoint (written just before a kill)."""
        import json

        from airender.fileio import write_text_atomic

        log = self.out_dir / "train_log.jsonl"
        if not log.is_file():
            return
        kept = []
        for line in log.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.step:
                    kept.append(line)
            except ValueError:
                continue  # a line cut by the kill
        write_text_atomic(log, "".join(k + "\n" for k in kept))

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

    def _write_run_files(self) -> None:
        from airender.fileio import make_dir, write_json_atomic
        from airender.images import hdr_preview_exposure, save_frame

        make_dir(self.out_dir)
        (self.out_dir / "train_log.jsonl").unlink(missing_ok=True)  # a fresh run starts a fresh log
        write_json_atomic(self.out_dir / "config.json", {"config": self.config.to_dict(), "data": self.desc.to_dict()})
        baseline = self.sequence.frames[self.baseline_index]
        exposure = hdr_preview_exposure(baseline) if self.sequence.is_hdr else 1.0
        save_frame(self.out_dir / "baseline.png", baseline, self.sequence.is_hdr, exposure)
        if self.sequence.is_hdr:
            save_frame(self.out_dir / "baseline.exr", baseline, True)

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
        from airender.sizes import compression_report

        seq, tcfg, desc = self.sequence, self.config.train, self.desc
        hours = ", ".join(f"{t:g}" for t in desc.train_times)
        held = ", ".join(f"{t:g}" for t in seq.time_list() if t not in desc.train_times)
        valid = "every texel" if seq.mask is None else f"{int(seq.mask.sum()):,} valid texels " \
                                                       f"({100.0 * float(seq.mask.float().mean()):.1f} %)"
        size = compression_report(self.field)
        params = sum(p.numel() for p in self.field.parameters())
        lines = [
            f"data: {seq.source}: {len(desc.train_times)} training frames of {seq.width}x{seq.height} "
            f"{'HDR' if seq.is_hdr else 'LDR'}, {valid}; hours {hours}" + (f"; held out {held}" if held else ""),
            f"model: {params:,} parameters, {size['model_bytes']:,} bytes stored = {size['percent_of_raw']:.2f} % of "
            f"the raw float32 frames (ratio {size['compression_ratio']:.0f}:1)",
            f"training: {self.total_steps} steps of {tcfg.batch_size} texels ({tcfg.epochs} epochs x "
            f"{self.steps_per_epoch} steps" + (f", --max_steps {tcfg.max_steps}" if tcfg.max_steps else "") + ")"
            + (f", time budget {tcfg.time_budget_s:g} s" if tcfg.time_budget_s > 0 else "")
            + f" on {self.device}" + (f" ({torch.get_num_threads()} threads)" if self.device.type == "cpu" else ""),
            f"outputs: {self.out_dir}",
        ]
        if desc.sources:
            off = [f"{name} (off at {', '.join(f'{h:g}' for h in desc.source_off_hours[name]) or 'no hour'})"
                   for name in desc.sources]
            lines.insert(2, "light sources: " + "; ".join(off))
        return "\n".join(lines)

    def fit(self) -> TrainResult:
        from airender.fileio import write_json_atomic

        if not self._resumed:
            check_run_folder(self.out_dir, self.overwrite)
            if self.overwrite:
                clear_run_folder(self.out_dir)
            self._write_run_files()
        else:
            self._trim_log()
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
