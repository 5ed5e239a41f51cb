"""Evaluation protocols: how a decoded frame is scored against its ground truth.

``image``   whole-frame metrics of LDR sRGB frames (PSNR peak 1, SSIM data range 1, LPIPS on [-1, 1]);
            the default for LDR data (:class:`airender.metrics.MetricSuite`, ``hdr=False``).
``hprc``    the first contest layout's protocol: 256 x 256 tiles, torchmetrics SSIM, raw-value LPIPS;
            the default for HDR data (:class:`airender.metrics.MetricSuite`, ``hdr=True``).
``hprc-vt`` the virtual-texture release's protocol (:func:`hprc_vt_tile_scores`): 128 x 128 tiles that
            hold a valid texel and a non-zero reference; PSNR with the tile's max valid reference value
            as peak and the MSE over valid texels; SSIM of scikit-image (defaults: 7 x 7 uniform window,
            sample covariance) per channel with data range = reference tile max - min, averaged over
            the channels; LPIPS-Alex on the tile min-max normalised to [0, 1] (reference and decode each
            on its own), passed to the network as is. Invalid texels of the decode are set to 0 first (the
            release's rule), and so are those of the reference: the format says invalid texels hold
            garbage or zeros and count in no metric, and with zeros there this is the release's protocol.

Every protocol also times each whole-frame decode (:class:`TimedDecoder`); the report's rows carry
``decode_s`` and each group's means ``decode_s_sum`` (the release's decode-time figure for the hours).
Models that predict light sources are also scored per source (groups ``<group>/<source>``, see
:func:`airender.evaluate.evaluate_field`), by the same protocol.
A frame's score is the mean over its tiles; a group's, the mean over its frames.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from airender.errors import InputError

if TYPE_CHECKING:
    from airender.data.sequence import TODSequence
    from airender.evaluate import EvalReport
    from airender.metrics import MetricSuite

PROTOCOLS: tuple[str, ...] = ("image", "hprc", "hprc-vt")
VT_TILE = 128
VT_SSIM_WINDOW = 7  # scikit-image's default window: tiles narrower than this get no SSIM
VT_METRICS = ("psnr", "ssim", "lpips")


def resolve_protocol(name: str | None, is_hdr: bool) -> str:
    """``name`` if given, else the default of the data: ``hprc`` for HDR, ``image`` for LDR."""
    if not name:
        return "hprc" if is_hdr else "image"
    if name not in PROTOCOLS:
        raise InputError(f"--protocol {name}: unknown (choose from {', '.join(PROTOCOLS)})")
    return name


def _min_max_unit(tile: torch.Tensor) -> torch.Tensor:
    """[h, w, 3] -> (tile - min) / (max - min) over the whole tile; a constant tile becomes 0."""
    low, high = tile.min(), tile.max()
    span = high - low
    return (tile - low) / span if float(span) > 0.0 else torch.zeros_like(tile)


def hprc_vt_tile_scores(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None,
                        lpips_model: torch.nn.Module | None = None, metrics: tuple[str, ...] = VT_METRICS,
                        tile: int = VT_TILE) -> list[dict]:
    """Per-tile scores of the virtual-texture protocol (see the module docstring).

    pred, ref: [H, W, 3] float display values (linear radiance); mask: [H, W] bool (True = valid) or None.
    Returns one dict per scored tile, in row-major tile order: {"top", "left", "psnr" (dB, +inf when the
    valid texels match), "ssim" (<= 1; only for tiles of at least 7 x 7), "lpips" (>= 0; only with a
    model and a tile of at least 32 x 32)}. Invalid texels are 0 in both images before SSIM and LPIPS.
    Tiles with no valid texel, or whose valid reference values are all <= 0 (all zero for radiance),
    are skipped.
    """
    from skimage.metrics import structural_similarity

    from airender.metrics import LPIPS_MIN_SIZE, _check, _hprc_tiles, _zero_invalid, lpips_distance, psnr

    full_mask = _check(pred, ref, mask).cpu()
    pred = _zero_invalid(pred.detach().float().cpu(), full_mask)
    ref = _zero_invalid(ref.detach().float().cpu(), full_mask)
    rows = []
    for ys, xs in _hprc_tiles(*ref.shape[:2], tile=tile):
        tile_mask, tile_ref, tile_pred = full_mask[ys, xs], ref[ys, xs], pred[ys, xs]
        if not bool(tile_mask.any()):
            continue
        peak = float(tile_ref[tile_mask].max())
        if peak <= 0.0:
            continue
        row: dict = {"top": ys.start, "left": xs.start}
        if "psnr" in metrics:
            row["psnr"] = psnr(tile_pred, tile_ref, tile_mask, peak=peak)
        if "ssim" in metrics and min(tile_ref.shape[:2]) >= VT_SSIM_WINDOW:
            ref_np, pred_np = tile_ref.double().numpy(), tile_pred.double().numpy()
            data_range = max(float(ref_np.max() - ref_np.min()), 1e-12)
            row["ssim"] = float(structural_similarity(ref_np, pred_np, data_range=data_range, channel_axis=2))
        if "lpips" in metrics and lpips_model is not None and min(tile_ref.shape[:2]) >= LPIPS_MIN_SIZE:
            row["lpips"] = lpips_distance(lpips_model, _min_max_unit(tile_pred), _min_max_unit(tile_ref),
                                          scale_to_unit=False)
        rows.append(row)
    return rows


def hprc_vt_frame(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None,
                  lpips_model: torch.nn.Module | None = None, metrics: tuple[str, ...] = VT_METRICS) -> dict:
    """Scores of one frame under ``hprc-vt``: each metric's mean over the scored tiles, plus "tiles"
    (how many were scored). Raises ValueError when no tile qualifies."""
    tiles = hprc_vt_tile_scores(pred, ref, mask, lpips_model, metrics)
    if not tiles:
        raise ValueError("no 128 x 128 tile with a valid texel and a non-zero reference")
    out: dict = {key: float(np.mean([t[key] for t in tiles if key in t]))
                 for key in VT_METRICS if any(key in t for t in tiles)}
    out["tiles"] = len(tiles)
    return out


class ProtocolScorer:
    """Scores frames under one protocol with the metrics and LPIPS model of a MetricSuite; offers what
    :func:`airender.evaluate.evaluate_field` asks of a suite (``frame``, ``wants``, ``metrics``,
    ``lpips_unavailable_reason``)."""

    def __init__(self, protocol: str, suite: "MetricSuite"):
        if protocol not in PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r} (expected one of {PROTOCOLS})")
        self.protocol = protocol
        self.suite = suite
        self.metrics = suite.metrics if protocol != "hprc-vt" else tuple(m for m in suite.metrics if m in VT_METRICS)
        self.lpips_unavailable_reason = suite.lpips_unavailable_reason

    def wants(self, name: str) -> bool:
        return name in self.metrics and self.suite.wants(name)

    def frame(self, pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None, hdr: bool) -> dict:
        """Metrics of one frame (display space [H, W, 3]); ``hdr`` is the data's, the protocol decides."""
        if self.protocol == "image":
            return self.suite.frame(pred, ref, mask, hdr=False)
        if self.protocol == "hprc":
            return self.suite.frame(pred, ref, mask, hdr=True)
        model = self.suite.lpips_model if self.wants("lpips") else None
        return hprc_vt_frame(pred, ref, mask, model, self.metrics)


