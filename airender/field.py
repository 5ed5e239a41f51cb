"""The time-of-day field f(x, y, t): encodings -> MLP / FiLM / basis -> head, plus light terms in linear light.

:func:`airender.assembly.build_field` assembles it from a FieldConfig and the data description.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from airender.config import FieldConfig
from airender.data.description import DataDescription
from airender.hours import HOURS_PER_DAY, neighbouring_hours
from airender.nn.baseline_encoder import BaselineEncoder
from airender.nn.terms import LightTerm

#: state-dict prefixes of checkpoints written before the field was made of terms -> the prefixes now
RENAMED_STATE = {"lamp_head.": "lamp.head.", "lamp_grid.": "lamp.grid.", "source_gate.": "head.gate."}


@dataclass
class StaticCache:
    """The time-invariant part of decoding a fixed set of N pixels, computed once and reused per frame.

    uv [N, 2] pixel centres in (0, 1); first [N, hidden] the first MLP layer's pre-activation from the
    time-invariant inputs (bias included); residual [N, outputs] the residual baseline at those pixels in
    the training space (residual mode; else None); terms: per light term of the field, in order, its
    time-free values (LightTerm.time_free).
    """

    uv: torch.Tensor
    first: torch.Tensor
    residual: torch.Tensor | None
    terms: tuple[torch.Tensor, ...] = ()

    def nbytes(self) -> int:
        """Bytes held by the cache's tensors."""
        tensors = [self.uv, self.first, self.residual, *self.terms]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


