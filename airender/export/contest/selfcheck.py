"""Self-check of this export: the contest's evaluation loop on a dataset, and its weighted score.

    python selfcheck.py --data_dir DATASET [--lpips_weights W] [--json OUT]

For every lightmap of DATASET that this folder exports, and every test time of the layout's contest (first
layout, round 1: the times 0..23, 5.9 and 18.1 of its Test.py, those that config.json holds;
virtual-texture layout, round 2: the hours 1..24 of Original/), the loop makes one ``reconstruct`` call with
every texel of the atlas and times it (wall clock; the decode-time figure is the sum over all calls). The
first call of a lightmap also loads its pack and computes the texels' time-invariant values; that part is
timed separately beforehand (``ContestDecoder.prepare``) and reported as "load + cache", outside the
decode-time figure. 16 single-texel calls per time must equal the whole-atlas call at those texels within
1e-2 (random access; round 1 checks one).

Quality is scored as each contest's script scores it (``airender eval --protocol hprc|hprc-vt``,
``airender.contest_metrics``): round 1 on 256 x 256 tiles with the partial edge tiles, torchmetrics SSIM,
LPIPS on tiles min-max normalised each on its own; round 2 on whole 128 x 128 tiles only, scikit-image SSIM
per channel, LPIPS on min-max normalised tiles. Only the decode's invalid texels are set to 0; the
reference is read as it is. The totals are means over every scored tile of every lightmap and time, as the
scripts average them. Decoding goes through Interface.py alone (numpy); scoring imports airender, so these
numbers equal those of ``airender eval``. LPIPS needs the LPIPS-Alex v0.1 weights (``--lpips_weights`` or
the AIRENDER_LPIPS_WEIGHTS variable); without them the LPIPS part is missing and scores 0.

Compression ratio = the bytes of every pack (everything the decoder reads, stored as it is; a tiled
lightmap: its tile packs plus 32 bytes of index per tile) / the raw float32 data of 24 hours per
lightmap (H x W x 3 x 4 x 24 bytes).

Score (``airender.contest_score``): round 1's published formula and bounds (at most 50) and round 2's
published weights (at most 100; its bounds are not published, round 1's are assumed, and the output says
so), each on the values of the layout's own protocol. The decode time is this machine's.
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
    from airender.hours import hour_from_contest_key

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
        from airender.contest_metrics import pooled_means
        from airender.contest_score import ROUND1, ROUND2, score_table
        from airender.protocols import CONTEST_PROTOCOLS, ProtocolScorer
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
        rule, _ = CONTEST_PROTOCOLS[truth.protocol]
        hours = [h for h in truth.hours if rule.covers(h)]
        start = time.perf_counter()
        decoder.prepare(str(root), truth.name)
        prepare_s = time.perf_counter() - start
        yy, xx = np.divmod(np.arange(truth.height * truth.width, dtype=np.int64), truth.width)
        coords = np.stack([yy, xx, np.zeros_like(yy)], axis=1).astype(np.float32)
        decode_s, access_error, scored = [], 0.0, []
        for hour in hours:
            coords[:, 2] = hour
            start = time.perf_counter()
            pred = decoder.reconstruct(str(root), truth.name, coords)
            decode_s.append(time.perf_counter() - start)
            pred = pred.reshape(truth.height, truth.width, 3)
            for k in rng.integers(0, truth.height * truth.width, RANDOM_ACCESS_QUERIES):
                one = decoder.reconstruct(str(root), truth.name, coords[k:k + 1])
                access_error = max(access_error, float(np.abs(one[0] - pred.reshape(-1, 3)[k]).max()))
            ref, valid = truth.read(hour)
            metrics = scorer.frame(torch.from_numpy(pred.copy()), torch.from_numpy(np.ascontiguousarray(ref)),
                                   torch.from_numpy(np.ascontiguousarray(valid)), hdr=True)
            if not metrics["tiles"]:  # no tile with a valid texel and a non-zero reference (e.g. a black hour)
                continue
            scored.append(metrics)
            frames.append(metrics)
        means = {m: v for m, v in pooled_means(scored).items() if m in ("psnr", "ssim", "lpips")}
        rows.append({"lightmap": truth.name, "width": truth.width, "height": truth.height, "layout": truth.protocol,
                     "hours": len(hours), "frames_scored": len(scored), **means,
                     "decode_s_sum": math.fsum(decode_s), "prepare_s": prepare_s,
                     "calls": len(decode_s), "texels": truth.width * truth.height,
                     "pack_bytes": int(entry["bytes"]), "raw_bytes": truth.width * truth.height * 3 * 4 * HOURS_PER_DAY,
                     "random_access_max_error": access_error})

    pooled = pooled_means(frames)
    total = {m: pooled[m] for m in ("psnr", "ssim", "lpips") if m in pooled}
    pack_bytes, raw_bytes = sum(r["pack_bytes"] for r in rows), sum(r["raw_bytes"] for r in rows)
    decode_s = math.fsum(r["decode_s_sum"] for r in rows)
    values = {"compression": pack_bytes / raw_bytes, "time_s": decode_s, **total}
    own = CONTEST_PROTOCOLS[rows[0]["layout"]][0]
    other = ROUND2 if own is ROUND1 else ROUND1
    results = [own.evaluate(values), other.evaluate(values)]
    access_ok = all(r["random_access_max_error"] <= RANDOM_ACCESS_TOLERANCE for r in rows)

    print(f"export {HERE.name}/ against {root} ({rows[0]['layout']} protocol, the rules of {own.name})")
    print("| lightmap | size | times | PSNR dB | SSIM | LPIPS | decode s (sum) | load + cache s | pack bytes | ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['lightmap']} | {r['width']}x{r['height']} | {r['hours']} | {_fmt(r.get('psnr'), 2)} | "
              f"{_fmt(r.get('ssim'), 4)} | {_fmt(r.get('lpips'), 4)} | {r['decode_s_sum']:.3f} | {r['prepare_s']:.3f} | "
              f"{r['pack_bytes']:,} | {100 * r['pack_bytes'] / r['raw_bytes']:.2f} % |")
    print(f"| all | | {sum(r['hours'] for r in rows)} | {_fmt(total.get('psnr'), 2)} | {_fmt(total.get('ssim'), 4)} | "
          f"{_fmt(total.get('lpips'), 4)} | {decode_s:.3f} | {sum(r['prepare_s'] for r in rows):.3f} | "
          f"{pack_bytes:,} | {100 * values['compression']:.2f} % |")
    worst_error = max(r["random_access_max_error"] for r in rows)
    print(f"random access: {RANDOM_ACCESS_QUERIES} single-texel calls per time, max |call - whole-atlas call| = "
          f"{worst_error:.3g} (limit {RANDOM_ACCESS_TOLERANCE:g}): {'ok' if access_ok else 'FAILED'}")
    if skipped:
        print(f"note: not in this export, not scored: lightmaps {', '.join(skipped)}")
    if pooled.get("nan_tiles"):
        print("note: NaN tile values under the contest's rules (constant reference tiles): " +
              ", ".join(f"{n} {key}" for key, n in pooled["nan_tiles"].items()))
    if not frames:
        print("note: no tile qualified under the contest's rules (round 2 scores whole 128 x 128 tiles only, and "
              "needs a valid texel and a non-zero reference in each); the quality parts score 0")
    elif "lpips" not in total:
        print(f"note: no LPIPS ({suite.lpips_unavailable_reason}); its part scores 0")
    for result in results:
        print()
        print(score_table(result))
    if args.json:
        out = Path(args.json)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps({"lightmaps": rows, "total": total, "values": values,
                                   "scores": {r["rule"]: r for r in results}, "score": results[0]["total"],
                                   "random_access_ok": access_ok}, indent=2) + "\n")
        tmp.replace(out)
    return 0 if access_ok else 1


def _fmt(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
