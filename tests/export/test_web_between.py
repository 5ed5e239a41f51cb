"""The network between the hours as extra shader passes (airender.export.web.between): the viewer page (WebGL2)
and the WGSL passes (WebGPU), in headless Chromium on SwiftShader, decode the frames between the stored hours
that the numpy runtime decodes from the pack that carries the network (and so what ``airender render
--between auto`` writes: tests/export/test_matrix.py), and ``--format glsl|wgsl`` write the passes."""
from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest

import airender.runtime
from airender.between.cli import fit_after_training, run_network
from airender.data import load_sequence
from airender.engine.trainer import Trainer
from airender.export.pack import write_pack
from airender.export.web import field_program, write_web
from airender.export.wgsl import BETWEEN_BINDINGS, BINDINGS, buffer_bytes, field_wgsl
from airender.models import load_model
from airender.presets import apply_overrides, preset_config
from tests.conftest import make_contest_dataset
from tests.export.conftest import QUICK, psnr
from tests.export.test_pack_runtime import export_main
from tests.export.test_web import browser, expected_srgb8  # noqa: F401 (browser: the WebGL2 browser fixture)
from tests.export.test_web_quant import webgpu  # noqa: F401 (the WebGPU page fixture)
from tests.export.test_wgsl import READ_BACK

HEIGHT, WIDTH = 40, 48
HOURS = [5.9, 7.5, 12.0, 13.25, 16.6]  # 7.5, 13.25 and 16.6 are blended; 5.9 (lights on) and 12 are the field's
BLENDED = [7.5, 13.25, 16.6]

