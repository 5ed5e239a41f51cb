"""eval --stream: an atlas scored window by window gives the scores that whole frames give, for both contest
protocols, skipping the windows without a valid texel."""
from __future__ import annotations

import json

import numpy as np
import pytest

from airender.cli import main
from airender.data.virtual_texture import VTLightmap, write_virtual_texture
from airender.evaluate_stream import WINDOW, windows_of

HEIGHT, WIDTH = 300, 600  # 2 x 3 windows of 256 x 256, the last row and column partial
STREAM_WINDOW = ("--stream_window", "256", "256")
HOURS = [2.0, 8.0, 12.0, 16.0, 22.0, 10.5]


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    rng = np.random.default_rng(5)
    ramp = np.linspace(0.2, 3.0, WIDTH, dtype=np.float32)[None, :, None]
    frames = np.stack([ramp * (1.2 + np.sin(h / 24.0 * 2 * np.pi)) + 0.3 * rng.random((HEIGHT, WIDTH, 3), np.float32)
                       for h in HOURS]).astype(np.float32)
    mask = np.ones((HEIGHT, WIDTH), bool)
    mask[256:, 512:] = False  # the bottom-right window holds no valid texel
    mask[:5] = False
    root = tmp_path_factory.mktemp("stream") / "vt"
    write_virtual_texture(root, [VTLightmap(3, HOURS, {"original": frames}, mask, parts=2)])
    run = root.parent / "run"
    assert main(["train", "--preset", "hashgrid", "--data_dir", str(root), "--holdout_hours", "10.5", "--max_steps",
                 "30", "--batch_size", "2048", "--out_dir", str(run)]) == 0
    return root, run / "last.ckpt"


@pytest.mark.parametrize("protocol", ["hprc", "hprc-vt"])
def test_streamed_scores_equal_whole_frames(atlas, protocol, tmp_path):
    root, ckpt = atlas
    assert len(windows_of(HEIGHT, WIDTH, (256, 256))) == 6 and WINDOW[0] % 256 == 0 and WINDOW[1] % 256 == 0
    metrics = {}
    for stream in ("off", "on"):
        out = tmp_path / stream
        assert main(["eval", "--ckpt", str(ckpt), "--data_dir", str(root), "--protocol", protocol, "--stream", stream,
                     *STREAM_WINDOW, "--out_dir", str(out)]) == 0
        metrics[stream] = json.loads((out / "metrics.json").read_text())
    whole, streamed = metrics["off"], metrics["on"]
    assert [(r["group"], r["time"]) for r in whole["rows"]] == [(r["group"], r["time"]) for r in streamed["rows"]]
    assert {r["group"] for r in streamed["rows"]} == {"hours", "between_day"}
    for a, b in zip(whole["rows"], streamed["rows"]):
        assert a["tiles"] == b["tiles"] and a["tiles"]["psnr"] > 0
        for key in ("psnr", "ssim"):
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (protocol, a["time"], key)
    for group, means in whole["means"].items():
        assert streamed["means"][group]["tiles"] == means["tiles"]
        assert streamed["means"][group]["psnr"] == pytest.approx(means["psnr"], rel=1e-4)
    for name, part in whole["contest_score"]["parts"].items():  # the decode time is the streamed path's own
        if name in ("psnr", "ssim", "lpips", "compression"):
            assert streamed["contest_score"]["parts"][name]["value"] == pytest.approx(part["value"], rel=1e-4), name


def test_stream_refuses_what_it_cannot_score(atlas, tmp_path, capsys):
    root, ckpt = atlas
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(ckpt), "--data_dir", str(root), "--protocol", "hprc-masked", "--stream", "on",
                 "--out_dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--protocol hprc-masked scores whole frames" in err
    assert not (tmp_path / "x" / "metrics.json").exists()
    assert main(["eval", "--ckpt", str(ckpt), "--data_dir", str(root), "--stream", "on", "--stream_window", "100",
                 "256", "--out_dir", str(tmp_path / "y")]) == 2
    assert "multiples of 256" in capsys.readouterr().err
