"""Timing: the one warm-up-then-measure loop every benchmark uses, and device synchronisation.

A decode is timed as the benches report it: ``warmup`` calls first (caches, allocator, kernels), then
``repeats`` calls at fractional hours spread over the day; on a CUDA device each call is timed with CUDA
events (the GPU's own clock, no host overhead), elsewhere with ``time.perf_counter``. Reports take the
median of the list.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

QUERIES = 1 << 16  # random texels a random-access timing queries


def sync(device: torch.device | str | None) -> None:
    """Wait for the work queued on a CUDA ``device`` (nothing to wait for elsewhere)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def bench_hours(count: int) -> list[float]:
    """``count`` hours spread over the day (3.7 h apart, modulo 24): each timed call decodes another time."""
    return [(3.7 * i) % 24.0 for i in range(count)]


def call_times_ms(call: Callable[[float], object], repeats: int, warmup: int = 2,
                  device: torch.device | str | None = None) -> list[float]:
    """Milliseconds of ``repeats`` calls ``call(hour)`` after ``warmup`` untimed ones (CUDA events on a CUDA
    ``device``, else wall time)."""
    cuda = device is not None and torch.device(device).type == "cuda"
    times = []
    for i, hour in enumerate(bench_hours(warmup + repeats)):
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            call(hour)
            end.record()
            torch.cuda.synchronize(device)
            elapsed = begin.elapsed_time(end)
        else:
            start = time.perf_counter()
            call(hour)
            elapsed = (time.perf_counter() - start) * 1e3
        if i >= warmup:
            times.append(elapsed)
    return times


def timed_ms(call: Callable[[], object], device: torch.device | str | None = None) -> float:
    """Wall milliseconds of one ``call()``, synchronising a CUDA ``device`` before and after."""
    sync(device)
    start = time.perf_counter()
    call()
    sync(device)
    return (time.perf_counter() - start) * 1e3


def random_texels(height: int, width: int, count: int = QUERIES, seed: int = 0):
    """(y [count], x [count], t [count] float32 hours in [0, 24)) random texels of a height x width frame."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, height, count), rng.integers(0, width, count),
            (rng.random(count) * 24.0).astype(np.float32))


def queries_per_s(query: Callable[[], object], count: int, warm: Callable[[], object] | None = None,
                  device: torch.device | str | None = None) -> float:
    """``count`` / seconds of one ``query()`` call (after ``warm()``, when given, to warm it up)."""
    if warm is not None:
        warm()
    return count / (timed_ms(query, device) / 1e3)