# Runs the field's compute shader and the passes of the network between the hours: per hour in ``plans``,
# either the field's frame, or four linear frames of stored hours and the passes; returns the frames.
RUNNER = """async ({field, between, width, height, plans}) => {
""" + READ_BACK + """  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return {error: "no WebGPU adapter"};
  const device = await adapter.requestDevice({requiredLimits: {maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize}});
  device.pushErrorScope("validation");
  const compiled = async (code) => {
    const module = device.createShaderModule({code});
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter(m => m.type === "error").map(m => `${m.lineNum}:${m.linePos} ${m.message}`);
    if (errors.length) throw new Error("compile: " + errors.join(" | "));
    return module;
  };
  const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC;
  const upload = (b64) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const buf = device.createBuffer({size: Math.max(16, bytes.byteLength), usage: STORAGE});
    device.queue.writeBuffer(buf, 0, bytes);
    return buf;
  };
  try {
    const fieldPipeline = device.createComputePipeline({layout: "auto", compute: {module: await compiled(field.code), entryPoint: "main"}});
    const fieldBuffers = Object.entries(field.buffers).map(([name, b64]) => ({binding: field.bindings[name], resource: {buffer: upload(b64)}}));
    const frameBytes = width * height * 16;
    const newFrame = () => device.createBuffer({size: frameBytes, usage: STORAGE});
    const decode = (encoder, hour, linear, out) => {
      const uniform = device.createBuffer({size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST});
      const u = new ArrayBuffer(16);
      new Float32Array(u, 0, 1)[0] = hour;
      new Uint32Array(u, 4, 3).set([width, height, linear]);
      device.queue.writeBuffer(uniform, 0, u);
      const group = device.createBindGroup({layout: fieldPipeline.getBindGroupLayout(0), entries: [
        {binding: 0, resource: {buffer: uniform}}, ...fieldBuffers, {binding: 5, resource: {buffer: out}}]});
      const pass = encoder.beginComputePass();
      pass.setPipeline(fieldPipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(Math.ceil(width / 8), Math.ceil(height / 8), 1);
      pass.end();
    };
    const B = between.bindings;
    const entries = [{binding: B.pass, visibility: GPUShaderStage.COMPUTE, buffer: {type: "uniform"}}];
    for (const name of ["a", "b", "c", "d", "weights"]) entries.push({binding: B[name], visibility: GPUShaderStage.COMPUTE, buffer: {type: "read-only-storage"}});
    entries.push({binding: B.dst, visibility: GPUShaderStage.COMPUTE, buffer: {type: "storage"}});
    const bindLayout = device.createBindGroupLayout({entries});
    const layout = device.createPipelineLayout({bindGroupLayouts: [bindLayout]});
    const module = await compiled(between.code);
    const pipelines = {};
    for (const op of ["input", "conv", "upsample", "blend"]) pipelines[op] = device.createComputePipeline({layout, compute: {module, entryPoint: op + "_pass"}});
    const weights = upload(between.weights);
    const dummy = device.createBuffer({size: 16, usage: STORAGE});
    const slots = {};
    for (const [name, [c, h, w]] of Object.entries(between.slots)) slots[name] = {buffer: device.createBuffer({size: c * h * w * 4, usage: STORAGE}), c, h, w};
    const results = [];
    for (const plan of plans) {
      const out = newFrame();
      const encoder = device.createCommandEncoder();
      if (!plan.blend) {
        decode(encoder, plan.hour, 0, out);
      } else {
        const frames = {};
        ["frame:earlier", "frame:before", "frame:after", "frame:later"].forEach((name, k) => {
          frames[name] = newFrame();
          decode(encoder, plan.blend[k], 1, frames[name]);
        });
        frames["frame:display"] = out;
        const tensor = (name) => name ? (frames[name] || slots[name].buffer) : dummy;
        for (const step of between.passes) {
          const ints = new Int32Array(16);
          const floats = new Float32Array(ints.buffer);
          const a = slots[step.a], b = step.b ? slots[step.b] : null, o = slots[step.out];
          let groups = [Math.ceil(width / 8), Math.ceil(height / 8), 1];
          if (step.op === "input" || step.op === "blend") {
            ints.set([0, 0, 0, 0, width, height]);
            floats[12] = plan.s; floats[13] = plan.prior; ints[14] = between.hdr;
          } else {
            ints.set([a.w, a.h, a.c, b ? b.c : 0, o.w, o.h, step.op === "conv" ? o.c : a.c, step.relu ? 1 : 0,
                      step.stride || 1, step.padding || 0, step.dilation || 1, step.wgsl_offset || 0]);
            groups = [Math.ceil(o.w / 8), Math.ceil(o.h / 8), o.c];
          }
          const uniform = device.createBuffer({size: 64, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST});
          device.queue.writeBuffer(uniform, 0, ints);
          const group = device.createBindGroup({layout: bindLayout, entries: [
            {binding: B.pass, resource: {buffer: uniform}},
            {binding: B.a, resource: {buffer: tensor(step.a)}}, {binding: B.b, resource: {buffer: tensor(step.b)}},
            {binding: B.c, resource: {buffer: tensor(step.c)}}, {binding: B.d, resource: {buffer: tensor(step.d)}},
            {binding: B.weights, resource: {buffer: weights}}, {binding: B.dst, resource: {buffer: tensor(step.out)}}]});
          const pass = encoder.beginComputePass();
          pass.setPipeline(pipelines[step.op]);
          pass.setBindGroup(0, group);
          pass.dispatchWorkgroups(...groups);
          pass.end();
        }
      }
      results.push(await readBack(device, encoder, out, frameBytes));
    }
    const err = await device.popErrorScope();
    if (err) return {error: "validation: " + err.message};
    return {frames: results};
  } catch (e) {
    return {error: String(e.message || e)};
  }
}"""


@pytest.fixture(scope="module")
def between_run(tmp_path_factory):
    """(checkpoint, its field, the run's network between the hours, the numpy runtime of its pack): a hash-grid
    field of an HDR lightmap stored at every hour with the network fitted (a few steps) after training."""
    root = tmp_path_factory.mktemp("between_shaders")
    make_contest_dataset(root / "data", [str(h * 100) for h in range(24)], [("0", 1, WIDTH, HEIGHT)])
    config = apply_overrides(preset_config("hashgrid"), QUICK)
    config.train.between_steps = 20
    config.data.data_dir, config.out_dir = str(root / "data"), str(root / "run")
    Trainer(config, load_sequence(root / "data")).fit()
    assert fit_after_training(config, config.out_dir) is not None
    ckpt = root / "run" / "last.ckpt"
    loaded = load_model(ckpt, "cpu")
    between = run_network(ckpt, loaded.config)
    write_pack(loaded.field, root / "model.airpack", "fp32", between)
    runtime = airender.runtime.load(root / "model.airpack")
    for hour in BLENDED:  # the network decides these frames: they are not the field's own
        assert runtime.blend(hour) is not None
        assert np.abs(runtime.decode(hour) - runtime.model.decode(hour)).max() > 1e-3
    return ckpt, loaded.field, between, runtime


