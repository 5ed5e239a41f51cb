"""Frames between the stored hours as a per-pixel blend of the model's own frames at those hours (numpy).

A pack whose run fitted the network between the hours (``airender train --between_steps``, the ``quality``
preset) carries it in the header's ``between`` section, and :func:`airender.runtime.load` wraps the model in
:class:`BetweenHours`, which decodes what ``airender render --between auto`` decodes: at a time t strictly
between two stored hours h0 < h1, during daylight (the local lights off at t, h0 and h1), the frame is

    (1 - w) I(h0) + w I(h1)        in linear light, w [H, W] from the network (BlendWeights)

and every other time is the model's own frame. ``query`` gives the same values at single texels: the
weights of a time are computed once for the whole frame and kept.

The ``between`` section::

    hours          the stored hours (the model's trained hours)
    switch_hours   [OFF, ON]: the local lights are on before OFF and after ON (the night)
    channels       feature channels of the network (airender.between.net.BlendWeightNet)
    arrays         ``between.<layer>.weight`` / ``.bias`` of the network's convolutions
"""
from __future__ import annotations

import numpy as np

from . import ops
from .ops import F32

INPUT_CHANNELS = 16  # the network's input: log frames before and after, three differences (3 each) and s
# per encoder level, (layer, stride, padding, dilation) of each convolution, in order; ReLU after all but the last
ENCODER_LAYERS = {"level1": [("level1.0", 1, 1, 1), ("level1.2", 1, 1, 1)],
            "level2": [("level2.0", 2, 1, 1), ("level2.2", 1, 1, 1)],
            "level3": [("level3.0", 2, 1, 1), ("level3.2", 1, 1, 1)],
            "level4": [("level4.0.0", 2, 1, 1), ("level4.0.2", 1, 2, 2), ("level4.1", 1, 4, 4)]}


