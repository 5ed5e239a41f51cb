"""``airender render``, ``render-all``, ``eval`` and ``bench`` take an exported pack (.airpack) as ``--ckpt``:
decoded by the numpy runtime, the bytes reported are the pack file's."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import airender.runtime
from airender.cli import main
from airender.data.readers import read_image
from airender.errors import CheckpointError
from airender.models.packed import PackedModel, is_pack
from airender.images import save_frame
from airender.models import Decoder, as_decoder, load_model
from tests.export.conftest import HEIGHT, WIDTH


@pytest.fixture(scope="module")
def packs(trained, tmp_path_factory):
    """packs(name, quant) -> Path of the pack of variant ``name`` at ``quant``, written by ``airender export``."""
    root = tmp_path_factory.mktemp("pack_commands")
    done: dict[tuple[str, str], Path] = {}

    def pack(name: str, quant: str = "fp32") -> Path:
        if (name, quant) not in done:
            out = root / f"{name}.{quant}.airpack"
            assert main(["export", "--ckpt", str(trained(name)), "--format", "pack", "--quant", quant,
                         "--out", str(out)]) == 0
            done[(name, quant)] = out
        return done[(name, quant)]

    return pack


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_load_model_reads_a_pack(trained, packs, tmp_path):
    path = packs("quality_hdr")
    assert is_pack(path) and not is_pack(trained("quality_hdr")) and not is_pack(tmp_path / "missing.airpack")
    (tmp_path / "short").write_bytes(b"AIRP")
    assert not is_pack(tmp_path / "short")
    loaded = load_model(path)
    checkpoint = load_model(trained("quality_hdr"))
    assert loaded.kind == "pack" and loaded.is_pack and isinstance(loaded.field, PackedModel)
    assert checkpoint.kind == "field" and not checkpoint.is_pack and not checkpoint.is_tiled
    for model in (loaded.field, checkpoint.field):  # both decode through the one interface
        decoder = as_decoder(model)
        assert isinstance(decoder, Decoder) and decoder.decode(6.0).shape == (HEIGHT, WIDTH, 3)
        texel = decoder.query(torch.tensor([3]), torch.tensor([5]), torch.tensor([6.0]))
        torch.testing.assert_close(texel[0], decoder.decode(6.0)[3, 5], rtol=1e-4, atol=1e-4)
    assert loaded.desc == checkpoint.desc and loaded.desc.is_hdr and loaded.config.data.lightmap_id == ""
    assert loaded.config.field == checkpoint.config.field  # light_switch (eval's switch hours) included
    assert list(loaded.config.field.light_switch) == [6.0, 18.0]
    field = loaded.field
    assert field.baseline is None and field.sources == () and field.stored_bytes() == path.stat().st_size
    frame = field.decode(13.25)
    assert isinstance(frame, torch.Tensor) and frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == torch.float32
    small = field.frame_decoder(9, 11).decode(13.25)
    assert small.shape == (9, 11, 3)
    y, x = torch.tensor([0, 5, HEIGHT - 1]), torch.tensor([3, 0, WIDTH - 1])
    texels = field.query(y, x, torch.full((3,), 13.25))
    assert torch.allclose(texels, frame[y, x], atol=1e-4)
    with pytest.raises(ValueError, match="no light source"):
        field.decode_source(3.0, "local")


@pytest.mark.parametrize("name, suffix", [("quality", ".png"), ("quality", ".exr"), ("quality_hdr", ".exr"),
                                          ("quality_hdr", ".png"), ("basis", ".png")])
def test_render_pack_like_checkpoint(name, suffix, trained, packs, tmp_path):
    pack = packs(name)
    from_ckpt, from_pack = tmp_path / f"ckpt{suffix}", tmp_path / f"pack{suffix}"
    assert main(["render", "--ckpt", str(trained(name)), "--time", "9.5", "--out", str(from_ckpt),
                 "--device", "cpu"]) == 0
    assert main(["render", "--ckpt", str(pack), "--time", "9.5", "--out", str(from_pack)]) == 0
    got, _ = read_image(from_pack)
    want, _ = read_image(from_ckpt)
    assert got.shape == (HEIGHT, WIDTH, 3)
    # the pack's render is the runtime decode written the same way
    runtime = airender.runtime.load(pack)
    reference = tmp_path / f"runtime{suffix}"
    save_frame(reference, torch.from_numpy(runtime.decode(9.5)), runtime.is_hdr)
    assert np.array_equal(got, read_image(reference)[0])
    if suffix == ".exr":
        assert np.abs(got - want).max() <= 1e-3, name
    elif not runtime.is_hdr:  # an HDR pack's PNG preview is exposed at 1.0 (the checkpoint's, from its baseline)
        assert np.abs(np.round(got * 255) - np.round(want * 255)).max() <= 1, name


def test_render_pack_at_another_size(packs, tmp_path):
    pack = packs("quality")
    out = tmp_path / "small.exr"
    assert main(["render", "--ckpt", str(pack), "--time", "18.1", "--out", str(out), "--width", "31",
                 "--height", "17"]) == 0
    expected = airender.runtime.load(pack).decode(18.1, width=31, height=17)
    assert np.abs(read_image(out)[0] - expected).max() <= 1e-6


def test_render_all_pack(packs, tmp_path):
    pack = packs("quality", "int8")
    out = tmp_path / "frames"
    assert main(["render-all", "--ckpt", str(pack), "--out_dir", str(out), "--start_hour", "0", "--end_hour", "3",
                 "--step", "1.5"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["day.gif", "tod_00.00.png", "tod_01.50.png", "tod_03.00.png"]
    runtime = airender.runtime.load(pack)
    got = read_image(out / "tod_01.50.png")[0]
    assert np.abs(got - np.round(runtime.decode(1.5) * 255) / 255).max() <= 1e-6


def _eval(ckpt: Path, data: Path, out: Path, *extra: str) -> dict:
    assert main(["eval", "--ckpt", str(ckpt), "--data_dir", str(data), "--out_dir", str(out), "--device", "cpu",
                 *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("name, data", [("quality", "ldr"), ("quality_hdr", "hdr"), ("basis", "ldr")])
def test_eval_pack(name, data, trained, packs, export_data, tmp_path, capsys):
    results = {"ckpt": _eval(trained(name), export_data[data], tmp_path / "ckpt")}
    for quant in ("fp32", "int8"):
        pack = packs(name, quant)
        results[quant] = metrics = _eval(pack, export_data[data], tmp_path / quant)
        assert metrics["size"]["model_bytes"] == pack.stat().st_size
        assert (tmp_path / quant / "contact_sheet.png").is_file()
    assert f"{packs(name, 'int8').stat().st_size:,} bytes" in capsys.readouterr().out
    groups = list(results["ckpt"]["means"])
    assert groups and list(results["fp32"]["means"]) == groups
    for group in groups:
        psnr = {key: results[key]["means"][group]["psnr"] for key in results}
        sizes = {key: results[key]["size"]["model_bytes"] for key in results}
        print(f"{name} {group}: PSNR checkpoint {psnr['ckpt']:.3f}, fp32 pack {psnr['fp32']:.3f}, int8 pack "
              f"{psnr['int8']:.3f} dB; bytes checkpoint {sizes['ckpt']:,}, fp32 {sizes['fp32']:,}, "
              f"int8 {sizes['int8']:,}")
        assert abs(psnr["fp32"] - psnr["ckpt"]) <= 0.01, (name, group, psnr)
        assert abs(psnr["int8"] - psnr["fp32"]) <= 1.0, (name, group, psnr)
    assert results["int8"]["size"]["model_bytes"] < results["fp32"]["size"]["model_bytes"]


def test_bench_pack(packs, export_data, tmp_path, capsys):
    pack = packs("quality", "int8")
    out = tmp_path / "bench.json"
    assert main(["bench", "--ckpt", str(pack), "--data_dir", str(export_data["ldr"]), "--parts", "decode",
                 "--width", "48", "--height", "40", "--repeats", "1", "--device", "cpu", "--runtimes", "torch,numpy",
                 "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    (decode,) = results["decode"]
    assert decode["label"] == pack.name and decode["device"] == "numpy int8"
    assert decode["model_bytes"] == pack.stat().st_size and decode["decode_ms_median"] > 0
    rows = [r for r in results["runtimes"] if r["label"] == pack.name]
    assert [(r["runtime"], r["nbytes"]) for r in rows] == [("numpy int8", pack.stat().st_size)]
    assert "numpy int8" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["render", "render-all", "eval", "bench"])
def test_corrupt_pack_is_one_line(command, packs, export_data, tmp_path, capsys):
    bad = tmp_path / "broken.airpack"
    bad.write_bytes(packs("quality").read_bytes()[:-7])
    argv = {"render": ["render", "--ckpt", str(bad), "--time", "3", "--out", str(tmp_path / "x.png")],
            "render-all": ["render-all", "--ckpt", str(bad), "--out_dir", str(tmp_path / "frames")],
            "eval": ["eval", "--ckpt", str(bad), "--data_dir", str(export_data["ldr"]), "--out_dir",
                     str(tmp_path / "eval")],
            "bench": ["bench", "--ckpt", str(bad), "--data_dir", str(export_data["ldr"]), "--parts", "decode",
                      "--width", "48", "--height", "40", "--repeats", "1"]}[command]
    assert main(argv) == 2
    err = _one_error_line(capsys)
    assert str(bad) in err and "truncated or corrupt" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.airpack"]
    with pytest.raises(CheckpointError, match="broken.airpack"):
        load_model(bad)


@pytest.mark.parametrize("flag", [["--lightmap_id", "7"], ["--baseline_path", "{baseline}"]])
def test_pack_refuses_lightmap_id_and_baseline(flag, packs, export_data, tmp_path, capsys):
    pack = packs("quality")
    baseline = sorted(Path(export_data["ldr"]).glob("*.png"))[0]
    flag = [f.format(baseline=baseline) for f in flag]
    out = tmp_path / "x.png"
    assert main(["render", "--ckpt", str(pack), "--time", "3", "--out", str(out), *flag]) == 2
    err = _one_error_line(capsys)
    assert flag[0] in err and str(pack) in err and "exported pack" in err
    assert not out.exists()
