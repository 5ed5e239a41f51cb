"""Shadow-ray queries against the level with Mitsuba 3: is the segment from a point along a direction blocked?

The level's meshes become one Mitsuba scene (no emitters, no materials: only geometry is needed).
Queries run in big batches on the ``llvm_ad_rgb`` variant (vectorised, every core); where Mitsuba's LLVM
back end cannot start (no libLLVM on the machine) the ``scalar_rgb`` variant answers one ray at a time,
the same answers, only slower.
"""
from __future__ import annotations

import numpy as np

from airender.bake.scene import Level
from airender.errors import InputError

BATCH_RAYS = 1 << 21
VECTOR_VARIANT = "llvm_ad_rgb"
SCALAR_VARIANT = "scalar_rgb"


def import_mitsuba():
    """Import Mitsuba 3 or raise ``InputError`` with the install line."""
    try:
        import mitsuba
    except ImportError as exc:
        raise InputError(f"mitsuba: not installed ({exc}); run `pip install -e .[scene]`") from exc
    return mitsuba


def _choose_variant(mi, variants: tuple[str, ...]) -> str:
    for variant in variants:
        try:
            mi.set_variant(variant)
        except (ImportError, RuntimeError, AttributeError):
            continue
        if variant == VECTOR_VARIANT:
            try:  # the LLVM back end is loaded lazily: make it compile one tiny kernel now
                import drjit as dr

                dr.eval(mi.Float([1.0, 2.0]) + 1.0)
            except Exception:  # noqa: BLE001 - any failure of the JIT means: use the scalar variant
                continue
        return variant
    raise InputError(f"mitsuba: none of the variants {', '.join(variants)} can be used")


class ShadowTracer:
    """Occlusion queries against ``level``'s geometry. ``variant`` says which Mitsuba variant answers;
    pass one to force it (the default tries the vectorised one first)."""

    def __init__(self, level: Level, variant: str | None = None) -> None:
        mi = import_mitsuba()
        self.variant = _choose_variant(mi, (variant,) if variant else (VECTOR_VARIANT, SCALAR_VARIANT))
        self._mi = mi
        shapes = {"type": "scene"}
        for i, obj in enumerate(level.objects):
            vertices = np.ascontiguousarray(obj.mesh.vertices, dtype=np.float32)
            faces = np.ascontiguousarray(obj.mesh.faces, dtype=np.uint32)
            mesh = mi.Mesh(obj.name, len(vertices), len(faces), has_vertex_normals=False, has_vertex_texcoords=False)
            params = mi.traverse(mesh)
            params["vertex_positions"] = vertices.ravel()
            params["faces"] = faces.ravel()
            params.update()
            shapes[f"mesh_{i}"] = mesh
        self._scene = mi.load_dict(shapes)

    def occluded(self, origin: np.ndarray, direction: np.ndarray, distance: np.ndarray | float = np.inf) -> np.ndarray:
        """Whether each ray hits geometry before ``distance``.

        origin: [N, 3] float32 world points (metres), already offset off their surface.
        direction: [N, 3] float32 unit vectors.
        distance: [N] or scalar, metres (``inf``: any hit counts).
        Returns [N] bool.
        """
        origin = np.ascontiguousarray(origin, dtype=np.float32)
        direction = np.ascontiguousarray(direction, dtype=np.float32)
        n = len(origin)
        distance = np.broadcast_to(np.asarray(distance, dtype=np.float32), (n,))
        distance = np.where(np.isfinite(distance), distance, np.float32(np.finfo(np.float32).max))
        result = np.zeros(n, dtype=bool)
        if n == 0:
            return result
        mi = self._mi
        if mi.variant() != self.variant:  # another tracer switched Mitsuba's (process-wide) variant
            mi.set_variant(self.variant)
        if self.variant == SCALAR_VARIANT:
            return self._occluded_scalar(origin, direction, distance)
        for start in range(0, n, BATCH_RAYS):
            stop = min(n, start + BATCH_RAYS)
            o, d = origin[start:stop].T, direction[start:stop].T
            ray = mi.Ray3f(mi.Point3f(np.ascontiguousarray(o)), mi.Vector3f(np.ascontiguousarray(d)))
            ray.maxt = mi.Float(np.ascontiguousarray(distance[start:stop]))
            result[start:stop] = np.asarray(self._scene.ray_test(ray), dtype=bool)
        return result

    def _occluded_scalar(self, origin: np.ndarray, direction: np.ndarray, distance: np.ndarray) -> np.ndarray:
        mi = self._mi
        out = np.zeros(len(origin), dtype=bool)
        scene = self._scene
        for i, (o, d, t) in enumerate(zip(origin.tolist(), direction.tolist(), distance.tolist())):
            ray = mi.Ray3f(o, d)
            ray.maxt = t
            out[i] = scene.ray_test(ray)
        return out
