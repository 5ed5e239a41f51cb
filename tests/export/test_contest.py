"""Contest export: Interface.reconstruct answers random access like the whole-atlas call, for both
layouts; the folder imports nothing of airender; the self-check runs the evaluation loop and scores."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from airender.models.checkpoint import load_checkpoint
from airender.errors import InputError
from airender.export.contest import lightmap_of_source
from airender.render import FrameDecoder
from tests.conftest import LPIPS_WEIGHTS, REPO
from tests.export.conftest import HEIGHT, VT_HOURS, WIDTH, run_without_torch
from tests.export.test_pack_runtime import export_main


def interface(folder):
    """A fresh ContestDecoder of ``folder``, imported from the folder's own Interface.py."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"contest_interface_{abs(hash(str(folder)))}", folder / "Interface.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ContestDecoder(folder)


def whole_atlas(decoder, dataset, lightmap, hour: float) -> np.ndarray:
    """One reconstruct call with every texel at ``hour`` -> [H, W, 3]."""
    yy, xx = np.divmod(np.arange(HEIGHT * WIDTH), WIDTH)
    coords = np.stack([yy, xx, np.full(yy.shape, hour)], axis=1).astype(np.float32)
    return decoder.reconstruct(dataset, lightmap, coords).reshape(HEIGHT, WIDTH, 3)


def assert_random_access(decoder, dataset, lightmap, frames: dict, singles: int) -> None:
    """1000 random texels of the hours of ``frames`` ({hour: whole-atlas frame [H, W, 3]}) in one
    ``reconstruct`` call equal those frames there, and the first ``singles`` of them in calls of one texel
    each, as the release's random-access check makes them."""
    hours = list(frames)
    height, width = frames[hours[0]].shape[:2]
    rng = np.random.default_rng(0)
    n = 1000
    y, x = rng.integers(0, height, n), rng.integers(0, width, n)
    t = np.array(hours)[rng.integers(0, len(hours), n)]
    got = decoder.reconstruct(dataset, lightmap, np.stack([y, x, t], axis=1))
    assert got.shape == (n, 3) and got.dtype == np.float32
    expected = np.stack([frames[h][yy, xx] for yy, xx, h in zip(y, x, t)])
    assert np.abs(got - expected).max() <= 1e-3
    for k in range(singles):
        one = decoder.reconstruct(dataset, lightmap, [[y[k], x[k], t[k]]])
        assert np.abs(one[0] - expected[k]).max() <= 1e-3


@pytest.mark.parametrize("data, variant, dataset, lightmap, hours", [
    ("hdr", "quality_hdr", "0", 1, [0.0, 5.9, 13.25, 18.1, 24.0]),
    ("vt", "quality_vt", None, 4, [1.0, 5.5, 12.0, 18.1, 24.0]),
])
def test_reconstruct_is_random_access(data, variant, dataset, lightmap, hours, trained, export_data, tmp_path):
    ckpt = trained(variant)
    out = tmp_path / "contest"
    assert export_main("--ckpt", str(ckpt), "--format", "contest", "--data_dir", str(export_data[data]),
                       "--out", str(out)) == 0
    index = json.loads((out / "lightmaps.json").read_text())
    assert index["layout"] == ("hprc" if data == "hdr" else "hprc-vt")
    assert [e["id"] for e in index["lightmaps"]] == [lightmap]
    decoder = interface(out)
    field = load_checkpoint(ckpt).field
    frames = {h: whole_atlas(decoder, dataset, lightmap, h) for h in hours}
    torch_frames = FrameDecoder(field)
    for h in hours:  # the whole-atlas call is the field's frame decode (radiance: relative tolerance)
        expected = torch_frames.decode(h).numpy()
        assert np.abs(frames[h] - expected).max() <= 1e-3 * max(1.0, float(np.abs(expected).max())), h
    assert_random_access(decoder, dataset, lightmap, frames, singles=20)
    # 24 is midnight; "LEVEL:ID" names the lightmap too
    name = f"{dataset}:{lightmap}" if dataset else str(lightmap)
    assert np.array_equal(decoder.reconstruct(None, name, [[3, 4, 24.0]]), decoder.reconstruct(None, name, [[3, 4, 0.0]]))


def test_reconstruct_refuses_bad_coords(trained, export_data, tmp_path):
    out = tmp_path / "contest"
    export_main("--ckpt", str(trained("quality_hdr")), "--format", "contest", "--data_dir", str(export_data["hdr"]),
                "--out", str(out))
    decoder = interface(out)
    for coords, message in (([[0, 0]], r"\[N, 3\]"), ([[0.5, 0, 1]], "integer"), ([[0, 0, 25]], r"\[0, 24\]"),
                            ([[HEIGHT, 0, 1]], "outside"), ([[0, 0, np.nan]], "NaN")):
        with pytest.raises(ValueError, match=message):
            decoder.reconstruct("0", 1, np.array(coords, np.float64))
    with pytest.raises(KeyError, match="not in this export"):
        decoder.reconstruct("0", 3, [[0, 0, 1]])
    assert decoder.reconstruct("0", 1, np.zeros((0, 3))).shape == (0, 3)


def test_folder_is_self_contained(trained, export_data, tmp_path):
    """Interface.py decodes with numpy only: in a fresh interpreter that cannot import airender or torch."""
    out = tmp_path / "contest"
    export_main("--ckpt", str(trained("quality_hdr")), "--format", "contest", "--data_dir", str(export_data["hdr"]),
                "--out", str(out), "--quant", "fp16")
    assert sorted(p.name for p in out.iterdir()) == ["Interface.py", "README.md", "lightmaps.json", "packs",
                                                      "runtime", "selfcheck.py"]
    printed = run_without_torch(out, "rgb = reconstruct('0', 1, [[1, 2, 5.9], [3, 4, 18.1]])\n"
                                     "print(rgb.shape, rgb.dtype, loaded)\n", tmp_path)
    assert printed == "(2, 3) float32 []"


