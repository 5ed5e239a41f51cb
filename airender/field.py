"""The time-of-day field f(x, y, t), assembled from a FieldConfig and a description of the data."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from airender.config import FieldConfig
from airender.hours import HOURS_PER_DAY, neighbouring_hours
from airender.data.sequence import ValueTransform
from airender.nn.baseline_encoder import BaselineEncoder
from airender.nn.basis import basis_decoder
from airender.nn.encodings import FourierTimeEncoding, FourierXYEncoding, PeriodicSplineTimeCode
from airender.nn.hashgrid import HashGridEncoding
from airender.nn.mlp import MLP, FiLMGenerator
from airender.nn.sources import SourceGate, compose_sources
from airender.nn.sun_path import SunPath
from airender.nn.sun_term import SunTerm

LAMP_HIDDEN = 32
LAMP_GRID_LEVELS = 8
LAMP_GRID_LOG2_SIZE = 12


@dataclass
class DataDescription:
    """What a model was trained on; saved in every checkpoint.

    height, width: training resolution in pixels; is_hdr: linear HDR (True) or sRGB LDR data;
    transform: training-space transform name (see ValueTransform); times: hours of the frames;
    baseline_time: hour of the residual baseline; has_mask: whether a validity mask was given;
    train_times: hours actually trained on (hold-outs removed); baseline_8bit: the baseline frame holds
    only multiples of 1/255 (an 8-bit source), so storing it as 8 bits is exact; sources: the light
    sources a model trained with ``components`` predicts, in order (empty otherwise); source_off_hours:
    per source, the trained hours at which it is identically zero (0 at every valid texel), from which
    its on/off gate is built; sun_table: with ``--sun_path FILE``, {hour: unit direction towards the sun}
    read from the file (the field fits its sun path to it; empty otherwise).
    """

    height: int
    width: int
    is_hdr: bool
    transform: str
    times: list[float]
    baseline_time: float
    has_mask: bool = False
    source: str = ""
    names: list[str] = field(default_factory=list)
    train_times: list[float] = field(default_factory=list)
    baseline_8bit: bool = False
    sources: list[str] = field(default_factory=list)
    source_off_hours: dict[str, list[float]] = field(default_factory=dict)
    sun_table: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataDescription":
        return cls(**d)


@dataclass
class StaticCache:
    """The time-invariant part of decoding a fixed set of N pixels, computed once and reused per frame.

    uv [N, 2] pixel centres in (0, 1); first [N, hidden] the first MLP layer's pre-activation from the
    time-invariant inputs (bias included); baseline [N, 3] the baseline frame at those pixels in the
    training space (None when unused); lamp [N, 3] the linear-light lamp image (None without a light
    switch); source_baseline [N, S, 3] the baseline frame of each light source in the training space
    (residual mode with ``components``, else None); sun [N, C] the sun term's time-free part (``sun_path``,
    see SunTerm.prepare; else None).
    """

    uv: torch.Tensor
    first: torch.Tensor
    baseline: torch.Tensor | None
    lamp: torch.Tensor | None = None
    source_baseline: torch.Tensor | None = None
    sun: torch.Tensor | None = None


class TODField(nn.Module):
    """f(x, y, t) -> RGB in the training space.

    Inputs: uv [N, 2] pixel centres in (0, 1) (x right, y down), t [N] hours, optional pix [N] flat pixel
    indices at the training resolution (exact baseline lookup).

    The MLP input is [static | dynamic]: static = [BaselineEncoder features (``use_baseline_encoder``),
    xy encoding (Fourier octaves or a 2D hash grid)], computed once per pixel; dynamic = [time encoding
    (Fourier harmonics or spline codes; left out with FiLM, where the time code modulates every hidden
    layer instead), (x, y, t) hash-grid features (``grid_dims 3``)]. In residual mode the MLP predicts a
    delta that is added to the baseline frame (kept at full precision in the training space as the
    buffer ``baseline`` [H, W, 3]). With ``light_switch`` a learned lamp image (non-negative, linear light,
    from the static features) is added in linear light while the local lights are on.

    With ``components`` the MLP predicts S = len(desc.sources) light sources (3 S outputs, each source in
    the training space; in residual mode a delta against that source's baseline frame, the buffer
    ``source_baseline`` [H, W, S, 3], which replaces ``baseline``), each multiplied by its on/off gate
    (``source_gate``, built from ``desc.source_off_hours``) and clamped at 0; the prediction is their sum
    in linear light (see :mod:`airender.nn.sources`). :meth:`decode_components` decodes the sources.

    With ``sun_path`` the direct sunlight is a term of its own, added in linear light: a per-texel response
    to the sun's direction times a learned visibility of that direction (:class:`airender.nn.sun_term.SunTerm`),
    on a sun path given by ``desc.sun_table`` or learned. It is evaluated at the true time, also with
    ``time_blend`` (which blends the rest): between two trained hours it sees the sun where it is then.
    """

    def __init__(self, cfg: FieldConfig, desc: DataDescription, baseline: torch.Tensor | None = None,
                 source_baseline: torch.Tensor | None = None):
        super().__init__()
        self.cfg, self.desc = cfg, desc
        self.transform = ValueTransform(desc.transform)
        self.sources: tuple[str, ...] = tuple(desc.sources) if cfg.components else ()
        if cfg.components and not self.sources:
            raise ValueError("--components: the data description names no light sources (train on data read "
                             "with their source components)")
        if cfg.components and cfg.light_switch:
            raise ValueError("--light_switch: not with --components (each light source gets its own on/off gate "
                             "from the data)")
        if self.uses_baseline:
            if baseline is None:
                baseline = torch.zeros(desc.height, desc.width, 3)
            if tuple(baseline.shape) != (desc.height, desc.width, 3):
                raise ValueError(f"baseline shape {tuple(baseline.shape)} != ({desc.height}, {desc.width}, 3)")
            self.register_buffer("baseline", baseline.detach().to(torch.float32).clone())
        else:
            self.baseline = None
        if self.uses_source_baseline:
            shape = (desc.height, desc.width, len(self.sources), 3)
            if source_baseline is None:
                source_baseline = torch.zeros(shape)
            if tuple(source_baseline.shape) != shape:
                raise ValueError(f"source baseline shape {tuple(source_baseline.shape)} != {shape}")
            self.register_buffer("source_baseline", source_baseline.detach().to(torch.float32).clone())
        else:
            self.source_baseline = None
        self._build_encodings(cfg, desc)
        self.static_dim = (self.xy_encoding.out_dim if self.use_xy else 0) + \
            (self.encoder.out_dim if self.encoder is not None else 0)
        if self.static_dim == 0:
            raise ValueError("the field has no pixel inputs: set --xy_harmonics or --xy_include_input")
        time_in_mlp = 0 if cfg.film else self.time_encoding.out_dim
        self.dynamic_dim = time_in_mlp + (self.xyt_grid.out_dim if self.xyt_grid is not None else 0)
        if cfg.basis_rank:  # a low-rank basis decoder in the MLP's and the FiLM generator's places
            self.mlp, self.film = basis_decoder(cfg, self.static_dim, 3 * max(1, len(self.sources)),
                                                self.time_encoding.out_dim)
        else:
            self.mlp = MLP(self.static_dim + self.dynamic_dim, cfg.hidden, cfg.layers, 3 * max(1, len(self.sources)),
                           cfg.activation, cfg.sine_w0)
            self.film = FiLMGenerator(self.time_encoding.out_dim, cfg.hidden, cfg.layers, cfg.film_hidden) \
                if cfg.film else None
        self.lamp_head = self.lamp_grid = None
        if cfg.light_switch:
            if len(cfg.light_switch) != 2 or not 0 <= cfg.light_switch[0] <= cfg.light_switch[1] <= HOURS_PER_DAY:
                raise ValueError("--light_switch takes two hours OFF ON with OFF <= ON, e.g. 6 18")
            # Lamps are small and sharp: fields without a hash grid get a small one of their own for them.
            self.lamp_grid = None if cfg.encoding == "hashgrid" else HashGridEncoding(
                2, LAMP_GRID_LEVELS, 1, LAMP_GRID_LOG2_SIZE, cfg.grid_base_res, max(desc.height, desc.width))
            lamp_in = self.static_dim + (self.lamp_grid.out_dim if self.lamp_grid is not None else 0)
            self.lamp_head = nn.Sequential(nn.Linear(lamp_in, LAMP_HIDDEN), nn.ReLU(), nn.Linear(LAMP_HIDDEN, 3))
            nn.init.zeros_(self.lamp_head[-1].weight)
            nn.init.constant_(self.lamp_head[-1].bias, -4.0)
        self.sun = None
        if cfg.sun_path:
            if self.sources and ("directional" not in self.sources or cfg.residual_mode):
                raise ValueError("--sun_path with --components: the sun term becomes the 'directional' source; "
                                 "it needs data with that source and --residual_mode False")
            table = None
            if cfg.sun_path != "learn":
                if not desc.sun_table:
                    raise ValueError(f"--sun_path {cfg.sun_path}: the data description holds no sun table")
                table = {float(hour): tuple(direction) for hour, direction in desc.sun_table.items()}
            self.sun = SunTerm(self.static_dim, SunPath(table))
        self.source_gate = None
        if self.sources:
            self.source_gate = SourceGate(desc.train_times or desc.times,
                                          [desc.source_off_hours.get(name, []) for name in self.sources])

    def _build_encodings(self, cfg: FieldConfig, desc: DataDescription) -> None:
        self.encoder = BaselineEncoder(cfg.be_channels, cfg.be_downsample) if cfg.use_baseline_encoder else None
        self.use_xy = self.encoder is None or cfg.be_with_xy
        self.xyt_grid = None
        if cfg.encoding == "hashgrid":
            max_res = cfg.grid_max_res or max(desc.height, desc.width)
            grid = HashGridEncoding(cfg.grid_dims, cfg.grid_levels, cfg.grid_features, cfg.grid_log2_size,
                                    cfg.grid_base_res, max_res, cfg.grid_time_res)
            if cfg.grid_dims == 3:
                self.xyt_grid = grid
                self.xy_encoding = FourierXYEncoding(cfg.xy_harmonics, cfg.xy_include_input)
            else:
                self.xy_encoding = grid
        else:
            self.xy_encoding = FourierXYEncoding(cfg.xy_harmonics, cfg.xy_include_input)
        if cfg.time_encoding == "spline":
            self.time_encoding = PeriodicSplineTimeCode(cfg.time_knots, cfg.time_code_dim)
        else:
            self.time_encoding = FourierTimeEncoding(cfg.time_harmonics)

    @property
    def uses_baseline(self) -> bool:
        """Whether the field keeps the baseline frame (all light): for residual mode (without ``components``,
        which keeps one per source instead) or the BaselineEncoder."""
        return (self.cfg.residual_mode and not self.cfg.components) or self.cfg.use_baseline_encoder

    @property
    def uses_source_baseline(self) -> bool:
        """Whether the field keeps a baseline frame per light source (residual mode with ``components``)."""
        return self.cfg.residual_mode and self.cfg.components

    def param_groups(self, lr: float, grid_lr: float, weight_decay: float) -> list[dict]:
        """Optimizer groups: feature tables and time codes (``grid_lr``, eps 1e-15, no weight decay, as
        instant-ngp) and everything else (``lr``, ``weight_decay``)."""
        tables = [p for name, p in self.named_parameters() if name.endswith(".table") or name.endswith(".codes")]
        ids = {id(p) for p in tables}
        rest = [p for p in self.parameters() if id(p) not in ids]
        groups = [{"params": rest, "lr": lr, "weight_decay": weight_decay}]
        if tables:
            groups.append({"params": tables, "lr": grid_lr, "weight_decay": 0.0, "eps": 1e-15})
        return groups

    # --- inputs -----------------------------------------------------------------------------------
    def baseline_at(self, uv: torch.Tensor, pix: torch.Tensor | None = None) -> torch.Tensor:
        """Baseline values [N, 3] (training space): exact at pixel indices ``pix``, else bilinear at ``uv``."""
        if pix is not None:
            return self.baseline.reshape(-1, 3).index_select(0, pix)
        return BaselineEncoder.sample(self.baseline.permute(2, 0, 1)[None], uv)

    def source_baseline_at(self, uv: torch.Tensor, pix: torch.Tensor | None = None) -> torch.Tensor:
        """Per-source baseline values [N, S, 3] (training space): exact at ``pix``, else bilinear at ``uv``."""
        height, width, count, _ = self.source_baseline.shape
        if pix is not None:
            return self.source_baseline.reshape(-1, count, 3).index_select(0, pix)
        image = self.source_baseline.reshape(height, width, count * 3).permute(2, 0, 1)[None]
        return BaselineEncoder.sample(image, uv).reshape(-1, count, 3)

    def encoder_features(self) -> torch.Tensor:
        """The BaselineEncoder's feature map F0 [1, C, h, w] of the baseline frame (one CNN pass)."""
        return self.encoder(self.baseline.permute(2, 0, 1)[None])

    def static_features(self, uv: torch.Tensor, pix: torch.Tensor | None = None,
                        feature_map: torch.Tensor | None = None) -> torch.Tensor:
        """Time-invariant MLP inputs [N, static_dim]; ``feature_map`` reuses an F0 already computed."""
        parts = []
        if self.encoder is not None:
            feature_map = self.encoder_features() if feature_map is None else feature_map
            parts.append(BaselineEncoder.sample(feature_map, uv))
        if self.use_xy:
            parts.append(self.xy_encoding(uv))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """Time encoding [N, D] of hours t [N] (the MLP input without FiLM, the FiLM input with it)."""
        return self.time_encoding(t)

    def dynamic_features(self, uv: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Time-dependent MLP inputs [N, dynamic_dim] (N = 1 broadcasts when they do not depend on uv)."""
        parts = [] if self.film is not None else [self.time_features(t)]
        if self.xyt_grid is not None:
            phase = (t.to(torch.float32) % HOURS_PER_DAY) / HOURS_PER_DAY
            coords = torch.cat([uv, phase.expand(uv.shape[0])[:, None]], dim=1)
            parts.append(self.xyt_grid(coords))
        if not parts:
            return uv.new_zeros(uv.shape[0], 0)
        if len(parts) == 2 and parts[0].shape[0] != parts[1].shape[0]:
            parts[0] = parts[0].expand(parts[1].shape[0], -1)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def film_params(self, t: torch.Tensor):
        """Per-hidden-layer (scale, shift) [N, hidden] for hours t [N]; None without FiLM. A batch holds few
        distinct hours, so the generator runs once per distinct hour and the result is gathered."""
        if self.film is None:
            return None
        if t.numel() <= 1:
            return self.film(self.time_features(t))
        hours, inverse = torch.unique(t, return_inverse=True)
        # index_select: its backward is deterministic on the CPU, unlike advanced indexing's
        return [(scale.index_select(0, inverse), shift.index_select(0, inverse))
                for scale, shift in self.film(self.time_features(hours))]

    def lights_on(self, t: torch.Tensor) -> torch.Tensor:
        """Local-light state [N] (float 0/1): on for t < OFF or t > ON (hours wrapped to [0, 24))."""
        off, on = self.cfg.light_switch
        wrapped = t.to(torch.float32) % HOURS_PER_DAY
        return ((wrapped < off) | (wrapped > on)).to(torch.float32)

    def lamp_prior_target(self, frames: torch.Tensor, times: torch.Tensor, valid: torch.Tensor,
                          floor: float) -> torch.Tensor | None:
        """The lamp image [H * W, 3] (linear light) that the lamp prior pulls towards, from the training
        ``frames`` [T, H, W, 3] (training space) at hours ``times`` [T]: per texel, the darkest lights-on
        frame minus the ambient it keeps, ``floor`` x the mean linear radiance of the lights-off frames
        over the valid texels ``valid`` [N_valid] (flat indices), clamped at 0. Daylight in a lights-on
        frame stays out of it (the darkest such frame is the night). None when no frame has the lights
        on or none has them off."""
        on = self.lights_on(times) > 0
        if not bool(on.any()) or bool(on.all()):
            return None
        linear = self.transform.to_linear(frames).reshape(frames.shape[0], -1, 3)
        ambient = floor * float(linear[~on].index_select(1, valid).mean())
        return (linear[on].amin(dim=0) - ambient).clamp_min(0.0)

    def lamp_image(self, static: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Linear-light lamp contribution [N, 3] >= 0 at pixels uv [N, 2] with static features [N, static_dim]."""
        if self.lamp_grid is not None:
            static = torch.cat([static, self.lamp_grid(uv)], dim=1)
        return F.softplus(self.lamp_head(static))

    def compose(self, raw: torch.Tensor, baseline: torch.Tensor | None, gate: torch.Tensor | None = None,
                lamp: torch.Tensor | None = None, sun: torch.Tensor | None = None) -> torch.Tensor:
        """MLP output [N, 3] -> prediction in the training space: adds the baseline in residual mode,
        ``gate`` [N or 1] x ``lamp`` [N, 3] in linear light with a light switch, and ``sun`` [N, 3] (linear
        light) with a sun term."""
        out = raw + baseline if self.cfg.residual_mode else raw
        if self.lamp_head is None and sun is None:
            return out
        linear = self.transform.to_linear(out)
        if self.lamp_head is not None:
            linear = linear + gate[:, None] * lamp
        if sun is not None:
            linear = linear + sun
        return self.transform.from_linear(linear)

    def compose_sources(self, raw: torch.Tensor, source_baseline: torch.Tensor | None,
                        t: torch.Tensor, sun: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """MLP output [N, 3 S] at hours t [N] (or [1]) -> (prediction [N, 3], gated sources [N, S, 3]) in the
        training space: adds ``source_baseline`` [N, S, 3] in residual mode, gates each source by time and
        sums them in linear light (:func:`airender.nn.sources.compose_sources`). With a sun term, ``sun``
        [N, 3] (linear light) is the 'directional' source in place of the MLP's."""
        pred = raw.reshape(raw.shape[0], len(self.sources), 3)
        if source_baseline is not None:
            pred = pred + source_baseline
        if sun is not None:
            d = self.sources.index("directional")
            pred = torch.cat([pred[:, :d], self.transform.from_linear(sun)[:, None], pred[:, d + 1:]], dim=1)
        return compose_sources(pred, self.source_gate(t), self.transform)

    # --- time ---------------------------------------------------------------------------------------
    def blend_knots(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For hours t [N]: the training hours before and after each (cyclically) and the blend weight
        w in [0, 1) of the later one; w = 0 exactly at a training hour."""
        knots = torch.tensor(sorted(self.desc.train_times or self.desc.times), dtype=torch.float32, device=t.device)
        before, after, weight = neighbouring_hours(knots, t)
        return knots[before], knots[after], weight

    def _blended(self, raw_at, t: torch.Tensor) -> torch.Tensor:
        """``raw_at(t)`` itself, or with ``time_blend`` the blend of ``raw_at`` at the neighbouring
        training hours (one evaluation where every t is a training hour)."""
        if not self.cfg.time_blend:
            return raw_at(t)
        k0, k1, w = self.blend_knots(t)
        raw = raw_at(k0)
        if bool((w > 0).any()):
            raw = raw + w[:, None].to(raw.dtype) * (raw_at(k1) - raw)
        return raw

    def _raw(self, static: torch.Tensor, uv: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """MLP output [N, 3] at hours t [N] for pixels with static features [N, static_dim]."""
        inputs = torch.cat([static, self.dynamic_features(uv, t)], dim=1)
        return self.mlp(inputs, self.film_params(t))

    def _raw_cached(self, cache: StaticCache, t_row: torch.Tensor) -> torch.Tensor:
        """MLP output [N, 3] at one hour t_row [1] for the cached pixels."""
        first = cache.first
        if self.dynamic_dim:
            dynamic = self.dynamic_features(cache.uv, t_row)
            first = first + self.mlp.first_layer_partial(dynamic, self.static_dim, with_bias=False).to(first.dtype)
        return self.mlp.forward_from_first(first, self.film_params(t_row))

    # --- training-time forward ----------------------------------------------------------------------
    def forward(self, uv: torch.Tensor, t: torch.Tensor, pix: torch.Tensor | None = None,
                parts: dict | None = None) -> torch.Tensor:
        """Prediction [N, 3] in the training space for pixels uv [N, 2] at hours t [N]. With a light switch,
        ``parts`` (a dict) receives the lamp image "lamp" [N, 3] (linear light); with ``components`` it receives
        "sources" [N, S, 3], each source in the training space as gated by time, before the clamp at 0; with a
        sun term "sun" [N, 3] (linear light) and "sun_visibility" [N, 1]."""
        static = self.static_features(uv, pix)
        if self.sources:
            raw = self._blended(lambda hours: self._raw(static, uv, hours), t)
            source_baseline = self.source_baseline_at(uv, pix) if self.uses_source_baseline else None
            sun = self.sun(static, t, parts) if self.sun is not None else None
            out, sources = self.compose_sources(raw, source_baseline, t, sun)
            if parts is not None:
                parts.update(sources=sources)
            return out
        baseline = self.baseline_at(uv, pix) if self.cfg.residual_mode else None
        raw = self._blended(lambda hours: self._raw(static, uv, hours), t)
        sun = self.sun(static, t, parts) if self.sun is not None else None
        if self.lamp_head is None:
            return self.compose(raw, baseline, sun=sun)
        gate = self.lights_on(t)
        lamp = self.lamp_image(static, uv)
        if parts is not None:
            parts.update(lamp=lamp)
        return self.compose(raw, baseline, gate, lamp, sun)

    def get_loss_dict(self, batch, losses, step: int) -> dict[str, torch.Tensor]:
        """Named, weighted loss terms of one batch (``losses``: a LossAssembler). With a light switch,
        "lamp_prior" = lamp_prior_w x mean |lamp image - ``losses.lamp_target``| over the batch's valid
        texels: frames with the lights on only constrain lights-independent part + lamp image, and the
        prior settles the split (see :meth:`lamp_prior_target`). With ``components``, "mse_<source>" per light
        source (see LossAssembler.source_terms)."""
        parts: dict = {}
        terms = losses(self(batch.uv, batch.t, batch.pix, parts), batch, step)
        if "sources" in parts:
            terms.update(losses.source_terms(parts["sources"], batch, self.sources))
        if "lamp" in parts and losses.cfg.lamp_prior_w > 0 and losses.lamp_target is not None:
            gap = (parts["lamp"] - losses.lamp_target.index_select(0, batch.pix)).abs().mean(dim=1)
            if batch.valid is not None:
                gap = gap[batch.valid]
            terms["lamp_prior"] = losses.cfg.lamp_prior_w * gap.mean()
        return terms

    # --- cached decode ------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, uv: torch.Tensor, pix: torch.Tensor | None = None,
                feature_map: torch.Tensor | None = None) -> StaticCache:
        """Compute everything about pixels uv [N, 2] that does not depend on time (``feature_map``: the
        encoder's F0, when the caller computed it once for many chunks)."""
        static = self.static_features(uv, pix, feature_map)
        first = self.mlp.first_layer_partial(static, 0, with_bias=True)
        baseline = self.baseline_at(uv, pix) if self.cfg.residual_mode and not self.sources else None
        lamp = self.lamp_image(static, uv) if self.lamp_head is not None else None
        source_baseline = self.source_baseline_at(uv, pix) if self.uses_source_baseline else None
        return StaticCache(uv=uv, first=first, baseline=baseline, lamp=lamp, source_baseline=source_baseline,
                           sun=self.sun.prepare(static) if self.sun is not None else None)

    @torch.no_grad()
    def decode(self, cache: StaticCache, t: float) -> torch.Tensor:
        """Prediction [N, 3] in the training space at hour ``t`` for the cached pixels; per frame only the
        time-dependent inputs, their first-layer projection and the remaining layers run."""
        return self.decode_at(cache, torch.full((1,), float(t), device=cache.first.device))

    @torch.no_grad()
    def decode_at(self, cache: StaticCache, t_row: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` with the hour as a tensor [1] (so a compiled decode does not specialise on it)."""
        raw = self._blended(lambda hours: self._raw_cached(cache, hours), t_row)
        sun = self.sun.decode(cache.sun, t_row) if self.sun is not None else None
        if self.sources:
            return self.compose_sources(raw, cache.source_baseline, t_row, sun)[0]
        if self.lamp_head is None:
            return self.compose(raw, cache.baseline, sun=sun)
        return self.compose(raw, cache.baseline, self.lights_on(t_row), cache.lamp, sun)

    @torch.no_grad()
    def decode_components(self, cache: StaticCache, t: float) -> torch.Tensor:
        """Each light source [N, S, 3] in the training space at hour ``t`` for the cached pixels (sources in
        the order of ``self.sources``; non-negative; exactly 0 where its gate is off); the prediction of
        :meth:`decode` is their sum in linear light. Raises ValueError for a field without ``components``."""
        if not self.sources:
            raise ValueError("this field was trained without --components: it predicts no light sources")
        t_row = torch.full((1,), float(t), device=cache.first.device)
        raw = self._blended(lambda hours: self._raw_cached(cache, hours), t_row)
        sun = self.sun.decode(cache.sun, t_row) if self.sun is not None else None
        return self.compose_sources(raw, cache.source_baseline, t_row, sun)[1].clamp_min(0.0)


def build_field(cfg: FieldConfig, desc: DataDescription, baseline: torch.Tensor | None = None,
                source_baseline: torch.Tensor | None = None) -> TODField:
    """The field described by ``cfg`` for data ``desc``; ``baseline`` [H, W, 3] in the training space;
    ``source_baseline`` [H, W, S, 3] the light sources at the baseline hour (residual mode with components)."""
    return TODField(cfg, desc, baseline, source_baseline)
