"""Checks of command-line values and destinations, made before any work or any write.

Each raises :class:`~airender.errors.InputError` (or ``OutputError``) with one line naming the flag or
path and the problem; the command line prints it and exits with status 2.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

from airender.hours import HOURS_PER_DAY
from airender.errors import InputError, OutputError

MAX_OUTPUT_SIDE = 16384
MAX_OUTPUT_PIXELS = 4096 * 4096  # a whole frame is decoded at once: bound its memory (about 12 GB of caches)


def check_hour(value: float, flag: str) -> float:
    """A time of day in [0, 24] (24 is midnight); NaN, infinities and other values are an error."""
    if not math.isfinite(value):
        raise InputError(f"{flag}: must be a finite time of day in [0, 24], got {value}")
    if not 0.0 <= value <= HOURS_PER_DAY:
        raise InputError(f"{flag}: must be a time of day in [0, 24], got {value:g}")
    return float(value)


def check_output_size(height: int, width: int) -> tuple[int, int]:
    """A frame size that can be decoded: both sides in [1, MAX_OUTPUT_SIDE], at most MAX_OUTPUT_PIXELS."""
    if height < 1 or width < 1:
        raise InputError(f"--width/--height: the output size must be positive, got {width}x{height}")
    if max(height, width) > MAX_OUTPUT_SIDE or height * width > MAX_OUTPUT_PIXELS:
        raise InputError(f"--width/--height: {width}x{height} is too large (at most {MAX_OUTPUT_SIDE} a side and "
                         f"{MAX_OUTPUT_PIXELS:,} pixels)")
    return height, width


def _first_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_dir(folder: str | os.PathLike) -> Path:
    """A folder that exists and is writable, or can be created (its first existing ancestor is a
    writable folder)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: is a file, not a folder")
    ancestor = _first_existing(folder)
    if not ancestor.is_dir():
        raise OutputError(f"{folder}: cannot be created: {ancestor} is a regular file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: not writable ({ancestor} denies write permission)")
    return folder


def check_output_file(path: str | os.PathLike) -> Path:
    """A file path whose folder exists and is writable or can be created; not an existing folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, not a file")
    ancestor = _first_existing(path.parent)
    if not ancestor.is_dir():
        raise OutputError(f"{path}: cannot be created: {ancestor} is a regular file")
    check_output_dir(path.parent)
    return path
