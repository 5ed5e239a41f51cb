"""Trainer boundary: loss assembly, patches, masks, encoder, NaN guard, resume, validation, callbacks."""
import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from airender.config import ExperimentConfig, LossConfig
from airender.data import load_sequence
from airender.data.samplers import PatchSampler, PixelBatch
from airender.data.sequence import ValueTransform
from airender.models.checkpoint import load_checkpoint, read_checkpoint
from airender.engine.trainer import Trainer
from airender.errors import InputError
from airender.losses import LossAssembler, mse_loss, perceptual_view
from airender.nn.baseline_encoder import BaselineEncoder
from tests.conftest import REPO, make_png_folder, write_png


def small_config(tmp_path, data_dir, **overrides) -> ExperimentConfig:
    config = ExperimentConfig(out_dir=str(tmp_path / "run"))
    config.data.data_dir = str(data_dir)
    config.field.hidden, config.field.layers = 16, 2
    config.train.epochs, config.train.samples_per_epoch, config.train.batch_size = 3, 1024, 256
    config.train.progress = False
    for key, value in overrides.items():
        section, name = key.split("__")
        setattr(getattr(config, section), name, value)
    return config


@pytest.fixture()
def data_dir(tmp_path):
    make_png_folder(tmp_path / "data", [0, 3, 6, 9, 12, 15, 18, 21], height=24, width=32)
    return tmp_path / "data"


def test_patch_gather_matches_slicing():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(3, 20, 30, 3, generator=g)
    sampler = PatchSampler(frames, torch.tensor([1.0, 2.0, 3.0]), None, torch.tensor([0, 2]), patch_size=5)
    batch = sampler.sample(7, torch.Generator().manual_seed(1))
    assert batch.num_patches == 7 and batch.patch_texels == 7 * 25 and batch.target.shape == (175, 3)
    patches = batch.target.reshape(7, 5, 5, 3)
    frame = batch.frame_index.reshape(7, 25)
    for i in range(7):
        y0, x0 = divmod(int(batch.pix[i * 25]), 30)
        assert int(frame[i, 0]) in (0, 2) and bool((frame[i] == frame[i, 0]).all())
        assert torch.equal(patches[i], frames[int(frame[i, 0]), y0:y0 + 5, x0:x0 + 5])
        assert torch.allclose(batch.t[i * 25], torch.tensor([1.0, 2.0, 3.0])[frame[i, 0]])
    uv = batch.uv.reshape(7, 5, 5, 2)
    assert torch.allclose(uv[0, 0, 1, 0] - uv[0, 0, 0, 0], torch.tensor(1 / 30))  # row-major inside a patch


def test_patch_mask_is_honoured():
    frames = torch.rand(2, 12, 12, 3)
    mask = torch.zeros(12, 12, dtype=torch.bool)
    mask[:, 6:] = True  # right half valid
    sampler = PatchSampler(frames, torch.tensor([0.0, 12.0]), mask, torch.tensor([0, 1]), patch_size=4)
    batch = sampler.sample(200, torch.Generator().manual_seed(0))
    x = batch.pix % 12
    assert int(x.min()) >= 4  # every patch is at least half valid: it starts at x >= 4
    assert torch.equal(batch.valid, mask.reshape(-1)[batch.pix])
    with pytest.raises(ValueError, match="no 8x8 patch"):
        PatchSampler(frames, torch.tensor([0.0, 12.0]), mask & (torch.arange(12)[:, None] < 3),
                     torch.tensor([0, 1]), patch_size=8)
    # invalid texels never enter the MSE
    pred, target = torch.zeros(4, 3), torch.ones(4, 3)
    target[1] = 100.0
    assert float(mse_loss(pred, target, torch.tensor([True, False, True, True]))) == 1.0


