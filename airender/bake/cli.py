"""``airender bake``: bake the procedural level's time-of-day lightmaps (virtual-texture layout)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_bake_parser(sub) -> None:
    """Register ``bake`` on the ``airender`` sub-command parsers ``sub``."""
    from airender.bake.bake import HELD_OUT

    p = sub.add_parser(
        "bake", help="bake a procedural level's lightmaps at every hour (needs the [scene] extra)",
        description="Bake a procedural level lit by sun, sky and lamps into lightmap atlases in the virtual-texture "
                    "layout: config.json, Mask/, Original/, DirectionalOnly/, LocalOnly/, SkyLightOnly/ for the hours "
                    f"1..24 and the held-out times {', '.join(f'{t:g}' for t in HELD_OUT)}; plus meta.json and "
                    "contact_sheet.png. Needs Mitsuba 3, trimesh and xatlas: pip install -e .[scene]")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty, unless --overwrite)")
    p.add_argument("--size", type=int, default=256, help="texels a side of the largest atlas (a power of two)")
    p.add_argument("--atlases", type=int, default=2, help="number of atlases the level is unwrapped into")
    p.add_argument("--parts", type=int, default=1, help="files per lightmap, split along its height (divides --size)")
    p.add_argument("--spp", type=int, default=8, help="sky samples per texel (the sun and each lamp get spp/4, 1..4)")
    p.add_argument("--seed", type=int, default=0, help="the level's layout and the sample patterns")
    p.add_argument("--latitude", type=float, default=45.4, help="degrees north")
    p.add_argument("--longitude", type=float, default=12.3, help="degrees east")
    p.add_argument("--timezone", type=float, default=1.0, help="hours east of UTC of the clock the times are in")
    p.add_argument("--date", default="2024-06-21", help="the day, YYYY-MM-DD")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bake)


def cmd_bake(args: argparse.Namespace) -> int:
    """Run the bake described by ``args``; bad input raises ``airender.errors.InputError``."""
    from airender.bake.bake import BakeSettings, bake, parse_day
    from airender.bake.solar import Site

    site = Site(latitude=args.latitude, longitude=args.longitude, timezone=args.timezone, day=parse_day(args.date))
    settings = BakeSettings(size=args.size, atlases=args.atlases, parts=args.parts, spp=args.spp, seed=args.seed,
                            site=site)
    result = bake(Path(args.out), settings, overwrite=args.overwrite, progress=not args.quiet)
    sizes = ", ".join(f"{m['width']}x{m['height']}" for m in result.lightmaps)
    print(f"baked {len(result.lightmaps)} lightmap(s) ({sizes}) at {len(result.times)} times in "
          f"{result.seconds['total']:.1f} s into {result.out}; look at {result.out / 'contact_sheet.png'}")
    return 0
