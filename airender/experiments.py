"""A/B comparisons and grid sweeps: ``airender compare`` and ``airender sweep``.

Every run (a preset with overrides, or a classical anchor) trains and evaluates on its own and writes a
structured ``result.json`` (atomically) in its folder; nothing parses another run's logs. A finished
run is recognised by its ``result.json`` and skipped on restart. The aggregate is ``results.csv``,
``results.md`` and pictures: metrics vs hour per method, quality vs bytes, and a crop sheet with error
heat maps.
"""
from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from airender.anchors import NeighbourBlend, PCABasis
from airender.bench.decode import time_decode
from airender.between import between_frames
from airender.between.net import BetweenNetConfig, fit_for_decoder, net_bytes, save_between_net
from airender.checks import check_hour, check_output_dir
from airender.cli_args import add_data_dir_argument, add_device_argument, add_out_dir_argument, add_subcommand
from airender.config import SECTION_TYPES
from airender.data import load_sequence
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.evaluate import build_metric_suite, ground_truth_groups, group_legend
from airender.fileio import atomic_path, write_json_atomic, write_text_atomic
from airender.images import error_heatmap, hdr_preview_exposure, preview_uint8, save_image_grid, save_png
from airender.models.checkpoint import load_checkpoint
from airender.presets import PRESETS, apply_overrides, preset_config
from airender.protocols import evaluate_protocol, resolve_protocol
from airender.render import whole_frames
from airender.sizes import model_bytes, raw_frames_bytes, size_report

METRICS = ("psnr", "ssim", "lpips", "flip")
GROUPS = ("hours", "between_day", "between_night", "switch", "between")  # see airender.evaluate
MARKDOWN_COLUMNS = ["method", "psnr_hours", "ssim_hours", "lpips_hours", "psnr_between_day", "ssim_between_day",
                    "lpips_between_day", "psnr_between_night", "psnr_switch", "bytes", "percent_of_raw",
                    "train_seconds", "decode_ms_1080p"]
BUDGETS = {"quick": {"epochs": 20, "samples_per_epoch": 200_000},   # the roadmap's section-8 budget
           "full": {"epochs": 20, "samples_per_epoch": 1_000_000},
           "smoke": {"epochs": 2, "samples_per_epoch": 2048, "batch_size": 1024}}  # checks the pipeline only
BETWEEN_NET_STEPS = {"quick": 1500, "full": 1500, "smoke": 10}  # fit-between steps of PRESET+learned and 'learned'
ROADMAP_GRID = {"patch_size": [16, 32], "loss_ssim_w": [0.1, 0.2, 0.5], "be_channels": [16, 32],
                "be_downsample": [1, 2]}
COMPARE_METHODS = ("baseline", "encoder", "patch_ssim", "hybrid", "film", "hashgrid", "blend", "pca8")
ANCHORS = {"blend": "stores every frame, blends neighbouring hours", "pca8": "8 PCA basis images, interpolated coefficients",
           "motion": "stores every frame, blends neighbouring hours with the shadows moved",
           "learned": "stores every frame, blends neighbouring hours by a learned per-pixel weight"}
# PRESET+motion, PRESET+learned: the preset's frames between hours with the shadows moved, or blended by a
# per-pixel weight learned from its own hours (airender/between/motion.py, airender/between/net.py)
BETWEEN_SUFFIXES = {"+motion": "motion", "+learned": "learned"}
SHEET_HOURS = (7.5, 13.5, 18.1)


@dataclass
class RunSpec:
    """One method: ``kind`` 'field' (``preset`` + ``overrides`` {section: {name: value}}) or an anchor;
    ``between`` 'model' (the method's own frames between hours), 'motion' (its frames at the hours,
    blended so that the shadows move: :class:`airender.between.motion.ShadowMotionDecoder`) or 'learned'
    (blended by a weight network fitted on its own hours: :class:`airender.between.net.LearnedBlendDecoder`)."""

    name: str
    kind: str = "field"
    preset: str = "baseline"
    overrides: dict = field(default_factory=dict)
    between: str = "model"


@dataclass
class Setup:
    """What every run of one comparison shares."""

    data_dir: str
    extra_dirs: list[str]
    out_dir: str
    budget: str = "quick"
    seed: int = 0
    lpips_weights: str | None = None
    switch_hours: list[float] = field(default_factory=lambda: [6.0, 18.0])
    decode_width: int = 1920
    decode_height: int = 1080
    decode_repeats: int = 3
    threads: int = 0
    device: str = "cpu"


