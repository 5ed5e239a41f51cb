"""Multi-resolution hash encoding (Müller et al., "Instant Neural Graphics Primitives", 2022), pure PyTorch.

Vectorised over levels: one gather reads every corner of every level. Levels whose vertex grid fits the
table are indexed densely (no collisions); finer levels hash their integer corner coordinates with
XOR of coordinate x prime (primes 1, 2654435761, 805459861) modulo the table size.
"""
from __future__ import annotations

import math

import torch
from torch import nn

PRIMES = (1, 2654435761, 805459861)


def level_resolutions(num_levels: int, base_res: int, max_res: int) -> list[int]:
    """Geometric progression of per-level grid resolutions from ``base_res`` to ``max_res``."""
    if num_levels == 1:
        return [base_res]
    growth = math.exp((math.log(max_res) - math.log(base_res)) / (num_levels - 1))
    return [int(math.floor(base_res * growth ** level + 1e-6)) for level in range(num_levels)]


class HashGridEncoding(nn.Module):
    """Coordinates [N, D] in [0, 1] -> features [N, num_levels * features_per_level].

    D = 2: (x, y); D = 3: (x, y, phase) where phase = t / 24 is periodic (1 == 0). Spatial axes have
    ``res + 1`` vertices per level (the unit square's corners included); the time axis has
    ``min(res, time_max_res)`` vertices per level and wraps around. Interpolation is bilinear (D = 2) or
    trilinear (D = 3). Tables are initialised uniformly in [-1e-4, 1e-4] (as instant-ngp).
    """

    def __init__(self, dims: int = 2, num_levels: int = 12, features_per_level: int = 2, log2_table_size: int = 14,
                 base_res: int = 16, max_res: int = 512, time_max_res: int = 24):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError("--grid_dims must be 2 or 3")
        self.dims, self.num_levels, self.features = dims, num_levels, features_per_level
        self.table_size = 1 << log2_table_size
        self.out_dim = num_levels * features_per_level
        resolutions = level_resolutions(num_levels, base_res, max_res)
        rows, sizes, dense = [], [], []
        for res in resolutions:
            per_axis = [res + 1, res + 1] + ([max(1, min(res, time_max_res))] if dims == 3 else [])
            vertices = math.prod(per_axis)
            is_dense = vertices <= self.table_size
            rows.append(per_axis)
            sizes.append(vertices if is_dense else self.table_size)
            dense.append(is_dense)
        offsets = [0]
        for size in sizes:
            offsets.append(offsets[-1] + size)
        self.register_buffer("vertices", torch.tensor(rows, dtype=torch.long), persistent=False)  # [L, D]
        self.register_buffer("scale", torch.tensor([[r, r] + ([min(r, time_max_res)] if dims == 3 else [])
                                                    for r in resolutions], dtype=torch.float32), persistent=False)
        self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.long), persistent=False)
        self.register_buffer("offsets", torch.tensor(offsets[:-1], dtype=torch.long), persistent=False)
        self.register_buffer("dense", torch.tensor(dense), persistent=False)
        self.register_buffer("primes", torch.tensor(PRIMES[:dims], dtype=torch.long), persistent=False)
        corners = torch.tensor([[(c >> d) & 1 for d in range(dims)] for c in range(1 << dims)], dtype=torch.long)
        self.register_buffer("corners", corners, persistent=False)  # [2^D, D]
        self.resolutions = resolutions
        self.table = nn.Parameter(torch.empty(offsets[-1], features_per_level).uniform_(-1e-4, 1e-4))

    def corner_indices_and_weights(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Table rows [N, L, 2^D] and interpolation weights [N, L, 2^D] of every corner of every level."""
        pos = coords.to(torch.float32)[:, None, :] * self.scale  # [N, L, D]
        if self.dims == 3:  # periodic phase: scale by the level's vertex count and wrap
            pos = torch.cat([pos[..., :2], pos[..., 2:] % self.scale[:, 2:]], dim=-1)
        base = torch.floor(pos)
        frac = pos - base
        base = base.long()
        idx = base[:, :, None, :] + self.corners  # [N, L, 2^D, D]
        limit = self.vertices[None, :, None, :]
        spatial = idx[..., :2].clamp(min=torch.zeros_like(limit[..., :2]), max=limit[..., :2] - 1)
        parts = [spatial] + ([idx[..., 2:] % limit[..., 2:]] if self.dims == 3 else [])
        idx = torch.cat(parts, dim=-1)
        # dense: row-major over the level's vertex grid; hashed: XOR of coordinate x prime, mod table size
        strides = torch.ones_like(self.vertices)
        strides[:, 1] = self.vertices[:, 0]
        if self.dims == 3:
            strides[:, 2] = self.vertices[:, 0] * self.vertices[:, 1]
        dense_index = (idx * strides[None, :, None, :]).sum(-1)
        hashed = idx * self.primes
        hashed_index = hashed[..., 0]
        for d in range(1, self.dims):
            hashed_index = torch.bitwise_xor(hashed_index, hashed[..., d])
        hashed_index = hashed_index & (self.table_size - 1)
        rows = torch.where(self.dense[None, :, None], dense_index, hashed_index) + self.offsets[None, :, None]
        w = torch.where(self.corners.bool()[None, None], frac[:, :, None, :], 1.0 - frac[:, :, None, :])
        return rows, w.prod(dim=-1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        rows, weights = self.corner_indices_and_weights(coords)
        # index_select's backward (index_add) is deterministic on the CPU, unlike advanced indexing's
        values = self.table.index_select(0, rows.reshape(-1)).reshape(*rows.shape, self.features)  # [N, L, 2^D, F]
        features = (values * weights[..., None].to(values.dtype)).sum(dim=2)
        return features.reshape(coords.shape[0], self.out_dim)
