"""WGSL export: the compute shader and its buffer layout for every preset's field; in headless Chromium with
WebGPU on SwiftShader the shader compiles (Tint) and decodes what the numpy runtime decodes. The browser
part is skipped, with the reason, where no Chromium or no WebGPU adapter is available."""
from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from airender.models.checkpoint import load_checkpoint
from airender.errors import InputError
from airender.export.wgsl import BINDINGS, OUTPUT_BINDING, field_wgsl, preprocess
from tests.export.conftest import HEIGHT, VARIANTS, WIDTH
from tests.export.test_pack_runtime import export_main

CHROMIUM = os.environ.get("AIRENDER_CHROMIUM", "/usr/bin/chromium")
WEBGPU_ARGS = ["--headless", "--no-sandbox", "--enable-unsafe-webgpu", "--use-angle=swiftshader",
               "--enable-unsafe-swiftshader"]
HOURS = [0.0, 5.9, 13.25, 18.1]
# Compiles the shader, reports Tint's errors with line numbers, runs one dispatch per hour and returns
# the output buffers (base64 float32).
# Copies ``buffer`` (``nbytes``) out through ``encoder``, submits it, and returns its bytes in base64.
READ_BACK = """  const readBack = async (device, encoder, buffer, nbytes) => {
    const read = device.createBuffer({size: nbytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST});
    encoder.copyBufferToBuffer(buffer, 0, read, 0, nbytes);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const data = new Uint8Array(read.getMappedRange().slice(0));
    read.unmap();
    let s = ""; for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
    return btoa(s);
  };
"""
RUNNER = """async ({code, buffers, bindings, width, height, hours}) => {
""" + READ_BACK + """  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return {error: "no WebGPU adapter"};
  const device = await adapter.requestDevice({requiredLimits: {maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize}});
  device.pushErrorScope("validation");
  const module = device.createShaderModule({code});
  const info = await module.getCompilationInfo();
  const errors = info.messages.filter(m => m.type === "error").map(m => `${m.lineNum}:${m.linePos} ${m.message}`);
  if (errors.length) return {error: "compile: " + errors.join(" | ")};
  const pipeline = device.createComputePipeline({layout: "auto", compute: {module, entryPoint: "main"}});
  const entries = [];
  const uniform = device.createBuffer({size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST});
  entries.push({binding: 0, resource: {buffer: uniform}});
  for (const [name, b64] of Object.entries(buffers)) {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const buf = device.createBuffer({size: bytes.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST});
    device.queue.writeBuffer(buf, 0, bytes);
    entries.push({binding: bindings[name], resource: {buffer: buf}});
  }
  const outBytes = width * height * 16;
  const out = device.createBuffer({size: outBytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC});
  entries.push({binding: 5, resource: {buffer: out}});
  const group = device.createBindGroup({layout: pipeline.getBindGroupLayout(0), entries});
  const results = [];
  for (const hour of hours) {
    const u = new ArrayBuffer(16);
    new Float32Array(u, 0, 1)[0] = hour;
    new Uint32Array(u, 4, 2).set([width, height]);
    device.queue.writeBuffer(uniform, 0, u);
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(Math.ceil(width / 8), Math.ceil(height / 8), 1);
    pass.end();
    results.push(await readBack(device, enc, out, outBytes));
  }
  const err = await device.popErrorScope();
  if (err) return {error: "validation: " + err.message};
  return {frames: results};
}"""


def webgpu_page(browser, folder: Path):
    """(a blank file:// page of ``browser`` in ``folder``, None), or (that page, why it offers no WebGPU adapter)."""
    blank = folder / "blank.html"
    blank.write_text("<!DOCTYPE html><title>webgpu</title>")
    page = browser.new_page()
    page.goto(blank.as_uri())
    adapter = page.evaluate("async () => navigator.gpu ? ((await navigator.gpu.requestAdapter()) ? 'ok' : "
                            "'no WebGPU adapter') : 'no navigator.gpu'")
    if adapter == "ok":
        return page, None
    return page, f"Chromium offers no WebGPU here ({adapter}) with {' '.join(WEBGPU_ARGS)}"