def section_of(name: str) -> str:
    """The config section holding option ``name`` (for grid keys such as ``patch_size``)."""
    import dataclasses

    for section, cls in SECTION_TYPES.items():
        if name in {f.name for f in dataclasses.fields(cls)}:
            return section
    raise InputError(f"--grid: no option named {name!r}")


def run_one(spec: RunSpec, setup: Setup) -> dict:
    """Train (for fields) and evaluate one method; writes and returns its result row."""
    import torch

    if setup.threads:
        torch.set_num_threads(setup.threads)
    run_dir = Path(setup.out_dir) / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    sequence = load_sequence(setup.data_dir)
    started = time.perf_counter()
    train_seconds = 0.0
    decode_ms = math.nan
    between, net_config = spec.between, BetweenNetConfig(steps=BETWEEN_NET_STEPS[setup.budget],
                                                         day=tuple(setup.switch_hours), seed=setup.seed)
    if spec.kind == "field":
        config = apply_overrides(preset_config(spec.preset), spec.overrides)
        config = apply_overrides(config, {"train": {**BUDGETS[setup.budget], "seed": setup.seed, "progress": False,
                                                    "device": setup.device}})
        config.data.data_dir, config.out_dir, config.name = setup.data_dir, str(run_dir), spec.name
        result = Trainer(config, sequence, overwrite=True).fit()  # a rerun replaces an unfinished run
        train_seconds = result.seconds
        model = load_checkpoint(run_dir / "last.ckpt", setup.device).field
        nbytes = model_bytes(model)
        if setup.decode_repeats > 0:
            decode_ms = time_decode(model, spec.name, setup.decode_width, setup.decode_height,
                                    setup.decode_repeats, warmup=1).decode_ms_median
        if config.train.between_steps > 0 and between == "model":
            between = "learned"  # a preset with its blend weight (quality) is scored as eval --between auto
        net_config = replace(net_config, channels=config.train.between_channels,
                             store_dtype=config.train.between_store_dtype)
    elif spec.kind == "blend":
        model = NeighbourBlend(sequence)
        nbytes = model.nbytes
    elif spec.kind == "pca":
        model = PCABasis(sequence, k=int(spec.overrides.get("k", 8)))
        nbytes = model.nbytes
    else:
        raise InputError(f"unknown run kind {spec.kind!r}")
    if between != "model":
        frames, net = whole_frames(model), None
        if between == "learned":
            net = fit_for_decoder(frames, net_config, report=lambda line: None)
            save_between_net(run_dir / "between.pt", net, net_config, fitted_on=spec.name)
            nbytes += net_bytes(net)
        model = between_frames(frames, between, tuple(setup.switch_hours), net)
    groups = ground_truth_groups(model.desc, setup.data_dir, "", setup.extra_dirs, tuple(setup.switch_hours))
    # eval's default protocol: whole frames for LDR data, the first contest's (hprc) for HDR lightmaps
    report = evaluate_protocol(model, groups, build_metric_suite(setup.lpips_weights),
                               resolve_protocol(None, model.desc.is_hdr))
    raw = raw_frames_bytes(sequence.height, sequence.width)
    row: dict = {"method": spec.name, "kind": spec.kind, "preset": spec.preset if spec.kind == "field" else "",
                 "overrides": json.dumps(spec.overrides, sort_keys=True), "between": between}
    for group in GROUPS:
        for metric in METRICS:
            row[f"{metric}_{group}"] = report.means.get(group, {}).get(metric)
    size = size_report(nbytes, raw)
    row.update({"bytes": size["model_bytes"], "percent_of_raw": size["percent_of_raw"],
                "compression_ratio": size["compression_ratio"],
                "train_seconds": train_seconds, "decode_ms_1080p": decode_ms,
                "seconds_total": time.perf_counter() - started})
    exposure = hdr_preview_exposure(sequence.frames[sequence.num_frames // 2]) if sequence.is_hdr else 1.0
    for (group, hour), image in report.predictions.items():
        if any(abs(hour - h) < 1e-6 for h in SHEET_HOURS):
            save_png(run_dir / f"pred_{hour:g}.png", preview_uint8(image, model.desc.is_hdr, exposure))
            save_png(Path(setup.out_dir) / f"truth_{hour:g}.png",
                     preview_uint8(report.truths[(group, hour)], model.desc.is_hdr, exposure))
    write_json_atomic(run_dir / "result.json", {"row": row, "frames": report.rows, "spec": asdict(spec)})
    return row


def _run_one_star(args: tuple[RunSpec, Setup]) -> dict:
    return run_one(*args)


def run_all(specs: list[RunSpec], setup: Setup, workers: int = 1) -> str:
    """Run every spec whose result.json is missing (``workers`` processes), then aggregate all of them;
    returns the results table (markdown)."""
    todo = [s for s in specs if not (Path(setup.out_dir) / s.name / "result.json").is_file()]
    done = len(specs) - len(todo)
    if done:
        print(f"{done} of {len(specs)} runs already finished; skipping them")
    if workers > 1 and len(todo) > 1:
        setup.threads = setup.threads or max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for row in pool.map(_run_one_star, [(s, setup) for s in todo]):
                print(f"finished {row['method']} in {row['seconds_total']:.0f} s", flush=True)
    else:
        for spec in todo:
            print(f"running {spec.name} ...", flush=True)
            row = run_one(spec, setup)
            print(f"finished {row['method']} in {row['seconds_total']:.0f} s", flush=True)
    rows = load_results(Path(setup.out_dir), [s.name for s in specs])
    table = write_tables(rows, Path(setup.out_dir))
    write_plots(Path(setup.out_dir), [s.name for s in specs])
    return table


def load_results(out_dir: Path, names: list[str]) -> list[dict]:
    rows = []
    for name in names:
        path = out_dir / name / "result.json"
        rows.append(json.loads(path.read_text())["row"])
    return rows


def _fmt(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key.startswith("psnr"):
        return f"{value:.2f}"
    if key.startswith(("ssim", "lpips", "flip")):
        return f"{value:.4f}"
    if key == "bytes":
        return f"{value / 1024:.1f} KiB"
    if key == "percent_of_raw":
        return f"{value:.2f} %"
    if key in ("train_seconds", "decode_ms_1080p"):
        return f"{value:.0f}"
    return str(value)


TABLE_COLUMNS = ["method"] + [f"{m}_{g}" for g in GROUPS for m in METRICS] + \
    ["bytes", "percent_of_raw", "train_seconds", "decode_ms_1080p"]


def write_tables(rows: list[dict], out_dir: Path) -> str:
    """results.csv (every column) and results.md (the table); returns the markdown."""
    columns = [c for c in TABLE_COLUMNS if any(r.get(c) is not None for r in rows)]
    shown = [c for c in MARKDOWN_COLUMNS if c in columns]
    buffer = io.StringIO()
    fieldnames = list(dict.fromkeys(columns + [k for r in rows for k in r]))
    writer = csv.DictWriter(buffer, fieldnames=fieldnames)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_text_atomic(out_dir / "results.csv", buffer.getvalue())
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(c, row.get(c)) for c in shown) + " |")
    text = "\n".join(lines) + "\n\n" + group_legend(list(GROUPS)) + " Every column: results.csv.\n"
    write_text_atomic(out_dir / "results.md", text)
    return text


def write_plots(out_dir: Path, names: list[str]) -> None:
    """metrics_vs_hour.png, quality_vs_bytes.png and crops.png from the runs' result files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    results = {n: json.loads((out_dir / n / "result.json").read_text()) for n in names}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, metric in zip(axes, ("psnr", "ssim", "lpips")):
        for name, res in results.items():
            pts = sorted((f["time"], f[metric]) for f in res["frames"] if metric in f and math.isfinite(f[metric]))
            if pts:
                ax.plot(*zip(*pts), marker=".", label=name)
        ax.set_xlabel("hour of day")
        ax.set_title(metric.upper() + (" (lower is better)" if metric == "lpips" else ""))
        ax.grid(alpha=0.3)
        ax.set_xlim(0, 24)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out_dir / "metrics_vs_hour.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, metric in zip(axes, ("psnr", "ssim")):
        for name, res in results.items():
            row = res["row"]
            value = row.get(f"{metric}_between") or row.get(f"{metric}_hours")
            if value is not None:
                ax.scatter(row["percent_of_raw"], value, s=30)
                ax.annotate(name, (row["percent_of_raw"], value), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g} %"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        shares = [res["row"]["percent_of_raw"] for res in results.values()]
        ax.set_xticks([v for v in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
                       if min(shares) / 2 <= v <= max(shares) * 2])
        ax.set_xlabel("bytes the decoder reads, % of raw float32 frames")
        ax.set_ylabel(f"{metric.upper()} on between-hour frames")
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    with atomic_path(out_dir / "quality_vs_bytes.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    write_crop_sheet(out_dir, names)


def write_crop_sheet(out_dir: Path, names: list[str]) -> None:
    """Rows = a few hours, columns = ground truth then each method's crop and its error heat map."""
    from PIL import Image

    hours = [h for h in SHEET_HOURS if (out_dir / f"truth_{h:g}.png").is_file()]
    methods = [n for n in names if all((out_dir / n / f"pred_{h:g}.png").is_file() for h in hours)]
    if not hours or not methods:
        return
    rows = []
    for hour in hours:
        truth = np.asarray(Image.open(out_dir / f"truth_{hour:g}.png").convert("RGB"))
        height, width = truth.shape[:2]
        size = min(height, width) // 2
        top, left = (height - size) // 2, (width - size) // 2
        crop = (slice(top, top + size), slice(left, left + size))
        panels = [("truth", truth[crop])]
        for name in methods:
            pred = np.asarray(Image.open(out_dir / name / f"pred_{hour:g}.png").convert("RGB"))
            panels += [(name, pred[crop]), (f"{name} err", error_heatmap(pred[crop], truth[crop]))]
        rows.append((f"{hour:g} h", panels))
    save_image_grid(rows, out_dir / "crops.png", panel_inches=1.5, fontsize=7)


def compare_specs(methods: list[str], light_switch: list[float]) -> list[RunSpec]:
    specs = []
    for name in methods:
        suffix = next((k for k in BETWEEN_SUFFIXES if name.endswith(k)), "")
        base, between = (name[: -len(suffix)], BETWEEN_SUFFIXES[suffix]) if suffix else (name, "model")
        if name in ("blend", "motion", "learned"):
            specs.append(RunSpec(name, kind="blend", between="model" if name == "blend" else name))
        elif name.startswith("pca") and not suffix:
            specs.append(RunSpec(name, kind="pca", overrides={"k": int(name[3:] or 8)}))
        elif base in PRESETS:
            overrides = {"field": {"light_switch": list(light_switch)}} if light_switch else {}
            specs.append(RunSpec(name, preset=base, overrides=overrides, between=between))
        else:
            raise InputError(f"unknown method {name!r} (presets: {', '.join(PRESETS)}, each also as "
                             f"PRESET+motion and PRESET+learned; anchors: blend, motion, learned, pcaK)")
    return specs


def parse_grid(items: list[str]) -> dict[str, list]:
    """['patch_size=16,32', ...] -> {'patch_size': [16, 32], ...} (values typed by their config field)."""
    import typing

    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise InputError(f"--grid {item!r}: expected key=v1,v2")
        section = section_of(key)
        hint = typing.get_type_hints(SECTION_TYPES[section])[key]
        kind = {int: int, float: float, str: str}.get(hint)
        if hint is bool:
            from airender.cli_args import parse_bool as kind
        if kind is None:
            raise InputError(f"--grid {key}: only int, float, str and bool options can be swept")
        try:
            grid[key] = [kind(v) for v in values.split(",")]
        except ValueError:
            raise InputError(f"--grid {item!r}: values must be {getattr(kind, '__name__', kind)}") from None
    return grid


def sweep_specs(grid: dict[str, list], preset: str) -> list[RunSpec]:
    keys = sorted(grid)
    specs = []
    for values in itertools.product(*(grid[k] for k in keys)):
        overrides: dict[str, dict] = {}
        for key, value in zip(keys, values):
            overrides.setdefault(section_of(key), {})[key] = value
        name = "_".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in zip(keys, values))
        specs.append(RunSpec(name, preset=preset, overrides=overrides))
    return specs


