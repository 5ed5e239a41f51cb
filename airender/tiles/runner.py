"""Fit every tile of a plan: in this process, in local worker processes, or as Ray tasks; resumable.

Run folder of a tiled fit::

    tiling.json        the run's configuration and its tile plan (written before any tile is fitted)
    config.json        the configuration and a summary of the plan
    train_log.jsonl    one line per fitted tile (seconds, steps, validation, bytes, peak memory) and one
                       per restart that skipped finished tiles
    tiles/<atlas>_<y>_<x>/   an ordinary run folder per tile, plus result.json once the tile is done
    cache/             frames of an image folder or contest layout as a memory-mappable cache
    last.ckpt, best.ckpt     the tiled model (airender.models.tiled), written when every tile is done
    sizes.json         bytes and compression ratio per atlas and for the dataset

A tile is done when its ``result.json`` exists (written atomically after its checkpoints). Running the
same command again, or ``airender train --resume RUN``, fits only the tiles that are not done
("k of n tiles already fitted; skipping"); any option but the reporting ones (progress, tensorboard,
device) must be the same, and so must the data. Each tile's seed depends only on where it is, so the
fields do not depend on the number of workers or on the engine.

Engines: ``workers`` 1 runs the tiles here, one after another; ``workers`` N > 1 runs N spawned
processes; ``ray`` "auto" (a running Ray cluster, else a local one), "local" or an address runs one Ray
task per tile (``num_gpus=1`` when the cluster has GPUs, else ``num_cpus`` = the tile's threads); tasks
write into the run folder, which must be on storage every node sees. Each tile job runs with
``--tile_threads`` torch CPU threads (default 1; 0: cores / workers): the result of CPU training
depends on the thread count (matrix-product reductions), so a fixed count keeps the fields identical
for any number of workers and any engine.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

from airender.checks import check_output_dir
from airender.config import ExperimentConfig
from airender.data.frame_store import open_source, open_sources
from airender.engine.run_folder import check_run_folder, clear_run_folder, differing_options, out_dir_for, run_lock
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.fileio import append_line_durable, make_dir, write_json_atomic
from airender.models.checkpoint import read_checkpoint, save_checkpoint
from airender.models.tiled import TiledModel, tiled_checkpoint
from airender.progress import progress
from airender.tiles.jobs import TILES_FOLDER, TileJob, is_done, run_tile, tile_config, tile_dir
from airender.tiles.plan import TilePlan, plan_tiles

TILING_FILE = "tiling.json"
CACHE_FOLDER = "cache"
SIZES_FILE = "sizes.json"
LOG_FILE = "train_log.jsonl"
# may differ when a tiled run continues (a tiled run fits no network between hours: between_* are unused)
RUNTIME_OPTIONS = frozenset({"progress", "tensorboard", "device", "between_steps", "between_channels",
                             "between_store_dtype"})
RAY_INIT_KWARGS = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning"}


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class TiledResult:
    """What a tiled fit did: the plan, tiles fitted now and skipped (done before), seconds, sizes."""

    run_dir: Path
    plan: TilePlan
    fitted: int
    skipped: int
    seconds: float
    sizes: dict = field(default_factory=dict)
    engine: str = ""


# --- run folder -------------------------------------------------------------------------------------------
def is_tiled_run(folder: str | Path) -> bool:
    return (Path(folder) / TILING_FILE).is_file()


def read_tiling(folder: str | Path) -> tuple[ExperimentConfig, dict]:
    """(configuration, plan dict) of the tiled run in ``folder``."""
    path = Path(folder) / TILING_FILE
    try:
        stored = json.loads(path.read_text())
        return ExperimentConfig.from_dict(stored["config"]), stored["plan"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a readable tiled run ({type(exc).__name__}: {exc})") from None


def clear_tiled_run(folder: Path) -> None:
    """Remove a previous run's artefacts from ``folder`` (single-field or tiled; the frame cache stays)."""
    clear_run_folder(folder)
    for name in (TILING_FILE, SIZES_FILE):
        (folder / name).unlink(missing_ok=True)
    if (folder / TILES_FOLDER).is_dir():
        shutil.rmtree(folder / TILES_FOLDER)


