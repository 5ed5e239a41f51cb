"""Image-folder and contest readers, and every bad input: one line naming the file, exit 2, nothing written."""
import json

import numpy as np
import png
import torch
from PIL import Image

from airender.cli import main
from airender.data import load_sequence
from airender.data.readers import read_image
from airender.images import save_exr
from tests.conftest import make_contest_dataset, make_png_folder, write_png


def test_png_modes(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "rgb.png", rgb)
    Image.fromarray(np.dstack([rgb, np.full((5, 7), 9, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    for name in ("rgb.png", "rgba.png"):
        array, is_hdr = read_image(tmp_path / name)
        assert not is_hdr and array.shape == (5, 7, 3) and array.dtype == np.float32
        assert np.array_equal(np.round(array * 255).astype(np.uint8), rgb)
    grey, _ = read_image(tmp_path / "grey.png")
    assert np.array_equal(np.round(grey * 255).astype(np.uint8), np.repeat(rgb[..., :1], 3, axis=2))
    palette, _ = read_image(tmp_path / "palette.png")
    assert palette.shape == (5, 7, 3)


def test_16bit_png_keeps_precision(tmp_path):
    rgb16 = np.random.default_rng(2).integers(0, 65536, (4, 6, 3), dtype=np.uint16)
    png.from_array(rgb16.reshape(4, 18), "RGB;16").save(str(tmp_path / "rgb16.png"))
    grey16 = rgb16[..., 0]
    png.from_array(grey16, "L;16").save(str(tmp_path / "grey16.png"))
    array, _ = read_image(tmp_path / "rgb16.png")
    assert np.array_equal(np.round(array * 65535).astype(np.uint16), rgb16)  # not truncated to 8 bits
    grey, _ = read_image(tmp_path / "grey16.png")
    assert np.array_equal(np.round(grey[..., 1] * 65535).astype(np.uint16), grey16)


def test_jpeg_and_exr(tmp_path):
    rgb = np.full((8, 8, 3), 120, np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.jpg", quality=95)
    jpg, is_hdr = read_image(tmp_path / "a.jpg")
    assert not is_hdr and abs(float(jpg.mean()) - 120 / 255) < 0.01
    hdr = (np.random.default_rng(3).random((4, 5, 3)) * 30).astype(np.float32)
    folder = tmp_path / "exr"
    folder.mkdir()
    save_exr(folder / "hour_07.exr", hdr)
    save_exr(folder / "hour_19.exr", hdr * 2)
    seq = load_sequence(folder)
    assert seq.is_hdr and seq.time_list() == [7.0, 19.0]
    assert torch.equal(seq.frames[0], torch.from_numpy(hdr)) and torch.equal(seq.frames[1], torch.from_numpy(hdr * 2))


def test_mask_png_in_folder(tmp_path):
    make_png_folder(tmp_path, [0, 12])
    mask = np.full((6, 8), 255, np.uint8)
    mask[:, :2] = 0
    write_png(tmp_path / "mask.png", mask)
    seq = load_sequence(tmp_path)
    assert seq.num_frames == 2 and seq.mask is not None
    assert not bool(seq.mask[:, :2].any()) and bool(seq.mask[:, 2:].all())
    assert set(seq.valid_pixel_index().tolist()) == {y * 8 + x for y in range(6) for x in range(2, 8)}


def test_contest_layout(tmp_path):
    keys = ["0", "100", "1200", "590", "1810", "2300"]
    arrays = make_contest_dataset(tmp_path, keys, [("lvlA", 0, 5, 4), ("lvlB", 3, 6, 2)])
    seq = load_sequence(tmp_path)  # first lightmap by default
    assert seq.is_hdr and seq.time_list() == [0.0, 1.0, 5.9, 12.0, 18.1, 23.0]
    assert torch.equal(seq.frames[seq.index_of_time(18.1)], torch.from_numpy(arrays[("lvlA", 0)]["1810"]))
    assert seq.mask is not None and not bool(seq.mask[:, 0].any()) and bool(seq.mask[:, 1:].all())
    other = load_sequence(tmp_path, "lvlB:3")
    assert (other.height, other.width) == (2, 6)
    assert torch.equal(other.frames[0], torch.from_numpy(arrays[("lvlB", 3)]["0"]))
    assert load_sequence(tmp_path, "3").width == 6


def test_contest_files_beside_config(tmp_path):
    make_contest_dataset(tmp_path, ["0", "1200"], [("l", 0, 3, 3)], data_subdir=False)
    assert load_sequence(tmp_path).num_frames == 2


def _expect_bad_input(capsys, tmp_path, args, needle):
    out_dir = tmp_path / "never_written"
    code = main(["train", *args, "--out_dir", str(out_dir), "--epochs", "1", "--samples_per_epoch", "64",
                 "--batch_size", "32", "--progress", "False"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert needle in err, err
    assert not out_dir.exists()
    return err


def test_bad_input_missing_and_empty_folder(capsys, tmp_path):
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "nope")], "nope: no such folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(empty)], "no PNG, JPEG or EXR frames")


def test_bad_input_corrupt_image(capsys, tmp_path):
    make_png_folder(tmp_path / "d", [0, 12])
    (tmp_path / "d" / "tod_5.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "d")], "tod_5.png: cannot read image")


def test_bad_input_size_mismatch(capsys, tmp_path):
    make_png_folder(tmp_path / "d", [0, 12])
    make_png_folder(tmp_path / "d", [13], height=7)
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "d")], "tod_13.png: frame is 8x7")


def test_bad_input_duplicate_hour(capsys, tmp_path):
    make_png_folder(tmp_path / "d", [0, 12])
    write_png(tmp_path / "d" / "hour_12.png", np.zeros((6, 8, 3), np.uint8))
    err = _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "d")], "same hour 12")
    assert "hour_12.png" in err and "tod_12.png" in err
    make_png_folder(tmp_path / "e", [0, 24])
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "e")], "same hour 0")


