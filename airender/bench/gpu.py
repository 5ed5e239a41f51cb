"""The prepared GPU benchmark, ``python scripts/gpu_bench.py --out DIR``: what a lent GPU is measured on,
unattended, in a few minutes.

Every figure is a median after warm-up, timed with CUDA events on a GPU (:mod:`airender.timing`):

    decode   whole-frame decode at 1920 x 1080 of every preset's field (initial weights: a decode costs the same
             whatever the weights), fp32 and fp16, eager, and with ``torch.compile`` for --compile_presets
             (while --compile_budget_s lasts: compiling takes tens of seconds each); random access (queries/s)
    fit      tile fitting as ``airender train --tile_size 128`` runs it (one tile after another in one process,
             on the device) on a sparse 4096^2 atlas of the bundled sample blocks: tiles/s, samples/s, and the
             time a whole level (one 16384^2 atlas and one 4096^2 atlas fully covered by tiles: 17,408 tiles
             of 128^2) takes at that rate
    atlas    whole-frame decode of a sparse 16384^2 atlas fitted the same way (its tiles, the rest a hole)

It writes ``gpu_bench.json`` (every figure, the machine) and ``gpu_bench.md`` (the table for docs/RESULTS.md)
into ``--out``. Without CUDA it runs on the CPU; ``--quick`` makes every part small (the test suite runs it
so, in seconds).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from airender.bake.sample import materialise_sample_atlas
from airender.bench import untrained_preset_field
from airender.bench.atlas import level_tiles, make_atlas
from airender.bench.decode import time_decode
from airender.data import load_sequence
from airender.demo import sample_dir
from airender.device import resolve_device
from airender.fileio import write_json_atomic, write_text_atomic
from airender.models import load_model
from airender.presets import PRESETS, apply_overrides, preset_config
from airender.tiles.runner import fit_tiled
from airender.timing import call_times_ms


@dataclass(frozen=True)
class BenchSizes:
    """What each part measures: decode resolution and repeats, the fitted atlas, the decoded atlas."""

    width: int = 1920
    height: int = 1080
    repeats: int = 20
    warmup: int = 3
    fit_atlas: int = 4096
    fit_blocks: int = 8
    steps: int = 200
    batch: int = 8192
    decode_atlas: int = 16384
    decode_blocks: int = 4
    tile: int = 128


QUICK = BenchSizes(width=96, height=54, repeats=2, warmup=1, fit_atlas=256, fit_blocks=2, steps=4, batch=512,
                   decode_atlas=512, decode_blocks=2)


def decode_rows(device: torch.device, sizes: BenchSizes, presets: list[str], compiled_presets: list[str],
                deadline: float) -> list[dict]:
    """One row per preset x precision (fp16 on CUDA only) x compile (``compiled_presets`` only): median ms of a
    whole frame, cache ms, queries/s, bytes. Compiled decodes start only before ``deadline`` (time.monotonic)."""
    sequence = load_sequence(sample_dir() / "hours")
    rows = []
    for name in presets:
        field = untrained_preset_field(name, sequence, device)
        for half in ([False, True] if device.type == "cuda" else [False]):
            for compiled in [False, True] if name in compiled_presets else [False]:
                if compiled and time.monotonic() > deadline:
                    print(f"decode {name} compiled: skipped (past --compile_budget_s)", flush=True)
                    continue
                timing = time_decode(field, name, sizes.width, sizes.height, sizes.repeats, sizes.warmup, half=half,
                                     compile_decode=compiled)
                rows.append({"preset": name, "precision": "fp16" if half else "fp32", "compile": compiled,
                             "decode_ms": timing.decode_ms_median, "cache_ms": timing.prepare_ms,
                             "queries_per_s": timing.queries_per_s, "model_bytes": timing.model_bytes})
                print(f"decode {sizes.width}x{sizes.height} {name:9s} {rows[-1]['precision']} "
                      f"{'compiled' if compiled else 'eager':8s} {timing.decode_ms_median:9.3f} ms", flush=True)
        del field
    return rows


def _fit(root: Path, out: Path, device: torch.device, sizes: BenchSizes) -> float:
    """Wall seconds of fitting the tiles of the atlas in ``root`` into the run ``out``, one after another."""
    config = apply_overrides(preset_config("hashgrid"), {
        "data": {"data_dir": str(root), "tile_size": sizes.tile},
        "train": {"max_steps": sizes.steps, "batch_size": sizes.batch, "progress": False, "device": str(device)}})
    config.out_dir = str(out)
    start = time.perf_counter()
    fit_tiled(config, workers=1, echo=lambda line: None)
    return time.perf_counter() - start


def fit_row(base: Path, sample: Path, device: torch.device, sizes: BenchSizes) -> dict:
    """Tiles/s and samples/s of tile fitting on a sparse atlas, and the whole level's time at that rate."""
    root = base / "fit_atlas"
    made = make_atlas(root, sizes.fit_atlas, sizes.fit_blocks, sample)
    wall = _fit(root, base / "fit_run", device, sizes)
    rows = [json.loads(line) for line in (base / "fit_run" / "train_log.jsonl").read_text().splitlines()]
    tile_seconds = [r["seconds"] for r in rows if r["event"] == "tile"]
    tiles = level_tiles(sizes.tile)
    tiles_per_s = len(tile_seconds) / max(sum(tile_seconds), 1e-9)
    row = {"atlas": sizes.fit_atlas, "blocks": made["blocks"], "tiles": len(tile_seconds), "wall_s": wall,
           "tile_s_median": statistics.median(tile_seconds), "tiles_per_s": tiles_per_s,
           "samples_per_s": tiles_per_s * sizes.steps * sizes.batch, "steps": sizes.steps, "batch": sizes.batch,
           "level_tiles": tiles, "level_hours": tiles / tiles_per_s / 3600.0}
    print(f"fit {sizes.fit_atlas}^2 sparse atlas: {row['tiles']} tiles, {row['tile_s_median']:.2f} s a tile "
          f"(median), {tiles_per_s:.3f} tiles/s, {row['samples_per_s'] / 1e3:,.0f}k samples/s; a whole level "
          f"({tiles:,} tiles) {row['level_hours']:.1f} h", flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return row


def atlas_row(base: Path, sample: Path, device: torch.device, sizes: BenchSizes) -> dict:
    """Whole-frame decode ms of a sparse atlas of ``sizes.decode_atlas``^2 texels (its fitted tiles)."""
    root = base / "decode_atlas"
    made = make_atlas(root, sizes.decode_atlas, sizes.decode_blocks, sample)
    _fit(root, base / "decode_run", device, sizes)
    atlas = load_model(base / "decode_run" / "last.ckpt", device).field
    times = call_times_ms(atlas.decode, min(sizes.repeats, 5), 1, device)
    row = {"atlas": sizes.decode_atlas, "tiles": made["blocks"], "decode_ms": statistics.median(times),
           "texels": sizes.decode_atlas ** 2}
    print(f"decode {sizes.decode_atlas}^2 sparse atlas ({row['tiles']} fitted tiles): {row['decode_ms']:.1f} ms",
          flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return row


def markdown(results: dict) -> str:
    """The table of docs/RESULTS.md for one run."""
    lines = [f"GPU benchmark on {results['gpu']} (torch {results['torch']}; `python scripts/gpu_bench.py`):", "",
             f"| preset | precision | compile | {results['sizes']['width']}x{results['sizes']['height']} decode ms "
             f"| cache ms | queries/s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | {r['decode_ms']:.3f} | "
              f"{r['cache_ms']:.1f} | {r['queries_per_s'] / 1e6:.1f}M |" for r in results["decode"]]
    fit, atlas = results["fit"], results["atlas"]
    lines += ["", f"Tile fitting (hashgrid, {fit['steps']} steps x {fit['batch']} texels a tile, one tile after "
                  f"another): {fit['tiles']} tiles of a sparse {fit['atlas']}^2 atlas, {fit['tile_s_median']:.2f} s "
                  f"a tile, {fit['tiles_per_s']:.3f} tiles/s, {fit['samples_per_s'] / 1e3:,.0f}k samples/s; a whole "
                  f"level ({fit['level_tiles']:,} tiles) {fit['level_hours']:.1f} h.",
              f"Whole-frame decode of a sparse {atlas['atlas']}^2 atlas ({atlas['tiles']} fitted tiles): "
              f"{atlas['decode_ms']:.1f} ms."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_bench.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="gpu_bench", help="folder for gpu_bench.json and gpu_bench.md (default: gpu_bench)")
    p.add_argument("--device", default="auto", help="auto (CUDA when there is one), cuda, cuda:N or cpu")
    p.add_argument("--quick", action="store_true", help="every part small (a smoke run, e.g. on the CPU)")
    p.add_argument("--presets", default=",".join(PRESETS), help="presets to decode (default: all)")
    p.add_argument("--compile_presets", default="hashgrid,quality,basis",
                   help="presets also decoded with torch.compile, on CUDA (default: hashgrid,quality,basis; "
                        "'' for none)")
    p.add_argument("--compile_budget_s", type=float, default=240.0,
                   help="no compiled decode starts later than this many seconds into the run (default: 240)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    sizes = QUICK if args.quick else BenchSizes()
    presets = [name for name in args.presets.split(",") if name]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)",
               "device": str(device), "torch": torch.__version__, "sizes": sizes.__dict__}
    print(f"gpu_bench on {results['gpu']}, torch {torch.__version__}, {'quick' if args.quick else 'full'} sizes",
          flush=True)
    compiled = [name for name in args.compile_presets.split(",") if name] if device.type == "cuda" else []
    base = Path(tempfile.mkdtemp(prefix="airender-gpu-bench-"))
    try:
        sample = materialise_sample_atlas(base / "sample")
        results["decode"] = decode_rows(device, sizes, presets, compiled, time.monotonic() + args.compile_budget_s)
        results["fit"] = fit_row(base, sample, device, sizes)
        results["atlas"] = atlas_row(base, sample, device, sizes)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    write_json_atomic(out / "gpu_bench.json", results)
    write_text_atomic(out / "gpu_bench.md", markdown(results))
    print(f"wrote {out / 'gpu_bench.json'} and {out / 'gpu_bench.md'}")
    return 0
