"""Lightmap baker: a procedural level, unwrapped into atlases and lit by sun, sky and lamps at every hour.

Needs the optional ``scene`` extra (Mitsuba 3, trimesh, xatlas), imported only inside the functions that
use it. Entry points: ``airender.bake.bake.bake`` and the ``airender bake`` command
(``airender.bake.cli``).
"""
