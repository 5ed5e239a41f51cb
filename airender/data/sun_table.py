"""``--sun_path FILE``: the sun's direction at times of day, read from a JSON file.

Accepted forms (directions: unit vectors towards the sun, z up, any fixed horizontal axes):

* a table, at the top level or under ``"sun"`` (the baker's ``meta.json``):
  ``{"sun": {"7.50": {"direction": [x, y, z], ...}, "8": [x, y, z], ...}}``: keys are hours (0..24),
  values a direction or an object with ``"direction"``; 3 or more times, spread over the day;
* a place and a day, under ``"location"`` (the courtyard renders' ``meta.json``):
  ``{"location": {"latitude": 31.2, "longitude": 121.5, "timezone": 8, "year": 2024, "month": 6, "day": 21}}``
  (degrees north, degrees east, hours east of UTC; the day may also sit beside it as ``"date": {"year",
  "month", "day"}``, as in the sample scene's ``meta.json``): the sun every half hour from NOAA's
  solar-position formulas (:mod:`airender.solar`; x south, y east).
"""
from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

from airender.errors import InputError
from airender.solar import Site, sun_position

#: hours between the directions computed for a ``"location"``
LOCATION_STEP_HOURS = 0.5


def read_sun_table(path: str | Path) -> dict[float, tuple[float, float, float]]:
    """{hour: unit direction (x, y, z)} from a sun-path file; InputError naming the file and the problem."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"--sun_path {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"--sun_path {path}: not a JSON file ({error})") from None
    if not isinstance(document, dict):
        raise InputError(f"--sun_path {path}: expected a JSON object with \"sun\" or \"location\"")
    if isinstance(document.get("location"), dict) and "sun" not in document:
        day = document.get("date") if isinstance(document.get("date"), dict) else {}
        return _from_location(path, {**day, **document["location"]})
    table = document.get("sun", document)
    if not isinstance(table, dict):
        raise InputError(f"--sun_path {path}: \"sun\" must map hours to directions")
    directions: dict[float, tuple[float, float, float]] = {}
    for key, value in table.items():
        try:
            hour = float(key)
        except ValueError:
            raise InputError(f"--sun_path {path}: {key!r} is not an hour (expected keys like \"7.50\")") from None
        vector = value.get("direction") if isinstance(value, dict) else value
        if not (isinstance(vector, list) and len(vector) == 3 and all(isinstance(c, (int, float)) for c in vector)):
            raise InputError(f"--sun_path {path}: the direction at {key} is not three numbers")
        norm = math.sqrt(sum(c * c for c in vector))
        if not 0.0 <= hour <= 24.0 or not math.isfinite(norm) or norm == 0.0:
            raise InputError(f"--sun_path {path}: the direction at {key} is zero, not finite or outside 0..24 h")
        directions[hour % 24.0] = tuple(c / norm for c in vector)
    if len(directions) < 3:
        raise InputError(f"--sun_path {path}: the sun's direction at 3 or more times of day is needed "
                         f"(found {len(directions)}; or give a \"location\")")
    return dict(sorted(directions.items()))


def _from_location(path: Path, location: dict) -> dict[float, tuple[float, float, float]]:
    try:
        site = Site(latitude=float(location["latitude"]), longitude=float(location["longitude"]),
                    timezone=float(location.get("timezone", 0.0)),
                    day=date(int(location["year"]), int(location["month"]), int(location["day"])))
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"--sun_path {path}: \"location\" needs latitude, longitude, year, month and day "
                         f"(and timezone in hours east of UTC): {error}") from None
    if not (-90.0 <= site.latitude <= 90.0 and -180.0 <= site.longitude <= 180.0):
        raise InputError(f"--sun_path {path}: latitude or longitude out of range")
    steps = int(round(24.0 / LOCATION_STEP_HOURS))
    return {i * LOCATION_STEP_HOURS: sun_position(site, i * LOCATION_STEP_HOURS).direction for i in range(steps)}
