"""Write a trained field as one self-describing ``.airpack`` file (layout: airender.runtime.packfile).

The pack holds every array the decoder reads (hash-grid tables, MLP / FiLM / lamp-head / CNN weights,
time codes, Fourier frequencies, the baseline frame when the field uses one) and a header describing
the model (airender.runtime.model), the field config and the data. Precision (``quant``):

    fp32  every array as float32 (the baseline frame as 8 bits when its source is 8-bit: exact)
    fp16  weights, biases, tables and time codes as float16 (lossless for fields trained with
          ``store_dtype float16``)
    int8  symmetric int8: hash-grid tables with one scale per level, weights (Linear and Conv) with one
          scale per output channel; biases and time codes float16

Fourier frequencies and the baseline frame stay float32 (or exact 8 bits) at every precision.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from airender import __version__
from airender.errors import InputError
from airender.fileio import atomic_path
from airender.nn.basis import BasisMLP
from airender.nn.encodings import FourierTimeEncoding, FourierXYEncoding, PeriodicSplineTimeCode
from airender.nn.hashgrid import HashGridEncoding
from airender.runtime.packfile import StoredArray, encode_pack, quantise_int8

QUANTS = ("fp32", "fp16", "int8")


class UnsupportedModel(InputError):
    """A field with a part the exported decoders do not implement."""


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


class _Collector:
    """Gathers the arrays of a pack by kind and stores each at the requested precision (an
    :class:`airender.nn.terms.ArrayWriter`). ``stored`` holds every module tensor written, so that the
    exporter can tell whether any of the field's state was left out."""

    def __init__(self, quant: str):
        self.quant = quant
        self.arrays: dict[str, StoredArray] = {}
        self.stored: set[int] = set()

    def _seen(self, tensor) -> np.ndarray:
        if isinstance(tensor, torch.Tensor):
            self.stored.add(id(tensor))
            return _numpy(tensor)
        return np.asarray(tensor)

    def header(self, tensor: torch.Tensor) -> list:
        """A small tensor written into the header itself, as nested lists."""
        self.stored.add(id(tensor))
        return tensor.detach().cpu().tolist()

    def exact(self, name: str, values) -> str:
        """float32 at every precision (frequencies, full-precision frames)."""
        self.arrays[name] = StoredArray(np.asarray(self._seen(values), np.float32))
        return name

    def frame_8bit(self, name: str, values) -> str:
        """A frame holding only multiples of 1/255: uint8, decoded as q / 255 (exact)."""
        self.arrays[name] = StoredArray(np.round(self._seen(values) * 255.0).astype(np.uint8), unorm=255)
        return name

    def small(self, name: str, values) -> str:
        """Biases and time codes: float32 at fp32, else float16."""
        dtype = np.float32 if self.quant == "fp32" else np.float16
        self.arrays[name] = StoredArray(self._seen(values).astype(dtype))
        return name

    def weight(self, name: str, values) -> str:
        """A Linear [out, in] or Conv [out, in, k, k] weight: int8 per output channel at int8."""
        if self.quant == "int8":
            self.arrays[name] = quantise_int8(self._seen(values))
        else:
            self.small(name, values)
        return name

    def table(self, name: str, values, level_rows: list[int]) -> str:
        """A hash-grid table [rows, F]: int8 with one scale per level at int8."""
        if self.quant == "int8":
            self.arrays[name] = quantise_int8(self._seen(values), level_rows)
        else:
            self.small(name, values)
        return name

    def linear(self, prefix: str, layer: nn.Module) -> None:
        """A Linear layer with bias, as ``prefix.weight`` and ``prefix.bias``."""
        if not isinstance(layer, nn.Linear) or layer.bias is None:
            raise UnsupportedModel(f"{prefix}: expected a Linear layer with bias, found {type(layer).__name__}")
        self.weight(f"{prefix}.weight", layer.weight)
        self.small(f"{prefix}.bias", layer.bias)

    def sequential(self, prefix: str, seq: nn.Module, activations: tuple[type, ...]) -> None:
        """A Linear / activation / Linear stack (FiLM generator, lamp head), as ``prefix.0.*``, ``prefix.2.*``."""
        layers = list(seq)
        if len(layers) != 3 or not isinstance(layers[1], activations):
            raise UnsupportedModel(f"{prefix}: expected Linear, {activations[0].__name__}, Linear")
        self.linear(f"{prefix}.0", layers[0])
        self.linear(f"{prefix}.2", layers[2])

    def grid(self, name: str, grid: HashGridEncoding) -> dict:
        """A hash grid's table as ``name``; returns its GRID description."""
        offsets = [int(o) for o in grid.offsets.tolist()]
        self.table(name, grid.table, offsets)
        return {"array": name, "dims": grid.dims, "features": grid.features, "table_size": grid.table_size,
                "resolutions": [int(r) for r in grid.resolutions], "vertices": grid.vertices.tolist(),
                "scale": grid.scale.tolist(), "dense": [bool(d) for d in grid.dense.tolist()], "offsets": offsets}


