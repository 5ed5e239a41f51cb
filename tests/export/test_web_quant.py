"""``--format glsl|html|wgsl --quant fp16|int8``: the shaders' data stored at the pack's precision (half
floats; int8 with per-level / per-output-channel scales) decode what the numpy runtime decodes from the
pack of that precision (the viewer page in headless Chromium on SwiftShader: PSNR >= 40 dB on 8-bit
sRGB; the WGSL compute shader in Chromium's WebGPU, skipped with the reason where it is unavailable), in
about half / a quarter of the fp32 data bytes; ``--quant fp32`` writes what it always wrote."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from airender.models.checkpoint import load_checkpoint
from airender.errors import InputError
from airender.export.web import data_bytes, export_web, field_program
from airender.export.wgsl import BINDINGS, buffer_bytes, field_wgsl
from tests.export.conftest import HEIGHT, WIDTH, psnr
from tests.export.test_pack_runtime import export_main
from tests.export.test_web import (  # noqa: F401 (browser: the WebGL2 browser fixture)
    CHROMIUM, HOURS, browser, expected_srgb8, viewer_pixels)
from tests.export.test_wgsl import RUNNER, WEBGPU_ARGS, webgpu_page

# (variant, precision): the brief's variants first, then ones that reach the other data paths (an 8-bit
# baseline and a half-float feature map: encoder; int8 reads of a matrix element by element: basis;
# half-float spline time codes next to int8 weights, a lamp head: baseline_switch_spline_blend)
CASES = [("quality", "fp16"), ("hashgrid", "fp16"), ("quality_hdr", "fp16"), ("encoder", "fp16"),
         ("quality", "int8"), ("hashgrid", "int8"), ("quality_hdr", "int8"), ("encoder", "int8"),
         ("basis", "int8"), ("baseline_switch_spline_blend", "int8"), ("sun_hdr_switch", "int8"),
         ("sun_components", "int8")]
# the most data bytes may take against fp32's: half floats halve every texture the pack stores at reduced
# precision; int8 quarters tables and weights (plus their scales, biases as half floats, and the encoder's
# feature map, which is computed, as half floats)
RATIO = {"fp16": 0.51, "int8": 0.30}
RATIO_INT8_ENCODER = 0.42


def bound(name: str, quant: str) -> float:
    return RATIO_INT8_ENCODER if (quant, name) == ("int8", "encoder") else RATIO[quant]


@pytest.mark.parametrize("name,quant", CASES)
def test_viewer_draws_the_quantised_pack(name, quant, trained, browser, tmp_path):  # noqa: F811
    field = load_checkpoint(trained(name)).field
    written, nbytes = export_web(field, tmp_path / "viewer", "html", quant)
    assert sorted(p.name for p in written) == ["hours.js", "index.html", "model.js", "viewer.js"]
    model, program = field_program(field, quant)
    assert model.header["quant"] == quant and program.meta["quant"] == quant
    fp32 = data_bytes(field_program(field)[1])
    assert nbytes == data_bytes(program) <= bound(name, quant) * fp32, (name, quant, nbytes, fp32)
    measured = []
    for hour, pixels in viewer_pixels(browser, tmp_path / "viewer" / "index.html", HOURS).items():
        expected = expected_srgb8(model, program.meta, hour)  # the numpy runtime's decode of the pack
        measured.append(psnr(pixels / 255.0, expected / 255.0))
        assert measured[-1] >= 40.0, (name, quant, hour, measured[-1])
    print(f"\n{name} {quant}: data {nbytes:,} bytes ({nbytes / fp32:.3f} of fp32's {fp32:,}); PSNR vs the {quant} "
          f"pack's numpy decode at {HOURS}: {', '.join(f'{p:.2f}' for p in measured)} dB")


def table_values(texels: np.ndarray, rows: int, features: int) -> np.ndarray:
    """The first ``rows`` table rows of F = ``features`` values from the tables texture's texels."""
    per_row = -(-features // 4) * 4
    return texels.reshape(-1)[:rows * per_row].reshape(rows, per_row)[:, :features]


@pytest.mark.parametrize("quant", ["fp16", "int8"])
def test_glsl_files_store_the_pack_values(quant, trained, tmp_path, capsys):
    field = load_checkpoint(trained("quality")).field
    out = tmp_path / "shader"
    assert export_main("--ckpt", str(trained("quality")), "--format", "glsl", "--out", str(out), "--quant", quant) == 0
    blob = (out / "textures.bin").read_bytes()
    description = json.loads((out / "textures.json").read_text())
    assert description["quant"] == quant
    assert f"{quant} data: {len(blob):,} bytes" in capsys.readouterr().out
    fragment = (out / "field.frag").read_text()
    total, texels = 0, {}
    for texture_name, texture in description["textures"].items():
        dtype = texture["dtype"]
        channels = 1 if texture["format"] == "R32F" else 4
        assert texture["format"] == {"float32": "RGBA32F" if channels == 4 else "R32F", "float16": "RGBA16F",
                                     "int8": "RGBA8I", "uint8": "RGBA8"}[dtype]
        assert texture["offset"] == total
        assert texture["nbytes"] == texture["width"] * texture["height"] * channels * np.dtype(dtype).itemsize
        assert texture_name in fragment
        texels[texture_name] = np.frombuffer(blob, np.dtype(dtype).newbyteorder("<"), offset=total,
                                             count=texture["nbytes"] // np.dtype(dtype).itemsize)
        total += texture["nbytes"]
    assert len(blob) == total
    model, _ = field_program(field, quant)
    grid = model.spec["xy"]["grid"]
    table = model.arrays[grid["array"]]  # the pack's table as the numpy runtime decodes it
    stored = table_values(texels["u_tables"], *table.shape)
    if quant == "fp16":
        assert description["textures"]["u_tables"]["dtype"] == "float16"
        assert description["textures"]["u_params"]["dtype"] == "float16"
        assert np.array_equal(stored.astype(np.float32), table)
    else:
        assert {k: t["dtype"] for k, t in description["textures"].items()} == {
            "u_params": "float16", "u_tables": "int8", "u_weights": "int8", "u_wscale": "float32"}
        assert "uniform highp isampler2D u_tables;" in fragment and "uniform highp isampler2D u_weights;" in fragment
        scales = np.array([float(v) for v in fragment.split("const float XY_QS[")[1].split("(")[1].split(")")[0]
                           .split(", ")], np.float32)
        per_row = np.repeat(scales, np.diff(list(grid["offsets"]) + [table.shape[0]]))[:, None]
        assert np.array_equal(stored.astype(np.float32) * per_row, table)  # q * level scale: the pack's values


def test_fp32_files_are_unchanged(trained, tmp_path):
    """--quant fp32 (the default) writes float32 data, as before: the texels of the fp32 program as float32."""
    ckpt = str(trained("quality"))
    field = load_checkpoint(ckpt).field
    _, program = field_program(field)
    expected = b"".join(t.texels.astype("<f4").tobytes() for t in program.textures.values())
    for fmt, data in (("glsl", "textures.bin"), ("wgsl", "buffers.bin")):
        default, explicit = tmp_path / f"{fmt}_default", tmp_path / f"{fmt}_fp32"
        assert export_main("--ckpt", ckpt, "--format", fmt, "--out", str(default)) == 0
        assert export_main("--ckpt", ckpt, "--format", fmt, "--out", str(explicit), "--quant", "fp32") == 0
        for path in default.iterdir():
            assert path.read_bytes() == (explicit / path.name).read_bytes(), path.name
        assert (default / data).read_bytes() == expected
    textures = json.loads((tmp_path / "glsl_default" / "textures.json").read_text())
    assert textures["quant"] == "fp32"
    assert {(t["dtype"], t["format"]) for t in textures["textures"].values()} == {("float32", "RGBA32F")}
    buffers = json.loads((tmp_path / "wgsl_default" / "buffers.json").read_text())
    assert buffers["quant"] == "fp32"
    assert {(b["dtype"], b["type"]) for b in buffers["buffers"]} == {("float32", "array<vec4<f32>>")}
    fragment = (tmp_path / "glsl_default" / "field.frag").read_text()
    assert "isampler2D" not in fragment and "u_weights" not in fragment and "_QS[" not in fragment
    code = (tmp_path / "wgsl_default" / "field.wgsl").read_text()
    assert "unpack" not in code and "var<storage, read> weights" not in code


def test_onnx_refuses_reduced_precision(trained, tmp_path):
    with pytest.raises(InputError, match="onnx is float32"):
        export_main("--ckpt", str(trained("hashgrid")), "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
                    "--quant", "int8")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def webgpu(browser, tmp_path_factory):  # noqa: F811
    """test_wgsl's WebGPU page, from a second Chromium of the viewer's Playwright (test_wgsl's fixture starts a
    Playwright of its own, which cannot run beside test_web's in one thread), or a skip saying why not."""
    try:
        chromium = browser.browser_type.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS)
    except Exception as exc:
        pytest.skip(f"Chromium cannot start here with WebGPU: {str(exc).splitlines()[0]}")
    page, problem = webgpu_page(chromium, tmp_path_factory.mktemp("webgpu_quant"))
    if problem:
        chromium.close()
        pytest.skip(problem)
    yield page
    chromium.close()


def run_wgsl_raw(page, program, width: int, height: int, hours: list[float]) -> list[np.ndarray]:
    """test_wgsl's runner with the buffers' own bytes (float16, int8, uint8 or float32 values)."""
    result = page.evaluate(RUNNER, {
        "code": program.code, "bindings": BINDINGS, "width": width, "height": height, "hours": hours,
        "buffers": {k: base64.b64encode(buffer_bytes(v)).decode("ascii") for k, v in program.buffers.items()}})
    assert "error" not in result, result.get("error")
    return [np.frombuffer(base64.b64decode(f), np.float32).reshape(height, width, 4) for f in result["frames"]]


@pytest.mark.parametrize("name,quant", CASES)
def test_wgsl_decodes_the_quantised_pack(name, quant, trained, webgpu):
    field = load_checkpoint(trained(name)).field
    model, program = field_wgsl(field, quant)
    assert program.layout["quant"] == quant
    nbytes = sum(b["nbytes"] for b in program.layout["buffers"])
    fp32 = sum(b["nbytes"] for b in field_wgsl(field)[1].layout["buffers"])
    assert nbytes <= bound(name, quant) * fp32, (name, quant, nbytes, fp32)
    for buffer in program.layout["buffers"]:
        declaration = f"@group(0) @binding({buffer['binding']}) var<storage, read> {buffer['name']}: {buffer['type']};"
        assert declaration in program.code
        assert buffer["nbytes"] == program.buffers[buffer["name"]].nbytes
    frames = run_wgsl_raw(webgpu, program, WIDTH, HEIGHT, HOURS)
    sine = model.spec["mlp"]["activation"] == "sine"
    worst = 0.0
    for hour, got in zip(HOURS, frames):
        expected = model.decode(hour)  # the numpy runtime's decode of the pack of this precision
        assert (got[..., 3] == 1.0).all()
        error = np.abs(got[..., :3] - expected)
        scale = max(1.0, float(np.abs(expected).max()))
        # the encoder's feature map is stored as half floats (it is computed, not a pack value)
        tolerance = 2e-3 if sine else 5e-4 if name.startswith("encoder") else 1e-4
        assert error.max() <= tolerance * scale, (name, quant, hour, float(error.max()))
        worst = max(worst, float(error.max()) / scale)
    print(f"\n{name} {quant}: WGSL data {nbytes:,} bytes ({nbytes / fp32:.3f} of fp32's {fp32:,}); largest error "
          f"vs the {quant} pack's numpy decode {worst:.2e} (relative to max(1, peak))")
