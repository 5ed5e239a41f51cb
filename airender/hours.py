"""Time of day from file names and contest keys. Time is data: it is never taken from sort order."""
from __future__ import annotations

import math
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


def parse_times(spec: str, flag: str = "--times") -> list[float]:
    """Times of day from ``spec``: comma-separated hours and ranges START:STOP:STEP (STOP excluded, e.g.
    ``0:24:0.25`` is every 15 minutes, 96 times; ``6:20:0.1`` every 6 minutes from 6:00 to 19:54). Each time has
    at most two decimals (how the lightmap layout names times) and lies in [0, 24]; 0 and 24 are one time
    (midnight, kept as 24). Returns the distinct times ascending. Raises ValueError naming ``flag`` for a spec
    it cannot read.

    >>> parse_times("7.5, 0:3:1")
    [1.0, 2.0, 7.5, 24.0]
    """
    times: set[float] = set()
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        fields = item.split(":")
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise ValueError(f"{flag} {spec}: {item!r} is not an hour or a range START:STOP:STEP") from None
        if len(values) == 1:
            hours = values
        elif len(values) == 3 and values[2] > 0 and values[0] <= values[1]:
            start, stop, step = values
            hours = [start + k * step for k in range(max(0, math.ceil((stop - start) / step - 1e-9)))]
        else:
            raise ValueError(f"{flag} {spec}: {item!r} is not a range START:STOP:STEP with STEP > 0 and "
                             f"START <= STOP")
        for hour in hours:
            if abs(hour - round(hour, 2)) > 1e-6:
                raise ValueError(f"{flag} {spec}: {hour:g} has more than two decimals (the lightmap layout names "
                                 f"times with two)")
            hour = round(hour, 2)
            if not 0.0 <= hour <= HOURS_PER_DAY:
                raise ValueError(f"{flag} {spec}: {hour:g} is not a time of day in [0, 24]")
            times.add(HOURS_PER_DAY if hour in (0.0, HOURS_PER_DAY) else hour)
    if not times:
        raise ValueError(f"{flag}: {spec!r} names no time")
    return sorted(times)