def _check_folder_state(run_dir: Path, config: ExperimentConfig, overwrite: bool) -> bool:
    """True when ``run_dir`` holds this same tiled run (to continue); refuses any other run there
    unless ``overwrite``."""
    if overwrite:
        return False
    if is_tiled_run(run_dir):
        stored, _ = read_tiling(run_dir)
        changed = differing_options(stored, config, RUNTIME_OPTIONS)
        if changed:
            raise InputError(f"{run_dir}: holds a tiled run with other options ({', '.join(changed)}); rerun it "
                             f"with its own options to continue it, pass --overwrite to replace it, or choose "
                             f"another --out_dir")
        return True
    check_run_folder(run_dir, overwrite)
    return False


def _preflight(plan: TilePlan, config: ExperimentConfig, run_dir: Path) -> None:
    """Build (not fit) the Trainer of the first and of the smallest tile: any bad option or data problem
    raises InputError here, before anything is written."""
    if config.train.val_extra_dir:
        raise InputError("--val_extra_dir: extra validation frames cover the whole frame; they do not apply to "
                         "tiles (--tile_size)")
    tiles = [(atlas, t) for atlas in plan.atlases for t in atlas.tiles]
    smallest = min(tiles, key=lambda at: at[1].window[2] * at[1].window[3])
    for atlas, tile in [tiles[0]] + ([smallest] if smallest is not tiles[0] else []):
        job = TileJob(tile, atlas.source, config.to_dict(), str(run_dir))
        sequence = open_source(atlas.source).read_window(tile.window, config.field.components)
        try:
            Trainer(tile_config(job), sequence, out_dir=run_dir / TILES_FOLDER / tile.key)
        except InputError as exc:
            raise InputError(f"tile {tile.key} ({sequence.source}): {exc}") from None


def prepare_run(config: ExperimentConfig, overwrite: bool = False) -> tuple[TilePlan, bool]:
    """Check the run folder, open the data (converting image folders to the frame cache), plan the tiles
    and build the first tile's trainer. Returns (plan, continuing). On bad input nothing is left written."""
    tile_size, overlap = config.data.tile_size, config.data.tile_overlap
    if tile_size <= 0:
        raise InputError(f"--tile_size: must be positive for a tiled fit, got {tile_size}")
    if overlap >= tile_size:
        raise InputError(f"--tile_overlap: {overlap} texels must be less than --tile_size {tile_size}")
    run_dir = check_output_dir(out_dir_for(config))
    continuing = _check_folder_state(run_dir, config, overwrite)
    existed, cache_existed = run_dir.exists(), (run_dir / CACHE_FOLDER).exists()
    try:
        sources = open_sources(config.data.data_dir, config.data.lightmap_id, config.data.component,
                               run_dir / CACHE_FOLDER)
        plan = plan_tiles(sources, tile_size, overlap)
        if not plan.tiles():
            raise InputError(f"{config.data.data_dir}: no {tile_size}x{tile_size} tile holds a valid texel")
        if continuing:
            _, stored_plan = read_tiling(run_dir)
            if stored_plan != json.loads(json.dumps(plan.to_dict())):
                raise InputError(f"{run_dir}: its tiled run was planned on other data (the atlases, hours or masks "
                                 f"of {config.data.data_dir} changed); pass --overwrite to start again")
        _preflight(plan, config, run_dir)
    except BaseException:
        if not existed:
            shutil.rmtree(run_dir, ignore_errors=True)
        elif not cache_existed:
            shutil.rmtree(run_dir / CACHE_FOLDER, ignore_errors=True)
        raise
    return plan, continuing


# --- engines ----------------------------------------------------------------------------------------------
def _serial(jobs: list[TileJob]) -> Iterator[dict]:
    for job in jobs:
        yield run_tile(job)


def _die_with_parent() -> None:
    """Worker initializer: on Linux, ask the kernel to kill this worker when the fitting process dies (a
    SIGKILL of the parent then leaves no worker fitting a tile behind); elsewhere, nothing."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _processes(jobs: list[TileJob], workers: int) -> Iterator[dict]:
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_die_with_parent) as pool:
        pending = {pool.submit(run_tile, job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def start_ray(address: str):
    """Connect to Ray: ``auto`` (RAY_ADDRESS or a running cluster, else a local instance on this machine's
    cores), ``local`` (a local instance) or a cluster address. Returns (ray module, whether we started it);
    an already initialised Ray is used as it is."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray: Ray is not installed (pip install 'airender[ray]')") from None
    if ray.is_initialized():
        return ray, False
    try:
        if address == "local":
            ray.init(num_cpus=cores(), **RAY_INIT_KWARGS)
        elif address == "auto":
            try:
                ray.init(address=os.environ.get("RAY_ADDRESS") or "auto", **RAY_INIT_KWARGS)
            except ConnectionError:
                ray.init(num_cpus=cores(), **RAY_INIT_KWARGS)
        else:
            ray.init(address=address, **RAY_INIT_KWARGS)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise InputError(f"--ray {address}: cannot start or reach Ray ({str(exc).splitlines()[0]})") from None
    return ray, True


