"""Hash encoding against a direct per-level, per-corner reference; periodic time."""
import itertools

import pytest
import torch

from airender.nn.encodings import PeriodicSplineTimeCode
from airender.nn.hashgrid import PRIMES, HashGridEncoding


def reference(enc: HashGridEncoding, coords: torch.Tensor) -> torch.Tensor:
    """Straightforward loops over levels and corners, written from the definition."""
    out = []
    for level, res in enumerate(enc.resolutions):
        n_t = min(res, 24) if enc.dims == 3 else None
        scale = [res, res] + ([n_t] if enc.dims == 3 else [])
        vertices = [res + 1, res + 1] + ([n_t] if enc.dims == 3 else [])
        offset = int(enc.offsets[level])
        dense = bool(enc.dense[level])
        feats = torch.zeros(coords.shape[0], enc.features)
        for corner in itertools.product((0, 1), repeat=enc.dims):
            weight = torch.ones(coords.shape[0])
            index = torch.zeros(coords.shape[0], dtype=torch.long)
            hashed = torch.zeros(coords.shape[0], dtype=torch.long)
            stride = 1
            for d in range(enc.dims):
                pos = coords[:, d] * scale[d]
                if d == 2:
                    pos = pos % scale[d]
                base = torch.floor(pos)
                frac = pos - base
                i = base.long() + corner[d]
                i = i % vertices[d] if d == 2 else i.clamp(0, vertices[d] - 1)
                weight = weight * (frac if corner[d] else 1 - frac)
                index = index + i * stride
                stride *= vertices[d]
                hashed = hashed ^ (i * PRIMES[d])
            row = index if dense else hashed % enc.table_size
            feats = feats + weight[:, None] * enc.table[offset + row]
        out.append(feats)
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("dims", [2, 3])
def test_hash_encoding_matches_reference(dims):
    torch.manual_seed(0)
    enc = HashGridEncoding(dims=dims, num_levels=6, features_per_level=3, log2_table_size=9, base_res=4, max_res=96)
    with torch.no_grad():
        enc.table.normal_()
    assert enc.dense[0] and not enc.dense[-1]  # both kinds of level are exercised
    coords = torch.rand(257, dims)
    coords[0] = 0.0
    coords[1] = 1.0 - 1e-7
    fast, slow = enc(coords), reference(enc, coords)
    assert fast.shape == (257, 18) and torch.allclose(fast, slow, atol=1e-5)
    weights = torch.randn(257, 18)
    (grad_fast,) = torch.autograd.grad((enc(coords) * weights).sum(), enc.table)
    (grad_slow,) = torch.autograd.grad((reference(enc, coords) * weights).sum(), enc.table)
    assert torch.allclose(grad_fast, grad_slow, atol=1e-4)


def test_time_axis_is_periodic():
    torch.manual_seed(1)
    enc = HashGridEncoding(dims=3, num_levels=4, features_per_level=2, log2_table_size=10, base_res=4, max_res=64)
    with torch.no_grad():
        enc.table.normal_()
    xy = torch.rand(50, 2)
    at = lambda phase: enc(torch.cat([xy, torch.full((50, 1), phase)], dim=1))  # noqa: E731
    assert torch.allclose(at(0.0), at(1.0), atol=1e-6)
    assert torch.allclose(at(0.999999), at(0.0), atol=1e-3)  # continuous across midnight
    code = PeriodicSplineTimeCode(num_knots=24, code_dim=5)
    t = torch.tensor([0.0, 24.0, -24.0, 23.9999, 0.0001])
    c = code(t)
    assert torch.allclose(c[0], c[1], atol=1e-6) and torch.allclose(c[0], c[2], atol=1e-6)
    assert torch.allclose(c[3], c[4], atol=1e-3)
    _, w = code.weights(torch.rand(100) * 24)
    assert torch.allclose(w.sum(dim=1), torch.ones(100))
