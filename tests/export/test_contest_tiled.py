"""Contest export of a tiled run: one pack per tile, decoded by the runtime's TiledFieldModel as the torch
TiledModel decodes; random access, skipped tiles, a folder that imports no torch, the self-check, the
formats and flags that refuse a tiled checkpoint, and the viewer page of a tiled atlas."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from airender.cli import main
from airender.data.virtual_texture import VTLightmap, write_virtual_texture
from airender.errors import InputError
from airender.export.web.tiled import atlas_program
from airender.images import srgb_encode
from airender.models import load_model
from airender.models.tiled import INDEX_BYTES_PER_TILE
from tests.conftest import LPIPS_WEIGHTS, REPO
from tests.export.conftest import psnr, run_without_torch
from tests.export.test_contest import assert_random_access, interface
from tests.export.test_pack_runtime import export_main
from tests.export.test_web import browser  # noqa: F401 (the WebGL2 browser fixture)
from tests.tiles.test_tiles import HOURS, smooth_frames

TILE = 16
SIZES = {3: (32, 40), 5: (16, 16)}  # lightmap id: (height, width)
EMPTY = (16, 16)  # (y, x) of the tile of lightmap 3 without a valid texel
TINY = ["--preset", "hashgrid", "--grid_levels", "2", "--grid_log2_size", "6", "--grid_base_res", "4",
        "--hidden", "8", "--film_hidden", "8", "--max_steps", "40", "--batch_size", "256", "--val_downsample", "1",
        "--progress", "False"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Virtual-texture layout: lightmap 3 (32 x 40, tile EMPTY invalid: a 2 x 3 grid of 16-texel tiles, the
    last column 8 wide) and lightmap 5 (16 x 16, every texel valid)."""
    root = tmp_path_factory.mktemp("vt_tiled") / "atlas"
    mask = np.ones(SIZES[3], bool)
    mask[EMPTY[0]:EMPTY[0] + TILE, EMPTY[1]:EMPTY[1] + TILE] = False
    write_virtual_texture(root, [VTLightmap(3, HOURS, {"original": smooth_frames(*SIZES[3], 0)}, mask, parts=2),
                                 VTLightmap(5, HOURS, {"original": smooth_frames(*SIZES[5], 1)}, None, parts=1)])
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """Both lightmaps as one tiled run, tiles trained on windows padded by 2 texels."""
    out = tmp_path_factory.mktemp("tiled_runs") / "tiled"
    assert main(["train", "--data_dir", str(data), "--out_dir", str(out), "--tile_size", str(TILE),
                 "--tile_overlap", "2", "--lightmap_id", "all", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def exported(run, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiled_contest") / "contest"
    assert export_main("--ckpt", str(run / "last.ckpt"), "--format", "contest", "--data_dir", str(data),
                       "--out", str(out)) == 0
    return out


def whole_atlas(decoder, lightmap: int, hour: float) -> np.ndarray:
    height, width = SIZES[lightmap]
    yy, xx = np.divmod(np.arange(height * width), width)
    coords = np.stack([yy, xx, np.full(yy.shape, hour)], axis=1).astype(np.float32)
    return decoder.reconstruct(None, lightmap, coords).reshape(height, width, 3)


def test_index_lists_tile_packs(exported, run):
    index = json.loads((exported / "lightmaps.json").read_text())
    assert index["layout"] == "hprc-vt" and index["not_exported"] == []
    assert [e["id"] for e in index["lightmaps"]] == [3, 5]
    first, second = index["lightmaps"]
    assert "pack" not in first and first["tile_size"] == TILE and (first["height"], first["width"]) == SIZES[3]
    assert [(t["y"], t["x"]) for t in first["tiles"]] == [(0, 0), (0, 16), (0, 32), (16, 0), (16, 32)]
    edge = first["tiles"][2]
    assert (edge["height"], edge["width"]) == (16, 8) and edge["window"] == [0, 30, 18, 10]
    for entry in (first, second):
        for tile in entry["tiles"]:
            assert (exported / tile["pack"]).stat().st_size == tile["bytes"]
            assert tile["pack"].startswith(f"packs/lightmap_{entry['id']}/tile_")
        assert entry["bytes"] == sum(t["bytes"] for t in entry["tiles"]) + INDEX_BYTES_PER_TILE * len(entry["tiles"])
        assert entry["checkpoint"] == str(run / "last.ckpt") and f"lightmap {entry['id']}" in entry["trained_on"]
    assert (exported / "runtime" / "tiled.py").is_file()


@pytest.mark.parametrize("lightmap", [3, 5])
def test_reconstruct_equals_the_tiled_model(lightmap, exported, run):
    decoder = interface(exported)
    atlas = load_model(run / "last.ckpt", lightmap_id=str(lightmap)).field  # display values = radiance (HDR)
    hours = [2.0, 9.5, 18.0]
    got = {h: whole_atlas(decoder, lightmap, h) for h in hours}
    assert all(frame.shape == (*SIZES[lightmap], 3) for frame in got.values())
    for h in hours:
        expected = atlas.decode(h).numpy()
        assert np.abs(got[h] - expected).max() <= 1e-3 * max(1.0, float(np.abs(expected).max())), h
        numpy_frame = decoder.model(None, lightmap).decode(h)  # the runtime's own whole-frame decode
        assert np.abs(numpy_frame - expected).max() <= 1e-3 * max(1.0, float(np.abs(expected).max())), h
    assert_random_access(decoder, None, lightmap, got, singles=10)
    if lightmap == 3:  # the skipped tile decodes to 0, in whole-atlas and single-texel calls
        for h in hours:
            assert not got[h][EMPTY[0]:EMPTY[0] + TILE, EMPTY[1]:EMPTY[1] + TILE].any()
        assert not decoder.reconstruct(None, 3, [[EMPTY[0] + 3, EMPTY[1] + 5, 9.5]]).any()
        for y, x in ((0, 0), (0, 16), (0, 32), (16, 0), (16, 32)):  # the fitted tiles decode light
            assert got[9.5][y:y + TILE, x:x + TILE].any(), (y, x)


def test_folder_imports_no_torch(run, data, tmp_path):
    out = tmp_path / "contest"
    assert export_main("--ckpt", str(run / "last.ckpt"), "--format", "contest", "--data_dir", str(data),
                       "--out", str(out), "--quant", "fp16") == 0
    printed = run_without_torch(out, "rgb = reconstruct(None, 3, [[1, 2, 6.0], [20, 35, 18.5], [17, 17, 3.0]])\n"
                                     "print(rgb.shape, rgb.dtype, bool(rgb[2].any()), loaded)\n", tmp_path)
    assert printed == "(3, 3) float32 False []"


def test_selfcheck_prints_scores(exported, data, tmp_path):
    argv = [sys.executable, str(exported / "selfcheck.py"), "--data_dir", str(data), "--json", str(tmp_path / "r.json")]
    if LPIPS_WEIGHTS.is_file():
        argv += ["--lpips_weights", str(LPIPS_WEIGHTS)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "weighted score (round 2):" in result.stdout and "random access:" in result.stdout and ": ok" in result.stdout
    results = json.loads((tmp_path / "r.json").read_text())
    index = json.loads((exported / "lightmaps.json").read_text())
    assert [r["lightmap"] for r in results["lightmaps"]] == ["3", "5"]
    assert [r["pack_bytes"] for r in results["lightmaps"]] == [e["bytes"] for e in index["lightmaps"]]
    assert all(r["calls"] == len(HOURS) for r in results["lightmaps"]) and results["random_access_ok"]
    own = results["scores"]["round 2"]  # the virtual-texture layout's contest
    assert results["score"] == own["total"] and 0.0 <= own["total"] <= 100.0
    assert f"weighted score (round 2): {own['total']:.2f} / 100" in result.stdout


def test_single_field_formats_refuse_a_tiled_checkpoint(run, tmp_path):
    ckpt = run / "last.ckpt"
    with pytest.raises(InputError, match="--format contest") as info:
        export_main("--ckpt", str(ckpt), "--format", "pack", "--out", str(tmp_path / "m.airpack"))
    assert str(ckpt) in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "m.airpack").exists()


def test_lightmap_ids_refused_with_a_tiled_checkpoint(run, data, tmp_path):
    with pytest.raises(InputError, match="tiled checkpoint") as info:
        export_main("--ckpt", str(run / "last.ckpt"), "--format", "contest", "--data_dir", str(data),
                    "--out", str(tmp_path / "out"), "--lightmap_ids", "3")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_a_lightmap_comes_from_one_checkpoint(run, data, tmp_path):
    """A single-field run of lightmap 5 exports as before (one pack); beside the tiled run that covers
    lightmap 5 too it is refused."""
    single = tmp_path / "single"
    assert main(["train", "--data_dir", str(data), "--out_dir", str(single), "--lightmap_id", "5", *TINY]) == 0
    out = tmp_path / "one"
    assert export_main("--ckpt", str(single / "last.ckpt"), "--format", "contest", "--data_dir", str(data),
                       "--out", str(out)) == 0
    (entry,) = json.loads((out / "lightmaps.json").read_text())["lightmaps"]
    assert entry["pack"] == "packs/lightmap_5.airpack" and "tiles" not in entry
    assert entry["bytes"] == (out / entry["pack"]).stat().st_size
    with pytest.raises(InputError, match="already comes from"):
        export_main("--ckpt", str(run / "last.ckpt"), "--ckpt", str(single / "last.ckpt"), "--format", "contest",
                    "--data_dir", str(data), "--out", str(tmp_path / "both"))
    assert not (tmp_path / "both").exists()


def test_viewer_draws_a_tiled_atlas(run, browser, tmp_path):  # noqa: F811
    """--format html of a tiled checkpoint: one shader holds every tile's field (tiles of two window sizes, an
    empty tile, a narrower last column); the page draws what the tiled model decodes (>= 40 dB on 8-bit sRGB)."""
    ckpt = run / "last.ckpt"
    assert export_main("--ckpt", str(ckpt), "--format", "html", "--out", str(tmp_path / "viewer")) == 0
    assert export_main("--ckpt", str(ckpt), "--format", "glsl", "--out", str(tmp_path / "glsl")) == 0
    assert "u_tile_map" in json.loads((tmp_path / "glsl" / "textures.json").read_text())["textures"]
    atlas = load_model(ckpt).field
    meta = atlas_program(atlas).meta
    height, width = atlas.desc.height, atlas.desc.width
    decoder = atlas.frame_decoder()
    page = browser.new_page()
    try:
        page.goto((tmp_path / "viewer" / "index.html").as_uri())
        page.evaluate("() => window.airenderViewer.ready")
        for hour in (7.0, 12.5):
            page.evaluate(f"() => window.airenderViewer.setHour({hour})")
            shown = page.evaluate("() => window.airenderViewer.readPixels().then(r => Array.from(r.data))")
            pixels = np.array(shown, np.uint8).reshape(height, width, 4)[..., :3]
            expected = np.round(srgb_encode(meta["exposure"] * decoder.decode(hour).numpy()) * 255).astype(np.uint8)
            assert psnr(pixels / 255.0, expected / 255.0) >= 40.0, hour
            assert (pixels[EMPTY[0]:EMPTY[0] + TILE, EMPTY[1]:EMPTY[1] + TILE] == 0).all()  # no tile: 0
    finally:
        page.close()
