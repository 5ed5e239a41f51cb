"""The sun term (--sun_path): the sun path given and learned, the sun-path file, the field with the term."""
import json
from datetime import date

import numpy as np
import pytest
import torch

from airender.assembly import build_field
from airender.cli import main
from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.data.description import DataDescription
from airender.data.sun_table import read_sun_table
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.models.checkpoint import load_checkpoint
from airender.nn.sun_path import SunPath
from airender.render import FrameDecoder, frame_pixels
from airender.runtime.onnx_decoder import OnnxDecoder
from airender.solar import Site, sun_position
from tests.conftest import REPO, make_png_folder, run_cli

COURTYARD_SITE = {"latitude": 31.2, "longitude": 121.5, "timezone": 8, "year": 2024, "month": 6, "day": 21}


def angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle between unit vectors in degrees (atan2 form: exact near 0, unlike acos in float32)."""
    return torch.rad2deg(torch.atan2(torch.linalg.cross(a, b).norm(dim=-1), (a * b).sum(dim=-1)))


def assert_periodic_and_smooth(path: SunPath) -> None:
    hours = torch.linspace(0.0, 24.0, 24 * 60 + 1)  # every minute, both ends of the day included
    with torch.no_grad():
        directions = path(hours)
    assert torch.allclose(directions.norm(dim=1), torch.ones(len(hours)), atol=1e-5)
    assert float(angle_deg(directions[0], directions[-1])) < 1e-2  # 24:00 is 0:00
    steps = angle_deg(directions[1:], directions[:-1])  # degrees per minute
    assert float(steps.max()) < 0.6  # the sun moves 0.25 degrees a minute; no jumps anywhere
    # smooth: the motion changes little from one minute to the next
    assert float((steps[1:] - steps[:-1]).abs().max()) < 0.02


def test_given_sun_path_is_periodic_smooth_and_matches_noaa(tmp_path):
    file = tmp_path / "meta.json"
    file.write_text(json.dumps({"location": COURTYARD_SITE}))
    path = SunPath(read_sun_table(file))
    assert not path.learned and not any(p.requires_grad for p in path.parameters())
    assert_periodic_and_smooth(path)
    site = Site(31.2, 121.5, 8.0, date(2024, 6, 21))
    hours = [5.9, 7.5, 10.25, 12.0, 13.5, 16.75, 18.1]
    truth = torch.tensor([sun_position(site, h).direction for h in hours], dtype=torch.float32)
    with torch.no_grad():
        fitted = path(torch.tensor(hours))
    assert float(angle_deg(fitted, truth).max()) < 0.2
    elevations = torch.rad2deg(SunPath.elevation(fitted))
    assert [round(float(e)) for e in elevations] == [round(sun_position(site, h).elevation_deg) for h in hours]


def test_baker_meta_gives_the_same_path_as_its_table():
    meta = REPO / "airender" / "sample_data" / "atlas" / "meta.json"
    table = read_sun_table(meta)
    assert len(table) == len(json.loads(meta.read_text())["sun"])
    path = SunPath(table)
    assert_periodic_and_smooth(path)
    hours = torch.tensor(list(table))
    with torch.no_grad():
        assert float(angle_deg(path(hours), torch.tensor(list(table.values()))).max()) < 0.2


def test_sample_scene_meta_gives_its_place_and_day():
    table = read_sun_table(REPO / "airender" / "sample_data" / "plaza" / "meta.json")  # "date" beside "location"
    site = Site(45.4, 12.3, 1.0, date(2024, 6, 21))
    assert len(table) == 48
    assert float(angle_deg(torch.tensor(table[12.0]), torch.tensor(sun_position(site, 12.0).direction))) < 1e-3


def test_learned_sun_path_is_periodic_and_smooth_for_any_coefficients():
    torch.manual_seed(0)
    path = SunPath(None)
    assert path.learned
    assert_periodic_and_smooth(path)
    with torch.no_grad():  # a daylight path at the start: up at noon, down at midnight
        noon, midnight = SunPath.elevation(path(torch.tensor([12.0, 0.0])))
    assert noon > 0.5 and midnight < 0.0
    with torch.no_grad():  # what training may make of it: still periodic and smooth
        path.coefficients.add_(0.3 * torch.randn_like(path.coefficients))
    assert_periodic_and_smooth(path)
    loss = SunPath.elevation(path(torch.tensor([9.0, 15.0]))).sum()
    loss.backward()
    assert path.coefficients.grad is not None and float(path.coefficients.grad.abs().sum()) > 0


@pytest.mark.parametrize("text, problem", [
    (None, "no such file"),
    ("{not json", "not a JSON file"),
    ('{"sun": {"7": [0, 0, 1], "8": [0, 1, 1]}}', "3 or more times"),
    ('{"sun": {"7": [0, 0]}}', "not three numbers"),
    ('{"sun": {"noon": [0, 0, 1]}}', "is not an hour"),
    ('{"location": {"latitude": 31.2}}', "needs latitude, longitude"),
])
def test_bad_sun_path_files_are_named(tmp_path, text, problem):
    file = tmp_path / "sun.json"
    if text is not None:
        file.write_text(text)
    with pytest.raises(InputError) as error:
        read_sun_table(file)
    assert str(file) in str(error.value) and problem in str(error.value)


def tiny_desc(**extra) -> DataDescription:
    return DataDescription(height=6, width=8, is_hdr=False, transform="identity",
                           times=[float(h) for h in range(0, 24, 2)], baseline_time=12.0, **extra)


@pytest.mark.parametrize("light_switch", [[], [6.0, 18.0]])
def test_field_with_the_sun_term_switched_off_equals_the_field_without(light_switch):
    config = ExperimentConfig().field
    config.encoding, config.residual_mode, config.film, config.activation = "hashgrid", False, True, "relu"
    config.grid_levels, config.grid_log2_size, config.hidden, config.layers = 4, 8, 16, 2
    config.time_blend, config.light_switch = True, light_switch
    torch.manual_seed(0)
    plain = build_field(config, tiny_desc())
    with_sun = build_field(ExperimentConfig.from_dict({"field": {**config.__dict__, "sun_path": "learn"}}).field,
                           tiny_desc())
    missing, unexpected = with_sun.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(name.startswith("sun.") for name in missing)
    with torch.no_grad():  # the term off: no response to the sun anywhere
        with_sun.sun.response[-1].bias.zero_()
    pix, uv = frame_pixels(6, 8)
    for t in (3.0, 7.5, 12.0, 13.25, 20.0):
        hours = torch.full((len(pix),), t)
        with torch.no_grad():
            parts: dict = {}
            out = with_sun(uv, hours, pix, parts)
            assert torch.equal(parts["sun"], torch.zeros_like(parts["sun"]))
            assert torch.allclose(out, plain(uv, hours, pix), atol=1e-6, rtol=0)
        cached = FrameDecoder(with_sun.eval()).decode_train_space(t).reshape(-1, 3)
        assert torch.allclose(cached, FrameDecoder(plain.eval()).decode_train_space(t).reshape(-1, 3), atol=1e-6)
        with_sun.train(), plain.train()


def test_sun_field_trains_decodes_and_keeps_its_path_in_the_checkpoint(tmp_path):
    make_png_folder(tmp_path / "data", [float(h) for h in range(0, 24, 3)])
    sun_file = tmp_path / "meta.json"
    sun_file.write_text(json.dumps({"location": COURTYARD_SITE}))
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    config.train.epochs, config.train.samples_per_epoch, config.train.batch_size = 2, 512, 256
    config.train.progress = False
    config.field.hidden, config.field.layers, config.field.xy_include_input = 16, 2, True
    config.field.sun_path = str(sun_file)
    trainer = Trainer(config, load_sequence(tmp_path / "data"))
    trainer.fit()
    sun_file.unlink()  # the checkpoint alone rebuilds the model
    loaded = load_checkpoint(tmp_path / "run" / "last.ckpt").field
    hours = torch.tensor([7.5, 13.25])
    assert torch.equal(loaded.sun.path.coefficients, trainer.field.sun.path.coefficients)
    with torch.no_grad():
        assert torch.allclose(loaded.sun.path(hours), trainer.field.sun.path(hours))
    decoder = FrameDecoder(loaded)
    pix, uv = frame_pixels(6, 8)
    with torch.no_grad():
        direct = loaded(uv, torch.full((len(pix),), 13.25), pix)
    assert torch.allclose(decoder.decode_train_space(13.25).reshape(-1, 3), direct, atol=1e-5)
    assert bool(torch.isfinite(decoder.decode(13.25)).all())
    make_png_folder(tmp_path / "extra", [10.5], seed=1)  # a daylight frame between two trained hours
    assert main(["eval", "--ckpt", str(tmp_path / "run" / "last.ckpt"), "--data_dir", str(tmp_path / "data"),
                 "--extra", str(tmp_path / "extra"), "--out_dir", str(tmp_path / "eval")]) == 0
    from PIL import Image

    sheet = Image.open(tmp_path / "eval" / "sun_term.png")
    assert sheet.width > 400 and sheet.height > 100


def test_bad_sun_path_stops_training_with_one_line_and_no_run(tmp_path):
    make_png_folder(tmp_path / "data", [0, 6, 12, 18])
    result = run_cli("train", "--data_dir", str(tmp_path / "data"), "--out_dir", str(tmp_path / "run"),
                     "--sun_path", str(tmp_path / "nowhere.json"), "--max_steps", "2")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "nowhere.json: no such file" in result.stderr
    assert not (tmp_path / "run").exists()


def test_sun_field_exports_to_every_format(tmp_path, capsys):
    make_png_folder(tmp_path / "data", [float(h) for h in range(0, 24, 3)])
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    config.train.epochs, config.train.samples_per_epoch, config.train.batch_size = 2, 512, 256
    config.train.progress = False
    config.field.encoding, config.field.residual_mode, config.field.film = "hashgrid", False, True
    config.field.activation, config.field.grid_levels, config.field.grid_log2_size = "relu", 4, 8
    config.field.hidden, config.field.layers, config.field.time_blend = 16, 2, True
    config.field.light_switch, config.field.sun_path = [6.0, 18.0], "learn"
    trainer = Trainer(config, load_sequence(tmp_path / "data"))
    trainer.fit()
    ckpt = tmp_path / "run" / "last.ckpt"
    assert main(["export", "--ckpt", str(ckpt), "--format", "pack", "--out", str(tmp_path / "model.airpack")]) == 0
    from airender.runtime import load

    model = load(tmp_path / "model.airpack")
    decoder = FrameDecoder(load_checkpoint(ckpt).field)
    for t in (5.5, 7.25, 12.0, 16.75, 19.5):
        expected = decoder.decode(t).numpy()
        assert np.abs(model.decode(t) - expected).max() < 2e-5
    ys, xs = np.array([0, 3, 5, 2]), np.array([0, 7, 1, 4])
    hours = np.array([7.25, 7.25, 13.5, 20.0], np.float32)
    queried = model.query(ys, xs, hours)
    for k in range(4):
        assert np.abs(queried[k] - model.decode(float(hours[k]))[ys[k], xs[k]]).max() < 1e-5
    capsys.readouterr()
    assert main(["export", "--ckpt", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "model.onnx")]) == 0
    onnx_decoder = OnnxDecoder(tmp_path / "model.onnx", threads=1)
    for t in (5.5, 7.25, 12.0, 19.5):
        assert np.abs(onnx_decoder.decode(t) - decoder.decode(t).numpy()).max() < 1e-4
    for fmt, out in (("glsl", "glsl"), ("wgsl", "wgsl")):  # decoded in Chromium by tests/export (test_web, test_wgsl)
        assert main(["export", "--ckpt", str(ckpt), "--format", fmt, "--out", str(tmp_path / out)]) == 0
        assert "SUN_PATH" in "".join(p.read_text() for p in (tmp_path / out).glob("field.*"))


def test_with_components_the_sun_term_is_the_directional_source(tmp_path):
    from tests.test_components import HASH_SWITCH
    from tests.test_components import tiny_config as components_config
    from tests.test_components import write_split_dataset

    data = write_split_dataset(tmp_path / "vt")
    overrides = {k: v for k, v in HASH_SWITCH.items() if k != "field__light_switch"}
    config = components_config(tmp_path / "run", data, field__components=True, field__sun_path="learn", **overrides)
    trainer = Trainer(config, load_sequence(data, components=True))
    trainer.fit()
    field = trainer.field.eval()
    decoder = FrameDecoder(field)
    directional = field.sources.index("directional")
    for t in (9.5, 13.0):
        sources = decoder.decode_sources(t)  # [H, W, S, 3] display values
        sun = torch.cat([field.sun.light(cache.terms[field.term_names.index("sun")], torch.full((1,), t))
                         for cache in decoder.caches])
        expected = field.transform.to_display(field.transform.from_linear(sun)).reshape(sources[:, :, 0].shape)
        assert torch.allclose(sources[:, :, directional], expected, atol=1e-5)
    config.field.residual_mode = True  # a residual field keeps a baseline per source: refused with one line
    with pytest.raises(InputError, match="--residual_mode False"):
        Trainer(config, load_sequence(data, components=True))
