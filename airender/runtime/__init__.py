"""Decode an exported field (``.airpack``) with numpy alone; this package never imports torch.

    import airender.runtime
    model = airender.runtime.load("scene.airpack")
    frame = model.decode(18.5)                 # float32 [H, W, 3]: sRGB in [0, 1] (LDR) or radiance (HDR)
    small = model.decode(7.25, width=320, height=180)
    texels = model.query(y, x, t)              # [N, 3] at integer texels y [N], x [N], hours t [N]

A pack of a run that fitted the network between the hours (the ``quality`` preset) decodes its daylight
frames between the stored hours as ``airender render --between auto`` does (:mod:`airender.runtime.between`).

A tiled run's atlas is one pack per tile, decoded together by :class:`TiledFieldModel`
(:mod:`airender.runtime.tiled`; the contest export writes them).

The pack layout is described in :mod:`airender.runtime.packfile`, the model in
:mod:`airender.runtime.model`. The package imports nothing but numpy and its own modules (relatively),
so that ``airender export --format contest`` can copy it into a folder that imports nothing of airender.
"""
from __future__ import annotations

from pathlib import Path

from .between import BetweenHours, BlendWeights
from .model import FieldModel
from .packfile import PackError, read_pack
from .tiled import TiledFieldModel

__all__ = ["BetweenHours", "FieldModel", "PackError", "TiledFieldModel", "load"]


def load(path: str | Path) -> FieldModel | BetweenHours:
    """Read the pack at ``path`` (checked: marker, version, CRC-32) and build its decoder: a FieldModel, wrapped
    in BetweenHours when the pack carries the run's network between the hours (:mod:`.between`)."""
    contents = read_pack(path)
    try:
        model = FieldModel(contents.header, contents.arrays, contents.nbytes, str(path))
        between = contents.header["model"].get("between")
        return BetweenHours(model, between, BlendWeights(contents.arrays)) if between else model
    except (KeyError, TypeError, ValueError) as exc:
        raise PackError(f"{path}: the pack does not describe a decodable model ({type(exc).__name__}: {exc})") \
            from None
