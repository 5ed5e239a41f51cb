"""A low-rank basis decoder: a static network gives K basis values per pixel, the time code K x 3
coefficients, and a frame is their product.

    rgb(x, t) = C(t) b(x) + d(t)          b(x) [K]: the static network's output at pixel x
                                          C(t) = W + dW(t) [3, K], d(t) = c + dc(t) [3]

The static network (an :class:`airender.nn.mlp.MLP` from the pixel features to K outputs) does not see the
time, so a whole-frame decode computes b(x) once per resolution and keeps it; per frame only C(t) and
d(t) are computed (a small MLP of the time code) and each pixel costs 3 K multiply-adds. Blending two
hours blends their coefficients (the decoder is linear in them). With K basis images shared by the
three channels and per-channel coefficients this is a learned, non-linear counterpart of a rank-K
(PCA-like) factorisation of the frames over time.

:class:`BasisMLP` stands where the field's MLP stands and :class:`BasisCoefficients` where its FiLM
generator stands, with the same calls: ``mlp(static, coeffs)``, ``mlp.first_layer_partial(static, 0,
with_bias=True)`` (for this decoder the whole time-invariant part: the basis [N, K], which the field
caches) and ``mlp.forward_from_first(basis, coeffs)``; ``film(code)`` returns ``[(dW [N, 3 K], dc [N,
3])]``, one pair, so that the field's per-distinct-hour gathering of FiLM parameters applies unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from airender.nn.mlp import MLP


class BasisMLP(nn.Module):
    """Pixel features [N, in_dim] -> K basis values (``static``, an MLP of ``num_hidden`` layers of width
    ``hidden``) -> [N, out_dim] through the time-dependent output layer (``output_layer`` holds W [out, K] and
    c [out], the coefficients' time-independent part).

    ``hidden`` (the attribute) is K: the width of what the field caches per pixel."""

    def __init__(self, in_dim: int, hidden: int, num_hidden: int, rank: int, out_dim: int,
                 activation: str = "relu", w0: float = 30.0):
        super().__init__()
        if rank < 1:
            raise ValueError("--basis_rank must be positive")
        self.static = MLP(in_dim, hidden, num_hidden, rank, activation, w0)
        self.output_layer = nn.Linear(rank, out_dim)
        self.in_dim, self.rank, self.out_dim = in_dim, rank, out_dim
        self.hidden = rank
        self.activation, self.w0 = activation, w0

    def first_layer_partial(self, x: torch.Tensor, start: int, with_bias: bool) -> torch.Tensor:
        """The time-invariant part of the decoder for pixel features x [N, in_dim]: the basis [N, K]. Only
        the whole input (start 0, with bias) has one: this decoder takes no time-dependent inputs."""
        if start != 0 or not with_bias or x.shape[1] != self.in_dim:
            raise ValueError("the basis decoder takes only time-invariant inputs (no time code or x, y, t grid "
                             "in its input)")
        return self.static(x)

    def forward_from_first(self, basis: torch.Tensor,
                           coeffs: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """basis [N, K] and coefficient offsets ``coeffs`` = [(dW [N or 1, out * K], dc [N or 1, out])] (None:
        the time-independent part alone) -> [N, out]."""
        weight, bias = self.output_layer.weight, self.output_layer.bias
        if coeffs is None:
            return nn.functional.linear(basis, weight, bias)
        delta_w, delta_c = coeffs[0]
        if delta_w.shape[0] == 1:  # one hour for every pixel: one [out, K] matrix
            return nn.functional.linear(basis, (weight + delta_w.reshape(self.out_dim, self.rank)).to(basis.dtype),
                                        (bias + delta_c[0]).to(basis.dtype))
        per_row = torch.einsum("nk,nok->no", basis, delta_w.reshape(-1, self.out_dim, self.rank))
        return nn.functional.linear(basis, weight, bias) + per_row + delta_c

    _decode_from_first = forward_from_first  # the name the ONNX export calls

    def forward(self, x: torch.Tensor, coeffs: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        return self.forward_from_first(self.static(x), coeffs)


class BasisCoefficients(nn.Module):
    """Time code [N, in_dim] -> [(dW [N, out * K], dc [N, out])]: the time-dependent part of the basis
    coefficients, from a two-layer MLP whose last layer starts at zero (every hour starts from the
    time-independent coefficients)."""

    def __init__(self, in_dim: int, rank: int, out_dim: int, hidden: int = 32):
        super().__init__()
        self.rank, self.out_dim = rank, out_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, out_dim * (rank + 1)))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, code: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.net(code)
        split = self.out_dim * self.rank
        return [(out[:, :split], out[:, split:])]


def basis_decoder(cfg, in_dim: int, out_dim: int, time_dim: int) -> tuple[BasisMLP, BasisCoefficients]:
    """The decoder of a field config with ``basis_rank`` K > 0: (BasisMLP, BasisCoefficients). The time
    code must reach the decoder only through the coefficients: ``film`` on (its generator width
    ``film_hidden`` is the coefficient MLP's), no (x, y, t) grid; ValueError otherwise."""
    if not cfg.film or cfg.grid_dims == 3 and cfg.encoding == "hashgrid":
        raise ValueError("--basis_rank: the time must enter through the basis coefficients: set --film and a pixel "
                         "encoding without time (--grid_dims 2)")
    mlp = BasisMLP(in_dim, cfg.hidden, cfg.layers, cfg.basis_rank, out_dim, cfg.activation, cfg.sine_w0)
    return mlp, BasisCoefficients(time_dim, cfg.basis_rank, out_dim, cfg.film_hidden)
