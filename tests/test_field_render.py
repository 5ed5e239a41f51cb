"""Residual exactness, periodic time, checkpoint round trip, cached decode and per-pixel queries."""
import numpy as np
import pytest
import torch

from airender.cli import main
from airender.config import ExperimentConfig
from airender.data import load_sequence
from airender.data.readers import read_image
from airender.models.checkpoint import load_checkpoint
from airender.engine.trainer import Trainer
from airender.render import FrameDecoder, frame_pixels, query_pixels
from tests.conftest import make_png_folder


def tiny_config(tmp_path, **field) -> ExperimentConfig:
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    config.train.epochs = 2
    config.train.samples_per_epoch = 512
    config.train.batch_size = 256
    config.train.progress = False
    config.field.hidden = 16
    config.field.layers = 2
    for key, value in field.items():
        setattr(config.field, key, value)
    return config


@pytest.fixture()
def trained(tmp_path):
    make_png_folder(tmp_path / "data", [0, 6, 12, 18])
    config = tiny_config(tmp_path, xy_include_input=True)
    trainer = Trainer(config, load_sequence(tmp_path / "data"))
    trainer.fit()
    return trainer, tmp_path


def test_residual_baseline_is_exact_at_full_precision(trained):
    trainer, tmp_path = trained
    loaded = load_checkpoint(tmp_path / "run" / "best.ckpt")
    frame = load_sequence(tmp_path / "data").frames[2]  # hour 12, float32 from the 8-bit PNG
    assert torch.equal(loaded.field.baseline, frame)  # stored bit-exact, not re-quantised
    field = loaded.field
    with torch.no_grad():  # a zero delta decodes every hour to the baseline exactly
        field.mlp.output_layer.weight.zero_()
        field.mlp.output_layer.bias.zero_()
    decoder = FrameDecoder(field)
    for hour in (12.0, 3.5, 18.0):
        assert torch.equal(decoder.decode(hour), frame)


def test_periodic_time(trained):
    trainer, _ = trained
    field = trainer.field.eval()
    pix, uv = frame_pixels(6, 8)
    for hour in (0.0, 5.9, 18.1, 23.75):
        ref = field(uv, torch.full((48,), hour), pix)
        for shift in (24.0, -24.0, 48.0):
            assert torch.allclose(field(uv, torch.full((48,), hour + shift), pix), ref, atol=1e-5)
    decoder = FrameDecoder(field)
    assert torch.allclose(decoder.decode(24.0), decoder.decode(0.0), atol=1e-6)
    assert torch.isfinite(decoder.decode(7.3)).all()


def test_checkpoint_round_trip_render_equals_memory(trained):
    trainer, tmp_path = trained
    trainer.save_checkpoint(tmp_path / "now.ckpt", with_train_state=False)
    in_memory = FrameDecoder(trainer.field.eval()).decode(9.5)
    out = tmp_path / "r.png"
    assert main(["render", "--ckpt", str(tmp_path / "now.ckpt"), "--time", "9.5", "--out", str(out),
                 "--device", "cpu"]) == 0
    rendered, _ = read_image(out)
    assert np.array_equal(rendered, np.round(in_memory.numpy() * 255) / 255)
    loaded = load_checkpoint(tmp_path / "now.ckpt")
    assert loaded.config.field == trainer.config.field and loaded.desc == trainer.desc
    assert torch.equal(FrameDecoder(loaded.field).decode(9.5), in_memory)


def test_unreadable_checkpoint_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"garbage")
    assert main(["render", "--ckpt", str(bad), "--time", "3", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "bad.ckpt: not a readable airender checkpoint" in err and not (tmp_path / "x.png").exists()
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.ckpt")
    assert main(["render", "--ckpt", str(tmp_path / "other.ckpt"), "--time", "3", "--out", str(tmp_path / "x.png")]) == 2
    assert "not an airender checkpoint" in capsys.readouterr().err


def test_cached_decode_equals_uncached_and_queries_equal_frame(trained):
    trainer, _ = trained
    field = trainer.field.eval()
    pix, uv = frame_pixels(6, 8)
    decoder = FrameDecoder(field, chunk_pixels=7)  # several chunks
    for hour in (2.0, 12.0, 17.25):
        frame = decoder.decode(hour)
        uncached = field.transform.to_display(field(uv, torch.full((48,), hour), pix)).reshape(6, 8, 3)
        assert torch.allclose(frame, uncached, atol=1e-6)
        y, x = torch.tensor([0, 5, 3, 2]), torch.tensor([0, 7, 4, 1])
        queried = query_pixels(field, y, x, torch.full((4,), hour))
        assert torch.allclose(queried, frame[y, x], atol=1e-6)
    # each query may have its own time
    mixed = query_pixels(field, torch.tensor([1, 1]), torch.tensor([2, 2]), torch.tensor([3.0, 15.0]))
    assert torch.allclose(mixed[0], decoder.decode(3.0)[1, 2], atol=1e-6)
    assert torch.allclose(mixed[1], decoder.decode(15.0)[1, 2], atol=1e-6)


def test_render_other_resolution(trained):
    trainer, _ = trained
    frame = FrameDecoder(trainer.field.eval(), height=12, width=16).decode(6.0)
    assert frame.shape == (12, 16, 3) and torch.isfinite(frame).all()


def test_rgb_mode_needs_no_baseline(tmp_path):
    make_png_folder(tmp_path / "data", [0, 12])
    config = tiny_config(tmp_path, residual_mode=False)
    trainer = Trainer(config, load_sequence(tmp_path / "data"))
    assert trainer.field.baseline is None
    trainer.fit()
    loaded = load_checkpoint(tmp_path / "run" / "last.ckpt")
    assert "baseline" not in loaded.raw["model"]


def test_atomic_writes_replace_and_keep_permissions(tmp_path):
    import os
    import stat

    from airender.fileio import atomic_path, write_text_atomic

    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    write_text_atomic(target, "new")
    mask = os.umask(0)
    os.umask(mask)
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
