"""Trainer callbacks with explicit hook points.

Hooks, in the order the trainer calls them:
    on_train_start(trainer)
    on_step_end(trainer, loss_terms)        after every optimisation step (terms are detached tensors)
    on_epoch_end(trainer)                   after the last step of an epoch (also a final partial one)
    on_validation_end(trainer, metrics)     after each validation run
    on_train_end(trainer)
Stateful callbacks return their state from ``state_dict`` (saved in ``last.ckpt``) so ``--resume``
continues exactly.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from airender.engine.validation import is_better
from airender.fileio import append_line_durable

if TYPE_CHECKING:
    from airender.engine.trainer import Trainer


class Callback:
    """Base class: every hook does nothing."""

    def on_train_start(self, trainer: "Trainer") -> None: ...

    def on_step_end(self, trainer: "Trainer", loss_terms: dict[str, torch.Tensor]) -> None: ...

    def on_epoch_end(self, trainer: "Trainer") -> None: ...

    def on_validation_end(self, trainer: "Trainer", metrics: dict) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


def monitor_mode(metric: str) -> str:
    """'min' for metrics where lower is better (lpips, flip, losses), else 'max'."""
    name = metric.rsplit("/", 1)[-1]
    return "min" if name in ("lpips", "flip") or "loss" in name else "max"


class ValidationCallback(Callback):
    """Runs ``trainer.validate()`` every ``every_epochs`` epochs (or every ``every_steps`` steps when that
    is > 0) and always at the end of training."""

    def __init__(self, every_epochs: int = 1, every_steps: int = 0):
        self.every_epochs = max(1, every_epochs)
        self.every_steps = every_steps
        self.validated_step = -1

    def on_step_end(self, trainer: "Trainer", loss_terms: dict[str, torch.Tensor]) -> None:
        if self.every_steps > 0 and trainer.step % self.every_steps == 0:
            trainer.validate()
            self.validated_step = trainer.step

    def on_epoch_end(self, trainer: "Trainer") -> None:
        due = self.every_steps <= 0 and trainer.epoch % self.every_epochs == 0
        if (due or trainer.is_last_epoch_end()) and self.validated_step != trainer.step:
            trainer.validate()
            self.validated_step = trainer.step

    def state_dict(self) -> dict:
        return {"validated_step": self.validated_step}

    def load_state_dict(self, state: dict) -> None:
        self.validated_step = state.get("validated_step", -1)


class _Patience:
    """Counts validations without improvement of a monitored metric."""

    def __init__(self, monitor: str, mode: str, patience: int):
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.best: float | None = None
        self.bad = 0

    def update(self, metrics: dict) -> bool:
        """True when ``patience`` validations in a row brought no improvement."""
        value = float(metrics[self.monitor])
        if is_better(value, self.best, self.mode):
            self.best, self.bad = value, 0
            return False
        self.bad += 1
        return self.bad >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad = state.get("best"), state.get("bad", 0)


class EarlyStopping(_Patience, Callback):
    """Stops training after ``patience`` validations without improvement of ``monitor``."""

    def on_validation_end(self, trainer: "Trainer", metrics: dict) -> None:
        if self.update(metrics):
            trainer.should_stop = True
            trainer.stop_reason = f"early stop: no {self.monitor} improvement in {self.patience} validations"


class PlateauLR(_Patience, Callback):
    """Halves the learning rate after ``patience`` validations without improvement of ``monitor``."""

    def on_validation_end(self, trainer: "Trainer", metrics: dict) -> None:
        if self.update(metrics):
            trainer.set_lr_scale(trainer.lr_scale * 0.5)
            self.bad = 0


class BestCheckpoint(Callback):
    """Writes ``best.ckpt`` whenever the monitored validation metric improves.

    monitor: a key of the validation metrics (e.g. "psnr", "holdout/psnr", "lpips"); mode: "max" or "min".
    """

    def __init__(self, path: Path, monitor: str = "psnr", mode: str = "max"):
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best: float | None = None
        self.best_step = -1

    def on_validation_end(self, trainer: "Trainer", metrics: dict) -> None:
        value = metrics.get(self.monitor)
        if value is None:
            raise KeyError(f"validation has no metric {self.monitor!r} to monitor (has {sorted(metrics)})")
        if is_better(float(value), self.best, self.mode):
            self.best, self.best_step = float(value), trainer.step
            trainer.save_checkpoint(self.path, with_train_state=False)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_step": self.best_step}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_step = state["best"], state["best_step"]


class LastCheckpoint(Callback):
    """Writes ``last.ckpt`` (model + full training state, for ``--resume``) after every epoch."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_epoch_end(self, trainer: "Trainer") -> None:
        trainer.save_checkpoint(self.path, with_train_state=True)


