"""Scoring an atlas window by window, in memory that does not depend on its size (``airender eval --stream``).

The contest protocols score tiles (round 1: 256 x 256, round 2: 128 x 128), so an atlas can be scored a
window at a time: each window (a multiple of both tiles, aligned to them) is read from memory-mapped files
(:mod:`airender.data.frame_store`: the virtual-texture layout's own files, other layouts through the frame
cache), the model is decoded at the window's texels for every hour (its ``query``), and the window's tiles
are scored by the protocol's own tile scorer. A window without a valid texel holds no tile a script scores,
so it is neither read in full nor decoded. A frame's row is the mean over all its tiles and a group's mean
pools every tile of its frames, exactly as :func:`airender.protocols.evaluate_protocol` computes them from
whole frames; the decode time of a frame is the sum over its windows.

Memory: one window of ground truth for every hour (T x rows x columns x 12 bytes; 24 x 256 x 1024 is 75 MB)
plus one window of decoded texels, whatever the atlas size.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from airender.contest_metrics import pooled_means, tile_means
from airender.data.frame_store import FrameSource, open_sources
from airender.errors import InputError
from airender.evaluate import GROUP_ORDER, EvalReport, held_out_group, trained_time
from airender.protocols import CONTEST_PROTOCOLS, _rows_of
from airender.render import query_pixels
from airender.timing import sync

WINDOW = (256, 1024)  # rows, columns: multiples of both contests' tiles
STREAM_BYTES = 2 << 30  # --stream auto: stream when the ground truth of every hour would take more than this


class TexelDecoder:
    """A torch field's texels without its whole-frame caches: ``desc`` and ``query`` (airender.render.query_pixels)."""

    def __init__(self, field: torch.nn.Module):
        self.field, self.desc = field, field.desc
        self.device = next(field.parameters()).device

    def query(self, y: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return query_pixels(self.field, y, x, t)


def texel_decoder(model):
    """What :func:`evaluate_streamed` decodes through: a torch field as a :class:`TexelDecoder`, any other model
    (a tiled atlas, a pack) itself."""
    return TexelDecoder(model) if isinstance(model, torch.nn.Module) else model


def ground_truth_bytes(source: FrameSource) -> int:
    """Bytes of every frame of ``source`` held whole as float32 RGB."""
    info = source.info
    return len(info.times) * info.height * info.width * 3 * 4


def open_ground_truth(data_dir: str, lightmap_id: str, component: str, cache_dir: Path) -> FrameSource:
    """The one atlas of ``data_dir`` to score, read through memory maps (a frame cache in ``cache_dir`` for
    layouts other than the virtual-texture one)."""
    return open_sources(data_dir, lightmap_id, component, cache_dir)[0]


def windows_of(height: int, width: int, window: tuple[int, int] = WINDOW) -> list[tuple[int, int]]:
    """(top, left) of every window of a height x width atlas, row by row."""
    return [(top, left) for top in range(0, height, window[0]) for left in range(0, width, window[1])]


def time_groups(desc, times: list[float], switch_hours: tuple[float, float]) -> list[str]:
    """The group of each hour: 'hours' where the model trained on it, else its held-out group."""
    trained = trained_time(desc)
    return ["hours" if trained(t) else held_out_group(t, switch_hours) for t in times]


def evaluate_streamed(decoder, source: FrameSource, suite, protocol: str, switch_hours: tuple[float, float],
                      window: tuple[int, int] = WINDOW, progress=None) -> EvalReport:
    """Score ``decoder`` (``desc`` and ``query(y, x, t)`` -> display [N, 3]) on every hour of ``source`` under
    the contest ``protocol``, window by window (see the module docstring). ``progress()`` is called after each
    window (:func:`windows_of` lists them). Returns an EvalReport without pictures (rows, means, ``decode_s``)."""
    if protocol not in CONTEST_PROTOCOLS:
        raise InputError(f"--stream: scores tiles under the contests' protocols ({', '.join(CONTEST_PROTOCOLS)}); "
                         f"--protocol {protocol} scores whole frames")
    info, desc = source.info, decoder.desc
    if (info.height, info.width) != (desc.height, desc.width) or info.is_hdr != desc.is_hdr:
        raise InputError(f"{info.source}: {info.width}x{info.height} {'HDR' if info.is_hdr else 'LDR'} frames, but "
                         f"the model was trained on {desc.width}x{desc.height} "
                         f"{'HDR' if desc.is_hdr else 'LDR'} frames")
    rows_step, cols_step = window
    if rows_step % 256 or cols_step % 256:
        raise ValueError(f"window {window}: both sides must be multiples of 256 (the contests' tiles)")
    _, scorer = CONTEST_PROTOCOLS[protocol]
    lpips_model = suite.lpips_model if suite.wants("lpips") else None
    metrics = tuple(m for m in ("psnr", "ssim", "lpips") if m in suite.metrics)
    times = list(info.times)
    tiles: list[list[dict]] = [[] for _ in times]
    seconds = [0.0] * len(times)
    device = getattr(decoder, "device", None)
    band, band_top = None, -1
    for top, left in windows_of(info.height, info.width, window):
        height, width = min(rows_step, info.height - top), min(cols_step, info.width - left)
        if top != band_top:  # the mask of a band of rows, read once for every window of the band
            band, band_top = source.read_mask(top, top + height), top
        if band[:, left:left + width].any():
            truth = source.read_window((top, left, height, width))
            mask = None if truth.mask is None else truth.mask.cpu()
            ys, xs = torch.meshgrid(torch.arange(top, top + height), torch.arange(left, left + width), indexing="ij")
            ys, xs = ys.reshape(-1), xs.reshape(-1)
            for k, hour in enumerate(times):
                sync(device)
                start = time.perf_counter()
                pred = torch.as_tensor(np.asarray(decoder.query(ys, xs, torch.full((ys.numel(),), hour))))
                sync(device)
                seconds[k] += time.perf_counter() - start
                for tile in scorer(pred.float().cpu().reshape(height, width, 3), truth.frames[k].cpu(), mask,
                                   lpips_model, metrics):
                    tiles[k].append({**tile, "top": tile["top"] + top, "left": tile["left"] + left})
        if progress is not None:
            progress()
    groups = time_groups(desc, times, switch_hours)
    rows = [{"group": group, "time": hour, "name": info.names[k], **tile_means(tiles[k]), "decode_s": seconds[k]}
            for k, (group, hour) in enumerate(zip(groups, times))]
    order = {name: i for i, name in enumerate(GROUP_ORDER)}
    rows.sort(key=lambda r: (order.get(r["group"], len(order)), r["time"]))
    report = EvalReport(rows=rows, lpips_note="" if suite.wants("lpips") or "lpips" not in suite.metrics
                        else suite.lpips_unavailable_reason)
    names = [g for g in GROUP_ORDER if any(r["group"] == g for r in rows)]
    if any(r["group"] in ("between_day", "between_night") for r in rows):
        names.append("between")
    for name in names:
        group_rows = _rows_of(rows, name)
        report.means[name] = {**pooled_means([r for r in group_rows if "tiles" in r]),
                              "decode_s_sum": math.fsum(r["decode_s"] for r in group_rows)}
    return report
