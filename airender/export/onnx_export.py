"""Export a trained field as two ONNX graphs for onnxruntime (or any ONNX runtime).

``NAME.onnx`` is the per-frame decoder: the cached per-pixel values and the hour in, display RGB out::

    inputs   first [N, hidden] float32   the first layer's pre-activation from the time-invariant inputs
             hour [1] float32            hour of day (fractional, periodic)
             baseline [N, C] float32     (residual fields) the residual baseline, training space (C = 3, or
                                         3 S for a field of S light sources)
             lamp [N, 3] float32         (light switch) the lamp image, linear light
             sun [N, 38] float32         (sun term) the term's time-free values (SunTerm.time_free)
             uv [N, 2] float32           (x, y, t hash grids) pixel centres in (0, 1)
    outputs  rgb [N, 3] float32          sRGB in [0, 1] (LDR) or linear radiance (HDR)
             sources [N, 3 S] float32    (--components) each light source, display values

Every light term of the field is one input, named after the term, holding its time-free values
(airender.nn.terms). ``NAME.prepare.onnx`` computes those per-pixel values once per resolution: uv [N, 2]
-> first, and baseline and the terms' values where the frame graph takes them (the baseline CNN's feature
map is baked in as a constant and read bilinearly). Both graphs carry the metadata key ``airender`` (JSON:
size, times, LDR/HDR, the input and output names, the light sources, the prepare graph's file name).
airender.runtime.onnx_decoder.OnnxDecoder runs them.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from airender import __version__
from airender.errors import InputError
from airender.export.pack import model_spec
from airender.fileio import atomic_path
from airender.hours import HOURS_PER_DAY
from airender.nn.baseline_encoder import BaselineEncoder
from airender.nn.hashgrid import HashGridEncoding
from airender.nn.sources import SourceGate

OPSET = 18  # BitwiseXor; onnxruntime 1.16+ runs it
_SYMBOLICS_REGISTERED = False


def _register_symbolics() -> None:
    """The TorchScript exporter has no symbolic for ``aten::bitwise_xor``; ONNX has BitwiseXor (opset 18)."""
    global _SYMBOLICS_REGISTERED
    if not _SYMBOLICS_REGISTERED:
        torch.onnx.register_custom_op_symbolic("aten::bitwise_xor", lambda g, a, b: g.op("BitwiseXor", a, b), OPSET)
        _SYMBOLICS_REGISTERED = True


def prepare_path(path: str | Path) -> Path:
    """The prepare graph beside the frame graph ``path``: ``scene.onnx`` -> ``scene.prepare.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prepare{path.suffix or '.onnx'}")


class OnnxHashGrid(nn.Module):
    """HashGridEncoding.forward written with ONNX-exportable ops (the same function): coords [N, D] ->
    features [N, L * F]."""

    def __init__(self, grid: HashGridEncoding):
        super().__init__()
        self.grid = grid
        strides = torch.ones_like(grid.vertices)
        strides[:, 1] = grid.vertices[:, 0]
        if grid.dims == 3:
            strides[:, 2] = grid.vertices[:, 0] * grid.vertices[:, 1]
        self.register_buffer("strides", strides[None, :, None, :], persistent=False)
        self.register_buffer("upper", grid.vertices[None, :, None, :2] - 1, persistent=False)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        g = self.grid
        pos = coords[:, None, :] * g.scale  # [N, L, D]
        if g.dims == 3:
            pos = torch.cat([pos[..., :2], torch.remainder(pos[..., 2:], g.scale[:, 2:])], dim=-1)
        base = torch.floor(pos)
        frac = pos - base
        idx = base.long()[:, :, None, :] + g.corners  # [N, L, C, D]
        spatial = torch.minimum(torch.clamp(idx[..., :2], min=0), self.upper)
        if g.dims == 3:
            idx = torch.cat([spatial, torch.remainder(idx[..., 2:], g.vertices[None, :, None, 2:])], dim=-1)
        else:
            idx = spatial
        dense_index = (idx * self.strides).sum(-1)
        hashed = idx * g.primes
        hashed_index = hashed[..., 0]
        for d in range(1, g.dims):
            hashed_index = torch.bitwise_xor(hashed_index, hashed[..., d])
        hashed_index = torch.remainder(hashed_index, g.table_size)  # non-negative: same as & (size - 1)
        rows = torch.where(g.dense[None, :, None], dense_index, hashed_index) + g.offsets[None, :, None]
        w = torch.where(g.corners.bool()[None, None], frac[:, :, None, :], 1.0 - frac[:, :, None, :]).prod(dim=-1)
        values = g.table.index_select(0, rows.reshape(-1)).reshape(-1, g.num_levels, g.corners.shape[0], g.features)
        return (values * w[..., None]).sum(dim=2).reshape(-1, g.out_dim)


