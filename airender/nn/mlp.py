"""Multilayer perceptrons with ReLU or sine (SIREN) activations, split at the first layer for caching."""
from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """``num_hidden`` Linear+activation layers of width ``hidden`` and one output Linear.

    Input [N, in_dim] -> output [N, out_dim]. With ``activation="sine"`` every hidden layer computes
    sin(w0 * (W x + b)) with the SIREN initialisation (Sitzmann et al. 2020); with ``"relu"`` the
    PyTorch default initialisation is used.

    The first layer's pre-activation is linear in the input, so for inputs split into a time-invariant
    part and a time part, ``W [s, t] + b = (W_s s + b) + W_t t``: :meth:`first_layer_partial` computes
    either term and :meth:`forward_from_first` finishes the network from their sum.
    """

    def __init__(self, in_dim: int, hidden: int, num_hidden: int, out_dim: int, activation: str = "relu",
                 w0: float = 30.0):
        super().__init__()
        if num_hidden < 1:
            raise ValueError("an MLP needs at least one hidden layer")
        if activation not in ("relu", "sine"):
            raise ValueError(f"unknown activation {activation!r}")
        self.in_dim, self.hidden, self.out_dim = in_dim, hidden, out_dim
        self.activation, self.w0 = activation, w0
        dims = [in_dim] + [hidden] * num_hidden
        self.hidden_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.output_layer = nn.Linear(hidden, out_dim)
        if activation == "sine":
            self._siren_init()

    @torch.no_grad()
    def _siren_init(self) -> None:
        for i, layer in enumerate(list(self.hidden_layers) + [self.output_layer]):
            fan_in = layer.weight.shape[1]
            bound = 1.0 / fan_in if i == 0 else math.sqrt(6.0 / fan_in) / self.w0
            layer.weight.uniform_(-bound, bound)  # biases keep nn.Linear's default, as in SIREN

    def act(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.w0 * x) if self.activation == "sine" else torch.relu(x)

    def first_layer_partial(self, x: torch.Tensor, start: int, with_bias: bool) -> torch.Tensor:
        """W[:, start:start + D] x (+ b): the first layer's contribution of input columns [start, start + D)."""
        layer = self.hidden_layers[0]
        weight = layer.weight[:, start:start + x.shape[1]]
        return nn.functional.linear(x, weight, layer.bias if with_bias else None)

    def forward_from_first(self, pre: torch.Tensor,
                           film: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        """Finish the network from the first layer's pre-activation [N, hidden].

        ``film``: optional per-hidden-layer (scale, shift), each broadcastable to [N, hidden], applied to
        the pre-activation: act(scale * (W h + b) + shift).
        """
        if not torch.is_grad_enabled() and (film is None or film[0][0].shape[0] == 1):
            return self._decode_from_first(pre, film)
        h = pre
        for i, layer in enumerate(self.hidden_layers):
            if i > 0:
                h = layer(h)
            if film is not None:
                scale, shift = film[i]
                h = h * scale + shift
            h = self.act(h)
        return self.output_layer(h)

    def _decode_from_first(self, pre: torch.Tensor,
                           film: list[tuple[torch.Tensor, torch.Tensor]] | None) -> torch.Tensor:
        """Inference path (no autograd; FiLM, if any, the same for every row): FiLM scales and the SIREN
        factor w0 are folded into each layer's weights (a 64 x 64 matrix per frame instead of several
        passes over the N x 64 activations), and activations run in place. Same function as the training
        path up to float rounding."""
        sine = self.activation == "sine"
        w0 = self.w0 if sine else 1.0
        if film is not None:
            scale, shift = film[0]
            h = torch.addcmul(shift * w0, pre, scale * w0)
        else:
            h = pre * w0 if sine else pre.clone()
        h = h.sin_() if sine else h.relu_()
        for i, layer in enumerate(self.hidden_layers):
            if i == 0:
                continue
            weight, bias = layer.weight, layer.bias
            if film is not None:
                scale, shift = film[i][0][0], film[i][1][0]
                weight, bias = weight * scale[:, None], bias * scale + shift
            if sine:
                weight, bias = weight * w0, bias * w0
            h = torch.nn.functional.linear(h, weight.to(h.dtype), bias.to(h.dtype))
            h = h.sin_() if sine else h.relu_()
        return self.output_layer(h)

    def forward(self, x: torch.Tensor, film: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
        return self.forward_from_first(self.hidden_layers[0](x), film)


class FiLMGenerator(nn.Module):
    """Time code [N, in_dim] -> per-hidden-layer FiLM parameters [(scale [N, hidden], shift [N, hidden])] * L.

    A two-layer MLP; its last layer starts at zero so that scale = 1 and shift = 0 (no modulation) at
    initialisation.
    """

    def __init__(self, in_dim: int, hidden: int, num_layers: int, film_hidden: int = 32):
        super().__init__()
        self.hidden, self.num_layers = hidden, num_layers
        self.net = nn.Sequential(nn.Linear(in_dim, film_hidden), nn.SiLU(), nn.Linear(film_hidden, 2 * hidden * num_layers))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, code: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.net(code).reshape(code.shape[0], self.num_layers, 2, self.hidden)
        return [(1.0 + out[:, i, 0], out[:, i, 1]) for i in range(self.num_layers)]
