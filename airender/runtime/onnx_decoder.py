"""Decode frames from the ONNX export with onnxruntime (numpy and onnxruntime only; no torch).

    decoder = OnnxDecoder("scene.onnx")        # finds scene.prepare.onnx beside it
    frame = decoder.decode(18.5)               # float32 [H, W, 3] display values

The prepare graph runs once per resolution (in chunks) and its outputs are kept; each frame then runs
only the frame graph. The graphs' inputs and outputs are described in airender.export.onnx_export.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import ops
from .between import BetweenHours

CHUNK_PIXELS = 1 << 18


class OnnxDecoder:
    """Whole frames from ``path`` (the frame graph) and its prepare graph, on onnxruntime's CPU provider
    (``providers`` to choose others; ``threads`` > 0 fixes the intra-op thread count)."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int = 0):
        import onnxruntime as ort

        path = Path(path)
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        providers = providers or ["CPUExecutionProvider"]
        self.frame = ort.InferenceSession(str(path), options, providers=providers)
        meta = self.frame.get_modelmeta().custom_metadata_map.get("airender")
        if meta is None:
            raise ValueError(f"{path}: not an airender ONNX export (no 'airender' metadata)")
        self.meta = json.loads(meta)
        self.prepare_graph = ort.InferenceSession(str(path.with_name(self.meta["prepare"])), options,
                                                  providers=providers)
        self.height, self.width = int(self.meta["height"]), int(self.meta["width"])
        self.is_hdr = bool(self.meta["is_hdr"])
        self.inputs = list(self.meta["frame_inputs"])
        self.outputs = list(self.meta["prepare_outputs"])
        self._caches: dict[tuple[int, int], list[dict[str, np.ndarray]]] = {}
        self._between = None  # the frames between the hours through the run's network (NAME.between.onnx)
        if self.meta.get("between"):
            graph = ort.InferenceSession(str(path.with_name(self.meta["between"]["graph"])), options,
                                         providers=providers)
            self._between = BetweenHours(_OwnFrames(self), self.meta["between"], _GraphWeights(graph))

    def caches(self, height: int, width: int) -> list[dict[str, np.ndarray]]:
        """Per chunk of pixels: the frame graph's per-pixel inputs (first, baseline, the light terms' values,
        uv as needed)."""
        key = (height, width)
        if key not in self._caches:
            chunks = []
            for start in range(0, height * width, CHUNK_PIXELS):
                pix = np.arange(start, min(start + CHUNK_PIXELS, height * width), dtype=np.int64)
                uv = ops.pixel_centres(pix, height, width)
                values = dict(zip(self.outputs, self.prepare_graph.run(self.outputs, {"uv": uv})))
                values["uv"] = uv
                chunks.append({name: values[name] for name in self.inputs if name != "hour"})
            self._caches = {key: chunks}
        return self._caches[key]

    def decode(self, t: float, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Frame at hour ``t`` as float32 [H, W, 3] display values (native size by default); with the run's
        network between the hours, its daylight frames between them as ``airender render`` gives them."""
        if self._between is not None:
            return self._between.decode(t, width, height)
        return self.decode_own(t, width, height)

    def decode_own(self, t: float, width: int | None = None, height: int | None = None) -> np.ndarray:
        """The field's own frame at hour ``t`` (no network between the hours), float32 [H, W, 3]."""
        height, width = (self.height, self.width) if width is None else (int(height), int(width))
        hour = np.array([t], dtype=np.float32)
        parts = [self.frame.run(["rgb"], {**chunk, "hour": hour})[0] for chunk in self.caches(height, width)]
        return np.concatenate(parts).reshape(height, width, 3)

    def decode_sources(self, t: float, width: int | None = None, height: int | None = None) -> np.ndarray:
        """Every light source at hour ``t``, float32 [H, W, S, 3] display values in the order of
        ``meta["sources"]`` (an export of a field trained with --components; ValueError otherwise)."""
        if not self.meta.get("sources"):
            raise ValueError("this export predicts no light sources (trained without --components)")
        height, width = (self.height, self.width) if width is None else (int(height), int(width))
        hour = np.array([t], dtype=np.float32)
        parts = [self.frame.run(["sources"], {**chunk, "hour": hour})[0] for chunk in self.caches(height, width)]
        return np.concatenate(parts).reshape(height, width, -1, 3)


class _OwnFrames:
    """An OnnxDecoder's own frames, as BetweenHours reads them."""

    def __init__(self, decoder: OnnxDecoder):
        self.decoder, self.height, self.width, self.is_hdr = decoder, decoder.height, decoder.width, decoder.is_hdr

    def decode(self, t: float, width: int | None = None, height: int | None = None) -> np.ndarray:
        return self.decoder.decode_own(t, width, height)


class _GraphWeights:
    """The network between the hours as an onnxruntime session: four linear frames [3, H, W] and s -> [H, W]."""

    def __init__(self, session):
        self.session = session

    def __call__(self, earlier, before, after, later, s: float) -> np.ndarray:
        feed = {name: frame[None].astype(np.float32) for name, frame in
                zip(("earlier", "before", "after", "later"), (earlier, before, after, later))}
        feed["s"] = np.full((1, 1, 1, 1), s, np.float32)
        return self.session.run(["weight"], feed)[0][0, 0]