@pytest.fixture(scope="module")
def webgpu(tmp_path_factory):
    """A page with WebGPU (a secure file:// page in headless Chromium on SwiftShader), or a skip saying why not."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set AIRENDER_CHROMIUM)")
    try:
        manager = sync_api.sync_playwright().start()
    except Exception as exc:
        pytest.skip(f"playwright cannot start: {type(exc).__name__}: {exc}")
    try:
        browser = manager.chromium.launch(executable_path=CHROMIUM, args=WEBGPU_ARGS)
    except Exception as exc:
        manager.stop()
        pytest.skip(f"Chromium cannot start here: {str(exc).splitlines()[0]}")
    page, problem = webgpu_page(browser, tmp_path_factory.mktemp("webgpu"))
    if problem:
        browser.close()
        manager.stop()
        pytest.skip(problem)
    yield page
    browser.close()
    manager.stop()


def run_wgsl(page, program, width: int, height: int, hours: list[float]) -> list[np.ndarray]:
    """Output frames [H, W, 4] of the program at ``hours`` (AssertionError with Tint's messages if it fails)."""
    result = page.evaluate(RUNNER, {
        "code": program.code, "bindings": BINDINGS, "width": width, "height": height, "hours": hours,
        "buffers": {k: base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for k, v in program.buffers.items()}})
    assert "error" not in result, result.get("error")
    return [np.frombuffer(base64.b64decode(f), np.float32).reshape(height, width, 4) for f in result["frames"]]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_wgsl_decodes_like_numpy(name, trained, webgpu):
    field = load_checkpoint(trained(name)).field
    model, program = field_wgsl(field)
    frames = run_wgsl(webgpu, program, WIDTH, HEIGHT, HOURS)
    sine = model.spec["mlp"]["activation"] == "sine"
    for hour, got in zip(HOURS, frames):
        expected = model.decode(hour)
        assert (got[..., 3] == 1.0).all()
        error = np.abs(got[..., :3] - expected)
        scale = max(1.0, float(np.abs(expected).max()))
        # SIREN layers compute sin(30 x): the GPU's sine of large arguments differs in the last bits
        assert error.max() <= (2e-3 if sine else 1e-4) * scale, (name, hour, float(error.max()))


@pytest.mark.parametrize("name", list(VARIANTS))
def test_wgsl_files(name, trained, tmp_path):
    out = tmp_path / "wgsl"
    assert export_main("--ckpt", str(trained(name)), "--format", "wgsl", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["buffers.bin", "buffers.json", "field.wgsl"]
    layout = json.loads((out / "buffers.json").read_text())
    code = (out / "field.wgsl").read_text()
    assert not re.search(r"^\s*#", code, re.M) and "//@GRIDS" not in code  # no directive left
    total = 0
    for buffer in layout["buffers"]:
        declaration = f"@group(0) @binding({buffer['binding']}) var<storage, read> {buffer['name']}: array<vec4<f32>>;"
        assert declaration in code
        assert buffer["offset"] == total and buffer["nbytes"] == 16 * buffer["elements"]
        total += buffer["nbytes"]
    assert (out / "buffers.bin").stat().st_size == total
    declared = set(re.findall(r"@binding\((\d+)\)", code))
    assert declared == {"0", str(OUTPUT_BINDING)} | {str(b["binding"]) for b in layout["buffers"]}
    assert (layout["width"], layout["height"]) == (WIDTH, HEIGHT) and layout["entry_point"] == "main"
    assert code.count("{") == code.count("}") and code.count("(") == code.count(")")
    # every constant the body uses is declared once
    names = re.findall(r"^const (\w+):", code, re.M)
    assert len(names) == len(set(names))
    field = load_checkpoint(trained(name)).field
    assert field_wgsl(field)[1].code == code


def test_preprocess():
    text = "a\n#if X\nb\n#elif Y == 2\nc\n#else\nd\n#if Z\ne\n#endif\n#endif\nf"
    assert preprocess(text, {"X": 1}) == "a\nb\nf\n"
    assert preprocess(text, {"Y": 2}) == "a\nc\nf\n"
    assert preprocess(text, {"Y": 3, "Z": 1}) == "a\nd\ne\nf\n"
    assert preprocess("#if A != 0\nx\n#endif", {}) == "\n"
    for bad in ("#if X\nx", "#endif", "#if 1 + 1\n#endif"):
        with pytest.raises(ValueError):
            preprocess(bad, {})


def test_wgsl_refuses_file_target(trained, tmp_path):
    target = tmp_path / "file.wgsl"
    target.write_text("")
    with pytest.raises(InputError, match="not a folder"):
        export_main("--ckpt", str(trained("hashgrid")), "--format", "wgsl", "--out", str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.wgsl"]
