"""Per-texel lighting of one atlas, one source at a time, by Monte Carlo with shadow rays.

What is stored is ``E / pi``: the radiance a white Lambertian surface would reflect under the irradiance
``E`` (linear HDR, no albedo, as game lightmaps store lighting), RGB float32, per source:

- ``DirectionalOnly``: the sun, a disk of ``SUN_HALF_ANGLE_DEG`` (soft shadow edges), irradiance at normal
  incidence ``SUN_IRRADIANCE * exp(-SUN_EXTINCTION * air_mass)`` (Kasten-Young air mass: the sun reddens
  and dims towards the horizon), times ``n . s`` and visibility; zero while the sun is below the horizon.
- ``SkyLightOnly``: the sky dome, cosine-weighted hemisphere samples with visibility. Sky radiance is
  Perez's clear-sky distribution (brighter towards the horizon and round the sun), scaled by the sun's
  elevation (``sky_level``: from zero at 6 degrees below the horizon to full with a high sun, with a warm
  tint at low sun), plus a faint, uniform night sky. Samples and their visibility are drawn once per
  texel and reused for every time, so the noise does not flicker from hour to hour.
- ``LocalOnly``: the level's point lamps, on for t < 6 and t > 18 and off otherwise (the light switch of
  the contest data), with visibility, ``n . l`` and inverse-square falloff (distance clamped below at
  ``LAMP_MIN_DISTANCE_M``); each lamp is a small sphere for soft shadows.
- ``Original``: the float32 sum of the three, texel by texel.

Shadow rays start at the texel's position moved ``SURFACE_OFFSET_M`` along the triangle's geometric
normal; directions below the triangle's plane count as blocked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from airender.bake.raster import TexelGeometry
from airender.bake.scene import Level
from airender.solar import Site, SunPosition, sun_position
from airender.bake.tracer import ShadowTracer

SUN_IRRADIANCE = np.array([3.5, 3.5, 3.5], dtype=np.float64)  # W/m^2 at normal incidence above the atmosphere
SUN_EXTINCTION = np.array([0.10, 0.16, 0.30], dtype=np.float64)  # optical depth per air mass (reddens low sun)
SUN_HALF_ANGLE_DEG = 0.5
SKY_HORIZONTAL = 0.2  # E/pi, W/(m^2 sr), of an open horizontal surface under the full day sky (before the tint)
SKY_DAY_RGB = np.array([0.55, 0.75, 1.0])
SKY_TWILIGHT_RGB = np.array([1.0, 0.55, 0.3])
SKY_NIGHT_RADIANCE = np.array([0.0012, 0.0016, 0.003])  # faint uniform night sky, W/(m^2 sr)
PEREZ_CLEAR = (-1.0, -0.32, 10.0, -3.0, 0.45)  # Perez A..E for a clear sky
LAMP_SOURCE_RADIUS_M = 0.08
LAMP_MIN_DISTANCE_M = 0.5
SURFACE_OFFSET_M = 2e-3
LIGHTS_OFF_FROM, LIGHTS_OFF_TO = 6.0, 18.0


def lights_on(hour: float) -> bool:
    """The contest's light switch: local lamps are on for t < 6.0 or t > 18.0."""
    return hour < LIGHTS_OFF_FROM or hour > LIGHTS_OFF_TO


def _smoothstep(edge0: float, edge1: float, x: float) -> float:
    t = min(1.0, max(0.0, (x - edge0) / (edge1 - edge0)))
    return t * t * (3.0 - 2.0 * t)


def sun_normal_irradiance(elevation_deg: float) -> np.ndarray:
    """[3] RGB irradiance (W/m^2) on a plane facing the sun at ``elevation_deg``; zero below the horizon."""
    if elevation_deg <= 0.0:
        return np.zeros(3)
    air_mass = 1.0 / (math.sin(math.radians(elevation_deg)) + 0.50572 * (elevation_deg + 6.07995) ** -1.6364)
    return SUN_IRRADIANCE * np.exp(-SUN_EXTINCTION * air_mass)