def test_bad_input_name_without_time(capsys, tmp_path):
    make_png_folder(tmp_path / "d", [0, 12])
    write_png(tmp_path / "d" / "preview.png", np.zeros((6, 8, 3), np.uint8))
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "d")], "preview.png: no time of day")


def test_bad_input_nan_hdr(capsys, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    good = np.ones((4, 4, 3), np.float32)
    bad = good.copy()
    bad[1, 2, 0] = np.nan
    save_exr(folder / "tod_12.exr", good)
    save_exr(folder / "tod_13.exr", bad)
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(folder)], "tod_13.exr: HDR data contain NaN or Inf")
    arrays_root = tmp_path / "contest"
    make_contest_dataset(arrays_root, ["1200", "1300"], [("l", 0, 4, 4)])
    raw = next((arrays_root / "Data").glob("lightmapRawData_l_TOD_1300_*"))
    values = np.fromfile(raw, np.float32)
    values[5] = np.inf
    values.tofile(raw)
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(arrays_root)], f"{raw.name}: HDR data contain NaN or Inf")


def test_bad_input_mask_size(capsys, tmp_path):
    make_png_folder(tmp_path / "d", [0, 12])
    write_png(tmp_path / "d" / "mask.png", np.full((5, 8), 255, np.uint8))
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "d")], "mask.png: mask is 8x5")
    root = tmp_path / "contest"
    make_contest_dataset(root, ["1200", "1300"], [("l", 0, 4, 4)])
    mask_file = next((root / "Data").glob("lightmapCoverage_l_TOD_1300_*"))
    np.full(15, 127, np.int8).tofile(mask_file)
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(root)], f"{mask_file.name}: has 15 bytes")
    raw = next((root / "Data").glob("lightmapRawData_l_TOD_1200_*"))
    raw.write_bytes(b"\0" * 7)
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(root)], f"{raw.name}: has 7 bytes")


def test_bad_input_baseline_hour_missing(capsys, tmp_path):
    make_png_folder(tmp_path / "d", [0, 6, 18])
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "d"), "--baseline_time", "12"],
                      "no frame at hour 12")


def test_bad_input_contest_config(capsys, tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text("{not json")
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "c")], "config.json: not a contest config.json")
    make_contest_dataset(tmp_path / "k", ["1200"], [("l", 0, 4, 4)])
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "k"), "--lightmap_id", "l:9"],
                      "no lightmap 'l:9'")
    config = json.loads((tmp_path / "k" / "config.json").read_text())
    config["lightmap_list"][0]["lightmaps"]["1300"] = "missing.bin_0"
    (tmp_path / "k" / "config.json").write_text(json.dumps(config))
    _expect_bad_input(capsys, tmp_path, ["--data_dir", str(tmp_path / "k")], "missing.bin_0: file named in config.json")


def test_eval_rejects_extra_frames_of_another_size(tmp_path, capsys):
    from airender.config import ExperimentConfig
    from airender.engine.trainer import Trainer

    make_png_folder(tmp_path / "d", [0, 12], height=6, width=8)
    make_png_folder(tmp_path / "x1", [3.5], height=6, width=8)
    make_png_folder(tmp_path / "x2", [4.5], height=7, width=8)
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    config.field.hidden, config.field.layers = 8, 1
    config.train.epochs, config.train.samples_per_epoch, config.train.batch_size, config.train.progress = 1, 64, 64, False
    Trainer(config, load_sequence(tmp_path / "d")).fit()
    code = main(["eval", "--ckpt", str(tmp_path / "run" / "best.ckpt"), "--data_dir", str(tmp_path / "d"),
                 "--extra", str(tmp_path / "x1"), "--extra", str(tmp_path / "x2"), "--out_dir", str(tmp_path / "ev")])
    err = capsys.readouterr().err
    assert code == 2 and "x2: frames are 8x7 LDR" in err and not (tmp_path / "ev").exists()
