"""The local lights as a term of the field: a learned lamp image added in linear light while the lights are on.

    lamp(p, t) = on(t) * L(p)          [linear light, RGB]

* on(t) in {0, 1}: the light switch, on for t < OFF or t > ON (hours wrapped to [0, 24); ``--light_switch
  OFF ON``);
* L(p) >= 0: a small ReLU network of the field's time-free pixel features (and, for fields without a hash
  grid of their own, of a small 2D hash grid: lamps are small and sharp), softplus at the end.

The lamp prior (``--lamp_prior_w``) settles how the lit frames split into lights-independent light and lamp
image: it pulls L towards the darkest lights-on frame minus the night's ambient (:meth:`LampTerm.prior_target`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from airender.hours import HOURS_PER_DAY
from airender.nn.hashgrid import HashGridEncoding
from airender.nn.terms import ArrayWriter, LightTerm

HIDDEN = 32
GRID_LEVELS = 8
GRID_LOG2_SIZE = 12


class LampTerm(LightTerm):
    """(static features [N, F], uv [N, 2]) -> lamp image; x light switch at t -> lamp light [N, 3].

    Args:
        static_dim: F, the field's time-free feature size.
        switch: (OFF, ON) hours, OFF <= ON.
        grid_base_res, grid_max_res: with ``own_grid``, the coarsest and finest resolution of its hash grid.
        own_grid: give the term a small 2D hash grid of its own (for fields without one).

    ``parts`` receives "lamp" [N, 3], the lamp image L before the switch.
    """

    name = "lamp"
    source = None

    def __init__(self, static_dim: int, switch: tuple[float, float], grid_base_res: int, grid_max_res: int,
                 own_grid: bool):
        super().__init__()
        self.off, self.on = float(switch[0]), float(switch[1])
        self.grid = HashGridEncoding(2, GRID_LEVELS, 1, GRID_LOG2_SIZE, grid_base_res, grid_max_res) \
            if own_grid else None
        head_in = static_dim + (self.grid.out_dim if self.grid is not None else 0)
        self.head = nn.Sequential(nn.Linear(head_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 3))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.constant_(self.head[-1].bias, -4.0)
        self.prior_target: torch.Tensor | None = None  # [H * W, 3], set by set_training_data; not saved

    def lights_on(self, t: torch.Tensor) -> torch.Tensor:
        """Local-light state [N] (float 0/1): on for t < OFF or t > ON (hours wrapped to [0, 24))."""
        wrapped = t.to(torch.float32) % HOURS_PER_DAY
        return ((wrapped < self.off) | (wrapped > self.on)).to(torch.float32)

    def time_free(self, static: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """The lamp image L [N, 3] >= 0 (linear light)."""
        if self.grid is not None:
            static = torch.cat([static, self.grid(uv)], dim=1)
        return F.softplus(self.head(static))

    def light(self, time_free: torch.Tensor, t: torch.Tensor, parts: dict | None = None) -> torch.Tensor:
        if parts is not None:
            parts.update(lamp=time_free)
        return self.lights_on(t)[:, None] * time_free

    def prior_target_of(self, frames: torch.Tensor, times: torch.Tensor, valid: torch.Tensor, floor: float,
                        transform) -> torch.Tensor | None:
        """The lamp image [H * W, 3] (linear light) that the lamp prior pulls towards, from the training
        ``frames`` [T, H, W, 3] (training space) at hours ``times`` [T]: per texel, the darkest lights-on
        frame minus the ambient it keeps, ``floor`` x the mean linear radiance of the lights-off frames
        over the valid texels ``valid`` [N_valid] (flat indices), clamped at 0. Daylight in a lights-on
        frame stays out of it (the darkest such frame is the night). None when no frame has the lights
        on or none has them off."""
        on = self.lights_on(times) > 0
        if not bool(on.any()) or bool(on.all()):
            return None
        linear = transform.to_linear(frames).reshape(frames.shape[0], -1, 3)
        ambient = floor * float(linear[~on].index_select(1, valid).mean())
        return (linear[on].amin(dim=0) - ambient).clamp_min(0.0)

    def set_training_data(self, frames, times, train_ids, valid, loss_cfg, transform) -> None:
        self.prior_target = self.prior_target_of(frames.index_select(0, train_ids), times[train_ids], valid,
                                                 loss_cfg.lamp_prior_floor, transform)

    def loss_terms(self, parts: dict, batch, loss_cfg) -> dict[str, torch.Tensor]:
        """"lamp_prior" = lamp_prior_w x mean |lamp image - prior target| over the batch's valid texels:
        frames with the lights on only constrain lights-independent part + lamp image, and the prior
        settles the split."""
        if "lamp" not in parts or loss_cfg.lamp_prior_w <= 0 or self.prior_target is None:
            return {}
        gap = (parts["lamp"] - self.prior_target.index_select(0, batch.pix)).abs().mean(dim=1)
        if batch.valid is not None:
            gap = gap[batch.valid]
        return {"lamp_prior": loss_cfg.lamp_prior_w * gap.mean()}

    def export(self, writer: ArrayWriter) -> tuple[str, dict]:
        """``light_switch``: {off, on, grid: GRID | null}; arrays ``lamp_grid.table``, ``lamp_head.*``."""
        section: dict = {"off": self.off, "on": self.on, "grid": None}
        if self.grid is not None:
            section["grid"] = writer.grid("lamp_grid.table", self.grid)
        writer.sequential("lamp_head", self.head, (nn.ReLU,))
        return "light_switch", section
