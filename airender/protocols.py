"""Evaluation protocols: how a decoded frame is scored against its ground truth.

``image``          whole-frame metrics of LDR sRGB frames (PSNR peak 1, SSIM data range 1, LPIPS on [-1, 1]);
                   the default for LDR data (:class:`airender.metrics.MetricSuite`, ``hdr=False``).
``hprc``           the first layout's contest (round 1) as its revised ``Utils.py``/``Test.py`` compute it:
                   256 x 256 tiles with the partial edge tiles, invalid texels of the decode zeroed, torchmetrics
                   SSIM with the reference tile's range, LPIPS on tiles min-max normalised each on its own
                   (:func:`airender.contest_metrics.round1_tile_scores`); the default for HDR data.
``hprc-raw``       the same with LPIPS on the raw values, as an older copy of that script computed it.
``hprc-vt``        the virtual-texture release's ``Test.py`` (round 2): whole 128 x 128 tiles only, invalid
                   texels of the decode zeroed (the dilated reference keeps its gutters), scikit-image SSIM per
                   channel with that channel's range, LPIPS on min-max normalised tiles
                   (:func:`airender.contest_metrics.round2_tile_scores`).
``hprc-masked``    not a contest's: 256 x 256 tiles whose invalid texels are zeroed in both images, SSIM
                   averaged over the valid texels only, LPIPS on the raw values, FLIP (HDR) on the whole frame;
                   it scores only what the mask calls valid (airender's ``hprc`` before contest-exact scoring).
``hprc-vt-masked`` not a contest's: the release's rules with the invalid texels of both images zeroed and the
                   partial edge tiles scored (:func:`masked_vt_tile_scores`; airender's earlier ``hprc-vt``).

Under the contest protocols (``CONTEST_PROTOCOLS``) a group's mean is the mean over every scored tile of
its frames, as the scripts average one list of tiles (:func:`airender.contest_metrics.pooled_means`), and
:func:`contest_score` gives the round's weighted score (:mod:`airender.contest_score`). Elsewhere a frame's
score is the mean over its tiles, a group's the mean over its frames.

Every protocol also times each whole-frame decode (:class:`TimedDecoder`); the report's rows carry
``decode_s`` and each group's means ``decode_s_sum`` (the release's decode-time figure for the hours).
Models that predict light sources are also scored per source (groups ``<group>/<source>``, see
:func:`airender.evaluate.evaluate_field`), by the same protocol.
"""
from __future__ import annotations

import math
import time
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
from skimage.metrics import structural_similarity

from airender.contest_metrics import CONTEST_METRICS, pooled_means, round1_tile_scores, round2_tile_scores, tile_means
from airender.contest_score import ROUND1, ROUND2
from airender.errors import InputError
from airender.evaluate import evaluate_field
from airender.metrics import LPIPS_MIN_SIZE, _check, _hprc_tiles, _zero_invalid, lpips_distance, psnr
from airender.render import whole_frames
from airender.timing import sync

if TYPE_CHECKING:
    from airender.data.sequence import TODSequence
    from airender.evaluate import EvalReport
    from airender.metrics import MetricSuite

PROTOCOLS: tuple[str, ...] = ("image", "hprc", "hprc-raw", "hprc-vt", "hprc-masked", "hprc-vt-masked")
# contest protocol -> (the round whose rules it follows, its tile scorer)
CONTEST_PROTOCOLS = {
    "hprc": (ROUND1, partial(round1_tile_scores, lpips_input="minmax")),
    "hprc-raw": (ROUND1, partial(round1_tile_scores, lpips_input="raw")),
    "hprc-vt": (ROUND2, round2_tile_scores),
}
VT_TILE = 128
VT_SSIM_WINDOW = 7  # scikit-image's default window: tiles narrower than this get no SSIM


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