def test_loss_assembly_weights_and_ramp():
    transform = ValueTransform("identity")
    g = torch.Generator().manual_seed(0)
    n_tex, p = 10, 8
    target = torch.rand(n_tex + 2 * p * p, 3, generator=g)
    pred = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    batch = PixelBatch(frame_index=torch.zeros(len(target), dtype=torch.long), pix=torch.zeros(len(target), dtype=torch.long),
                       uv=torch.zeros(len(target), 2), t=torch.zeros(len(target)), target=target, patch_size=p,
                       num_patches=2)
    base = LossAssembler(LossConfig(loss_l2_w=1.0, loss_ssim_w=0.2, perceptual_start=0.0, perceptual_ramp=0.0),
                         transform, p)(pred, batch, 0)
    double = LossAssembler(LossConfig(loss_l2_w=2.0, loss_ssim_w=0.4, perceptual_start=0.0, perceptual_ramp=0.0),
                           transform, p)(pred, batch, 0)
    assert set(base) == {"mse", "ssim"}
    assert torch.allclose(double["mse"], 2 * base["mse"]) and torch.allclose(double["ssim"], 2 * base["ssim"])
    assert torch.allclose(base["mse"], mse_loss(pred[:n_tex], target[:n_tex]))  # patch texels stay out of MSE
    ramped = LossAssembler(LossConfig(loss_ssim_w=0.2, perceptual_start=0.5, perceptual_ramp=0.25), transform, p,
                           total_steps=100)
    assert "ssim" not in ramped(pred, batch, 40)
    assert torch.allclose(ramped(pred, batch, 60)["ssim"], 0.4 * base["ssim"])
    assert torch.allclose(ramped(pred, batch, 90)["ssim"], base["ssim"])
    no_patch = PixelBatch(batch.frame_index, batch.pix, batch.uv, batch.t, target)
    assert set(LossAssembler(LossConfig(), transform)(pred, no_patch, 0)) == {"mse"}  # flags off: MSE only


def test_hdr_perceptual_view_is_bounded():
    linear = torch.tensor([0.0, 0.5, 4.0, 1000.0])
    view = perceptual_view(torch.log1p(linear), ValueTransform("log1p"))
    assert float(view.min()) >= 0 and float(view.max()) < 1 and bool((view[1:] > view[:-1]).all())


def test_lpips_loss_without_weights_is_a_clear_error(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "nohub"))
    monkeypatch.delenv("AIRENDER_LPIPS_WEIGHTS", raising=False)
    config = small_config(tmp_path, data_dir, train__patch_size=8, loss__loss_lpips_w=0.1, loss__lpips_freq=2)
    with pytest.raises(InputError, match="needs LPIPS weights"):
        Trainer(config, load_sequence(data_dir))
    config = small_config(tmp_path, data_dir, train__patch_size=8, loss__loss_lpips_w=0.1)
    with pytest.raises(InputError, match="--lpips_freq"):
        Trainer(config, load_sequence(data_dir))
    assert not (tmp_path / "run").exists()


def test_lpips_loss_trains(tmp_path, lpips_weights):
    data_dir = tmp_path / "big"
    make_png_folder(data_dir, [0, 12], height=40, width=48)
    config = small_config(tmp_path, data_dir, train__patch_size=8, loss__loss_lpips_w=0.1, loss__lpips_freq=2,
                          loss__lpips_weights=str(lpips_weights), loss__perceptual_start=0.0,
                          train__val_metrics=["psnr", "lpips"], train__val_downsample=1)
    trainer = Trainer(config, load_sequence(data_dir))
    trainer.fit()
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert all("loss/lpips" in entry for entry in log) and all(0 < entry["val/lpips"] < 1 for entry in log)


def test_encoder_samples_feature_map_at_pixel_centres():
    torch.manual_seed(0)
    encoder = BaselineEncoder(channels=6, downsample=1)
    image = torch.rand(1, 3, 9, 13)
    features = encoder(image)
    assert features.shape == (1, 6, 9, 13)
    ys, xs = torch.meshgrid(torch.arange(9), torch.arange(13), indexing="ij")
    uv = torch.stack(((xs.reshape(-1) + 0.5) / 13, (ys.reshape(-1) + 0.5) / 9), dim=1)
    sampled = BaselineEncoder.sample(features, uv)
    assert torch.allclose(sampled, features[0].reshape(6, -1).T, atol=1e-6)
    half = BaselineEncoder(channels=6, downsample=2)(image)
    assert half.shape == (1, 6, 5, 7)


def test_encoder_field_trains_and_caches(data_dir, tmp_path):
    from airender.render import FrameDecoder, query_pixels

    config = small_config(tmp_path, data_dir, field__use_baseline_encoder=True, field__be_channels=8,
                          field__be_downsample=2)
    trainer = Trainer(config, load_sequence(data_dir))
    trainer.fit()
    field = load_checkpoint(tmp_path / "run" / "best.ckpt").field
    assert field.encoder is not None and field.static_dim == 8 + field.xy_encoding.out_dim
    frame = FrameDecoder(field).decode(7.5)
    y, x = torch.tensor([0, 23, 11]), torch.tensor([0, 31, 17])
    assert torch.allclose(query_pixels(field, y, x, torch.full((3,), 7.5)), frame[y, x], atol=1e-5)


def _final_weights(config, sequence):
    trainer = Trainer(config, sequence)
    trainer.fit()
    return trainer, [p.detach().clone() for p in trainer.field.parameters()]


