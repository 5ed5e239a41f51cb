"""Frames between the trained hours with the sun's shadows moved instead of cross-faded.

* :mod:`airender.between.decoder`: :class:`BetweenHoursDecoder`, a decoder's frames between two stored
  hours as a per-pixel blend of its frames at those hours;
* :mod:`airender.between.net`: the per-pixel weight from a small network fitted on the stored hours
  (``--between learned``, ``airender fit-between``);
* :mod:`airender.between.motion`: the weight from the shadows' motion, nothing fitted (``--between motion``);
* :mod:`airender.between.cli`: the command-line side.
"""
from __future__ import annotations


def between_frames(frames, between: str, switch_hours: tuple[float, float] | None, net=None):
    """``frames`` (a whole-frame decoder) as ``--between`` asks: itself for 'model', wrapped in
    :class:`airender.between.motion.ShadowMotionDecoder` for 'motion', or in
    :class:`airender.between.net.LearnedBlendDecoder` with ``net`` for 'learned'."""
    if between == "motion":
        from airender.between.motion import ShadowMotionDecoder

        return ShadowMotionDecoder(frames, switch_hours)
    if between == "learned":
        from airender.between.net import LearnedBlendDecoder

        return LearnedBlendDecoder(frames, net, switch_hours)
    return frames