class OnnxTransform:
    """A training-space transform (airender.data.sequence.ValueTransform) written with ops every ONNX
    runtime has (exp - 1 and log(1 + x) for expm1 and log1p)."""

    def __init__(self, name: str):
        self.name = name

    def to_linear(self, train: torch.Tensor) -> torch.Tensor:
        if self.name == "identity":
            return torch.where(train <= 0.04045, train / 12.92, ((train.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)
        return torch.exp(train) - 1.0 if self.name == "log1p" else train

    def from_linear(self, linear: torch.Tensor) -> torch.Tensor:
        if self.name == "identity":
            return torch.where(linear <= 0.0031308, 12.92 * linear,
                               1.055 * linear.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055)
        return torch.log(1.0 + linear.clamp_min(-0.999)) if self.name == "log1p" else linear

    def to_display(self, train: torch.Tensor) -> torch.Tensor:
        if self.name == "log1p":
            return (torch.exp(train) - 1.0).clamp_min(0.0)
        if self.name == "linear":
            return train.clamp_min(0.0)
        return train.clamp(0.0, 1.0)


def _neighbouring_knots(knots: torch.Tensor, hour: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """airender.hours.neighbouring_hours without searchsorted: (before, after, weight) for hours [N]."""
    wrapped = torch.remainder(hour, HOURS_PER_DAY)
    count = knots.numel()
    after = (knots[None, :] <= wrapped[:, None]).long().sum(dim=1)  # searchsorted(right=True)
    before = torch.remainder(after - 1, count)
    after = torch.remainder(after, count)
    k0, k1 = knots.index_select(0, before), knots.index_select(0, after)
    span = torch.remainder(k1 - k0, HOURS_PER_DAY)
    span = torch.where(span == 0, torch.full_like(span, HOURS_PER_DAY), span)
    return before, after, torch.remainder(wrapped - k0, HOURS_PER_DAY) / span


class OnnxSourceGate(nn.Module):
    """airender.nn.sources.SourceGate written with ONNX-exportable ops (the same function)."""

    def __init__(self, gate: nn.Module):
        super().__init__()
        self.register_buffer("knots", gate.knots.clone(), persistent=False)
        self.register_buffer("on", gate.on.clone(), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        before, after, weight = _neighbouring_knots(self.knots, t.reshape(-1))
        on = self.on.to(torch.float32)
        lit = torch.maximum(on.index_select(1, before), on.index_select(1, after) * (weight > 0).to(torch.float32)[None])
        return lit.transpose(0, 1)


def onnx_ready(field: nn.Module) -> nn.Module:
    """A copy of ``field`` whose parts export to ONNX: hash grids as :class:`OnnxHashGrid`, the head's
    transform as :class:`OnnxTransform` and a source gate as :class:`OnnxSourceGate` (the same functions)."""
    field = copy.deepcopy(field).cpu().eval()
    for name, module in list(field.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, HashGridEncoding):
                setattr(module, child_name, OnnxHashGrid(child))
            elif isinstance(child, SourceGate):
                setattr(module, child_name, OnnxSourceGate(child))
    field.head.transform = OnnxTransform(field.transform.name)
    return field


class PrepareGraph(nn.Module):
    """uv [N, 2] -> (first [N, hidden], [baseline [N, C]], [one [N, C_term] per light term]): TODField.prepare
    with the baseline CNN's feature map baked in and the frames read bilinearly at the pixel centres."""

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field
        if field.encoder is not None:
            with torch.no_grad():
                self.register_buffer("feature_map", field.encoder_features().detach().clone(), persistent=False)
        else:
            self.feature_map = None
        self.output_names = ["first"] + (["baseline"] if field.residual_name else []) + list(field.term_names)

    def forward(self, uv: torch.Tensor):
        field = self.field
        parts = []
        if self.feature_map is not None:
            parts.append(BaselineEncoder.sample(self.feature_map, uv))
        if field.use_xy:
            parts.append(field.xy_encoding(uv))
        static = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        outputs = [field.mlp.first_layer_partial(static, 0, with_bias=True)]
        if field.residual_name:
            outputs.append(field.residual_at(uv))
        outputs += [term.time_free(static, uv) for term in field.terms]
        return tuple(outputs)


class FrameGraph(nn.Module):
    """(first [N, hidden], hour [1], [baseline], [per light term], [uv]) -> display RGB [N, 3] (and, for a
    field of light sources, every source [N, 3 S]): TODField.decode_at plus the display transform, with
    time blending written without data-dependent branches."""

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field
        knots = sorted(field.desc.train_times or field.desc.times)
        self.register_buffer("knots", torch.tensor(knots, dtype=torch.float32), persistent=False)
        self.input_names = ["first", "hour"] + (["baseline"] if field.residual_name else []) + \
            list(field.term_names) + (["uv"] if field.xyt_grid is not None else [])
        self.output_names = ["rgb"] + (["sources"] if field.sources else [])

    def _raw(self, first: torch.Tensor, uv: torch.Tensor | None, hour: torch.Tensor) -> torch.Tensor:
        """MLP output [N, outputs] at one hour [1]."""
        field = self.field
        code = field.time_features(hour)  # [1, D]
        dynamic = []
        if field.film is None:
            dynamic.append(code)
        if field.xyt_grid is not None:
            phase = torch.remainder(hour, HOURS_PER_DAY) / HOURS_PER_DAY
            coords = torch.cat([uv, uv[:, :1] * 0.0 + phase], dim=1)
            dynamic.append(field.xyt_grid(coords))
        if dynamic:  # [1, D] time code (broadcast over the pixels) and / or [N, D'] grid features
            start = field.static_dim
            for part in dynamic:
                first = first + field.mlp.first_layer_partial(part, start, with_bias=False)
                start += part.shape[1]
        film = field.film(code) if field.film is not None else None
        return field.mlp._decode_from_first(first, film)

    def forward(self, first: torch.Tensor, hour: torch.Tensor, *extras: torch.Tensor):
        field = self.field
        named = dict(zip(self.input_names[2:], extras))
        uv = named.get("uv")
        if field.cfg.time_blend:
            before, after, w = _neighbouring_knots(self.knots, hour)
            k0, k1 = self.knots.index_select(0, before), self.knots.index_select(0, after)
            raw0 = self._raw(first, uv, k0)
            raw = raw0 + w[:, None] * (self._raw(first, uv, k1) - raw0)
        else:
            raw = self._raw(first, uv, hour)
        pred = raw + named["baseline"] if field.residual_name else raw
        lights = [(term, term.light(named[term.name], hour)) for term in field.terms]
        transform = field.head.transform
        if not field.sources:
            return transform.to_display(field.head.compose(pred, hour, lights))
        out, gated = field.head.split(pred, hour, lights)
        return transform.to_display(out), transform.to_display(gated.clamp_min(0.0)).reshape(gated.shape[0], -1)


def between_path(path: str | Path) -> Path:
    """The graph of the network between the hours beside the frame graph: ``scene.onnx`` -> ``scene.between.onnx``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.between{path.suffix or '.onnx'}")


def _metadata(field: nn.Module, frame: FrameGraph, prepare: PrepareGraph, prepare_name: str,
              between: dict | None = None) -> str:
    desc = field.desc
    return json.dumps({"format": "airender-onnx", "format_version": 1, "airender_version": __version__,
                       "height": desc.height, "width": desc.width, "is_hdr": desc.is_hdr,
                       "transform": field.transform.name, "times": desc.times, "hidden": field.mlp.hidden,
                       "frame_inputs": frame.input_names, "frame_outputs": frame.output_names,
                       "prepare_outputs": prepare.output_names, "sources": list(field.sources),
                       "prepare": prepare_name, "between": between})


def _export(module: nn.Module, args: tuple, input_names: list[str], output_names: list[str],
            dynamic: dict[str, dict[int, str]], metadata: str) -> bytes:
    import onnx

    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, deprecated, still exact
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks are constant per graph (hour [1])
        torch.onnx.export(module, args, buffer, dynamo=False, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = "airender", metadata
    onnx.checker.check_model(model)
    return model.SerializeToString()


def between_graph(net: nn.Module, height: int, width: int, metadata: str) -> bytes:
    """The network between the hours (a BlendWeightNet) as a graph: (earlier, before, after, later) linear frames
    [1, 3, H, W] and s [1, 1, 1, 1] -> the weight of the later hour [1, 1, H, W] (at the training size)."""
    frames = tuple(torch.rand(1, 3, height, width) for _ in range(4))
    names = ["earlier", "before", "after", "later", "s"]
    return _export(net.cpu().eval(), (*frames, torch.full((1, 1, 1, 1), 0.5)), names, ["weight"], {}, metadata)


def onnx_graphs(field: nn.Module, prepare_name: str = "model.prepare.onnx", between: tuple | None = None,
                between_name: str = "model.between.onnx") -> tuple[bytes, ...]:
    """The serialised (frame graph, prepare graph[, network between the hours]) of ``field`` (a TODField in eval
    mode); ``between``: (the run's BlendWeightNet, its light-switch hours) or None."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise InputError("--format onnx needs the onnx package (pip install 'airender[export]')") from None
    model_spec(field, "fp32")  # refuses fields with parts the exporters do not know
    _register_symbolics()
    field = onnx_ready(field)
    frame, prepare = FrameGraph(field).eval(), PrepareGraph(field).eval()
    between_meta = None if between is None else {
        "graph": between_name, "hours": sorted(float(h) for h in field.desc.train_times or field.desc.times),
        "switch_hours": [float(h) for h in between[1]]}
    metadata = _metadata(field, frame, prepare, prepare_name, between_meta)
    n = 7
    uv = torch.rand(n, 2)
    with torch.no_grad():
        cached = prepare(uv)
    named = dict(zip(prepare.output_names, cached))
    frame_args = [named["first"], torch.tensor([13.5])] + [named[k] if k != "uv" else uv for k in frame.input_names[2:]]
    dyn_frame = {k: {0: "pixels"} for k in frame.input_names if k != "hour"} | {"rgb": {0: "pixels"}}
    dyn_frame |= {k: {0: "pixels"} for k in frame.output_names}
    frame_bytes = _export(frame, tuple(frame_args), frame.input_names, frame.output_names, dyn_frame, metadata)
    dyn_prepare = {k: {0: "pixels"} for k in ["uv"] + prepare.output_names}
    prepare_bytes = _export(prepare, (uv,), ["uv"], prepare.output_names, dyn_prepare, metadata)
    if between is None:
        return frame_bytes, prepare_bytes
    return frame_bytes, prepare_bytes, between_graph(between[0], field.desc.height, field.desc.width, metadata)


def write_onnx(field: nn.Module, path: str | Path, between: tuple | None = None) -> tuple[Path, ...]:
    """Write the frame graph to ``path``, the prepare graph beside it (``NAME.prepare.onnx``) and, with
    ``between`` (see :func:`onnx_graphs`), the network between the hours (``NAME.between.onnx``), each
    atomically; returns the paths written."""
    path = Path(path)
    paths = (path, prepare_path(path)) + ((between_path(path),) if between is not None else ())
    blobs = onnx_graphs(field, paths[1].name, between, between_path(path).name)
    with contextlib.ExitStack() as stack:
        temps = [stack.enter_context(atomic_path(p)) for p in paths]
        for tmp, blob in zip(temps, blobs):
            tmp.write_bytes(blob)
    return paths
