"""Bake the procedural level's lighting at every hour into the virtual-texture lightmap layout.

Pipeline: ``scene.build_level`` -> ``unwrap.unwrap_level`` (K atlases) -> per atlas ``raster.rasterize``
(texel positions, normals, mask, gutter plan) -> ``lighting.AtlasLighting`` (per source, shadow rays with
Mitsuba) -> ``airender.data.virtual_texture.VTWriter``, hour by hour (memory holds one atlas's texels,
not the day), into a staging folder renamed onto ``out`` at the end, with ``meta.json`` (every parameter
and the sun at every baked time), ``contact_sheet.png`` and ``level.glb`` (the level's geometry with its
lightmap UVs: :mod:`airender.bake.level_file`).
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from airender import __version__
from airender.bake.lighting import (LAMP_MIN_DISTANCE_M, LAMP_SOURCE_RADIUS_M, LIGHTS_OFF_FROM, LIGHTS_OFF_TO,
                                    SKY_HORIZONTAL, SKY_NIGHT_RADIANCE, SUN_EXTINCTION, SUN_HALF_ANGLE_DEG,
                                    SUN_IRRADIANCE, SURFACE_OFFSET_M, AtlasLighting, SampleCounts, lights_on)
from airender.bake.preview import sheet_times, shrink, write_contact_sheet
from airender.bake.raster import rasterize
from airender.bake.level_file import LEVEL_FILE, write_level
from airender.bake.scene import build_level
from airender.bake.tracer import ShadowTracer, import_mitsuba
from airender.bake.unwrap import unwrap_level
from airender.data.virtual_texture import COMPONENTS, VTWriter, check_output_folder, time_text
from airender.errors import InputError
from airender.fileio import write_json_atomic
from airender.progress import progress as progress_bar
from airender.solar import Site, sun_position

HOURS = tuple(float(h) for h in range(1, 25))
HELD_OUT = (2.5, 5.9, 7.5, 10.25, 13.5, 16.75, 18.1, 19.5, 22.5)
MIN_SIZE, MAX_SIZE = 16, 16384
DILATE_TEXELS = 4
FIRST_LIGHTMAP_ID = 1  # ids as in the published example of the layout ("id": 1, ...)
OVERWRITE_FLAG = "--overwrite"
HOLDOUT_FOLDER = "holdout"  # --holdout_times: a dataset of their own inside the output


@dataclass
class BakeSettings:
    """What to bake. ``size``: texels a side of the largest atlas (a power of two); ``atlases``: how many;
    ``parts``: files per lightmap along its height (divides ``size``); ``spp``: sky samples per texel;
    ``seed``: the level and the sample patterns; ``site``: where and when the sun shines; ``times``: the
    times of day to bake (None: the hours 1..24 and the held-out times ``HELD_OUT``, in one dataset);
    ``holdout_times``: times baked into a dataset of their own, ``holdout/`` inside the output, that never
    enters training (``airender eval --extra OUT/holdout``)."""

    size: int = 256
    atlases: int = 2
    parts: int = 1
    spp: int = 8
    seed: int = 0
    site: Site = field(default_factory=Site)
    times: tuple[float, ...] | None = None
    holdout_times: tuple[float, ...] = ()

    def validate(self) -> None:
        """Raise ``InputError("--flag: problem")`` for a value the baker cannot use."""
        for name in ("size", "atlases", "parts", "spp", "seed"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise InputError(f"--{name}: {value!r} is not an integer")
        if not (MIN_SIZE <= self.size <= MAX_SIZE) or self.size & (self.size - 1):
            raise InputError(f"--size: {self.size} is not a power of two between {MIN_SIZE} and {MAX_SIZE}")
        if self.parts < 1 or self.size % self.parts:
            raise InputError(f"--parts: {self.parts} does not divide the atlas size {self.size} into equal parts")
        if self.atlases < 1:
            raise InputError(f"--atlases: {self.atlases} is less than 1")
        if self.spp < 1:
            raise InputError(f"--spp: {self.spp} is less than 1")
        if self.seed < 0:
            raise InputError(f"--seed: {self.seed} is negative")
        if not -90.0 <= self.site.latitude <= 90.0:
            raise InputError(f"--latitude: {self.site.latitude} is outside -90..90")
        if not -180.0 <= self.site.longitude <= 180.0:
            raise InputError(f"--longitude: {self.site.longitude} is outside -180..180")
        if not -12.0 <= self.site.timezone <= 14.0:
            raise InputError(f"--timezone: {self.site.timezone} is outside -12..14 hours")
        if self.holdout_times and self.times is None:
            raise InputError("--holdout_times: give the training times too (--times), so that the held-out times "
                             "are baked apart from them")
        shared = sorted(set(self.times or ()) & set(self.holdout_times))
        if shared:
            raise InputError(f"--holdout_times: {', '.join(f'{t:g}' for t in shared)} also in --times; a held-out "
                             f"time is never a training time")
        for name in ("times", "holdout_times"):
            for t in getattr(self, name) or ():
                time_text(t)  # InputError for a time the layout cannot name

    def as_dict(self) -> dict:
        site = asdict(self.site)
        site["day"] = self.site.day.isoformat()
        times = {} if self.times is None else {"times": list(self.times), "holdout_times": list(self.holdout_times)}
        return {"size": self.size, "atlases": self.atlases, "parts": self.parts, "spp": self.spp, "seed": self.seed,
                **site, **times}


@dataclass
class BakeResult:
    """What a bake wrote: the folder, the lightmaps (``id``, ``width``, ``height``, ``parts``, ``valid_texels``),
    the baked times and the seconds each stage took."""

    out: Path
    lightmaps: list[dict]
    times: list[float]
    seconds: dict[str, float]
    holdout_times: list[float] = field(default_factory=list)  # baked into out / HOLDOUT_FOLDER


def baked_times(settings: BakeSettings | None = None) -> list[float]:
    """The times of the training dataset: ``settings.times``, or by default the whole hours 1..24 (24 =
    midnight) and then the held-out fractional times."""
    if settings is not None and settings.times is not None:
        return list(settings.times)
    return list(HOURS) + list(HELD_OUT)


def _require_scene_extra() -> dict[str, str]:
    """Import the optional ``scene`` extra; returns its versions or raises ``InputError`` with the install line."""
    versions = {"mitsuba": import_mitsuba().__version__}
    for name in ("trimesh", "xatlas"):
        try:
            module = __import__(name)
        except ImportError as exc:
            raise InputError(f"{name}: not installed ({exc}); run `pip install -e .[scene]`") from exc
        versions[name] = getattr(module, "__version__", "unknown")
    return versions


def bake(out: str | Path, settings: BakeSettings, overwrite: bool = False, progress: bool = True) -> BakeResult:
    """Bake every source at every time of ``baked_times()`` into ``out`` in the virtual-texture layout
    (``airender.data.virtual_texture``), atomically.

    Raises ``InputError`` for bad settings, an existing non-empty ``out`` without ``overwrite``, or a
    missing optional dependency, before anything is written.
    """
    out = Path(out)
    settings.validate()
    check_output_folder(out, overwrite, OVERWRITE_FLAG)
    versions = _require_scene_extra()
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    level = build_level(settings.seed)
    unwrap = unwrap_level(level, settings.size, settings.atlases, min_side=settings.parts)
    seconds["level_and_unwrap"] = time.perf_counter() - started
    tracer = ShadowTracer(level)
    samples = SampleCounts.from_spp(settings.spp)
    times = baked_times(settings)
    holdout = list(settings.holdout_times)
    sheet = sheet_times(times)
    suns = {t: sun_position(settings.site, t) for t in times + holdout}
    lightmaps: list[dict] = []
    panels: dict[tuple[str, float], np.ndarray] = {}
    sheet_valid = None
    seconds["raster"] = seconds["lighting_and_writing"] = 0.0
    if tracer.variant != "llvm_ad_rgb":
        print(f"note: Mitsuba's LLVM back end is unavailable here; tracing with {tracer.variant}, one ray at a time "
              "(slow)", file=sys.stderr)

    with VTWriter(out, overwrite, OVERWRITE_FLAG) as writer, \
            contextlib.ExitStack() as stack, \
            progress_bar(len(unwrap.atlases) * (2 + len(times) + len(holdout)), "bake", "step",
                         disable=not progress) as bar:
        held_writer = stack.enter_context(VTWriter(writer.root / HOLDOUT_FOLDER)) if holdout else None
        for charts in unwrap.atlases:
            lightmap_id = FIRST_LIGHTMAP_ID + charts.index
            t0 = time.perf_counter()
            geometry = rasterize(charts, DILATE_TEXELS)
            for target in filter(None, (writer, held_writer)):
                target.begin(lightmap_id, charts.width, charts.height, settings.parts)
            seconds["raster"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            lighting = AtlasLighting(geometry, level, tracer, settings.site, samples,
                                     seed=(settings.seed, charts.index), progress=bar)
            mask = geometry.mask()
            for target in filter(None, (writer, held_writer)):
                target.write_mask(lightmap_id, mask)
            for target, target_times in ((writer, times), (held_writer, holdout)):
                for t in target_times:  # the sky and the lamps were traced once; per time only the sun
                    values = lighting.at(t)
                    for component in COMPONENTS:
                        image = geometry.image(values[component])
                        target.write(lightmap_id, component, t, image)
                        if target is writer and charts.index == 0 and t in sheet:
                            panels[(component, t)] = shrink(image)
                    bar.update(1)
            seconds["lighting_and_writing"] += time.perf_counter() - t0
            if charts.index == 0:
                sheet_valid = shrink((mask > 0).astype(np.float32)[..., None])[..., 0] > 0.5
            lightmaps.append({"id": lightmap_id, "width": charts.width, "height": charts.height,
                              "parts": settings.parts, "valid_texels": geometry.count,
                              "triangles": int(len(charts.uv))})
        t0 = time.perf_counter()
        write_contact_sheet(writer.root / "contact_sheet.png", panels, sheet_valid,
                            title=f"airender bake: lightmap {FIRST_LIGHTMAP_ID} ({unwrap.atlases[0].width} x "
                                  f"{unwrap.atlases[0].height}), seed {settings.seed}, {settings.spp} spp",
                            hours=sheet)
        seconds["contact_sheet"] = time.perf_counter() - t0
        write_level(writer.root, level, unwrap, [FIRST_LIGHTMAP_ID + charts.index for charts in unwrap.atlases])
        seconds["total"] = time.perf_counter() - started
        write_json_atomic(writer.root / "meta.json", _meta(settings, level, unwrap, samples, suns, lightmaps, versions,
                                                     tracer.variant, seconds))
    return BakeResult(out=out, lightmaps=lightmaps, times=times, seconds=seconds, holdout_times=holdout)


def _meta(settings: BakeSettings, level, unwrap, samples: SampleCounts, suns: dict, lightmaps: list[dict],
          versions: dict, variant: str, seconds: dict) -> dict:
    return {
        "generator": f"airender {__version__} bake",
        "layout": "virtual texture (Mask/, Original/, DirectionalOnly/, LocalOnly/, SkyLightOnly/; HPRC-FORMAT.md)",
        "parameters": settings.as_dict(),
        "samples_per_texel": asdict(samples),
        "units": "E/pi: radiance a white Lambertian surface reflects (W m^-2 sr^-1, linear, no albedo); "
                 "Original = DirectionalOnly + LocalOnly + SkyLightOnly (float32)",
        "world_frame": "metres; z up, +x south, +y east; azimuth clockwise from north",
        "texel_convention": "row-major, row 0 first; part k holds rows [k*H/P, (k+1)*H/P); mask 127 valid, -1 invalid; "
                            f"invalid texels within {DILATE_TEXELS} texels of a valid one hold a copy of a nearest "
                            "valid texel, the rest 0",
        "times": {"hours": list(HOURS), "held_out": list(HELD_OUT),
                  "midnight": "24.00 (the night that starts the day)"} if settings.times is None else
                 {"baked": list(settings.times), "held_out": list(settings.holdout_times),
                  "held_out_folder": HOLDOUT_FOLDER if settings.holdout_times else None,
                  "midnight": "24.00 (the night that starts the day)"},
        "lights_rule": f"local lamps on for t < {LIGHTS_OFF_FROM:g} or t > {LIGHTS_OFF_TO:g}",
        "sun": {time_text(t): {**p.as_dict(), "lights_on": lights_on(t)} for t, p in suns.items()},
        "models": {
            "sun": {"irradiance_top_of_atmosphere": SUN_IRRADIANCE.tolist(),
                    "extinction_per_air_mass": SUN_EXTINCTION.tolist(),
                    "half_angle_deg": SUN_HALF_ANGLE_DEG, "air_mass": "Kasten-Young 1989"},
            "sky": {"distribution": "Perez clear sky (A..E = -1, -0.32, 10, -3, 0.45)",
                    "horizontal_e_over_pi_full_day": SKY_HORIZONTAL, "night_radiance": SKY_NIGHT_RADIANCE.tolist()},
            "lamps": {"source_radius_m": LAMP_SOURCE_RADIUS_M, "min_distance_m": LAMP_MIN_DISTANCE_M},
            "shadow_ray_offset_m": SURFACE_OFFSET_M,
        },
        "level": {"seed": level.seed, "half_extent_m": level.half_extent, "triangles": level.triangle_count,
                  "area_m2": round(level.area_m2, 3), "objects": [o.name for o in level.objects], "file": LEVEL_FILE,
                  "lamps": [{"position": list(lamp.position), "intensity_w_per_sr": list(lamp.intensity)}
                            for lamp in level.lamps]},
        "unwrap": {"texels_per_metre": round(unwrap.texels_per_metre, 5), "padding_texels": unwrap.padding,
                   "charts": unwrap.chart_count, "dilation_texels": DILATE_TEXELS},
        "lightmaps": lightmaps,
        "software": {**versions, "mitsuba_variant": variant},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def parse_day(text: str) -> date:
    """``YYYY-MM-DD`` -> date, or ``InputError``."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError(f"--date: {text!r} is not a date like 2024-06-21") from exc