def _perez(cos_theta: np.ndarray, cos_gamma: np.ndarray) -> np.ndarray:
    """Perez's relative sky radiance for view zenith cosine ``cos_theta`` and view-to-sun cosine ``cos_gamma``."""
    a, b, c, d, e = PEREZ_CLEAR
    gamma = np.arccos(np.clip(cos_gamma, -1.0, 1.0))
    return (1.0 + a * np.exp(b / np.maximum(cos_theta, 0.01))) * (1.0 + c * np.exp(d * gamma) + e * cos_gamma ** 2)


def _cosine_weighted_grid(n: int = 48) -> np.ndarray:
    """[n*n, 3] unit directions of the upper hemisphere, cosine-weighted, on a midpoint grid (deterministic)."""
    u, v = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
    r, phi = np.sqrt(u.ravel()), 2.0 * np.pi * v.ravel()
    return np.stack([r * np.cos(phi), r * np.sin(phi), np.sqrt(1.0 - u.ravel())], axis=1)


_SKY_GRID = _cosine_weighted_grid()


def sky_level(elevation_deg: float) -> float:
    """How bright the sky is, 0..1, for the sun at ``elevation_deg``: zero 6 degrees below the horizon,
    a quarter at sunrise, full with the sun 60 degrees up."""
    return _smoothstep(-6.0, 2.0, elevation_deg) * (0.3 + 0.7 * _smoothstep(0.0, 60.0, elevation_deg))


def sky_radiance(direction: np.ndarray, sun: SunPosition) -> np.ndarray:
    """Sky radiance [M, 3] float32, W/(m^2 sr), along unit world ``direction`` [M, 3]; zero below the horizon.

    Perez's clear-sky distribution scaled so that an open horizontal surface gets
    ``E / pi = SKY_HORIZONTAL * sky_level(elevation)`` (tinted), plus the uniform night sky."""
    s = np.asarray(sun.direction, dtype=np.float64)
    perez = _perez(direction[:, 2], direction @ s)
    mean_open = float(_perez(_SKY_GRID[:, 2], _SKY_GRID @ s).mean())  # E/pi of a horizontal plane per unit scale
    warm = _smoothstep(-6.0, 15.0, sun.elevation_deg)
    colour = SKY_TWILIGHT_RGB * (1.0 - warm) + SKY_DAY_RGB * warm
    scale = SKY_HORIZONTAL * sky_level(sun.elevation_deg) * colour / mean_open
    above = direction[:, 2] > 0.0
    radiance = (perez[:, None] * scale[None, :] + SKY_NIGHT_RADIANCE[None, :]) * above[:, None]
    return radiance.astype(np.float32)