def test_flags_off_reproduce_the_core_pipeline(courtyard, tmp_path):
    """Defaults == every new flag spelled out as off, bit for bit; and the numbers of the core pipeline."""
    sequence = load_sequence(courtyard / "png")
    config = small_config(tmp_path, courtyard / "png")
    config.field.hidden, config.field.layers, config.field.xy_include_input = 64, 6, True
    config.train.epochs, config.train.samples_per_epoch, config.train.batch_size = 3, 30000, 8192
    trainer, default = _final_weights(config, sequence)
    explicit = small_config(tmp_path, courtyard / "png", train__patch_size=0, field__use_baseline_encoder=False,
                            loss__loss_lpips_w=0.0, loss__lpips_freq=0, train__lr_schedule="cosine",
                            train__early_stop_patience=0)
    explicit.field, explicit.train.epochs, explicit.train.samples_per_epoch = config.field, 3, 30000
    explicit.train.batch_size, explicit.out_dir = 8192, str(tmp_path / "run2")
    _, off = _final_weights(explicit, sequence)
    assert all(torch.equal(a, b) for a, b in zip(default, off))
    # Values of this exact run measured with the core pipeline before the trainer boundary existed.
    assert float(sum(p.double().sum() for p in default)) == pytest.approx(2.945124425339145, abs=2e-4)
    assert trainer.best.best == pytest.approx(13.461249524, abs=2e-3)


def test_injected_nan_is_survived(data_dir, tmp_path, capsys):
    config = small_config(tmp_path, data_dir)
    trainer = Trainer(config, load_sequence(data_dir))
    trainer.inject_nan_at_steps = {2, 7}
    result = trainer.fit()
    assert result.nan_events == 2 and result.steps == trainer.total_steps
    assert "not finite; skipped the step" in capsys.readouterr().out
    assert trainer.lr_scale == 0.25
    for name in ("best.ckpt", "last.ckpt"):
        state = read_checkpoint(tmp_path / "run" / name)["model"]
        assert all(bool(torch.isfinite(v).all()) for v in state.values())


def test_nan_weights_are_never_checkpointed(data_dir, tmp_path, capsys):
    trainer = Trainer(small_config(tmp_path, data_dir), load_sequence(data_dir))
    with torch.no_grad():
        next(trainer.field.parameters()).fill_(float("nan"))
    trainer.save_checkpoint(tmp_path / "nan.ckpt", with_train_state=False)
    assert not (tmp_path / "nan.ckpt").exists() and "non-finite" in capsys.readouterr().out