class BlendWeights:
    """The blend-weight network (airender.between.net.BlendWeightNet) in numpy: four linear frames [3, H, W]
    (the stored hours before h0, h0, h1 and after h1) and the fraction s of the way from h0 to h1 ->
    the weight of h1, [H, W] in (0, 1)."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def _conv(self, x: np.ndarray, name: str, stride: int = 1, padding: int = 1, dilation: int = 1,
              relu: bool = True) -> np.ndarray:
        out = ops.conv2d(x, self.arrays[f"between.{name}.weight"], self.arrays[f"between.{name}.bias"], stride,
                         padding, dilation)
        return ops.relu(out) if relu else out

    def __call__(self, earlier: np.ndarray, before: np.ndarray, after: np.ndarray, later: np.ndarray,
                 s: float) -> np.ndarray:
        logs = [np.log(np.maximum(x, F32(0.0)) + F32(1e-3)).astype(F32) for x in (earlier, before, after, later)]
        height, width = before.shape[1:]
        x = np.concatenate([logs[1], logs[2], logs[2] - logs[1], logs[1] - logs[0], logs[3] - logs[2],
                            np.full((1, height, width), s, F32)])
        levels = []
        for layers in ENCODER_LAYERS.values():
            for name, stride, padding, dilation in layers:
                x = self._conv(x, name, stride, padding, dilation)
            levels.append(x)
        x1, x2, x3, x4 = levels

        def up(x: np.ndarray, like: np.ndarray) -> np.ndarray:
            return ops.resize_bilinear(x, like.shape[1], like.shape[2])

        y3 = self._conv(np.concatenate([up(x4, x3), x3]), "up3.0")
        y2 = self._conv(np.concatenate([up(y3, x2), x2]), "up2.0")
        hidden = self._conv(np.concatenate([up(y2, x1), x1]), "up1.0")
        logit = self._conv(hidden, "up1.2", relu=False)[0]
        clamped = min(max(float(s), 0.02), 0.98)
        prior = np.log(clamped / (1.0 - clamped))
        return (F32(1.0) / (F32(1.0) + np.exp(-(logit + F32(prior))))).astype(F32)


class BetweenHours:
    """``model`` (a runtime model with ``decode`` and ``query``) whose daylight frames between two stored hours
    are blended per pixel by ``weights`` (see the module docstring); ``spec`` the pack's ``between`` section.
    Every other attribute is the wrapped model's."""

    def __init__(self, model, spec: dict, weights):
        self.model = model
        self.between = spec
        self.weights_net = weights
        self.stored_hours = np.asarray(sorted(float(h) for h in spec["hours"]), np.float64)
        self.switch_hours = tuple(float(h) for h in spec["switch_hours"]) if spec.get("switch_hours") else None
        self._linear: dict[int, np.ndarray] = {}
        self._weights: dict[float, np.ndarray] = {}

    _OWN = frozenset({"model", "between", "weights_net", "stored_hours", "switch_hours", "_linear", "_weights"})

    def __getattr__(self, name):
        return getattr(self.__dict__["model"], name)

    def __setattr__(self, name, value):  # settings (texel_cache_bytes, threads) are the wrapped model's
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.model, name, value)

    # --- the stored hours ------------------------------------------------------------------------------------
    def _to_linear(self, display: np.ndarray) -> np.ndarray:
        return display.astype(F32) if self.model.is_hdr else ops.srgb_to_linear(np.clip(display, 0.0, 1.0))

    def _to_display(self, linear: np.ndarray) -> np.ndarray:
        return linear if self.model.is_hdr else ops.linear_to_srgb(np.clip(linear, 0.0, 1.0)).astype(F32)

    def hour_frame(self, index: int) -> np.ndarray:
        """Linear [H, W, 3] frame of stored hour ``index`` (periodic), decoded once."""
        index %= len(self.stored_hours)
        if index not in self._linear:
            self._linear[index] = self._to_linear(self.model.decode(float(self.stored_hours[index])))
        return self._linear[index]

    def _lights_on(self, t: float) -> bool:
        off, on = self.switch_hours
        t %= 24.0
        return t < off or t > on

    def blend(self, t: float) -> tuple[int, int, float] | None:
        """(index of h0, index of h1, s) when hour ``t`` is blended per pixel, else None (the model's frame)."""
        hours = self.stored_hours
        if len(hours) < 3:
            return None
        wrapped = float(t) % 24.0
        after = int(np.searchsorted(hours, wrapped, side="right"))
        before, after = (after - 1) % hours.size, after % hours.size
        span = (hours[after] - hours[before]) % 24.0
        s = float(((wrapped - hours[before]) % 24.0) / (span if span != 0 else 24.0))
        if s <= 0.0 or s >= 1.0 or before == after:
            return None
        if self.switch_hours is not None and any(
                self._lights_on(h) for h in (float(t), float(hours[before]), float(hours[after]))):
            return None  # night, or next to a light switch: no sun moves
        return before, after, s

    def weights(self, before: int, after: int, s: float) -> np.ndarray:
        """The weight [H, W] of stored hour ``after`` at fraction ``s`` of the way from ``before`` (kept)."""
        key = (before, after, s)
        if key not in self._weights:
            frames = [np.ascontiguousarray(self.hour_frame(i).transpose(2, 0, 1))
                      for i in (before - 1, before, after, after + 1)]
            while len(self._weights) >= 4:
                self._weights.pop(next(iter(self._weights)))
            self._weights[key] = self.weights_net(*frames, s)
        return self._weights[key]

    # --- decoding ----------------------------------------------------------------------------------------------
    def decode(self, t: float, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Display frame [H, W, 3] at hour ``t``; at another size than the native one the model's own frame
        (the network works at the training size)."""
        blend = self.blend(t)
        native = width is None or (int(height), int(width)) == (self.model.height, self.model.width)
        if blend is None or not native:
            return self.model.decode(t, width, height)
        before, after, s = blend
        a, b = self.hour_frame(before), self.hour_frame(after)
        return self._to_display(a + self.weights(before, after, s)[..., None] * (b - a))

    def query(self, y, x, t) -> np.ndarray:
        """Display values [N, 3] at texels (y [N], x [N]) and hours t [N] (or one hour for all): equal to
        :meth:`decode` at those texels."""
        y, x, t = ops.texel_arguments(y, x, t, self.model.height, self.model.width)
        out = np.empty((y.size, 3), F32)
        own = np.ones(y.size, bool)  # rows at times the model decodes itself
        for hour in np.unique(t):
            blend = self.blend(float(hour))
            if blend is None:
                continue
            rows = np.flatnonzero(t == hour)
            own[rows] = False
            before, after, s = blend
            a, b = self.hour_frame(before)[y[rows], x[rows]], self.hour_frame(after)[y[rows], x[rows]]
            out[rows] = self._to_display(a + self.weights(before, after, s)[y[rows], x[rows]][:, None] * (b - a))
        if own.any():
            out[own] = self.model.query(y[own], x[own], t[own])
        return out
