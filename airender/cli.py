"""The ``airender`` command line: train, render, render-all, eval, demo, bake, convert, export, view,
bench, compare, sweep.

Bad input prints one line ``error: <file>: <problem>`` and exits with status 2, writing nothing.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch

from airender import __version__
from airender.bake.cli import add_bake_parser
from airender.bench import add_bench_arguments, cmd_bench
from airender.between.cli import (add_between_arguments, add_fit_between_parser, between_decoder, fit_after_training,
                                  resolve_between)
from airender.between.net import LearnedBlendDecoder, add_network_size, network_size_line
from airender.checks import MAX_OUTPUT_SIDE, check_hour, check_output_dir, check_output_file, check_output_size
from airender.cli_args import (add_ckpt_argument, add_config_arguments, add_data_dir_argument, add_device_argument,
                               add_lightmap_id_argument, add_out_dir_argument, add_subcommand, config_from_args,
                               explicit_overrides)
from airender.config import ExperimentConfig, config_problems, value_problem
from airender.contest_score import score_table
from airender.convert import add_convert_parser
from airender.data import load_sequence
from airender.data.readers import read_image
from airender.data.sequence import SOURCES
from airender.device import resolve_device
from airender.engine.run_folder import (check_run_folder, free_name, out_dir_for, resume_checkpoint, resume_config,
                                        run_lock)
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.data.frame_store import VTSource
from airender.data.virtual_texture import is_virtual_texture, list_lightmaps
from airender.evaluate import build_metric_suite, ground_truth_groups, pick_sheet_keys, switch_hours_of
from airender.evaluate_stream import (STREAM_BYTES, WINDOW, evaluate_streamed, ground_truth_bytes, open_ground_truth,
                                      texel_decoder, windows_of)
from airender.experiments import add_compare_parser, add_sweep_parser
from airender.export.cli import add_export_parser, add_view_parser
from airender.fileio import make_dir
from airender.images import hdr_preview_exposure, preview_uint8, save_frame, save_gif
from airender.models import load_model
from airender.models.checkpoint import read_checkpoint
from airender.presets import PRESETS, preset_config, preset_names
from airender.progress import progress
from airender.protocols import PROTOCOLS, contest_score, contest_score_note, evaluate_protocol, resolve_protocol
from airender.render import frame_name, make_decoder
from airender.sizes import compression_report, size_line
from airender.sun_picture import write_sun_term_sheet
from airender.tiles.runner import TILING_FILE, fit_tiled, read_tiling, size_lines, tiled_resume_folder

EXIT_BAD_INPUT = 2


# --- train -----------------------------------------------------------------------------------------------
TRAIN_USAGE = "airender train --data_dir DIR [--preset NAME] [--name RUN | --out_dir DIR] [--overwrite] " \
              "[--resume [RUN]] [options]"


def add_train_parser(sub, preset: str | None = None) -> None:
    p = add_subcommand(sub, "train", "train a field on hourly frames", TRAIN_USAGE,
                       "Train a time-of-day field. Outputs go to runs/<name>/ (or --out_dir): best.ckpt, last.ckpt, "
                       "train_log.jsonl, config.json, baseline.png. With --preset NAME, --help shows that preset's "
                       "values as the defaults.")
    p.add_argument("--preset", choices=preset_names(), default=None,
                   help="start from a named preset (flags given here override it; see README)")
    add_config_arguments(p, preset_config(preset) if preset in preset_names() else None)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in the output folder (otherwise such a folder is refused)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN",
                   help="continue a run from its last.ckpt: RUN is its folder (or checkpoint); without RUN, the "
                        "folder the other flags name. The run's stored options are used; only the budget "
                        "(--epochs, --max_steps, --time_budget_s) and reporting flags may change")
    p.add_argument("--workers", type=int, default=1,
                   help="with --tile_size: fit tiles in N local processes, each tile with --tile_threads torch "
                        "threads (default: 1, in this process)")
    p.add_argument("--ray", default="", metavar="auto|local|ADDRESS",
                   help="with --tile_size: fit each tile as a Ray task: auto (a running cluster, else a local one), "
                        "local, or a cluster address; the run folder must be on storage every node sees "
                        "(default: no Ray)")
    p.set_defaults(func=cmd_train)


def _train_config(args: argparse.Namespace):
    """(config, checkpoint to resume from or None) from the flags, or from the run being resumed."""
    if not args.resume:
        return config_from_args(args, preset_config(args.preset) if args.preset else None), None
    target = args.resume if isinstance(args.resume, str) else \
        out_dir_for(config_from_args(args, preset_config(args.preset) if args.preset else None))
    checkpoint = resume_checkpoint(target)
    stored = ExperimentConfig.from_dict(read_checkpoint(checkpoint)["config"])
    config = resume_config(stored, explicit_overrides(args), PRESETS[args.preset] if args.preset else None,
                           checkpoint.parent, checkpoint)
    return config, checkpoint


def cmd_train(args: argparse.Namespace) -> int:
    tiled = _train_tiled(args)
    if tiled is not None:
        return tiled
    config, checkpoint = _train_config(args)
    problems = config_problems(config)
    if problems:
        raise InputError("; ".join(problems))
    if config.data.tile_size > 0:
        return _fit_tiled(config, args)
    if args.workers != 1 or args.ray:
        raise InputError(f"{'--workers' if args.workers != 1 else '--ray'}: fits tiles in parallel; it needs "
                         f"--tile_size N")
    if config.data.lightmap_id == "all":
        raise InputError("--lightmap_id all: fits every atlas tile by tile; it needs --tile_size N")
    out_dir = out_dir_for(config)
    check_output_dir(out_dir)
    if checkpoint is None:
        check_run_folder(out_dir, args.overwrite)
    sequence = load_sequence(config.data.data_dir, config.data.lightmap_id, config.data.component)
    with run_lock(out_dir):
        trainer = Trainer(config, sequence, overwrite=args.overwrite)
        if checkpoint is not None:
            trainer.resume_from(checkpoint)
            if trainer.step >= trainer.total_steps:
                print(f"{checkpoint}: the run already trained its {trainer.total_steps} planned steps; nothing to "
                      f"do (a larger --max_steps or --epochs continues it)")
                return 0
            print(f"resuming {checkpoint} at step {trainer.step} of {trainer.total_steps}")
        result = trainer.fit()
        fit_after_training(config, result.out_dir)
    best = f"{result.best_metric:.4g}" if result.best_metric is not None else "-"
    print(f"trained {result.steps} of {result.planned_steps} steps in {result.seconds:.1f} s "
          f"({result.samples_per_s / 1e3:.0f}k samples/s); best validation {config.train.monitor} {best}; "
          f"outputs in {result.out_dir}")
    return 0


def _train_tiled(args: argparse.Namespace) -> int | None:
    """``--resume`` of a tiled run: continue it with its stored options (None when the run is not tiled)."""
    if not args.resume:
        return None
    target = args.resume if isinstance(args.resume, str) else \
        out_dir_for(config_from_args(args, preset_config(args.preset) if args.preset else None))
    folder = tiled_resume_folder(target)
    if folder is None:
        return None
    stored, _ = read_tiling(folder)
    config = resume_config(stored, explicit_overrides(args), PRESETS[args.preset] if args.preset else None,
                           folder, folder / TILING_FILE)
    return _fit_tiled(config, args)


def _fit_tiled(config, args: argparse.Namespace) -> int:
    """Fit the data tile by tile (``--tile_size``; airender.tiles.runner) and print the sizes."""
    result = fit_tiled(config, workers=args.workers, ray=args.ray, overwrite=args.overwrite)
    print(f"fitted {result.fitted} tiles in {result.seconds:.1f} s on {result.engine}"
          + (f" ({result.skipped} fitted before)" if result.skipped else "") + f"; outputs in {result.run_dir}")
    for line in size_lines(result.sizes):
        print(line)
    if config.train.between_steps > 0:
        print(f"note: --between_steps {config.train.between_steps}: a tiled run fits no blend-weight network "
              f"between hours (its frames between hours are the tiles' own)")
    return 0


# --- render ----------------------------------------------------------------------------------------------
def _load_for_render(args: argparse.Namespace):
    lightmap_id = getattr(args, "lightmap_id", "")
    loaded = load_model(args.ckpt, resolve_device(args.device), lightmap_id)
    if loaded.is_pack and (lightmap_id or getattr(args, "baseline_path", None)):
        flag = f"--lightmap_id {lightmap_id}" if lightmap_id else "--baseline_path"
        raise InputError(f"{flag}: {args.ckpt} is an exported pack (one field, its baseline inside); it renders "
                         f"as it is")
    stored = loaded.config.data.lightmap_id
    if lightmap_id and not loaded.is_tiled and lightmap_id != stored:
        raise InputError(f"--lightmap_id {lightmap_id}: {args.ckpt} is one field, trained on "
                         f"{'lightmap ' + stored if stored else 'the first lightmap or frames of its data'}; "
                         f"--lightmap_id picks an atlas of a tiled checkpoint")
    if getattr(args, "baseline_path", None) and loaded.is_tiled:
        raise InputError(f"--baseline_path: {args.ckpt} is a tiled model (one baseline per tile); it renders "
                         f"from its own")
    if getattr(args, "baseline_path", None):
        replace_baseline(loaded.field, args.baseline_path)
    return loaded


def replace_baseline(field, path: str) -> None:
    """Use the image at ``path`` as the residual baseline instead of the one kept in the checkpoint."""
    if field.baseline is None:
        raise InputError(f"{path}: this model does not use a baseline frame (trained with residual mode off)")
    array, is_hdr = read_image(path)
    desc = field.desc
    if array.shape[:2] != (desc.height, desc.width):
        raise InputError(f"{path}: baseline is {array.shape[1]}x{array.shape[0]} but the model was trained at "
                         f"{desc.width}x{desc.height}")
    if is_hdr != desc.is_hdr:
        raise InputError(f"{path}: baseline is {'HDR' if is_hdr else 'LDR'} but the model was trained on "
                         f"{'HDR' if desc.is_hdr else 'LDR'} data")
    with torch.no_grad():
        field.baseline.copy_(field.transform.to_train(torch.from_numpy(array).to(field.baseline.device)))


def _add_render_common(p: argparse.ArgumentParser) -> None:
    add_ckpt_argument(p)
    p.add_argument("--width", type=int, default=0, help="output width (default: the training width)")
    p.add_argument("--height", type=int, default=0, help="output height (default: the training height)")
    add_device_argument(p)
    p.add_argument("--baseline_path", default="",
                   help="baseline image to add the predicted delta to (default: the full-precision baseline "
                        "kept in the checkpoint)")
    add_lightmap_id_argument(p, "tiled checkpoint: which atlas (default: the first)")
    add_between_arguments(p)


def add_render_parser(sub) -> None:
    p = add_subcommand(sub, "render", "render one time of day",
                       "airender render --ckpt C --time HOUR --out FILE.png|.exr [--width W --height H] [options]")
    _add_render_common(p)
    p.add_argument("--time", type=float, required=True, help="hour of day in [0, 24] (fractional hours allowed; "
                                                             "24 is midnight)")
    p.add_argument("--out", required=True, help="output image (.png; .exr for HDR floats)")
    p.add_argument("--component", choices=("original", *SOURCES), default="original",
                   help="which light to render: original (all light) or, for a model trained with --components, "
                        "one source: directional (sun), local (placed lamps) or sky (default: original)")
    p.set_defaults(func=cmd_render)


def _requested_size(args) -> tuple[int, int] | None:
    """(height, width) from --height/--width, checked; None when neither is given (the training size)."""
    if args.width < 0 or args.height < 0:
        raise InputError(f"--width/--height: the output size must be positive, got {args.width}x{args.height}")
    if (args.width > 0) != (args.height > 0):
        raise InputError("--width/--height: give both, or neither (the training size)")
    return check_output_size(args.height, args.width) if args.width else None


def _output_size(args, desc, tiled: bool = False) -> tuple[int, int]:
    """The requested size, else the training size; a tiled atlas decodes tile by tile (memory: the output
    image), so at its own size it may exceed the whole-frame limit, up to MAX_OUTPUT_SIDE a side."""
    requested = _requested_size(args)
    if requested or not tiled:
        return requested or check_output_size(desc.height, desc.width)
    if max(desc.height, desc.width) > MAX_OUTPUT_SIDE:
        raise InputError(f"--ckpt: the atlas is {desc.width}x{desc.height}, beyond {MAX_OUTPUT_SIDE} a side")
    return desc.height, desc.width


def cmd_render(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".exr"):
        raise InputError(f"{out}: output must end in .png or .exr")
    check_hour(args.time, "--time")
    check_output_file(out)
    _requested_size(args)
    loaded = _load_for_render(args)
    height, width = _output_size(args, loaded.desc, loaded.is_tiled)
    component = getattr(args, "component", "original")
    if component != "original" and component not in loaded.field.sources:
        raise InputError(f"--component {component}: {args.ckpt} was trained without --components; it renders all "
                         f"light only (--component original)")
    decoder = make_decoder(loaded.field, height, width)
    if component == "original":
        from airender.evaluate import switch_hours_of

        image = between_decoder(decoder, args, switch_hours_of(loaded.config), loaded.config,
                                loaded.is_tiled).decode(args.time)
    else:
        image = decoder.decode_source(args.time, component)
    exposure = hdr_preview_exposure(loaded.field.transform.to_display(loaded.field.baseline)) \
        if loaded.desc.is_hdr and loaded.field.baseline is not None else 1.0
    save_frame(out, image.cpu(), loaded.desc.is_hdr, exposure)
    light = "" if component == "original" else f", {component} light"
    print(f"wrote {out} ({width}x{height}, t = {args.time:g} h{light})")
    return 0


def add_render_all_parser(sub) -> None:
    p = add_subcommand(sub, "render-all", "render a range of hours and an animated GIF of the day",
                       "airender render-all --ckpt C --out_dir DIR [--start_hour H0 --end_hour H1 --step S] [options]")
    _add_render_common(p)
    p.add_argument("--start_hour", type=float, default=0.0, help="first hour, in [0, 24] (default: 0)")
    p.add_argument("--end_hour", type=float, default=23.0, help="last hour, inclusive, in [0, 24] (default: 23)")
    p.add_argument("--step", type=float, default=1.0, help="hours between frames, e.g. 0.25 (default: 1)")
    add_out_dir_argument(p, "folder for the frames tod_HH.HH.png (sortable names) and the GIF", required=True)
    p.add_argument("--format", choices=("png", "exr"), default="", help="frame format (default: png for LDR, exr for HDR)")
    p.add_argument("--gif", type=str, default="day.gif", help="name of the animated GIF in --out_dir, '' for none "
                                                             "(default: day.gif)")
    p.set_defaults(func=cmd_render_all)


MAX_FRAMES = 100_000


def hour_range(start: float, end: float, step: float) -> list[float]:
    """The hours start, start + step, ..., up to end (inclusive), each checked to lie in [0, 24]."""
    check_hour(start, "--start_hour")
    check_hour(end, "--end_hour")
    if not math.isfinite(step) or step <= 0:
        raise InputError(f"--step: must be a positive number of hours, got {step}")
    if end < start:
        raise InputError(f"--end_hour: {end:g} is before --start_hour {start:g}")
    count = int(np.floor((end - start) / step + 1e-9)) + 1
    if count > MAX_FRAMES:
        raise InputError(f"--step: {count:,} frames is too many (at most {MAX_FRAMES:,})")
    return [round(start + i * step, 6) for i in range(count)]


def cmd_render_all(args: argparse.Namespace) -> int:
    times = hour_range(args.start_hour, args.end_hour, args.step)
    out_dir = check_output_dir(args.out_dir)
    _requested_size(args)
    loaded = _load_for_render(args)
    desc = loaded.desc
    height, width = _output_size(args, desc, loaded.is_tiled)
    fmt = args.format or ("exr" if desc.is_hdr else "png")
    decoder = between_decoder(make_decoder(loaded.field, height, width), args, switch_hours_of(loaded.config),
                              loaded.config, loaded.is_tiled)
    exposure = hdr_preview_exposure(loaded.field.transform.to_display(loaded.field.baseline)) \
        if desc.is_hdr and loaded.field.baseline is not None else 1.0
    make_dir(out_dir)
    previews = []
    bar = progress(len(times), "render", "frame")
    for t in times:
        image = decoder.decode(t).cpu()
        save_frame(out_dir / frame_name(t, fmt), image, desc.is_hdr, exposure)
        previews.append(preview_uint8(image, desc.is_hdr, exposure))
        bar.update(1)
    bar.close()
    if args.gif:
        save_gif(out_dir / args.gif, previews)
    print(f"wrote {len(times)} frames ({width}x{height}) to {out_dir}" + (f" and {args.gif}" if args.gif else ""))
    return 0


# --- eval ------------------------------------------------------------------------------------------------
def add_eval_parser(sub) -> None:
    p = add_subcommand(sub, "eval", "metrics of a checkpoint against ground-truth frames",
                       "airender eval --ckpt C --data_dir DIR [--extra DIR2 ...] [--lpips_weights FILE] [options]")
    add_ckpt_argument(p)
    add_data_dir_argument(p, "ground truth (either layout); times the model was not trained on are held-out frames")
    add_lightmap_id_argument(p, "contest layout: which lightmap (default: the first)")
    p.add_argument("--extra", action="append", default=[],
                   help="more ground-truth folders, e.g. fractional hours (repeatable)")
    p.add_argument("--switch_hours", type=float, nargs=2, default=None, metavar=("OFF", "ON"),
                   help="held-out frames within 0.25 h of these hours form the group 'switch'; frames between them "
                        "are 'between_day', the others 'between_night' (default: the model's --light_switch, "
                        "else 6 18)")
    p.add_argument("--lpips_weights", default=None, help="LPIPS-Alex v0.1 weights file "
                                                         "(default: $AIRENDER_LPIPS_WEIGHTS, then the torch hub cache)")
    add_out_dir_argument(p, "where metrics.{json,csv,md} and plots go (default: <ckpt dir>/eval)")
    add_device_argument(p)
    p.add_argument("--protocol", choices=PROTOCOLS, default=None,
                   help="scoring: image (whole LDR frames), hprc (256-texel tiles, the first lightmap layout's) or "
                        "hprc-vt (128-texel tiles, the virtual-texture release's); see airender/protocols.py "
                        "(default: image for LDR data, hprc for HDR)")
    add_between_arguments(p)
    p.add_argument("--stream", choices=("auto", "on", "off"), default="auto",
                   help="score the atlas window by window through memory maps, in memory that does not depend on "
                        "its size (contest protocols; no pictures; see airender/evaluate_stream.py): 'auto' "
                        f"(default) when the virtual-texture ground truth would take more than "
                        f"{STREAM_BYTES >> 30} GiB whole, 'on', 'off'")
    p.add_argument("--stream_window", type=int, nargs=2, default=list(WINDOW), metavar=("ROWS", "COLUMNS"),
                   help="--stream: texels of a window, multiples of 256 (memory: hours x rows x columns x 12 bytes "
                        f"of ground truth; default: {WINDOW[0]} {WINDOW[1]})")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    for hour in args.switch_hours or []:
        check_hour(hour, "--switch_hours")
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.ckpt).parent / "eval"
    check_output_dir(out_dir)
    suite = build_metric_suite(args.lpips_weights, "cpu")
    device = resolve_device(args.device)
    loaded = load_model(args.ckpt, device, args.lightmap_id)
    switch = args.switch_hours or switch_hours_of(loaded.config)
    if _streams(args, loaded):
        return _eval_streamed(args, loaded, suite, switch, out_dir)
    groups = ground_truth_groups(loaded.desc, args.data_dir, (loaded.atlas_id or args.lightmap_id),
                                 args.extra, switch, loaded.config.data.component)
    protocol = resolve_protocol(args.protocol, loaded.desc.is_hdr)
    decoder = between_decoder(loaded.field, args, switch, loaded.config, loaded.is_tiled)
    report = evaluate_protocol(decoder, groups, suite, protocol)
    report.size = compression_report(loaded.field)
    if isinstance(decoder, LearnedBlendDecoder):  # --between learned, or auto for a run with its network
        add_network_size(report.size, decoder.net)
    report.contest = contest_score(report, protocol, report.size.get("total_bytes", report.size["model_bytes"]),
                                   report.size["raw_bytes"])
    report.write(out_dir)
    report.contact_sheet(out_dir / "contact_sheet.png", pick_sheet_keys(report), loaded.desc.is_hdr,
                         title=f"{Path(args.ckpt).name}")
    report.shadow_edges(out_dir / "shadow_edges.png", groups, loaded.desc.is_hdr, title=f"{Path(args.ckpt).name}")
    write_sun_term_sheet(loaded.field, [r["time"] for r in report.rows if r["group"] == "between_day"],
                         out_dir / "sun_term.png", title=f"{Path(args.ckpt).name}: what the sun term learned")
    print(report.to_markdown())
    size = report.size
    print(size_line(size))
    if "between_net_bytes" in size:
        print(network_size_line(size))
    decode_s = sum(r["decode_s"] for r in report.rows)
    print(f"protocol {protocol}; decoding the {len(report.rows)} frames took {decode_s:.3f} s in all")
    if report.contest is not None:
        print(score_table(report.contest))
    note = contest_score_note(report, protocol)
    if note:
        print(note)
    if loaded.is_tiled:
        from airender.tiles.seams import eval_seams

        print(eval_seams(loaded.field, report, groups, out_dir))
    print(f"wrote metrics and pictures to {out_dir}")
    return 0


def _streams(args: argparse.Namespace, loaded) -> bool:
    """Whether eval scores window by window (``--stream``; 'auto': a virtual-texture atlas too large to hold)."""
    if args.stream != "auto":
        return args.stream == "on"
    if not is_virtual_texture(args.data_dir):
        return False
    source = VTSource(args.data_dir, loaded.atlas_id or args.lightmap_id or list_lightmaps(args.data_dir)[0].lightmap_id,
                      loaded.config.data.component)
    return ground_truth_bytes(source) > STREAM_BYTES


def _eval_streamed(args: argparse.Namespace, loaded, suite, switch: tuple[float, float], out_dir: Path) -> int:
    """eval --stream: the contest protocol's scores, window by window (airender/evaluate_stream.py)."""
    protocol = resolve_protocol(args.protocol, loaded.desc.is_hdr)
    window = tuple(args.stream_window)
    if min(window) <= 0 or window[0] % 256 or window[1] % 256:
        raise InputError(f"--stream_window {window[0]} {window[1]}: give positive multiples of 256 (the contests' "
                         f"tiles are 256 and 128 texels)")
    if args.extra:
        raise InputError("--extra: --stream scores the atlas of --data_dir only")
    between = resolve_between(args, loaded.config, (loaded.desc.height, loaded.desc.width),
                              (loaded.desc.height, loaded.desc.width), loaded.is_tiled)
    if between != "model":
        raise InputError(f"--stream: frames between the hours through --between {between} need whole frames; give "
                         f"--between model or --stream off")
    source = open_ground_truth(args.data_dir, loaded.atlas_id or args.lightmap_id, loaded.config.data.component,
                               out_dir / "frame_cache")
    make_dir(out_dir)
    with progress(len(windows_of(source.info.height, source.info.width, window)), "eval --stream", "window") as bar:
        report = evaluate_streamed(texel_decoder(loaded.field), source, suite, protocol, switch, window,
                                   progress=lambda: bar.update(1))
    report.size = compression_report(loaded.field)
    report.contest = contest_score(report, protocol, report.size["model_bytes"], report.size["raw_bytes"])
    report.write(out_dir)
    print(report.to_markdown())
    print(size_line(report.size))
    print(f"protocol {protocol}, streamed in windows of {window[0]}x{window[1]} texels; decoding took "
          f"{sum(r['decode_s'] for r in report.rows):.3f} s in all; no pictures (contact sheet, shadow edges)")
    if report.contest is not None:
        print(score_table(report.contest))
    note = contest_score_note(report, protocol)
    if note:
        print(note)
    print(f"wrote metrics to {out_dir}")
    return 0