def orthonormal_basis(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit tangents [N, 3] orthogonal to unit normals ``n`` [N, 3] (Duff et al. 2017, branchless)."""
    sign = np.where(n[:, 2] >= 0.0, 1.0, -1.0)
    a = -1.0 / (sign + n[:, 2])
    b = n[:, 0] * n[:, 1] * a
    t1 = np.stack([1.0 + sign * n[:, 0] ** 2 * a, sign * b, -sign * n[:, 0]], axis=1)
    t2 = np.stack([b, sign + n[:, 1] ** 2 * a, -n[:, 1]], axis=1)
    return t1, t2


def _stratified(rng: np.random.Generator, count: int, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Latin-hypercube samples in [0, 1)^2: two [count, samples] arrays, each row stratified in both axes."""
    u = (rng.random((count, samples)).argsort(axis=1) + rng.random((count, samples))) / samples
    v = (rng.random((count, samples)).argsort(axis=1) + rng.random((count, samples))) / samples
    return u, v


@dataclass
class SampleCounts:
    """Samples per texel: ``sky`` hemisphere directions, ``sun`` points on the sun's disk, ``lamp`` points on
    each lamp's sphere."""

    sky: int
    sun: int
    lamp: int

    @classmethod
    def from_spp(cls, spp: int) -> "SampleCounts":
        """``spp`` sky samples; a quarter of that, between 1 and 4, for the sun and for each lamp."""
        few = int(min(4, max(1, spp // 4)))
        return cls(sky=spp, sun=few, lamp=few)


class AtlasLighting:
    """The lighting of one atlas's valid texels. Time-independent work (sky visibility, lamps) is done at
    construction; ``at(hour)`` then gives every source at one time."""

    def __init__(self, geometry: TexelGeometry, level: Level, tracer: ShadowTracer, site: Site,
                 samples: SampleCounts, seed: int | tuple[int, ...], progress=None) -> None:
        self.geometry, self.site, self.samples, self.tracer = geometry, site, samples, tracer
        self.rng = np.random.default_rng(seed)
        n = geometry.normal.astype(np.float64)
        self._normal = n
        self._face_normal = geometry.face_normal.astype(np.float64)
        self._origin = (geometry.position + SURFACE_OFFSET_M * geometry.face_normal).astype(np.float32)
        # Per-texel offsets on the sun's disk, reused at every time (the noise stays put).
        u, v = _stratified(self.rng, geometry.count, samples.sun)
        radius = math.tan(math.radians(SUN_HALF_ANGLE_DEG)) * np.sqrt(u)
        self._sun_disk = np.stack([radius * np.cos(2 * np.pi * v), radius * np.sin(2 * np.pi * v)], axis=-1)
        self._sky_texel, self._sky_direction = self._trace_sky(progress)
        self._lamps = self._trace_lamps(level, progress)

    # --- time-independent parts ---------------------------------------------------------------------------
    def _trace_sky(self, progress) -> tuple[np.ndarray, np.ndarray]:
        """Cosine-weighted directions round the shading normal that reach the sky: (texel [M] int64, dir [M, 3])."""
        g, s = self.geometry, self.samples.sky
        u, v = _stratified(self.rng, g.count, s)
        r, phi = np.sqrt(u), 2.0 * np.pi * v
        t1, t2 = orthonormal_basis(self._normal)
        local = np.stack([r * np.cos(phi), r * np.sin(phi), np.sqrt(np.maximum(0.0, 1.0 - u))], axis=-1)
        direction = (local[..., 0:1] * t1[:, None] + local[..., 1:2] * t2[:, None]
                     + local[..., 2:3] * self._normal[:, None])  # [N, S, 3]
        direction = direction.reshape(-1, 3)
        texel = np.repeat(np.arange(g.count), s)
        upper = np.einsum("ij,ij->i", direction, self._face_normal[texel]) > 0.0
        texel, direction = texel[upper], direction[upper]
        blocked = self.tracer.occluded(self._origin[texel], direction.astype(np.float32))
        if progress is not None:
            progress.update(1)
        return texel[~blocked], direction[~blocked].astype(np.float32)

    def _trace_lamps(self, level: Level, progress) -> np.ndarray:
        """[N, 3] float32 E/pi of every lamp together (what LocalOnly holds while the lamps are on)."""
        g, k = self.geometry, self.samples.lamp
        total = np.zeros((g.count, 3), dtype=np.float64)
        for lamp in level.lamps:
            # Points on the lamp's small sphere (uniform over its surface), stratified per texel.
            u, v = _stratified(self.rng, g.count, k)
            z = 1.0 - 2.0 * u
            ring = np.sqrt(np.maximum(0.0, 1.0 - z * z))
            angle = 2 * np.pi * v
            offset = LAMP_SOURCE_RADIUS_M * np.stack([ring * np.cos(angle), ring * np.sin(angle), z], -1)
            target = np.asarray(lamp.position)[None, None, :] + offset  # [N, k, 3]
            to_lamp = target - g.position[:, None, :].astype(np.float64)
            distance = np.linalg.norm(to_lamp, axis=-1)
            direction = to_lamp / np.maximum(distance, 1e-9)[..., None]
            cos_n = np.einsum("nkj,nj->nk", direction, self._normal)
            cos_f = np.einsum("nkj,nj->nk", direction, self._face_normal)
            lit = (cos_n > 0.0) & (cos_f > 0.0)
            idx = np.flatnonzero(lit.ravel())
            texel = idx // k
            blocked = self.tracer.occluded(self._origin[texel], direction.reshape(-1, 3)[idx].astype(np.float32),
                                           distance.ravel()[idx] - LAMP_SOURCE_RADIUS_M)
            weight = np.zeros(g.count * k)
            d2 = np.maximum(distance.ravel()[idx], LAMP_MIN_DISTANCE_M) ** 2
            weight[idx] = np.where(blocked, 0.0, cos_n.ravel()[idx] / d2)
            total += weight.reshape(g.count, k).mean(axis=1)[:, None] * np.asarray(lamp.intensity)[None, :]
        if progress is not None:
            progress.update(1)
        return (total / np.pi).astype(np.float32)

    # --- per time -------------------------------------------------------------------------------------------
    def sun(self, sun: SunPosition) -> np.ndarray:
        """[N, 3] float32 E/pi of the sun at ``sun`` (zeros below the horizon)."""
        g, k = self.geometry, self.samples.sun
        out = np.zeros((g.count, 3), dtype=np.float32)
        irradiance = sun_normal_irradiance(sun.elevation_deg)
        if not irradiance.any():
            return out
        s = np.asarray(sun.direction, dtype=np.float64)
        t1, t2 = orthonormal_basis(s[None, :])
        direction = s + self._sun_disk[..., 0:1] * t1[0] + self._sun_disk[..., 1:2] * t2[0]  # [N, k, 3]
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        cos_n = np.einsum("nkj,nj->nk", direction, self._normal)
        cos_f = np.einsum("nkj,nj->nk", direction, self._face_normal)
        idx = np.flatnonzero(((cos_n > 0.0) & (cos_f > 0.0)).ravel())
        blocked = self.tracer.occluded(self._origin[idx // k], direction.reshape(-1, 3)[idx].astype(np.float32))
        weight = np.zeros(g.count * k)
        weight[idx] = np.where(blocked, 0.0, cos_n.ravel()[idx])
        out[:] = weight.reshape(g.count, k).mean(axis=1)[:, None] * (irradiance / np.pi)[None, :]
        return out

    def sky(self, sun: SunPosition) -> np.ndarray:
        """[N, 3] float32 E/pi of the sky dome with the sun at ``sun``: mean over the texel's samples of
        radiance times visibility (cosine-weighted sampling: E/pi = mean of L V)."""
        g = self.geometry
        radiance = sky_radiance(self._sky_direction, sun)
        out = np.empty((g.count, 3), dtype=np.float32)
        for c in range(3):
            out[:, c] = np.bincount(self._sky_texel, weights=radiance[:, c], minlength=g.count) / self.samples.sky
        return out

    def local(self, hour: float) -> np.ndarray:
        """[N, 3] float32 E/pi of the lamps at ``hour`` (zeros while they are off)."""
        return self._lamps.copy() if lights_on(hour) else np.zeros_like(self._lamps)

    def at(self, hour: float) -> dict[str, np.ndarray]:
        """Every source at ``hour`` as [N, 3] float32, keyed by the layout's component names
        (``airender.data.virtual_texture.COMPONENTS``): "original" is the float32 sum of the others."""
        position = sun_position(self.site, hour)
        directional, sky, local = self.sun(position), self.sky(position), self.local(hour)
        original = (directional + local) + sky
        return {"original": original, "directional": directional, "local": local, "sky": sky}
