"""Assemble the field from its options: :func:`build_field` is the only code that reads the feature flags."""
from __future__ import annotations

import torch

from airender.config import FieldConfig, field_problems
from airender.data.description import DataDescription
from airender.data.sequence import ValueTransform
from airender.field import TODField
from airender.nn.baseline_encoder import BaselineEncoder
from airender.nn.basis import basis_decoder
from airender.nn.encodings import FourierTimeEncoding, FourierXYEncoding, PeriodicSplineTimeCode
from airender.nn.hashgrid import HashGridEncoding
from airender.nn.heads import RGBHead, SourcesHead
from airender.nn.lamp_term import LampTerm
from airender.nn.mlp import MLP, FiLMGenerator
from airender.nn.sun_path import SunPath
from airender.nn.sun_term import SunTerm
from airender.nn.terms import LightTerm


def _encodings(cfg: FieldConfig, desc: DataDescription) -> dict:
    """The field's encodings, built in this order (parameter creation order fixes the initial weights):
    BaselineEncoder, the hash grid (2D: the xy encoding; 3D: the (x, y, t) grid beside a Fourier xy
    encoding) or Fourier xy, the time encoding."""
    encodings: dict = {"encoder": BaselineEncoder(cfg.be_channels, cfg.be_downsample) if cfg.use_baseline_encoder
                       else None, "xyt_grid": None}
    if cfg.encoding == "hashgrid":
        grid = HashGridEncoding(cfg.grid_dims, cfg.grid_levels, cfg.grid_features, cfg.grid_log2_size,
                                cfg.grid_base_res, cfg.grid_max_res or max(desc.height, desc.width), cfg.grid_time_res)
        if cfg.grid_dims == 3:
            encodings.update(xyt_grid=grid, xy_encoding=FourierXYEncoding(cfg.xy_harmonics, cfg.xy_include_input))
        else:
            encodings["xy_encoding"] = grid
    else:
        encodings["xy_encoding"] = FourierXYEncoding(cfg.xy_harmonics, cfg.xy_include_input)
    encodings["time_encoding"] = PeriodicSplineTimeCode(cfg.time_knots, cfg.time_code_dim) \
        if cfg.time_encoding == "spline" else FourierTimeEncoding(cfg.time_harmonics)
    return encodings


def _frame_buffer(name: str, frame: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    """``frame`` (zeros when None) as a float32 copy of ``shape``."""
    if frame is None:
        frame = torch.zeros(shape)
    if tuple(frame.shape) != shape:
        raise ValueError(f"{name} shape {tuple(frame.shape)} != {shape}")
    return frame.detach().to(torch.float32).clone()


def _data_problems(cfg: FieldConfig, desc: DataDescription) -> list[str]:
    """The options that the data description ``desc`` cannot serve (the rules between options alone are
    :func:`airender.config.field_problems`)."""
    problems = []
    if cfg.components and not desc.sources:
        problems.append("--components: the data description names no light sources (train on data read with "
                        "their source components)")
    if cfg.sun_path and cfg.components and "directional" not in desc.sources:
        problems.append("--sun_path with --components: the sun term becomes the 'directional' source; the data "
                        "have no such source")
    if cfg.sun_path and cfg.sun_path != "learn" and not desc.sun_table:
        problems.append(f"--sun_path {cfg.sun_path}: the data description holds no sun table")
    return problems


def build_field(cfg: FieldConfig, desc: DataDescription, baseline: torch.Tensor | None = None,
                source_baseline: torch.Tensor | None = None) -> TODField:
    """The field described by ``cfg`` for data ``desc``: the only code that reads the feature flags.

    ``baseline`` [H, W, 3] the baseline frame in the training space (kept for residual mode and the
    BaselineEncoder); ``source_baseline`` [H, W, S, 3] the light sources at the baseline hour (residual mode
    with components). Raises ValueError naming every option that does not go with the others or the data.
    """
    problems = field_problems(cfg) + _data_problems(cfg, desc)
    if problems:
        raise ValueError("; ".join(problems))
    transform = ValueTransform(desc.transform)
    sources = tuple(desc.sources) if cfg.components else ()
    residual_name = None if not cfg.residual_mode else "source_baseline" if sources else "baseline"
    frames = {"baseline": _frame_buffer("baseline", baseline, (desc.height, desc.width, 3))
              if residual_name == "baseline" or cfg.use_baseline_encoder else None,
              "source_baseline": _frame_buffer("source baseline", source_baseline,
                                               (desc.height, desc.width, len(sources), 3))
              if residual_name == "source_baseline" else None}
    encodings = _encodings(cfg, desc)
    use_xy = encodings["encoder"] is None or cfg.be_with_xy
    static_dim = (encodings["xy_encoding"].out_dim if use_xy else 0) + \
        (encodings["encoder"].out_dim if encodings["encoder"] is not None else 0)
    time_dim = encodings["time_encoding"].out_dim
    dynamic_dim = (0 if cfg.film else time_dim) + \
        (encodings["xyt_grid"].out_dim if encodings["xyt_grid"] is not None else 0)
    outputs = 3 * max(1, len(sources))
    if cfg.basis_rank:  # a low-rank basis decoder in the MLP's and the FiLM generator's places
        mlp, film = basis_decoder(cfg, static_dim, outputs, time_dim)
    else:
        mlp = MLP(static_dim + dynamic_dim, cfg.hidden, cfg.layers, outputs, cfg.activation, cfg.sine_w0)
        film = FiLMGenerator(time_dim, cfg.hidden, cfg.layers, cfg.film_hidden) if cfg.film else None
    terms: list[LightTerm] = []
    if cfg.light_switch:
        terms.append(LampTerm(static_dim, (cfg.light_switch[0], cfg.light_switch[1]), cfg.grid_base_res,
                              max(desc.height, desc.width), own_grid=cfg.encoding != "hashgrid"))
    if cfg.sun_path:
        table = None if cfg.sun_path == "learn" else \
            {float(hour): tuple(direction) for hour, direction in desc.sun_table.items()}
        terms.append(SunTerm(static_dim, SunPath(table)))
    head = SourcesHead(transform, sources, desc.train_times or desc.times,
                       [desc.source_off_hours.get(name, []) for name in sources]) if sources else RGBHead(transform)
    return TODField(cfg, desc, frames, encodings, mlp, film, head, terms, residual_name)