class JSONLLogger(Callback):
    """Appends one JSON line per epoch (losses, learning rate, throughput, validation) to ``path``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._last_validation: dict = {}
        self._epoch_start = time.perf_counter()
        self._epoch_start_step = 0

    def on_train_start(self, trainer: "Trainer") -> None:
        self._epoch_start, self._epoch_start_step = time.perf_counter(), trainer.step

    def on_step_end(self, trainer: "Trainer", loss_terms: dict[str, torch.Tensor]) -> None:
        for name, value in loss_terms.items():
            self._sums[name] = self._sums.get(name, 0.0) + value
        self._count += 1

    def on_validation_end(self, trainer: "Trainer", metrics: dict) -> None:
        self._last_validation = dict(metrics)

    def on_epoch_end(self, trainer: "Trainer") -> None:
        """Runs after ValidationCallback in the callback list, so the line holds this epoch's validation."""
        seconds = time.perf_counter() - self._epoch_start
        steps = trainer.step - self._epoch_start_step
        record: dict[str, Any] = {
            "epoch": trainer.epoch, "step": trainer.step, "lr": trainer.current_lr(),
            "samples_per_s": steps * trainer.config.train.batch_size / seconds if seconds > 0 else None,
            "elapsed_s": round(trainer.elapsed(), 3),
        }
        count = max(self._count, 1)
        losses = {f"loss/{k}": float(v) / count for k, v in self._sums.items()}
        record["loss"] = sum(losses.values()) if losses else None
        record.update(losses)
        record.update({f"val/{k}": v for k, v in self._last_validation.items()})
        record["nan_events"] = trainer.nan_events
        append_line_durable(self.path, json.dumps(_finite(record)))
        self._sums, self._count, self._last_validation = {}, 0, {}
        self._epoch_start, self._epoch_start_step = time.perf_counter(), trainer.step


def _finite(value: Any) -> Any:
    """JSON has no NaN/Inf: write them as strings (also inside nested per-hour dicts, whose keys become str)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return value


class TensorBoardLogger(Callback):
    """TensorBoard event files: loss terms every ``every`` steps, validation metrics per validation."""

    def __init__(self, log_dir: Path, every: int = 10):
        self.log_dir, self.every = Path(log_dir), every
        self.writer = None

    def on_train_start(self, trainer: "Trainer") -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.log_dir))

    def on_step_end(self, trainer: "Trainer", loss_terms: dict[str, torch.Tensor]) -> None:
        if trainer.step % self.every == 0:
            for name, value in loss_terms.items():
                self.writer.add_scalar(f"loss/{name}", float(value), trainer.step)
            self.writer.add_scalar("lr", trainer.current_lr(), trainer.step)

    def on_validation_end(self, trainer: "Trainer", metrics: dict) -> None:
        for name, value in metrics.items():
            if isinstance(value, float):
                self.writer.add_scalar(f"val/{name}", value, trainer.step)

    def on_train_end(self, trainer: "Trainer") -> None:
        if self.writer is not None:
            self.writer.close()


def validation_line(trainer: "Trainer", metrics: dict) -> str:
    """``epoch E step S: hours/psnr 31.20  extra/psnr 29.10  all/psnr 30.15``: every group's metrics once, and
    the mean over all frames (``all/psnr``) when there is more than one group."""
    shown = {k: v for k, v in metrics.items() if isinstance(v, float) and "/" in k}
    return f"epoch {trainer.epoch} step {trainer.step}: " + "  ".join(f"{k} {v:.4f}" for k, v in shown.items())


class ProgressBar(Callback):
    """A tqdm bar over the planned steps with loss, samples/s and ETA on a terminal; elsewhere (a log file,
    a pipe) one plain line every ``log_every_s`` seconds and at the end."""

    def __init__(self, update_every: int = 5, log_every_s: float = 15.0, interactive: bool | None = None):
        self.update_every = update_every
        self.log_every_s = log_every_s
        self.interactive = interactive
        self.bar = None

    def on_train_start(self, trainer: "Trainer") -> None:
        import sys

        from tqdm.auto import tqdm

        if self.interactive is None:
            self.interactive = sys.stderr.isatty()
        self._t0, self._s0 = time.perf_counter(), trainer.step
        self._last_line = self._t0
        self._status = ""
        if self.interactive:
            self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, unit="step", dynamic_ncols=True,
                            desc="train", smoothing=0.1, mininterval=0.5)

    def _rate(self, trainer: "Trainer") -> float:
        seconds = time.perf_counter() - self._t0
        return (trainer.step - self._s0) * trainer.config.train.batch_size / max(seconds, 1e-9)

    def on_step_end(self, trainer: "Trainer", loss_terms: dict[str, torch.Tensor]) -> None:
        if self.bar is not None:
            self.bar.update(1)
        if trainer.step % self.update_every == 0:
            loss = float(sum(loss_terms.values()))
            self._status = f"loss {loss:.3e}  {self._rate(trainer) / 1e3:.0f}k samples/s  lr {trainer.current_lr():.2e}"
            if self.bar is not None:
                self.bar.set_postfix_str(self._status, refresh=False)
        now = time.perf_counter()
        if self.bar is None and (now - self._last_line >= self.log_every_s or trainer.step >= trainer.total_steps):
            self._last_line = now
            done = trainer.step - self._s0
            left = trainer.total_steps - trainer.step
            eta = left * (now - self._t0) / max(done, 1)
            print(f"train step {trainer.step}/{trainer.total_steps} ({100.0 * trainer.step / trainer.total_steps:.0f} %)"
                  f"  {self._status}  elapsed {now - self._t0:.0f} s  eta {eta:.0f} s", flush=True)

    def on_validation_end(self, trainer: "Trainer", metrics: dict) -> None:
        line = validation_line(trainer, metrics)
        if self.bar is not None:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def on_train_end(self, trainer: "Trainer") -> None:
        if self.bar is not None:
            self.bar.close()
