"""Light terms: the parts of the field that add light in linear light on top of its base network.

The field (:mod:`airender.field`) is a base - encodings -> MLP / FiLM / basis -> head - followed by zero or
more :class:`LightTerm`\\ s. Every term has the same four jobs, so the field, the trainer and the exporters
treat all of them alike:

* its time-free cache: :meth:`LightTerm.time_free`, computed once per pixel from the field's static features;
* its contribution at a time: :meth:`LightTerm.light`, linear light [N, 3], >= 0;
* its losses: :meth:`LightTerm.set_training_data` (targets from the training frames) and
  :meth:`LightTerm.loss_terms` (named, weighted terms of one batch);
* its export description: :meth:`LightTerm.export`, one section of a pack's ``model`` header written
  through an :class:`ArrayWriter` (airender.export.pack implements it; airender.runtime decodes it).

A term that stands for one of the data's light sources names it (:attr:`LightTerm.source`): with
``--components`` it takes that source's place in the sum of sources instead of adding to all light.
"""
from __future__ import annotations

from typing import ClassVar, Protocol

import torch
from torch import nn


class ArrayWriter(Protocol):
    """Where a term's arrays go in a pack: each method stores the tensor(s) at the pack's precision and
    returns what the header refers to them by."""

    def exact(self, name: str, tensor: torch.Tensor) -> str:
        """Stored float32 at every precision (frequencies, path coefficients)."""

    def header(self, tensor: torch.Tensor) -> list:
        """A small tensor written into the header itself, as nested lists."""

    def linear(self, prefix: str, layer: nn.Module) -> None:
        """A Linear layer with bias, as ``prefix.weight`` and ``prefix.bias``."""

    def sequential(self, prefix: str, seq: nn.Module, activations: tuple[type, ...]) -> None:
        """A Linear / activation / Linear stack, as ``prefix.0.*`` and ``prefix.2.*``."""

    def grid(self, name: str, grid: nn.Module) -> dict:
        """A hash grid's table as ``name``; returns its GRID description (see airender.runtime.model)."""


class LightTerm(nn.Module):
    """An additive term of the field in linear light (see the module docstring).

    Class attributes: ``name`` the term's key in the decode's ``parts`` and in the pack header; ``source``
    the data's light source the term stands for with ``--components`` (None: it cannot be one).
    """

    name: ClassVar[str] = ""
    source: ClassVar[str | None] = None

    def time_free(self, static: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """The term's values that do not depend on time, [N, C], from the field's static features
        [N, static_dim] at pixel centres uv [N, 2] (computed once per pixel when decoding)."""
        raise NotImplementedError

    def light(self, time_free: torch.Tensor, t: torch.Tensor, parts: dict | None = None) -> torch.Tensor:
        """Light [N, 3] (linear light, >= 0) from :meth:`time_free`'s output at hours t [N] or one hour [1];
        ``parts`` (a dict), when given, receives the term's named intermediate values."""
        raise NotImplementedError

    def set_training_data(self, frames: torch.Tensor, times: torch.Tensor, train_ids: torch.Tensor,
                          valid: torch.Tensor, loss_cfg, transform) -> None:
        """Called once before training with the frames [T, H, W, 3] (training space) at hours ``times`` [T],
        the trained frames' indices ``train_ids`` [K], the valid texels ``valid`` [N_valid] (flat indices),
        the LossConfig and the training-space transform: a term whose losses need targets from the data
        keeps them (not in its state dict). Nothing by default."""

    def loss_terms(self, parts: dict, batch, loss_cfg) -> dict[str, torch.Tensor]:
        """Named, weighted loss terms of one training batch, from the ``parts`` its :meth:`light` wrote.
        None by default."""
        return {}

    def export(self, writer: ArrayWriter) -> tuple[str, dict]:
        """(the pack header's key for this term, its section), its arrays written through ``writer``."""
        raise NotImplementedError