def _encoder_spec(collector: _Collector, encoder: nn.Module) -> dict:
    layers = []
    modules = list(encoder.net)
    for i, module in enumerate(modules):
        if i % 2 == 1:
            if not isinstance(module, nn.ReLU):
                raise UnsupportedModel(f"encoder.net.{i}: expected ReLU, found {type(module).__name__}")
            continue
        if not isinstance(module, nn.Conv2d) or module.bias is None or module.groups != 1 \
                or module.dilation != (1, 1) or module.padding_mode != "zeros" \
                or len(set(module.stride)) != 1 or len(set(module.padding)) != 1 \
                or module.kernel_size[0] != module.kernel_size[1]:
            raise UnsupportedModel(f"encoder.net.{i}: only square, undilated Conv2d layers with bias are supported")
        collector.weight(f"encoder.net.{i}.weight", module.weight)
        collector.small(f"encoder.net.{i}.bias", module.bias)
        layers.append({"name": f"encoder.net.{i}", "stride": int(module.stride[0]), "padding": int(module.padding[0])})
    if len(modules) % 2 == 0:
        raise UnsupportedModel("encoder.net: expected convolutions with ReLU between them, ending in a convolution")
    return {"layers": layers, "channels": int(encoder.out_dim), "downsample": int(encoder.downsample)}


