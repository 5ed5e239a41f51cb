"""Evaluation protocols on tiny frames whose scores are known by construction."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from airender.cli import main
from airender.data.sequence import TODSequence
from airender.errors import InputError
from airender.evaluate import build_metric_suite, evaluate_field
from airender.metrics import MetricSuite
from airender.protocols import (PROTOCOLS, ProtocolScorer, evaluate_protocol, masked_vt_frame, masked_vt_tile_scores,
                                resolve_protocol)

NO_LPIPS = MetricSuite(lpips_model=None, metrics=("psnr", "ssim"))


def hdr_frame(seed=0, size=256):
    """[size, size, 3] radiance in [0.1, 0.9] whose tile (i, j) of 128 x 128 has its max = 1 + 2i + j; values
    are multiples of 2^-10, so adding a power-of-two offset is exact in float32."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.round((0.1 + 0.8 * torch.rand(size, size, 3, generator=g)) * 1024) / 1024
    for i in range(size // 128):
        for j in range(size // 128):
            ref[i * 128 + 17, j * 128 + 5, 1] = 1.0 + 2 * i + j
    return ref


@pytest.fixture(scope="module")
def lpips_suite(lpips_weights):
    return build_metric_suite(str(lpips_weights), "cpu", ("psnr", "ssim", "lpips"))


def test_protocol_names_and_defaults():
    assert PROTOCOLS == ("image", "hprc", "hprc-raw", "hprc-vt", "hprc-masked", "hprc-vt-masked")
    assert resolve_protocol(None, is_hdr=True) == "hprc" and resolve_protocol("", is_hdr=False) == "image"
    assert resolve_protocol("hprc-vt", is_hdr=False) == "hprc-vt"
    with pytest.raises(InputError, match="unknown"):
        resolve_protocol("vt", True)


def test_identical_frames_score_perfectly(lpips_suite):
    ref = hdr_frame()
    mask = torch.ones(256, 256, dtype=torch.bool)
    mask[:, :3] = False
    pred = ref.clone()
    pred[:, :3] = 50.0  # invalid texels of the decode: ignored
    for name in ("hprc-masked", "hprc-vt-masked"):
        scores = ProtocolScorer(name, lpips_suite).frame(pred, ref, mask, hdr=True)
        assert scores["psnr"] == math.inf
        assert scores["ssim"] == pytest.approx(1.0, abs=1e-6)
        assert scores["lpips"] == pytest.approx(0.0, abs=1e-6)
    for name in ("hprc", "hprc-raw", "hprc-vt"):  # the contests keep the reference's invalid texels
        scores = ProtocolScorer(name, lpips_suite).frame(ref.clone(), ref, None, hdr=True)
        assert scores["psnr"] == math.inf
        assert scores["ssim"] == pytest.approx(1.0, abs=1e-6)
        assert scores["lpips"] == pytest.approx(0.0, abs=1e-6)
        masked = ProtocolScorer(name, lpips_suite).frame(pred, ref, mask, hdr=True)
        assert masked["psnr"] == math.inf and masked["ssim"] < 0.999
    ldr = ref.clamp(0, 1)
    scores = ProtocolScorer("image", lpips_suite).frame(ldr, ldr, None, hdr=False)
    assert scores["psnr"] == math.inf and scores["ssim"] == pytest.approx(1.0) and scores["lpips"] == 0.0


def test_constant_offset_psnr_by_hand():
    ref, offset = hdr_frame(), 2.0 ** -7
    pred = ref + offset
    tiles = masked_vt_tile_scores(pred, ref, None, metrics=("psnr",))
    peaks = {(0, 0): 1.0, (0, 128): 2.0, (128, 0): 3.0, (128, 128): 4.0}
    assert {(t["top"], t["left"]): t["psnr"] for t in tiles} == \
        pytest.approx({k: 20 * math.log10(p / offset) for k, p in peaks.items()}, abs=1e-9)
    frame = masked_vt_frame(pred, ref, None, metrics=("psnr",))
    assert frame["tiles"] == 4
    assert frame["psnr"] == pytest.approx(np.mean([20 * math.log10(p / offset) for p in peaks.values()]), abs=1e-6)
    # the first layout's protocol: one 256 x 256 tile, peak = its max (4)
    assert ProtocolScorer("hprc-masked", NO_LPIPS).frame(pred, ref, None, hdr=True)["psnr"] == \
        pytest.approx(20 * math.log10(4.0 / offset), abs=1e-6)
    ldr = ref.clamp(0, 0.9)
    assert ProtocolScorer("image", NO_LPIPS).frame(ldr + offset, ldr, None, hdr=False)["psnr"] == \
        pytest.approx(20 * math.log10(1.0 / offset), abs=1e-6)


def test_one_bad_tile_among_good_ones(lpips_suite):
    ref = hdr_frame(seed=1)
    pred = ref.clone()
    g = torch.Generator().manual_seed(7)
    bad = (slice(128, 256), slice(0, 128))
    pred[bad] = ref[bad] * (1 + 0.3 * torch.randn(128, 128, 3, generator=g)).clamp_min(0)
    scores = ProtocolScorer("hprc-vt-masked", lpips_suite).frame(pred, ref, None, hdr=True)
    ref_tile, pred_tile = ref[bad].double().numpy(), pred[bad].double().numpy()
    bad_psnr = 10 * math.log10(3.0 ** 2 / np.mean((ref_tile - pred_tile) ** 2))
    bad_ssim = structural_similarity(ref_tile, pred_tile, data_range=ref_tile.max() - ref_tile.min(), channel_axis=2)

    def unit(x):
        return (x - x.min()) / (x.max() - x.min())

    with torch.no_grad():
        bad_lpips = float(lpips_suite.lpips_model(unit(pred[bad]).permute(2, 0, 1)[None],
                                                  unit(ref[bad]).permute(2, 0, 1)[None]))
    tiles = {(t["top"], t["left"]): t for t in masked_vt_tile_scores(pred, ref, None, lpips_suite.lpips_model)}
    assert tiles[(128, 0)]["psnr"] == pytest.approx(bad_psnr, abs=1e-6)
    assert [tiles[k]["psnr"] for k in ((0, 0), (0, 128), (128, 128))] == [math.inf] * 3
    assert 0.2 < bad_ssim < 0.99 and bad_lpips > 1e-3
    assert scores["psnr"] == math.inf
    assert scores["ssim"] == pytest.approx((3.0 + bad_ssim) / 4, abs=1e-9)
    assert scores["lpips"] == pytest.approx(bad_lpips / 4, rel=1e-4, abs=1e-7)


def test_tiles_without_valid_texels_or_light_are_skipped():
    ref = hdr_frame(size=256)
    ref[:128, 128:] = 0.0  # a dark tile
    mask = torch.ones(256, 256, dtype=torch.bool)
    mask[128:, :128] = False  # a tile with no valid texel
    pred = ref + 2.0 ** -6
    tiles = masked_vt_tile_scores(pred, ref, mask, metrics=("psnr",))
    assert [(t["top"], t["left"]) for t in tiles] == [(0, 0), (128, 128)]
    assert masked_vt_frame(pred, ref, mask, metrics=("psnr",))["psnr"] == \
        pytest.approx((20 * math.log10(1 / 2.0 ** -6) + 20 * math.log10(4 / 2.0 ** -6)) / 2, abs=1e-9)
    with pytest.raises(ValueError, match="no 128 x 128 tile"):
        masked_vt_frame(pred, torch.zeros_like(ref), mask)


def test_invalid_decode_texels_are_zeroed_before_ssim():
    ref = hdr_frame(seed=2)
    mask = torch.ones(256, 256, dtype=torch.bool)
    mask[40:60, 40:60] = False
    pred = ref.clone()
    garbage = pred.clone()
    garbage[40:60, 40:60] = 123.0
    zeroed = pred.clone()
    zeroed[40:60, 40:60] = 0.0
    scored = masked_vt_tile_scores(garbage, ref, mask, metrics=("psnr", "ssim"))[0]
    assert scored["psnr"] == math.inf  # MSE over valid texels only
    assert scored["ssim"] == pytest.approx(1.0, abs=1e-12)  # zero in both: the decode matches everywhere
    ref_garbage = ref.clone()
    ref_garbage[40:60, 40:60] = 7.0  # whatever the reference holds there is ignored too
    assert masked_vt_tile_scores(garbage, ref_garbage, mask)[0] == scored
    pred = ref.clone()
    pred[30:50, 30:50] += 0.5  # a difference that straddles valid and invalid texels
    ref_tile, zero_tile = zeroed[:128, :128].double().numpy(), pred.clone()
    zero_tile[40:60, 40:60] = 0.0
    zero_tile = zero_tile[:128, :128].double().numpy()
    expected = structural_similarity(ref_tile, zero_tile, data_range=ref_tile.max() - ref_tile.min(), channel_axis=2)
    assert masked_vt_tile_scores(pred, ref, mask, metrics=("ssim",))[0]["ssim"] == pytest.approx(expected, abs=1e-12)
    assert expected < 0.99


def test_lpips_sees_each_tile_min_max_normalised(lpips_suite):
    ref = hdr_frame(seed=3)
    pred = 3.0 * ref + 0.5  # the same picture after normalisation
    for name in ("hprc", "hprc-vt", "hprc-vt-masked"):
        assert ProtocolScorer(name, lpips_suite).frame(pred, ref, None, hdr=True)["lpips"] == \
            pytest.approx(0.0, abs=1e-5), name
    for name in ("hprc-raw", "hprc-masked"):
        assert ProtocolScorer(name, lpips_suite).frame(pred, ref, None, hdr=True)["lpips"] > 1e-2, name


def fake_model(frames: dict[float, torch.Tensor], height: int, width: int, is_hdr: bool = True):
    desc = SimpleNamespace(height=height, width=width, is_hdr=is_hdr)
    return SimpleNamespace(desc=desc, decode=lambda t: frames[round(t, 6)])


def test_evaluate_protocol_reports_means_and_decode_time():
    refs = {h: hdr_frame(seed=h) for h in (1, 2, 3)}
    offsets = {1: 2.0 ** -7, 2: 2.0 ** -6, 3: 2.0 ** -5}
    sequence = TODSequence(frames=torch.stack([refs[h] for h in (1, 2, 3)]), times=torch.tensor([1.0, 2.0, 3.0],
                           dtype=torch.float64), mask=None, is_hdr=True, source="synthetic")
    model = fake_model({float(h): refs[h] + offsets[h] for h in refs}, 256, 256)
    report = evaluate_protocol(model, [("hours", sequence)], NO_LPIPS, "hprc-vt", keep_images=False)
    per_hour = [np.mean([20 * math.log10(p / offsets[h]) for p in (1, 2, 3, 4)]) for h in (1, 2, 3)]
    # the release computes in float32: within 1e-4 dB of the exact values
    assert [r["psnr"] for r in report.rows] == pytest.approx(per_hour, abs=1e-4)
    assert report.means["hours"]["psnr"] == pytest.approx(np.mean(per_hour), abs=1e-4)
    assert all(r["decode_s"] >= 0 and r["tiles"] == {"psnr": 4, "ssim": 4} for r in report.rows)
    assert report.means["hours"]["decode_s_sum"] == pytest.approx(sum(r["decode_s"] for r in report.rows))
    # hprc-masked gives exactly what evaluate_field gives with the suite itself
    same = evaluate_protocol(model, [("hours", sequence)], NO_LPIPS, "hprc-masked", keep_images=False)
    plain = evaluate_field(model, [("hours", sequence)], NO_LPIPS, keep_images=False)
    assert [{k: r[k] for k in ("psnr", "ssim")} for r in same.rows] == \
        [{k: r[k] for k in ("psnr", "ssim")} for r in plain.rows]
    with pytest.raises(InputError, match="synthetic: --protocol image scores LDR frames"):
        evaluate_protocol(model, [("hours", sequence)], NO_LPIPS, "image")


def test_eval_command_with_the_virtual_texture_protocol(tmp_path, capsys, lpips_weights):
    from airender.config import ExperimentConfig
    from airender.data import load_sequence
    from airender.data.virtual_texture import VTLightmap, write_virtual_texture
    from airender.engine.trainer import Trainer

    rng = np.random.default_rng(0)
    hours = [6, 12, 18]
    frames = (rng.random((3, 64, 48, 3)) * 4).astype(np.float32)
    write_virtual_texture(tmp_path / "vt", [VTLightmap(2, hours, {"original": frames}, None, 2)])
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    config.data.data_dir = str(tmp_path / "vt")
    config.field.hidden, config.field.layers = 8, 1
    config.train.max_steps, config.train.batch_size, config.train.progress = 2, 64, False
    Trainer(config, load_sequence(tmp_path / "vt")).fit()
    code = main(["eval", "--ckpt", str(tmp_path / "run" / "best.ckpt"), "--data_dir", str(tmp_path / "vt"),
                 "--protocol", "hprc-vt-masked", "--lpips_weights", str(lpips_weights), "--out_dir", str(tmp_path / "ev"),
                 "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "protocol hprc-vt-masked" in out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    means = metrics["means"]["hours"]
    assert set(means) >= {"psnr", "ssim", "lpips", "decode_s_sum"} and "flip" not in means
    assert -1 < means["ssim"] < 1 and 0 <= means["lpips"] < 2 and means["psnr"] < 60
    assert [r["tiles"] for r in metrics["rows"]] == [1, 1, 1]  # one 48 x 64 tile per hour
