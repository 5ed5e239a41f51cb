"""A learned per-pixel blend weight between two stored hours, fitted on the stored hours themselves.

Between two stored hours h0 < h1 a frame is ``(1 - w) I(h0) + w I(h1)`` in linear light. The plain blend
has w = s (the fraction of the interval elapsed) everywhere and cross-fades the sun's shadows;
:class:`BlendWeightNet`, a small U-Net, gives each pixel its own w, so that a pixel the moving shadow has
already reached takes the later hour's state. It sees the two hours, the stored hours either side of them
(where the shadows came from and where they go next) and s.

It never sees a time between hours: :func:`fit_between_net` trains it on triplets of stored daylight
hours h0 < h < h2 (2-4 hours apart), predicting the frame at h from those at h0 and h2, with h0 - (h2 - h0)
and h2 + (h2 - h0) as the hours either side; half of the batches are at half resolution, so that the
shadows move as far in pixels as they do in one hour at full resolution. Fitted on a model's own decoded
hours (``airender fit-between``, or ``train --between_steps N`` after training, as the ``quality`` preset
does), it adds its weights' bytes to the model and nothing else: float16, or int8 with one scale per
output channel (20 kB at 12 channels, as good as float16 on the courtyard renders).

:class:`LearnedBlendDecoder` wraps a decoder with it (``--between learned``; whole frames at the training
size). docs/RESULTS.md, "Moving the shadows between the hours", has what it measures.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from airender.between.decoder import BetweenHoursDecoder, error_view
from airender.errors import InputError
from airender.fileio import atomic_path
from airender.runtime.packfile import quantise_int8
from airender.sizes import with_extra_bytes

FORMAT = "airender-between-net-1"


@dataclass
class BetweenNetConfig:
    """How the blend-weight network is built and fitted (saved with its weights)."""

    channels: int = 12  # feature channels of every layer of the U-Net
    steps: int = 1500  # Adam steps
    lr: float = 1e-3
    batch: int = 4  # crops per step
    crop: tuple[int, int] = (96, 128)  # crop height, width in pixels (the whole frame when smaller)
    gaps: tuple[int, ...] = (2, 3, 4)  # stored-hour spacings h2 - h0 of the training triplets, in hours
    day: tuple[float, float] = (6.0, 18.0)  # stored hours in [start, end] make the triplets (the daylight)
    seed: int = 0
    store_dtype: str = "float16"  # stored weights: float16, or int8 (symmetric, one scale per output channel)


STORE_DTYPES = ("float16", "int8")


class NoTrainingTriplets(InputError):
    """The stored hours hold nothing to fit the network on (see :func:`training_triplets`)."""


class BlendWeightNet(nn.Module):
    """(I(h0 - d), I(h0), I(h1), I(h1 + d) linear [N, 3, H, W], s [N, 1, 1, 1]) -> w [N, 1, H, W] in (0, 1),
    d = h1 - h0.

    A four-level U-Net on log I(h0), log I(h1), the change between them, the changes over the intervals
    before and after (where the shadows came from and where they go next) and s; its output is a logit
    offset from logit(s), so that an untrained network is close to the plain blend.
    """

    def __init__(self, channels: int = 12, store_dtype: str = "float16"):
        super().__init__()
        c = channels
        self.store_dtype = store_dtype  # how its parameters are stored (see stored_state)

        def block(cin: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, c, 3, stride=stride, padding=1), nn.ReLU(),
                                 nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation), nn.ReLU())

        self.level1, self.level2, self.level3 = block(16), block(c, 2), block(c, 2)
        self.level4 = nn.Sequential(block(c, 2, 2), nn.Conv2d(c, c, 3, padding=4, dilation=4), nn.ReLU())
        self.up3 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU())
        self.up2 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU())
        self.up1 = nn.Sequential(nn.Conv2d(2 * c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, earlier: torch.Tensor, before: torch.Tensor, after: torch.Tensor, later: torch.Tensor,
                s: torch.Tensor) -> torch.Tensor:
        logs = [torch.log(x.clamp_min(0) + 1e-3) for x in (earlier, before, after, later)]
        x1 = self.level1(torch.cat([logs[1], logs[2], logs[2] - logs[1], logs[1] - logs[0], logs[3] - logs[2],
                                    s.expand(before.shape[0], 1, *before.shape[2:])], 1))
        x2 = self.level2(x1)
        x3 = self.level3(x2)
        x4 = self.level4(x3)

        def up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)

        y3 = self.up3(torch.cat([up(x4, x3), x3], 1))
        y2 = self.up2(torch.cat([up(y3, x2), x2], 1))
        logit = self.up1(torch.cat([up(y2, x1), x1], 1))
        return torch.sigmoid(logit + torch.logit(s.clamp(0.02, 0.98)))


def training_triplets(hours: list[float], config: BetweenNetConfig) -> list[tuple[float, float, float]]:
    """(h0, h, h2) of stored hours in the day window, h2 - h0 one of ``config.gaps``, h0 < h < h2, whose
    context hours h0 - gap and h2 + gap (any time of day, periodic) are stored too."""
    start, end = config.day
    day = sorted(h for h in hours if start <= h <= end)
    stored = {h % 24.0 for h in hours}
    return [(h0, h, h0 + gap) for gap in config.gaps for h0 in day if h0 + gap in day
            and (h0 - gap) % 24.0 in stored and (h0 + 2 * gap) % 24.0 in stored
            for h in day if h0 < h < h0 + gap]


def fit_between_net(frames: dict[float, torch.Tensor], config: BetweenNetConfig, is_hdr: bool = False,
                    report=print) -> BlendWeightNet:
    """Fit :class:`BlendWeightNet` on stored hours ``frames`` {hour: linear [3, H, W]} (CPU tensors; every
    stored hour, the context hours may lie outside the day window).

    Raises NoTrainingTriplets (an InputError) when the day window holds no triplet (fewer than three stored
    hours 2-4 h apart).
    ``report`` gets a progress line now and then.
    """
    triplets = training_triplets(list(frames), config)
    if not triplets:
        raise NoTrainingTriplets(f"fit-between: no three stored hours in the day window {config.day[0]:g}-{config.day[1]:g} "
                         f"h spaced {', '.join(map(str, config.gaps))} h apart to learn from")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = BlendWeightNet(config.channels, config.store_dtype)
    optimiser = torch.optim.Adam(net.parameters(), config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(1, config.steps))
    started = time.perf_counter()
    every = max(1, config.steps // 6)
    for step in range(config.steps):
        scale = int(rng.choice([1, 2]))
        batch, weight = [], []  # per item: earlier, before, truth, after, later
        for k in rng.integers(len(triplets), size=config.batch):
            h0, h, h2 = triplets[k]
            gap = h2 - h0
            times = ((h0 - gap) % 24.0, h0, h, h2, (h2 + gap) % 24.0)
            crops = [frames[x] if scale == 1 else F.avg_pool2d(frames[x][None], scale)[0] for x in times]
            height, width = crops[0].shape[1:]
            ch, cw = min(config.crop[0], height), min(config.crop[1], width)
            y, x = int(rng.integers(height - ch + 1)), int(rng.integers(width - cw + 1))
            batch.append([c[:, y:y + ch, x:x + cw] for c in crops])
            weight.append((h - h0) / gap)
        earlier, before, truth, after, later = (torch.stack(items) for items in zip(*batch))
        s = torch.tensor(weight, dtype=torch.float32).view(-1, 1, 1, 1)
        w = net(earlier, before, after, later, s)
        loss = F.mse_loss(error_view(before + w * (after - before), is_hdr), error_view(truth, is_hdr))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if (step + 1) % every == 0 or step + 1 == config.steps:
            report(f"fit-between step {step + 1}/{config.steps}: loss {loss.item():.3e} "
                   f"({time.perf_counter() - started:.0f} s)")
    net.load_state_dict({k: _unstored(v) for k, v in stored_state(net).items()})  # as it is stored
    return net.eval()


def stored_state(net: BlendWeightNet) -> dict:
    """The network's parameters as stored: float16 tensors, or with ``net.store_dtype`` 'int8' each convolution
    kernel as {'q': int8, 'scale': float32 per output channel} (as packs store weights,
    :func:`airender.export.pack.quantise_int8`) and biases float16."""

    state = {}
    for name, value in net.state_dict().items():
        value = value.detach().cpu().float()
        if net.store_dtype == "int8" and value.ndim > 1:
            stored = quantise_int8(value.numpy())
            state[name] = {"q": torch.from_numpy(stored.data), "scale": torch.from_numpy(stored.scale)}
        else:
            state[name] = value.half()
    return state


def _unstored(value) -> torch.Tensor:
    """A parameter of :func:`stored_state` back as float32."""
    if isinstance(value, dict):
        q, scale = value["q"], value["scale"]
        return q.float() * scale.float().view(-1, *([1] * (q.dim() - 1)))
    return value.float()


def net_bytes(net: BlendWeightNet) -> int:
    """Bytes of the parameters as stored (see :func:`stored_state`)."""
    return sum(v["q"].numel() + 4 * v["scale"].numel() if isinstance(v, dict) else 2 * v.numel()
               for v in stored_state(net).values())


def add_network_size(size: dict, net: BlendWeightNet) -> dict:
    """``size`` (:func:`airender.sizes.compression_report`'s dict) with the network's bytes
    (``between_net_bytes``) and the total against the raw frames (``total_bytes``, ``total_percent_of_raw``)."""
    return with_extra_bytes(size, "between_net_bytes", net_bytes(net))


def network_size_line(size: dict) -> str:
    """One line with what :func:`add_network_size` added."""
    return (f"with the blend-weight network ({size['between_net_bytes']:,} bytes): {size['total_bytes']:,} bytes = "
            f"{size['total_percent_of_raw']:.2f} % of the raw float32 frames")


def save_between_net(path: str | Path, net: BlendWeightNet, config: BetweenNetConfig, fitted_on: str = "") -> None:
    """Write the network (stored as ``net.store_dtype``) and its config to ``path`` atomically."""
    payload = {"format": FORMAT, "config": asdict(config), "fitted_on": fitted_on, "state": stored_state(net)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_between_net(path: str | Path) -> tuple[BlendWeightNet, BetweenNetConfig]:
    """Read what :func:`save_between_net` wrote; InputError naming ``path`` when it is not such a file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no blend-weight network here (make one with airender fit-between)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        known = {f.name for f in fields(BetweenNetConfig)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in payload["config"].items() if k in known}
        config = BetweenNetConfig(**values)
        if config.store_dtype not in STORE_DTYPES:
            raise ValueError(f"unknown store_dtype {config.store_dtype!r}")
        net = BlendWeightNet(config.channels, config.store_dtype)
        net.load_state_dict({k: _unstored(v) for k, v in payload["state"].items()})
    except Exception as error:  # noqa: BLE001 - any reader error is bad input here
        raise InputError(f"{path}: not a blend-weight network ({error})") from None
    if not all(math.isfinite(float(v.abs().max())) for v in net.state_dict().values()):
        raise InputError(f"{path}: the network holds a non-finite weight")
    return net.eval(), config


class LearnedBlendDecoder(BetweenHoursDecoder):
    """Frames between two stored hours blended per pixel by a :class:`BlendWeightNet` (see the module
    docstring); ``decoder`` and ``switch_hours`` as for :class:`airender.between.decoder.BetweenHoursDecoder`."""

    def __init__(self, decoder, net: BlendWeightNet, switch_hours: tuple[float, float] | None = None):
        super().__init__(decoder, switch_hours)
        self.net = net.eval()

    @torch.no_grad()
    def weights(self, before: int, after: int, s: float) -> torch.Tensor:
        frames = [self.hour_frame(i).permute(2, 0, 1)[None] for i in (before - 1, before, after, after + 1)]
        return self.net(*frames, torch.tensor(float(s)).view(1, 1, 1, 1))[0, 0]


def fit_for_decoder(decoder, config: BetweenNetConfig, report=print) -> BlendWeightNet:
    """Fit a network on ``decoder``'s own stored hours (decoded once, in linear light)."""
    frames = BetweenHoursDecoder(decoder)
    hours = {float(h): frames.hour_frame(i).permute(2, 0, 1) for i, h in enumerate(frames.hours.tolist())}
    return fit_between_net(hours, config, decoder.desc.is_hdr, report)
