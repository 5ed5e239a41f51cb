"""The time-of-day field f(x, y, t), assembled from a FieldConfig and a description of the data."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from torch import nn

from airender.config import FieldConfig
from airender.data.sequence import ValueTransform
from airender.nn.baseline_encoder import BaselineEncoder
from airender.nn.encodings import FourierTimeEncoding, FourierXYEncoding
from airender.nn.mlp import MLP


@dataclass
class DataDescription:
    """What a model was trained on; saved in every checkpoint.

    height, width: training resolution in pixels; is_hdr: linear HDR (True) or sRGB LDR data;
    transform: training-space transform name (see ValueTransform); times: hours of the frames;
    baseline_time: hour of the residual baseline; has_mask: whether a validity mask was given;
    train_times: hours actually trained on (hold-outs removed).
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
    training space (None when the field does not use it).
    """

    uv: torch.Tensor
    first: torch.Tensor
    baseline: torch.Tensor | None


class TODField(nn.Module):
    """f(x, y, t) -> RGB in the training space.

    Inputs: uv [N, 2] pixel centres in (0, 1) (x right, y down), t [N] hours, optional pix [N] flat pixel
    indices at the training resolution (exact baseline lookup). The MLP sees [xy encoding, time encoding];
    with ``use_baseline_encoder`` it sees [CNN features of the baseline at (x, y), xy encoding (if
    ``be_with_xy``), time encoding]. In residual mode it predicts a delta that is added to the baseline
    frame (kept at full precision in the training space as the buffer ``baseline`` [H, W, 3]).
    """

    def __init__(self, cfg: FieldConfig, desc: DataDescription, baseline: torch.Tensor | None = None):
        super().__init__()
        self.cfg, self.desc = cfg, desc
        self.transform = ValueTransform(desc.transform)
        if self.uses_baseline:
            if baseline is None:
                baseline = torch.zeros(desc.height, desc.width, 3)
            if tuple(baseline.shape) != (desc.height, desc.width, 3):
                raise ValueError(f"baseline shape {tuple(baseline.shape)} != ({desc.height}, {desc.width}, 3)")
            self.register_buffer("baseline", baseline.detach().to(torch.float32).clone())
        else:
            self.baseline = None
        self.xy_encoding = FourierXYEncoding(cfg.xy_harmonics, cfg.xy_include_input)
        self.time_encoding = FourierTimeEncoding(cfg.time_harmonics)
        self.encoder = BaselineEncoder(cfg.be_channels, cfg.be_downsample) if cfg.use_baseline_encoder else None
        self.use_xy = self.encoder is None or cfg.be_with_xy
        self.static_dim = (self.xy_encoding.out_dim if self.use_xy else 0) + \
            (self.encoder.out_dim if self.encoder is not None else 0)
        self.time_dim = self.time_encoding.out_dim
        if self.static_dim == 0:
            raise ValueError("the field has no pixel inputs: set --xy_harmonics or --xy_include_input")
        self.mlp = MLP(self.static_dim + self.time_dim, cfg.hidden, cfg.layers, 3, cfg.activation, cfg.sine_w0)

    @property
    def uses_baseline(self) -> bool:
        return self.cfg.residual_mode or self.cfg.use_baseline_encoder

    # --- inputs -----------------------------------------------------------------------------------
    def baseline_at(self, uv: torch.Tensor, pix: torch.Tensor | None = None) -> torch.Tensor:
        """Baseline values [N, 3] (training space): exact at pixel indices ``pix``, else bilinear at ``uv``."""
        if pix is not None:
            return self.baseline.reshape(-1, 3).index_select(0, pix)
        image = self.baseline.permute(2, 0, 1)[None]
        grid = (uv * 2.0 - 1.0)[None, None].to(image.dtype)
        sampled = nn.functional.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                                            align_corners=False)
        return sampled[0, :, 0].transpose(0, 1)

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
        """Time MLP inputs [N, time_dim] for hours t [N]."""
        return self.time_encoding(t)

    def compose(self, raw: torch.Tensor, baseline: torch.Tensor | None) -> torch.Tensor:
        """MLP output [N, 3] -> prediction in the training space (adds the baseline in residual mode)."""
        return raw + baseline if self.cfg.residual_mode else raw

    # --- training-time forward ----------------------------------------------------------------------
    def forward(self, uv: torch.Tensor, t: torch.Tensor, pix: torch.Tensor | None = None) -> torch.Tensor:
        """Prediction [N, 3] in the training space for pixels uv [N, 2] at hours t [N]."""
        inputs = torch.cat([self.static_features(uv, pix), self.time_features(t)], dim=1)
        baseline = self.baseline_at(uv, pix) if self.uses_baseline else None
        return self.compose(self.mlp(inputs), baseline)

    def get_loss_dict(self, batch, losses, step: int) -> dict[str, torch.Tensor]:
        """Named, weighted loss terms of one training batch (``losses``: a LossAssembler)."""
        return losses(self(batch.uv, batch.t, batch.pix), batch, step)

    # --- cached decode ------------------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, uv: torch.Tensor, pix: torch.Tensor | None = None,
                feature_map: torch.Tensor | None = None) -> StaticCache:
        """Compute everything about pixels uv [N, 2] that does not depend on time (``feature_map``: the
        encoder's F0, when the caller computed it once for many chunks)."""
        first = self.mlp.first_layer_partial(self.static_features(uv, pix, feature_map), 0, with_bias=True)
        baseline = self.baseline_at(uv, pix) if self.uses_baseline else None
        return StaticCache(uv=uv, first=first, baseline=baseline)

    @torch.no_grad()
    def decode(self, cache: StaticCache, t: float) -> torch.Tensor:
        """Prediction [N, 3] in the training space at hour ``t`` for the cached pixels; per frame only
        the time encoding, its first-layer projection and the remaining layers run."""
        t_row = torch.full((1,), float(t), device=cache.first.device)
        first = cache.first + self.mlp.first_layer_partial(self.time_features(t_row), self.static_dim,
                                                           with_bias=False).to(cache.first.dtype)
        return self.compose(self.mlp.forward_from_first(first), cache.baseline)


def build_field(cfg: FieldConfig, desc: DataDescription, baseline: torch.Tensor | None = None) -> TODField:
    """The field described by ``cfg`` for data ``desc``; ``baseline`` [H, W, 3] in the training space."""
    return TODField(cfg, desc, baseline)
