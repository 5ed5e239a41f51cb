"""Frames between the trained hours with the sun's shadows moved instead of cross-faded.

* :mod:`airender.between.decoder`: :class:`BetweenHoursDecoder`, a decoder's frames between two stored
  hours as a per-pixel blend of its frames at those hours;
* :mod:`airender.between.net`: the per-pixel weight from a small network fitted on the stored hours
  (``--between learned``, ``airender fit-between``);
* :mod:`airender.between.motion`: the weight from the shadows' motion, nothing fitted (``--between motion``);
* :mod:`airender.between.cli`: the command-line side.
"""
