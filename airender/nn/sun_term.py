"""Direct sunlight as a term of the field: a per-texel response to the sun's direction times a learned
visibility of that direction.

    sun(p, t) = E(elevation(t)) * a(p) * max(0, n(p) . s(t)) * V(p, s(t))       [linear light, RGB]

* s(t): the sun's unit direction (:class:`airender.nn.sun_path.SunPath`, given or learned), smooth and
  periodic in t, so everything below moves smoothly between the trained hours;
* E: the sun's colour and strength against its elevation, one small curve for the whole scene, faded to
  zero as the sun sets (over about ``DAY_FADE`` radians of elevation);
* a(p) >= 0 (RGB) and n(p) (a 3-vector, unnormalised: its length scales the response) from the field's
  time-free pixel features: the texel's unshadowed response, Lambert's cosine law;
* V(p, s) in (0, 1): a small ReLU network of the pixel features and the sun's direction (the direction and
  the first two harmonics of its azimuth), the texel's visibility of the sun: it sees where the sun is,
  not what time it is, so between two trained hours it is asked about a direction between two it has
  seen.

Nothing in the term has a parameter per trained hour. Measured (docs/RESULTS.md, "The sun term"): it
fits the trained hours better; between two of them its visibility still cross-fades the shadows.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from airender.nn.sun_path import SunPath
from airender.nn.terms import ArrayWriter, LightTerm

HIDDEN = 32
DIRECTION_DIM = 7   # s (3), cos/sin of the azimuth and of twice the azimuth
DAY_FADE = 0.01     # radians of elevation over which the sun fades in and out at the horizon


def direction_features(direction: torch.Tensor) -> torch.Tensor:
    """[N, 7]: the unit direction [N, 3] and cos/sin of its azimuth and of twice its azimuth."""
    azimuth = SunPath.azimuth(direction)[:, None]
    return torch.cat([direction, torch.cos(azimuth), torch.sin(azimuth), torch.cos(2 * azimuth),
                      torch.sin(2 * azimuth)], dim=1)


class SunTerm(LightTerm):
    """(pixel features [N, F], hours t [N] or [1]) -> direct sunlight [N, 3] in linear light, >= 0.

    ``path``: the sun path (its coefficients are part of this module's state). ``parts`` (a dict), when
    given, receives "sun" [N, 3] and "sun_visibility" [N, 1]. With ``--components`` the term is the
    'directional' source.
    """

    name = "sun"
    source = "directional"

    def __init__(self, feature_dim: int, path: SunPath):
        super().__init__()
        self.path = path
        self.response = nn.Sequential(nn.Linear(feature_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 6))
        nn.init.zeros_(self.response[-1].weight)
        with torch.no_grad():  # starts dim (a = softplus(-3) = 0.05) and facing up
            self.response[-1].bias.copy_(torch.tensor([-3.0, -3.0, -3.0, 0.0, 0.0, 1.0]))
        self.visibility_net = nn.Sequential(nn.Linear(feature_dim + DIRECTION_DIM, HIDDEN), nn.ReLU(),
                                            nn.Linear(HIDDEN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 1))
        self.irradiance = nn.Sequential(nn.Linear(1, 16), nn.ReLU(), nn.Linear(16, 3))

    def strength(self, direction: torch.Tensor) -> torch.Tensor:
        """E [N, 3] >= 0 for unit sun directions [N, 3]: zero once the sun has set."""
        elevation = SunPath.elevation(direction)[:, None]
        return F.softplus(self.irradiance(elevation)) * torch.sigmoid(elevation / DAY_FADE)

    def time_free(self, features: torch.Tensor, uv: torch.Tensor | None = None) -> torch.Tensor:
        """The part that does not depend on time, [N, 6 + HIDDEN]: albedo (3), n (3) and the visibility
        network's first layer on the pixel features [N, F] (bias included); ``uv`` is not used."""
        response = self.response(features)
        first = self.visibility_net[0]
        pixel_part = features @ first.weight[:, :features.shape[1]].T + first.bias
        return torch.cat([F.softplus(response[:, :3]), response[:, 3:], pixel_part], dim=1)

    def light(self, time_free: torch.Tensor, t: torch.Tensor, parts: dict | None = None) -> torch.Tensor:
        """Direct sunlight [N, 3] from :meth:`time_free`'s output at hours t [N] or [1]: the sun's direction,
        its projection through the visibility network's first layer and the remaining layers."""
        direction = self.path(t)
        albedo, normal, pixel_part = time_free[:, :3], time_free[:, 3:6], time_free[:, 6:]
        direction_part = direction_features(direction) @ self.visibility_net[0].weight[:, -DIRECTION_DIM:].T
        visibility = torch.sigmoid(self.visibility_net[2:](torch.relu(pixel_part + direction_part)))
        cosine = (normal * direction).sum(dim=1, keepdim=True).clamp_min(0.0)
        sun = self.strength(direction) * albedo * cosine * visibility
        if parts is not None:
            parts.update(sun=sun, sun_visibility=visibility)
        return sun

    def forward(self, features: torch.Tensor, t: torch.Tensor, parts: dict | None = None) -> torch.Tensor:
        return self.light(self.time_free(features), t, parts)

    def export(self, writer: ArrayWriter) -> tuple[str, dict]:
        """``sun``: {path, harmonics, day_fade} (see airender.runtime.sun); arrays ``sun.*``."""
        if len(self.visibility_net) != 5:
            raise ValueError("sun.visibility_net: expected Linear, ReLU, Linear, ReLU, Linear")
        writer.sequential("sun.response", self.response, (nn.ReLU,))
        writer.sequential("sun.irradiance", self.irradiance, (nn.ReLU,))
        for i in (0, 2, 4):
            writer.linear(f"sun.visibility_net.{i}", self.visibility_net[i])
        return "sun", {"path": writer.exact("sun.path.coefficients", self.path.coefficients),
                       "harmonics": int(self.path.harmonics), "day_fade": float(DAY_FADE)}