def _ray(jobs: list[TileJob], ray) -> Iterator[dict]:
    gpus = float(ray.cluster_resources().get("GPU", 0.0))
    cpus = max(1, jobs[0].threads) if jobs else 1
    task = ray.remote(run_tile).options(**({"num_gpus": 1} if gpus > 0 else {"num_cpus": cpus}))
    pending = [task.remote(job) for job in jobs]
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


# --- the fit ----------------------------------------------------------------------------------------------
def _scalar_metrics(metrics: dict) -> dict:
    return {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}


def fit_tiled(config: ExperimentConfig, workers: int = 1, ray: str = "", overwrite: bool = False,
              echo: Callable[[str], None] = print) -> TiledResult:
    """Fit every tile of ``config``'s data that is not done yet, then write the tiled ``last.ckpt`` and
    ``best.ckpt`` and ``sizes.json`` (see the module docstring). ``workers``: local processes (1: here);
    ``ray``: "" (no Ray), "auto", "local" or an address."""
    if workers < 1:
        raise InputError(f"--workers: must be 1 or more, got {workers}")
    if ray and workers > 1:
        raise InputError("--workers/--ray: choose one (Ray runs one task per tile on the cluster's resources)")
    plan, continuing = prepare_run(config, overwrite)
    run_dir = out_dir_for(config)
    with run_lock(run_dir):
        return _fit_plan(config, plan, continuing, run_dir, workers, ray, overwrite, echo)


