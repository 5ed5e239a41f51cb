"""The field's head: how the base network's output and the light terms make the prediction.

The base network (MLP / FiLM / basis) predicts ``outputs`` values per pixel in the training space (the
residual baseline already added in residual mode). A head turns them, with the light terms' light (linear
light, see :mod:`airender.nn.terms`), into the prediction [N, 3] in the training space:

* :class:`RGBHead`: the base predicts all light (3 values); each term's light is added in linear light.
* :class:`SourcesHead` (``--components``): the base predicts each light source (3 S values), each gated
  on and off by time; a term that stands for a source takes that source's place; all light is the sum of
  the sources in linear light (:func:`airender.nn.sources.compose_sources`).
"""
from __future__ import annotations

import torch
from torch import nn

from airender.nn.sources import SourceGate, compose_sources
from airender.nn.terms import ArrayWriter, LightTerm


class RGBHead(nn.Module):
    """All light: prediction = from_linear(to_linear(base) + sum of the terms' light) (the base itself when
    there are no terms). ``transform``: the training-space transform (ValueTransform)."""

    sources: tuple[str, ...] = ()

    def __init__(self, transform):
        super().__init__()
        self.transform = transform
        self.outputs = 3

    def compose(self, base: torch.Tensor, t: torch.Tensor, lights: list[tuple[LightTerm, torch.Tensor]],
                parts: dict | None = None) -> torch.Tensor:
        """base [N, 3] (training space), hours t [N] or [1], lights [(term, [N, 3] linear light)] ->
        prediction [N, 3] in the training space."""
        if not lights:
            return base
        linear = self.transform.to_linear(base)
        for _, light in lights:
            linear = linear + light
        return self.transform.from_linear(linear)

    def loss_terms(self, parts: dict, batch, losses) -> dict[str, torch.Tensor]:
        return {}

    def export(self, writer: ArrayWriter, terms: list[LightTerm]) -> dict | None:
        """The pack header's ``sources`` section: none for all light."""
        return None


class SourcesHead(nn.Module):
    """Light sources: the base predicts S sources (3 S values, each in the training space), each multiplied
    by its on/off gate at t; all light is their sum in linear light.

    Args:
        transform: the training-space transform.
        sources: the sources' names, in the order of the base's outputs.
        hours: the trained hours; off_hours: per source, the trained hours at which it is identically zero
            (see :class:`airender.nn.sources.SourceGate`).

    ``parts`` receives "sources" [N, S, 3], each source as gated by time, before the clamp at 0.
    """

    def __init__(self, transform, sources: tuple[str, ...], hours: list[float], off_hours: list[list[float]]):
        super().__init__()
        self.transform = transform
        self.sources = tuple(sources)
        self.outputs = 3 * len(self.sources)
        self.gate = SourceGate(hours, off_hours)

    def split(self, base: torch.Tensor, t: torch.Tensor,
              lights: list[tuple[LightTerm, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction [N, 3], gated sources [N, S, 3]) in the training space, from base [N, 3 S] at hours
        t [N] or [1] and the terms' light, each in its source's place."""
        pred = base.reshape(base.shape[0], len(self.sources), 3)
        for term, light in lights:
            d = self.sources.index(term.source)
            pred = torch.cat([pred[:, :d], self.transform.from_linear(light)[:, None], pred[:, d + 1:]], dim=1)
        return compose_sources(pred, self.gate(t), self.transform)

    def compose(self, base: torch.Tensor, t: torch.Tensor, lights: list[tuple[LightTerm, torch.Tensor]],
                parts: dict | None = None) -> torch.Tensor:
        out, gated = self.split(base, t, lights)
        if parts is not None:
            parts.update(sources=gated)
        return out

    def loss_terms(self, parts: dict, batch, losses) -> dict[str, torch.Tensor]:
        """"mse_<source>" per light source (see LossAssembler.source_terms)."""
        return losses.source_terms(parts["sources"], batch, self.sources) if "sources" in parts else {}

    def export(self, writer: ArrayWriter, terms: list[LightTerm]) -> dict:
        """The pack header's ``sources`` section: {names, knots, on [S][K], terms: {term: source}}."""
        return {"names": list(self.sources), "knots": writer.header(self.gate.knots), "on": writer.header(self.gate.on),
                "terms": {term.name: term.source for term in terms}}
