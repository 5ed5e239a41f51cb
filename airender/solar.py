"""Where the sun is: NOAA's general solar-position formulas, as a world-frame direction.

The formulas are those of NOAA's Global Monitoring Laboratory ("General Solar Position Calculations"):
fractional year, equation of time, declination, true solar time, hour angle, zenith and azimuth. The
elevation is geometric (no atmospheric refraction); the error is well under a degree, which is plenty
for lighting.

World frame (as in ``scene.py``): z up, +x south, +y east. Azimuth is measured clockwise from north.
"""
from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date

from airender.hours import HOURS_PER_DAY


@dataclass(frozen=True)
class Site:
    """Where and when the level is lit: degrees north, degrees east, the time zone of the clock in hours
    east of UTC, and the calendar day."""

    latitude: float = 45.4
    longitude: float = 12.3
    timezone: float = 1.0
    day: date = date(2024, 6, 21)


@dataclass(frozen=True)
class SunPosition:
    """The sun at one clock time: ``direction`` a unit world vector towards the sun (x south, y east,
    z up), ``elevation_deg`` above the horizon (negative at night), ``azimuth_deg`` clockwise from north."""

    hour: float
    direction: tuple[float, float, float]
    elevation_deg: float
    azimuth_deg: float

    @property
    def above_horizon(self) -> bool:
        return self.elevation_deg > 0.0

    def as_dict(self) -> dict:
        return {"direction": [round(c, 6) for c in self.direction], "elevation_deg": round(self.elevation_deg, 4),
                "azimuth_deg": round(self.azimuth_deg, 4)}


def sun_position(site: Site, hour: float) -> SunPosition:
    """The sun at local clock time ``hour`` (0 <= hour <= 24; 24 is the midnight that starts the same day,
    like 0) on ``site.day``."""
    if not 0.0 <= hour <= HOURS_PER_DAY:
        raise ValueError(f"hour {hour} is outside 0..24")
    clock = hour % HOURS_PER_DAY
    day_of_year = site.day.timetuple().tm_yday
    days_in_year = 366 if calendar.isleap(site.day.year) else 365
    gamma = 2.0 * math.pi / days_in_year * (day_of_year - 1 + (clock - 12.0) / 24.0)
    eq_time_min = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                            - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
            - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
            - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    time_offset_min = eq_time_min + 4.0 * site.longitude - 60.0 * site.timezone
    true_solar_min = clock * 60.0 + time_offset_min
    hour_angle = math.radians(true_solar_min / 4.0 - 180.0)
    lat = math.radians(site.latitude)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    elevation = math.pi / 2 - math.acos(max(-1.0, min(1.0, cos_zenith)))
    # Azimuth clockwise from north; the atan2 form is unambiguous in the morning and the afternoon.
    azimuth = math.atan2(math.sin(hour_angle),
                         math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat)) + math.pi
    cos_el = math.cos(elevation)
    direction = (-math.cos(azimuth) * cos_el, math.sin(azimuth) * cos_el, math.sin(elevation))
    return SunPosition(hour=hour, direction=direction, elevation_deg=math.degrees(elevation),
                       azimuth_deg=math.degrees(azimuth) % 360.0)