def test_viewer_runs_the_network_between_the_hours(between_run, browser, tmp_path):  # noqa: F811
    _, field, between, runtime = between_run
    written = write_web(field, tmp_path / "viewer", "html", "fp32", between)
    assert sorted(p.name for p in written) == ["hours.js", "index.html", "model.js", "viewer.js"]
    _, program = field_program(field, "fp32", between)
    page = browser.new_page()
    try:
        page.goto((tmp_path / "viewer" / "index.html").as_uri())
        page.evaluate("() => window.airenderViewer.ready")
        for hour in HOURS:
            page.evaluate(f"() => window.airenderViewer.setHour({hour})")
            shown = page.evaluate("() => window.airenderViewer.readPixels().then(r => Array.from(r.data))")
            pixels = np.array(shown, np.uint8).reshape(HEIGHT, WIDTH, 4)[..., :3]
            expected = expected_srgb8(runtime, program.meta, hour)
            # float32 on SwiftShader: the 8-bit frames agree to ~75 dB; the field's own frame at a blended hour
            # is 43-52 dB from the network's, so 60 dB tells them apart
            assert psnr(pixels / 255.0, expected / 255.0) >= 60.0, hour
            if hour in BLENDED:
                own = expected_srgb8(runtime.model, program.meta, hour)
                assert psnr(pixels / 255.0, own / 255.0) < psnr(pixels / 255.0, expected / 255.0) - 10.0, hour
    finally:
        page.close()


def test_wgsl_passes_run_the_network_between_the_hours(between_run, webgpu):  # noqa: F811
    _, field, between, runtime = between_run
    model, program = field_wgsl(field, "fp32", between)
    stored = runtime.stored_hours
    plans = []
    for hour in HOURS:
        blend = runtime.blend(hour)
        if blend is None:
            plans.append({"hour": hour, "blend": None})
            continue
        before, after, s = blend
        clamped = min(max(s, 0.02), 0.98)
        plans.append({"hour": hour, "s": s, "prior": math.log(clamped / (1 - clamped)),
                      "blend": [float(stored[i % stored.size]) for i in (before - 1, before, after, after + 1)]})
    passes = program.between
    result = webgpu.evaluate(RUNNER, {
        "field": {"code": program.code, "bindings": BINDINGS,
                  "buffers": {k: base64.b64encode(buffer_bytes(v)).decode("ascii")
                              for k, v in program.buffers.items()}},
        "between": {"code": program.between_code, "bindings": BETWEEN_BINDINGS, "slots": passes.slots,
                    "passes": passes.passes, "hdr": int(model.is_hdr),
                    "weights": base64.b64encode(buffer_bytes(passes.wgsl_weights)).decode("ascii")},
        "width": WIDTH, "height": HEIGHT, "plans": plans})
    assert "error" not in result, result.get("error")
    for hour, blob in zip(HOURS, result["frames"]):
        got = np.frombuffer(base64.b64decode(blob), np.float32).reshape(HEIGHT, WIDTH, 4)
        expected = runtime.decode(hour)
        assert (got[..., 3] == 1.0).all()
        scale = max(1.0, float(np.abs(expected).max()))
        error = float(np.abs(got[..., :3] - expected).max())
        assert error <= 1e-4 * scale, (hour, error)


def test_shader_formats_write_the_passes(between_run, tmp_path):
    ckpt = between_run[0]
    for fmt, files in (("glsl", {"between_input.frag", "between_conv.frag", "between_upsample.frag",
                                 "between_blend.frag"}), ("wgsl", {"between.wgsl"})):
        out = tmp_path / fmt
        assert export_main("--ckpt", str(ckpt), "--format", fmt, "--out", str(out)) == 0
        assert files <= {p.name for p in out.iterdir()}
        layout = json.loads((out / ("textures.json" if fmt == "glsl" else "buffers.json")).read_text())
        ops = [p["op"] for p in layout["between"]["passes"]]
        assert ops[0] == "input" and ops[-1] == "blend" and "conv" in ops and "upsample" in ops
        assert layout["between"]["hours"] == [float(h) for h in range(24)]
        plain = tmp_path / f"{fmt}_model"
        assert export_main("--ckpt", str(ckpt), "--format", fmt, "--out", str(plain), "--between", "model") == 0
        assert not files & {p.name for p in plain.iterdir()}
