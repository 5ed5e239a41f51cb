"""Time of day from file names and contest keys. Time is data: it is never taken from sort order."""
from __future__ import annotations

import re
from pathlib import Path

import torch

HOURS_PER_DAY = 24.0
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def hour_from_name(name: str | Path) -> float:
    """The hour of day encoded in a file name: the last number of its stem.

    ``tod_7.png`` -> 7.0, ``tod_7.5.png`` -> 7.5, ``hour_07.exr`` -> 7.0, ``07.png`` -> 7.0,
    ``tod_24.png`` -> 0.0 (24 == 0). Raises ``ValueError`` when the stem holds no number in [0, 24].
    """
    stem = Path(name).name
    for suffix in (".png", ".jpg", ".jpeg", ".exr", ".PNG", ".JPG", ".JPEG", ".EXR"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    numbers = _NUMBER.findall(stem)
    if not numbers:
        raise ValueError("no time of day in the file name (expected e.g. tod_7.png or tod_7.5.png)")
    hour = float(numbers[-1])
    if hour > HOURS_PER_DAY:
        raise ValueError(f"the number {numbers[-1]} in the file name is not an hour of day (0..24)")
    return hour % HOURS_PER_DAY


def hour_from_contest_key(key: str) -> float:
    """Contest time keys are the hour times 100 as an integer string: "1810" -> 18.1, "550" -> 5.5."""
    if not re.fullmatch(r"\d+", key.strip()):
        raise ValueError(f"time key {key!r} is not an integer string (hour x 100)")
    hour = int(key) / 100.0
    if hour > HOURS_PER_DAY:
        raise ValueError(f"time key {key!r} is beyond 24:00")
    return hour % HOURS_PER_DAY


def wrap_hours(t: torch.Tensor | float) -> torch.Tensor | float:
    """Map hours onto [0, 24): time is periodic, 24 == 0 and -1 == 23."""
    return t % HOURS_PER_DAY


def neighbouring_hours(knots: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For hours t [N] and ascending hours ``knots`` [K] in [0, 24): the indices [N] (long) of the knot
    before and after each t, cyclically, and the weight [N] in [0, 1) of the later one (0 exactly at a
    knot), computed in the knots' dtype."""
    wrapped = t.to(knots.dtype) % HOURS_PER_DAY
    after = torch.searchsorted(knots, wrapped, right=True)
    before, after = (after - 1) % knots.numel(), after % knots.numel()
    span = (knots[after] - knots[before]) % HOURS_PER_DAY
    span = torch.where(span == 0, torch.full_like(span, HOURS_PER_DAY), span)
    return before, after, ((wrapped - knots[before]) % HOURS_PER_DAY) / span
