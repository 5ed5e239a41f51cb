"""One tile job: an ordinary training run on one window of an atlas.

:func:`run_tile` reads the tile's window through the memory maps (only that window), trains one field
on it with :class:`airender.engine.trainer.Trainer` (the run's configuration, the tile's own seed, no
progress bar) in ``<run>/tiles/<atlas>_<y>_<x>/`` and, when training is done, writes ``result.json``
there atomically. A tile folder without ``result.json`` is unfinished and is fitted again from scratch;
one with it is never touched again. The job needs nothing but its :class:`TileJob` (picklable), so it
runs the same in this process, in a spawned worker process or as a Ray task.
"""
from __future__ import annotations

import contextlib
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from airender.config import ExperimentConfig
from airender.data.frame_store import open_source
from airender.engine.trainer import Trainer
from airender.fileio import make_dir, write_json_atomic
from airender.sizes import model_bytes
from airender.tiles.plan import Tile

TILES_FOLDER = "tiles"
RESULT_FILE = "result.json"
OUTPUT_FILE = "train.out"


@dataclass
class TileJob:
    """Everything one tile job needs. tile: which; source: the atlas's source spec
    (:func:`airender.data.frame_store.open_source`); config: the run's ExperimentConfig as a dict;
    run_dir: the run folder (shared storage for Ray); threads: torch CPU threads while it runs (0: leave
    them as they are; the count is restored afterwards)."""

    tile: Tile
    source: dict
    config: dict
    run_dir: str
    threads: int = 0


def tile_dir(run_dir: str | Path, tile: Tile) -> Path:
    return Path(run_dir) / TILES_FOLDER / tile.key


def is_done(run_dir: str | Path, tile: Tile) -> bool:
    return (tile_dir(run_dir, tile) / RESULT_FILE).is_file()


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def peak_private_mb() -> float:
    """Peak resident memory of this process so far less the file-backed pages it maps now (shared libraries,
    memory-mapped data), MiB: its own memory, whatever the page cache does with the libraries' pages (a kernel
    that keeps them as huge pages makes every process that maps torch look 1 GB larger). Linux; elsewhere
    :func:`peak_rss_mb`."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return peak_rss_mb()
    values = {key: float(value) for key, value in re.findall(r"^(VmHWM|RssFile|RssShmem):\s+(\d+) kB", status, re.M)}
    if "VmHWM" not in values:
        return peak_rss_mb()
    return (values["VmHWM"] - values.get("RssFile", 0.0) - values.get("RssShmem", 0.0)) / 1024.0


def tile_config(job: TileJob):
    """The ExperimentConfig of one tile: the run's, with the tile's seed and folder, and no progress bar."""
    config = ExperimentConfig.from_dict(job.config)
    config.train.seed = job.tile.seed(config.train.seed)
    config.train.progress = False
    config.out_dir = str(tile_dir(job.run_dir, job.tile))
    config.name = job.tile.key
    return config


def run_tile(job: TileJob) -> dict:
    """Fit one tile and write its result.json; returns that result (see the module docstring).

    The result holds the tile, its seed, steps, seconds, samples/s, the last validation, the stored model
    bytes, the window's texel count and this process's peak resident memory (MiB).
    """
    import torch

    threads_before = torch.get_num_threads()
    if job.threads > 0:
        torch.set_num_threads(job.threads)
    try:
        return _fit(job)
    finally:
        torch.set_num_threads(threads_before)


def _fit(job: TileJob) -> dict:
    import torch

    started = time.perf_counter()
    folder = make_dir(tile_dir(job.run_dir, job.tile))
    (folder / RESULT_FILE).unlink(missing_ok=True)
    config = tile_config(job)
    sequence = open_source(job.source).read_window(job.tile.window, config.field.components)
    with open(folder / OUTPUT_FILE, "w") as out, contextlib.redirect_stdout(out):
        trainer = Trainer(config, sequence, overwrite=True)
        result = trainer.fit()
    valid = sequence.height * sequence.width if sequence.mask is None else int(sequence.mask.sum())
    row = {
        "tile": job.tile.to_dict(), "key": job.tile.key, "seed": config.train.seed, "steps": result.steps,
        "planned_steps": result.planned_steps, "train_seconds": result.seconds,
        "seconds": time.perf_counter() - started, "samples_per_s": result.samples_per_s,
        "best_metric": result.best_metric, "final_validation": result.final_validation,
        "model_bytes": model_bytes(trainer.field), "window_texels": sequence.height * sequence.width,
        "valid_texels": valid, "nan_events": result.nan_events, "threads": torch.get_num_threads(),
        "device": str(trainer.device), "peak_rss_mb": peak_rss_mb(),
    }
    write_json_atomic(folder / RESULT_FILE, row)
    return row
