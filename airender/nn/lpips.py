"""LPIPS (Zhang et al. 2018), AlexNet backbone, version 0.1, loaded from local weights only.

The ``lpips`` package downloads its AlexNet backbone through torchvision at first use; this module is a
small faithful re-implementation that reads the same weights from a file, so it works offline.

Weight files, searched in this order by :func:`find_lpips_weights`:
1. an explicit path (``--lpips_weights``), then the ``AIRENDER_LPIPS_WEIGHTS`` environment variable:
   one file holding ``features.{0,3,6,8,10}.{weight,bias}`` (torchvision AlexNet names) and
   ``lin{0..4}.model.1.weight`` (the lpips package's v0.1 heads);
2. the torch hub cache ($TORCH_HOME/hub/checkpoints): such a combined ``lpips_alex_v0.1.pth``, or the
   standard pair ``alexnet-owt-7be5be79.pth`` (torchvision) + the lpips package's ``weights/v0.1/alex.pth``.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

ENV_VAR = "AIRENDER_LPIPS_WEIGHTS"
COMBINED_NAME = "lpips_alex_v0.1.pth"
TORCHVISION_ALEXNET = "alexnet-owt-7be5be79.pth"
TAP_CHANNELS = (64, 192, 384, 256, 256)


@dataclass
class LPIPSWeightsSource:
    """Where LPIPS weights were found: ``paths`` to load (one combined file, or backbone + heads), or
    ``paths == []`` with ``reason`` saying why LPIPS is unavailable."""

    paths: list[Path]
    reason: str

    @property
    def available(self) -> bool:
        return bool(self.paths)


def _hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_lpips_weights(explicit: str | os.PathLike | None = None) -> LPIPSWeightsSource:
    """Locate LPIPS-Alex v0.1 weights without any download (see the module docstring)."""
    for origin, value in (("--lpips_weights", explicit), (ENV_VAR, os.environ.get(ENV_VAR))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                return LPIPSWeightsSource([], f"{origin} names {path}, which does not exist")
            return LPIPSWeightsSource([path], f"from {origin}")
    hub = _hub_checkpoints()
    if (hub / COMBINED_NAME).is_file():
        return LPIPSWeightsSource([hub / COMBINED_NAME], f"from the torch hub cache ({hub})")
    spec = importlib.util.find_spec("lpips")
    heads = None
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / "alex.pth"
        heads = candidate if candidate.is_file() else None
    if (hub / TORCHVISION_ALEXNET).is_file() and heads is not None:
        return LPIPSWeightsSource([hub / TORCHVISION_ALEXNET, heads], "from the torch hub cache and the lpips package")
    return LPIPSWeightsSource([], f"no LPIPS-Alex v0.1 weights: pass --lpips_weights FILE or set {ENV_VAR} "
                                  f"(e.g. to lpips_alex_v0.1.pth); none in {hub} either")


class LPIPSAlex(nn.Module):
    """LPIPS-Alex v0.1 distance.

    ``forward(x, y)``: x, y [B, 3, H, W] with values in [-1, 1] (H, W >= 32 for the five taps to be
    non-empty); returns [B] distances (0 for identical images, larger = more different). Differentiable.
    Network: input scaling, AlexNet conv1..conv5 taps after each ReLU, channel-wise unit normalisation
    (eps 1e-10), squared difference, 1x1 linear head without bias, spatial mean, sum over the taps.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(),  # 0, 1 -> tap 1
            nn.MaxPool2d(3, 2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(),  # 2..4 -> tap 2
            nn.MaxPool2d(3, 2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),  # 5..7 -> tap 3
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),  # 8, 9 -> tap 4
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(),  # 10, 11 -> tap 5
        )
        self.tap_after = (1, 4, 7, 9, 11)
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in TAP_CHANNELS)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_source(cls, source: LPIPSWeightsSource, device: torch.device | str = "cpu") -> "LPIPSAlex":
        if not source.available:
            raise FileNotFoundError(source.reason)
        state: dict[str, torch.Tensor] = {}
        for path in source.paths:
            try:
                loaded = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise ValueError(f"{path}: not a readable LPIPS weight file ({type(exc).__name__})") from None
            state.update(loaded)
        model = cls()
        mapped = {}
        for key, value in state.items():
            if key.startswith("features."):
                mapped[key] = value
            elif key.startswith("lin") and key.endswith(".model.1.weight"):
                mapped[f"heads.{int(key[3])}.weight"] = value
        missing = sorted(set(model.state_dict()) - set(mapped) - {"shift", "scale"})
        if missing:
            raise ValueError(f"{', '.join(map(str, source.paths))}: LPIPS weights lack {missing}")
        model.load_state_dict(mapped, strict=False)
        return model.to(device)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"LPIPS expects two [B, 3, H, W] tensors of one shape, got {tuple(x.shape)} "
                             f"and {tuple(y.shape)}")
        batch = x.shape[0]
        h = torch.cat([x, y]).to(self.shift.dtype)
        h = (h - self.shift) / self.scale
        total = h.new_zeros(batch)
        tap = 0
        for index, layer in enumerate(self.features):
            h = layer(h)
            if index == self.tap_after[tap]:
                norm = torch.sqrt(torch.sum(h * h, dim=1, keepdim=True))
                unit = h / (norm + 1e-10)
                diff = (unit[:batch] - unit[batch:]) ** 2
                total = total + self.heads[tap](diff).mean(dim=(1, 2, 3))
                tap += 1
                if tap == len(self.tap_after):
                    break
        return total
