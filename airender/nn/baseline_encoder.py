"""BaselineEncoder: a shallow CNN that gives every pixel context from the baseline frame."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BaselineEncoder(nn.Module):
    """Baseline frame [1, 3, H, W] (training space) -> feature map F0 [1, C, ceil(H / ds), ceil(W / ds)].

    Three convolutions (3x3 with stride ``downsample``, 3x3, 1x1) with ReLU between them; a receptive
    field of 5 x 5 texels at ds = 1. :meth:`sample` reads F0 bilinearly at pixel-centre coordinates
    uv [N, 2] in (0, 1) (``grid_sample``, align_corners=False), so at ds = 1 it returns F0 at the pixel.
    """

    def __init__(self, channels: int = 32, downsample: int = 1):
        super().__init__()
        if channels < 1 or downsample < 1:
            raise ValueError("--be_channels and --be_downsample must be positive")
        self.out_dim = channels
        self.downsample = downsample
        self.net = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=downsample, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    @staticmethod
    def sample(features: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """Bilinear features [N, C] of a map [1, C, h, w] at uv [N, 2] (pixel centres of any resolution)."""
        grid = (uv * 2.0 - 1.0)[None, None].to(features.dtype)
        sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return sampled[0, :, 0].transpose(0, 1)
