"""``airender bench --runtimes torch,numpy,onnx``: whole-frame decode and random access of the same fields
in every runtime that ships them, side by side.

torch: airender.render.FrameDecoder and query_pixels (as ``bench`` part (c)); numpy: the field's pack
(fp32 and int8) in airender.runtime; onnx: the ONNX export (frame and prepare graphs) in onnxruntime's
CPU provider. Each decodes ``repeats`` frames at fractional hours after ``warmup`` frames; the
time-invariant cache of the resolution is built once, first, and timed on its own ("cache"). Random
access: 65536 texels at random hours (numpy: ``FieldModel.query``, torch: ``query_pixels``); onnx has
no per-texel hours (a graph run decodes one hour), so its figure is 65536 random texels at one hour
through the prepare and frame graphs. The ratio is each decode time over the ``quality`` preset's in
the same runtime (an untrained quality field at the data's size is added when none is timed:
decode time does not depend on the weights).
"""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from airender.bench.decode import time_decode, time_runtime
from airender.errors import InputError
from airender.export.onnx_export import write_onnx
from airender.export.pack import pack_bytes
from airender.runtime import FieldModel, ops
from airender.runtime.onnx_decoder import OnnxDecoder
from airender.runtime.packfile import parse_pack
from airender.sizes import model_bytes
from airender.timing import QUERIES, call_times_ms, queries_per_s, random_texels

RUNTIMES = ("torch", "numpy", "onnx")
REFERENCE = "quality"


@dataclass
class RuntimeTiming:
    """One field in one runtime: decode ms (median), cache ms, queries per second, bytes it reads."""

    label: str
    runtime: str
    decode_ms: float
    cache_ms: float
    queries_per_s: float
    nbytes: int
    decode_ms_all: list[float]


def parse_runtimes(text: str) -> list[str]:
    """``--runtimes`` (comma-separated, any of RUNTIMES) -> the list, in the given order; InputError otherwise."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNTIMES]
    if not names or unknown:
        raise InputError(f"--runtimes {text}: choose from {', '.join(RUNTIMES)} (comma-separated)")
    return list(dict.fromkeys(names))


def time_numpy(field, label: str, quant: str, width: int, height: int, repeats: int, warmup: int = 2) -> RuntimeTiming:
    """The pack of ``field`` at ``quant`` decoded by airender.runtime."""
    blob = pack_bytes(field, quant)
    contents = parse_pack(blob, f"{label}.airpack")
    model = FieldModel(contents.header, contents.arrays, contents.nbytes)
    cache_ms, times, qps = time_runtime(model, width, height, repeats, warmup)
    return RuntimeTiming(label, f"numpy {quant}", statistics.median(times), cache_ms, qps, len(blob), times)


def time_onnx(field, label: str, width: int, height: int, repeats: int, warmup: int = 2) -> RuntimeTiming:
    """The ONNX export of ``field`` in onnxruntime (CPU provider)."""
    try:
        import onnxruntime  # noqa: F401  (an optional dependency: say so before exporting)
    except ImportError:
        raise InputError("--runtimes onnx needs onnxruntime and onnx (pip install 'airender[export]')") from None
    with tempfile.TemporaryDirectory(prefix="airender-bench-") as folder:
        frame_path, prepare_path = write_onnx(field, Path(folder) / f"{label}.onnx")
        nbytes = frame_path.stat().st_size + prepare_path.stat().st_size
        decoder = OnnxDecoder(frame_path)
        start = time.perf_counter()
        decoder.caches(height, width)
        cache_ms = (time.perf_counter() - start) * 1e3
        times = call_times_ms(lambda h: decoder.decode(h, width=width, height=height), repeats, warmup)
        y, x, _ = random_texels(decoder.height, decoder.width)
        uv = ops.pixel_centres(y * decoder.width + x, decoder.height, decoder.width)

        def query(hour: float) -> np.ndarray:
            values = dict(zip(decoder.outputs, decoder.prepare_graph.run(decoder.outputs, {"uv": uv})))
            values["uv"] = uv
            inputs = {name: values[name] for name in decoder.inputs if name != "hour"}
            return decoder.frame.run(["rgb"], {**inputs, "hour": np.array([hour], np.float32)})[0]

        qps = queries_per_s(lambda: query(13.25), QUERIES, warm=lambda: query(7.5))
    return RuntimeTiming(label, "onnxruntime", statistics.median(times), cache_ms, qps, nbytes, times)


def bench_runtimes(fields: list[tuple[str, object]], runtimes: list[str], width: int, height: int, repeats: int,
                   torch_timings: dict[str, object], reference_field=None) -> list[RuntimeTiming]:
    """Time every field of ``fields`` ((label, field) on the CPU) in every runtime of ``runtimes``.

    ``torch_timings``: {label: airender.bench.DecodeTiming} of the fields already timed in torch (bench part
    (c)); ``reference_field``: a ``quality`` field to add (labelled "quality") when no label is "quality"."""
    if reference_field is not None and all(label != REFERENCE for label, _ in fields):
        fields = list(fields) + [(REFERENCE, reference_field)]
    rows = []
    for label, field in fields:
        for runtime in runtimes:
            if runtime == "torch":
                timing = torch_timings.get(label) or time_decode(field, label, width, height, repeats)
                rows.append(RuntimeTiming(label, "torch", timing.decode_ms_median, timing.prepare_ms,
                                          timing.queries_per_s, model_bytes(field), timing.decode_ms_all))
            elif runtime == "numpy":
                rows += [time_numpy(field, label, quant, width, height, repeats) for quant in ("fp32", "int8")]
            else:
                rows.append(time_onnx(field, label, width, height, repeats))
    return rows


def print_runtimes(rows: list[RuntimeTiming], width: int, height: int, repeats: int, threads: str) -> None:
    """The table of :func:`bench_runtimes` (decode ms, x the quality preset in the same runtime, cache ms,
    queries/s, bytes read)."""
    reference = {r.runtime: r.decode_ms for r in rows if r.label == REFERENCE}
    print(f"(d) runtimes, whole-frame decode {width}x{height} ({threads}; median of {repeats} after warm-up; "
          f"time-invariant cache built once, first) and random access ({QUERIES} texels):")
    print(f"    {'model':20s} {'runtime':12s} {'decode ms':>10s} {'x ' + REFERENCE:>10s} {'cache ms':>9s} "
          f"{'queries/s':>10s} {'bytes':>10s}")
    for r in rows:
        ratio = f"{r.decode_ms / reference[r.runtime]:10.3f}" if r.runtime in reference else f"{'-':>10s}"
        one_hour = "*" if r.runtime == "onnxruntime" else " "
        print(f"    {r.label:20s} {r.runtime:12s} {r.decode_ms:10.1f} {ratio} {r.cache_ms:9.0f} "
              f"{r.queries_per_s / 1e6:9.3f}M{one_hour} {r.nbytes:10,d}")
    if any(r.runtime == "onnxruntime" for r in rows):
        print("    * onnxruntime: random texels at one hour (a graph run decodes one hour); the others: random hours")
