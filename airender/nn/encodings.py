"""Input encodings. Each is an ``nn.Module`` that reports its output size as ``out_dim``."""
from __future__ import annotations

import math

import torch
from torch import nn

from airender.hours import HOURS_PER_DAY


class FourierXYEncoding(nn.Module):
    """Pixel coordinates -> Fourier features.

    Input uv [N, 2] in [0, 1] (pixel centres, x right, y down) is mapped to p = 2 uv - 1 in [-1, 1];
    output [N, out_dim] = [p (if include_input), sin(2^k pi p), cos(2^k pi p) for k < num_octaves],
    with out_dim = 2 * include_input + 4 * num_octaves.
    """

    def __init__(self, num_octaves: int, include_input: bool):
        super().__init__()
        self.num_octaves = num_octaves
        self.include_input = include_input
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(num_octaves, dtype=torch.float32),
                             persistent=False)
        self.out_dim = 2 * int(include_input) + 4 * num_octaves

    def forward(self, uv: torch.Tensor) -> torch.Tensor:
        p = uv * 2.0 - 1.0
        parts = [p] if self.include_input else []
        if self.num_octaves:
            angles = (p[:, :, None] * self.freqs).reshape(p.shape[0], -1)
            parts += [torch.sin(angles), torch.cos(angles)]
        if not parts:
            return p.new_zeros(p.shape[0], 0)
        return torch.cat(parts, dim=1)


class FourierTimeEncoding(nn.Module):
    """Hours -> periodic Fourier features on a 24 h period.

    Input t [N] hours (any real value; 24 == 0); output [N, 2 * num_harmonics] =
    [sin(2 pi k t / 24), cos(2 pi k t / 24) for k = 1..num_harmonics].
    """

    def __init__(self, num_harmonics: int):
        super().__init__()
        self.num_harmonics = num_harmonics
        self.register_buffer("freqs", 2.0 * math.pi / HOURS_PER_DAY
                             * torch.arange(1, num_harmonics + 1, dtype=torch.float32), persistent=False)
        self.out_dim = 2 * num_harmonics

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # Wrap first so that float32 angles stay exact for large or negative hours.
        angles = (t.to(torch.float32) % HOURS_PER_DAY)[:, None] * self.freqs
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class PeriodicSplineTimeCode(nn.Module):
    """Learned time codes: ``num_knots`` codes of size ``code_dim`` spread evenly over 24 h, blended with
    a periodic uniform cubic B-spline. t [N] hours -> [N, code_dim].

    Unlike high Fourier harmonics, the code between two hours depends only on the four knots around it
    and is C2-smooth, so interpolation between the training hours stays well behaved. Codes start as
    small random values (std ``init_std``).
    """

    def __init__(self, num_knots: int = 24, code_dim: int = 16, init_std: float = 0.1):
        super().__init__()
        if num_knots < 4:
            raise ValueError("--time_knots must be at least 4")
        self.num_knots, self.out_dim = num_knots, code_dim
        self.codes = nn.Parameter(torch.randn(num_knots, code_dim) * init_std)

    def weights(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Knot indices [N, 4] and cubic B-spline weights [N, 4] (they sum to 1) for hours t [N]."""
        u = (t.to(torch.float32) % HOURS_PER_DAY) / HOURS_PER_DAY * self.num_knots
        i = torch.floor(u)
        s = (u - i)[:, None]
        w = torch.cat([(1 - s) ** 3, 3 * s ** 3 - 6 * s ** 2 + 4, -3 * s ** 3 + 3 * s ** 2 + 3 * s + 1, s ** 3], dim=1) / 6
        idx = (i.long()[:, None] + torch.arange(-1, 3, device=t.device)) % self.num_knots
        return idx, w

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        idx, w = self.weights(t)
        codes = self.codes.index_select(0, idx.reshape(-1)).reshape(*idx.shape, self.out_dim)  # deterministic backward
        return (codes * w[..., None]).sum(dim=1)
