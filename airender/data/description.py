"""The data description: what a model was trained on, saved in every checkpoint and pack."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class DataDescription:
    """What a model was trained on; saved in every checkpoint.

    height, width: training resolution in pixels; is_hdr: linear HDR (True) or sRGB LDR data;
    transform: training-space transform name (see ValueTransform); times: hours of the frames;
    baseline_time: hour of the residual baseline; has_mask: whether a validity mask was given;
    train_times: hours actually trained on (hold-outs removed); baseline_8bit: the baseline frame holds
    only multiples of 1/255 (an 8-bit source), so storing it as 8 bits is exact; sources: the light
    sources a model trained with ``components`` predicts, in order (empty otherwise); source_off_hours:
    per source, the trained hours at which it is identically zero (0 at every valid texel), from which
    its on/off gate is built; sun_table: with ``--sun_path FILE``, {hour: unit direction towards the sun}
    read from the file (the field fits its sun path to it; empty otherwise).
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
    baseline_8bit: bool = False
    sources: list[str] = field(default_factory=list)
    source_off_hours: dict[str, list[float]] = field(default_factory=dict)
    sun_table: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataDescription":
        return cls(**d)
