"""Whole-frame decode and random-access timings of one model: a torch field, or a pack in the numpy runtime."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from airender.models.packed import load_pack
from airender.render import FrameDecoder, query_pixels
from airender.sizes import model_bytes
from airender.timing import QUERIES, call_times_ms, queries_per_s, random_texels, sync


@dataclass
class DecodeTiming:
    """One model at one resolution: cache ms (built once, first), decode ms (median and all), random-access
    queries per second, and the bytes its decoder reads."""

    label: str
    device: str
    width: int
    height: int
    prepare_ms: float
    decode_ms_median: float
    decode_ms_all: list[float]
    queries_per_s: float
    model_bytes: int


def time_decode(field: torch.nn.Module, label: str, width: int, height: int, repeats: int, warmup: int = 2,
                half: bool = False, compile_decode: bool = False) -> DecodeTiming:
    """Median whole-frame decode time of a torch field (the time-invariant cache is built once, outside the
    timing; CUDA events on a GPU) and random access through :func:`airender.render.query_pixels`."""
    device = next(field.parameters()).device
    sync(device)
    start = time.perf_counter()
    decoder = FrameDecoder(field, height, width, half=half, compile_decode=compile_decode)
    sync(device)
    prepare_ms = (time.perf_counter() - start) * 1e3
    times_ms = call_times_ms(decoder.decode, repeats, warmup, device)
    del decoder
    y, x, t = (torch.from_numpy(v) for v in random_texels(field.desc.height, field.desc.width))
    qps = queries_per_s(lambda: query_pixels(field, y, x, t), QUERIES,
                        warm=lambda: query_pixels(field, y[:1024], x[:1024], t[:1024]), device=device)
    return DecodeTiming(label, str(device), width, height, prepare_ms, statistics.median(times_ms), times_ms, qps,
                        model_bytes(field))


def time_pack(path: str | Path, label: str, width: int, height: int, repeats: int, warmup: int = 2) -> DecodeTiming:
    """The numpy runtime's whole-frame decode of a pack at ``width`` x ``height`` (the resolution's cache built
    once, first, and timed on its own) and random access (QUERIES texels at random hours); the device is
    ``numpy <quant>`` and the bytes are the pack file's."""
    model = load_pack(path).field
    prepare_ms, times_ms, qps = time_runtime(model.runtime, width, height, repeats, warmup)
    return DecodeTiming(label, f"numpy {model.quant}", width, height, prepare_ms, statistics.median(times_ms),
                        times_ms, qps, model.stored_bytes())


def time_runtime(runtime, width: int, height: int, repeats: int, warmup: int = 2) -> tuple[float, list[float], float]:
    """(cache ms, decode ms of each timed frame, random-access queries per second) of a numpy-runtime model
    (:class:`airender.runtime.FieldModel`): the resolution's cache built once and timed on its own, then
    ``repeats`` whole frames after ``warmup``, then QUERIES texels at random hours."""
    start = time.perf_counter()
    runtime.caches(height, width)
    cache_ms = (time.perf_counter() - start) * 1e3
    times_ms = call_times_ms(lambda hour: runtime.decode(hour, width=width, height=height), repeats, warmup)
    y, x, t = random_texels(runtime.height, runtime.width)
    qps = queries_per_s(lambda: runtime.query(y, x, t), QUERIES, warm=lambda: runtime.query(y[:1024], x[:1024], t[:1024]))
    return cache_ms, times_ms, qps
