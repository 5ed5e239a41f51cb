"""Pack export and the numpy runtime: equal to the torch decode, random access, precision, bad input."""
from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import airender.runtime
from airender.errors import InputError
from airender.export.cli import add_export_parser
from airender.export.pack import UnsupportedModel, model_spec, pack_bytes, write_pack
from airender.models.checkpoint import load_checkpoint
from airender.render import FrameDecoder, query_pixels
from airender.runtime.packfile import MAGIC, PackError, encode_pack, parse_pack, quantise_int8
from airender.sizes import model_bytes
from tests.conftest import REPO, run_cli
from tests.export.conftest import HEIGHT, PRESET_VARIANTS, VARIANTS, WIDTH, psnr

HOURS = [0.0, 5.9, 12.0, 13.25, 18.1, 22.5, -1.5]


def export_main(*argv: str) -> int:
    """``airender export ARGV`` through the export parser (as airender.cli runs it)."""
    parser = argparse.ArgumentParser(prog="airender")
    add_export_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["export", *argv])
    return args.func(args)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fp32_pack_decodes_like_torch(name, trained, tmp_path):
    field = load_checkpoint(trained(name)).field
    path = tmp_path / f"{name}.airpack"
    size = write_pack(field, path, "fp32")
    assert size == path.stat().st_size
    model = airender.runtime.load(path)
    assert (model.height, model.width) == (HEIGHT, WIDTH)
    native, other = FrameDecoder(field), FrameDecoder(field, 23, 61)
    for hour in HOURS:
        expected = native.decode(hour).numpy()
        got = model.decode(hour)
        assert got.shape == (HEIGHT, WIDTH, 3) and got.dtype == np.float32
        assert np.abs(got - expected).max() <= 1e-3, (name, hour)
        resized = model.decode(hour, width=61, height=23)
        assert resized.shape == (23, 61, 3)
        assert np.abs(resized - other.decode(hour).numpy()).max() <= 1e-3, (name, hour)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_query_equals_frame_decode(name, trained, tmp_path):
    field = load_checkpoint(trained(name)).field
    path = tmp_path / "model.airpack"
    write_pack(field, path)
    model = airender.runtime.load(path)
    rng = np.random.default_rng(1)
    hours = np.array([0.0, 5.9, 13.25, 18.1], np.float32)
    y, x = rng.integers(0, HEIGHT, 200), rng.integers(0, WIDTH, 200)
    t = hours[rng.integers(0, hours.size, 200)]
    got = model.query(y, x, t)
    frames = {float(h): model.decode(float(h)) for h in hours}
    expected = np.stack([frames[float(h)][yy, xx] for yy, xx, h in zip(y, x, t)])
    assert got.shape == (200, 3)
    assert np.abs(got - expected).max() <= 1e-4, name
    torch_query = query_pixels(field, torch.from_numpy(y), torch.from_numpy(x), torch.from_numpy(t)).numpy()
    assert np.abs(got - torch_query).max() <= 1e-3, name
    single = model.query([3], [5], 13.25)  # one hour for every query
    assert np.abs(single[0] - frames[13.25][3, 5]).max() <= 1e-4
    with pytest.raises(ValueError, match="outside"):
        model.query([HEIGHT], [0], 1.0)


@pytest.mark.parametrize("name", PRESET_VARIANTS)
def test_reduced_precision_packs(name, trained, tmp_path):
    field = load_checkpoint(trained(name)).field
    sizes, frames = {}, {}
    for quant in ("fp32", "fp16", "int8"):
        path = tmp_path / f"{quant}.airpack"
        sizes[quant] = write_pack(field, path, quant)
        model = airender.runtime.load(path)
        assert model.header["quant"] == quant
        frames[quant] = np.stack([model.decode(h) for h in (5.9, 13.25)])
    assert sizes["int8"] < sizes["fp16"] < sizes["fp32"]
    # the pack holds exactly the bytes sizes.model_bytes counts, plus header and scales
    assert model_bytes(field) <= sizes["fp32" if field.cfg.store_dtype == "float32" else "fp16"] \
        <= model_bytes(field) + 24_000
    if field.cfg.store_dtype == "float16":  # stored at float16 already: an fp16 pack is lossless
        assert np.array_equal(frames["fp16"], frames["fp32"])
    assert psnr(frames["fp16"], frames["fp32"]) > 55.0
    assert psnr(frames["int8"], frames["fp32"]) > 38.0


