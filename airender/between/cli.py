"""Frames between the trained hours on the command line: ``--between`` of ``render``, ``render-all`` and
``eval``, and ``airender fit-between``, which fits the learned blend weight on a model's own hours."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from airender.between import between_frames
from airender.between.net import (STORE_DTYPES, BetweenNetConfig, BlendWeightNet, NoTrainingTriplets, add_network_size,
                                  fit_for_decoder, load_between_net, network_size_line, save_between_net)
from airender.checks import check_hour, check_output_file
from airender.cli_args import add_ckpt_argument, add_device_argument, add_lightmap_id_argument, add_subcommand
from airender.device import resolve_device
from airender.errors import InputError
from airender.evaluate import switch_hours_of
from airender.models import load_model
from airender.render import make_decoder, whole_frames
from airender.sizes import compression_report

BETWEEN_CHOICES = ("auto", "model", "motion", "learned")
DEFAULT_NET_NAME = "between.pt"  # beside the checkpoint


def add_between_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--between", choices=BETWEEN_CHOICES, default="auto",
                   help="frames between two trained hours: 'model': the model's own decode; 'motion': its frames at "
                        "the neighbouring hours blended per pixel so that the sun's shadows move "
                        "(airender/between/motion.py, nothing stored, about 10 s a 320x180 frame on a CPU); "
                        "'learned': blended per pixel by the network of airender fit-between "
                        "(airender/between/net.py) (whole frames of all light at the training size); 'auto' "
                        "(default): 'learned' for a run trained with --between_steps (the quality preset), "
                        "whose between.pt is beside --ckpt, at the training size, else 'model'")
    p.add_argument("--between_net", default="",
                   help=f"--between learned: the network file (default: {DEFAULT_NET_NAME} beside --ckpt)")


def default_net_path(ckpt: str) -> Path:
    return Path(ckpt).parent / DEFAULT_NET_NAME


def run_network(ckpt: str | Path, config) -> tuple[BlendWeightNet, tuple[float, float]] | None:
    """The run's network between the hours as ``--between auto`` finds it (fitted after training,
    ``config.train.between_steps`` > 0, and saved as between.pt beside ``ckpt``) with the run's light-switch
    hours (OFF, ON); None when the run has none."""
    if getattr(getattr(config, "train", None), "between_steps", 0) <= 0:
        return None
    path = default_net_path(str(ckpt))
    return (load_between_net(path)[0], switch_hours_of(config)) if path.is_file() else None


def resolve_between(args: argparse.Namespace, config, size: tuple[int, int], training_size: tuple[int, int],
                    tiled: bool = False) -> str:
    """What ``--between`` means for this model: 'auto' becomes 'learned' when the run fitted a network after
    training (``config.train.between_steps`` > 0, a single field), its file is there and frames are decoded at
    the training size (``size`` == ``training_size``, both (height, width)), else 'model' (with a note on
    stderr when a network was expected); any other choice is itself."""
    between = getattr(args, "between", "model")
    if between != "auto":
        return between
    if getattr(args, "between_net", ""):
        return "learned"
    if tiled or getattr(getattr(config, "train", None), "between_steps", 0) <= 0:
        return "model"
    path = default_net_path(args.ckpt)
    if not path.is_file():
        print(f"note: {path} is missing: frames between the hours are the model's own (airender fit-between "
              f"--ckpt {args.ckpt} fits the network again)", file=sys.stderr)
        return "model"
    if size != training_size:
        print(f"note: frames between the hours are the model's own at {size[1]}x{size[0]}: its blend-weight network "
              f"works at the training size {training_size[1]}x{training_size[0]}", file=sys.stderr)
        return "model"
    return "learned"


def between_decoder(decoder, args: argparse.Namespace, switch_hours: tuple[float, float], config=None,
                    tiled: bool = False):
    """``decoder`` itself, or wrapped as ``args.between`` asks (resolved by :func:`resolve_between` with the
    model's ``config``; lights switching at ``switch_hours``, as ``eval`` groups them). Motion and the
    network work in pixels of the training size, so ``decoder`` must decode at that size."""
    desc = decoder.desc
    size = (getattr(decoder, "height", desc.height), getattr(decoder, "width", desc.width))
    between = resolve_between(args, config, size, (desc.height, desc.width), tiled)
    if between == "model":
        return decoder
    if size != (desc.height, desc.width):
        raise InputError(f"--between {between}: decodes at the training size {desc.width}x{desc.height} only "
                         f"(asked for {size[1]}x{size[0]})")

    net = load_between_net(args.between_net or default_net_path(args.ckpt))[0] if between == "learned" else None
    return between_frames(whole_frames(decoder), between, tuple(switch_hours), net)


def add_fit_between_parser(sub) -> None:
    defaults = BetweenNetConfig()
    p = add_subcommand(sub, "fit-between", "fit the learned blend weight between hours (--between learned) on a "
                                           "model's own decoded hours",
                       "airender fit-between --ckpt C [--out FILE] [--steps N] [--day START END] [options]")
    add_ckpt_argument(p)
    p.add_argument("--out", default="", help=f"the network file (default: {DEFAULT_NET_NAME} beside --ckpt)")
    p.add_argument("--overwrite", action="store_true", help="replace the network file when it exists")
    p.add_argument("--steps", type=int, default=defaults.steps, help=f"Adam steps (default: {defaults.steps})")
    p.add_argument("--channels", type=int, default=defaults.channels,
                   help=f"channels of the U-Net's layers (default: {defaults.channels})")
    p.add_argument("--store_dtype", choices=STORE_DTYPES, default=defaults.store_dtype,
                   help=f"how the weights are stored: float16, or int8 with one scale per output channel "
                        f"(default: {defaults.store_dtype})")
    p.add_argument("--day", type=float, nargs=2, default=None, metavar=("START", "END"),
                   help="stored hours in [START, END] are learned from (default: the model's --light_switch "
                        "hours, else 6 18: the hours with the sun up and the lamps off)")
    add_lightmap_id_argument(p, "tiled checkpoint: which atlas (default: the first)")
    add_device_argument(p, "cpu", "where the model decodes its hours")
    p.set_defaults(func=cmd_fit_between)


def cmd_fit_between(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else default_net_path(args.ckpt)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out}: exists (pass --overwrite to replace it)")
    check_output_file(out)
    if args.steps < 1 or args.channels < 1:
        raise InputError(f"--steps and --channels must be at least 1, got {args.steps} and {args.channels}")
    for hour in args.day or []:
        check_hour(hour, "--day")
    print(fit_network_file(args.ckpt, out, args.steps, args.channels, tuple(args.day) if args.day else None,
                           args.lightmap_id, args.device, store_dtype=args.store_dtype))
    return 0


def fit_network_file(ckpt: str | Path, out: str | Path, steps: int, channels: int,
                     day: tuple[float, float] | None = None, lightmap_id: str = "", device: str = "cpu",
                     seed: int = 0, store_dtype: str = "float16", report=print) -> str:
    """Fit the blend-weight network on the decoded hours of the model in ``ckpt`` and write it to ``out``
    (atomically, replacing it). ``day``: the stored hours it learns from (default: the model's light-switch
    hours, else 6-18). Returns a line with its bytes and the total against the raw frames."""
    loaded = load_model(ckpt, resolve_device(device), lightmap_id)
    config = BetweenNetConfig(steps=steps, channels=channels, day=day or switch_hours_of(loaded.config), seed=seed,
                              store_dtype=store_dtype)
    net = fit_for_decoder(make_decoder(loaded.field), config, report)
    save_between_net(out, net, config, fitted_on=str(ckpt))
    size = add_network_size(compression_report(loaded.field), net)
    return f"wrote {out} ({store_dtype}); " + network_size_line(size)


def fit_after_training(config, out_dir: str | Path, report=print) -> Path | None:
    """``--between_steps`` > 0: fit the network on the run's final model (``last.ckpt`` in ``out_dir``) and write
    ``between.pt`` beside it, which ``--between auto`` then uses; returns its path (None when the run asks for
    none, or when its stored hours hold nothing to fit it on: then a note says so and the run decodes its own
    frames between hours)."""
    steps = config.train.between_steps
    if steps <= 0:
        return None
    out_dir = Path(out_dir)
    out = out_dir / DEFAULT_NET_NAME
    report(f"fitting the blend weight between hours ({steps} steps, airender/between/net.py)")
    try:
        report(fit_network_file(out_dir / "last.ckpt", out, steps, config.train.between_channels,
                                device=config.train.device, seed=config.train.seed,
                                store_dtype=config.train.between_store_dtype, report=report))
    except NoTrainingTriplets as reason:
        report(f"note: no blend-weight network for this run: {reason}")
        return None
    return out