def masked_vt_tile_scores(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None,
                          lpips_model: torch.nn.Module | None = None, metrics: tuple[str, ...] = CONTEST_METRICS,
                          tile: int = VT_TILE) -> list[dict]:
    """Per-tile scores of ``hprc-vt-masked`` (see the module docstring).

    pred, ref: [H, W, 3] float display values (linear radiance); mask: [H, W] bool (True = valid) or None.
    Returns one dict per scored tile, in row-major tile order: {"top", "left", "psnr" (dB, +inf when the
    valid texels match), "ssim" (<= 1; only for tiles of at least 7 x 7), "lpips" (>= 0; only with a
    model and a tile of at least 32 x 32)}. Invalid texels are 0 in both images before SSIM and LPIPS.
    Tiles with no valid texel, or whose valid reference values are all <= 0 (all zero for radiance),
    are skipped.
    """
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


def masked_vt_frame(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None,
                    lpips_model: torch.nn.Module | None = None, metrics: tuple[str, ...] = CONTEST_METRICS) -> dict:
    """Scores of one frame under ``hprc-vt-masked``: each metric's mean over the scored tiles, plus "tiles"
    (how many were scored). Raises ValueError when no tile qualifies."""
    tiles = masked_vt_tile_scores(pred, ref, mask, lpips_model, metrics)
    if not tiles:
        raise ValueError("no 128 x 128 tile with a valid texel and a non-zero reference")
    out: dict = {key: float(np.mean([t[key] for t in tiles if key in t]))
                 for key in CONTEST_METRICS if any(key in t for t in tiles)}
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
        tiled_only = protocol in CONTEST_PROTOCOLS or protocol == "hprc-vt-masked"
        self.metrics = tuple(m for m in suite.metrics if m in CONTEST_METRICS) if tiled_only else suite.metrics
        self.lpips_unavailable_reason = suite.lpips_unavailable_reason

    def wants(self, name: str) -> bool:
        return name in self.metrics and self.suite.wants(name)

    def frame(self, pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None, hdr: bool) -> dict:
        """Metrics of one frame (display space [H, W, 3]); ``hdr`` is the data's, the protocol decides.
        Under a contest protocol the row also holds "tiles" ({metric: tiles scored}) and, where a tile's
        value is NaN, "nan_tiles"; a frame with no tile that qualifies gets no metric, as in the scripts.
        Elsewhere raises ValueError when no tile qualifies."""
        if self.protocol == "image":
            return self.suite.frame(pred, ref, mask, hdr=False)
        if self.protocol == "hprc-masked":
            return self.suite.frame(pred, ref, mask, hdr=True)
        model = self.suite.lpips_model if self.wants("lpips") else None
        if self.protocol == "hprc-vt-masked":
            return masked_vt_frame(pred, ref, mask, model, self.metrics)
        _, tile_scores = CONTEST_PROTOCOLS[self.protocol]
        return tile_means(tile_scores(pred, ref, mask, model, self.metrics))


