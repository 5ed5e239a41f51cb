"""``airender bench --atlas 1024,4096,16384``: tiled fitting of synthetic atlases of any size.

For each size S a virtual-texture atlas of S x S texels x 24 hours is written as sparse files
(:mod:`airender.tiles.synthetic`; S >= 4096 in 4 parts, else 1): ``--atlas_blocks`` copies of the bundled
sample atlas (128 x 128 texels, about 85 % valid) placed along the diagonal, the rest a hole whose
texels are invalid, so the plan holds exactly those blocks' tiles. Each fit runs in a fresh process
(``python -m airender.bench.atlas``) for each ``--atlas_workers`` count and reports its wall time
(planning, the mask scan over the whole atlas, fitting, writing the tiled checkpoints), the peak resident
memory of the process and of its largest worker (``resource.getrusage``, ru_maxrss), seconds per tile and
per valid megatexel, and the speed-up over the first worker count. Last, an estimate for a whole level of
one 16384^2 and one 4096^2 atlas fully covered by tiles: on this machine's CPUs, and on one and on
``--gpus`` GPUs, where the per-tile GPU time is an assumption (``--gpu_samples_per_s``) plus the per-tile
set-up measured here.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airender.bake.sample import materialise_sample_atlas
from airender.errors import InputError
from airender.fileio import write_json_atomic
from airender.presets import PRESETS, apply_overrides, preset_config
from airender.tiles.runner import fit_tiled
from airender.tiles.synthetic import disk_bytes, sample_blocks, write_sparse_atlas

HOURS = [float(h) for h in range(1, 25)]
SAMPLE_SIZE = 128
LEVEL = (16384, 4096)  # the atlases of one production level (docs/HPRC-FORMAT.md)
# docs/RESULTS.md: the quality preset trained at 662k samples/s on one H100
DEFAULT_GPU_SAMPLES_PER_S = 662_000.0


def level_tiles(tile: int) -> int:
    """Tiles of ``tile``^2 texels that cover the atlases of a whole level (LEVEL) fully."""
    return sum((-(-size // tile)) ** 2 for size in LEVEL)


def add_atlas_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--atlas", default="", metavar="SIZE[,SIZE...]",
                   help="instead of the other benchmarks: fit synthetic sparse S x S atlases tile by tile, e.g. "
                        "1024,4096,16384 (see airender/bench/atlas.py)")
    p.add_argument("--atlas_tile", type=int, default=128, help="--atlas: tile size in texels (default: 128)")
    p.add_argument("--atlas_workers", default="1,2", help="--atlas: worker counts to time (default: 1,2)")
    p.add_argument("--atlas_blocks", type=int, default=4,
                   help="--atlas: copies of the 128 x 128 sample atlas written into each atlas (default: 4)")
    p.add_argument("--atlas_preset", default="hashgrid", help="--atlas: preset of every tile (default: hashgrid)")
    p.add_argument("--atlas_steps", type=int, default=200, help="--atlas: training steps per tile (default: 200)")
    p.add_argument("--atlas_batch", type=int, default=8192, help="--atlas: texels per step (default: 8192)")
    p.add_argument("--atlas_dir", default="", help="--atlas: where to write the sparse atlases and runs "
                                                   "(default: a temporary folder, removed afterwards)")
    p.add_argument("--gpus", type=int, default=8, help="--atlas: N of the N-GPU estimate (default: 8)")
    p.add_argument("--gpu_samples_per_s", type=float, default=DEFAULT_GPU_SAMPLES_PER_S,
                   help="--atlas: training samples/s of one tile job on one GPU, for the GPU estimate (default: "
                        "662k, the quality preset on an H100 in docs/RESULTS.md)")


def _ints(text: str, flag: str) -> list[int]:
    try:
        values = [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise InputError(f"{flag}: expected whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise InputError(f"{flag}: expected positive whole numbers, got {text!r}")
    return values


def make_atlas(root: Path, size: int, blocks: int, sample_root: Path) -> dict:
    """The sparse atlas of ``size``^2 texels with ``blocks`` sample blocks along the diagonal."""
    step = max(SAMPLE_SIZE, (size // blocks) // SAMPLE_SIZE * SAMPLE_SIZE)
    positions = [(k * step, k * step) for k in range(blocks) if k * step + SAMPLE_SIZE <= size]
    parts = 4 if size >= 4096 else 1
    write_sparse_atlas(root, 1, size, parts, HOURS, sample_blocks(sample_root, positions, HOURS))
    return {"size": size, "parts": parts, "blocks": len(positions), "apparent_bytes": size * size * 3 * 4 * 24,
            "disk_bytes": disk_bytes(root)}


def child(spec: dict) -> dict:
    """Fit one synthetic atlas in this process (the benchmark's subprocess); returns times and memory."""
    import torch

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    config = apply_overrides(preset_config(spec["preset"]), {
        "data": {"data_dir": spec["data"], "tile_size": spec["tile"]},
        "train": {"max_steps": spec["steps"], "batch_size": spec["batch"], "progress": False,
                  "device": spec["device"]}})
    config.out_dir = spec["out"]
    start = time.perf_counter()
    result = fit_tiled(config, workers=spec["workers"], echo=lambda line: None)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (Path(spec["out"]) / "train_log.jsonl").read_text().splitlines()]
    tiles = [r for r in rows if r["event"] == "tile"]
    details = [json.loads((Path(spec["out"]) / "tiles" / r["tile"] / "result.json").read_text()) for r in tiles]
    return {"wall_s": wall, "fit_s": result.seconds, "tiles": len(tiles),
            "valid_texels": sum(r["valid_texels"] for r in tiles),
            "tile_seconds": [r["seconds"] for r in tiles],
            "setup_seconds": [d["seconds"] - d["train_seconds"] for d in details],
            "samples_per_s": [d["samples_per_s"] for d in details],
            "model_bytes": result.sizes["dataset"]["model_bytes"], "raw_bytes": result.sizes["dataset"]["raw_bytes"],
            "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "worker_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0}


