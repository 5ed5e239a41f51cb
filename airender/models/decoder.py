"""The decoder interface every model offers, whatever it was loaded from.

A :class:`Decoder` decodes whole frames at its training size and single texels; the torch field does so
through :class:`airender.render.FrameDecoder` (``airender.render.whole_frames``), a tiled atlas
(:class:`airender.models.tiled.TiledAtlas`) and a pack (:class:`airender.models.packed.PackedModel`) by
themselves. :func:`as_decoder` gives it for any loaded model's ``field``; the tests hold every kind to it.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from airender.data.description import DataDescription
from airender.render import whole_frames


@runtime_checkable
class Decoder(Protocol):
    """desc: what the model was trained on; decode(t) -> display values [H, W, 3] (sRGB in [0, 1] for LDR
    data, linear radiance for HDR) at hour t of [0, 24]; query(y, x, t) -> [N, 3] display values at
    integer texels y [N], x [N] and hours t [N]."""

    desc: DataDescription

    def decode(self, t: float) -> torch.Tensor: ...

    def query(self, y: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor: ...


def as_decoder(model) -> Decoder:
    """The :class:`Decoder` of a loaded model's ``field`` (a torch field through a cached FrameDecoder)."""
    decoder = whole_frames(model)
    if not isinstance(decoder, Decoder):
        raise TypeError(f"{type(model).__name__} is not a decoder (it needs desc, decode(t) and query(y, x, t))")
    return decoder
