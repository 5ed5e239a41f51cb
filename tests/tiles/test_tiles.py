"""Tiled fields: plan, CLI fit, tiled checkpoint render/query/eval, workers and Ray, kill and resume, memory."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from airender.cli import main
from airender.data.frame_store import VTSource, build_frame_cache
from airender.data.readers import read_image
from airender.data.virtual_texture import VTLightmap, write_virtual_texture
from airender.models.checkpoint import load_checkpoint
from airender.render import FrameDecoder
from airender.models import Decoder, as_decoder, load_model
from airender.models.tiled import TiledModel, read_any_checkpoint
from airender.tiles.plan import plan_atlas
from airender.tiles.seams import border_band
from tests.conftest import REPO, write_png

HOURS = [24, 6, 12, 18]
TILE = 16
EMPTY = [(0, 16), (32, 32)]  # (y, x) of the tiles of lightmap 3 without a valid texel
TINY = ["--preset", "hashgrid", "--grid_levels", "2", "--grid_log2_size", "6", "--grid_base_res", "4",
        "--hidden", "8", "--film_hidden", "8", "--max_steps", "6", "--batch_size", "256", "--val_downsample", "1",
        "--progress", "False"]


def smooth_frames(height: int, width: int, seed: int) -> np.ndarray:
    """[T, H, W, 3] float32 radiance that varies smoothly in space and with the hour."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    frames = []
    for hour in HOURS:
        phase = 2 * np.pi * (hour % 24) / 24.0
        base = 1.0 + 0.5 * np.sin(x / 7.0 + phase) * np.cos(y / 9.0 - phase)
        frames.append(np.stack([base * (1 + 0.2 * c) for c in range(3)], axis=-1)
                      + 0.01 * rng.random((height, width, 3)))
    return np.asarray(frames, dtype=np.float32)


def make_dataset(root: Path) -> Path:
    """Lightmap 3: 48 x 40 texels in 2 parts, tiles EMPTY invalid and a few invalid texels elsewhere;
    lightmap 5: 16 x 32 texels, every texel valid."""
    mask = np.ones((48, 40), bool)
    for y, x in EMPTY:
        mask[y:y + TILE, x:x + TILE] = False
    mask[40, 3] = mask[5, 37] = False
    write_virtual_texture(root, [
        VTLightmap(3, HOURS, {"original": smooth_frames(48, 40, 0)}, mask, parts=2),
        VTLightmap(5, HOURS, {"original": smooth_frames(16, 32, 1)}, None, parts=1)])
    return root


def train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--data_dir", str(data), "--out_dir", str(out), "--tile_size", str(TILE), *TINY, *extra])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("vt") / "atlas")


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    """Both atlases fitted through the CLI with --workers 1 (in this process)."""
    out = tmp_path_factory.mktemp("runs") / "tiled"
    assert train(data, out, "--lightmap_id", "all") == 0
    return out


def tile_decode(run: Path, key: str, hour: float) -> torch.Tensor:
    loaded = load_checkpoint(run / "tiles" / key / "last.ckpt")
    return FrameDecoder(loaded.field).decode(hour)


def assembled(run: Path, atlas_id: str, height: int, width: int, hour: float) -> torch.Tensor:
    """The atlas put together by hand from each tile's own checkpoint and decoder (core of the window)."""
    ckpt = read_any_checkpoint(run / "last.ckpt")
    out = torch.zeros(height, width, 3)
    for tile in ckpt["tiles"]:
        if tile["atlas_id"] != atlas_id:
            continue
        y, x, h, w = tile["y"], tile["x"], tile["height"], tile["width"]
        top, left = tile["window"][:2]
        frame = tile_decode(run, f"{atlas_id}_{y}_{x}", hour)
        out[y:y + h, x:x + w] = frame[y - top:y - top + h, x - left:x - left + w]
    return out


