"""The contests' scoring rules, rebuilt here from what their scripts do (not imported from airender), against
``airender eval --protocol hprc|hprc-vt``: synthetic atlases with partial edge tiles, dilated gutters and a
constant tile, and the courtyard lightmap in both layouts. Only the LPIPS network (AlexNet v0.1 weights) is
airender's; the tiling, masking, normalisation and averaging are this file's."""
import json
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt
from skimage.metrics import structural_similarity as skimage_ssim
from torchmetrics.image import StructuralSimilarityIndexMeasure

from airender.cli import main
from airender.contest_score import ROUND1, ROUND2
from airender.evaluate import build_metric_suite
from airender.protocols import ProtocolScorer
from airender.models import as_decoder, load_model

TOLERANCE = {"psnr": 0.01, "ssim": 0.001, "lpips": 0.002}  # the issue's: dB, SSIM, LPIPS


# --- the rules, restated ------------------------------------------------------------------------------------
def script_round1(ref, dec, mask, lpips_net, normalise=True):
    """Round 1's Test.py + revised Utils.py: ref, dec [H, W, 3] float32, mask [H, W] int8 (127 / -1).
    Returns the lists of tile values {"psnr": [...], "ssim": [...], "lpips": [...]}."""
    dec = dec.copy()
    dec[mask <= 0] = 0
    ref_t = torch.from_numpy(ref).permute(2, 0, 1).unsqueeze(0)
    dec_t = torch.from_numpy(dec).permute(2, 0, 1).unsqueeze(0)
    out = {"psnr": [], "ssim": [], "lpips": []}
    size = 256
    for i in range((ref.shape[0] + size - 1) // size):
        for j in range((ref.shape[1] + size - 1) // size):
            r0, r1 = i * size, min((i + 1) * size, ref.shape[0])
            c0, c1 = j * size, min((j + 1) * size, ref.shape[1])
            lm, rc, mk = ref_t[:, :, r0:r1, c0:c1], dec_t[:, :, r0:r1, c0:c1], mask[r0:r1, c0:c1]
            if not (np.any(mk >= 127) and lm.max() != 0):
                continue
            keep = torch.from_numpy(mk >= 127)
            mse = torch.mean((lm[:, :, keep] - rc[:, :, keep]) ** 2)
            out["psnr"].append((10 * torch.log10(torch.max(lm[:, :, keep]) ** 2 / mse)).item())
            out["ssim"].append(StructuralSimilarityIndexMeasure(data_range=lm.max() - lm.min())(lm, rc).item())

            def norm(image):
                low, high = image.min(), image.max()
                return (image - low) / (high - low) if high > low else image

            a, b = (norm(lm), norm(rc)) if normalise else (lm, rc)
            if min(lm.shape[2:]) >= 32 and lpips_net is not None:
                with torch.no_grad():
                    out["lpips"].append(lpips_net(a, b).item())
    return out


def script_round2(ref, dec, mask, lpips_net):
    """The virtual-texture release's Test.py (whole 128 x 128 tiles; numpy float32; skimage SSIM per channel)."""
    dec = dec.copy()
    out = {"psnr": [], "ssim": [], "lpips": []}
    size = 128
    for i in range(ref.shape[0] // size):
        for j in range(ref.shape[1] // size):
            rows, cols = slice(i * size, (i + 1) * size), slice(j * size, (j + 1) * size)
            lm, rc, mk = ref[rows, cols], dec[rows, cols], mask[rows, cols]
            if not (np.any(mk >= 127) and lm.max() != 0):
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                out["psnr"].append(10 * np.log10(np.max(lm[mk >= 127]) ** 2 / np.mean((lm[mk >= 127] - rc[mk >= 127]) ** 2)))
                rc[mk <= 0] = 0  # in place, as the script's cal_ssim does on its view
                out["ssim"].append(np.mean([skimage_ssim(lm[..., c], rc[..., c], data_range=lm[..., c].max() - lm[..., c].min())
                                            for c in range(3)]))
                a = (lm - lm.min()) / (lm.max() - lm.min())
                b = (rc - rc.min()) / (rc.max() - rc.min())
            if lpips_net is not None:
                with torch.no_grad():
                    out["lpips"].append(lpips_net(torch.from_numpy(a).permute(2, 0, 1)[None].float(),
                                                  torch.from_numpy(b).permute(2, 0, 1)[None].float()).item())
    return out


def close(ours: float, theirs: float, metric: str) -> bool:
    if math.isnan(theirs) or math.isnan(ours):
        return math.isnan(theirs) and math.isnan(ours)
    if math.isinf(theirs) or math.isinf(ours):
        return ours == theirs
    return abs(ours - theirs) <= TOLERANCE[metric]


# --- synthetic atlases --------------------------------------------------------------------------------------
def dilated_atlas(height=290, width=300, seed=0):
    """(reference, decode, mask int8): charts of smooth radiance; invalid texels within 3 texels of a chart
    hold a copy of its nearest valid texel (dilated gutters), the rest 0; the decode is the reference with
    noise and garbage (50.0) in its invalid texels. The region [128:, 128:] is a constant 2.0."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ref = np.stack([1.0 + np.sin(xx / 17 + c) * np.cos(yy / 23) + 0.3 * c for c in range(3)], axis=-1).astype(np.float32)
    ref *= 1.0 + 0.05 * rng.standard_normal(ref.shape).astype(np.float32)
    valid = np.zeros((height, width), bool)
    for _ in range(14):
        top, left = rng.integers(0, height - 20), rng.integers(0, width - 20)
        valid[top:top + rng.integers(10, 90), left:left + rng.integers(10, 90)] = True
    valid[128:, 128:] = True
    ref[128:, 128:] = 2.0
    distance, (near_y, near_x) = distance_transform_edt(~valid, return_indices=True)
    gutter = np.where((distance <= 3)[..., None], ref[near_y, near_x], 0.0)
    ref = np.where(valid[..., None], ref, gutter).astype(np.float32)
    decode = (ref * (1 + 0.08 * rng.standard_normal(ref.shape))).astype(np.float32)
    decode[~valid] = 50.0
    mask = np.where(valid, 127, -1).astype(np.int8)
    return ref, decode, mask


@pytest.fixture(scope="module")
def lpips_net(lpips_weights):
    return build_metric_suite(str(lpips_weights), "cpu", ("psnr", "ssim", "lpips")).lpips_model


@pytest.fixture(scope="module")
def suite(lpips_weights):
    return build_metric_suite(str(lpips_weights), "cpu", ("psnr", "ssim", "lpips"))


def score(protocol, suite, ref, decode, mask):
    return ProtocolScorer(protocol, suite).frame(torch.from_numpy(decode), torch.from_numpy(ref),
                                                 torch.from_numpy(mask >= 127), hdr=True)


def test_round2_whole_tiles_gutters_and_a_constant_tile(suite, lpips_net):
    ref, decode, mask = dilated_atlas()
    assert (ref[mask < 0] > 0).any(), "the gutters hold colour"
    theirs = script_round2(ref, decode, mask, lpips_net)
    ours = score("hprc-vt", suite, ref, decode, mask)
    assert ours["tiles"] == {"psnr": 4, "ssim": 4, "lpips": 4}, "whole 128 x 128 tiles only: 2 x 2 of 300 x 290"
    for metric in ("psnr", "ssim", "lpips"):
        assert close(ours[metric], float(np.mean(theirs[metric])), metric), (metric, ours[metric], theirs[metric])
    # the constant tile [128:256, 128:256]: SSIM 0 (no range, a decode that varies), LPIPS 0 / 0 = NaN
    assert theirs["ssim"][3] == 0.0 and math.isnan(theirs["lpips"][3]) and math.isnan(ours["lpips"])
    assert ours["nan_tiles"] == {"lpips": 1}
    # without the constant tile every value is finite and equal to the script's
    top = [a[:128].copy() for a in (ref, decode, mask)]
    theirs = script_round2(*[a.copy() for a in top], lpips_net)
    cut = score("hprc-vt", suite, *top)
    for metric in ("psnr", "ssim", "lpips"):
        assert math.isfinite(cut[metric]) and close(cut[metric], float(np.mean(theirs[metric])), metric), metric
    # zeroing the reference's gutters too (hprc-vt-masked) is another number: the check can fail
    masked = score("hprc-vt-masked", suite, *top)
    assert abs(masked["ssim"] - cut["ssim"]) > 10 * TOLERANCE["ssim"]


def test_round1_partial_tiles_gutters_and_a_constant_tile(suite, lpips_net):
    ref, decode, mask = dilated_atlas()
    theirs = script_round1(ref, decode, mask, lpips_net)
    ours = score("hprc", suite, ref, decode, mask)
    assert ours["tiles"] == {"psnr": 4, "ssim": 4, "lpips": 4}, "2 x 2 tiles of 256, partial ones included"
    for metric in ("psnr", "ssim", "lpips"):
        assert close(ours[metric], float(np.mean(theirs[metric])), metric), (metric, ours[metric], theirs[metric])
    # the partial tile [256:290, 256:300] has a constant reference: SSIM without a data range (0 beside a decode
    # that varies, NaN where the decode is that constant too), LPIPS on its raw values (unchanged by the script)
    assert theirs["ssim"][3] == pytest.approx(0.0, abs=1e-3) and math.isfinite(theirs["lpips"][3])
    exact = decode.copy()
    exact[256:, 256:] = 2.0
    assert math.isnan(script_round1(ref, exact, mask, None)["ssim"][3])
    nan_ssim = score("hprc", suite, ref, exact, mask)
    assert math.isnan(nan_ssim["ssim"]) and nan_ssim["nan_tiles"] == {"ssim": 1}
    # the first 256 rows: finite, equal, and other than raw-value LPIPS (the older script) and hprc-masked
    top = [a[:256].copy() for a in (ref, decode, mask)]
    theirs = script_round1(*top, lpips_net)
    cut = score("hprc", suite, *top)
    for metric in ("psnr", "ssim", "lpips"):
        assert math.isfinite(cut[metric]) and close(cut[metric], float(np.mean(theirs[metric])), metric), metric
    raw = score("hprc-raw", suite, *top)
    assert close(raw["lpips"], float(np.mean(script_round1(*top, lpips_net, normalise=False)["lpips"])), "lpips")
    brighter = [top[0] * 8, top[1] * 8, top[2]]  # min-max normalised LPIPS ignores the exposure, raw LPIPS does not
    assert abs(score("hprc", suite, *brighter)["lpips"] - cut["lpips"]) < 1e-4
    assert abs(score("hprc-raw", suite, *brighter)["lpips"] - raw["lpips"]) > 10 * TOLERANCE["lpips"]
    band = [a[:128].copy() for a in (ref, decode, mask)]  # zeroing the reference's gutters too is another number
    assert abs(score("hprc-masked", suite, *band)["ssim"] - score("hprc", suite, *band)["ssim"]) > 10 * TOLERANCE["ssim"]


def test_skipped_tiles_follow_the_scripts(suite, lpips_net):
    ref, decode, mask = dilated_atlas(height=256, width=256, seed=3)
    ref[:128, :128], mask[:128, :128] = 0.0, -1  # no valid texel
    ref[:128, 128:] = 0.0  # valid texels but an all-zero reference
    mask[:128, 128:] = 127
    ref[128:, :128][mask[128:, :128] < 0] = 0.5  # valid texels of 0 beside coloured gutters: scored
    ref[128:, :128][mask[128:, :128] >= 127] = 0.0
    theirs = script_round2(ref, decode, mask, None)
    ours = ProtocolScorer("hprc-vt", build_metric_suite(None, "cpu", ("psnr", "ssim"))).frame(
        torch.from_numpy(decode), torch.from_numpy(ref), torch.from_numpy(mask >= 127), hdr=True)
    assert ours["tiles"]["psnr"] == len(theirs["psnr"]) == 2
    assert close(ours["ssim"], float(np.mean(theirs["ssim"])), "ssim")


def test_weighted_scores_by_hand():
    halfway = {"psnr": 37.5, "ssim": 0.73 + 0.269 / 2, "lpips": 0.3 - 0.2997 / 2, "compression": 0.25, "time_s": 150.0}
    result = ROUND1.evaluate(halfway)
    assert all(part["score"] == pytest.approx(50.0) for part in result["parts"].values())
    assert result["total"] == pytest.approx(25.0) and result["maximum"] == 50 and not result["assumed"]
    best = ROUND1.evaluate({"psnr": 70.0, "ssim": 1.0, "lpips": 0.0, "compression": 0.0, "time_s": 0.0})
    assert best["total"] == pytest.approx(50.0)
    worst = ROUND2.evaluate({"psnr": 10.0, "ssim": 0.1, "lpips": 0.9, "compression": 0.9, "time_s": 900.0})
    assert worst["total"] == 0.0 and "not published" in worst["assumed"]
    assert ROUND2.evaluate(halfway)["total"] == pytest.approx(50.0)
    assert ROUND1.evaluate({"psnr": 37.5})["missing"] == ["ssim", "lpips", "compression", "time_s"]


# --- the courtyard, both layouts ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def courtyard_run(courtyard, tmp_path_factory):
    root = tmp_path_factory.mktemp("contest_rules")
    assert main(["train", "--preset", "hashgrid", "--light_switch", "6", "18", "--data_dir", str(courtyard / "hprc"),
                 "--max_steps", "40", "--progress", "False", "--device", "cpu", "--out_dir", str(root / "run")]) == 0
    assert main(["convert", "--data_dir", str(courtyard / "hprc"), "--out_dir", str(root / "vt"), "--parts", "2"]) == 0
    return root


def read_first_layout(folder, key):
    config = json.loads((folder / "config.json").read_text())["lightmap_list"][0]
    width, height = config["resolution"]["width"], config["resolution"]["height"]
    ref = np.fromfile(folder / "Data" / config["lightmaps"][key], dtype=np.float32).reshape(height, width, 3)
    mask = np.fromfile(folder / "Data" / config["masks"][key], dtype=np.int8).reshape(height, width)
    return ref, mask


def read_vt(folder, hour):
    entry = json.loads((folder / "config.json").read_text())["lightmap_list"][0]
    width, height, ident = entry["resolution"]["width"], entry["resolution"]["height"], entry["id"]
    stem = f"VirtualTexture0_{ident}_HQ_{width}_{height}"
    ref = np.concatenate([np.fromfile(folder / "Original" / f"lightmapRawData_Dilate_{stem}_{hour}.00.bin_{p}", np.float32)
                          for p in range(entry["parts"])]).reshape(height, width, 3)
    mask = np.concatenate([np.fromfile(folder / "Mask" / f"lightmapCoverage_Dilate_{stem}_1.00.bin_{p}", np.int8)
                           for p in range(entry["parts"])]).reshape(height, width)
    return ref, mask


@pytest.mark.parametrize("layout", ["hprc", "hprc-vt"])
def test_eval_reproduces_the_contest_scripts_on_the_courtyard(courtyard, courtyard_run, lpips_weights, layout):
    data = courtyard / "hprc" if layout == "hprc" else courtyard_run / "vt"
    out = courtyard_run / f"eval_{layout}"
    assert main(["eval", "--ckpt", str(courtyard_run / "run" / "last.ckpt"), "--data_dir", str(data), "--protocol",
                 layout, "--lpips_weights", str(lpips_weights), "--out_dir", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    decoder = as_decoder(load_model(courtyard_run / "run" / "last.ckpt", "cpu").field)
    net = build_metric_suite(str(lpips_weights), "cpu", ("lpips",)).lpips_model
    times = [float(h) for h in range(24)] + [5.9, 18.1] if layout == "hprc" else [float(h) for h in range(1, 25)]
    pooled = {"psnr": [], "ssim": [], "lpips": []}
    for hour in times:
        if layout == "hprc":
            ref, mask = read_first_layout(data, str(int(hour * 100)))
        else:
            ref, mask = read_vt(data, int(hour))
        decode = decoder.decode(hour % 24).numpy().astype(np.float32)
        tiles = (script_round1 if layout == "hprc" else script_round2)(ref, decode, mask, net)
        row = next(r for r in metrics["rows"] if "/" not in r["group"] and abs(r["time"] - hour % 24) < 1e-6)
        for metric, values in tiles.items():
            pooled[metric] += values
            assert close(row[metric], float(np.mean(values)), metric), (hour, metric, row[metric], values)
    contest = metrics["contest_score"]
    assert contest["frames"] == len(times) and contest["rule"] == ("round 1" if layout == "hprc" else "round 2")
    for metric, values in pooled.items():
        assert close(contest["parts"][metric]["value"], float(np.mean(values)), metric), metric