class TimedDecoder:
    """Wraps a frame decoder (``desc``, ``decode(t)``, and ``decode_source(t, source)`` where it has one) and
    records the wall time of every decode call in ``seconds``, in call order (synchronising a CUDA device
    before and after, so the time covers the whole decode)."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.desc = decoder.desc
        device = getattr(decoder, "device", None)
        self._cuda = device is not None and torch.device(device).type == "cuda"
        self.seconds: list[float] = []

    def decode(self, t: float) -> torch.Tensor:
        return self._timed(self.decoder.decode, t)

    def decode_source(self, t: float, source: str) -> torch.Tensor:
        """One light source of the wrapped decoder (see FrameDecoder.decode_source), timed like a frame."""
        return self._timed(self.decoder.decode_source, t, source)

    def _timed(self, decode, *args) -> torch.Tensor:
        if self._cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        frame = decode(*args)
        if self._cuda:
            torch.cuda.synchronize()
        self.seconds.append(time.perf_counter() - start)
        return frame


def evaluate_protocol(model, groups: list[tuple[str, "TODSequence"]], suite: "MetricSuite",
                      protocol: str, keep_images: bool = True) -> "EvalReport":
    """Decode and score every frame of every group under ``protocol`` (see the module docstring).

    model: a trained field or any object with ``desc`` and ``decode(t)``; groups: (name, sequence) pairs
    as made by :func:`airender.evaluate.ground_truth_groups`. Rows get ``decode_s`` (seconds of that
    frame's decode) and the means of each group ``decode_s_sum``. Raises InputError for ``image`` on
    HDR frames (whole-frame LDR metrics would clip the radiance).
    """
    from airender.evaluate import evaluate_field
    from airender.render import whole_frames

    for _, sequence in groups:
        if protocol == "image" and sequence.is_hdr:
            raise InputError(f"{sequence.source}: --protocol image scores LDR frames; these are HDR "
                             f"(use hprc or hprc-vt)")
    timed = TimedDecoder(whole_frames(model))
    report = evaluate_field(timed, groups, ProtocolScorer(protocol, suite), keep_images=keep_images)
    for row, seconds in zip(report.rows, timed.seconds):
        row["decode_s"] = seconds
    for name in {r["group"] for r in report.rows}:
        if name in report.means:
            report.means[name]["decode_s_sum"] = math.fsum(r["decode_s"] for r in report.rows if r["group"] == name)
    return report
