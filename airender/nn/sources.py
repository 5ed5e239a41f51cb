"""Light sources as terms of the field: an on/off step function of time per source, and all light as the
sum of the sources in linear light.

With the lighting split by source (the sun, the placed lamps, the sky dome), a field predicts each source
in the training space and composes all light from them (:func:`compose_sources`). A source that the data
show identically zero at some trained hours (the sun at night, the lamps by day) is multiplied by the
0/1 gate of :class:`SourceGate`, so it decodes to exactly 0 there instead of to a small residue.
"""
from __future__ import annotations

import torch
from torch import nn

from airender.hours import neighbouring_hours


class SourceGate(nn.Module):
    """On/off state of S light sources at any time of day, a step function built from the trained hours.

    Args:
        hours: the K trained hours (any order; each in [0, 24)).
        off_hours: per source, the trained hours at which it is identically zero (hours not in ``hours``
            are ignored).

    Buffers (saved in the state dict, so a checkpoint carries the gate): ``knots`` [K] float32 the trained
    hours ascending; ``on`` [S, K] bool, source s lit at knot k.

    ``forward(t)``: hours t [N] -> [N, S] float32 in {0, 1}. At a trained hour a source has that hour's
    state; strictly between two neighbouring trained hours (cyclically, 24 h period) it is on unless it is
    off at both. For lamps that are off at the trained hours 6..18 and on at the others this is the light
    switch "on for t < 6 or t > 18"; for the sun, off between the last and the first daylight hour.

    >>> gate = SourceGate([4.0, 5.0, 6.0], [[4.0, 5.0], []])
    >>> gate(torch.tensor([4.5, 5.0, 5.5])).tolist()
    [[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]]
    """

    def __init__(self, hours: list[float], off_hours: list[list[float]]):
        super().__init__()
        knots = sorted(float(h) for h in hours)
        if not knots:
            raise ValueError("a source gate needs at least one trained hour")
        on = [[round(k, 6) not in {round(float(h), 6) for h in off} for k in knots] for off in off_hours]
        self.register_buffer("knots", torch.tensor(knots, dtype=torch.float32))
        self.register_buffer("on", torch.tensor(on, dtype=torch.bool).reshape(len(off_hours), len(knots)))

    @property
    def num_sources(self) -> int:
        return int(self.on.shape[0])

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        before, after, weight = neighbouring_hours(self.knots, t.reshape(-1))
        lit = self.on[:, before] | (self.on[:, after] & (weight > 0))
        return lit.transpose(0, 1).to(torch.float32)


def compose_sources(pred: torch.Tensor, gate: torch.Tensor, transform) -> tuple[torch.Tensor, torch.Tensor]:
    """All light from the sources.

    pred: [N, S, 3] each source in the training space; gate: [N, S] or [1, S] 0/1 (see SourceGate);
    transform: the training-space transform (``to_linear``/``from_linear``, e.g. ValueTransform).

    Returns (all [N, 3], gated [N, S, 3]) in the training space: ``gated`` = gate x pred (the value the
    per-source loss compares with its target), and ``all`` = from_linear(sum over s of
    to_linear(max(gated_s, 0))): each source non-negative in linear light (the transforms map 0 to 0 and
    are increasing), added in linear light. A decoded source is ``gated.clamp_min(0)``.
    """
    gated = pred * gate[:, :, None].to(pred.dtype)
    linear = transform.to_linear(gated.clamp_min(0.0)).sum(dim=1)
    return transform.from_linear(linear), gated
