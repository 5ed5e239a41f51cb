"""Frames between two stored hours as a per-pixel blend of a decoder's own frames at those hours.

:class:`BetweenHoursDecoder` is what ``--between`` wraps a decoder in; its subclasses give the weight:
:class:`airender.between.net.LearnedBlendDecoder` (a network fitted on the stored hours) and
:class:`airender.between.motion.ShadowMotionDecoder` (the shadows' motion, nothing fitted).
"""
from __future__ import annotations

import torch

from airender.hours import neighbouring_hours
from airender.data.sequence import linear_to_srgb, srgb_to_linear


def error_view(linear: torch.Tensor, is_hdr: bool) -> torch.Tensor:
    """Linear light -> the values errors between frames are measured in: sRGB values (clamped to [0, 1])
    for LDR data, log1p radiance for HDR."""
    return torch.log1p(linear.clamp_min(0)) if is_hdr else linear_to_srgb(linear.clamp(0, 1))


class BetweenHoursDecoder:
    """A decoder whose frames between two stored hours are a per-pixel blend of its frames at those hours.

    decoder: anything with ``desc`` (``is_hdr``, ``train_times``) and ``decode(t)`` -> display [H, W, 3]
    (a :class:`airender.render.FrameDecoder`, an anchor, a tiled atlas, a pack). switch_hours: (off, on)
    of the local lights (lights on before ``off`` and after ``on``: the night), or None when the data has
    none; then only a time whose neighbouring hours and itself all have the lights off (daylight) is
    blended per pixel, and every other time is the wrapped decoder's own frame, as are the stored hours.
    Subclasses give :meth:`weights`. Other attributes (``decode_source``, ...) are the wrapped decoder's.
    """

    def __init__(self, decoder, switch_hours: tuple[float, float] | None = None):
        self.decoder = decoder
        self.desc = decoder.desc
        self.switch_hours = switch_hours
        self.hours = torch.tensor(sorted(float(h) for h in self.desc.train_times), dtype=torch.float64)
        self._linear: dict[int, torch.Tensor] = {}

    def __getattr__(self, name):
        return getattr(self.__dict__["decoder"], name)

    def weights(self, before: int, after: int, s: float) -> torch.Tensor:
        """Weight [H, W] in [0, 1] of stored hour ``after`` at fraction ``s`` of the way from ``before``."""
        raise NotImplementedError

    # --- frames of the stored hours, in linear light ---------------------------------------------------
    def _to_linear(self, display: torch.Tensor) -> torch.Tensor:
        return display.float() if self.desc.is_hdr else srgb_to_linear(display.float().clamp(0, 1))

    def _to_display(self, linear: torch.Tensor) -> torch.Tensor:
        return linear if self.desc.is_hdr else linear_to_srgb(linear.clamp(0, 1))

    def hour_frame(self, index: int) -> torch.Tensor:
        """Linear [H, W, 3] frame of stored hour ``index`` (periodic), decoded once."""
        index %= len(self.hours)
        if index not in self._linear:
            self._linear[index] = self._to_linear(self.decoder.decode(float(self.hours[index])).cpu())
        return self._linear[index]

    # --- decoding ------------------------------------------------------------------------------------------
    def _lights_on(self, t: float) -> bool:
        off, on = self.switch_hours
        t %= 24.0
        return t < off or t > on

    def _span(self, first: int, second: int) -> float:
        """Hours from stored hour ``first`` to ``second`` going forwards (periodic, 24 h)."""
        gap = (float(self.hours[second % len(self.hours)]) - float(self.hours[first % len(self.hours)])) % 24.0
        return gap if gap > 0 else 24.0

    def _interpolated(self, first: int, second: int, weights: torch.Tensor) -> torch.Tensor:
        a, b = self.hour_frame(first), self.hour_frame(second)
        return a + weights[..., None] * (b - a)

    def decode(self, t: float) -> torch.Tensor:
        """Display [H, W, 3] frame at ``t`` hours."""
        if len(self.hours) < 3:
            return self.decoder.decode(t)
        before, after, s = (v.item() for v in neighbouring_hours(self.hours, torch.tensor([float(t)],
                                                                                           dtype=torch.float64)))
        before, after, s = int(before), int(after), float(s)
        if s <= 0.0 or s >= 1.0 or before == after:
            return self.decoder.decode(t)
        if self.switch_hours is not None and any(
                self._lights_on(h) for h in (t, float(self.hours[before]), float(self.hours[after]))):
            return self.decoder.decode(t)  # night, or next to a light switch: no sun moves
        weights = self.weights(before, after, s)
        return self._to_display(self._interpolated(before, after, weights))
