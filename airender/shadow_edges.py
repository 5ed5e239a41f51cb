"""Where the sun's shadows moved: crops of the held-out daylight frames around the moving shadow edges.

Between two trained hours the sun's shadows move. The classical anchor (store every hour and blend the two
neighbours, :class:`airender.anchors.NeighbourBlend`) cross-fades the two shadow positions into two faint
shadows, and a time-of-day model can fail the same way. ``shadow_edges.png`` (written by ``airender eval``
and the demos) shows, for each held-out ``between_day`` frame, the few crops where the ground truth differs
the most from that blend, each as a row: ground truth | prediction | neighbour blend | |prediction error|,
titled with the time, the crop origin and the PSNR of the prediction and of the blend on the crop.

* :func:`moving_shadow_crops` chooses the crops of one frame;
* :func:`shadow_edge_rows` makes the crops of every ``between_day`` frame of an evaluation report;
* :func:`shadow_edge_sheet` draws them; :func:`write_shadow_edges` does both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from airender.anchors import neighbours
from airender.data.sequence import transform_for
from airender.fileio import atomic_path
from airender.images import error_heatmap, hdr_preview_exposure, srgb_encode, to_numpy_image

DEFAULT_COUNT = 3  # crops per frame
MAX_FRAMES = 8  # between_day frames on one sheet (spread over the day when there are more)
ERROR_VMAX = 0.1  # |error| (mean over channels, viewing space 0..1) shown as the hottest colour
PANEL_PIXELS = 256  # crops are enlarged (nearest neighbour, by a whole factor) to at least about this size
GROUP = "between_day"

View = Callable[[np.ndarray], np.ndarray]


def default_crop_size(height: int, width: int) -> int:
    """min(64, H // 3, W // 3) rounded down to a multiple of 8, at least 16, at most the frame's shorter side."""
    size = min(64, height // 3, width // 3) // 8 * 8
    return min(max(size, 16), height, width)


def moving_shadow_crops(truth, before, after, weight: float, size: int | None = None, count: int = DEFAULT_COUNT,
                        mask=None) -> list[tuple[int, int]]:
    """Top-left corners (top, left) in pixels of the ``count`` size x size windows where ``truth`` differs
    the most from the blend of its neighbours, best first.

    truth, before, after: [H, W, 3] images of one value space (tensors or arrays; e.g. display values, or
    the tone-mapped values a person sees): the frame at t and the frames at the trained hours before and
    after t. weight: the weight of ``after`` in [0, 1] (``neighbours(times, t)[2]``). size: window side in
    pixels (default :func:`default_crop_size`; clipped to the frame). mask: [H, W] bool, True = valid texel
    (None = all valid); invalid texels score 0.

    The score of a pixel is sum over channels of |truth - ((1 - weight) * before + weight * after)|; the
    score of a window is the sum over its pixels (a size x size box filter). Windows are picked greedily:
    the best one, then the best one that overlaps none already picked, and so on. Fewer than ``count``
    come back when no non-overlapping window is left, or when the rest score 0 (nothing moved there; the
    first window is always returned).
    """
    truth, before, after = (to_numpy_image(x) for x in (truth, before, after))  # float32
    if not truth.shape == before.shape == after.shape or truth.ndim != 3:
        raise ValueError(f"truth, before and after must be [H, W, C] of one shape, got "
                         f"{truth.shape}, {before.shape}, {after.shape}")
    height, width = truth.shape[:2]
    score = np.abs(truth - ((1.0 - weight) * before + weight * after)).sum(axis=2, dtype=np.float64)
    if mask is not None:
        score = np.where(np.asarray(to_numpy_image(mask)) > 0, score, 0.0)
    size = default_crop_size(height, width) if size is None else min(int(size), height, width)
    if size < 1:
        raise ValueError(f"crop size must be at least 1, got {size}")
    integral = np.pad(score.cumsum(axis=0).cumsum(axis=1), ((1, 0), (1, 0)))
    boxes = integral[size:, size:] - integral[:-size, size:] - integral[size:, :-size] + integral[:-size, :-size]
    tolerance = 1e-9 * (float(score.sum()) + 1.0)  # rounding of the integral image
    picks: list[tuple[int, int]] = []
    while len(picks) < count:
        top, left = np.unravel_index(int(np.argmax(boxes)), boxes.shape)
        best = boxes[top, left]
        if best == -np.inf or (picks and best <= tolerance):
            break
        picks.append((int(top), int(left)))
        boxes[max(0, top - size + 1): top + size, max(0, left - size + 1): left + size] = -np.inf
    return picks


def neighbour_blend_frame(before: torch.Tensor, after: torch.Tensor, weight: float, is_hdr: bool,
                          hdr_transform: str = "log1p") -> torch.Tensor:
    """What :class:`airender.anchors.NeighbourBlend` decodes between two stored frames (display [H, W, 3]):
    the linear blend in the training space (sRGB values for LDR; ``hdr_transform`` of the radiance, stored
    as float16, for HDR), back to display values."""
    transform = transform_for(is_hdr, hdr_transform)
    first, second = (transform.to_train(x.detach().float().cpu()) for x in (before, after))
    if is_hdr:
        first, second = first.half().float(), second.half().float()
    return transform.to_display(torch.lerp(first, second, float(weight)))


def default_view(is_hdr: bool, exposure: float = 1.0) -> View:
    """Display [H, W, 3] -> float [0, 1] as the contact sheet shows it (:func:`airender.images.preview_uint8`
    before rounding): LDR values clipped, HDR radiance as ``srgb(clip(exposure * x))``."""
    if is_hdr:
        return lambda x: srgb_encode(exposure * np.asarray(x, np.float32)).astype(np.float32)
    return lambda x: np.clip(np.asarray(x, np.float32), 0.0, 1.0)


def _as_unit(pixels: np.ndarray) -> np.ndarray:
    """A view's output (uint8, or float in [0, 1]) as float32 in [0, 1]."""
    pixels = np.asarray(pixels)
    return pixels.astype(np.float32) / 255.0 if pixels.dtype == np.uint8 else pixels.astype(np.float32, copy=False)


def crop_psnr(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """PSNR in dB (peak 1) of viewing-space [h, w, 3] values over the valid texels; inf when identical,
    nan when no texel is valid."""
    error = (np.asarray(pred, np.float64) - np.asarray(truth, np.float64)) ** 2
    if valid is not None:
        error = error[np.asarray(valid, bool)]
    if error.size == 0:
        return math.nan
    mse = float(error.mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


@dataclass
class ShadowCrop:
    """One crop of one held-out frame. Images are display-space [size, size, 3] float32 (invalid texels 0)."""

    time: float
    top: int
    left: int
    size: int
    before_hour: float
    after_hour: float
    weight: float
    truth: np.ndarray
    prediction: np.ndarray
    blend: np.ndarray
    psnr_prediction: float
    psnr_blend: float


def _spread(items: list, limit: int) -> list:
    if len(items) <= limit:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def shadow_edge_rows(report, groups: list, is_hdr: bool, view: View, count: int = DEFAULT_COUNT,
                     size: int | None = None, max_frames: int = MAX_FRAMES) -> list[ShadowCrop]:
    """The crops of the ``between_day`` frames the report kept images of (at most ``max_frames``, spread
    over the day), ``count`` per frame, against the neighbour blend of the two trained hours around each
    (the ground-truth frames of the group ``hours``, periodic). Crops are chosen and scored in the viewing
    space of ``view`` (display [H, W, 3] -> uint8, or float in [0, 1], pixel by pixel). [] when there is no
    such frame or no ``hours`` group."""
    sequences = dict(groups)
    hours = sequences.get("hours")
    keys = sorted((k for k in report.predictions if k[0] == GROUP and k in report.truths), key=lambda k: k[1])
    if hours is None or hours.num_frames == 0 or not keys:
        return []
    held = sequences.get(GROUP)
    mask = held.mask if held is not None and held.mask is not None else hours.mask
    valid = None if mask is None else mask.cpu().numpy().astype(bool)
    times = hours.times.double().cpu()
    rows: list[ShadowCrop] = []
    for _, hour in _spread(keys, max_frames):
        i0, i1, weight = neighbours(times, hour)
        images = {"truth": report.truths[(GROUP, hour)], "prediction": report.predictions[(GROUP, hour)],
                  "blend": neighbour_blend_frame(hours.frames[i0], hours.frames[i1], weight, is_hdr),
                  "before": hours.frames[i0], "after": hours.frames[i1]}
        display = {k: to_numpy_image(v) for k, v in images.items()}
        if valid is not None:
            display = {k: np.where(valid[..., None], v, 0.0).astype(np.float32) for k, v in display.items()}
        seen = {k: _as_unit(view(display[k])) for k in ("truth", "prediction", "blend", "before", "after")}
        for top, left in moving_shadow_crops(seen["truth"], seen["before"], seen["after"], weight, size, count, valid):
            side = size if size is not None else default_crop_size(*display["truth"].shape[:2])
            side = min(side, *display["truth"].shape[:2])
            window = (slice(top, top + side), slice(left, left + side))
            crop_valid = None if valid is None else valid[window]
            rows.append(ShadowCrop(
                time=float(hour), top=top, left=left, size=side, before_hour=float(times[i0]),
                after_hour=float(times[i1]), weight=weight, truth=display["truth"][window],
                prediction=display["prediction"][window], blend=display["blend"][window],
                psnr_prediction=crop_psnr(seen["prediction"][window], seen["truth"][window], crop_valid),
                psnr_blend=crop_psnr(seen["blend"][window], seen["truth"][window], crop_valid)))
    return rows


def _enlarge(pixels: np.ndarray) -> np.ndarray:
    """Nearest-neighbour upscaling by a whole factor so the crop is at least about PANEL_PIXELS wide."""
    factor = max(1, math.ceil(PANEL_PIXELS / max(pixels.shape[:2])))
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


def _db(value: float) -> str:
    return "inf" if math.isinf(value) else ("-" if math.isnan(value) else f"{value:.1f}")


def shadow_edge_sheet(path: str | Path, rows: list[ShadowCrop], is_hdr: bool, exposure: float = 1.0,
                      view: View | None = None, title: str = "", vmax: float = ERROR_VMAX) -> None:
    """Draw the crops (matplotlib, Agg) into the PNG ``path``, written atomically: one row per crop,
    ground truth | prediction | neighbour blend | |prediction - ground truth| heat map (mean over channels
    of the viewing-space values, ``vmax`` hottest), each panel titled with the time and crop origin (y, x
    of the top-left texel), or the PSNR on the crop. Crops are enlarged by nearest-neighbour repetition.

    view: display -> uint8 (or float in [0, 1]) for looking at; default :func:`default_view` of ``is_hdr``
    and ``exposure`` (the contact sheet's tone mapping)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("no crops to draw")
    view = view or default_view(is_hdr, exposure)

    def show(image: np.ndarray) -> np.ndarray:
        return np.round(np.clip(_as_unit(view(image)), 0.0, 1.0) * 255.0).astype(np.uint8)

    panel, label_in, gap = 2.4, 0.42, 0.1  # inches: a crop, its two-line title, the space between panels
    head = 0.15 + 0.2 * (title.count("\n") + 1) if title else 0.1
    width, height = 4 * panel + 5 * gap, len(rows) * (panel + label_in) + head + gap
    fig, axes = plt.subplots(len(rows), 4, squeeze=False, figsize=(width, height))
    fig.subplots_adjust(left=gap / width, right=1.0 - gap / width, bottom=gap / height,
                        top=1.0 - (head + label_in) / height,
                        wspace=gap / panel, hspace=label_in / panel)
    for axis_row, crop in zip(axes, rows):
        truth, pred, blend = show(crop.truth), show(crop.prediction), show(crop.blend)
        panels = [
            (truth, f"{crop.time:g} h ground truth\ncrop at y={crop.top}, x={crop.left} ({crop.size} px)"),
            (pred, f"prediction\nPSNR {_db(crop.psnr_prediction)} dB"),
            (blend, f"blend {crop.before_hour:g} h / {crop.after_hour:g} h (w={crop.weight:.2f})\n"
                    f"PSNR {_db(crop.psnr_blend)} dB"),
            (error_heatmap(pred, truth, vmax), f"|prediction error| (0..{vmax:g})")]
        for ax, (pixels, label) in zip(axis_row, panels):
            ax.imshow(_enlarge(pixels), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10, y=1.0 - 0.08 / height, va="top")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def write_shadow_edges(report, groups: list, path: str | Path, is_hdr: bool, title: str = "",
                       count: int = DEFAULT_COUNT, size: int | None = None, exposure: float | None = None,
                       view: View | None = None, max_frames: int = MAX_FRAMES) -> Path | None:
    """Choose the crops of the report's ``between_day`` frames (:func:`shadow_edge_rows`) and draw them
    (:func:`shadow_edge_sheet`) into ``path``. Returns ``path``, or None, writing nothing, when there is no
    between_day frame, no ``hours`` group or the report kept no images.

    report: an :class:`airender.evaluate.EvalReport` made with ``keep_images``; groups: its (name,
    sequence) pairs (:func:`airender.evaluate.ground_truth_groups`). HDR data are shown with the contact
    sheet's tone mapping; ``exposure`` (default: from the first between_day ground truth,
    :func:`airender.images.hdr_preview_exposure`) is ignored when ``view`` is given."""
    if view is None:
        if exposure is None:
            first = next((v for k, v in sorted(report.truths.items(), key=lambda kv: kv[0][1]) if k[0] == GROUP),
                         None)
            exposure = hdr_preview_exposure(first) if is_hdr and first is not None else 1.0
        view = default_view(is_hdr, exposure)
    rows = shadow_edge_rows(report, groups, is_hdr, view, count, size, max_frames)
    if not rows:
        return None
    frames = len({crop.time for crop in rows})
    total = len([k for k in report.predictions if k[0] == GROUP])
    caption = f"{title}: " if title else ""
    caption += (f"moving shadows in the held-out daylight frames ({frames} of {total})" if frames < total
                else "moving shadows in the held-out daylight frames")
    caption += "\nground truth | prediction | blend of the two neighbouring trained hours | prediction error"
    shadow_edge_sheet(path, rows, is_hdr, view=view, title=caption)
    return Path(path)