def _common_arguments(p: argparse.ArgumentParser) -> None:
    add_data_dir_argument(p, "training frames (either layout)")
    p.add_argument("--extra", action="append", default=[],
                   help="more ground truth, e.g. fractional hours (repeatable)")
    add_out_dir_argument(p, "output folder (default: runs/compare or runs/sweep)")
    p.add_argument("--budget", choices=tuple(BUDGETS), default="quick",
                   help="quick: the roadmap's 20 x 200k samples; full: 20 x 1M; smoke: a few steps (default: quick)")
    p.add_argument("--seed", type=int, default=0, help="random seed of every run (default: 0)")
    p.add_argument("--lpips_weights", default=None, help="LPIPS-Alex v0.1 weights file "
                                                         "(default: $AIRENDER_LPIPS_WEIGHTS, then the torch hub cache)")
    p.add_argument("--switch_hours", type=float, nargs=2, default=[6.0, 18.0], metavar=("OFF", "ON"),
                   help="held-out frames within 0.25 h of these hours form the group 'switch'; between them "
                        "'between_day', else 'between_night' (default: 6 18)")
    p.add_argument("--decode_repeats", type=int, default=3, help="timed 1080p decodes per method, 0 to skip "
                                                                 "(default: 3)")
    add_device_argument(p, "cpu", "training and decoding device")