def test_int8_quantisation_scales():
    rng = np.random.default_rng(0)
    table = np.concatenate([rng.normal(0, 1e-3, (16, 2)), rng.normal(0, 1.0, (32, 2)), np.zeros((8, 2))]).astype(np.float32)
    stored = quantise_int8(table, [0, 16, 48])
    assert stored.data.dtype == np.int8 and stored.scale.shape == (3,) and stored.scale[2] == 0
    assert np.isclose(stored.scale[0], np.abs(table[:16]).max() / 127)
    weight = rng.normal(0, 1, (5, 7)).astype(np.float32) * np.arange(1, 6, dtype=np.float32)[:, None]
    per_channel = quantise_int8(weight)
    assert per_channel.scale.shape == (5,) and np.abs(per_channel.data).max() == 127
    blob = encode_pack({"model": {}}, {"table": stored, "weight": per_channel})
    path_arrays = parse_pack(blob).arrays
    for name, original, scale in (("table", table, np.repeat(stored.scale, [16, 32, 8])), ("weight", weight,
                                                                                           per_channel.scale)):
        error = np.abs(path_arrays[name] - original)
        assert np.all(error <= scale[:, None] / 2 + 1e-7), name


def test_pack_is_self_describing_and_checked(trained, tmp_path):
    field = load_checkpoint(trained("encoder")).field
    path = tmp_path / "encoder.airpack"
    write_pack(field, path, "int8")
    blob = path.read_bytes()
    assert blob[:8] == MAGIC
    (length,) = struct.unpack_from("<I", blob, 8)
    header = json.loads(blob[12:12 + length])
    assert header["format"] == "airender-pack" and header["format_version"] == 1 and header["quant"] == "int8"
    assert header["field"]["use_baseline_encoder"] and header["data"]["height"] == HEIGHT
    table = {entry["name"]: entry for entry in header["arrays"]}
    assert table["baseline"]["dtype"] == "uint8" and table["baseline"]["unorm"] == 255  # 8-bit source: exact
    assert table["mlp.hidden_layers.0.weight"]["dtype"] == "int8"
    assert table["mlp.hidden_layers.0.weight"]["scale"]["count"] == field.cfg.hidden
    assert table["mlp.hidden_layers.0.bias"]["dtype"] == "float16"
    assert table["encoder.net.0.weight"]["shape"] == [32, 3, 3, 3]
    assert table["xy_encoding.freqs"]["dtype"] == "float32"
    assert len(blob) == 12 + length + (-(12 + length)) % 4 + header["data_bytes"]
    flipped = bytearray(blob)
    flipped[-10] ^= 1
    broken_json = blob[:12] + b"{" * length + blob[12 + length:]
    for damaged, message in ((blob[:-3], "truncated or corrupt"), (bytes(flipped), "truncated or corrupt"),
                             (broken_json, "unreadable header"), (b"PK\x03\x04" + blob[4:], "not an airender pack")):
        bad = tmp_path / "bad.airpack"
        bad.write_bytes(damaged)
        with pytest.raises(PackError, match=message):
            airender.runtime.load(bad)
    grid = load_checkpoint(trained("quality")).field
    write_pack(grid, path, "int8")
    entry = {e["name"]: e for e in airender.runtime.load(path).header["arrays"]}["xy_encoding.table"]
    assert entry["dtype"] == "int8" and entry["scale"]["rows"] == grid.xy_encoding.offsets.tolist()


