"""GLSL / HTML export: the viewer page in headless Chromium (SwiftShader) draws what the numpy runtime
decodes (PSNR >= 40 dB on 8-bit sRGB); skipped where no browser can start."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from airender.models.checkpoint import load_checkpoint
from airender.errors import InputError
from airender.export.web import field_program, write_web
from airender.images import srgb_encode
from tests.export.conftest import HEIGHT, VARIANTS, WIDTH, psnr
from tests.export.test_pack_runtime import export_main

CHROMIUM = os.environ.get("AIRENDER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox", "--headless"]
HOURS = [0.0, 5.9, 13.25, 18.1]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set AIRENDER_CHROMIUM)")
    try:
        manager = sync_api.sync_playwright().start()
    except Exception as exc:  # the driver cannot start here
        pytest.skip(f"playwright cannot start: {type(exc).__name__}: {exc}")
    try:
        chromium = manager.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:
        manager.stop()
        pytest.skip(f"Chromium cannot start here: {str(exc).splitlines()[0]}")
    yield chromium
    chromium.close()
    manager.stop()


def expected_srgb8(model, meta: dict, hour: float) -> np.ndarray:
    """The numpy runtime's frame as the viewer shows it: 8-bit sRGB [H, W, 3]."""
    frame = model.decode(hour)
    encoded = srgb_encode(meta["exposure"] * frame) if model.is_hdr else np.clip(frame, 0.0, 1.0)
    return np.round(encoded * 255.0).astype(np.uint8)


def viewer_pixels(browser, page_file: Path, hours: list[float]) -> dict[float, np.ndarray]:
    """Open the viewer page ``page_file`` and read back its image after ``setHour(h)`` for each hour: {hour:
    RGB uint8 [HEIGHT, WIDTH, 3]}; asserts the native size and an opaque image."""
    page = browser.new_page()
    images = {}
    try:
        page.goto(page_file.as_uri())
        page.evaluate("() => window.airenderViewer.ready")
        for hour in hours:
            page.evaluate(f"() => window.airenderViewer.setHour({hour})")
            shown = page.evaluate("() => window.airenderViewer.readPixels().then("
                                  "r => ({width: r.width, height: r.height, data: Array.from(r.data)}))")
            assert (shown["width"], shown["height"]) == (WIDTH, HEIGHT)
            pixels = np.array(shown["data"], np.uint8).reshape(HEIGHT, WIDTH, 4)
            assert (pixels[..., 3] == 255).all()
            images[hour] = pixels[..., :3]
    finally:
        page.close()
    return images


@pytest.mark.parametrize("name", ["quality_switch", "hashgrid3d_switch", "baseline_switch_spline_blend",
                                  "encoder_ds2_no_xy", "film", "quality_hdr", "basis", "basis_hdr_switch", "sun",
                                  "sun_hdr_switch", "hashgrid_components", "baseline_components", "sun_components"])
def test_viewer_draws_the_numpy_decode(name, trained, browser, tmp_path):
    field = load_checkpoint(trained(name)).field
    written = write_web(field, tmp_path / "viewer", "html")
    assert sorted(p.name for p in written) == ["hours.js", "index.html", "model.js", "viewer.js"]
    model, program = field_program(field)
    for hour, pixels in viewer_pixels(browser, tmp_path / "viewer" / "index.html", HOURS).items():
        expected = expected_srgb8(model, program.meta, hour)
        assert psnr(pixels / 255.0, expected / 255.0) >= 40.0, (name, hour)


def test_viewer_reports_missing_webgl(trained, browser, tmp_path):
    write_web(load_checkpoint(trained("hashgrid")).field, tmp_path / "viewer", "html")
    page = browser.new_page()
    try:
        page.add_init_script("HTMLCanvasElement.prototype.getContext = function () { return null; };")
        page.goto((tmp_path / "viewer" / "index.html").as_uri())
        reason = page.evaluate("() => window.airenderViewer.ready.then(() => 'ready', e => e.message)")
        assert "WebGL2" in reason and "WebGL2" in page.inner_text("#status")
    finally:
        page.close()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_glsl_files(name, trained, tmp_path):
    out = tmp_path / "shader"
    assert export_main("--ckpt", str(trained(name)), "--format", "glsl", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["field.frag", "field.vert", "textures.bin", "textures.json"]
    description = json.loads((out / "textures.json").read_text())
    fragment = (out / "field.frag").read_text()
    assert fragment.startswith("#version 300 es") and "//@GRIDS" not in fragment
    total = 0
    for texture_name, texture in description["textures"].items():
        assert f"uniform sampler2D {texture_name};" in fragment
        assert texture["offset"] == total and texture["nbytes"] == texture["width"] * texture["height"] * 16
        total += texture["nbytes"]
    assert (out / "textures.bin").stat().st_size == total
    assert (description["width"], description["height"]) == (WIDTH, HEIGHT)


def test_web_formats_refuse_file_targets_and_onnx_quant(trained, tmp_path):
    target = tmp_path / "file.html"
    target.write_text("")
    with pytest.raises(InputError, match="not a folder"):
        export_main("--ckpt", str(trained("hashgrid")), "--format", "html", "--out", str(target))
    with pytest.raises(InputError, match="onnx is float32"):
        export_main("--ckpt", str(trained("hashgrid")), "--format", "onnx", "--out", str(tmp_path / "g.onnx"),
                    "--quant", "fp16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.html"]
