"""How far can a frame between two baked hours get from the two hours alone? A study of daylight frames.

    python scripts/between_hours_study.py --data_dir ../shared/data/courtyard/png \
        --extra ../shared/data/courtyard/png_extra [--steps 1500] [--out study.json]

Every held-out frame at a fractional daylight hour t (between ``--day`` START and END) is predicted from
the ground-truth frames of the two stored whole hours around it, h = floor(t) and h + 1, with a = t - h,
as a per-pixel blend in linear light, ``(1 - w) * I(h) + w * I(h + 1)``, for these weights w [H, W]:

* ``blend``: w = a everywhere (the "store every hour and blend" anchor);
* ``learned``: w from a small convolutional network of the two frames and a, trained on the stored
  hours only (self-supervised: triplets of whole daylight hours h0 < h1 < h2, 2-4 h apart, predicting
  h1 from h0 and h2; half of the batches at half resolution, so that shadows move as far in pixels as
  they do in one hour at full resolution); no held-out frame is seen;
* ``ceiling``: per pixel the best w of 0, 0.1, ..., 1 chosen with the ground truth at t: the bound of
  any per-pixel blend of the two hours (not a method).

Frames are 8-bit sRGB (LDR folders); PSNR on the 8-bit sRGB image, as `airender eval` scores LDR data.
The network's prediction is free of stored bytes beyond its weights (about 30k parameters), but it needs
both hours decoded first. Prints one line per frame and the means; ``--out`` writes them as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airender.data import load_sequence  # noqa: E402
from airender.data.sequence import linear_to_srgb, srgb_to_linear  # noqa: E402


class BlendWeightNet(nn.Module):
    """A small U-Net: (log I(h) [N, 3, H, W], log I(h+1), their difference, a [N, 1, 1, 1]) -> w [N, 1, H, W] in
    (0, 1), starting near the plain blend weight a (the output is a logit offset from logit(a))."""

    def __init__(self, channels: int = 24):
        super().__init__()
        c = channels

        def block(cin: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, c, 3, stride=stride, padding=1), nn.ReLU(),
                                 nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation), nn.ReLU())

        self.level1, self.level2, self.level3 = block(10), block(c, 2), block(c, 2)
        self.level4 = nn.Sequential(block(c, 2, 2), nn.Conv2d(c, c, 3, padding=4, dilation=4), nn.ReLU())
        self.up3 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU())
        self.up2 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU())
        self.up1 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, before: torch.Tensor, after: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        lb, la = torch.log(before + 1e-3), torch.log(after + 1e-3)
        x1 = self.level1(torch.cat([lb, la, la - lb, a.expand(before.shape[0], 1, *before.shape[2:])], 1))
        x2 = self.level2(x1)
        x3 = self.level3(x2)
        x4 = self.level4(x3)

        def up(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.interpolate(t, size=like.shape[2:], mode="bilinear", align_corners=False)

        y3 = self.up3(torch.cat([up(x4, x3), x3], 1))
        y2 = self.up2(torch.cat([up(y3, x2), x2], 1))
        logit = self.up1(torch.cat([up(y2, x1), x1], 1))
        return torch.sigmoid(logit + torch.logit(a.clamp(0.02, 0.98)))


def blend(before: torch.Tensor, after: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return (1 - w) * before + w * after


def psnr_8bit(linear: torch.Tensor, truth_srgb: torch.Tensor) -> float:
    """PSNR (dB) of a linear [3, H, W] prediction against an sRGB [3, H, W] truth, both as 8-bit sRGB."""
    pred = torch.round(linear_to_srgb(linear.clamp(0, 1)) * 255)
    mse = torch.mean((pred - torch.round(truth_srgb * 255)) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def train_weight_net(hours: dict[int, torch.Tensor], steps: int, seed: int = 0) -> BlendWeightNet:
    """Fit BlendWeightNet on triplets of the whole daylight hours (linear [3, H, W] frames by hour)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    triplets = [(h0, h1, h0 + gap) for gap in (2, 3, 4) for h0 in hours if h0 + gap in hours
                for h1 in range(h0 + 1, h0 + gap)]
    net = BlendWeightNet()
    optimiser = torch.optim.Adam(net.parameters(), 1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    started = time.perf_counter()
    for step in range(steps):
        scale = int(rng.choice([1, 2]))
        before, truth, after, weight = [], [], [], []
        for k in rng.integers(len(triplets), size=4):
            h0, h1, h2 = triplets[k]
            frames = [hours[h] if scale == 1 else F.avg_pool2d(hours[h][None], scale)[0] for h in (h0, h1, h2)]
            height, width = frames[0].shape[1:]
            ch, cw = min(96, height), min(128, width)
            y, x = int(rng.integers(height - ch + 1)), int(rng.integers(width - cw + 1))
            crops = [f[:, y:y + ch, x:x + cw] for f in frames]
            before.append(crops[0]), truth.append(crops[1]), after.append(crops[2])
            weight.append((h1 - h0) / (h2 - h0))
        before, truth, after = torch.stack(before), torch.stack(truth), torch.stack(after)
        a = torch.tensor(weight, dtype=torch.float32).view(-1, 1, 1, 1)
        pred = blend(before, after, net(before, after, a))
        loss = F.mse_loss(linear_to_srgb(pred.clamp(0, 1)), linear_to_srgb(truth.clamp(0, 1)))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"  step {step + 1}/{steps}: loss {loss.item():.5f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", required=True, help="folder of whole-hour LDR frames")
    p.add_argument("--extra", required=True, help="folder with the held-out fractional hours")
    p.add_argument("--day", type=float, nargs=2, default=(6.0, 18.0), metavar=("START", "END"),
                   help="daylight hours (default: 6 18)")
    p.add_argument("--steps", type=int, default=1500, help="training steps of the weight network (default: 1500)")
    p.add_argument("--out", default="", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    stored, extra = load_sequence(args.data_dir), load_sequence(args.extra)
    if stored.is_hdr or extra.is_hdr:
        raise SystemExit("error: this study takes LDR (sRGB) frame folders")
    start, end = args.day
    hours = {int(round(float(t))): srgb_to_linear(stored.frames[i].permute(2, 0, 1))
             for i, t in enumerate(stored.times.tolist()) if float(t).is_integer() and start <= t <= end}
    held = [(float(t), extra.frames[i].permute(2, 0, 1)) for i, t in enumerate(extra.times.tolist())
            if not float(t).is_integer() and int(t) in hours and int(t) + 1 in hours]
    if not held:
        raise SystemExit(f"error: {args.extra}: no fractional daylight frame between two stored hours")
    print(f"{len(hours)} daylight hours stored, {len(held)} held-out frames: {', '.join(f'{t:g}' for t, _ in held)}")
    net = train_weight_net(hours, args.steps)
    rows = []
    with torch.no_grad():
        for t, truth in held:
            h, a = int(t), t - int(t)
            before, after = hours[h], hours[h + 1]
            plain = psnr_8bit(blend(before, after, torch.full((1, 1, 1), a)), truth)
            w = net(before[None], after[None], torch.tensor(a).view(1, 1, 1, 1))[0]
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
