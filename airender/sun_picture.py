"""What a field's sun term learned: ``sun_term.png``, written by ``airender eval`` for fields trained with
``--sun_path``.

One row per held-out daylight frame between two trained hours (at most ``MAX_ROWS``, spread over the
day): the sun term (direct sunlight, linear light shown at the preview exposure) at the trained hour
before, at the frame's time and at the trained hour after, and the visibility of the sun at the frame's
time (white: sees the sun). Where a shadow edge lies between its two positions at the neighbouring
hours, the term moved it; a faint double shadow is a cross-fade.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from airender.images import hdr_preview_exposure, save_image_grid, srgb_encode
from airender.render import FrameDecoder

MAX_ROWS = 4


@torch.no_grad()
def sun_term_frames(decoder: FrameDecoder, t: float) -> tuple[np.ndarray, np.ndarray]:
    """(direct sunlight [H, W, 3] in linear light, visibility [H, W]) of the decoder's field at hour ``t``."""
    field = decoder.field
    t_row = torch.full((1,), float(t), device=decoder.device)
    suns, visibilities = [], []
    for cache in decoder.caches:
        parts: dict = {}
        field.decode_at(cache, t_row, parts)
        suns.append(parts["sun"])
        visibilities.append(parts["sun_visibility"])
    shape = (decoder.height, decoder.width)
    return (torch.cat(suns).float().reshape(*shape, 3).cpu().numpy(),
            torch.cat(visibilities).float().reshape(shape).cpu().numpy())


def write_sun_term_sheet(field: torch.nn.Module, times: list[float], path: str | Path, title: str = "") -> Path | None:
    """Write the sheet for the held-out ``times`` (hours between trained hours; others are skipped) of a
    field with a sun term; None (nothing written) for a field without one or without such a time. LDR
    fields are shown as they are; HDR fields at the preview exposure of their frame at the first row's time."""
    if "sun" not in getattr(field, "term_names", ()):
        return None
    knots = sorted(field.desc.train_times or field.desc.times)
    rows_times = [t for t in sorted(times) if knots[0] < t < knots[-1] and t not in knots]
    if not rows_times:
        return None
    if len(rows_times) > MAX_ROWS:
        rows_times = [rows_times[round(i * (len(rows_times) - 1) / (MAX_ROWS - 1))] for i in range(MAX_ROWS)]
    decoder = FrameDecoder(field)
    exposure = hdr_preview_exposure(decoder.decode(rows_times[0])) if field.desc.is_hdr else 1.0

    def view(linear: np.ndarray) -> np.ndarray:
        return (np.clip(srgb_encode(np.clip(linear * exposure, 0.0, 1.0)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

    rows = []
    for t in rows_times:
        before = max(k for k in knots if k < t)
        after = min(k for k in knots if k > t)
        sun_t, visibility = sun_term_frames(decoder, t)
        panels = [("sun term, hour before", view(sun_term_frames(decoder, before)[0])),
                  ("sun term, between", view(sun_t)),
                  ("sun term, hour after", view(sun_term_frames(decoder, after)[0])),
                  ("visibility of the sun", (np.repeat(visibility[..., None], 3, axis=2) * 255.0 + 0.5)
                   .astype(np.uint8))]
        rows.append((f"{before:g} | {t:g} | {after:g} h", panels))
    path = Path(path)
    save_image_grid(rows, path, title=title or "what the sun term learned")
    return path