class TODField(nn.Module):
    """f(x, y, t) -> RGB in the training space: encodings -> MLP / FiLM / basis -> head, plus light terms.

    Inputs: uv [N, 2] pixel centres in (0, 1) (x right, y down), t [N] hours, optional pix [N] flat pixel
    indices at the training resolution (exact baseline lookup).

    The MLP input is [static | dynamic]: static = [BaselineEncoder features, xy encoding], computed once per
    pixel; dynamic = [time encoding (left out with FiLM, where the time code modulates every hidden layer
    instead), (x, y, t) hash-grid features]. In residual mode the MLP predicts a delta added to the residual
    baseline (the buffer ``baseline`` [H, W, 3], or with a sources head ``source_baseline`` [H, W, S, 3]),
    kept at full precision in the training space. With ``time_blend`` the MLP's output between two trained
    hours is the blend of its outputs at those hours.

    The head (:mod:`airender.nn.heads`) makes the prediction from the MLP's output and the light terms'
    light (:mod:`airender.nn.terms`: the lamps, the sun), which every term gives at the true time. The parts
    are chosen by :func:`build_field`, the only reader of the feature flags; the field itself has no
    feature branches.
    """

    def __init__(self, cfg: FieldConfig, desc: DataDescription, frames: dict, encodings: dict, mlp: nn.Module,
                 film: nn.Module | None, head: nn.Module, terms: list[LightTerm], residual_name: str | None):
        super().__init__()
        self.cfg, self.desc = cfg, desc
        self.transform = head.transform
        for name, frame in frames.items():  # baseline [H, W, 3], source_baseline [H, W, S, 3] (or None)
            if frame is None:
                setattr(self, name, None)
            else:
                self.register_buffer(name, frame)
        for name, module in encodings.items():
            setattr(self, name, module)
        self.use_xy = self.encoder is None or cfg.be_with_xy
        self.static_dim = (self.xy_encoding.out_dim if self.use_xy else 0) + \
            (self.encoder.out_dim if self.encoder is not None else 0)
        self.dynamic_dim = (0 if film is not None else self.time_encoding.out_dim) + \
            (self.xyt_grid.out_dim if self.xyt_grid is not None else 0)
        self.mlp, self.film = mlp, film
        for term in terms:
            setattr(self, term.name, term)
        self.term_names = tuple(term.name for term in terms)
        self.head = head
        self.sources: tuple[str, ...] = head.sources
        self.residual_name = residual_name

    @property
    def terms(self) -> list[LightTerm]:
        """The light terms, in the order their light is added."""
        return [getattr(self, name) for name in self.term_names]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for old, new in RENAMED_STATE.items():  # checkpoints written before the field was made of terms
            for key in [k for k in state_dict if k.startswith(prefix + old)]:
                state_dict[prefix + new + key[len(prefix + old):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

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
    def residual_at(self, uv: torch.Tensor, pix: torch.Tensor | None = None) -> torch.Tensor | None:
        """The residual baseline [N, outputs] (training space): exact at pixel indices ``pix``, else bilinear
        at ``uv``; None outside residual mode."""
        if self.residual_name is None:
            return None
        frame = getattr(self, self.residual_name)
        height, width = frame.shape[:2]
        flat = frame.reshape(height, width, -1)
        if pix is not None:
            return flat.reshape(height * width, -1).index_select(0, pix)
        return BaselineEncoder.sample(flat.permute(2, 0, 1)[None], uv)

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
        """MLP output [N, outputs] at hours t [N] for pixels with static features [N, static_dim]."""
        inputs = torch.cat([static, self.dynamic_features(uv, t)], dim=1)
        return self.mlp(inputs, self.film_params(t))

    def _raw_cached(self, cache: StaticCache, t_row: torch.Tensor) -> torch.Tensor:
        """MLP output [N, outputs] at one hour t_row [1] for the cached pixels."""
        first = cache.first
        if self.dynamic_dim:
            dynamic = self.dynamic_features(cache.uv, t_row)
            first = first + self.mlp.first_layer_partial(dynamic, self.static_dim, with_bias=False).to(first.dtype)
        return self.mlp.forward_from_first(first, self.film_params(t_row))

    def _lights(self, time_free: list[torch.Tensor] | tuple[torch.Tensor, ...], t: torch.Tensor,
                parts: dict | None = None) -> list[tuple[LightTerm, torch.Tensor]]:
        """Each term with its light [N, 3] (linear light) at hours t from its time-free values."""
        return [(term, term.light(values, t, parts)) for term, values in zip(self.terms, time_free)]

    @staticmethod
    def _with_residual(raw: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        return raw if residual is None else raw + residual

    # --- training-time forward ----------------------------------------------------------------------
    def forward(self, uv: torch.Tensor, t: torch.Tensor, pix: torch.Tensor | None = None,
                parts: dict | None = None) -> torch.Tensor:
        """Prediction [N, 3] in the training space for pixels uv [N, 2] at hours t [N]. ``parts`` (a dict)
        receives the head's and the terms' named intermediate values (e.g. "lamp", "sun", "sources")."""
        static = self.static_features(uv, pix)
        residual = self.residual_at(uv, pix)
        raw = self._blended(lambda hours: self._raw(static, uv, hours), t)
        lights = self._lights([term.time_free(static, uv) for term in self.terms], t, parts)
        return self.head.compose(self._with_residual(raw, residual), t, lights, parts)

    def set_training_data(self, frames: torch.Tensor, times: torch.Tensor, train_ids: torch.Tensor,
                          valid: torch.Tensor, loss_cfg) -> None:
        """Give the terms the frames [T, H, W, 3] (training space) at hours ``times`` [T], the trained frames'
        indices ``train_ids`` [K] and the valid texels [N_valid] for their losses (LightTerm.set_training_data)."""
        for term in self.terms:
            term.set_training_data(frames, times, train_ids, valid, loss_cfg, self.transform)

    def get_loss_dict(self, batch, losses, step: int) -> dict[str, torch.Tensor]:
        """Named, weighted loss terms of one batch (``losses``: a LossAssembler): the reconstruction terms,
        then the head's (per light source with ``components``) and each light term's."""
        parts: dict = {}
        terms = losses(self(batch.uv, batch.t, batch.pix, parts), batch, step)
        terms.update(self.head.loss_terms(parts, batch, losses))
        for term in self.terms:
            terms.update(term.loss_terms(parts, batch, losses.cfg))
        return terms

    # --- cached decode ------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, uv: torch.Tensor, pix: torch.Tensor | None = None,
                feature_map: torch.Tensor | None = None) -> StaticCache:
        """Compute everything about pixels uv [N, 2] that does not depend on time (``feature_map``: the
        encoder's F0, when the caller computed it once for many chunks)."""
        static = self.static_features(uv, pix, feature_map)
        first = self.mlp.first_layer_partial(static, 0, with_bias=True)
        return StaticCache(uv=uv, first=first, residual=self.residual_at(uv, pix),
                           terms=tuple(term.time_free(static, uv) for term in self.terms))

    @torch.no_grad()
    def decode(self, cache: StaticCache, t: float) -> torch.Tensor:
        """Prediction [N, 3] in the training space at hour ``t`` for the cached pixels; per frame only the
        time-dependent inputs, their first-layer projection and the remaining layers run."""
        return self.decode_at(cache, torch.full((1,), float(t), device=cache.first.device))

    @torch.no_grad()
    def decode_at(self, cache: StaticCache, t_row: torch.Tensor, parts: dict | None = None) -> torch.Tensor:
        """:meth:`decode` with the hour as a tensor [1] (so a compiled decode does not specialise on it);
        ``parts`` as in :meth:`forward`."""
        raw = self._blended(lambda hours: self._raw_cached(cache, hours), t_row)
        return self.head.compose(self._with_residual(raw, cache.residual), t_row,
                                 self._lights(cache.terms, t_row, parts), parts)

    @torch.no_grad()
    def decode_components(self, cache: StaticCache, t: float) -> torch.Tensor:
        """Each light source [N, S, 3] in the training space at hour ``t`` for the cached pixels (sources in
        the order of ``self.sources``; non-negative; exactly 0 where its gate is off); the prediction of
        :meth:`decode` is their sum in linear light. Raises ValueError for a field without ``components``."""
        if not self.sources:
            raise ValueError("this field was trained without --components: it predicts no light sources")
        parts: dict = {}
        self.decode_at(cache, torch.full((1,), float(t), device=cache.first.device), parts)
        return parts["sources"].clamp_min(0.0)