# --- demo and bench ----------------------------------------------------------------------------------------
def add_demo_parser(sub) -> None:
    p = add_subcommand(sub, "demo", "train on the bundled sample scene and write renders, a contact sheet and a "
                       "metrics table", "airender demo [--out_dir DIR] [--overwrite] [options]")
    add_out_dir_argument(p, "output folder (default: runs/demo, or the first free runs/demo-N when that holds a run)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out_dir")
    p.add_argument("--lightmaps", action="store_true",
                   help="train on the bundled sample lightmap atlas (HDR, virtual-texture layout, scored with "
                        "hprc-vt) instead of the sample frames; default folder runs/demo-lightmaps")
    p.add_argument("--lpips_weights", default=None, help="LPIPS-Alex v0.1 weights file for the metrics "
                                                         "(default: $AIRENDER_LPIPS_WEIGHTS, then the torch hub cache)")
    p.add_argument("--seconds", type=float, default=0.0,
                   help="stop training after this many seconds (default: 0 = train the demo's planned steps)")
    add_device_argument(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.lightmaps:
        from airender.demo_lightmaps import DEFAULT_LIGHTMAP_DEMO_DIR as default_dir, run_lightmap_demo as run
    else:
        from airender.demo import DEFAULT_DEMO_DIR as default_dir, run_demo as run
    problem = value_problem(args.seconds, "nonneg")
    if problem:
        raise InputError(f"--seconds: {problem}")
    if args.out_dir:
        out_dir = check_output_dir(args.out_dir)
        check_run_folder(out_dir, args.overwrite)
    else:
        out_dir = check_output_dir(default_dir if args.overwrite else free_name(Path(default_dir)))
        if out_dir != Path(default_dir):
            print(f"note: {default_dir} holds an earlier demo; writing to {out_dir} "
                  f"(--overwrite replaces the earlier one)")
    run(out_dir, lpips_weights=args.lpips_weights, seconds=args.seconds, device=args.device, overwrite=args.overwrite)
    return 0


def add_bench_parser(sub) -> None:
    p = add_subcommand(sub, "bench", "throughput of the data path, training and whole-frame decode",
                       "airender bench [--data_dir DIR] [--ckpt C ...] [--preset P ...] [options]")
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)


# --- parser ----------------------------------------------------------------------------------------------
def _preset_in(argv: list[str]) -> str | None:
    """The value of ``--preset`` in a train command line (so that ``--help`` can show the preset's values)."""
    for k, token in enumerate(argv):
        if token == "--preset" and k + 1 < len(argv):
            return argv[k + 1]
        if token.startswith("--preset="):
            return token.split("=", 1)[1]
    return None


def build_parser(preset: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airender", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"airender {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_train_parser(sub, preset)
    for add in (add_render_parser, add_render_all_parser, add_eval_parser, add_demo_parser, add_bake_parser,
                add_convert_parser, add_export_parser, add_view_parser, add_bench_parser, add_compare_parser,
                add_sweep_parser, add_fit_between_parser):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_preset_in(argv) if argv[:1] == ["train"] else None)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subcommands.choices[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
