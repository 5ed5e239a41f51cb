"""Run folders: never replace a run unless asked, never let two commands write one run at once, suggest a
free name, and rebuild a run's configuration for ``--resume`` (only the budget may change)."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch

from airender.config import SECTION_TYPES, ExperimentConfig
from airender.errors import InputError
from airender.fileio import make_dir, write_json_atomic, write_text_atomic
from airender.images import hdr_preview_exposure, save_frame
from airender.presets import apply_overrides

# between.pt: the blend-weight network fitted after training (--between_steps; airender/between/cli.py)
RUN_FILES = ("best.ckpt", "last.ckpt", "config.json", "train_log.jsonl", "baseline.png", "baseline.exr", "between.pt")
RUN_FOLDERS = ("eval", "tb")
LOCK_FILE = ".airender.lock"  # held (flock) by the command that writes the run; removed when it ends
# Options that may change when a run is continued: how long it trains, how it reports, and the network
# fitted after training (between_*). Everything else defines the model and its data and must stay as the
# run was started.
RESUMABLE_OPTIONS = frozenset({"epochs", "max_steps", "time_budget_s", "progress", "tensorboard", "device",
                               "between_steps", "between_channels", "between_store_dtype"})


def out_dir_for(config: ExperimentConfig) -> Path:
    return Path(config.out_dir) if config.out_dir else Path("runs") / config.name


@contextlib.contextmanager
def run_lock(folder: Path):
    """Hold ``folder``'s run lock while the block writes the run (the folder is made if needed, and removed
    again if the block leaves it empty, e.g. when the command is refused before writing anything).

    An exclusive ``flock`` on ``folder/.airender.lock``: the operating system releases it when the process
    ends, even by ``kill -9``, so a lock file left behind never blocks a later run. Raises InputError when
    another process holds it (two trainings of one run folder would overwrite each other's checkpoints
    and log). Where ``fcntl`` does not exist (not POSIX) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX only
        yield
        return

    created = not Path(folder).exists()
    path = make_dir(folder) / LOCK_FILE
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise InputError(f"{folder}: another airender command is writing this run now; wait for it to end or "
                             f"choose another --out_dir") from None
        try:  # the file may have been removed and made anew by the holder we waited on: lock the current one
            if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()
        if created:  # a command refused before writing anything leaves no folder behind
            with contextlib.suppress(OSError):
                Path(folder).rmdir()


def existing_run_files(folder: Path) -> list[str]:
    """The run artefacts (checkpoints, log, config, eval/) already in ``folder``."""
    return [name for name in RUN_FILES + RUN_FOLDERS if (folder / name).exists()]


def free_name(folder: Path) -> Path:
    """``folder`` itself when it holds no run, else the first ``<folder>-2``, ``-3``, ... that holds none."""
    if not existing_run_files(folder):
        return folder
    k = 2
    while existing_run_files(folder.with_name(f"{folder.name}-{k}")):
        k += 1
    return folder.with_name(f"{folder.name}-{k}")


def check_run_folder(folder: Path, overwrite: bool) -> None:
    """Refuse to start a new run in a folder that holds one, unless ``overwrite``."""
    found = existing_run_files(folder)
    if found and not overwrite:
        suggestion = free_name(folder)
        raise InputError(f"{folder}: already holds a run ({', '.join(found)}); pass --overwrite to replace it, "
                         f"--resume {folder} to continue it, or choose another name (e.g. --out_dir {suggestion})")


def clear_run_folder(folder: Path) -> None:
    """Remove the run artefacts of a previous run in ``folder`` (only those; other files stay)."""
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        if (folder / name).is_dir():
            shutil.rmtree(folder / name)


def resume_checkpoint(target: str | Path) -> Path:
    """``last.ckpt`` of the run ``target`` (a run folder or a checkpoint file)."""
    target = Path(target)
    path = target / "last.ckpt" if target.is_dir() or not target.suffix else target
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint to resume from (train the run first, or name its folder)")
    return path


def differing_options(stored: ExperimentConfig, wanted: ExperimentConfig,
                      may_change: frozenset[str] = RESUMABLE_OPTIONS) -> list[str]:
    """``--name (stored -> wanted)`` for every option that differs and is not in ``may_change`` (default:
    the options a resumed run may change)."""
    out = []
    for section in SECTION_TYPES:
        a, b = getattr(stored, section), getattr(wanted, section)
        for f in dataclasses.fields(a):
            old, new = getattr(a, f.name), getattr(b, f.name)
            if old != new and f.name not in may_change:
                out.append(f"--{f.name} ({old!r} -> {new!r})")
    return out


def resume_config(stored: ExperimentConfig, overrides: dict[str, dict], preset: dict | None,
                  run_dir: Path, checkpoint: Path) -> ExperimentConfig:
    """The stored configuration of a run with the flags given now applied; InputError naming the flags when
    anything but the budget (RESUMABLE_OPTIONS) would change."""
    config = copy.deepcopy(stored)
    if preset:
        config = apply_overrides(config, preset)
    config = apply_overrides(config, overrides)
    changed = differing_options(stored, config)
    if changed:
        raise InputError(f"{checkpoint}: the run was trained with other options; cannot resume with "
                         f"{', '.join(changed)} (only {', '.join('--' + o for o in sorted(RESUMABLE_OPTIONS))} "
                         f"may change; start a new run for the rest)")
    config.out_dir = str(run_dir)
    return config


def write_run_files(out_dir: Path, config: ExperimentConfig, desc, baseline: torch.Tensor, is_hdr: bool) -> None:
    """A fresh run's folder: config.json (the config and the data description), baseline.png (and
    baseline.exr for HDR data: ``baseline`` [H, W, 3] in display space) and no train_log.jsonl yet."""
    make_dir(out_dir)
    (out_dir / "train_log.jsonl").unlink(missing_ok=True)  # a fresh run starts a fresh log
    write_json_atomic(out_dir / "config.json", {"config": config.to_dict(), "data": desc.to_dict()})
    exposure = hdr_preview_exposure(baseline) if is_hdr else 1.0
    save_frame(out_dir / "baseline.png", baseline, is_hdr, exposure)
    if is_hdr:
        save_frame(out_dir / "baseline.exr", baseline, True)


def trim_log(log: Path, step: int) -> None:
    """Drop the lines of ``log`` (train_log.jsonl) of steps past ``step``, the checkpoint a run resumes from
    (lines written just before a kill), and any line the kill cut short."""
    if not log.is_file():
        return
    kept = []
    for line in log.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except ValueError:
            continue  # a line cut by the kill
    write_text_atomic(log, "".join(k + "\n" for k in kept))


def resumable_state(ckpt: dict, path: str | Path, config: ExperimentConfig) -> tuple[dict, dict]:
    """(the checkpoint, its training state) when ``ckpt`` (read from ``path``) can continue a run of ``config``:
    it holds a training state and was written with the same options, but for those that may change
    (``RESUMABLE_OPTIONS``); InputError (one line) otherwise."""
    state = ckpt.get("train_state")
    if not state:
        raise InputError(f"{path}: holds no training state (resume from last.ckpt)")
    try:
        stored = ExperimentConfig.from_dict(ckpt["config"])
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: unreadable configuration ({exc})") from None
    changed = differing_options(stored, config)
    if changed:
        raise InputError(f"{path}: was written with other options; cannot resume with {', '.join(changed)}")
    return ckpt, state
