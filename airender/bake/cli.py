"""``airender bake``: bake the procedural level's time-of-day lightmaps (virtual-texture layout)."""
from __future__ import annotations

import argparse
from pathlib import Path

from airender.bake.bake import HELD_OUT, HOLDOUT_FOLDER, BakeSettings, bake, parse_day
from airender.cli_args import add_out_dir_argument, add_subcommand, with_default
from airender.errors import InputError
from airender.hours import parse_times
from airender.solar import Site


BAKE_USAGE = "airender bake --out_dir DIR [--size N] [--atlases K] [--parts P] [--spp S] [--seed X] [--times SPEC " \
             "[--holdout_times SPEC]] [--overwrite] [options]"


def add_bake_parser(sub) -> None:
    """Register ``bake`` on the ``airender`` sub-command parsers ``sub``."""
    settings, site = BakeSettings(), Site()
    p = add_subcommand(
        sub, "bake", "bake a procedural level's lightmaps at every hour (needs the [scene] extra)", BAKE_USAGE,
        "Bake a procedural level lit by sun, sky and lamps into lightmap atlases in the virtual-texture layout: "
        "config.json, Mask/, Original/, DirectionalOnly/, LocalOnly/, SkyLightOnly/ for the hours 1..24 and the "
        f"held-out times {', '.join(f'{t:g}' for t in HELD_OUT)}; plus meta.json and contact_sheet.png. Needs "
        "Mitsuba 3, trimesh and xatlas: pip install -e .[scene]")
    add_out_dir_argument(p, "output folder (must not exist or be empty, unless --overwrite)", required=True)
    p.add_argument("--size", type=int, default=settings.size,
                   help=with_default("texels a side of the largest atlas (a power of two)", settings.size))
    p.add_argument("--atlases", type=int, default=settings.atlases,
                   help=with_default("number of atlases the level is unwrapped into", settings.atlases))
    p.add_argument("--parts", type=int, default=settings.parts,
                   help=with_default("files per lightmap, split along its height (divides --size)", settings.parts))
    p.add_argument("--spp", type=int, default=settings.spp,
                   help=with_default("sky samples per texel (the sun and each lamp get spp/4, 1..4)", settings.spp))
    p.add_argument("--seed", type=int, default=settings.seed,
                   help=with_default("the level's layout and the sample patterns", settings.seed))
    p.add_argument("--latitude", type=float, default=site.latitude, help=with_default("degrees north", site.latitude))
    p.add_argument("--longitude", type=float, default=site.longitude,
                   help=with_default("degrees east", site.longitude))
    p.add_argument("--timezone", type=float, default=site.timezone,
                   help=with_default("hours east of UTC of the clock the times are in", site.timezone))
    p.add_argument("--date", default=site.day.isoformat(),
                   help=with_default("the day, YYYY-MM-DD", site.day.isoformat()))
    p.add_argument("--times", default="", metavar="SPEC",
                   help="times of day to bake instead of the default: hours and ranges START:STOP:STEP, comma-separated "
                        "(STOP excluded), e.g. 0:24:0.25 (every 15 minutes, 96 times) or 6:20:0.1; two decimals at "
                        "most (default: the hours 1..24 and the held-out times "
                        f"{', '.join(f'{t:g}' for t in HELD_OUT)} in one dataset)")
    p.add_argument("--holdout_times", default="", metavar="SPEC",
                   help="with --times: times baked into a dataset of their own, OUT/holdout, that never enters training "
                        "(score with airender eval --extra OUT/holdout); same form as --times (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bake)


def cmd_bake(args: argparse.Namespace) -> int:
    """Run the bake described by ``args``; bad input raises ``airender.errors.InputError``."""
    site = Site(latitude=args.latitude, longitude=args.longitude, timezone=args.timezone, day=parse_day(args.date))
    try:
        times = tuple(parse_times(args.times, "--times")) if args.times else None
        holdout = tuple(parse_times(args.holdout_times, "--holdout_times")) if args.holdout_times else ()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    settings = BakeSettings(size=args.size, atlases=args.atlases, parts=args.parts, spp=args.spp, seed=args.seed,
                            site=site, times=times, holdout_times=holdout)
    result = bake(Path(args.out_dir), settings, overwrite=args.overwrite, progress=not args.quiet)
    sizes = ", ".join(f"{m['width']}x{m['height']}" for m in result.lightmaps)
    held = f" and {len(result.holdout_times)} held-out times into {result.out / HOLDOUT_FOLDER}" \
        if result.holdout_times else ""
    print(f"baked {len(result.lightmaps)} lightmap(s) ({sizes}) at {len(result.times)} times{held} in "
          f"{result.seconds['total']:.1f} s into {result.out}; look at {result.out / 'contact_sheet.png'} (the level's "
          f"geometry: {result.out / 'level.glb'})")
    return 0
