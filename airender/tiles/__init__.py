"""Atlases of any size: tiled fields fitted tile by tile from memory-mapped frames.

``plan`` cuts atlases into tiles (skipping tiles with no valid texel); ``jobs`` fits one tile as an
ordinary training run on its window; ``runner`` fits every tile in this process, in local worker
processes or as Ray tasks, resumably, and writes the tiled checkpoint; ``model`` decodes and queries a
tiled checkpoint as one model; ``seams`` measures quality along tile borders against tile interiors;
``synthetic`` writes sparse atlases of any size; ``bench`` times and sizes tiled fits of them
(``airender bench --atlas``).
"""
