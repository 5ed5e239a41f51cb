"""airender: compress a scene rendered at every hour of the day into a tiny neural field that
reconstructs it at any time of day, per frame or per texel."""

__version__ = "0.1.0"