def _run_child(spec: dict) -> dict:
    result = subprocess.run([sys.executable, "-m", "airender.bench.atlas", json.dumps(spec)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark run failed ({spec['out']}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cmd_atlas_bench(args: argparse.Namespace) -> int:
    sizes = _ints(args.atlas, "--atlas")
    workers = _ints(args.atlas_workers, "--atlas_workers")
    if any(s < SAMPLE_SIZE for s in sizes):
        raise InputError(f"--atlas: sizes must be at least {SAMPLE_SIZE} texels")
    if args.atlas_tile < 8 or args.atlas_blocks < 1 or args.atlas_steps < 1 or args.atlas_batch < 1 or args.gpus < 1:
        raise InputError("--atlas_tile (>= 8), --atlas_blocks, --atlas_steps, --atlas_batch and --gpus must be positive")
    if args.atlas_preset not in PRESETS:
        raise InputError(f"--atlas_preset {args.atlas_preset!r}: unknown (choose from {', '.join(PRESETS)})")
    if args.out:
        from airender.checks import check_output_file

        check_output_file(args.out)
    base = Path(args.atlas_dir) if args.atlas_dir else Path(tempfile.mkdtemp(prefix="airender-atlas-bench-"))
    load = os.getloadavg()[0]
    cores = len(os.sched_getaffinity(0))
    print(f"atlas benchmark: {cores} cores, load average {load:.2f}; preset {args.atlas_preset}, tiles of "
          f"{args.atlas_tile}^2, {args.atlas_steps} steps x {args.atlas_batch} texels per tile, 24 hours; "
          f"{args.atlas_blocks} sample blocks ({SAMPLE_SIZE}^2) per atlas; files in {base}")
    results: dict = {"cores": cores, "load_average": load, "preset": args.atlas_preset, "tile": args.atlas_tile,
                     "steps": args.atlas_steps, "batch": args.atlas_batch, "sizes": []}
    try:
        sample = materialise_sample_atlas(base / "sample")
        for size in sizes:
            root = base / f"atlas_{size}"
            shutil.rmtree(root, ignore_errors=True)
            made = make_atlas(root, size, args.atlas_blocks, sample)
            row = {**made, "runs": []}
            for count in workers:
                out = base / f"run_{size}_w{count}"
                shutil.rmtree(out, ignore_errors=True)
                measured = _run_child({"data": str(root), "out": str(out), "tile": args.atlas_tile,
                                       "preset": args.atlas_preset, "steps": args.atlas_steps,
                                       "batch": args.atlas_batch, "workers": count, "device": args.device})
                measured["workers"] = count
                row["runs"].append(measured)
                shutil.rmtree(out, ignore_errors=True)
                mtex = measured["valid_texels"] / 1e6
                peak = max(measured["self_peak_rss_mb"], measured["worker_peak_rss_mb"])
                speed = row["runs"][0]["wall_s"] / measured["wall_s"]
                print(f"{size:6d}^2 ({made['parts']} parts, {made['apparent_bytes'] / 2**30:6.1f} GiB of frames on paper, "
                      f"{made['disk_bytes'] / 2**20:5.1f} MiB on disk) workers {count}: {measured['tiles']} tiles in "
                      f"{measured['wall_s']:6.1f} s wall ({measured['fit_s'] / max(measured['tiles'], 1):5.1f} s a tile, "
                      f"{measured['fit_s'] / mtex:6.1f} s per valid megatexel; x{speed:.2f} vs workers "
                      f"{workers[0]}); peak RSS {measured['self_peak_rss_mb']:.0f} MiB main, "
                      f"{measured['worker_peak_rss_mb']:.0f} MiB largest worker (max {peak:.0f} MiB)", flush=True)
            results["sizes"].append(row)
            shutil.rmtree(root, ignore_errors=True)
        runs = [r for row in results["sizes"] for r in row["runs"]]
        serial = [r for r in runs if r["workers"] == 1] or runs
        tile_s = sum(sum(r["tile_seconds"]) for r in serial) / max(sum(r["tiles"] for r in serial), 1)
        setup_s = sum(sum(r["setup_seconds"]) for r in serial) / max(sum(r["tiles"] for r in serial), 1)
        tiles = level_tiles(args.atlas_tile)
        gpu_tile_s = args.atlas_steps * args.atlas_batch / args.gpu_samples_per_s + setup_s
        best = min(runs, key=lambda r: r["wall_s"] / max(r["tiles"], 1))
        cpu_tile_wall = best["wall_s"] / max(best["tiles"], 1)
        estimate = {"level_tiles": tiles, "cpu_tile_s": tile_s, "setup_s": setup_s, "gpu_tile_s": gpu_tile_s,
                    "cpu_level_s": tiles * cpu_tile_wall, "gpu1_level_s": tiles * gpu_tile_s,
                    "gpuN_level_s": tiles * gpu_tile_s / args.gpus, "gpus": args.gpus}
        results["estimate"] = estimate
        print(f"estimate for a whole level (16384^2 + 4096^2 fully covered: {tiles:,} tiles of "
              f"{args.atlas_tile}^2 at this budget): here {_time(estimate['cpu_level_s'])} "
              f"({cpu_tile_wall:.1f} s wall a tile with {best['workers']} workers); one GPU "
              f"{_time(estimate['gpu1_level_s'])}, {args.gpus} GPUs {_time(estimate['gpuN_level_s'])} "
              f"(assumed {args.gpu_samples_per_s / 1e3:,.0f}k samples/s a tile job on a GPU, not measured here, "
              f"plus {setup_s:.1f} s set-up a tile measured here)")
    finally:
        if not args.atlas_dir:
            shutil.rmtree(base, ignore_errors=True)
    if args.out:
        write_json_atomic(args.out, results)
    return 0


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
