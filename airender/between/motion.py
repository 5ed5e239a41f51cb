"""Between two stored hours, move the sun's shadows instead of cross-fading them.

A frame at a time t between two trained hours is usually decoded as the blend of the two hours, which
cross-fades two shadow positions into two half-dark copies.
:class:`airender.between.decoder.BetweenHoursDecoder` wraps any decoder (a trained field, a tiled atlas, a
pack, the store-every-frame anchor) and decodes such a frame as a blend of the decoder's own frames at the
two hours, in linear light, with a weight per pixel, so that a pixel the moving shadow has already reached
takes the later hour's state. :class:`ShadowMotionDecoder` (here) finds that weight from the shadows'
motion, with nothing fitted or stored; :class:`airender.between.net.LearnedBlendDecoder` from a small
network fitted on the stored hours.

How :class:`ShadowMotionDecoder` finds the weight of the later hour, per pixel (``w`` in [0, 1]; ``w = s``
everywhere is the plain blend, s the fraction of the interval elapsed at t):

* **shading** S_h = log(luminance_h / max over the stored hours of the luminance): the light a pixel gets
  at hour h relative to its brightest, so that albedo and texture drop out and shadows remain;
* **flow** (:func:`block_flow`, :func:`flow_weight`): the displacement that carries S at the first hour
  onto S at the second (block matching over a window, search radius proportional to the time between
  them). A pixel whose shading changes by more than :data:`MIN_CHANGE` gets the fraction of its change
  that the shading, moved by ``s`` times the displacement, has reached at t. This follows compact
  shadows (trees, posts) that translate.
* **sweep** (:func:`sweep_weight`): where a shadow front sweeps over a region during the interval (a band
  of pixels that turn dark, or light), each pixel switches at the fraction of its distance from the
  front's position at the first hour towards its position at the second. This follows the long fronts of
  buildings, whose inside has no texture to match.
* **choice** (:meth:`ShadowMotionDecoder.weights_and_choice`): neither is right everywhere, so each pixel
  takes whichever of blend, flow and sweep predicted the decoder's own stored hours best in its
  neighbourhood: the hour before t from the hours either side of it, and the hour after t likewise.

Measured on the daylight frames between hours of the courtyard renders and the bundled plaza
(docs/RESULTS.md, "Moving the shadows between the hours"): about 1.1 dB above the blend on average, but
one frame (16.75 h on the courtyard, where the whole square goes into shadow) 1.5 dB below it.

Only whole frames at the training size are decoded this way (the weights need a pixel's neighbourhood);
the stored hours, and with a light switch the times at night or next to the switch, are the wrapped
decoder's own frames. The cost is three block matchings per frame, about 10 s
for 320 x 180 on two CPU cores, growing with the pixel count.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from airender.between.decoder import BetweenHoursDecoder, error_view

RADIUS_PER_HOUR = 16  # pixels a shadow may move in one hour (block-matching search radius)
MATCH_WINDOW = 11  # block-matching window, pixels
MIN_CHANGE = 0.3  # |S_1 - S_0| (log luminance) above which a pixel's shading changed
SWEEP_THRESHOLD = 0.5  # change (against its local median) that marks a pixel swept by a front
SWEEP_MEDIAN = 31  # window of that local median, pixels
CHOICE_WINDOW = 9  # window over which the three candidates' errors on the stored hours are compared
CANDIDATES = ("blend", "flow", "sweep")
LUMINANCE = (0.2126, 0.7152, 0.0722)
_EPS = 1e-4  # added to luminance before the log (black texels, masked texels)


def luminance(linear: torch.Tensor) -> torch.Tensor:
    """[H, W, 3] linear RGB -> [H, W] Rec. 709 luminance + a small floor."""
    return linear @ linear.new_tensor(LUMINANCE) + _EPS


def box_mean(images: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of [N, C, H, W] over a window x window box around each pixel (the part inside the image at the
    edges), as two one-dimensional passes."""
    rows = F.avg_pool2d(images, (window, 1), 1, (window // 2, 0), count_include_pad=False)
    return F.avg_pool2d(rows, (1, window), 1, (0, window // 2), count_include_pad=False)


def block_flow(s0: torch.Tensor, s1: torch.Tensor, radius: int, window: int = MATCH_WINDOW) -> torch.Tensor:
    """Integer displacement [2, H, W] (dy, dx) in pixels that carries ``s0`` onto ``s1``.

    For every shift within ``radius`` the squared difference s1(p + shift) - s0(p) is averaged over a
    ``window`` x ``window`` box; each pixel takes the cheapest shift (a tiny penalty on its length makes
    the smallest of equal shifts win, so flat regions stay at 0). s0, s1: [H, W] float tensors.
    """
    height, width = s0.shape
    padded = F.pad(s1[None, None], (radius,) * 4, mode="replicate")[0, 0]
    offsets = torch.arange(-radius, radius + 1)
    shifts = torch.cartesian_prod(offsets, offsets)  # [N, 2]
    penalty = 1e-5 * (shifts.float() ** 2).sum(1)
    best = torch.full((height, width), math.inf)
    flow = torch.zeros(2, height, width, dtype=torch.long)
    chunk = max(1, (1 << 23) // (height * width))
    for start in range(0, len(shifts), chunk):
        part = shifts[start:start + chunk]
        moved = torch.stack([padded[radius + dy: radius + dy + height, radius + dx: radius + dx + width]
                             for dy, dx in part.tolist()])
        cost = box_mean(((moved - s0) ** 2)[:, None], window)[:, 0] + penalty[start:start + chunk, None, None]
        value, index = cost.min(0)
        better = value < best
        best = torch.where(better, value, best)
        flow = torch.where(better, part[index].permute(2, 0, 1), flow)
    return flow


def _sample(image: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """image [H, W] read at (y + dy, x + dx), bilinear, edges clamped."""
    height, width = image.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([(xs + dx) / max(width - 1, 1) * 2 - 1, (ys + dy) / max(height - 1, 1) * 2 - 1], -1)
    return F.grid_sample(image[None, None], grid[None], mode="bilinear", padding_mode="border",
                         align_corners=True)[0, 0]


def flow_weight(s0: torch.Tensor, s1: torch.Tensor, s: float, radius: int) -> torch.Tensor:
    """[H, W] weight of the later hour at fraction ``s``, shadows moved along :func:`block_flow`."""
    flow = block_flow(s0, s1, radius).float()
    dy, dx = flow[0], flow[1]
    forward = _sample(s0, -s * dy, -s * dx)  # s0 moved on by s of the displacement
    backward = _sample(s1, (1 - s) * dy, (1 - s) * dx)  # s1 moved back by the rest
    change = s1 - s0
    moved = change.abs() > MIN_CHANGE
    reached = (0.5 * (forward + backward) - s0) / torch.where(moved, change, torch.ones_like(change))
    return torch.where(moved, reached.clamp(0, 1), torch.full_like(s0, s))


def sweep_weight(s0: torch.Tensor, s1: torch.Tensor, s: float) -> torch.Tensor:
    """[H, W] weight of the later hour at fraction ``s`` where shadow fronts sweep over a band of pixels.

    The band that turns dark (or light) is where the change S_1 - S_0 departs from its local median by
    more than :data:`SWEEP_THRESHOLD`. The band's rim is split into the side where the front stood at the
    first hour (dark then, for a band turning dark) and the side where it stands at the second (still lit
    then); a pixel switches at tau = d_first / (d_first + d_second) of the interval, with an edge one
    pixel wide. Elsewhere the weight is ``s``.
    """
    a, b = s0.double().numpy(), s1.double().numpy()
    change = b - a
    departure = change - ndimage.median_filter(change, size=SWEEP_MEDIAN)
    weight = np.full(a.shape, float(s))
    for band, darkens in ((departure < -SWEEP_THRESHOLD, True), (departure > SWEEP_THRESHOLD, False)):
        band = ndimage.binary_opening(band)
        if not band.any():
            continue
        rim = ndimage.binary_dilation(band, iterations=2) & ~band
        nearest = ndimage.distance_transform_edt(~band, return_distances=False, return_indices=True)
        middle = 0.5 * (a[nearest[0], nearest[1]] + b[nearest[0], nearest[1]])  # between the band's two states
        if darkens:
            first, second = rim & (a < middle), rim & (b > middle)
        else:
            first, second = rim & (a > middle), rim & (b < middle)
        if not first.any() or not second.any():
            continue
        d_first = ndimage.distance_transform_edt(~first)
        d_second = ndimage.distance_transform_edt(~second)
        span = d_first + d_second + 1e-9
        switched = np.clip((s - d_first / span) * span + 0.5, 0.0, 1.0)
        weight = np.where(band, switched, weight)
    return torch.from_numpy(weight).float()


def candidate_weights(s0: torch.Tensor, s1: torch.Tensor, s: float, radius: int) -> torch.Tensor:
    """[3, H, W] weights of the later hour from blend, flow and sweep (in :data:`CANDIDATES` order)."""
    return torch.stack([torch.full_like(s0, s), flow_weight(s0, s1, s, radius), sweep_weight(s0, s1, s)])


class ShadowMotionDecoder(BetweenHoursDecoder):
    """Frames between two stored hours with the shadows moved by flow or sweep, whichever predicted the
    decoder's own stored hours best around each pixel (see the module docstring)."""

    def __init__(self, decoder, switch_hours: tuple[float, float] | None = None,
                 radius_per_hour: int = RADIUS_PER_HOUR):
        super().__init__(decoder, switch_hours)
        self.radius_per_hour = radius_per_hour
        self._day_max: torch.Tensor | None = None

    def shading(self, index: int) -> torch.Tensor:
        """[H, W] log of the luminance at stored hour ``index`` over its largest value across the hours."""
        if self._day_max is None:
            self._day_max = torch.stack([luminance(self.hour_frame(i)) for i in range(len(self.hours))]).amax(0)
        return torch.log(luminance(self.hour_frame(index)) / self._day_max)

    def _radius(self, hours: float) -> int:
        return max(1, int(round(self.radius_per_hour * hours)))

    def weights(self, before: int, after: int, s: float) -> torch.Tensor:
        return self.weights_and_choice(before, after, s)[0]

    def weights_and_choice(self, before: int, after: int, s: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight [H, W] of stored hour ``after`` at fraction ``s`` from ``before``, and which candidate
        ([H, W] index into :data:`CANDIDATES`) each pixel took."""
        score = 0
        for middle, first, second in ((before, before - 1, after), (after, before, after + 1)):
            span = self._span(first, second)
            fraction = self._span(first, middle) / span
            tries = candidate_weights(self.shading(first), self.shading(second), fraction, self._radius(span))
            truth = error_view(self.hour_frame(middle), self.desc.is_hdr)
            guesses = (error_view(self._interpolated(first, second, w), self.desc.is_hdr) for w in tries)
            errors = torch.stack([((guess - truth) ** 2).sum(-1) for guess in guesses])
            score = score + box_mean(errors[:, None], CHOICE_WINDOW)[:, 0]
        choice = score.argmin(0)
        tries = candidate_weights(self.shading(before), self.shading(after), s,
                                  self._radius(self._span(before, after)))
        return tries.gather(0, choice[None])[0], choice

