"""Self-check of this export: the release's evaluation loop on a dataset, and the weighted score.

    python selfcheck.py --data_dir DATASET [--lpips_weights W] [--json OUT]

For every lightmap of DATASET that this folder exports, and every hour of its ground truth (first
layout: every time key of config.json, e.g. 0..23, 5.9 and 18.1; virtual-texture layout: the hours
1..24 of Original/), the loop makes one ``reconstruct`` call with every texel of the atlas and times it
(wall clock; the decode-time figure is the sum over all calls). The first call of a lightmap also loads
its pack and computes the texels' time-invariant values; that part is timed separately beforehand
(``ContestDecoder.prepare``) and reported as "load + cache", outside the decode-time figure. In the first
layout, 16 single-texel calls per hour must equal the whole-atlas call at those texels within 1e-2
(random access); the other layout is checked the same way and reported.

Quality follows the dataset layout's protocol (docs/HPRC-FORMAT.md): ``hprc`` (first layout) 256 x 256
tiles, PSNR with the tile's max valid value as peak, torchmetrics SSIM with data range max - min, LPIPS
on the raw values; ``hprc-vt`` 128 x 128 tiles, scikit-image SSIM per channel, LPIPS on tiles min-max
normalised to [0, 1]. Invalid texels of the decode are set to 0 first. A frame's score is the mean over
its tiles, the total the mean over every frame of every lightmap. Decoding goes through Interface.py
alone (numpy); scoring imports airender (``airender.protocols``, the implementation behind
``airender eval --protocol hprc|hprc-vt``), so these numbers equal those of ``airender eval``. LPIPS
needs the LPIPS-Alex v0.1 weights (``--lpips_weights`` or the AIRENDER_LPIPS_WEIGHTS variable); without
them LPIPS is left out and the score is renormalised over the other parts (and says so).

Compression ratio = the bytes of every pack (everything the decoder reads, stored as it is; a tiled
lightmap: its tile packs plus 32 bytes of index per tile) / the raw float32 data of 24 hours per
lightmap (H x W x 3 x 4 x 24 bytes).

Score: each metric maps linearly from its worst value (score 0) to its best (score 1), clipped, and
the parts are weighted with the release's published weights: compression 30 %, decode time 30 %,
quality 40 % = PSNR 20 % + SSIM 10 % + LPIPS 10 %. The format fixes the weights, not the bounds; the
bounds below are this tool's choice: PSNR and SSIM and LPIPS end at the best values participants cite
(55 dB, 0.999, 0.0003); the decode time is taken per whole-atlas call and per million texels, so
that atlases of any size compare, and measured on whatever runs this script (CPU or not).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
HOURS_PER_DAY = 24
RANDOM_ACCESS_QUERIES = 16  # single-texel calls per hour
RANDOM_ACCESS_TOLERANCE = 1e-2
# metric: (worst, best, weight, unit); the score of a value is clip((v - worst) / (best - worst), 0, 1)
SCORE_PARTS: dict[str, tuple[float, float, float, str]] = {
    "compression": (0.05, 0.001, 0.30, "ratio of the raw float32 bytes"),
    "decode": (1000.0, 1.0, 0.30, "ms per whole-atlas call per million texels"),
    "psnr": (20.0, 55.0, 0.20, "dB"),
    "ssim": (0.5, 0.999, 0.10, ""),
    "lpips": (0.5, 0.0003, 0.10, ""),
}


@dataclass
class GroundTruth:
    """One lightmap of the dataset: name ("LEVEL:ID" or "ID"), level (or None), id, size, protocol, its hours
    and ``read(hour)`` -> (radiance [H, W, 3] float32, valid [H, W] bool)."""

    name: str
    level: str | None
    ident: int
    width: int
    height: int
    protocol: str
    hours: list[float]
    read: Callable[[float], tuple[np.ndarray, np.ndarray]]


def first_layout(root: Path) -> list[GroundTruth]:
    """Every lightmap of a dataset in the first layout (config.json + float32 RGB / int8 mask files)."""
    from airender.data.hours import hour_from_contest_key

    config = json.loads((root / "config.json").read_text())
    out = []
    for entry in config["lightmap_list"]:
        width, height = int(entry["resolution"]["width"]), int(entry["resolution"]["height"])
        files, masks = dict(entry["lightmaps"]), dict(entry.get("masks", {}))
        keys = {round(hour_from_contest_key(k), 6): k for k in files}

        def find(name: str) -> Path:
            return next((p for p in (root / "Data" / name, root / name) if p.is_file()), root / "Data" / name)

        def read(hour: float, files=files, masks=masks, keys=keys, width=width, height=height):
            key = keys[round(hour, 6)]
            frame = np.fromfile(find(files[key]), dtype="<f4").reshape(height, width, 3)
            valid = np.ones((height, width), bool) if key not in masks else \
                np.fromfile(find(masks[key]), dtype="i1").reshape(height, width) > 0
            return frame, valid

        level = entry.get("level")
        out.append(GroundTruth(f"{level}:{entry['id']}" if level else str(entry["id"]), level, int(entry["id"]),
                               width, height, "hprc", sorted(keys), read))
    return out


def virtual_texture(root: Path) -> list[GroundTruth]:
    """Every lightmap of a dataset in the virtual-texture layout (Original/ and Mask/, read as memory maps)."""
    from airender.data.virtual_texture import list_lightmaps, open_component, open_mask

    out = []
    for entry in list_lightmaps(root):
        original = open_component(root, entry, "original")
        valid = open_mask(root, entry).read(0, entry.height) > 0

        def read(hour: float, original=original, valid=valid):
            return original.read(hour), valid

        out.append(GroundTruth(str(entry.lightmap_id), None, entry.lightmap_id, entry.width, entry.height,
                               "hprc-vt", list(original.hours), read))
    return out


def part_score(name: str, value: float) -> float:
    worst, best, _, _ = SCORE_PARTS[name]
    return float(min(1.0, max(0.0, (value - worst) / (best - worst))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True, help="the dataset (either layout) to check against")
    parser.add_argument("--lpips_weights", default=None,
                        help="LPIPS-Alex v0.1 weights file (default: $AIRENDER_LPIPS_WEIGHTS or the torch hub cache)")
    parser.add_argument("--json", default="", help="also write the results to this JSON file (default: none)")
    args = parser.parse_args(argv)
    try:
        import torch

        from airender.data.virtual_texture import is_virtual_texture
        from airender.errors import InputError
        from airender.evaluate import build_metric_suite
        from airender.protocols import ProtocolScorer
    except ImportError as exc:
        print(f"error: scoring needs airender (pip install airender): {exc}", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    from Interface import ContestDecoder

    root = Path(args.data_dir)
    decoder = ContestDecoder(HERE)
    try:
        if not (root / "config.json").is_file():
            raise InputError(f"{root / 'config.json'}: no such file (--data_dir takes a lightmap dataset)")
        truths = virtual_texture(root) if is_virtual_texture(root) else first_layout(root)
        suite = build_metric_suite(args.lpips_weights, "cpu", ("psnr", "ssim", "lpips"))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    chosen, skipped = [], []
    for truth in truths:
        try:
            entry = decoder.entry(str(root), truth.name)
        except KeyError:
            skipped.append(truth.name)
            continue
        if (int(entry["width"]), int(entry["height"])) != (truth.width, truth.height):
            print(f"error: {root}: lightmap {truth.name} is {truth.width}x{truth.height}, the export's is "
                  f"{entry['width']}x{entry['height']}", file=sys.stderr)
            return 2
        chosen.append((truth, entry))
    if not chosen:
        print(f"error: {root}: none of its lightmaps ({', '.join(t.name for t in truths)}) is in this export",
              file=sys.stderr)
        return 2

    rng = np.random.default_rng(0)
    rows, frames = [], []
    for truth, entry in chosen:
        scorer = ProtocolScorer(truth.protocol, suite)
        start = time.perf_counter()
        decoder.prepare(str(root), truth.name)
        prepare_s = time.perf_counter() - start
        yy, xx = np.divmod(np.arange(truth.height * truth.width, dtype=np.int64), truth.width)
        coords = np.stack([yy, xx, np.zeros_like(yy)], axis=1).astype(np.float32)
        decode_s, access_error, scored = [], 0.0, []
        for hour in truth.hours:
            coords[:, 2] = hour
            start = time.perf_counter()
            pred = decoder.reconstruct(str(root), truth.name, coords)
            decode_s.append(time.perf_counter() - start)
            pred = pred.reshape(truth.height, truth.width, 3)
            for k in rng.integers(0, truth.height * truth.width, RANDOM_ACCESS_QUERIES):
                one = decoder.reconstruct(str(root), truth.name, coords[k:k + 1])
                access_error = max(access_error, float(np.abs(one[0] - pred.reshape(-1, 3)[k]).max()))
            ref, valid = truth.read(hour)
            ref = np.where(valid[..., None], ref, np.float32(0.0))
            try:
                metrics = scorer.frame(torch.from_numpy(pred.copy()), torch.from_numpy(np.ascontiguousarray(ref)),
                                       torch.from_numpy(valid), hdr=True)
            except ValueError:  # no tile with a valid texel and a non-zero reference (e.g. a black hour)
                continue
            scored.append(metrics)
            frames.append(metrics)
        means = {m: float(np.mean([s[m] for s in scored if m in s])) for m in ("psnr", "ssim", "lpips")
                 if any(m in s for s in scored)}
        rows.append({"lightmap": truth.name, "width": truth.width, "height": truth.height, "layout": truth.protocol,
                     "hours": len(truth.hours), "frames_scored": len(scored), **means,
                     "decode_s_sum": math.fsum(decode_s), "prepare_s": prepare_s,
                     "calls": len(decode_s), "texels": truth.width * truth.height,
                     "pack_bytes": int(entry["bytes"]), "raw_bytes": truth.width * truth.height * 3 * 4 * HOURS_PER_DAY,
                     "random_access_max_error": access_error})

    total = {m: float(np.mean([f[m] for f in frames if m in f])) for m in ("psnr", "ssim", "lpips")
             if any(m in f for f in frames)}
    pack_bytes, raw_bytes = sum(r["pack_bytes"] for r in rows), sum(r["raw_bytes"] for r in rows)
    decode_s = math.fsum(r["decode_s_sum"] for r in rows)
    megatexel_calls = sum(r["calls"] * r["texels"] for r in rows) / 1e6
    values = {"compression": pack_bytes / raw_bytes, "decode": decode_s * 1e3 / megatexel_calls, **total}
    parts = {name: part_score(name, value) for name, value in values.items()}
    weight = sum(SCORE_PARTS[name][2] for name in parts)
    score = sum(SCORE_PARTS[name][2] * s for name, s in parts.items()) / weight
    access_ok = all(r["random_access_max_error"] <= RANDOM_ACCESS_TOLERANCE for r in rows)

    print(f"export {HERE.name}/ against {root} ({rows[0]['layout']} protocol)")
    print("| lightmap | size | hours | PSNR dB | SSIM | LPIPS | decode s (sum) | load + cache s | pack bytes | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['lightmap']} | {r['width']}x{r['height']} | {r['hours']} | {_fmt(r.get('psnr'), 2)} | "
              f"{_fmt(r.get('ssim'), 4)} | {_fmt(r.get('lpips'), 4)} | {r['decode_s_sum']:.3f} | {r['prepare_s']:.3f} | "
              f"{r['pack_bytes']:,} | {100 * r['pack_bytes'] / r['raw_bytes']:.2f} % |")
    print(f"| all | | {sum(r['hours'] for r in rows)} | {_fmt(total.get('psnr'), 2)} | {_fmt(total.get('ssim'), 4)} | "
          f"{_fmt(total.get('lpips'), 4)} | {decode_s:.3f} | {sum(r['prepare_s'] for r in rows):.3f} | "
          f"{pack_bytes:,} | {100 * values['compression']:.2f} % |")
    worst_error = max(r["random_access_max_error"] for r in rows)
    print(f"random access: {RANDOM_ACCESS_QUERIES} single-texel calls per hour, max |call - whole-atlas call| = "
          f"{worst_error:.3g} (limit {RANDOM_ACCESS_TOLERANCE:g}): {'ok' if access_ok else 'FAILED'}")
    if skipped:
        print(f"note: not in this export, not scored: lightmaps {', '.join(skipped)}")
    print()
    print("| part | value | worst | best | score | weight |")
    print("|---|---|---|---|---|---|")
    for name, (worst, best, w, unit) in SCORE_PARTS.items():
        if name not in values:
            print(f"| {name} | n/a | {worst:g} | {best:g} | - | {100 * w:.0f} % |")
            continue
        shown = f"{100 * values[name]:.3f} %" if name == "compression" else f"{values[name]:.4g}"
        print(f"| {name}{' (' + unit + ')' if unit else ''} | {shown} | {worst:g} | {best:g} | {parts[name]:.3f} | "
              f"{100 * w:.0f} % |")
    note = "" if "lpips" in parts else f" (without LPIPS: {suite.lpips_unavailable_reason}; weights renormalised)"
    print(f"weighted score: {score:.4f}{note}")
    if args.json:
        out = Path(args.json)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps({"lightmaps": rows, "total": total, "values": values, "scores": parts,
                                   "score": score, "random_access_ok": access_ok}, indent=2) + "\n")
        tmp.replace(out)
    return 0 if access_ok else 1


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
