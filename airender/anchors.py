"""Classical anchors that need no training, to show where a neural field beats simple alternatives.

* :class:`NeighbourBlend` stores every training frame (8-bit for LDR data, float16 for HDR) and decodes
  a time as the linear blend of the two neighbouring stored hours (periodic), the roadmap's appendix
  "interpolation blending between neighbouring hours".
* :class:`PCABasis` stores the mean frame and K principal basis images (8-bit, with a float32 scale and
  offset per image) plus K coefficients per training hour; a time decodes as the mean plus the basis
  weighted by the coefficients, interpolated periodically (Catmull-Rom) between the hours.

Both work in the training space (sRGB values for LDR data, log1p radiance for HDR) and expose the same
decoding interface as a trained field: ``desc``, ``decode(t)`` -> display [H, W, 3], ``nbytes``.
"""
from __future__ import annotations

import torch

from airender.data.description import DataDescription
from airender.data.sequence import TODSequence, transform_for
from airender.hours import neighbouring_hours


def neighbours(times: torch.Tensor, t: float) -> tuple[int, int, float]:
    """Indices of the stored hours before and after ``t`` (periodic) and the weight of the later one."""
    before, after, weight = neighbouring_hours(times, torch.tensor([float(t)], dtype=times.dtype))
    return int(before[0]), int(after[0]), float(weight[0])


def _quantize_uint8(values: torch.Tensor) -> torch.Tensor:
    """Round each row of [K, D] to 256 levels between its min and max (what an 8-bit store holds)."""
    low = values.min(dim=1, keepdim=True).values
    high = values.max(dim=1, keepdim=True).values
    step = (high - low).clamp_min(1e-12) / 255.0
    return torch.round((values - low) / step) * step + low


def _description(sequence: TODSequence, transform_name: str) -> DataDescription:
    times = sequence.time_list()
    return DataDescription(sequence.height, sequence.width, sequence.is_hdr, transform_name, times,
                           baseline_time=times[0], has_mask=sequence.mask is not None, source=sequence.source,
                           names=list(sequence.names), train_times=times)


class NeighbourBlend:
    """Every training frame stored; decode = linear blend of the two neighbouring hours."""

    def __init__(self, sequence: TODSequence, hdr_transform: str = "log1p"):
        self.transform = transform_for(sequence.is_hdr, hdr_transform)
        self.desc = _description(sequence, self.transform.name)
        frames = self.transform.to_train(sequence.frames.float())
        self.frames = frames.half().float() if sequence.is_hdr else frames
        self.times = sequence.times.double().cpu()
        self.nbytes = sequence.frames.numel() * (2 if sequence.is_hdr else 1)

    def decode(self, t: float) -> torch.Tensor:
        i0, i1, w = neighbours(self.times, t)
        return self.transform.to_display(torch.lerp(self.frames[i0], self.frames[i1], w))


class PCABasis:
    """Mean + K principal basis images with periodically interpolated coefficients."""

    def __init__(self, sequence: TODSequence, k: int = 8, hdr_transform: str = "log1p", quantize: bool = True):
        self.transform = transform_for(sequence.is_hdr, hdr_transform)
        self.desc = _description(sequence, self.transform.name)
        frames = self.transform.to_train(sequence.frames.double()).reshape(sequence.num_frames, -1)
        self.k = min(k, sequence.num_frames)
        mean = frames.mean(dim=0, keepdim=True)
        _, _, vh = torch.linalg.svd(frames - mean, full_matrices=False)
        basis = vh[: self.k]
        stored = torch.cat([mean, basis])
        if quantize:
            stored = _quantize_uint8(stored)
        self.mean, self.basis = stored[:1], stored[1:]
        # least-squares coefficients against the stored (quantised) basis
        self.coeffs = torch.linalg.lstsq(self.basis.T, (frames - self.mean).T).solution.T  # [T, K]
        self.times = sequence.times.double().cpu()
        self.shape = (sequence.height, sequence.width, 3)
        pixels = sequence.height * sequence.width * 3
        self.nbytes = (self.k + 1) * (pixels * (1 if quantize else 4) + 8) + self.coeffs.numel() * 4

    def coefficients(self, t: float) -> torch.Tensor:
        """Catmull-Rom interpolation of the coefficients between the neighbouring hours (periodic)."""
        i0, i1, w = neighbours(self.times, t)
        n = self.times.numel()
        p0, p1, p2, p3 = (self.coeffs[(i0 - 1) % n], self.coeffs[i0], self.coeffs[i1], self.coeffs[(i1 + 1) % n])
        w2, w3 = w * w, w * w * w
        return 0.5 * (2 * p1 + (-p0 + p2) * w + (2 * p0 - 5 * p1 + 4 * p2 - p3) * w2 + (-p0 + 3 * p1 - 3 * p2 + p3) * w3)

    def decode(self, t: float) -> torch.Tensor:
        values = self.mean[0] + self.coefficients(t) @ self.basis
        return self.transform.to_display(values.float().reshape(self.shape))