# --- plan ----------------------------------------------------------------------------------------------------
def test_plan_skips_empty_tiles_and_seeds_by_position(data):
    plan = plan_atlas(VTSource(data, "3"), TILE, overlap=2)
    keys = [(t.y, t.x) for t in plan.tiles]
    assert plan.grid == (3, 3) and len(keys) == 7 and not set(EMPTY) & set(keys)
    assert plan.valid_texels == 48 * 40 - 16 * 16 - 16 * 8 - 2  # two empty tiles (one at the edge), two texels
    edge = next(t for t in plan.tiles if (t.y, t.x) == (16, 32))
    assert (edge.height, edge.width) == (16, 8) and edge.window == (14, 30, 20, 10)  # padded, clipped at the edge
    again = plan_atlas(VTSource(data, "3"), TILE, overlap=2)
    assert [t.seed(7) for t in plan.tiles] == [t.seed(7) for t in again.tiles]
    assert len({t.seed(7) for t in plan.tiles}) == 7 and plan.tiles[0].seed(7) != plan.tiles[0].seed(8)


def test_border_band():
    band = border_band(8, 12, 4, 1)
    assert band[3, 0] and band[4, 0] and not band[2, 1] and not band[0, 1]  # rows 3|4 meet; the atlas edge is none
    assert band[1, 3] and band[1, 8] and not band[1, 11] and not band[1, 0]


# --- the tiled run ---------------------------------------------------------------------------------------------
def test_cli_fit_writes_a_tiled_run(run, capsys):
    tiles = sorted(p.name for p in (run / "tiles").iterdir())
    assert len(tiles) == 9 and "3_0_16" not in tiles and "3_32_32" not in tiles and "5_0_0" in tiles
    for key in tiles:
        result = json.loads((run / "tiles" / key / "result.json").read_text())
        assert result["steps"] == 6 and result["threads"] == 1
    lines = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [line["tile"] for line in lines if line["event"] == "tile"] == \
        [t["atlas_id"] + f"_{t['y']}_{t['x']}" for t in read_any_checkpoint(run / "last.ckpt")["tiles"]]
    assert all("psnr" in line["validation"] for line in lines)
    ckpt = read_any_checkpoint(run / "best.ckpt")
    assert ckpt["format"] == "airender-tiled-checkpoint" and ckpt["tile_size"] == TILE
    assert [(a["atlas_id"], a["height"], a["width"]) for a in ckpt["atlases"]] == [("3", 48, 40), ("5", 16, 32)]
    assert ckpt["config"]["data"]["tile_size"] == TILE and ckpt["config"]["data"]["lightmap_id"] == "all"
    sizes = json.loads((run / "sizes.json").read_text())
    assert sizes["atlases"]["3"]["tiles"] == 7 and sizes["dataset"]["tiles"] == 9
    assert sizes["dataset"]["raw_bytes"] == (48 * 40 + 16 * 32) * 3 * 4 * 24
    assert sizes["dataset"]["model_bytes"] == sizes["atlases"]["3"]["model_bytes"] + sizes["atlases"]["5"]["model_bytes"]


