"""The contests' weighted scores: each metric mapped linearly between a worst and a best value, weighted.

Round 1 (the first layout) publishes its formula and bounds (its ``config.yaml`` and ``Test.py``): every part
scores ``100 * clip((value - worst) / (best - worst), 0, 1)`` and the total is
``0.05 PSNR + 0.05 SSIM + 0.05 LPIPS + 0.20 compression + 0.15 time`` (at most 50), with

    PSNR 20 -> 55 dB; SSIM 0.73 -> 0.999; LPIPS 0.3 -> 0.0003;
    decode time: the sum of every whole-lightmap decode call, 300 s -> 0 s;
    compression: model bytes / raw bytes (H * W * 3 * 4 * 24 per lightmap), 50 % -> 0 %.

Round 2 (the virtual-texture release) publishes its weights only: compression 30 %, decode time 30 %,
PSNR 20 %, SSIM 10 %, LPIPS 10 % (at most 100). Its bounds are not published; this module assumes round 1's
and every report says so.

The quality values are the means over every scored tile of every lightmap and time, under that round's
protocol (:mod:`airender.contest_metrics`). The contest folder's self-check scores with it too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from airender.hours import HOURS_PER_DAY



@dataclass(frozen=True)
class ScorePart:
    """One metric's mapping: ``worst`` scores 0, ``best`` scores 100; ``weight`` of the total."""

    name: str
    worst: float
    best: float
    weight: float
    unit: str = ""

    def score(self, value: float) -> float:
        """100 * clip((value - worst) / (best - worst), 0, 1); NaN stays NaN (as numpy's clip)."""
        if math.isnan(value):
            return math.nan
        low, high = min(self.worst, self.best), max(self.worst, self.best)
        clipped = min(max(value, low), high)
        return 100.0 * (clipped - self.worst) / (self.best - self.worst)


@dataclass(frozen=True)
class ScoreRule:
    """A round's weighted score: its parts, its maximum, the times its script decodes and scores (hours), and
    which of its numbers are assumptions."""

    name: str
    parts: tuple[ScorePart, ...]
    maximum: float
    source: str
    times: tuple[float, ...]
    assumed: str = ""

    def covers(self, hour: float) -> bool:
        """Whether the round's script scores a frame at ``hour`` (24 is midnight, 0)."""
        return round(hour % HOURS_PER_DAY, 6) in {round(t % HOURS_PER_DAY, 6) for t in self.times}

    def evaluate(self, values: dict[str, float]) -> dict:
        """{"parts": {name: {"value", "score", "weight", "worst", "best"}}, "total", "maximum", "missing",
        "rule", "assumed"} from ``values`` (keys psnr, ssim, lpips, time_s, compression; a missing part
        scores 0 and is listed in "missing")."""
        parts, total, missing = {}, 0.0, []
        for part in self.parts:
            value = values.get(part.name)
            if value is None:
                missing.append(part.name)
                continue
            score = part.score(float(value))
            parts[part.name] = {"value": float(value), "score": score, "weight": part.weight, "worst": part.worst,
                                "best": part.best, "unit": part.unit}
            total += part.weight * score
        return {"rule": self.name, "source": self.source, "assumed": self.assumed, "parts": parts,
                "total": total, "maximum": self.maximum, "missing": missing}


ROUND1 = ScoreRule(
    name="round 1", maximum=50.0,
    source="published formula and bounds (config.yaml, Test.py)",
    times=tuple(float(h) for h in range(24)) + (5.9, 18.1),  # Test.py's test_time
    parts=(ScorePart("psnr", 20.0, 55.0, 0.05, "dB"), ScorePart("ssim", 0.73, 0.999, 0.05),
           ScorePart("lpips", 0.3, 0.0003, 0.05), ScorePart("compression", 0.5, 0.0, 0.20, "of the raw bytes"),
           ScorePart("time_s", 300.0, 0.0, 0.15, "s, all decode calls")))

ROUND2 = ScoreRule(
    name="round 2", maximum=100.0,
    source="published weights (compression 30 %, time 30 %, PSNR 20 %, SSIM 10 %, LPIPS 10 %)",
    times=tuple(float(h) for h in range(1, 25)),  # the hours 1..24 of Test.py; 24 is midnight
    assumed="bounds not published: round 1's assumed (PSNR 20 -> 55 dB, SSIM 0.73 -> 0.999, "
            "LPIPS 0.3 -> 0.0003, compression 50 % -> 0 %, decode time 300 s -> 0 s in all)",
    parts=(ScorePart("psnr", 20.0, 55.0, 0.20, "dB"), ScorePart("ssim", 0.73, 0.999, 0.10),
           ScorePart("lpips", 0.3, 0.0003, 0.10), ScorePart("compression", 0.5, 0.0, 0.30, "of the raw bytes"),
           ScorePart("time_s", 300.0, 0.0, 0.30, "s, all decode calls")))

def score_table(result: dict) -> str:
    """A Markdown table of one :meth:`ScoreRule.evaluate` result, with its total and its assumptions."""
    lines = [f"contest score, {result['rule']} ({result['source']}):",
             "| part | value | worst | best | score (0-100) | weight |", "|---|---|---|---|---|---|"]
    for name, part in result["parts"].items():
        value = part["value"]
        shown = f"{100 * value:.3f} %" if name == "compression" else f"{value:.4g}"
        unit = f" ({part['unit']})" if part["unit"] and name != "compression" else ""
        lines.append(f"| {name}{unit} | {shown} | {part['worst']:g} | {part['best']:g} | {part['score']:.2f} | "
                     f"{part['weight']:g} |")
    for name in result["missing"]:
        lines.append(f"| {name} | n/a | | | 0 | |")
    lines.append(f"weighted score ({result['rule']}): {result['total']:.2f} / {result['maximum']:g}")
    if result["assumed"]:
        lines.append(f"assumption: {result['assumed']}")
    return "\n".join(lines)
