"""Presets smoke-train; cached decode, per-pixel queries, light switch, time blending, float16 storage."""
import numpy as np
import pytest
import torch

from airender.data import load_sequence
from airender.engine.trainer import Trainer
from airender.models.checkpoint import load_checkpoint, read_checkpoint
from airender.presets import PRESETS, apply_overrides, preset_config
from airender.render import FrameDecoder, frame_pixels, query_pixels
from airender.sizes import model_bytes
from tests.conftest import make_png_folder

SMOKE = {"train": {"epochs": 1, "samples_per_epoch": 512, "batch_size": 256, "progress": False,
                   "patches_per_batch": 2}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tod")
    make_png_folder(folder, [0, 3, 5, 6, 9, 12, 15, 18, 19, 21], height=40, width=48)
    return folder


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_smoke_trains(name, data_dir, tmp_path):
    config = apply_overrides(preset_config(name), SMOKE)
    config.data.data_dir, config.out_dir = str(data_dir), str(tmp_path / name)
    if config.train.patch_size:
        config.train.patch_size = 16
    result = Trainer(config, load_sequence(data_dir)).fit()
    assert result.steps == 2 and np.isfinite(result.best_metric)
    field = load_checkpoint(tmp_path / name / "best.ckpt").field
    frame = FrameDecoder(field).decode(7.5)
    assert frame.shape == (40, 48, 3) and torch.isfinite(frame).all()


REALTIME = {
    "hashgrid": {},
    "hashgrid3d": {"field": {"grid_dims": 3, "grid_levels": 6, "grid_log2_size": 10}},
    "film": {},
    "film_spline_switch_blend": {"field": {"time_encoding": "spline", "light_switch": [6.0, 18.0],
                                           "time_blend": True}},
    "hashgrid_switch": {"field": {"light_switch": [6.0, 18.0]}},
}


@pytest.mark.parametrize("variant", list(REALTIME))
def test_cached_decode_equals_uncached_and_queries(variant, data_dir, tmp_path):
    preset = "film" if variant.startswith("film") else "hashgrid"
    config = apply_overrides(apply_overrides(preset_config(preset), SMOKE), REALTIME[variant])
    config.data.data_dir, config.out_dir = str(data_dir), str(tmp_path / "run")
    config.train.epochs = 3
    trainer = Trainer(config, load_sequence(data_dir))
    trainer.fit()
    field = trainer.field.eval()
    pix, uv = frame_pixels(40, 48)
    decoder = FrameDecoder(field, chunk_pixels=500)
    for hour in (0.0, 5.9, 6.0, 13.25, 18.1):
        frame = decoder.decode(hour)
        with torch.enable_grad():  # the training path, not the folded inference path
            uncached = field.transform.to_display(field(uv, torch.full((pix.numel(),), hour), pix)).reshape(40, 48, 3)
        assert torch.allclose(frame, uncached.detach(), atol=1e-4), (variant, hour)
        y, x = torch.randint(40, (64,)), torch.randint(48, (64,))
        queried = query_pixels(field, y, x, torch.full((64,), hour))
        assert torch.allclose(queried, frame[y, x], atol=1e-3)


def test_light_switch_semantics(data_dir, tmp_path):
    config = apply_overrides(apply_overrides(preset_config("hashgrid"), SMOKE),
                             {"field": {"light_switch": [6.0, 18.0]}})
    config.data.data_dir, config.out_dir = str(data_dir), str(tmp_path / "run")
    trainer = Trainer(config, load_sequence(data_dir))
    gate = trainer.field.lamp.lights_on(torch.tensor([5.9, 6.0, 12.0, 18.0, 18.1, 0.0, 23.5, 29.9, -0.5]))
    assert gate.tolist() == [1, 0, 0, 0, 1, 1, 1, 1, 1]
    # the lamp prior's target: the darkest lights-on frame less an ambient that follows the exposure
    # (a fraction of the mean linear radiance of the lights-off frames), in linear light
    seq = load_sequence(data_dir)
    srgb = seq.frames.double().reshape(seq.num_frames, -1, 3)
    linear = torch.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    off = torch.tensor([6 <= t <= 18 for t in seq.time_list()])
    ambient = config.loss.lamp_prior_floor * float(linear[off].mean())
    expected = (linear[~off].amin(dim=0) - ambient).clamp_min(0)
    assert ambient > 0 and bool((expected > 0).any())
    assert torch.allclose(trainer.field.lamp.prior_target.double(), expected, atol=1e-5)
    trainer.fit()
    field = trainer.field.eval()
    cache = field.prepare(*reversed(frame_pixels(40, 48)))
    assert field.term_names == ("lamp",)
    lamp = cache.terms[0]
    assert bool((lamp >= 0).all())
    with torch.no_grad():  # lights on adds the lamp image in linear light on top of the same base
        on = field.decode(cache, 5.9)
        field.lamp.off = 5.8
        off = field.decode(cache, 5.9)
        field.lamp.off = 6.0
    linear = field.transform.to_linear
    assert torch.allclose(linear(on), linear(off) + lamp, atol=1e-4)


def test_time_blend_interpolates_between_training_hours(data_dir, tmp_path):
    config = apply_overrides(apply_overrides(preset_config("hashgrid"), SMOKE), {"field": {"time_blend": True}})
    config.data.data_dir, config.out_dir = str(data_dir), str(tmp_path / "run")
    trainer = Trainer(config, load_sequence(data_dir))
    trainer.fit()
    decoder = FrameDecoder(trainer.field.eval())
    d9, d12 = decoder.decode_train_space(9.0), decoder.decode_train_space(12.0)
    assert torch.allclose(decoder.decode_train_space(10.0), d9 + (d12 - d9) / 3, atol=1e-5)
    d21, d0 = decoder.decode_train_space(21.0), decoder.decode_train_space(0.0)
    assert torch.allclose(decoder.decode_train_space(22.5), (d21 + d0) / 2, atol=1e-5)  # across midnight


def test_float16_storage_halves_bytes_and_resumes_exactly(data_dir, tmp_path):
    config = apply_overrides(preset_config("hashgrid"), SMOKE)
    config.data.data_dir, config.out_dir = str(data_dir), str(tmp_path / "run")
    trainer = Trainer(config, load_sequence(data_dir))
    trainer.fit()
    ckpt = read_checkpoint(tmp_path / "run" / "last.ckpt")
    assert ckpt["model"]["xy_encoding.table"].dtype == torch.float16
    assert ckpt["train_state"]["model_full"]["xy_encoding.table"].dtype == torch.float32
    loaded = load_checkpoint(tmp_path / "run" / "last.ckpt").field
    params = sum(p.numel() for p in loaded.parameters())
    assert model_bytes(loaded) == 2 * params
    full = apply_overrides(config, {"field": {"store_dtype": "float32"}})
    assert model_bytes(Trainer(full, load_sequence(data_dir)).field) == 4 * params


@pytest.mark.parametrize("name", ["hashgrid", "film", "quality"])
def test_training_is_deterministic_on_cpu(name, data_dir, tmp_path):
    def weights(run):
        config = apply_overrides(preset_config(name), SMOKE)
        config.field.light_switch = [6.0, 18.0]
        config.train.batch_size = config.train.samples_per_epoch = 8192  # large enough for threaded reductions
        config.data.data_dir, config.out_dir = str(data_dir), str(tmp_path / run)
        trainer = Trainer(config, load_sequence(data_dir))
        trainer.fit()
        return [p.detach().clone() for p in trainer.field.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(weights("a"), weights("b")))
