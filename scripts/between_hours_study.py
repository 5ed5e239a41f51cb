"""How far can a frame between two baked hours get from the two hours alone? A study of daylight frames.

    python scripts/between_hours_study.py --data_dir ../shared/data/courtyard/png \
        --extra ../shared/data/courtyard/png_extra [--steps 1500] [--out study.json]

Every held-out frame at a fractional daylight hour t (between ``--day`` START and END) is predicted from
the ground-truth frames of the two stored whole hours around it, h = floor(t) and h + 1, with a = t - h,
as a per-pixel blend in linear light, ``(1 - w) * I(h) + w * I(h + 1)``, for these weights w [H, W]:

* ``blend``: w = a everywhere (the "store every hour and blend" anchor);
* ``learned``: w from :class:`airender.between.net.BlendWeightNet`, a small U-Net of the two frames, the
  stored hours either side of them and a, fitted on the stored hours only (:func:`airender.between.net.fit_between_net`: triplets of whole
  daylight hours h0 < h1 < h2, 2-4 h apart, predicting h1 from h0 and h2; half of the batches at half
  resolution); no held-out frame is seen;
* ``ceiling``: per pixel the best w of 0, 0.1, ..., 1 chosen with the ground truth at t: the bound of
  any per-pixel blend of the two hours (not a method).

Frames are 8-bit sRGB (LDR folders); PSNR on the 8-bit sRGB image, as `airender eval` scores LDR data.
The network's prediction is free of stored bytes beyond its weights (75k parameters at 24 channels), but
it needs both hours decoded first. Prints one line per frame and the means; ``--out`` writes them as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airender.between.net import BetweenNetConfig, fit_between_net  # noqa: E402
from airender.data import load_sequence  # noqa: E402
from airender.data.sequence import linear_to_srgb, srgb_to_linear  # noqa: E402


def blend(before: torch.Tensor, after: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (1 - w) * before + w * after


def psnr_8bit(linear: torch.Tensor, truth_srgb: torch.Tensor) -> float:
    """PSNR (dB) of a linear [3, H, W] prediction against an sRGB [3, H, W] truth, both as 8-bit sRGB."""
    pred = torch.round(linear_to_srgb(linear.clamp(0, 1)) * 255)
    mse = torch.mean((pred - torch.round(truth_srgb * 255)) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", required=True, help="folder of whole-hour LDR frames")
    p.add_argument("--extra", required=True, help="folder with the held-out fractional hours")
    p.add_argument("--day", type=float, nargs=2, default=(6.0, 18.0), metavar=("START", "END"),
                   help="daylight hours (default: 6 18)")
    p.add_argument("--steps", type=int, default=1500, help="training steps of the weight network (default: 1500)")
    p.add_argument("--channels", type=int, default=24, help="channels of the network's layers (default: 24)")
    p.add_argument("--out", default="", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    stored, extra = load_sequence(args.data_dir), load_sequence(args.extra)
    if stored.is_hdr or extra.is_hdr:
        raise SystemExit("error: this study takes LDR (sRGB) frame folders")
    start, end = args.day
    hours = {int(round(float(t))): srgb_to_linear(stored.frames[i].permute(2, 0, 1))
             for i, t in enumerate(stored.times.tolist()) if float(t).is_integer()}
    held = [(float(t), extra.frames[i].permute(2, 0, 1)) for i, t in enumerate(extra.times.tolist())
            if not float(t).is_integer() and start <= int(t) and int(t) + 1 <= end
            and all((int(t) + k) % 24 in hours for k in (-1, 0, 1, 2))]
    if not held:
        raise SystemExit(f"error: {args.extra}: no fractional daylight frame between two stored hours")
    print(f"{len(hours)} hours stored, {len(held)} held-out frames: {', '.join(f'{t:g}' for t, _ in held)}")
    net = fit_between_net({float(h): frame for h, frame in hours.items()},
                          BetweenNetConfig(steps=args.steps, channels=args.channels, day=(start, end)))
    rows = []
    with torch.no_grad():
        for t, truth in held:
            h, a = int(t), t - int(t)
            before, after = hours[h], hours[h + 1]
            plain = psnr_8bit(blend(before, after, torch.full((1, 1, 1), a)), truth)
            earlier, later = hours[(h - 1) % 24], hours[(h + 2) % 24]
            w = net(earlier[None], before[None], after[None], later[None], torch.tensor(a).view(1, 1, 1, 1))[0]
            learned = psnr_8bit(blend(before, after, w), truth)
            grid = torch.linspace(0, 1, 11).view(-1, 1, 1, 1)
            candidates = blend(before[None], after[None], grid)
            errors = ((linear_to_srgb(candidates.clamp(0, 1)) - truth[None]) ** 2).sum(1)
            best = torch.gather(candidates, 0, errors.argmin(0)[None, None].expand(1, 3, -1, -1))[0]
            rows.append({"time": t, "blend": plain, "learned": learned, "ceiling": psnr_8bit(best, truth)})
            print(f"{t:6.2f} h: blend {plain:6.2f} dB   learned {learned:6.2f} dB   ceiling {rows[-1]['ceiling']:6.2f} dB")
    means = {k: float(np.mean([r[k] for r in rows])) for k in ("blend", "learned", "ceiling")}
    print(f"mean:     blend {means['blend']:6.2f} dB   learned {means['learned']:6.2f} dB   ceiling {means['ceiling']:6.2f} dB")
    if args.out:
        Path(args.out).write_text(json.dumps({"frames": rows, "means": means, "steps": args.steps}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