def _fit_plan(config: ExperimentConfig, plan: TilePlan, continuing: bool, run_dir: Path, workers: int, ray: str,
              overwrite: bool, echo: Callable[[str], None]) -> TiledResult:
    """The body of :func:`fit_tiled`, run while this process holds the run folder's lock."""
    if overwrite:
        clear_tiled_run(run_dir)
    make_dir(run_dir)
    tiles = plan.tiles()
    summary = {"tile_size": plan.tile_size, "overlap": plan.overlap, "tiles": len(tiles),
               "atlases": [{"atlas_id": a.info.atlas_id, "size": [a.info.height, a.info.width], "grid": list(a.grid),
                            "tiles": len(a.tiles), "skipped_empty": a.skipped, "valid_texels": a.valid_texels}
                           for a in plan.atlases]}
    if not continuing:
        (run_dir / LOG_FILE).unlink(missing_ok=True)
        write_json_atomic(run_dir / TILING_FILE, {"config": config.to_dict(), "plan": plan.to_dict()})
    write_json_atomic(run_dir / "config.json", {"config": config.to_dict(), "tiling": summary})
    log = run_dir / LOG_FILE

    todo = [(atlas, t) for atlas in plan.atlases for t in atlas.tiles if not is_done(run_dir, t)]
    done = len(tiles) - len(todo)
    skipped_empty = sum(a.skipped for a in plan.atlases)
    threads = config.data.tile_threads or (1 if ray else max(1, cores() // workers))
    engine = (f"Ray ({ray})" if ray else f"{workers} worker processes" if workers > 1 else "this process") + \
        f", {threads} torch thread{'s' if threads > 1 else ''} per tile on the CPU"
    echo(f"tiles: {len(tiles)} tiles of {plan.tile_size}x{plan.tile_size} texels (overlap {plan.overlap}) in "
         f"{len(plan.atlases)} atlas{'es' if len(plan.atlases) > 1 else ''}"
         + (f"; {skipped_empty} tiles without a valid texel skipped" if skipped_empty else "")
         + f"; fitting on {engine}; outputs in {run_dir}")
    if done:
        echo(f"{done} of {len(tiles)} tiles already fitted; skipping")
        append_line_durable(log, json.dumps({"event": "skip", "tiles_done": done, "tiles": len(tiles),
                                             "keys": [t.key for t in tiles if is_done(run_dir, t)]}))
    started = time.perf_counter()
    jobs = [TileJob(t, atlas.source, config.to_dict(), str(run_dir)) for atlas, t in todo]
    fitted = 0
    if jobs:
        ray_module, ray_started = (start_ray(ray) if ray else (None, False))
        for job in jobs:
            job.threads = threads
        if workers > 1:
            results = _processes(jobs, min(workers, len(jobs)))
        elif ray_module is not None:
            results = _ray(jobs, ray_module)
        else:
            results = _serial(jobs)
        bar = progress(len(tiles), "tiles", "tile", initial=done, disable=not config.train.progress)
        try:
            for row in results:
                fitted += 1
                metrics = _scalar_metrics(row.get("final_validation"))
                append_line_durable(log, json.dumps({
                    "event": "tile", "tile": row["key"], "atlas": row["tile"]["atlas_id"], "y": row["tile"]["y"],
                    "x": row["tile"]["x"], "seed": row["seed"], "steps": row["steps"],
                    "seconds": round(row["seconds"], 3), "validation": metrics, "model_bytes": row["model_bytes"],
                    "valid_texels": row["valid_texels"], "peak_rss_mb": round(row["peak_rss_mb"], 1),
                    "threads": row["threads"], "device": row["device"], "tiles_done": done + fitted,
                    "tiles": len(tiles), "elapsed_s": round(time.perf_counter() - started, 3)}))
                psnr = metrics.get("psnr")
                bar.set_postfix_str(f"{row['key']} {row['seconds']:.1f} s" + (f" {psnr:.2f} dB" if psnr is not None
                                                                               else ""))
                bar.update(1)
        finally:
            bar.close()
            if ray_started:
                ray_module.shutdown()
    seconds = time.perf_counter() - started
    sizes = write_checkpoints(run_dir, plan, config)
    return TiledResult(run_dir, plan, fitted, done, seconds, sizes, engine)


def assemble_checkpoint(run_dir: Path, plan: TilePlan, config: ExperimentConfig, which: str) -> dict:
    """The tiled checkpoint from every tile's ``which``.ckpt ("last" or "best"; a tile without best.ckpt
    gives its last.ckpt). Memory: the stored weights of every tile (the model's size), one training state
    at a time."""
    atlases = [{**a.info.to_dict(), "label": a.info.label, "grid": list(a.grid), "valid_texels": a.valid_texels}
               for a in plan.atlases]
    tiles = []
    for tile in plan.tiles():
        folder = tile_dir(run_dir, tile)
        path = folder / f"{which}.ckpt"
        if not path.is_file():
            path = folder / "last.ckpt"
        ckpt = read_checkpoint(path)
        tiles.append({"atlas_id": tile.atlas_id, "y": tile.y, "x": tile.x, "height": tile.height,
                      "width": tile.width, "window": list(tile.window), "config": ckpt["config"],
                      "data": ckpt["data"], "model": ckpt["model"]})
        del ckpt
    return tiled_checkpoint(config.to_dict(), plan.tile_size, plan.overlap, atlases, tiles)


def write_checkpoints(run_dir: Path, plan: TilePlan, config: ExperimentConfig) -> dict:
    """Write the tiled ``best.ckpt`` and ``last.ckpt`` (atomically) and ``sizes.json``; returns the sizes
    of the last one ({"atlases": {...}, "dataset": {...}}, see TiledModel.size_report)."""
    for which in ("best", "last"):
        ckpt = assemble_checkpoint(run_dir, plan, config, which)
        save_checkpoint(run_dir / f"{which}.ckpt", ckpt)
    sizes = TiledModel(ckpt, "cpu", run_dir / "last.ckpt").size_report()
    write_json_atomic(run_dir / SIZES_FILE, sizes)
    return sizes


def size_lines(sizes: dict) -> list[str]:
    """One line per atlas and one for the dataset: bytes, % of the raw float32 frames and the ratio."""
    def line(name: str, row: dict) -> str:
        return (f"{name}: {row['tiles']} tiles, {row['model_bytes']:,} bytes = {row['percent_of_raw']:.3f} % of the "
                f"raw float32 frames ({row['raw_bytes']:,} bytes for 24 frames), ratio {row['compression_ratio']:.0f}:1")

    lines = [line(f"atlas {ident or '0'}", row) for ident, row in sizes["atlases"].items()]
    if len(sizes["atlases"]) > 1:
        lines.append(line("dataset", sizes["dataset"]))
    return lines


def tiled_resume_folder(target: str | Path) -> Path | None:
    """The tiled run folder that ``airender train --resume target`` names, or None when it is not one."""
    target = Path(target)
    folder = target if target.is_dir() or not target.suffix else target.parent
    return folder if is_tiled_run(folder) else None