def test_killed_run_resumes_to_the_same_result(data_dir, tmp_path):
    flags = ["--data_dir", str(data_dir), "--hidden", "16", "--layers", "2", "--batch_size", "128",
             "--samples_per_epoch", "512", "--epochs", "150", "--progress", "False"]
    straight = tmp_path / "straight"
    done = subprocess.run([sys.executable, "-m", "airender.cli", "train", *flags, "--out_dir", str(straight)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "airender.cli", "train", *flags, "--out_dir", str(killed)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "last.ckpt").exists():
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step_at_kill = read_checkpoint(killed / "last.ckpt")["train_state"]["step"]
    assert 0 < step_at_kill < 600, "the run was not interrupted mid-way"
    resumed = subprocess.run([sys.executable, "-m", "airender.cli", "train", *flags, "--out_dir", str(killed),
                              "--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {killed / 'last.ckpt'} at step" in resumed.stdout
    a, b = read_checkpoint(straight / "last.ckpt"), read_checkpoint(killed / "last.ckpt")
    assert a["train_state"]["step"] == b["train_state"]["step"] == 600
    for key in a["model"]:
        assert torch.allclose(a["model"][key], b["model"][key], atol=1e-6), key
    best_a = read_checkpoint(straight / "best.ckpt")["model"]
    best_b = read_checkpoint(killed / "best.ckpt")["model"]
    assert all(torch.allclose(best_a[k], best_b[k], atol=1e-6) for k in best_a)


def test_validation_groups_per_hour_and_callbacks(data_dir, tmp_path):
    extra = tmp_path / "extra"
    make_png_folder(extra, [4.5, 13.25], height=24, width=32, seed=5)
    config = small_config(tmp_path, data_dir, data__holdout_hours=[9.0], train__val_hours=[0.0, 12.0],
                          train__val_extra_dir=str(extra), train__val_metrics=["psnr", "ssim", "flip"],
                          train__val_downsample=2, train__monitor="extra/psnr", train__tensorboard=True,
                          train__epochs=4)
    trainer = Trainer(config, load_sequence(data_dir))
    assert 9.0 not in trainer.desc.train_times
    trainer.fit()
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    last = log[-1]
    assert set(last["val/hours/per_hour"]) == {"0.0", "12.0"}
    assert set(last["val/holdout/per_hour"]) == {"9.0"} and set(last["val/extra/per_hour"]) == {"4.5", "13.25"}
    assert {"psnr", "ssim", "flip"} <= set(last["val/extra/per_hour"]["4.5"])
    assert trainer.best.best == max(entry["val/extra/psnr"] for entry in log)
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "run" / "tb").iterdir())


def test_early_stop_and_plateau(data_dir, tmp_path):
    config = small_config(tmp_path, data_dir, train__lr=0.0, train__epochs=50, train__early_stop_patience=3,
                          train__lr_schedule="plateau", train__plateau_patience=1)
    trainer = Trainer(config, load_sequence(data_dir))
    result = trainer.fit()
    # lr 0: nothing improves after the first validation, so 3 more validations end the run early
    assert result.steps == 4 * trainer.steps_per_epoch
    assert trainer.lr_scale == 0.125


def test_resume_refuses_other_flags(data_dir, tmp_path):
    Trainer(small_config(tmp_path, data_dir), load_sequence(data_dir)).fit()
    other = Trainer(small_config(tmp_path, data_dir, field__hidden=8), load_sequence(data_dir))
    with pytest.raises(InputError, match=r"cannot resume with --hidden \(16 -> 8\)"):
        other.resume_from(tmp_path / "run" / "last.ckpt")


def test_validation_with_a_sparse_mask(tmp_path):
    make_png_folder(tmp_path / "d", [0, 12], height=16, width=16)
    mask = np.zeros((16, 16), np.uint8)
    mask[1, 1] = mask[1, 2] = 255  # no texel of the 4-strided lattice (2, 6, 10, 14) is valid
    write_png(tmp_path / "d" / "mask.png", mask)
    trainer = Trainer(small_config(tmp_path, tmp_path / "d"), load_sequence(tmp_path / "d"))
    assert trainer.sequence.mask.sum() == 2
    result = trainer.fit()
    assert math.isfinite(result.best_metric)


def test_held_out_frames_never_choose_the_best_checkpoint(data_dir, tmp_path):
    """Two runs that differ only in the ground truth of their held-out hour and extra frames keep the same
    best.ckpt, and it is the validation of the trained hours' best PSNR."""
    other_data = tmp_path / "other"
    other_data.mkdir()
    for path in data_dir.iterdir():
        (other_data / path.name).write_bytes(path.read_bytes())
    make_png_folder(other_data, [9], height=24, width=32, seed=11)  # another picture at the held-out hour
    bests, logs, chosen = [], [], []
    for name, data in (("a", data_dir), ("b", other_data)):
        extra = tmp_path / f"extra_{name}"
        make_png_folder(extra, [4.5, 13.25], height=24, width=32, seed=5 if name == "a" else 6)
        config = small_config(tmp_path, data, data__holdout_hours=[9.0], train__val_extra_dir=str(extra),
                              train__epochs=6, train__lr=3e-3)
        config.out_dir = str(tmp_path / name)
        trainer = Trainer(config, load_sequence(data))
        trainer.fit()
        chosen.append(trainer.best.best)
        logs.append([json.loads(line) for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()])
        bests.append(read_checkpoint(tmp_path / name / "best.ckpt"))
    assert [e["val/holdout/psnr"] for e in logs[0]] != [e["val/holdout/psnr"] for e in logs[1]]
    assert [e["val/hours/psnr"] for e in logs[0]] == [e["val/hours/psnr"] for e in logs[1]]
    assert all(e["val/psnr"] == e["val/hours/psnr"] and "val/all/psnr" in e for e in logs[0])
    assert chosen[0] == chosen[1] == max(e["val/hours/psnr"] for e in logs[0])
    for key, value in bests[0]["model"].items():
        assert torch.equal(value, bests[1]["model"][key]), key


@pytest.mark.parametrize("monitor", ["holdout/psnr", "all/psnr"])
def test_monitoring_held_out_frames_is_refused(data_dir, tmp_path, monitor):
    config = small_config(tmp_path, data_dir, data__holdout_hours=[9.0], train__monitor=monitor)
    with pytest.raises(InputError, match="held-out frames never choose a checkpoint"):
        Trainer(config, load_sequence(data_dir))


def test_one_time_of_day_is_refused(tmp_path, capsys):
    from airender.cli import main

    make_png_folder(tmp_path / "one", [12], height=8, width=8)
    assert main(["train", "--data_dir", str(tmp_path / "one"), "--out_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "two or more distinct times" in err and not (tmp_path / "run").exists()
    make_png_folder(tmp_path / "two", [6, 12], height=8, width=8)
    assert main(["train", "--data_dir", str(tmp_path / "two"), "--holdout_hours", "6",
                 "--out_dir", str(tmp_path / "run")]) == 2
    assert "all at 12 h" in capsys.readouterr().err and not (tmp_path / "run").exists()