def test_runtime_never_imports_torch(trained, tmp_path):
    path = tmp_path / "quality.airpack"
    write_pack(load_checkpoint(trained("quality_switch")).field, path, "int8")
    code = ("import sys, airender.runtime, airender.runtime.onnx_decoder\n"
            f"m = airender.runtime.load({str(path)!r})\n"
            "frame = m.decode(18.1); m.decode(3.5, width=17, height=9); q = m.query([1, 2], [3, 4], [5.9, 12.0])\n"
            "assert frame.shape == (40, 48, 3) and q.shape == (2, 3)\n"
            "print('torch' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_unknown_field_part_refuses_export(trained, tmp_path):
    field = load_checkpoint(trained("hashgrid")).field
    field.extra_gain = torch.nn.Parameter(torch.ones(3))
    with pytest.raises(UnsupportedModel, match="extra_gain"):
        model_spec(field, "fp32")
    with pytest.raises(UnsupportedModel):
        write_pack(field, tmp_path / "x.airpack")
    assert not list(tmp_path.iterdir())


def test_export_command(trained, tmp_path, capsys):
    ckpt = trained("hashgrid")
    out = tmp_path / "sub" / "scene.airpack"
    assert export_main("--ckpt", str(ckpt), "--out", str(out), "--quant", "int8") == 0
    assert "wrote" in capsys.readouterr().out
    assert airender.runtime.load(out).header["quant"] == "int8"
    assert out.read_bytes() == pack_bytes(load_checkpoint(ckpt).field, "int8")


@pytest.mark.parametrize("argv, message", [
    (("--ckpt", "{tmp}/missing.ckpt", "--out", "{tmp}/a.airpack"), "missing.ckpt: no such checkpoint"),
    (("--ckpt", "{ckpt}", "--out", "{tmp}/a.airpack", "--format", "zip"), "--format zip: not an export format"),
    (("--ckpt", "{ckpt}", "--out", "{tmp}/a.airpack", "--quant", "int4"), "--quant int4: not a precision"),
    (("--ckpt", "{ckpt}", "--out", "{tmp}/a.onnx", "--format", "onnx", "--quant", "int8"), "onnx is float32 only"),
    (("--ckpt", "{ckpt}", "--out", "{tmp}/file.txt/a.airpack"), "not a folder"),
    (("--ckpt", "{ckpt}", "--out", "{tmp}"), "is a folder"),
    (("--ckpt", "{tmp}/file.txt", "--out", "{tmp}/a.airpack"), "file.txt: not"),
])
def test_export_bad_input(argv, message, trained, tmp_path):
    ckpt = trained("hashgrid")
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "file.txt").write_text("not a checkpoint")
    argv = [a.format(tmp=folder, ckpt=ckpt) for a in argv]
    with pytest.raises(InputError, match=message):
        export_main(*argv)
    assert sorted(p.name for p in folder.iterdir()) == ["file.txt"]


def test_export_unwritable_folder(trained, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        # a user who may write anywhere (root) is refused by the kernel's own files instead
        target = folder / "a.airpack" if not _can_write(folder) else Path("/proc/airender-export-test/a.airpack")
        with pytest.raises(InputError, match="cannot"):
            export_main("--ckpt", str(trained("hashgrid")), "--out", str(target))
        assert not list(folder.iterdir()) and not target.exists()
    finally:
        folder.chmod(0o700)


def _can_write(folder: Path) -> bool:
    try:
        (folder / ".probe").write_text("")
        (folder / ".probe").unlink()
        return True
    except OSError:
        return False


def test_command_line_registration(trained, tmp_path):
    """Through ``python -m airender.cli`` once the export command is registered there."""
    if run_cli("export", "--help").returncode != 0:
        pytest.skip("airender.cli does not register the export command")
    out = tmp_path / "scene.airpack"
    result = run_cli("export", "--ckpt", str(trained("hashgrid")), "--out", str(out))
    assert result.returncode == 0 and out.is_file(), result.stderr
    result = run_cli("export", "--ckpt", str(tmp_path / "none.ckpt"), "--out", str(tmp_path / "b.airpack"))
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: ") and not (tmp_path / "b.airpack").exists()


def test_hash_grid_frame_path_equals_per_point():
    """The row-band path of whole frames (HashGrid.frame) is the per-point hash grid at every pixel of the band,
    for dense and hashed levels, at a frame size unlike the grid's."""
    from airender.export.pack import _Collector
    from airender.nn.hashgrid import HashGridEncoding
    from airender.runtime import ops

    torch.manual_seed(0)
    encoding = HashGridEncoding(2, 8, 2, 8, 4, 200)
    with torch.no_grad():
        encoding.table.normal_(0.0, 1.0)  # every row distinct
    collector = _Collector("fp32")
    spec = collector.grid("grid", encoding)
    grid = ops.HashGrid(spec, collector.arrays["grid"].data)
    assert grid.dense.any() and not grid.dense.all()
    height, width = 97, 203
    u = (np.arange(width, dtype=np.float32) + np.float32(0.5)) / np.float32(width)
    plan = grid.frame_columns(u)
    for rows in (np.arange(0, 7), np.arange(40, 41), np.arange(90, 97)):
        v = (rows.astype(np.float32) + np.float32(0.5)) / np.float32(height)
        pix = (rows[:, None] * width + np.arange(width)[None, :]).reshape(-1)
        expected = grid(ops.pixel_centres(pix, height, width))
        assert np.abs(grid.frame(plan, v) - expected).max() <= 1e-5
        assert np.abs(expected - encoding(torch.from_numpy(ops.pixel_centres(pix, height, width))).detach().numpy()).max() \
            <= 1e-5
