"""Metrics: edge cases, masks, LPIPS against the reference distances, LPIPS unavailable."""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from airender.evaluate import build_metric_suite
from airender.metrics import MetricSuite, flip, psnr, ssim
from airender.nn.lpips import LPIPSAlex, find_lpips_weights


def images(seed=0, shape=(40, 48, 3)):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g)
    b = (a + 0.05 * torch.randn(shape, generator=g)).clamp(0, 1)
    return a, b


def test_identical_images():
    a, _ = images()
    assert psnr(a, a) == math.inf
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-9)
    assert flip(a, a) == pytest.approx(0.0, abs=1e-6)


def test_psnr_value_and_constant_images():
    a = torch.zeros(8, 8, 3)
    b = torch.full((8, 8, 3), 0.1)
    assert psnr(b, a) == pytest.approx(20.0)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(b, a) < 1.0


def test_mask_is_honoured():
    a, b = images()
    mask = torch.zeros(40, 48, dtype=torch.bool)
    mask[:, 24:] = True
    garbage = b.clone()
    garbage[:, :24] = 1.0 - garbage[:, :24]  # change only invalid texels
    for fn in (psnr, ssim, flip):
        assert fn(garbage, a, mask) == pytest.approx(fn(b, a, mask), rel=1e-6)
        assert fn(garbage, a) != pytest.approx(fn(b, a), rel=1e-3)
    with pytest.raises(ValueError, match="no valid texel"):
        psnr(a, b, torch.zeros(40, 48, dtype=torch.bool))


def test_lpips_reference_distances(lpips_weights):
    model = LPIPSAlex.from_source(find_lpips_weights(str(lpips_weights)))
    folder = lpips_weights.parent / "lpips_examples"

    def load(name):
        array = np.asarray(Image.open(folder / f"{name}.png").convert("RGB"), dtype=np.float32) / 255.0
        return torch.from_numpy(array).permute(2, 0, 1)[None] * 2 - 1

    ref, p0, p1 = load("ex_ref"), load("ex_p0"), load("ex_p1")
    assert round(float(model(ref, p0)), 3) == 0.722
    assert round(float(model(ref, p1)), 3) == 0.138
    assert float(model(ref, ref)) == 0.0
    x = ref.clone().requires_grad_(True)  # differentiable, for use as a loss
    model(x, p1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_lpips_env_var_and_unavailable(lpips_weights, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    monkeypatch.delenv("AIRENDER_LPIPS_WEIGHTS", raising=False)
    suite = build_metric_suite(None)
    assert suite.lpips_model is None and "--lpips_weights" in suite.lpips_unavailable_reason
    a, b = images()
    assert "lpips" not in suite.frame(a, b, None, hdr=False)  # never a made-up number
    monkeypatch.setenv("AIRENDER_LPIPS_WEIGHTS", str(lpips_weights))
    assert build_metric_suite(None).lpips_model is not None
    hub = tmp_path / "hub" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "lpips_alex_v0.1.pth").write_bytes(lpips_weights.read_bytes())
    monkeypatch.delenv("AIRENDER_LPIPS_WEIGHTS")
    assert find_lpips_weights().available


def test_hdr_protocol_tiles_and_peak():
    ref = torch.rand(300, 40, 3) * 10
    pred = ref * 1.01
    row = MetricSuite(metrics=("psnr", "ssim")).frame(pred, ref, None, hdr=True)
    # two tiles (256 and 44 rows), each with its own peak: PSNR must be finite and high, SSIM near 1
    assert 35 < row["psnr"] < 80 and row["ssim"] > 0.99
    mask = torch.ones(300, 40, dtype=torch.bool)
    mask[:256] = False
    only_second = MetricSuite(metrics=("psnr",)).frame(pred, ref, mask, hdr=True)["psnr"]
    tile = ref[256:]
    expected = 10 * math.log10(float(tile.max()) ** 2 / float(((pred[256:] - tile) ** 2).mean()))
    assert only_second == pytest.approx(expected, rel=1e-5)
