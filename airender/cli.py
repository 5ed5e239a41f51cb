"""The ``airender`` command line: train, render, render-all, eval, demo, bench, compare, sweep.

Bad input prints one line ``error: <file>: <problem>`` and exits with status 2, writing nothing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from airender import __version__
from airender.errors import InputError

EXIT_BAD_INPUT = 2


# --- train -----------------------------------------------------------------------------------------------
def add_train_parser(sub) -> None:
    from airender.cli_args import add_config_arguments
    from airender.presets import preset_names

    p = sub.add_parser("train", help="train a field on hourly frames",
                       description="Train a time-of-day field. Outputs go to runs/<name>/ (or --out_dir): "
                                   "best.ckpt, last.ckpt, train_log.jsonl, config.json, baseline.png.")
    p.add_argument("--preset", choices=preset_names(), default=None,
                   help="start from a named preset (flags given here override it); see README")
    add_config_arguments(p)
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in the output folder from its last.ckpt")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from airender.cli_args import config_from_args
    from airender.data import load_sequence
    from airender.engine.trainer import Trainer, out_dir_for
    from airender.presets import preset_config

    config = config_from_args(args, preset_config(args.preset) if args.preset else None)
    sequence = load_sequence(config.data.data_dir, config.data.lightmap_id)
    trainer = Trainer(config, sequence)
    if args.resume:
        last = out_dir_for(config) / "last.ckpt"
        trainer.resume_from(last)
        print(f"resuming {last} at step {trainer.step} of {trainer.total_steps}")
    result = trainer.fit()
    print(f"trained {result.steps} steps in {result.seconds:.1f} s ({result.samples_per_s / 1e3:.0f}k samples/s); "
          f"best validation {config.train.monitor} {result.best_metric:.4g}; outputs in {result.out_dir}")
    return 0


# --- render ----------------------------------------------------------------------------------------------
def _load_for_render(args: argparse.Namespace):
    from airender.engine.checkpoint import load_checkpoint
    from airender.engine.trainer import resolve_device

    loaded = load_checkpoint(args.ckpt, resolve_device(args.device))
    if getattr(args, "baseline_path", None):
        replace_baseline(loaded.field, args.baseline_path)
    return loaded


def replace_baseline(field, path: str) -> None:
    """Use the image at ``path`` as the residual baseline instead of the one kept in the checkpoint."""
    from airender.data.readers import read_image

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
    p.add_argument("--ckpt", required=True, help="checkpoint (best.ckpt or last.ckpt)")
    p.add_argument("--width", type=int, default=0, help="output width (default: training width)")
    p.add_argument("--height", type=int, default=0, help="output height (default: training height)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--baseline_path", default="",
                   help="baseline image to add the predicted delta to (default: the full-precision baseline "
                        "kept in the checkpoint)")


def add_render_parser(sub) -> None:
    p = sub.add_parser("render", help="render one time of day")
    _add_render_common(p)
    p.add_argument("--time", type=float, required=True, help="hour of day (fractional hours allowed)")
    p.add_argument("--out", required=True, help="output image (.png; .exr for HDR floats)")
    p.set_defaults(func=cmd_render)


def _output_size(args, desc) -> tuple[int, int]:
    if (args.width > 0) != (args.height > 0):
        raise InputError("give both --width and --height, or neither")
    if args.width < 0 or args.height < 0:
        raise InputError("--width and --height must be positive")
    return (args.height or desc.height), (args.width or desc.width)


def cmd_render(args: argparse.Namespace) -> int:
    from airender.images import hdr_preview_exposure, save_frame
    from airender.render import FrameDecoder

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".exr"):
        raise InputError(f"{out}: output must end in .png or .exr")
    loaded = _load_for_render(args)
    height, width = _output_size(args, loaded.desc)
    image = FrameDecoder(loaded.field, height, width).decode(args.time)
    exposure = hdr_preview_exposure(loaded.field.transform.to_display(loaded.field.baseline)) \
        if loaded.desc.is_hdr and loaded.field.baseline is not None else 1.0
    save_frame(out, image.cpu(), loaded.desc.is_hdr, exposure)
    print(f"wrote {out} ({width}x{height}, t = {args.time:g} h)")
    return 0


def add_render_all_parser(sub) -> None:
    p = sub.add_parser("render-all", help="render a range of hours and an animated GIF of the day")
    _add_render_common(p)
    p.add_argument("--start_hour", type=float, default=0.0)
    p.add_argument("--end_hour", type=float, default=23.0, help="last hour (inclusive)")
    p.add_argument("--step", type=float, default=1.0, help="hours between frames (e.g. 0.25)")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--format", choices=("png", "exr"), default="", help="frame format (default: png for LDR, exr for HDR)")
    p.add_argument("--gif", type=str, default="day.gif", help="name of the animated GIF in --output_dir ('' = none)")
    p.set_defaults(func=cmd_render_all)


def hour_range(start: float, end: float, step: float) -> list[float]:
    if step <= 0:
        raise InputError("--step must be positive")
    if end < start:
        raise InputError("--end_hour must not be before --start_hour")
    count = int(np.floor((end - start) / step + 1e-9)) + 1
    return [round(start + i * step, 6) for i in range(count)]


def cmd_render_all(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from airender.images import hdr_preview_exposure, preview_uint8, save_frame, save_gif
    from airender.render import FrameDecoder

    times = hour_range(args.start_hour, args.end_hour, args.step)
    loaded = _load_for_render(args)
    desc = loaded.desc
    height, width = _output_size(args, desc)
    fmt = args.format or ("exr" if desc.is_hdr else "png")
    decoder = FrameDecoder(loaded.field, height, width)
    exposure = hdr_preview_exposure(loaded.field.transform.to_display(loaded.field.baseline)) \
        if desc.is_hdr and loaded.field.baseline is not None else 1.0
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previews = []
    for t in tqdm(times, desc="render", unit="frame"):
        image = decoder.decode(t).cpu()
        save_frame(out_dir / f"tod_{t:g}.{fmt}", image, desc.is_hdr, exposure)
        previews.append(preview_uint8(image, desc.is_hdr, exposure))
    if args.gif:
        save_gif(out_dir / args.gif, previews)
    print(f"wrote {len(times)} frames ({width}x{height}) to {out_dir}" + (f" and {args.gif}" if args.gif else ""))
    return 0


# --- eval ------------------------------------------------------------------------------------------------
def add_eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="metrics of a checkpoint against ground-truth frames")
    p.add_argument("--ckpt", required=True)
    p.add_argument("--data_dir", required=True, help="ground truth (either layout); times the model was not "
                                                     "trained on are reported as 'extra'")
    p.add_argument("--lightmap_id", default="", help="contest layout: which lightmap")
    p.add_argument("--extra", action="append", default=[], help="more ground-truth folders (e.g. fractional hours)")
    p.add_argument("--lpips_weights", default=None, help="LPIPS-Alex v0.1 weights file "
                                                         "(default: $AIRENDER_LPIPS_WEIGHTS, then the torch hub cache)")
    p.add_argument("--out_dir", default="", help="where metrics.{json,csv,md} and plots go (default: <ckpt dir>/eval)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from airender.engine.checkpoint import load_checkpoint
    from airender.engine.trainer import resolve_device
    from airender.evaluate import build_metric_suite, evaluate_field, ground_truth_groups, pick_sheet_keys
    from airender.sizes import compression_report

    device = resolve_device(args.device)
    loaded = load_checkpoint(args.ckpt, device)
    groups = ground_truth_groups(loaded.desc, args.data_dir, args.lightmap_id, args.extra)
    suite = build_metric_suite(args.lpips_weights, "cpu")
    report = evaluate_field(loaded.field, groups, suite)
    report.size = compression_report(loaded.field)
    out_dir = Path(args.out_dir) if args.out_dir else Path(args.ckpt).parent / "eval"
    report.write(out_dir)
    report.contact_sheet(out_dir / "contact_sheet.png", pick_sheet_keys(report), loaded.desc.is_hdr,
                         title=f"{Path(args.ckpt).name}")
    print(report.to_markdown())
    size = report.size
    print(f"model: {size['model_bytes']:,} bytes the decoder reads = {size['percent_of_raw']:.2f} % of the raw float32 "
          f"frames ({size['raw_bytes']:,} bytes for 24 frames), compression ratio {size['compression_ratio']:.1f}:1")
    print(f"wrote metrics and pictures to {out_dir}")
    return 0


# --- demo and bench ----------------------------------------------------------------------------------------
def add_demo_parser(sub) -> None:
    p = sub.add_parser("demo", help="train on the bundled sample scene and write renders, a contact sheet "
                                    "and a metrics table")
    p.add_argument("--out_dir", default="runs/demo")
    p.add_argument("--lpips_weights", default=None)
    p.add_argument("--seconds", type=float, default=0.0, help="training time budget (default: the demo preset's)")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from airender.demo import run_demo

    run_demo(Path(args.out_dir), lpips_weights=args.lpips_weights, seconds=args.seconds, device=args.device)
    return 0


def add_bench_parser(sub) -> None:
    from airender.bench import add_bench_arguments, cmd_bench

    p = sub.add_parser("bench", help="throughput of the data path, training and whole-frame decode")
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airender", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"airender {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    from airender.experiments import add_compare_parser, add_sweep_parser

    for add in (add_train_parser, add_render_parser, add_render_all_parser, add_eval_parser, add_demo_parser,
                add_bench_parser, add_compare_parser, add_sweep_parser):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