class TimedDecoder:
    """Wraps a frame decoder (``desc``, ``decode(t)``, and ``decode_source(t, source)`` where it has one) and
    records the wall time of every decode call in ``seconds``, in call order (synchronising a CUDA device
    before and after, so the time covers the whole decode)."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.desc = decoder.desc
        self.device = getattr(decoder, "device", None)
        self.seconds: list[float] = []

    def decode(self, t: float) -> torch.Tensor:
        return self._timed(self.decoder.decode, t)

    def decode_source(self, t: float, source: str) -> torch.Tensor:
        """One light source of the wrapped decoder (see FrameDecoder.decode_source), timed like a frame."""
        return self._timed(self.decoder.decode_source, t, source)

    def _timed(self, decode, *args) -> torch.Tensor:
        sync(self.device)
        start = time.perf_counter()
        frame = decode(*args)
        sync(self.device)
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
    for _, sequence in groups:
        if protocol == "image" and sequence.is_hdr:
            raise InputError(f"{sequence.source}: --protocol image scores LDR frames; these are HDR "
                             f"(use hprc or hprc-vt)")
        if protocol == "hprc-vt" and min(sequence.height, sequence.width) < VT_TILE:
            raise InputError(f"{sequence.source}: frames of {sequence.width} x {sequence.height} hold no whole "
                             f"{VT_TILE} x {VT_TILE} tile, and hprc-vt scores whole tiles only (hprc-vt-masked "
                             f"scores the partial ones)")
    timed = TimedDecoder(whole_frames(model))
    report = evaluate_field(timed, groups, ProtocolScorer(protocol, suite), keep_images=keep_images)
    for row, seconds in zip(report.rows, timed.seconds):
        row["decode_s"] = seconds
    if protocol in CONTEST_PROTOCOLS:  # the scripts average one list of tiles, not the frames' means
        for name, means in report.means.items():
            means.update(pooled_means([r for r in _rows_of(report.rows, name) if "tiles" in r]))
    for name in {r["group"] for r in report.rows}:
        if name in report.means:
            report.means[name]["decode_s_sum"] = math.fsum(r["decode_s"] for r in report.rows if r["group"] == name)
    return report


def _rows_of(rows: list[dict], name: str) -> list[dict]:
    """The frame rows behind the mean ``name``: a group's own rows; ``between[/source]``, both of its groups."""
    base, slash, source = name.partition("/")
    if base == "between":
        return [r for r in rows if r["group"] in (f"between_day{slash}{source}", f"between_night{slash}{source}")]
    return [r for r in rows if r["group"] == name]


def contest_score(report: "EvalReport", protocol: str, model_bytes: int, raw_bytes: int) -> dict | None:
    """The weighted score of the round whose rules ``protocol`` follows (None for other protocols, or when no
    frame of the round's test times was scored): quality pooled over every tile of the all-light frames at
    those times (round 1: 0..23, 5.9, 18.1; round 2: 1..24), decode time summed over their calls,
    compression = ``model_bytes`` / ``raw_bytes``. The result (:meth:`ScoreRule.evaluate`) also holds
    "frames" (scored), "test_times" (the round's count) and "nan_tiles"."""
    if protocol not in CONTEST_PROTOCOLS:
        return None
    rule, _ = CONTEST_PROTOCOLS[protocol]
    rows = [r for r in report.rows if "/" not in r["group"] and "tiles" in r and rule.covers(r["time"])]
    if not rows:
        return None
    quality = pooled_means(rows)
    values = {key: quality[key] for key in CONTEST_METRICS if key in quality}
    values["time_s"] = math.fsum(r.get("decode_s", 0.0) for r in rows)
    values["compression"] = model_bytes / raw_bytes
    result = rule.evaluate(values)
    result.update(frames=len(rows), test_times=len(rule.times), nan_tiles=quality.get("nan_tiles", {}))
    return result


def contest_score_note(report: "EvalReport", protocol: str) -> str:
    """One or two lines on what :func:`contest_score` covered (frames, NaN tiles), or why there is none."""
    if protocol not in CONTEST_PROTOCOLS:
        return "" if protocol == "image" else \
            f"note: {protocol} is not a contest's protocol, so no contest score (hprc and hprc-vt are the contests')"
    if report.contest is None:
        return "note: no frame at the contest's test times was scored, so no contest score"
    lines = [f"note: over {report.contest['frames']} frames at the {report.contest['test_times']} test times of "
             f"{report.contest['rule']}; the decode time is this machine's"]
    nans = report.contest.get("nan_tiles", {})
    if nans:
        lines.append("note: " + ", ".join(f"{n} {key}" for key, n in nans.items()) +
                     " tile value(s) are NaN under the contest's rules (a constant reference tile has no SSIM range; "
                     "round 2 divides by its zero range for LPIPS), so that mean is NaN, as the script's own is")
    return "\n".join(lines)