def _setup(args: argparse.Namespace, default_out: str) -> Setup:
    for folder in [args.data_dir, *args.extra]:
        if not Path(folder).is_dir():
            raise InputError(f"{folder}: no such folder")
    for hour in args.switch_hours:
        check_hour(hour, "--switch_hours")
    if args.seed < 0 or args.decode_repeats < 0:
        raise InputError("--seed and --decode_repeats must be zero or positive")
    out_dir = check_output_dir(args.out_dir or default_out)
    return Setup(data_dir=args.data_dir, extra_dirs=list(args.extra), out_dir=str(out_dir), budget=args.budget,
                 seed=args.seed, lpips_weights=args.lpips_weights, switch_hours=list(args.switch_hours),
                 decode_repeats=args.decode_repeats, device=args.device)


def add_compare_parser(sub) -> None:
    p = add_subcommand(sub, "compare", "train the roadmap configs and presets with one budget beside classical "
                                       "anchors; write a results table and pictures",
                       "airender compare --data_dir DIR [--extra DIR2] [--methods m1,m2] [--budget quick|full] [options]")
    _common_arguments(p)
    p.add_argument("--methods", default=",".join(COMPARE_METHODS),
                   help=f"comma-separated presets and anchors (blend, motion, learned, pcaK); PRESET+motion decodes "
                        f"the frames between hours of PRESET with the shadows moved (airender/between/motion.py), "
                        f"PRESET+learned blends them by a weight network fitted on its own hours "
                        f"(airender/between/net.py) (default: {','.join(COMPARE_METHODS)})")
    p.add_argument("--light_switch", type=float, nargs=2, default=None, metavar=("OFF", "ON"),
                   help="pass --light_switch OFF ON to every trained method (default: none)")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    setup = _setup(args, "runs/compare")
    specs = compare_specs([m for m in args.methods.split(",") if m], args.light_switch or [])
    print(run_all(specs, setup))
    print(f"wrote results.csv, results.md, metrics_vs_hour.png, quality_vs_bytes.png, crops.png to {setup.out_dir}")
    return 0


