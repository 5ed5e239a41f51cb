"""Make the bundled sample atlas (``airender/sample_data/atlas``) with the project's own baker.

Bakes the procedural level (``airender bake``), cuts a window out of one lightmap and stores it compactly
(float16 at valid texels, compressed ``.npz``, plus ``meta.json``); ``airender.bake.sample
.materialise_sample_atlas(dest)`` writes it back out in the virtual-texture layout for training, without
Mitsuba. Requires the optional ``scene`` extra: ``pip install -e .[scene]``.

    python scripts/make_sample_atlas.py            # the committed sample (about a minute on two cores)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from airender.bake.bake import BakeSettings, bake
from airender.bake.sample import save_sample_atlas
from airender.errors import InputError

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "airender" / "sample_data" / "atlas"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", type=int, default=256, help="bake: texels a side of the largest atlas")
    parser.add_argument("--atlases", type=int, default=2, help="bake: number of atlases")
    parser.add_argument("--spp", type=int, default=32, help="bake: sky samples per texel")
    parser.add_argument("--seed", type=int, default=0, help="bake: level and sample patterns")
    parser.add_argument("--lightmap", type=int, default=1, help="which baked lightmap the window is cut from")
    parser.add_argument("--window", type=int, nargs=4, default=[0, 0, 128, 128], metavar=("ROW", "COL", "H", "W"),
                        help="rows ROW..ROW+H, columns COL..COL+W of that lightmap")
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="airender-sample-bake-") as tmp:
            bake_root = Path(tmp) / "bake"
            bake(bake_root, BakeSettings(size=args.size, atlases=args.atlases, parts=1, spp=args.spp, seed=args.seed))
            sizes = save_sample_atlas(bake_root, args.lightmap, tuple(args.window), args.out)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = sum(sizes.values())
    print(f"wrote the sample atlas to {args.out}: {total / 1e6:.2f} MB ({sizes})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