def test_matching_checkpoints_to_lightmaps(trained, export_data, tmp_path):
    hdr = export_data["hdr"]
    first, second = trained("quality_hdr"), trained("hashgrid_hdr_second")
    out = tmp_path / "two"
    assert export_main("--ckpt", str(second), "--ckpt", str(first), "--format", "contest", "--data_dir", str(hdr),
                       "--out", str(out)) == 0
    index = json.loads((out / "lightmaps.json").read_text())
    assert [(e["level"], e["id"]) for e in index["lightmaps"]] == [("0", 7), ("0", 1)]
    decoder = interface(out)
    for lightmap, ckpt in ((1, first), (7, second)):
        expected = FrameDecoder(load_checkpoint(ckpt).field).decode(9.0).numpy()
        got = whole_atlas(decoder, "0", lightmap, 9.0)
        assert np.abs(got - expected).max() <= 1e-3 * max(1.0, float(expected.max()))
    # explicit ids override the data description; a second export replaces the first
    assert export_main("--ckpt", str(first), "--format", "contest", "--data_dir", str(hdr), "--out", str(out),
                       "--lightmap_ids", "0:7") == 0
    assert [e["id"] for e in json.loads((out / "lightmaps.json").read_text())["lightmaps"]] == [7]
    assert lightmap_of_source(f"{hdr} (lightmap 0:1)") == ("0", 1)
    assert lightmap_of_source(f"{hdr} (lightmap 4, Original)") == (None, 4)
    assert lightmap_of_source(str(hdr)) is None


@pytest.mark.parametrize("extra, message", [
    ((), "--data_dir: --format contest needs"),
    (("--data_dir", "{vt}"), "no lightmap 0:1"),
    (("--data_dir", "{hdr}", "--lightmap_ids", "1", "7"), "2 ids for 1 checkpoints"),
    (("--data_dir", "{hdr}", "--lightmap_ids", "x"), "not a lightmap id"),
    (("--data_dir", "{hdr}", "--ckpt", "{ckpt}"), "already comes from"),
    (("--data_dir", "{ldr}"), "no such file"),
    (("--data_dir", "{hdr}", "--out", "{busy}"), "holds other files"),
])
def test_contest_bad_input(extra, message, trained, export_data, tmp_path):
    ckpt = trained("quality_hdr")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep")
    names = {"vt": export_data["vt"], "hdr": export_data["hdr"], "ldr": export_data["ldr"], "ckpt": ckpt, "busy": busy}
    argv = ["--ckpt", str(ckpt), "--format", "contest", "--out", str(tmp_path / "out")]
    argv += [a.format(**names) for a in extra]
    with pytest.raises(InputError, match=message):
        export_main(*argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]


def test_ldr_checkpoint_refused(trained, export_data, tmp_path):
    with pytest.raises(InputError, match="LDR"):
        export_main("--ckpt", str(trained("quality")), "--format", "contest", "--data_dir", str(export_data["hdr"]),
                    "--out", str(tmp_path / "out"), "--lightmap_ids", "0:1")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data, variant", [("hdr", "quality_hdr"), ("vt", "quality_vt")])
def test_selfcheck_prints_scores(data, variant, trained, export_data, tmp_path):
    out = tmp_path / "contest"
    export_main("--ckpt", str(trained(variant)), "--format", "contest", "--data_dir", str(export_data[data]),
                "--out", str(out))
    argv = [sys.executable, str(out / "selfcheck.py"), "--data_dir", str(export_data[data]),
            "--json", str(tmp_path / "r.json")]
    if LPIPS_WEIGHTS.is_file():
        argv += ["--lpips_weights", str(LPIPS_WEIGHTS)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert "weighted score (round 1):" in text and "weighted score (round 2):" in text
    assert "random access:" in text and ": ok" in text and "assumption: bounds not published" in text
    results = json.loads((tmp_path / "r.json").read_text())
    (row,) = results["lightmaps"]
    hours = VT_HOURS if data == "vt" else [0, 3, 5, 6, 9, 12, 15, 18, 19, 21]
    assert row["calls"] == row["hours"] == len(hours) and row["layout"] == ("hprc-vt" if data == "vt" else "hprc")
    assert row["texels"] == HEIGHT * WIDTH and row["decode_s_sum"] > 0
    own = results["scores"]["round 1" if data == "hdr" else "round 2"]
    assert results["score"] == own["total"] and 0.0 <= own["total"] <= own["maximum"]
    assert f"{own['total']:.2f} / {own['maximum']:g}" in text
    assert results["values"]["compression"] == row["pack_bytes"] / (HEIGHT * WIDTH * 3 * 4 * 24)
    assert own["parts"]["compression"]["value"] == results["values"]["compression"]
    if data == "vt":  # 48 x 40 texels hold no whole 128 x 128 tile: the release scores none of them
        assert results["total"] == {} and "no tile qualified" in text and row["frames_scored"] == 0
        return
    assert np.isfinite(results["total"]["psnr"]) and 0 < results["total"]["ssim"] <= 1
    assert set(own["parts"]) >= {"compression", "time_s", "psnr", "ssim"}
    if LPIPS_WEIGHTS.is_file():
        assert "lpips" in own["parts"]
