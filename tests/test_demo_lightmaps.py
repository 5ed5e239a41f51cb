"""The lightmap demo on the bundled sample atlas: a tiny budget writes every file with finite metrics."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from airender.demo_lightmaps import LIGHTMAP_RENDER_HOURS, LIGHTMAP_SHEET_TIMES, run_lightmap_demo
from airender.data.readers import read_image
from airender.data.virtual_texture import list_lightmaps, open_mask
from airender.errors import InputError
from airender.render import frame_name

HELD_OUT = {"between_day": [7.5, 10.25, 13.5, 16.75], "between_night": [2.5, 19.5, 22.5], "switch": [5.9, 18.1]}


@pytest.fixture(scope="module")
def demo(tmp_path_factory, lpips_weights):
    out = tmp_path_factory.mktemp("demo") / "lightmaps"
    means = run_lightmap_demo(out, str(lpips_weights), seconds=3.0, device="cpu", overwrite=False, max_steps=12)
    return out, means


def test_files(demo):
    out, _ = demo
    for name in ("best.ckpt", "last.ckpt", "train_log.jsonl", "metrics.md", "summary.json", "contact_sheet.png",
                 "day.gif", "eval/metrics.json", "eval/metrics.csv", "eval/metrics_vs_hour.png",
                 "data/config.json", "data/Mask", "data/Original", "data/level.glb", "level/index.html",
                 "level/level_data.js", "level/three.bundle.min.js"):
        assert (out / name).exists(), name
    for hour in LIGHTMAP_RENDER_HOURS:
        for fmt in ("png", "exr"):
            assert (out / "renders" / frame_name(hour, fmt)).is_file(), (hour, fmt)
    assert [p.name for p in out.parent.iterdir()] == ["lightmaps"], "no staging folder left"


def test_groups_and_finite_metrics(demo):
    out, means = demo
    assert list(means) == ["hours", "between_day", "between_night", "switch", "between"]
    for group, values in means.items():
        for metric in ("psnr", "ssim", "lpips"):
            assert math.isfinite(values[metric]), (group, metric, values)
        assert 0.0 < values["ssim"] <= 1.0 and values["lpips"] >= 0.0
    rows = json.loads((out / "eval" / "metrics.json").read_text())["rows"]
    times = {g: sorted(r["time"] for r in rows if r["group"] == g) for g in HELD_OUT}
    assert times == HELD_OUT, "the baked fractional times are held out, split by the light switch"
    assert sorted(r["time"] for r in rows if r["group"] == "hours") == [float(h) for h in range(24)]
    assert all(r["tiles"]["psnr"] == 1 for r in rows), "a 128 x 128 atlas is one tile of the protocol"
    summary = json.loads((out / "summary.json").read_text())
    assert 1 <= summary["steps"] <= summary["planned_steps"] == 12 and summary["protocol"] == "hprc-vt"
    assert summary["trained_hours"] == [float(h) for h in range(24)] and summary["size"]["model_bytes"] > 0
    assert "| **switch mean** |" in (out / "metrics.md").read_text()


def test_pictures_are_not_trivial(demo):
    out, _ = demo
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB")).astype(np.float32)
    assert sheet.shape[0] > 100 * len(LIGHTMAP_SHEET_TIMES) and sheet.std() > 10
    [entry] = list_lightmaps(out / "data")
    valid = open_mask(out / "data", entry).read(0, entry.height) > 0
    assert 0.5 < valid.mean() < 1.0
    for hour in (0.0, 12.0):  # invalid texels (no metric counts them) are black, valid ones are shown
        png = np.asarray(Image.open(out / "renders" / frame_name(hour, "png")))
        exr, is_hdr = read_image(out / "renders" / frame_name(hour, "exr"))
        assert is_hdr and png.shape == exr.shape == (128, 128, 3) and np.isfinite(exr).all()
        assert (png[~valid] == 0).all() and (exr[~valid] == 0).all() and png[valid].max() > 0
    gif = Image.open(out / "day.gif")
    assert gif.n_frames == 96 and gif.size == (128, 128)


def test_a_folder_with_a_run_is_refused_before_anything_is_written(demo, tmp_path, lpips_weights):
    out, _ = demo
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(InputError, match="already holds a run"):
        run_lightmap_demo(out, str(lpips_weights), seconds=1.0, device="cpu", overwrite=False, max_steps=1)
    assert sorted(p.name for p in out.iterdir()) == before
    with pytest.raises(InputError, match="does not exist"):
        run_lightmap_demo(tmp_path / "x", str(tmp_path / "missing.pth"), seconds=1.0, device="cpu", overwrite=False)
    assert not (tmp_path / "x").exists()
