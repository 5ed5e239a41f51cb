"""``export --format level``: the baked level in 3D in headless Chromium (SwiftShader), every fragment lit by the
field decoded in the fragment shader. A 256^2 level is baked and a field trained on it a few steps; the page's
"neural" frames equal the numpy runtime's decode of each texel (its "baked truth" replaced by that decode:
>= 50 dB on the 8-bit output), between the stored hours too (the network's blend) and for a tiled run (each texel
by its tile's field); the export's "baked truth" is the bake, and the hour changes the image."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

pytest.importorskip("mitsuba", reason="the baker needs Mitsuba 3 (pip install -e .[scene])")
trimesh = pytest.importorskip("trimesh", reason="the level needs trimesh (pip install -e .[scene])")

import airender.export.level as level_export  # noqa: E402
import airender.runtime  # noqa: E402
from airender.bake.bake import BakeSettings, bake  # noqa: E402
from airender.between.cli import fit_after_training, run_network  # noqa: E402
from airender.data import load_sequence  # noqa: E402
from airender.data.virtual_texture import list_lightmaps, open_component  # noqa: E402
from airender.engine.trainer import Trainer  # noqa: E402
from airender.errors import InputError  # noqa: E402
from airender.export.pack import write_pack  # noqa: E402
from airender.models import load_model  # noqa: E402
from airender.presets import apply_overrides, preset_config  # noqa: E402
from airender.tiles.runner import fit_tiled  # noqa: E402
from tests.export.test_pack_runtime import export_main  # noqa: E402
from tests.export.test_web import browser  # noqa: E402,F401 (the WebGL2 browser fixture)

HOURS = [9.0, 13.0, 17.0]  # baked (and trained) hours
BETWEEN = 10.4  # a daylight time between them: the network between the hours blends the field's frames
SIZE = "96x60"  # SwiftShader decodes the field for every fragment: about 0.5 s a frame here
# the page's pixels as base64 (a list of numbers crosses from the page thousands of times slower)
READ_PIXELS = """() => window.airenderLevel.readPixels().then(r => {
  let s = ""; for (let i = 0; i < r.data.length; i += 0x8000) s += String.fromCharCode.apply(null, r.data.subarray(i, i + 0x8000));
  return {w: r.width, h: r.height, data: btoa(s)};
})"""


@pytest.fixture(scope="module")
def level_run(tmp_path_factory):
    """(the bake, the checkpoint of a hash-grid field trained a few steps on its lightmap 1, its numpy runtime)."""
    root = tmp_path_factory.mktemp("level")
    bake(root / "bake", BakeSettings(size=256, atlases=1, parts=1, spp=2, seed=0), progress=False)
    config = apply_overrides(preset_config("hashgrid"), {
        "data": {"data_dir": str(root / "bake"), "lightmap_id": "1"},
        "train": {"max_steps": 60, "epochs": 100, "progress": False, "val_every_steps": 60, "between_steps": 20}})
    config.out_dir = str(root / "run")
    Trainer(config, load_sequence(root / "bake", "1", "original")).fit()
    assert fit_after_training(config, config.out_dir) is not None  # the network between the hours, a few steps
    ckpt = root / "run" / "last.ckpt"
    loaded = load_model(ckpt)
    write_pack(loaded.field, root / "model.airpack", "fp32", run_network(ckpt, loaded.config))
    runtime = airender.runtime.load(root / "model.airpack")
    assert runtime.blend(BETWEEN) is not None
    return root / "bake", ckpt, runtime


def frames(browser, folder, hours_by_mode: dict[str, list[float]]):  # noqa: F811
    """({mode: {hour: RGBA uint8 [H, W, 4]}} of the level page in ``folder``, the last frame's time in ms)."""
    page = browser.new_page()
    out: dict = {}
    try:
        page.goto((folder / "index.html").as_uri() + f"?size={SIZE}")
        page.evaluate("() => window.airenderLevel.ready")
        for mode, hours in hours_by_mode.items():
            page.evaluate(f"() => window.airenderLevel.setMode('{mode}')")
            out[mode] = {}
            for hour in hours:
                page.evaluate(f"() => window.airenderLevel.setHour({hour})")
                shown = page.evaluate(READ_PIXELS)
                out[mode][hour] = np.frombuffer(base64.b64decode(shown["data"]), np.uint8).reshape(
                    shown["h"], shown["w"], 4)
        frame_ms = page.evaluate("() => window.airenderLevel.frameMs")
    finally:
        page.close()
    return out, frame_ms


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    covered = (a[..., 3] > 0) & (b[..., 3] > 0)
    mse = ((a[..., :3].astype(np.float64) - b[..., :3]) ** 2)[covered].mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def test_level_export_writes_the_bake_and_the_model(level_run, tmp_path):
    bake_dir, ckpt, runtime = level_run
    assert export_main("--ckpt", str(ckpt), "--format", "level", "--data_dir", str(bake_dir),
                       "--out", str(tmp_path / "page")) == 0
    assert {"index.html", "level.js", "hours.js", "model.js", "level_data.js", "three.bundle.min.js",
            "THREE-LICENSE", "THREE-VERSION"} == {p.name for p in (tmp_path / "page").iterdir()}
    text = (tmp_path / "page" / "level_data.js").read_text()
    data = json.loads(text[text.index("{"):text.rindex("}") + 1])
    entry = list_lightmaps(bake_dir)[0]
    component = open_component(bake_dir, entry, "original")
    assert data["lightmap_id"] == entry.lightmap_id and data["truth"]["hours"] == list(component.hours)
    for hour in HOURS:  # "baked truth": the bake's atlas at that time, as float16
        k = data["truth"]["hours"].index(hour)
        stored = np.frombuffer(base64.b64decode(data["truth"]["frames"][k]), np.float16).reshape(256, 256, 4)
        np.testing.assert_array_equal(stored[..., :3], component.read(hour).astype(np.float16))
    scene = trimesh.load(str(bake_dir / "level.glb"), file_type="glb")
    assert len(data["meshes"]) == len(scene.geometry)
    assert sum(len(base64.b64decode(m["positions"])) // 36 for m in data["meshes"]) == \
        sum(len(g.faces) for g in scene.geometry.values())


def test_level_page_decodes_each_texel_as_the_runtime(level_run, browser, tmp_path, monkeypatch):  # noqa: F811
    """The page with its "baked truth" replaced by the numpy runtime's decode of the same field: the page's neural
    lighting is that decode, texel by texel (the truth path and the neural path of the page agree)."""
    bake_dir, ckpt, runtime = level_run

    times = HOURS + [BETWEEN]

    def decoded(_bake_dir, _lightmap_id, limit_bytes=0):
        frames = [runtime.decode(h) for h in times]
        return times, [np.concatenate([f, np.ones_like(f[..., :1])], axis=2).astype(np.float16) for f in frames]

    monkeypatch.setattr(level_export, "baked_truth", decoded)
    loaded = load_model(ckpt)
    level_export.write_level_page(loaded.field, bake_dir, tmp_path / "own", "fp32", run_network(ckpt, loaded.config))
    shown, frame_ms = frames(browser, tmp_path / "own", {"neural": times, "truth": times, "error": [13.0]})
    neural, truth = shown["neural"], shown["truth"]
    # between the hours: the network's blend of the field's frames, as the runtime (and airender render) decode it
    assert psnr8(neural[BETWEEN], truth[BETWEEN]) >= 50.0, psnr8(neural[BETWEEN], truth[BETWEEN])
    own_frame = runtime.model.decode(BETWEEN)
    assert np.abs(runtime.decode(BETWEEN) - own_frame).max() > 1e-3 * max(1.0, float(own_frame.max()))
    coverage = neural[HOURS[0]][..., 3] > 0
    assert 0.3 < coverage.mean() < 1.0  # the level from the default camera, with sky around it
    assert (neural[HOURS[0]][..., 3][coverage] == 255).all()
    for hour in HOURS:
        assert psnr8(neural[hour], truth[hour]) >= 50.0, (hour, psnr8(neural[hour], truth[hour]))
    assert psnr8(neural[9.0], neural[17.0]) < 30.0  # the hour changes the image
    assert np.abs(shown["error"][13.0][..., :3][coverage].astype(int)).mean() < 2.0  # no error: a black heat map
    assert frame_ms > 0


def test_level_export_refuses_bad_input(level_run, tmp_path):
    bake_dir, ckpt, _ = level_run
    with pytest.raises(InputError, match="--data_dir: --format level needs the bake"):
        export_main("--ckpt", str(ckpt), "--format", "level", "--out", str(tmp_path / "a"))
    with pytest.raises(InputError, match="not a bake"):
        export_main("--ckpt", str(ckpt), "--format", "level", "--data_dir", str(tmp_path), "--out",
                    str(tmp_path / "b"))
    (bake_dir / "level.glb").rename(bake_dir / "level.glb.away")
    try:
        with pytest.raises(InputError, match="level.glb: no such file"):
            export_main("--ckpt", str(ckpt), "--format", "level", "--data_dir", str(bake_dir), "--out",
                        str(tmp_path / "c"))
    finally:
        (bake_dir / "level.glb.away").rename(bake_dir / "level.glb")
    assert not any((tmp_path / name).exists() for name in "abc")


def test_level_page_of_a_tiled_run(level_run, browser, tmp_path, monkeypatch):  # noqa: F811
    """A tiled run (one field per 128^2 tile): each texel lit by its tile's field, as the tiled model decodes it."""
    bake_dir = level_run[0]
    config = apply_overrides(preset_config("hashgrid"), {
        "data": {"data_dir": str(bake_dir), "lightmap_id": "1", "tile_size": 128},
        "train": {"max_steps": 20, "epochs": 100, "progress": False, "val_every_steps": 20, "between_steps": 0}})
    config.out_dir = str(tmp_path / "tiled")
    fit_tiled(config, echo=lambda line: None)
    atlas = load_model(tmp_path / "tiled" / "last.ckpt").field
    assert len(atlas.tiles) == 4
    decoder = atlas.frame_decoder()

    def decoded(_bake_dir, _lightmap_id, limit_bytes=0):
        frame = decoder.decode(13.0).numpy()
        return [13.0], [np.concatenate([frame, np.ones_like(frame[..., :1])], axis=2).astype(np.float16)]

    monkeypatch.setattr(level_export, "baked_truth", decoded)
    assert export_main("--ckpt", str(tmp_path / "tiled" / "last.ckpt"), "--format", "level", "--data_dir",
                       str(bake_dir), "--out", str(tmp_path / "page")) == 0
    shown, _ = frames(browser, tmp_path / "page", {"neural": [13.0], "truth": [13.0]})
    assert (shown["neural"][13.0][..., 3] > 0).mean() > 0.3
    assert psnr8(shown["neural"][13.0], shown["truth"][13.0]) >= 50.0
