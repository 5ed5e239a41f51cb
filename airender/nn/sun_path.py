"""The sun's path over the day as a smooth periodic curve: given (fitted to a table) or learned.

Within one day the sun moves on a circle of the sky (its declination barely changes), so its unit
direction is, to well under a degree, ``normalize(c0 + c1 cos(w t) + s1 sin(w t))`` with w = 2 pi / 24 h.
:class:`SunPath` keeps that form with a few more harmonics: a truncated Fourier series of 3-vectors,
normalised, which is periodic (t and t + 24 h give the same direction) and smooth (infinitely
differentiable) by construction, whatever its coefficients.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from airender.hours import HOURS_PER_DAY

#: harmonics of a path fitted to a table (the sun's daily circle needs one; the rest absorbs the small
#: drift of the declination and of the equation of time within the day)
GIVEN_HARMONICS = 3
#: harmonics of a learned path: the daily circle itself (its tilt and height are learned)
LEARNED_HARMONICS = 1


def _basis(t: torch.Tensor, harmonics: int) -> torch.Tensor:
    """[N, 1 + 2 K]: 1, cos(k w t), sin(k w t) for k = 1..K at hours t [N]."""
    angles = (t.to(torch.float32) % HOURS_PER_DAY)[:, None] * (
        2.0 * math.pi / HOURS_PER_DAY * torch.arange(1, harmonics + 1, dtype=torch.float32, device=t.device))
    return torch.cat([torch.ones_like(angles[:, :1]), torch.cos(angles), torch.sin(angles)], dim=1)


class SunPath(nn.Module):
    """Hours t [N] -> unit direction towards the sun [N, 3] (any right-handed world frame with z up).

    ``table``: {hour: (x, y, z)} directions to fit (a given path, frozen: the coefficients are a buffer),
    or None for a learned path (the coefficients are parameters; it starts as a sun that rises at 6:00 in
    the east, culminates at 12:00 at 63 degrees in the south and sets at 18:00 in the west). Either way
    the coefficients [1 + 2 K, 3] are in the state dict, so a checkpoint carries its sun path.
    """

    def __init__(self, table: dict[float, tuple[float, float, float]] | None = None):
        super().__init__()
        self.learned = table is None
        if table is None:
            harmonics = LEARNED_HARMONICS
            coefficients = torch.zeros(1 + 2 * harmonics, 3)
            # x south, y east, z up: at 6:00 east (y = 1), at 12:00 up and south, at 18:00 west
            coefficients[0] = torch.tensor([0.5, 0.0, 0.0])
            coefficients[1] = torch.tensor([0.0, 0.0, -1.0])   # cos: z = -cos(w t) peaks at noon
            coefficients[2] = torch.tensor([0.0, 1.0, 0.0])    # sin: y = sin(w t) is east in the morning
            self.coefficients = nn.Parameter(coefficients)
        else:
            hours = torch.tensor([float(h) for h in table], dtype=torch.float32)
            directions = torch.tensor([list(map(float, table[h])) for h in table], dtype=torch.float32)
            directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
            harmonics = min(GIVEN_HARMONICS, (len(table) - 1) // 2)
            if harmonics < 1:
                raise ValueError("a sun path needs the sun's direction at 3 or more times of day")
            basis = _basis(hours, harmonics).to(torch.float64)
            solution = torch.linalg.lstsq(basis, directions.to(torch.float64)).solution
            self.register_buffer("coefficients", solution.to(torch.float32))
        self.harmonics = harmonics

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        raw = _basis(t.reshape(-1), self.harmonics).to(self.coefficients.dtype) @ self.coefficients
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-6)

    @staticmethod
    def elevation(direction: torch.Tensor) -> torch.Tensor:
        """Elevation above the horizon [N] in radians of unit directions [N, 3]."""
        return torch.asin(direction[:, 2].clamp(-1.0, 1.0))

    @staticmethod
    def azimuth(direction: torch.Tensor) -> torch.Tensor:
        """Azimuth [N] in radians (atan2 of the horizontal components: 0 towards +x)."""
        return torch.atan2(direction[:, 1], direction[:, 0])