def add_sweep_parser(sub) -> None:
    p = add_subcommand(sub, "sweep", "train the cartesian product of option values (resumable, parallel)",
                       "airender sweep --data_dir DIR [--grid key=v1,v2 ...] [--preset P] [--workers N] [options]")
    _common_arguments(p)
    p.add_argument("--grid", action="append", default=[],
                   help="key=v1,v2 (repeatable); default: the roadmap grid patch_size=16,32 loss_ssim_w=0.1,0.2,0.5 "
                        "be_channels=16,32 be_downsample=1,2")
    p.add_argument("--preset", default="hybrid", help="the configuration the grid varies (default: hybrid)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default: 1)")
    p.set_defaults(func=cmd_sweep, decode_repeats=0)


def cmd_sweep(args: argparse.Namespace) -> int:
    if args.preset not in PRESETS:
        raise InputError(f"--preset {args.preset!r}: unknown (choose from {', '.join(PRESETS)})")
    setup = _setup(args, "runs/sweep")
    grid = parse_grid(args.grid) if args.grid else dict(ROADMAP_GRID)
    specs = sweep_specs(grid, args.preset)
    write_json_atomic(Path(setup.out_dir) / "sweep.json", {"grid": grid, "preset": args.preset,
                                                           "setup": asdict(setup)})
    print(run_all(specs, setup, workers=max(1, args.workers)))
    return 0
