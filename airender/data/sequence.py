"""The time-of-day sequence: every frame of one view (or lightmap) as one tensor on the device."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from airender.hours import HOURS_PER_DAY
from airender.errors import InputError

SOURCES: tuple[str, ...] = ("directional", "local", "sky")
"""Light sources of split lighting, in the order of ``TODSequence.components``: the sun (DirectionalOnly),
the placed lamps (LocalOnly) and the sky dome (SkyLightOnly); they add up to all light (Original)."""


@dataclass
class TODSequence:
    """Frames of one scene at several times of day.

    Attributes:
        frames: [T, H, W, 3] float32 in display space: sRGB values in [0, 1] for LDR data, linear
            radiance (>= 0) for HDR data. Row 0 is the top of the image.
        times: [T] float64 hours in [0, 24), ascending.
        mask: [H, W] bool, True = valid texel; None = every texel is valid.
        is_hdr: True for linear HDR data (EXR, contest raw), False for LDR sRGB (PNG/JPEG).
        source: where the frames were read from (for messages and the checkpoint).
        names: [T] file name (or contest key) of each frame.
        components: [T, H, W, S, 3] float32 in the display space of ``frames``, or None: the lighting split
            by source, S = len(SOURCES) in the order of :data:`SOURCES` (directional, local, sky), adding up
            to ``frames`` in linear light (virtual-texture data read with ``components=True``).
    """

    frames: torch.Tensor
    times: torch.Tensor
    mask: torch.Tensor | None
    is_hdr: bool
    source: str
    names: list[str] = field(default_factory=list)
    components: torch.Tensor | None = None

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def device(self) -> torch.device:
        return self.frames.device

    def to(self, device: torch.device | str) -> "TODSequence":
        mask = None if self.mask is None else self.mask.to(device)
        components = None if self.components is None else self.components.to(device)
        return replace(self, frames=self.frames.to(device), times=self.times.to(device), mask=mask,
                       components=components)

    def time_list(self) -> list[float]:
        return [float(t) for t in self.times.tolist()]

    def nearest_index(self, hour: float) -> tuple[int, float]:
        """Index of the frame nearest to ``hour`` on the 24 h circle, and its distance in hours."""
        diff = (self.times.double() - float(hour)) % HOURS_PER_DAY
        diff = torch.minimum(diff, HOURS_PER_DAY - diff)
        best = int(torch.argmin(diff))
        return best, float(diff[best])

    def index_of_time(self, hour: float, tolerance: float = 1e-3) -> int:
        """Index of the frame at ``hour`` (periodic: 24 == 0). Raises InputError if none."""
        best, distance = self.nearest_index(hour)
        if distance > tolerance:
            have = ", ".join(f"{t:g}" for t in self.time_list())
            raise InputError(f"{self.source}: no frame at hour {hour:g} (the data have hours {have})")
        return best

    def select(self, indices: list[int]) -> "TODSequence":
        """A sequence holding only the frames at ``indices`` (same mask and description)."""
        index = torch.as_tensor(indices, dtype=torch.long, device=self.frames.device)
        components = None if self.components is None else self.components.index_select(0, index)
        return replace(self, frames=self.frames.index_select(0, index),
                       times=self.times.index_select(0, index.to(self.times.device)),
                       names=[self.names[i] for i in indices] if self.names else [], components=components)

    def dark_sources(self) -> torch.Tensor:
        """[T, S] bool: source s is identically zero in frame t (0 in every channel of every valid texel).
        Raises ValueError for a sequence without ``components``."""
        if self.components is None:
            raise ValueError(f"{self.source}: no lighting split by source")
        valid = self.valid_pixel_index()
        return torch.stack([frame.reshape(-1, frame.shape[2], 3).index_select(0, valid).abs().amax(dim=(0, 2)) == 0
                            for frame in self.components])

    def valid_pixel_index(self) -> torch.Tensor:
        """[N_valid] long, flat indices (y * W + x) of valid texels."""
        if self.mask is None:
            return torch.arange(self.height * self.width, device=self.device)
        return torch.nonzero(self.mask.reshape(-1), as_tuple=False).squeeze(1)


def concat_sequences(sequences: list[TODSequence]) -> TODSequence:
    """The frames of several sequences of one size and dynamic range as one (mask of the first); the
    source components only when every sequence has them."""
    first = sequences[0]
    for other in sequences[1:]:
        if other.frames.shape[1:] != first.frames.shape[1:] or other.is_hdr != first.is_hdr:
            raise InputError(f"{other.source}: frames are {other.width}x{other.height} "
                             f"{'HDR' if other.is_hdr else 'LDR'}, unlike {first.source} ({first.width}x"
                             f"{first.height} {'HDR' if first.is_hdr else 'LDR'})")
    if len(sequences) == 1:
        return first
    components = None if any(s.components is None for s in sequences) else \
        torch.cat([s.components for s in sequences])
    return replace(first, frames=torch.cat([s.frames for s in sequences]), times=torch.cat([s.times for s in sequences]),
                   names=[n for s in sequences for n in s.names], source=", ".join(s.source for s in sequences),
                   components=components)


def srgb_to_linear(v: torch.Tensor) -> torch.Tensor:
    """sRGB transfer curve, inverted; the linear segment extends below 0 so gradients stay finite."""
    return torch.where(v <= 0.04045, v / 12.92, ((v.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """sRGB transfer curve (IEC 61966-2-1), linear segment below 0.0031308 (extended below 0)."""
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055)


class ValueTransform:
    """Maps display values to the training space and back.

    ``identity`` for LDR sRGB data (train on the sRGB values themselves); ``log1p`` for HDR radiance
    (train on log(1 + x), decode with expm1 and clamp at 0), which evens out the error over the many
    orders of magnitude of lightmaps; ``linear`` trains HDR values as they are.
    """

    NAMES = ("identity", "log1p", "linear")

    def __init__(self, name: str):
        if name not in self.NAMES:
            raise ValueError(f"unknown value transform {name!r} (expected one of {self.NAMES})")
        self.name = name

    def to_train(self, display: torch.Tensor) -> torch.Tensor:
        if self.name == "log1p":
            return torch.log1p(display.clamp_min(0.0))
        return display

    def to_display(self, train: torch.Tensor) -> torch.Tensor:
        if self.name == "log1p":
            return torch.expm1(train).clamp_min(0.0)
        if self.name == "linear":
            return train.clamp_min(0.0)
        return train.clamp(0.0, 1.0)

    def to_linear(self, train: torch.Tensor) -> torch.Tensor:
        """Training-space values -> linear light (sRGB decoded for LDR; unclamped, so it stays invertible)."""
        if self.name == "identity":
            return srgb_to_linear(train)
        return torch.expm1(train) if self.name == "log1p" else train

    def from_linear(self, linear: torch.Tensor) -> torch.Tensor:
        """Linear light -> training-space values (the inverse of :meth:`to_linear`)."""
        if self.name == "identity":
            return linear_to_srgb(linear)
        return torch.log1p(linear.clamp_min(-0.999)) if self.name == "log1p" else linear


def transform_for(is_hdr: bool, hdr_transform: str) -> ValueTransform:
    """The training-space transform of a dataset: identity for LDR, ``hdr_transform`` for HDR."""
    return ValueTransform(hdr_transform if is_hdr else "identity")


def is_8bit(image: torch.Tensor) -> bool:
    """True when every value is a multiple of 1/255 (an 8-bit source): storing it in 8 bits is exact."""
    return bool(torch.equal(torch.round(image * 255.0) / 255.0, image))
