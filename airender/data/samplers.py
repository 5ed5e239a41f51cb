"""On-device batch samplers: a batch is drawn with torch random indices and gathered by indexing.

No per-sample Python and no DataLoader: the frames of the whole sequence live on the training device as
one [T * H * W, 3] tensor, and one ``index_select`` gathers a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def pixel_centres(pix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flat pixel indices [N] (y * W + x) -> pixel-centre coordinates uv [N, 2] in (0, 1), x right, y down."""
    x = (pix % width).to(torch.float32)
    y = torch.div(pix, width, rounding_mode="floor").to(torch.float32)
    return torch.stack(((x + 0.5) / width, (y + 0.5) / height), dim=1)


@dataclass
class PixelBatch:
    """A batch of B texels: where, when, and what they should be.

    frame_index [B] long index into the sequence; pix [B] long flat pixel index; uv [B, 2] pixel centres
    in (0, 1); t [B] float32 hours; target [B, 3] values in the training space.
    """

    frame_index: torch.Tensor
    pix: torch.Tensor
    uv: torch.Tensor
    t: torch.Tensor
    target: torch.Tensor


class PixelSampler:
    """Uniform random (frame, valid texel) pairs.

    Args:
        frames: [T, H, W, 3] training-space values on the training device.
        times: [T] hours of the frames.
        valid_pix: [N] long flat indices of valid texels (the mask is honoured by sampling only these).
        frame_ids: [K] long indices of the frames to train on (hold-out hours excluded).
    """

    def __init__(self, frames: torch.Tensor, times: torch.Tensor, valid_pix: torch.Tensor,
                 frame_ids: torch.Tensor):
        if frame_ids.numel() == 0:
            raise ValueError("no frames to train on")
        if valid_pix.numel() == 0:
            raise ValueError("the mask has no valid texel")
        self.num_frames, self.height, self.width, _ = frames.shape
        self.device = frames.device
        self.flat = frames.reshape(-1, 3)
        self.times = times.to(device=self.device, dtype=torch.float32)
        self.valid_pix = valid_pix.to(self.device)
        self.frame_ids = frame_ids.to(self.device)

    def sample(self, batch_size: int, generator: torch.Generator) -> PixelBatch:
        """Draw ``batch_size`` texels with replacement; ``generator`` lives on the training device."""
        pick_frame = torch.randint(self.frame_ids.numel(), (batch_size,), generator=generator, device=self.device)
        pick_pix = torch.randint(self.valid_pix.numel(), (batch_size,), generator=generator, device=self.device)
        frame_index = self.frame_ids[pick_frame]
        pix = self.valid_pix[pick_pix]
        target = self.flat.index_select(0, frame_index * (self.height * self.width) + pix)
        return PixelBatch(frame_index=frame_index, pix=pix, uv=pixel_centres(pix, self.height, self.width),
                          t=self.times[frame_index], target=target)