def test_render_equals_assembled_tile_decodes(run, tmp_path, capsys):
    assert main(["render", "--ckpt", str(run / "last.ckpt"), "--time", "9.5", "--out", str(tmp_path / "a.exr"),
                 "--device", "cpu"]) == 0
    image, _ = read_image(tmp_path / "a.exr")
    expected = assembled(run, "3", 48, 40, 9.5)
    assert image.shape == (48, 40, 3)
    np.testing.assert_allclose(image, expected.numpy(), rtol=1e-6, atol=1e-6)
    for y, x in EMPTY:
        assert not image[y:y + TILE, x:x + TILE].any()  # texels of skipped tiles decode to 0
    assert main(["render", "--ckpt", str(run / "last.ckpt"), "--time", "6", "--lightmap_id", "5",
                 "--out", str(tmp_path / "b.exr"), "--device", "cpu"]) == 0
    np.testing.assert_allclose(read_image(tmp_path / "b.exr")[0], assembled(run, "5", 16, 32, 6.0).numpy(),
                               rtol=1e-6, atol=1e-6)
    assert main(["render", "--ckpt", str(run / "last.ckpt"), "--time", "9.5", "--width", "20", "--height", "24",
                 "--out", str(tmp_path / "half.exr"), "--device", "cpu"]) == 0  # another size: tile by tile too
    half, _ = read_image(tmp_path / "half.exr")
    assert half.shape == (24, 20, 3) and np.isfinite(half).all()
    assert not half[0:8, 8:16].any()  # the empty tile (0, 16) at half size
    corner = FrameDecoder(load_checkpoint(run / "tiles" / "3_0_0" / "last.ckpt").field, 8, 8).decode(9.5)
    np.testing.assert_allclose(half[0:8, 0:8], corner.numpy(), rtol=1e-6, atol=1e-6)  # same pixel centres
    assert main(["render-all", "--ckpt", str(run / "last.ckpt"), "--step", "12", "--out_dir", str(tmp_path / "all"),
                 "--device", "cpu"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["day.gif", "tod_00.00.exr", "tod_12.00.exr"]
    assert main(["render", "--ckpt", str(run / "last.ckpt"), "--time", "6", "--lightmap_id", "9",
                 "--out", str(tmp_path / "c.exr")]) == 2
    assert "holds no such atlas" in capsys.readouterr().err and not (tmp_path / "c.exr").exists()


def test_query_equals_frame_at_random_texels(run):
    model = TiledModel(read_any_checkpoint(run / "last.ckpt"))
    gen = torch.Generator().manual_seed(1)
    for atlas_id, (height, width) in (("3", (48, 40)), ("5", (16, 32))):
        for hour in (0.0, 7.25, 18.0):
            frame = model.decode(atlas_id, hour)
            y, x = torch.randint(height, (300,), generator=gen), torch.randint(width, (300,), generator=gen)
            values = model.query(atlas_id, y, x, torch.full((300,), hour))
            torch.testing.assert_close(values, frame[y, x], rtol=1e-5, atol=1e-5)
    t = torch.rand(50, generator=gen) * 24  # every query its own hour
    y, x = torch.randint(48, (50,), generator=gen), torch.randint(40, (50,), generator=gen)
    values = model.query("3", y, x, t)
    for k in range(0, 50, 10):
        torch.testing.assert_close(values[k], model.decode("3", float(t[k]))[y[k], x[k]], rtol=1e-5, atol=1e-5)


def test_eval_on_a_tiled_run(run, data, capsys):
    assert main(["eval", "--ckpt", str(run / "last.ckpt"), "--data_dir", str(data), "--lightmap_id", "3",
                 "--protocol", "hprc-vt-masked", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "seams: PSNR" in out and "model:" in out
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert len(metrics["rows"]) == 4 and np.isfinite(metrics["means"]["hours"]["psnr"])
    model = TiledModel(read_any_checkpoint(run / "last.ckpt"))
    assert metrics["size"]["model_bytes"] == model.atlas("3").stored_bytes()
    seams = json.loads((run / "eval" / "seams.json").read_text())
    assert seams["border_texels"] > 0 and seams["interior_texels"] > 0


def assert_same_fields(reference: Path, other: Path) -> None:
    """Every tile's stored weights are equal, and so are the decoded atlases."""
    ref_ckpt, ckpt = read_any_checkpoint(reference / "last.ckpt"), read_any_checkpoint(other / "last.ckpt")
    assert len(ckpt["tiles"]) == len(ref_ckpt["tiles"])
    for a, b in zip(ref_ckpt["tiles"], ckpt["tiles"]):
        assert (a["atlas_id"], a["y"], a["x"]) == (b["atlas_id"], b["y"], b["x"])
        for name in a["model"]:
            assert torch.equal(a["model"][name], b["model"][name]), (other, a["y"], a["x"], name)
    model, ref_model = TiledModel(ckpt), TiledModel(ref_ckpt)
    for atlas_id in ("3", "5"):
        assert torch.equal(model.decode(atlas_id, 13.0), ref_model.decode(atlas_id, 13.0))


def test_two_workers_fit_the_same_fields(run, data, tmp_path):
    assert train(data, tmp_path / "w2", "--lightmap_id", "all", "--workers", "2") == 0
    assert json.loads((tmp_path / "w2" / "tiles" / "3_0_0" / "result.json").read_text())["threads"] == 1
    assert_same_fields(run, tmp_path / "w2")


def test_ray_fits_the_same_fields(run, data, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'airender[ray]')")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # a sandbox without the sockets or shared memory Ray needs
        pytest.skip(f"Ray cannot start here: {type(exc).__name__}: {exc}")
    try:
        assert train(data, tmp_path / "ray", "--lightmap_id", "all", "--ray", "auto") == 0
    finally:
        ray.shutdown()
    assert_same_fields(run, tmp_path / "ray")


def test_kill_then_rerun_fits_only_the_remaining_tiles(data, tmp_path, capsys):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "airender.cli", "train", "--data_dir", str(data), "--out_dir", str(out),
               "--tile_size", str(TILE), "--lightmap_id", "all", *TINY, "--max_steps", "30"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not list((out / "tiles").glob("*/result.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no tile finished in time"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "last.ckpt").exists()
    finished = sorted(p.parent for p in (out / "tiles").glob("*/result.json"))
    assert 1 <= len(finished) < 9
    stamps = {p: (p / "result.json").stat().st_mtime_ns for p in finished}
    stamps.update({p / "last.ckpt": (p / "last.ckpt").stat().st_mtime_ns for p in finished})
    assert main(command[3:]) == 0  # the same command again, in this process
    assert f"{len(finished)} of 9 tiles already fitted; skipping" in capsys.readouterr().out
    for path, stamp in stamps.items():
        target = path / "result.json" if path.is_dir() else path
        assert target.stat().st_mtime_ns == stamp, f"{target} was written again"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    skip = [line for line in log if line["event"] == "skip"]
    assert len(skip) == 1 and sorted(skip[0]["keys"]) == sorted(p.name for p in finished)
    refit = [line["tile"] for line in log if line["event"] == "tile" and log.index(line) > log.index(skip[0])]
    assert sorted(refit) == sorted(set(p.name for p in (out / "tiles").iterdir()) - {p.name for p in finished})
    assert len(read_any_checkpoint(out / "last.ckpt")["tiles"]) == 9


def test_continuing_needs_the_same_options_and_bad_input_writes_nothing(run, data, tmp_path, capsys):
    assert train(data, run, "--lightmap_id", "all") == 0  # the same command again: every tile done
    assert "9 of 9 tiles already fitted; skipping" in capsys.readouterr().out
    assert train(data, run, "--lightmap_id", "all", "--hidden", "16") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--hidden (8 -> 16)" in err and len(err.strip().splitlines()) == 1
    cases = [(["--workers", "2"], "--workers: fits tiles in parallel; it needs --tile_size N", False),
             (["--lightmap_id", "all"], "--lightmap_id all: fits every atlas tile by tile", False),
             (["--tile_overlap", "16"], "--tile_overlap: 16 texels must be less than --tile_size 16", True),
             (["--preset", "baseline", "--baseline_time", "7"], "no frame at hour 7", True),
             (["--workers", "0"], "--workers: must be 1 or more", True)]
    for flags, needle, tiled in cases:
        out = tmp_path / "never"
        argv = ["train", "--data_dir", str(data), "--out_dir", str(out), *TINY, *flags]
        if tiled:
            argv += ["--tile_size", str(TILE)]
        assert main(argv) == 2, flags
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and needle in err, err
        assert not out.exists()


def test_resume_flag_continues_a_tiled_run(data, tmp_path, capsys):
    out = tmp_path / "resumed"
    assert train(data, out, "--lightmap_id", "5") == 0
    (out / "tiles" / "5_0_16" / "result.json").unlink()
    (out / "last.ckpt").unlink()
    assert main(["train", "--resume", str(out), "--workers", "1"]) == 0
    assert "1 of 2 tiles already fitted; skipping" in capsys.readouterr().out
    assert (out / "last.ckpt").is_file()


def test_image_folder_goes_through_the_frame_cache(tmp_path):
    rng = np.random.default_rng(0)
    frames = {h: rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for h in (6, 12, 18)}
    for hour, array in frames.items():
        write_png(tmp_path / "png" / f"tod_{hour}.png", array)
    mask = np.full((20, 24, 3), 255, np.uint8)
    mask[:, 16:] = 0  # the right column of tiles holds no valid texel
    write_png(tmp_path / "png" / "mask.png", mask)
    cache = build_frame_cache(tmp_path / "png", "", tmp_path / "cache")
    window = cache.read_window((4, 8, 10, 12))
    assert window.frames.shape == (3, 10, 12, 3) and window.times.tolist() == [6.0, 12.0, 18.0]
    np.testing.assert_array_equal(window.frames[1].numpy(), frames[12][4:14, 8:20] / np.float32(255.0))
    assert window.mask is not None and not bool(window.mask[:, 8:].any())
    assert build_frame_cache(tmp_path / "png", "", tmp_path / "cache").folder == cache.folder  # reused
    out = tmp_path / "run"
    assert main(["train", "--data_dir", str(tmp_path / "png"), "--out_dir", str(out), "--tile_size", "8", *TINY,
                 "--baseline_time", "12"]) == 0
    assert (out / "cache" / "frames.f32").stat().st_size == 3 * 20 * 24 * 3 * 4
    loaded = load_model(out / "last.ckpt")
    assert loaded.kind == "tiled" and isinstance(as_decoder(loaded.field), Decoder)
    assert loaded.desc.height == 20 and loaded.desc.width == 24 and not loaded.desc.is_hdr
    assert len(loaded.field.tiles) == 6  # 3 x 3 tiles, the right column empty
    frame = loaded.field.decode(12.0)
    assert frame.shape == (20, 24, 3) and not frame[:, 16:].any()


def test_tile_job_memory_does_not_grow_with_the_atlas(tmp_path):
    """One process fits a 64 x 64 tile of a small atlas, then one of a sparse 8192^2 atlas (3 GiB of float32
    frames on paper for its 4 hours): the second adds almost nothing to the peak resident memory, and the
    process's own memory stays small."""
    script = textwrap.dedent(f"""
        import json, numpy as np
        from airender.config import ExperimentConfig
        from airender.presets import preset_config, apply_overrides
        from airender.data.frame_store import VTSource
        from airender.tiles.jobs import TileJob, run_tile, peak_rss_mb, peak_private_mb
        from airender.tiles.plan import plan_atlas
        from airender.tiles.synthetic import write_sparse_atlas
        y, x = np.mgrid[0:64, 0:64].astype(np.float32)
        frames = np.stack([np.stack([1 + np.sin(x / 9 + h) * np.cos(y / 7)] * 3, -1) for h in range(4)])
        block = {{(64, 128): (frames, np.ones((64, 64), bool))}}
        config = apply_overrides(preset_config("hashgrid"), {{"train": {{"max_steps": 4, "batch_size": 256,
                                 "progress": False}}, "field": {{"grid_levels": 4, "grid_log2_size": 8}}}})
        peaks = []
        for size, parts in ((256, 1), (8192, 4)):
            root = "{tmp_path}/atlas_%d" % size
            write_sparse_atlas(root, 1, size, parts, [3, 9, 15, 21], block)
            source = VTSource(root, "1")
            plan = plan_atlas(source, 64)
            assert [(t.y, t.x) for t in plan.tiles] == [(64, 128)], plan.tiles
            run_tile(TileJob(plan.tiles[0], source.spec(), config.to_dict(), "{tmp_path}/run_%d" % size))
            peaks.append([peak_rss_mb(), peak_private_mb()])
        print(json.dumps(peaks))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (small, small_own), (large, large_own) = json.loads(result.stdout.strip().splitlines()[-1])
    assert large - small < 64, (small, large)  # MiB; the large atlas's frames alone are 3072 MiB
    # the process's own memory (peak less the mapped libraries, which the page cache may hold as huge pages)
    assert large_own < 1500, (small, large, small_own, large_own)


def test_sparse_atlas_reads_back_its_blocks(tmp_path):
    from airender.tiles.synthetic import disk_bytes, write_sparse_atlas

    frames = smooth_frames(16, 24, 3)[:2]
    mask = np.ones((16, 24), bool)
    mask[0, 0] = False
    write_sparse_atlas(tmp_path / "big", 2, 16384, 4, HOURS[:2], {(8000, 12000): (frames, mask)})
    assert disk_bytes(tmp_path / "big") < 8 << 20  # 6 GiB of frames and 256 MiB of mask on paper
    source = VTSource(tmp_path / "big", "2")
    assert (source.info.height, source.info.width, source.info.times) == (16384, 16384, (0.0, 6.0))
    window = source.read_window((7990, 11990, 30, 40))
    np.testing.assert_array_equal(window.frames[:, 10:26, 10:34].numpy(), frames[np.argsort([24 % 24, 6])])
    valid = np.zeros((30, 40), bool)
    valid[10:26, 10:34] = mask
    np.testing.assert_array_equal(window.mask.numpy(), valid)
    plan = plan_atlas(source, 512)
    assert [(t.y, t.x) for t in plan.tiles] == [(7680, 11776)] and plan.valid_texels == 16 * 24 - 1
