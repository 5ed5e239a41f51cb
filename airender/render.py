"""Whole-frame and random-access decoding of a trained field.

:class:`FrameDecoder` computes everything about the pixels of one resolution that does not depend on
time once (encodings, first-layer projections, baseline values) and then decodes any time of day from
that cache in chunks. :func:`query_pixels` evaluates single texels (y, x, t), giving the same values as
the whole-frame decode at those pixels.
"""
from __future__ import annotations

import torch

from airender.data.samplers import pixel_centres
from airender.field import StaticCache


def frame_pixels(height: int, width: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """All pixels of a frame in row-major order: (pix [H*W] long, uv [H*W, 2] pixel centres)."""
    pix = torch.arange(height * width, device=device)
    return pix, pixel_centres(pix, height, width)


class FrameDecoder:
    """Decode whole frames of ``field`` at ``height`` x ``width`` (default: the training resolution).

    Args:
        field: a trained field (eval mode) on its device.
        chunk_pixels: pixels per decode chunk (bounds temporary memory; default 2^18 on the CPU, 2^22 on
            a GPU, where one large chunk keeps the kernels busy).
        half: decode under float16 autocast (GPU only).
        compile_decode: ``torch.compile`` the per-frame decode (falls back to eager, with a note, if
            compilation fails).
    """

    def __init__(self, field: torch.nn.Module, height: int | None = None, width: int | None = None,
                 chunk_pixels: int = 0, half: bool = False, compile_decode: bool = False):
        self.field = field
        self.desc = desc = field.desc
        self.height = height or desc.height
        self.width = width or desc.width
        self.native = (self.height, self.width) == (desc.height, desc.width)
        self.device = next(field.parameters()).device
        self.half = half and self.device.type == "cuda"
        self.chunk_pixels = chunk_pixels or (1 << 22 if self.device.type == "cuda" else 1 << 18)
        chunk_pixels = self.chunk_pixels
        self.caches: list[StaticCache] = []
        self._last_sources: tuple[float, torch.Tensor] | None = None  # (hour, decode_sources at that hour)
        pix, uv = frame_pixels(self.height, self.width, self.device)
        with torch.no_grad():
            feature_map = field.encoder_features() if field.encoder is not None else None
            for start in range(0, pix.numel(), chunk_pixels):
                stop = start + chunk_pixels
                cache = field.prepare(uv[start:stop], pix[start:stop] if self.native else None, feature_map)
                self.caches.append(cache)

        self._decode_chunk = self.field.decode_at
        if compile_decode:
            try:
                self._decode_chunk = torch.compile(self.field.decode_at, dynamic=False)
                self.decode_train_space(0.0)
            except Exception as exc:  # a backend that cannot compile here: decode eagerly instead
                print(f"note: torch.compile failed ({type(exc).__name__}); decoding eagerly")
                self._decode_chunk = self.field.decode_at

    @torch.no_grad()
    def decode_train_space(self, t: float) -> torch.Tensor:
        """Frame at hour ``t`` in the training space, [H, W, 3] float32."""
        t_row = torch.full((1,), float(t), device=self.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            parts = [self._decode_chunk(cache, t_row) for cache in self.caches]
        return torch.cat(parts).float().reshape(self.height, self.width, 3)

    @torch.no_grad()
    def decode(self, t: float) -> torch.Tensor:
        """Frame at hour ``t`` in display space [H, W, 3] (sRGB in [0, 1] for LDR, linear radiance for HDR)."""
        return self.field.transform.to_display(self.decode_train_space(t))

    @torch.no_grad()
    def query(self, y: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Random access: display values [N, 3] at integer texels (y [N], x [N]) of the training resolution
        and hours t [N] (:func:`query_pixels`; equal to the whole-frame decode there)."""
        return query_pixels(self.field, y, x, t)

    @torch.no_grad()
    def decode_source(self, t: float, source: str = "original") -> torch.Tensor:
        """One light source at hour ``t`` in display space [H, W, 3]: ``original`` (all light, as
        :meth:`decode`) or one of the field's ``sources`` (directional, local, sky; fields trained with
        ``components``). Raises ValueError for a source the field does not predict."""
        if source == "original":
            return self.decode(t)
        sources = getattr(self.field, "sources", ())
        if source not in sources:
            have = ", ".join(("original",) + tuple(sources))
            raise ValueError(f"no light source {source!r} in this model (it decodes {have})")
        if self._last_sources is None or self._last_sources[0] != float(t):
            self._last_sources = (float(t), self.decode_sources(t))
        return self._last_sources[1][:, :, sources.index(source)].clone()

    @torch.no_grad()
    def decode_sources(self, t: float) -> torch.Tensor:
        """Every light source at hour ``t`` in display space, [H, W, S, 3] in the order of the field's
        ``sources`` (one pass of the field; :meth:`decode_source` keeps the last hour's result, so asking
        for each source of one hour in turn decodes once)."""
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            parts = [self.field.decode_components(cache, t) for cache in self.caches]
        frames = torch.cat(parts).float().reshape(self.height, self.width, -1, 3)
        return self.field.transform.to_display(frames)


class NativeFrames:
    """``decode`` and ``decode_source`` for a model that makes its own whole-frame decoders (a tiled atlas,
    a pack): through one decoder at the native size, ``self.frame_decoder()``, made on first use and kept
    with its caches between calls."""

    _native = None

    def decode(self, t: float) -> torch.Tensor:
        """The frame at hour ``t``, display space [H, W, 3] (float32, CPU)."""
        return self.decode_source(t, "original")

    def decode_source(self, t: float, source: str = "original") -> torch.Tensor:
        """One light source at hour ``t`` (``original``: all light), display space [H, W, 3]."""
        if self._native is None:
            self._native = self.frame_decoder()
        return self._native.decode_source(t, source)


def whole_frames(model):
    """Something that decodes whole frames of ``model`` at its training size: a cached
    :class:`FrameDecoder` for a field (an ``nn.Module``), else ``model`` itself (an anchor, a tiled atlas, a
    pack, a decoder), which already has ``desc`` and ``decode(t)``."""
    return FrameDecoder(model) if isinstance(model, torch.nn.Module) else model


def make_decoder(model, height: int | None = None, width: int | None = None, **options):
    """A whole-frame decoder of ``model`` at ``height`` x ``width`` (default: its training size): a
    :class:`FrameDecoder` for a field; a model made of several fields (a tiled atlas) makes its own
    through ``frame_decoder(height, width)``. ``options`` go to FrameDecoder."""
    if hasattr(model, "frame_decoder"):
        return model.frame_decoder(height, width)
    return FrameDecoder(model, height, width, **options)


@torch.no_grad()
def query_pixels(field: torch.nn.Module, y: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Random access: display values [N, 3] at integer pixels (y [N], x [N]) of the training resolution
    and hours t [N] (each query its own time)."""
    desc = field.desc
    device = next(field.parameters()).device
    y, x = y.to(device).long(), x.to(device).long()
    if bool(((y < 0) | (y >= desc.height) | (x < 0) | (x >= desc.width)).any()):
        raise ValueError(f"pixel outside the {desc.width}x{desc.height} frame")
    pix = y * desc.width + x
    out = field(pixel_centres(pix, desc.height, desc.width), t.to(device).float(), pix)
    return field.transform.to_display(out)


def frame_name(hour: float, fmt: str) -> str:
    """``tod_05.50.png``: zero-padded so that names sort by time; the hour parses back from the name."""
    return f"tod_{hour:05.2f}.{fmt}"