def model_spec(field: nn.Module, quant: str) -> tuple[dict, dict[str, StoredArray]]:
    """The ``model`` header section and the stored arrays of ``field`` (a TODField) at ``quant``.

    Raises UnsupportedModel when the field holds a part this exporter does not know, so that no pack
    decodes to something other than the field."""
    if quant not in QUANTS:
        raise InputError(f"--quant {quant}: not a precision (choose from {', '.join(QUANTS)})")
    cfg, desc = field.cfg, field.desc
    out = _Collector(quant)
    spec: dict = {"transform": field.transform.name, "encoder": None, "xy": None, "xyt_grid": None,
                  "film": None, "light_switch": None, "blend_knots": None, "baseline": None,
                  "residual": bool(cfg.residual_mode)}
    if field.baseline is not None:
        baseline = _numpy(field.baseline)
        spec["baseline"] = out.frame_8bit("baseline", field.baseline) if desc.baseline_8bit \
            and np.array_equal(np.round(baseline * 255.0) / 255.0, baseline) else out.exact("baseline", field.baseline)
    if field.residual_name == "source_baseline":
        spec["source_baseline"] = out.exact("source_baseline", field.source_baseline)
    sources = field.head.export(out, field.terms)
    if sources is not None:
        spec["sources"] = sources
    if field.encoder is not None:
        spec["encoder"] = _encoder_spec(out, field.encoder)
    if field.use_xy:
        encoding = field.xy_encoding
        if isinstance(encoding, HashGridEncoding):
            spec["xy"] = {"kind": "hashgrid", "grid": out.grid("xy_encoding.table", encoding)}
        elif isinstance(encoding, FourierXYEncoding):
            spec["xy"] = {"kind": "fourier", "include_input": bool(encoding.include_input),
                          "freqs": out.exact("xy_encoding.freqs", encoding.freqs)}
        else:
            raise UnsupportedModel(f"pixel encoding {type(encoding).__name__} is not supported by the exporters")
    if field.xyt_grid is not None:
        spec["xyt_grid"] = out.grid("xyt_grid.table", field.xyt_grid)
    time = field.time_encoding
    if isinstance(time, PeriodicSplineTimeCode):
        spec["time"] = {"kind": "spline", "codes": out.small("time_encoding.codes", time.codes)}
    elif isinstance(time, FourierTimeEncoding):
        spec["time"] = {"kind": "fourier", "freqs": out.exact("time_encoding.freqs", time.freqs)}
    else:
        raise UnsupportedModel(f"time encoding {type(time).__name__} is not supported by the exporters")
    mlp = field.mlp
    if isinstance(mlp, BasisMLP):
        for i, layer in enumerate(mlp.static.hidden_layers):
            out.linear(f"mlp.static.hidden_layers.{i}", layer)
        out.linear("mlp.static.output_layer", mlp.static.output_layer)
        out.linear("mlp.output_layer", mlp.output_layer)
        spec["mlp"] = {"kind": "basis", "layers": len(mlp.static.hidden_layers), "hidden": int(mlp.static.hidden),
                       "rank": int(mlp.rank), "activation": mlp.activation, "w0": float(mlp.w0),
                       "static_dim": int(field.static_dim), "dynamic_dim": int(field.dynamic_dim), "time_in_mlp": False}
        out.sequential("film.net", field.film.net, (nn.SiLU,))
        spec["film"] = {"kind": "basis", "hidden": int(field.film.net[0].out_features)}
    else:
        for i, layer in enumerate(mlp.hidden_layers):
            out.linear(f"mlp.hidden_layers.{i}", layer)
        out.linear("mlp.output_layer", mlp.output_layer)
        spec["mlp"] = {"kind": "mlp", "layers": len(mlp.hidden_layers), "hidden": int(mlp.hidden),
                       "activation": mlp.activation, "w0": float(mlp.w0), "static_dim": int(field.static_dim),
                       "dynamic_dim": int(field.dynamic_dim), "time_in_mlp": field.film is None}
        if field.film is not None:
            out.sequential("film.net", field.film.net, (nn.SiLU,))
            spec["film"] = {"layers": int(field.film.num_layers), "hidden": int(field.film.net[0].out_features)}
    for term in field.terms:
        try:
            key, section = term.export(out)
        except ValueError as exc:
            raise UnsupportedModel(str(exc)) from None
        spec[key] = section
    if cfg.time_blend:
        spec["blend_knots"] = [float(t) for t in sorted(desc.train_times or desc.times)]
    missing = sorted(name for name, value in field.state_dict(keep_vars=True).items() if id(value) not in out.stored)
    if missing:
        raise UnsupportedModel(f"the field holds arrays the exporters do not know: {', '.join(missing)}")
    return spec, out.arrays


def between_spec(net: nn.Module, switch_hours: tuple[float, float], hours: list[float]) -> tuple[dict, dict]:
    """The ``between`` header section and the arrays of the network between the hours ``net`` (a BlendWeightNet)
    at the precision it was stored with (int8 per output channel or float16; airender.between.net.stored_state),
    for a model whose stored hours are ``hours`` and whose lights switch at ``switch_hours``."""
    out = _Collector("int8" if net.store_dtype == "int8" else "fp16")
    for name, value in net.state_dict().items():
        (out.weight if value.ndim > 1 else out.small)(f"between.{name}", value)
    section = {"hours": sorted(float(h) for h in hours), "switch_hours": [float(h) for h in switch_hours],
               "channels": int(net.level1[0].out_channels), "store_dtype": net.store_dtype}
    return section, out.arrays


def pack_bytes(field: nn.Module, quant: str = "fp32", between: tuple | None = None) -> bytes:
    """The bytes of the pack of ``field`` (a TODField in eval mode) at precision ``quant``; ``between``: (the
    run's network between the hours, its light-switch hours), carried in the pack (airender.runtime.between)."""
    spec, arrays = model_spec(field, quant)
    if between is not None:
        net, switch_hours = between
        spec["between"], net_arrays = between_spec(net, switch_hours, field.desc.train_times or field.desc.times)
        arrays = {**arrays, **net_arrays}
    header = {"airender_version": __version__, "quant": quant,
              "field": dataclasses.asdict(field.cfg), "data": field.desc.to_dict(), "model": spec}
    return encode_pack(header, arrays)


def write_pack(field: nn.Module, path: str | Path, quant: str = "fp32", between: tuple | None = None) -> int:
    """Write the pack of ``field`` (``between``: see :func:`pack_bytes`) to ``path`` atomically; returns its size."""
    blob = pack_bytes(field, quant, between)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)
    return len(blob)
