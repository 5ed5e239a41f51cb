"""The sun term of a pack (``model.sun``), decoded with numpy: the same computation as
:class:`airender.nn.sun_term.SunTerm` on the arrays the pack stores.

    sun     {path: array name [1 + 2 K, 3], harmonics: K, day_fade: radians}; arrays ``sun.response.{0,2}``,
            ``sun.visibility_net.{0,2,4}``, ``sun.irradiance.{0,2}`` (Linear weights and biases)
"""
from __future__ import annotations

import numpy as np

from . import ops
from .ops import F32

HOURS_PER_DAY = 24.0
DIRECTION_DIM = 7


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (F32(0.5) * (np.tanh(F32(0.5) * x) + F32(1.0))).astype(F32, copy=False)


class SunLight:
    """Direct sunlight of a pack: ``prepare(static)`` -> the time-free part [N, 6 + hidden] (albedo, n and the
    visibility network's first layer on the pixel features), once per pixel; ``light(prepared, t)`` ->
    linear-light RGB [N, 3] at hours t [1] (one hour for all) or [N] (one per row)."""

    def __init__(self, spec: dict, arrays: dict[str, np.ndarray]):
        self.arrays = arrays
        self.coefficients = arrays[spec["path"]].astype(F32)
        self.harmonics = int(spec["harmonics"])
        self.day_fade = F32(spec["day_fade"])
        weight0 = arrays["sun.visibility_net.0.weight"]
        self.w_pixel, self.w_direction = weight0[:, :-DIRECTION_DIM], weight0[:, -DIRECTION_DIM:]

    def direction(self, t: np.ndarray) -> np.ndarray:
        """Unit directions towards the sun [N, 3] at hours t [N]."""
        angles = ops.wrap_hours(np.asarray(t, F32))[:, None] * (
            F32(2.0 * np.pi / HOURS_PER_DAY) * np.arange(1, self.harmonics + 1, dtype=F32))
        basis = np.concatenate([np.ones_like(angles[:, :1]), np.cos(angles), np.sin(angles)], axis=1)
        raw = basis @ self.coefficients
        return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), F32(1e-6))

    def prepare(self, static: np.ndarray) -> np.ndarray:
        a = self.arrays
        hidden = ops.relu(ops.linear(static, a["sun.response.0.weight"], a["sun.response.0.bias"]))
        response = ops.linear(hidden, a["sun.response.2.weight"], a["sun.response.2.bias"])
        pixel_part = ops.linear(static, self.w_pixel, a["sun.visibility_net.0.bias"])
        return np.concatenate([ops.softplus(response[:, :3]), response[:, 3:], pixel_part], axis=1).astype(F32)

    def light(self, prepared: np.ndarray, t: np.ndarray) -> np.ndarray:
        a = self.arrays
        direction = self.direction(t)
        azimuth = np.arctan2(direction[:, 1], direction[:, 0])[:, None]
        features = np.concatenate([direction, np.cos(azimuth), np.sin(azimuth), np.cos(2 * azimuth),
                                   np.sin(2 * azimuth)], axis=1).astype(F32)
        hidden = ops.relu(prepared[:, 6:] + features @ self.w_direction.T)
        hidden = ops.relu(ops.linear(hidden, a["sun.visibility_net.2.weight"], a["sun.visibility_net.2.bias"]))
        visibility = _sigmoid(ops.linear(hidden, a["sun.visibility_net.4.weight"], a["sun.visibility_net.4.bias"]))
        elevation = np.arcsin(np.clip(direction[:, 2:3], -1.0, 1.0)).astype(F32)
        curve = ops.relu(ops.linear(elevation, a["sun.irradiance.0.weight"], a["sun.irradiance.0.bias"]))
        strength = ops.softplus(ops.linear(curve, a["sun.irradiance.2.weight"], a["sun.irradiance.2.bias"])) \
            * _sigmoid(elevation / self.day_fade)
        cosine = np.maximum((prepared[:, 3:6] * direction).sum(axis=1, keepdims=True), F32(0.0))
        return (strength * prepared[:, :3] * cosine * visibility).astype(F32, copy=False)
