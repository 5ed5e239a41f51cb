"""Render the bundled sample time-of-day dataset with Mitsuba 3.

The scene is a small procedural town plaza (Mitsuba built-in shapes only) lit by a physically
based sun and sky (the ``sunsky`` emitter, Hosek-Wilkie), a faint night ambient and local lights
(lamp globes and lit windows) that follow the contest semantics: ON for t < 6.0 or t > 18.0,
OFF for 6.0 <= t <= 18.0.

Output layout (what ``airender demo`` reads)::

    OUT/hours/tod_{h}.png        integer hours 0..23, 8-bit sRGB
    OUT/extra/tod_{t}.png        held-out times (5.9 and 18.1 beside the light switch, fractional hours)
    OUT/meta.json                every parameter, per-frame render seconds and sun elevation

Requires the optional ``scene`` extra: ``pip install -e .[scene]`` (Mitsuba 3.9, scalar_rgb variant,
CPU only). Rendering the default size takes a few minutes on two cores.

World frame: z up, +x south, +y east. Mitsuba's sunsky local frame is mirror-imaged, so the emitter
gets ``to_world = scale(1, -1, 1)``; with that the sun rises in the east and sets in the west.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

LOCATION = {"latitude": 45.4, "longitude": 12.3, "timezone": 1.0}
DATE = {"year": 2024, "month": 6, "day": 21}
HOURS = [float(h) for h in range(24)]
EXTRA_TIMES = [5.9, 18.1, 2.5, 7.5, 10.25, 13.5, 16.75, 19.5]
AMBIENT_RADIANCE = [0.004, 0.006, 0.012]
LAMP_RADIANCE = [14.0, 9.5, 4.5]
WINDOW_RADIANCE = [0.35, 0.24, 0.1]


def lights_on(hour: float) -> bool:
    """Contest semantics: local lights are ON for t < 6.0 or t > 18.0."""
    return hour < 6.0 or hour > 18.0


def sun_elevation_deg(hour: float) -> float:
    """Approximate solar elevation (NOAA formulas) at local standard time ``hour`` on DATE."""
    day_of_year = (
        sum([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][: DATE["month"] - 1]) + DATE["day"]
    )
    gamma = 2.0 * math.pi / 366.0 * (day_of_year - 1 + (hour - 12.0) / 24.0)
    eq_time = 229.18 * (
        0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
        - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma)
    )
    decl = (
        0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
        - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
        - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma)
    )
    offset = eq_time + 4.0 * LOCATION["longitude"] - 60.0 * LOCATION["timezone"]
    true_solar_minutes = hour * 60.0 + offset
    hour_angle = math.radians(true_solar_minutes / 4.0 - 180.0)
    lat = math.radians(LOCATION["latitude"])
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    return 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, cos_zenith))))


def _diffuse(rgb):
    return {"type": "diffuse", "reflectance": {"type": "rgb", "value": rgb}}


def _box(mi, center, half, bsdf):
    T = mi.ScalarTransform4f
    return {"type": "cube", "to_world": T().translate(center) @ T().scale(half), "bsdf": bsdf}


def build_geometry(mi) -> dict:
    """The static part of the scene: ground, buildings, fountain, trees, furniture (no emitters)."""
    T = mi.ScalarTransform4f
    shapes: dict = {}
    shapes["ground"] = {
        "type": "rectangle",
        "to_world": T().scale([60.0, 60.0, 1.0]),
        "bsdf": {
            "type": "diffuse",
            "reflectance": {
                "type": "checkerboard",
                "color0": {"type": "rgb", "value": [0.34, 0.32, 0.29]},
                "color1": {"type": "rgb", "value": [0.22, 0.21, 0.2]},
                "to_uv": mi.ScalarTransform3f().scale([30.0, 30.0]),
            },
        },
    }
    # Buildings on the north side (negative x), west (negative y) and east (positive y).
    buildings = [
        ((-14.0, -11.0, 5.0), (4.0, 4.0, 5.0), [0.62, 0.45, 0.32]),
        ((-15.0, -2.0, 7.0), (4.5, 4.0, 7.0), [0.75, 0.72, 0.62]),
        ((-13.5, 6.5, 4.0), (3.5, 3.5, 4.0), [0.55, 0.6, 0.66]),
        ((-15.0, 14.0, 9.0), (4.0, 3.5, 9.0), [0.5, 0.38, 0.35]),
        ((-2.0, -15.5, 3.5), (5.0, 3.0, 3.5), [0.7, 0.64, 0.5]),
        ((1.0, 15.0, 5.5), (5.0, 3.0, 5.5), [0.45, 0.5, 0.42]),
    ]
    for i, (center, half, rgb) in enumerate(buildings):
        shapes[f"building_{i}"] = _box(mi, center, half, _diffuse(rgb))
        # A flat roof slab in a darker tone gives the silhouettes some structure.
        roof_center = (center[0], center[1], 2.0 * half[2] + 0.15)
        shapes[f"roof_{i}"] = _box(
            mi, roof_center, (half[0] + 0.3, half[1] + 0.3, 0.15), _diffuse([0.2, 0.18, 0.17])
        )
    # Fountain: stone basin, water-coloured disk, a column and a rough copper sphere.
    shapes["basin"] = {
        "type": "cylinder", "p0": [0.0, 0.0, 0.0], "p1": [0.0, 0.0, 0.6], "radius": 2.6,
        "bsdf": _diffuse([0.6, 0.58, 0.55]),
    }
    shapes["basin_top"] = {
        "type": "disk", "to_world": T().translate([0.0, 0.0, 0.55]) @ T().scale(2.5),
        "bsdf": {"type": "roughplastic", "diffuse_reflectance": {"type": "rgb", "value": [0.05, 0.12, 0.15]},
                 "alpha": 0.2},
    }
    shapes["column"] = {
        "type": "cylinder", "p0": [0.0, 0.0, 0.5], "p1": [0.0, 0.0, 1.8], "radius": 0.35,
        "bsdf": _diffuse([0.6, 0.58, 0.55]),
    }
    shapes["orb"] = {
        "type": "sphere", "center": [0.0, 0.0, 2.4], "radius": 0.7,
        "bsdf": {"type": "roughconductor", "material": "Cu", "alpha": 0.25},
    }
    for i, (x, y) in enumerate([(-6.0, -8.0), (-5.0, 9.0), (6.0, -9.5)]):
        shapes[f"trunk_{i}"] = {
            "type": "cylinder", "p0": [x, y, 0.0], "p1": [x, y, 2.5], "radius": 0.25,
            "bsdf": _diffuse([0.25, 0.17, 0.1]),
        }
        shapes[f"canopy_{i}"] = {
            "type": "sphere", "center": [x, y, 3.6], "radius": 1.7, "bsdf": _diffuse([0.16, 0.32, 0.1]),
        }
    shapes["bench_0"] = _box(mi, (-5.0, 0.0, 0.25), (0.4, 1.5, 0.25),
                             {"type": "roughplastic", "diffuse_reflectance": {"type": "rgb", "value": [0.55, 0.08, 0.06]},
                              "alpha": 0.3})
    shapes["van"] = _box(mi, (5.0, 6.0, 1.0), (1.1, 2.4, 1.0),
                         {"type": "roughplastic", "diffuse_reflectance": {"type": "rgb", "value": [0.08, 0.2, 0.5]},
                          "alpha": 0.25})
    for i, (x, y) in enumerate(LAMP_POSITIONS):
        shapes[f"pole_{i}"] = {
            "type": "cylinder", "p0": [x, y, 0.0], "p1": [x, y, 3.6], "radius": 0.08,
            "bsdf": _diffuse([0.05, 0.05, 0.05]),
        }
    return shapes


LAMP_POSITIONS = [(-4.0, -4.5), (-4.0, 4.5), (4.0, -4.5), (4.0, 4.5)]
# Lit windows on the south facades (facing +x, towards the camera): (x_facade, y, z, half_w, half_h).
WINDOWS = [(-10.0, -12.0, 3.0, 0.6, 0.8), (-10.0, -10.0, 6.5, 0.6, 0.8), (-10.5, -3.0, 4.0, 0.7, 0.9),
           (-10.5, -0.5, 9.5, 0.7, 0.9), (-10.0, 6.5, 2.5, 0.6, 0.8), (-11.0, 14.0, 12.0, 0.6, 0.8),
           (-11.0, 13.0, 5.0, 0.6, 0.8)]


def build_local_lights(mi) -> dict:
    """Lamp globes and lit windows as area emitters (present only while lights are on)."""
    T = mi.ScalarTransform4f
    lights: dict = {}
    for i, (x, y) in enumerate(LAMP_POSITIONS):
        lights[f"lamp_{i}"] = {
            "type": "sphere", "center": [x, y, 3.85], "radius": 0.25,
            "emitter": {"type": "area", "radiance": {"type": "rgb", "value": LAMP_RADIANCE}},
        }
    for i, (x, y, z, hw, hh) in enumerate(WINDOWS):
        lights[f"window_{i}"] = {
            "type": "rectangle",
            "to_world": T().translate([x + 0.02, y, z]) @ T().rotate([0.0, 1.0, 0.0], 90.0) @ T().scale([hh, hw, 1.0]),
            "emitter": {"type": "area", "radiance": {"type": "rgb", "value": WINDOW_RADIANCE}},
        }
    return lights


def build_scene_dict(mi, width: int, height: int, spp: int, seed: int, hour: float | None,
                     with_sun: bool, with_lights: bool, with_ambient: bool) -> dict:
    T = mi.ScalarTransform4f
    scene = {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": 6, "rr_depth": 5},
        "sensor": {
            "type": "perspective",
            "fov": 52.0,
            "fov_axis": "x",
            "to_world": T().look_at(origin=[26.0, 3.0, 15.0], target=[-6.0, 0.5, 1.5], up=[0.0, 0.0, 1.0]),
            "film": {"type": "hdrfilm", "width": width, "height": height, "rfilter": {"type": "box"},
                     "pixel_format": "rgb"},
            "sampler": {"type": "multijitter", "sample_count": spp, "seed": seed},
        },
    }
    scene.update(build_geometry(mi))
    if with_sun:
        scene["sun_sky"] = {"type": "sunsky", "hour": float(hour), "turbidity": 3.0,
                            "to_world": T().scale([1.0, -1.0, 1.0]), **LOCATION, **DATE}
    if with_lights:
        scene.update(build_local_lights(mi))
    if with_ambient:
        scene["ambient"] = {"type": "constant", "radiance": {"type": "rgb", "value": AMBIENT_RADIANCE}}
    return scene


def render_linear(mi, scene_dict: dict) -> np.ndarray:
    """Render a scene dict; returns linear RGB float32 [H, W, 3]."""
    scene = mi.load_dict(scene_dict)
    image = np.asarray(mi.render(scene), dtype=np.float32)[..., :3]
    return np.ascontiguousarray(image)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def to_png_bytes(linear: np.ndarray, exposure: float) -> np.ndarray:
    return np.round(255.0 * srgb_encode(exposure * linear)).astype(np.uint8)


def time_label(t: float) -> str:
    return f"{t:g}"


def atomic_save_png(array: np.ndarray, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png.tmp")
    os.close(fd)
    try:
        Image.fromarray(array).save(tmp, format="PNG", optimize=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("airender/sample_data/plaza"))
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--spp", type=int, default=100, help="samples per pixel (a square number is kept exactly)")
    parser.add_argument("--seed", type=int, default=0, help="one sampler seed for every frame")
    parser.add_argument("--exposure", type=float, default=0.0,
                        help="linear scale before the sRGB curve; 0 = derive once from the noon frame")
    args = parser.parse_args(argv)
    try:
        import mitsuba as mi
    except ImportError:
        print("error: mitsuba is not installed; run `pip install -e .[scene]`", file=sys.stderr)
        return 2
    mi.set_variant("scalar_rgb")

    (args.out / "hours").mkdir(parents=True, exist_ok=True)
    (args.out / "extra").mkdir(parents=True, exist_ok=True)
    started = time.time()
    ambient = render_linear(mi, build_scene_dict(mi, args.width, args.height, args.spp, args.seed, None,
                                                 with_sun=False, with_lights=False, with_ambient=True))
    ambient_seconds = time.time() - started

    frames: dict[float, np.ndarray] = {}
    seconds: dict[str, float] = {}
    elevations: dict[str, float] = {}
    for t in HOURS + EXTRA_TIMES:
        elevation = sun_elevation_deg(t)
        with_sun, with_lights = elevation > 0.0, lights_on(t)
        t0 = time.time()
        image = ambient.copy()
        if with_sun or with_lights:
            image += render_linear(mi, build_scene_dict(mi, args.width, args.height, args.spp, args.seed, t,
                                                        with_sun=with_sun, with_lights=with_lights,
                                                        with_ambient=False))
        frames[t] = image
        seconds[time_label(t)] = round(time.time() - t0, 2)
        elevations[time_label(t)] = round(elevation, 2)
        print(f"t={t:5.2f} h  sun {elevation:6.1f} deg  lights {'on ' if with_lights else 'off'}  "
              f"{seconds[time_label(t)]:.1f} s", flush=True)

    exposure = args.exposure
    if exposure <= 0.0:
        noon = frames[12.0]
        luminance = noon @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
        exposure = float(0.85 / np.percentile(luminance, 99.0))
    for t, image in frames.items():
        folder = "hours" if t in HOURS else "extra"
        atomic_save_png(to_png_bytes(image, exposure), args.out / folder / f"tod_{time_label(t)}.png")

    meta = {
        "scene": "plaza", "width": args.width, "height": args.height, "spp": args.spp, "seed": args.seed,
        "exposure": exposure, "png_encoding": "round(255 * srgb_oetf(clip(exposure * linear, 0, 1)))",
        "location": LOCATION, "date": DATE, "turbidity": 3.0, "ambient_radiance": AMBIENT_RADIANCE,
        "lamp_radiance": LAMP_RADIANCE, "window_radiance": WINDOW_RADIANCE,
        "lights_rule": "on for t < 6.0 or t > 18.0", "hours": HOURS, "extra_times": EXTRA_TIMES,
        "sun_elevation_deg": elevations, "render_seconds": seconds, "ambient_render_seconds": round(ambient_seconds, 2),
        "total_seconds": round(time.time() - started, 1), "mitsuba_version": mi.__version__,
        "variant": "scalar_rgb", "integrator": "path, max_depth 6, rr_depth 5", "sampler": "multijitter",
    }
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {len(frames)} frames to {args.out} in {meta['total_seconds']} s (exposure {exposure:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
