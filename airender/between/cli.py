"""Frames between the trained hours on the command line: ``--between`` of ``render``, ``render-all`` and
``eval``, and ``airender fit-between``, which fits the learned blend weight on a model's own hours."""
from __future__ import annotations

import argparse
from pathlib import Path

from airender.cli_args import add_subcommand
from airender.errors import InputError

BETWEEN_CHOICES = ("model", "motion", "learned")
DEFAULT_NET_NAME = "between.pt"  # beside the checkpoint


def add_between_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--between", choices=BETWEEN_CHOICES, default="model",
                   help="frames between two trained hours: the model's own decode; 'motion': its frames at the "
                        "neighbouring hours blended per pixel so that the sun's shadows move "
                        "(airender/between/motion.py, nothing stored, about 10 s a 320x180 frame on a CPU); "
                        "'learned': blended per pixel by the network of airender fit-between "
                        "(airender/between/net.py) (whole frames of all light at the training size; default: model)")
    p.add_argument("--between_net", default="",
                   help=f"--between learned: the network file (default: {DEFAULT_NET_NAME} beside --ckpt)")


def default_net_path(ckpt: str) -> Path:
    return Path(ckpt).parent / DEFAULT_NET_NAME


def between_decoder(decoder, args: argparse.Namespace, switch_hours: tuple[float, float]):
    """``decoder`` itself, or wrapped as ``args.between`` asks (lights switching at ``switch_hours``, as
    ``eval`` groups them). Motion and the network work in pixels of the training size, so ``decoder`` must
    decode at that size."""
    between = getattr(args, "between", "model")
    if between == "model":
        return decoder
    desc = decoder.desc
    size = (getattr(decoder, "height", desc.height), getattr(decoder, "width", desc.width))
    if size != (desc.height, desc.width):
        raise InputError(f"--between {between}: decodes at the training size {desc.width}x{desc.height} only "
                         f"(asked for {size[1]}x{size[0]})")
    from airender.between import between_frames
    from airender.between.net import load_between_net
    from airender.render import whole_frames

    net = load_between_net(args.between_net or default_net_path(args.ckpt))[0] if between == "learned" else None
    return between_frames(whole_frames(decoder), between, tuple(switch_hours), net)


def add_fit_between_parser(sub) -> None:
    from airender.between.net import BetweenNetConfig

    defaults = BetweenNetConfig()
    p = add_subcommand(sub, "fit-between", "fit the learned blend weight between hours (--between learned) on a "
                                           "model's own decoded hours",
                       "airender fit-between --ckpt C [--out FILE] [--steps N] [--day START END] [options]")
    p.add_argument("--ckpt", required=True, help="checkpoint (best.ckpt or last.ckpt) or an exported .airpack")
    p.add_argument("--out", default="", help=f"the network file (default: {DEFAULT_NET_NAME} beside --ckpt)")
    p.add_argument("--overwrite", action="store_true", help="replace the network file when it exists")
    p.add_argument("--steps", type=int, default=defaults.steps, help=f"Adam steps (default: {defaults.steps})")
    p.add_argument("--channels", type=int, default=defaults.channels,
                   help=f"channels of the U-Net's layers (default: {defaults.channels})")
    p.add_argument("--day", type=float, nargs=2, default=None, metavar=("START", "END"),
                   help="stored hours in [START, END] are learned from (default: the model's --light_switch "
                        "hours, else 6 18: the hours with the sun up and the lamps off)")
    p.add_argument("--lightmap_id", default="", help="tiled checkpoint: which atlas (default: the first)")
    p.add_argument("--device", default="cpu", help="where the model decodes its hours (default: cpu)")
    p.set_defaults(func=cmd_fit_between)


def cmd_fit_between(args: argparse.Namespace) -> int:
    from airender.between.net import BetweenNetConfig, fit_for_decoder, net_bytes, save_between_net
    from airender.checks import check_hour, check_output_file
    from airender.engine.trainer import resolve_device
    from airender.evaluate import switch_hours_of
    from airender.render import make_decoder
    from airender.sizes import compression_report
    from airender.tiles.model import load_model

    out = Path(args.out) if args.out else default_net_path(args.ckpt)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out}: exists (pass --overwrite to replace it)")
    check_output_file(out)
    if args.steps < 1 or args.channels < 1:
        raise InputError(f"--steps and --channels must be at least 1, got {args.steps} and {args.channels}")
    for hour in args.day or []:
        check_hour(hour, "--day")
    loaded = load_model(args.ckpt, resolve_device(args.device), args.lightmap_id)
    day = tuple(args.day) if args.day else switch_hours_of(loaded.config)
    config = BetweenNetConfig(steps=args.steps, channels=args.channels, day=day)
    net = fit_for_decoder(make_decoder(loaded.field), config)
    save_between_net(out, net, config, fitted_on=str(args.ckpt))
    model = compression_report(loaded.field)
    extra = net_bytes(net)
    print(f"wrote {out}: {extra:,} bytes (float16), with the model {model['model_bytes'] + extra:,} bytes = "
          f"{100.0 * (model['model_bytes'] + extra) / model['raw_bytes']:.2f} % of the raw float32 frames")
    return 0
